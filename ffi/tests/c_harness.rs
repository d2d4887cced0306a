//! The C side of the ABI, driven from `cargo test`:
//!
//! * the C prototype harness (ffi/tests/c/harness.c) built with gcc `-std=gnu11 -Wall
//!   -Wextra -Werror` under AddressSanitizer and UndefinedBehaviorSanitizer, linked
//!   against the no_std `libswapdio.a` through pkg-config, and run with several fault
//!   mixes (errors, short I/O, overruns, completions racing the submitter);
//! * swapdio.h compiled alone as kernel code (`-ffreestanding -nostdinc -D__KERNEL__`)
//!   against a minimal `<linux/types.h>`, with the `_Static_assert` layout checks;
//! * the no_std archive's undefined symbols limited to what the kernel exports;
//! * the checked-in header identical to cbindgen's output;
//! * the API contracts in C (ffi/tests/c/contracts.c: storage in use, copied plugs,
//!   forged ids, no sync slot, fini twice on an allocated engine) against both archives
//!   under the sanitizers;
//! * the harness and the contracts under valgrind, which also sees the library's own
//!   memory accesses (the sanitizers instrument only the C side): 0 errors.
//!
//! Each test prints a clear skip reason when a tool it needs (gcc, libasan, nm,
//! cbindgen 0.29.4, valgrind) is missing; `SWAPDIO_REQUIRE_C=1` turns those skips into
//! failures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const CBINDGEN_VERSION: &str = "cbindgen 0.29.4";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("ffi/ has a parent").to_path_buf()
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> Result<String, String> {
    let out = run(cmd)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Prints why a test cannot run here; with `SWAPDIO_REQUIRE_C=1` (CI) a missing tool
/// is a failure instead.
fn skip(test: &str, why: &str) {
    if std::env::var_os("SWAPDIO_REQUIRE_C").is_some_and(|v| v == "1") {
        panic!("{test}: {why} (SWAPDIO_REQUIRE_C=1 forbids skipping)");
    }
    eprintln!("SKIP {test}: {why}");
}

/// gcc present and able to build and run a program under ASan+UBSan.
fn sanitizers() -> Result<(), String> {
    let dir = tmp().join("sanitizer-probe");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join("probe.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").map_err(|e| e.to_string())?;
    let exe = dir.join("probe");
    ok(Command::new("gcc").args(["-fsanitize=address,undefined", "-o"]).arg(&exe).arg(&src))
        .map_err(|e| format!("gcc with libasan/libubsan unavailable: {e}"))?;
    ok(&mut Command::new(&exe)).map(|_| ()).map_err(|e| format!("sanitized binaries do not run here: {e}"))
}

/// Builds an archive once (ffi/build-lib.sh; `std` sets `SWAPDIO_STD=1`) into a prefix
/// with the header and swapdio.pc; returns the prefix. Each archive has its own target
/// directory so the two builds cannot overwrite each other's output.
fn build_prefix(std: bool) -> Result<PathBuf, String> {
    let name = if std { "std" } else { "nostd" };
    let prefix = tmp().join(format!("swapdio-c-{name}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    ok(Command::new("sh")
        .arg(root().join("ffi/build-lib.sh"))
        .arg(&prefix)
        .env("CARGO", cargo)
        .env("SWAPDIO_STD", if std { "1" } else { "0" })
        .env("CARGO_TARGET_DIR", tmp().join(format!("{name}-target"))))?;
    Ok(prefix)
}

/// The no_std archive (the kernel-style one).
fn prefix() -> &'static Result<PathBuf, String> {
    static PREFIX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PREFIX.get_or_init(|| build_prefix(false))
}

/// The std archive (adds `swapdio_engine_new`).
fn std_prefix() -> &'static Result<PathBuf, String> {
    static PREFIX: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PREFIX.get_or_init(|| build_prefix(true))
}

/// Compiler and linker flags for the installed library: pkg-config when present (so
/// swapdio.pc is exercised; `--static` adds the std archive's system libraries), the
/// same flags by hand otherwise.
fn pkg_flags(prefix: &Path) -> Vec<String> {
    let pc = prefix.join("lib/pkgconfig");
    match ok(Command::new("pkg-config").args(["--static", "--cflags", "--libs", "swapdio"]).env("PKG_CONFIG_PATH", &pc))
    {
        Ok(flags) => flags.split_whitespace().map(String::from).collect(),
        Err(e) => {
            eprintln!("pkg-config unavailable ({e}); using explicit flags");
            let mut flags = vec![
                format!("-I{}", prefix.join("include").display()),
                format!("-L{}", prefix.join("lib").display()),
                "-lswapdio".into(),
            ];
            if prefix.ends_with("swapdio-c-std") {
                flags.extend(["-DSWAPDIO_STD", "-lpthread", "-ldl", "-lgcc_s", "-lc", "-lm"].map(String::from));
            }
            flags
        }
    }
}

/// Compiles one C program of ffi/tests/c against an installed archive with the
/// project's warning flags and `extra` (sanitizers or none).
fn compile(source: &str, exe: &Path, prefix: &Path, extra: &[&str]) {
    let c = root().join("ffi/tests/c");
    let mut gcc = Command::new("gcc");
    gcc.args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-g", "-fno-omit-frame-pointer"])
        .args(extra)
        .arg(format!("-I{}", c.display()))
        .arg(c.join(source))
        .arg("-o")
        .arg(exe)
        .args(pkg_flags(prefix))
        .arg("-lpthread");
    ok(&mut gcc).unwrap_or_else(|e| panic!("compiling {source}: {e}"));
}

const SANITIZE: &[&str] = &["-fsanitize=address,undefined", "-fno-sanitize-recover=all"];

/// (seed, error %, short %) mixes of the harness: clean, default, heavy, short-heavy,
/// extreme.
const HARNESS_MIXES: [(u32, u32, u32); 5] = [(1, 0, 0), (2, 10, 10), (3, 30, 30), (4, 5, 40), (5, 45, 45)];

fn run_sanitized(exe: &Path, args: &[String]) -> String {
    let out = ok(Command::new(exe)
        .args(args)
        .env("ASAN_OPTIONS", "abort_on_error=1:detect_leaks=1")
        .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"))
    .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    eprint!("{out}");
    assert!(out.contains(": ok"), "{} did not report success: {out}", exe.display());
    out
}

#[test]
fn c_harness_passes_under_asan_and_ubsan_with_faults_and_racing_completions() {
    const NAME: &str = "c_harness";
    if let Err(why) = sanitizers() {
        return skip(NAME, &why);
    }
    let prefix = prefix().as_ref().expect("building libswapdio.a");
    let exe = tmp().join("harness");
    compile("harness.c", &exe, prefix, SANITIZE);
    for (seed, errors, short) in HARNESS_MIXES {
        run_sanitized(&exe, &[seed.to_string(), errors.to_string(), short.to_string()]);
    }
}

#[test]
fn c_contracts_hold_for_both_archives_under_asan_and_ubsan() {
    const NAME: &str = "c_contracts";
    if let Err(why) = sanitizers() {
        return skip(NAME, &why);
    }
    for (archive, prefix) in [("nostd", prefix()), ("std", std_prefix())] {
        let prefix = prefix.as_ref().expect("building the archive");
        let exe = tmp().join(format!("contracts-{archive}"));
        compile("contracts.c", &exe, prefix, SANITIZE);
        let out = run_sanitized(&exe, &[]);
        assert_eq!(archive == "std", out.contains("fini twice on engine_new"), "{archive}: {out}");
    }
}

/// valgrind present and able to run a program here.
fn valgrind() -> Result<(), String> {
    let out = run(Command::new("valgrind").arg("--version")).map_err(|_| "valgrind not installed".to_string())?;
    if !out.status.success() {
        return Err("valgrind --version failed".into());
    }
    Ok(())
}

/// Runs `exe` under memcheck: any error (invalid read or write, use of uninitialised
/// memory, a definite leak) fails.
fn run_valgrind(exe: &Path, args: &[String]) -> String {
    let out = ok(Command::new("valgrind")
        .args(["--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite", "--quiet"])
        .arg("--fair-sched=yes")
        .arg(exe)
        .args(args))
    .unwrap_or_else(|e| panic!("valgrind {}: {e}", exe.display()));
    eprint!("{out}");
    assert!(out.contains(": ok"), "{} did not report success under valgrind: {out}", exe.display());
    out
}

#[test]
fn c_harness_and_contracts_have_no_memory_errors_under_valgrind() {
    const NAME: &str = "valgrind";
    if run(Command::new("gcc").arg("--version")).is_err() {
        return skip(NAME, "gcc not found");
    }
    if let Err(why) = valgrind() {
        return skip(NAME, &why);
    }
    // Unsanitized builds: valgrind checks the library's accesses as well as the C side's.
    let nostd = prefix().as_ref().expect("building libswapdio.a");
    let std = std_prefix().as_ref().expect("building the std archive");
    let harness = tmp().join("harness-vg");
    compile("harness.c", &harness, nostd, &[]);
    // Two mixes keep the run short: clean, and heavy faults with racing completions.
    for (seed, errors, short) in [HARNESS_MIXES[0], HARNESS_MIXES[2]] {
        run_valgrind(&harness, &[seed.to_string(), errors.to_string(), short.to_string()]);
    }
    for (archive, prefix) in [("nostd", nostd), ("std", std)] {
        let exe = tmp().join(format!("contracts-vg-{archive}"));
        compile("contracts.c", &exe, prefix, &[]);
        run_valgrind(&exe, &[]);
    }
}

#[test]
fn header_compiles_as_freestanding_kernel_code() {
    const NAME: &str = "kernel header";
    if run(Command::new("gcc").arg("--version")).is_err() {
        return skip(NAME, "gcc not found");
    }
    let c = root().join("ffi/tests/c");
    let obj = tmp().join("kernel_include.o");
    ok(Command::new("gcc")
        .args(["-std=gnu11", "-ffreestanding", "-nostdinc", "-D__KERNEL__", "-Wall", "-Wextra", "-Werror"])
        .args(["-Wmissing-prototypes", "-Wstrict-prototypes", "-Wundef", "-c"])
        .arg(format!("-I{}", c.join("kernel_shim").display()))
        .arg(format!("-I{}", root().join("include").display()))
        .arg(format!("-I{}", c.display()))
        .arg(c.join("kernel_include.c"))
        .arg("-o")
        .arg(&obj))
    .expect("swapdio.h must compile as kernel code");
    // The same header in userspace, as C++ too (extern "C", enum underlying types).
    if run(Command::new("g++").arg("--version")).is_ok() {
        let src = tmp().join("include_cxx.cc");
        std::fs::write(&src, "#include \"swapdio.h\"\nstatic_assert(sizeof(swapdio_io) == 560, \"layout\");\n")
            .expect("write C++ probe");
        ok(Command::new("g++")
            .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
            .arg(format!("-I{}", root().join("include").display()))
            .arg(&src))
        .expect("swapdio.h must compile as C++");
    }
}

/// What Rust's own objects leave undefined in the no_std archive after removing what
/// the archive defines itself.
fn undefined_symbols(archive: &Path) -> Result<Vec<String>, String> {
    // An explicit BFD target keeps binutils' LTO plugin away from the LLVM bitcode
    // embedded in Rust objects (it would otherwise report "no symbols").
    let nm = |filter: &str| {
        ok(Command::new("nm").args(["--target=elf64-x86-64", filter, "--format=just-symbols"]).arg(archive))
    };
    let defined: std::collections::BTreeSet<String> = nm("--defined-only")?.lines().map(str::to_owned).collect();
    let undefined: std::collections::BTreeSet<String> = nm("--undefined-only")?.lines().map(str::to_owned).collect();
    Ok(undefined.difference(&defined).cloned().collect())
}

#[test]
fn nostd_archive_needs_only_kernel_exported_mem_functions() {
    const NAME: &str = "nm check";
    if run(Command::new("nm").arg("--version")).is_err() {
        return skip(NAME, "nm (binutils) not found");
    }
    let prefix = prefix().as_ref().expect("building libswapdio.a");
    let undefined = undefined_symbols(&prefix.join("lib/libswapdio.a")).expect("nm");
    // The mem* functions the kernel exports, and the C side's own panic hook.
    let allowed = ["memcpy", "memmove", "memset", "memcmp", "bcmp", "swapdio_panic_hook"];
    let extra: Vec<&String> = undefined.iter().filter(|s| !allowed.contains(&s.as_str())).collect();
    assert!(extra.is_empty(), "libswapdio.a needs symbols the kernel does not export: {extra:?}");
    assert!(undefined.iter().any(|s| s == "memcpy"), "nm saw no undefined symbol at all: {undefined:?}");
}

#[test]
fn checked_in_header_matches_cbindgen_output() {
    const NAME: &str = "header drift";
    match run(Command::new("cbindgen").arg("--version")) {
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim() == CBINDGEN_VERSION => {}
        Ok(out) => {
            let found = String::from_utf8_lossy(&out.stdout);
            return skip(NAME, &format!("need {CBINDGEN_VERSION}, found {}", found.trim()));
        }
        Err(_) => return skip(NAME, "cbindgen not installed (cargo install cbindgen --version 0.29.4 --locked)"),
    }
    let out = tmp().join("swapdio.h");
    ok(Command::new("cbindgen")
        .current_dir(root())
        .args(["--quiet", "--config", "ffi/cbindgen.toml", "--crate", "swapdio-ffi", "--output"])
        .arg(&out)
        .arg("ffi"))
    .expect("cbindgen");
    let generated = std::fs::read(&out).expect("generated header");
    let checked_in = std::fs::read(root().join("include/swapdio.h")).expect("include/swapdio.h");
    assert!(generated == checked_in, "include/swapdio.h is stale: regenerate it with cbindgen (see ffi/cbindgen.toml)");
}
