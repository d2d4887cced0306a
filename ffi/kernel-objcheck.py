#!/usr/bin/env python3
"""Gates for the kernel object that ffi/build-kernel.sh produces (swapdio_rs.o_shipped).

Subcommands:

  exports HEADER        print, one per line, the functions HEADER declares as defined by the
                        library for a kernel (no_std) build: every prototype outside
                        `#if defined(SWAPDIO_STD)` blocks, except `extern` ones.
  imports HEADER        print the functions HEADER declares `extern` (the C side provides them).
  check OBJ HEADER [--budget-callback N] [--budget-total N] [--report FILE]
                        run every gate on the relocatable object OBJ; exit 1 on any failure.

The gates (each one is a way the module loader or the kernel breaks, see ffi/README.md):

  * exports   OBJ defines exactly the header's exported functions as globals, nothing else;
  * sse       no xmm/ymm/zmm instruction (kernel code must not touch FPU/SIMD state, and the
              kernel stack is only 8-byte aligned, so `movaps` to the stack faults);
  * red-zone  no access below %rsp (interrupts run on the same stack in the kernel);
  * relocs    only relocation types the x86-64 module loader applies without overflow:
              R_X86_64_64, R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32S, R_X86_64_PC64
              (GOTPCREL/REX_GOTPCRELX: "Unknown rela relocation"; R_X86_64_32: overflow);
  * undefined only memcpy, memmove, memset, memcmp, bcmp and the header's `extern` functions;
  * panics    no core::fmt / core::panicking code (no panic path survived gc-sections);
  * stack     worst-case static stack depth from each exported function to any callback
              (indirect call) within --budget-callback bytes, and to any leaf within
              --budget-total bytes; recursion fails the gate.

The stack depth is computed from the disassembly: each function's frame is its return
address, its pushes and every `sub $N,%rsp` it contains (a conservative sum); the depth of a
path is the sum of the frames along direct calls and tail jumps. An indirect call (a
callback through an operations table) counts as reaching a callback with the caller's frame
plus the return address of the indirect call.
"""

import argparse
import re
import subprocess
import sys

ALLOWED_UNDEFINED = {"memcpy", "memmove", "memset", "memcmp", "bcmp"}
ALLOWED_RELOCS = {
    "R_X86_64_64",
    "R_X86_64_PC32",
    "R_X86_64_PLT32",
    "R_X86_64_32S",
    "R_X86_64_PC64",
}


def header_decls(path):
    """Return (exported, imported) function names declared by the C header."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    kept = []
    # Track #if nesting; drop the bodies of `#if defined(SWAPDIO_STD)` (std-only API).
    stack = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#if"):
            std_only = re.fullmatch(r"#if\s+defined\(SWAPDIO_STD\)", s) is not None
            stack.append(std_only)
            continue
        if s.startswith("#endif"):
            if stack:
                stack.pop()
            continue
        if s.startswith("#"):
            continue
        if any(stack):
            continue
        kept.append(line)
    body = "\n".join(kept)
    exported, imported = [], []
    # A prototype: return type, name, parameter list, semicolon; skip typedefs of pointers.
    for m in re.finditer(r"(?:^|(?<=[;{}]))\s*([^;{}()#]*?)\b(swapdio_\w+)\s*\(([^;{}]*?)\)\s*(?:[A-Z_]+\s*)*;", body, re.S | re.M):
        prefix, name = m.group(1), m.group(2)
        if "typedef" in prefix or prefix.rstrip().endswith("(*"):
            continue
        if re.search(r"\bextern\b", prefix):
            imported.append(name)
        else:
            exported.append(name)
    if not exported:
        sys.exit(f"{path}: no function declarations found")
    return sorted(set(exported)), sorted(set(imported))


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def symbols(obj):
    """Defined globals, undefined symbols and all function symbols (nm -C names too)."""
    defined, undefined = set(), set()
    for line in run("nm", "--target=elf64-x86-64", "--defined-only", "-g", obj).splitlines():
        parts = line.split()
        if len(parts) == 3:
            defined.add(parts[2])
    for line in run("nm", "--target=elf64-x86-64", "-u", obj).splitlines():
        parts = line.split()
        if parts:
            undefined.add(parts[-1])
    demangled = run("nm", "--target=elf64-x86-64", "-C", obj)
    return defined, undefined, demangled


FUNC_RE = re.compile(r"^([0-9a-f]+) <(.+)>:$")


def disassemble(obj):
    """Parse `objdump -drw`: {function: [(instruction text, reloc type, reloc symbol)]}.

    With -w, objdump prints an instruction's relocation on the same line after a tab.
    """
    out = run("objdump", "-dr", "--no-show-raw-insn", "-w", obj)
    funcs, current = {}, None
    insn_re = re.compile(r"^\s*[0-9a-f]+:\s+(.*?)(?:\t[0-9a-f]+: (R_X86_64_\w+)\s+(\S+?)(?:[-+]0x[0-9a-f]+)?)?$")
    for line in out.splitlines():
        m = FUNC_RE.match(line)
        if m:
            current = m.group(2)
            funcs[current] = []
            continue
        if current is None:
            continue
        m = insn_re.match(line)
        if m:
            funcs[current].append((m.group(1).strip(), m.group(2), m.group(3)))
    return funcs


def frame_size(insns):
    size = 8  # the return address pushed by the call into this function
    prologue = True
    for text, _, _ in insns:
        op = text.split()[0] if text else ""
        if prologue and op in ("push", "pushq"):
            size += 8
            continue
        if op in ("endbr64", "nop", "nopl", "nopw", "mov") and prologue and "%rsp,%rbp" in text:
            continue
        prologue = False
        m = re.match(r"sub\s+\$0x([0-9a-f]+),%rsp$", text)
        if m:
            size += int(m.group(1), 16)
    return size


def callees(insns, funcs):
    """Direct calls and tail jumps to functions of the object (by relocation: every
    function has its own section), and whether an indirect call (a callback) happens."""
    direct, indirect = set(), False
    for text, _, rsym in insns:
        op = text.split()[0] if text else ""
        if op not in ("call", "callq", "jmp", "jmpq"):
            continue
        if rsym is not None:
            # A call to a local function may be relocated against its section symbol.
            if rsym.startswith(".text.") and rsym not in funcs:
                rsym = rsym[len(".text."):]
            if rsym in funcs:
                direct.add(rsym)
        elif "*" in text and (op.startswith("call") or "(,%" not in text):
            # `call *...`, or a tail call through a register (`jmp *(...,%reg,8)` is a
            # jump table, not a call).
            indirect = True
    return direct, indirect


def short_name(sym):
    """`Engine<..>::submit_parts` from a legacy-mangled Rust symbol; C names unchanged."""
    m = re.match(r"_ZN(.*)E(\.llvm\.\d+)?$", sym)
    if not m:
        return sym
    rest, parts = m.group(1), []
    while rest and rest[0].isdigit():
        n = re.match(r"\d+", rest).group(0)
        rest = rest[len(n):]
        parts.append(rest[: int(n)])
        rest = rest[int(n):]
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    subs = {"$LT$": "<", "$GT$": ">", "$u20$": " ", "$C$": ",", "..": "::", "$RF$": "&"}
    parts = [re.sub(r"^_\$LT\$(?:\w|\.|\$u20\$)*?(\w+)\$u20\$as\$u20\$.*\$GT\$$", r"\1", p) for p in parts]
    text = "::".join(parts[-2:])
    for a, b in subs.items():
        text = text.replace(a, b)
    return re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", text))


def stack_report(funcs, roots):
    frames = {f: frame_size(i) for f, i in funcs.items()}
    graph = {f: callees(i, funcs) for f, i in funcs.items()}
    memo = {}

    def depth(f, path):
        """(total depth, depth at a callback or None, path to the worst callback)."""
        if f in path:
            raise RecursionError(" -> ".join(path + [f]))
        if f in memo:
            return memo[f]
        direct, indirect = graph.get(f, (set(), False))
        own = frames.get(f, 8)
        total, cb, cb_path = own, (own + 8 if indirect else None), [f]
        for g in sorted(direct):
            t, c, p = depth(g, path + [f])
            total = max(total, own + t)
            if c is not None and (cb is None or own + c > cb):
                cb, cb_path = own + c, [f] + p
        if cb is not None:
            total = max(total, cb)
        memo[f] = (total, cb, cb_path)
        return memo[f]

    return {r: depth(r, []) for r in roots}


def check(args):
    exported, imported = header_decls(args.header)
    failures = []
    defined, undefined, demangled = symbols(args.obj)

    missing = sorted(set(exported) - defined)
    extra = sorted(defined - set(exported))
    if missing:
        failures.append(f"exports: header functions not defined: {' '.join(missing)}")
    if extra:
        failures.append(f"exports: globals the header does not declare: {' '.join(extra)}")

    bad_undef = sorted(undefined - ALLOWED_UNDEFINED - set(imported))
    if bad_undef:
        failures.append(f"undefined: symbols beyond mem* and the header's extern hooks: {' '.join(bad_undef)}")

    panics = [l for l in demangled.splitlines() if re.search(r"core::(fmt|panicking)", l)]
    if panics:
        failures.append(f"panics: {len(panics)} core::fmt/core::panicking symbols, e.g. {panics[0].split()[-1]}")

    funcs = disassemble(args.obj)
    sse = [(f, t) for f, insns in funcs.items() for t, _, _ in insns if re.search(r"%[xyz]mm\d", t)]
    if sse:
        failures.append(f"sse: {len(sse)} SIMD instructions, e.g. {sse[0][0]}: {sse[0][1]}")
    redzone = [(f, t) for f, insns in funcs.items() for t, _, _ in insns if re.search(r"-0x[0-9a-f]+\(%rsp\)", t)]
    if redzone:
        failures.append(f"red-zone: {len(redzone)} accesses below %rsp, e.g. {redzone[0][0]}: {redzone[0][1]}")
    # Relocations of data sections too: `objdump -r` lists every section.
    all_relocs = set()
    for line in run("objdump", "-r", args.obj).splitlines():
        m = re.match(r"^[0-9a-f]+\s+(R_X86_64_\w+)\s", line)
        if m:
            all_relocs.add(m.group(1))
    bad_relocs = sorted(all_relocs - ALLOWED_RELOCS)
    if bad_relocs:
        failures.append(f"relocs: types the module loader rejects or may overflow: {' '.join(bad_relocs)}")

    size = run("size", args.obj).splitlines()[-1].split()
    lines = [
        f"object: {args.obj}",
        f"size: text {size[0]} B, data {size[1]} B, bss {size[2]} B, file {__import__('os').path.getsize(args.obj)} B",
        f"exports: {len(exported)} functions (from {args.header}); imports: {' '.join(imported) or '-'}",
        f"relocation types: {' '.join(sorted(all_relocs))}",
        "stack (static, bytes, return addresses included): entry, worst total | worst path to a callback",
    ]
    try:
        report = stack_report(funcs, [e for e in exported if e in funcs])
    except RecursionError as e:
        failures.append(f"stack: recursion, depth unbounded: {e}")
        report = {}
    for name in sorted(report):
        total, cb, path = report[name]
        via = f"{cb:5d} B via {' > '.join(short_name(p) for p in path[1:]) or 'an indirect call'}" if cb else "    - (no callback)"
        lines.append(f"  {name:22s} {total:5d} B | {via}")
        if cb is not None and cb > args.budget_callback:
            failures.append(f"stack: {name} reaches a callback at {cb} B > budget {args.budget_callback} B")
        if total > args.budget_total:
            failures.append(f"stack: {name} needs {total} B > budget {args.budget_total} B")
    lines.append(f"budgets: {args.budget_callback} B to a callback, {args.budget_total} B in total")
    text = "\n".join(lines)
    print(text)
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if failures:
        print("\nkernel object gates FAILED:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print("gates passed: exports, sse, red-zone, relocs, undefined, panics, stack")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("exports", "imports"):
        s = sub.add_parser(name)
        s.add_argument("header")
    c = sub.add_parser("check")
    c.add_argument("obj")
    c.add_argument("header")
    c.add_argument("--budget-callback", type=int, default=2048)
    c.add_argument("--budget-total", type=int, default=3072)
    c.add_argument("--report")
    args = p.parse_args()
    if args.cmd in ("exports", "imports"):
        exported, imported = header_decls(args.header)
        print("\n".join(exported if args.cmd == "exports" else imported))
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
