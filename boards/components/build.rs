// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Linux VM's kernel command line comes from `CAPVISOR_BOOTARGS` at
//! build time (see src/vms.rs): rebuild when it changes.

fn main() {
    println!("cargo:rerun-if-env-changed=CAPVISOR_BOOTARGS");
    println!("cargo:rerun-if-changed=images.txt");
}
