#!/usr/bin/env python3
"""Instructions the guest kernel executed, per function, from a profiled bench run.

    BENCH_PROFILE=1 BENCH_CLOCK=icount BENCH_CONFIGS=v10000 BENCH_ROUNDS=1 bash bench/run.sh --short
    python3 bench/profile.py [--top N] [--per N] [SHARE]

SHARE (default bench/out/vm/stock/share) holds tbprof.txt (bench/tbprof.c: a
QEMU plugin counting the instructions of every translation block the guest
ran in its kernel) and the guest's kallsyms. --per N divides by N (e.g. the
datagrams sent) to print instructions per packet.
"""
import argparse
import bisect
import glob
import os

ap = argparse.ArgumentParser()
ap.add_argument("share", nargs="?", default=os.path.join(os.path.dirname(__file__), "out/vm/stock/share"))
ap.add_argument("--top", type=int, default=40)
ap.add_argument("--per", type=float, default=1.0)
o = ap.parse_args()

syms = []
for path in [os.path.join(o.share, "kallsyms.txt")] + sorted(glob.glob(os.path.join(o.share, "kallsyms-*.txt"))):
    for line in open(path):
        f = line.split()
        if len(f) >= 3 and f[1] in "tTwW":
            syms.append((int(f[0], 16), f[2] + (" " + f[3] if len(f) > 3 else "")))
syms.sort()
addrs = [a for a, _ in syms]
per = {}
total = 0
for line in open(os.path.join(o.share, "tbprof.txt")):
    pc, n = line.split()
    pc, n = int(pc, 16), int(n)
    i = bisect.bisect_right(addrs, pc) - 1
    name = syms[i][1] if i >= 0 else "?"
    per[name] = per.get(name, 0) + n
    total += n
print(f"{total / o.per:,.0f} kernel instructions in all")
for name, n in sorted(per.items(), key=lambda kv: -kv[1])[:o.top]:
    print(f"{n / o.per:12,.1f}  {100 * n / total:5.2f}%  {name}")
mod = {k: v for k, v in per.items() if "[" in k}
print(f"\nmodule functions: {sum(mod.values()) / o.per:,.1f}")
for name, n in sorted(mod.items(), key=lambda kv: -kv[1]):
    print(f"{n / o.per:12,.1f}  {name}")
