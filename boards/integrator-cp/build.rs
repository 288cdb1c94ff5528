//! Links the board with its linker script.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=layout.ld");
    println!("cargo:rerun-if-env-changed=CAPVISOR_BOOTARGS");
    println!("cargo:rustc-link-arg-bins=-T{dir}/layout.ld");
    println!("cargo:rustc-link-arg-bins=--no-rosegment");
}
