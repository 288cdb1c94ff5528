// SPDX-License-Identifier: MIT OR Apache-2.0
//! Links every guest with `guest.ld` as a flat binary image. With
//! `CAPVISOR_GUEST_ELF=1` in the environment the guests stay ELF files
//! instead (for gdb and objdump; use a separate `--target-dir`).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=guest.ld");
    println!("cargo:rerun-if-env-changed=CAPVISOR_GUEST_ELF");
    println!("cargo:rustc-link-arg-bins=-T{dir}/guest.ld");
    if std::env::var_os("CAPVISOR_GUEST_ELF").is_none() {
        println!("cargo:rustc-link-arg-bins=--oformat=binary");
    }
}
