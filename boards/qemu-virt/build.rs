// SPDX-License-Identifier: MIT OR Apache-2.0
//! Links the board with its linker script (which includes the shared
//! layout from boards/components).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=layout.ld");
    println!("cargo:rerun-if-changed=../components/layout.ld");
    println!("cargo:rustc-link-arg-bins=-L{dir}/../components");
    println!("cargo:rustc-link-arg-bins=-T{dir}/layout.ld");
    println!("cargo:rustc-link-arg-bins=--no-rosegment");
}
