//! Verification only: `SWAPDIO_BROKEN_VARIANT=<name>` builds one of the deliberately
//! broken variants (`cfg(swapdio_broken = "<name>")` in src/pool.rs and src/engine/)
//! that the loom models must catch (scripts/verify-loom.sh). An environment variable
//! rather than `RUSTFLAGS`, so only this crate is rebuilt per variant, not every
//! dependency. Unset (always, outside that script): the normal library.
fn main() {
    println!("cargo:rerun-if-env-changed=SWAPDIO_BROKEN_VARIANT");
    if let Ok(v) = std::env::var("SWAPDIO_BROKEN_VARIANT") {
        if !v.is_empty() {
            println!("cargo:rustc-cfg=swapdio_broken=\"{v}\"");
        }
    }
}
