//! Links the `scrubs` binary with packed relative relocations (DT_RELR,
//! `-z pack-relative-relocs`) on Linux with glibc.
//!
//! A position-independent executable carries one relocation per pointer in
//! its read-only data (vtables, string tables): 28,500 of them, 673 KiB of
//! `.rela.dyn` that the dynamic loader reads whole at start-up, so all of
//! it stayed resident. Packed, they take 10 KiB. Measured on the idle
//! sidecar (the bench-sidecar configuration, this repository's machine):
//! 21.5 MiB RSS without, 20.2 MiB with.
//!
//! Running such a binary needs glibc 2.36 or newer (the image is Debian
//! 12, glibc 2.36); an older glibc refuses it at start with a version
//! error (`GLIBC_ABI_DT_RELR not found`), by design. Linking needs GNU ld
//! 2.38 or newer, lld 15 or newer, or mold. To build for an older glibc,
//! set `SCRUBS_PACK_RELOCS=0`. Only the binary is linked differently
//! (`rustc-link-arg-bins`), so no dependency is rebuilt for it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SCRUBS_PACK_RELOCS");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let off = std::env::var("SCRUBS_PACK_RELOCS").is_ok_and(|v| v == "0");
    if os == "linux" && env == "gnu" && !off {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
