#!/usr/bin/env python3
"""Which code lines a request touches, from a callgrind dump made with per-instruction costs.

    BENCH_KEEP=1 BENCH_DUMP_INSTR=1 cargo bench --bench cpu_per_request -- 1000
    benches/code_lines.py DUMP [--requests 1000] [--top 30] [--only authgate]
    benches/code_lines.py DUMP --map 'authgate::canonical::read' --binary target/release/authgate

On this machine (as in valgrind's model of it) a request's code does not fit the 32 KB
first-level instruction cache, so every 64-byte line of code a request runs is fetched again
on the next one: instruction-cache misses per request are about the lines touched. A
function that runs 500 instructions can touch 35 lines or 70, depending on whether its
rarely taken branches sit between the lines of its common one. The first form lists, per
function, the misses and lines per request, the distinct instructions run and the
instructions per request; the sum over the functions `--only` matches is printed last.
`--map` prints one function's code in address order as hot (run) and cold (never run)
stretches with their source lines, from `objdump -d -l`: the cold stretches between hot ones
are what to move out of line (`#[cold]`, `std::hint::cold_path`, a boxed future).
"""
import argparse
import collections
import re
import subprocess


def parse(path):
    """Per function: executed instruction addresses (with counts), instructions, I1 misses."""
    fns = collections.defaultdict(lambda: {"addr": collections.Counter(), "i1": 0, "ir": 0})
    names = {}
    cur = None
    prev = [0, 0]
    after_call = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line:
            continue
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if m.group(1) == "fn":
                cur = names[m.group(2)]
            continue
        if line.startswith("calls="):
            # The next cost line is the call's inclusive cost, not this function's own.
            after_call = True
            continue
        if line[0] not in "0123456789+-*":
            continue
        parts = line.split()
        pos = []
        for i, t in enumerate(parts[:2]):
            if t == "*":
                pos.append(prev[i])
            elif t[0] in "+-":
                pos.append(prev[i] + int(t, 0))
            else:
                pos.append(int(t, 0))
        prev = pos
        if after_call:
            after_call = False
            continue
        events = [int(x) for x in parts[2:]] + [0] * 4
        if cur is not None and events[0] > 0:
            f = fns[cur]
            f["addr"][pos[0]] += events[0]
            f["ir"] += events[0]
            f["i1"] += events[3]  # events: Ir Dr Dw I1mr ... (cache simulation on)
    return fns


def summary(fns, requests, top, only):
    rows = []
    for name, f in fns.items():
        if f["ir"]:
            lines = {a >> 6 for a in f["addr"]}
            rows.append((f["i1"] / requests, len(lines), len(f["addr"]), f["ir"] / requests, name))
    rows.sort(key=lambda r: -r[0])
    print(f"all code: {sum(r[0] for r in rows):.0f} I1 misses per request")
    picked = [r for r in rows if not only or only in r[4]]
    for i1, lines, distinct, ir, name in picked[:top]:
        print(f"{i1:7.1f} I1 {lines:5d} lines {distinct:5d} distinct {ir:8.0f} Ir  {name[:110]}")
    if only:
        print(f"functions naming {only!r}: {sum(r[0] for r in picked):.0f} I1 misses, "
              f"{sum(r[3] for r in picked):.0f} instructions per request")


def code_map(fns, name, binary):
    f = fns[name]
    sym = subprocess.run(["nm", "-C", "-S", binary], capture_output=True, text=True).stdout
    start = size = None
    for line in sym.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[3] == name:
            start, size = int(parts[0], 16), int(parts[1], 16)
    if start is None:
        raise SystemExit(f"{name}: not in {binary}'s symbols")
    out = subprocess.run(["objdump", "-d", "-l", "--no-show-raw-insn", "-C",
                          f"--start-address={start:#x}", f"--stop-address={start + size:#x}",
                          binary], capture_output=True, text=True).stdout
    src = None
    stretches = []  # [hot, first, last, instructions, Counter(source line)]
    for line in out.splitlines():
        m = re.match(r"^\s+([0-9a-f]+):", line)
        if m:
            a = int(m.group(1), 16)
            hot = a in f["addr"]
            if stretches and stretches[-1][0] == hot:
                s = stretches[-1]
                s[2] = a
                s[3] += 1
                s[4][src] += 1
            else:
                stretches.append([hot, a, a, 1, collections.Counter({src: 1})])
            continue
        m = re.match(r"^(/\S+):(\d+)", line)
        if m:
            src = f"{m.group(1).rsplit('/', 1)[-1]}:{m.group(2)}"
    lines = {a >> 6 for a in f["addr"]}
    print(f"{name}: {size} bytes, {len(lines)} lines touched")
    for hot, first, last, n, where in stretches:
        top = ", ".join(f"{k}({v})" for k, v in where.most_common(4))
        print(f"{'HOT ' if hot else 'cold'} +{first - start:<6x} {last - first:6d} B {n:4d} instr  {top}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--requests", type=float, default=1000)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--only", default="")
    ap.add_argument("--map")
    ap.add_argument("--binary", default="target/release/authgate")
    args = ap.parse_args()
    fns = parse(args.dump)
    if args.map:
        code_map(fns, args.map, args.binary)
    else:
        summary(fns, args.requests, args.top, args.only)


if __name__ == "__main__":
    main()
