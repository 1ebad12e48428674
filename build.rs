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

//!
//! On x86-64 Linux, where rustc links with its own lld, the functions
//! scrubs runs from start to idle are also laid out together, in the order
//! of `link/startup-symbols.txt` (`--symbol-ordering-file`). The kernel maps
//! the 64 KiB around each page of code first touched, so start-up code
//! spread over the whole binary made most of it resident: 7.2 MiB of
//! 10.5 MB. The list is made by `scripts/startup-symbols.sh` from a
//! callgrind run of the idle sidecar; a symbol that no longer exists (its
//! hash changes with the code) is skipped without a warning, so a stale
//! list costs memory, never a build. rustc links with lld by default on
//! this target since 1.90; with an older rustc the option is not passed. Set
//! `SCRUBS_SYMBOL_ORDER=0` to link without it (with a linker of your own
//! that does not know the option: GNU ld before 2.43 and its
//! `--section-ordering-file` do not).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SCRUBS_PACK_RELOCS");
    println!("cargo:rerun-if-env-changed=SCRUBS_SYMBOL_ORDER");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let off = std::env::var("SCRUBS_PACK_RELOCS").is_ok_and(|v| v == "0");
    if os == "linux" && env == "gnu" && !off {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup-symbols.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    let order_off = std::env::var("SCRUBS_SYMBOL_ORDER").is_ok_and(|v| v == "0");
    if os == "linux"
        && env == "gnu"
        && arch == "x86_64"
        && !order_off
        && order.exists()
        && links_with_lld()
    {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether rustc links this target with its own lld: 1.90 or newer (on
/// x86-64 Linux with glibc, where the caller asks), unless a linker was
/// chosen in the flags.
fn links_with_lld() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let minor = text
        .lines()
        .find_map(|l| l.strip_prefix("release: 1."))
        .and_then(|rest| rest.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
