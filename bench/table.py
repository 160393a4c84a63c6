#!/usr/bin/env python3
"""Judge a bench/run.sh VM run and print its table (also written as Markdown).

Reads the share the VM wrote: results.txt (one line per workload run,
KEY=VALUE), evidence.txt (what each firewall saw), status, dmesg.txt. Exit
status: 1 on a broken run; 3 when the full form misses a target; else 0.
"""
import argparse
import datetime
import os
import re
import statistics
import sys

BAD = ("WARNING:", "BUG:", "Oops", "Kernel panic", "general protection fault",
       "soft lockup", "hung_task", "rcu: INFO", "Call Trace:")
NAMES = {"none": "no firewall", "osnitch": "OpenSnitch 1.5.8 (opensnitchd)"}
WORKLOADS = (("storm", "TCP storm (conn/s)"), ("udp", "UDP flood (datagrams/s)"))


def config_name(c):
    q = re.fullmatch(r"vq(\d+)", c)
    if q:
        return f"vordr, {int(q.group(1)):,} qualified rules for the benchmark's own program"
    m = re.fullmatch(r"v(\d+)(nw)?", c)
    if not m:
        return NAMES.get(c, c)
    return f"vordr, {int(m.group(1)):,} rules" + (", TCP writers not watched" if m.group(2) else "")


def main():
    ap = argparse.ArgumentParser()
    for a in ("--form", "--share", "--qemu-rc", "--kernel", "--commit", "--out", "--console",
              "--conns", "--par", "--dgrams", "--size", "--rounds", "--configs", "--osnitch-secs", "--clock"):
        ap.add_argument(a, required=True)
    o = ap.parse_args()
    broken = []

    def read(name):
        p = os.path.join(o.share, name)
        return open(p, encoding="utf8", errors="replace").read() if os.path.exists(p) else None

    if o.qemu_rc != "0":
        broken.append(f"qemu exited with {o.qemu_rc} (124: timed out)")
    status = read("status")
    if status is None:
        broken.append("no status file came back from the VM")
    elif status.strip() != "errors=0":
        broken.append(f"the guest reported {status.strip()}")
    evidence = read("evidence.txt") or ""
    broken += [l[7:] for l in evidence.splitlines() if l.startswith("error: ")]
    klog = read("dmesg.txt")
    if klog is None:
        klog = read(os.path.relpath(o.console, o.share)) or ""
    hits = [l for l in klog.splitlines() if any(b in l for b in BAD) and "command line" not in l.lower()]
    if hits:
        broken.append("kernel log not clean:\n    " + "\n    ".join(hits[:40]))

    configs = o.configs.split()
    rounds = int(o.rounds)
    runs = {}    # (config, workload) -> [rate, ...]
    byround = {} # (config, workload, round) -> rate
    made = {}    # config -> [connections made, ...]
    synre = {}   # config -> SYNs sent again during its storms
    for line in (read("results.txt") or "").splitlines():
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        runs.setdefault((kv["config"], kv["workload"]), []).append(float(kv["rate"]))
        byround[(kv["config"], kv["workload"], kv["round"])] = float(kv["rate"])
        if kv["workload"] == "storm":
            made.setdefault(kv["config"], []).append(int(kv["made"]))
            if "synretrans" in kv:
                synre[kv["config"]] = synre.get(kv["config"], 0) + int(kv["synretrans"])
    for c in configs:
        for w, _ in WORKLOADS:
            got = len(runs.get((c, w), []))
            if got != rounds:
                broken.append(f"{c} {w}: {got} of {rounds} runs have a result")

    med = {k: statistics.median(v) for k, v in runs.items() if v}

    # Each round's throughput of c over that of base, round by round.
    def per_round(c, w, base="none"):
        return [byround[(c, w, r)] / byround[(base, w, r)] for r in map(str, range(1, rounds + 1))
                if (c, w, r) in byround and byround.get((base, w, r))]

    # A round's ratio compares runs minutes apart in the same boot; the
    # median over rounds shrugs off the host's bursts of load.
    def ratio(c, w):
        rs = per_round(c, w)
        return statistics.median(rs) if rs else None

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"{'Full' if o.form == 'full' else 'Short'} form, {date}: Debian kernel {o.kernel} in QEMU "
             f"(TCG, {o.clock}), vordr at {o.commit}; storm {int(o.conns):,} connections "
             f"({o.par} clients), UDP flood {int(o.dgrams):,} datagrams of {o.size} B, "
             f"{rounds} interleaved rounds. Throughput: median [min-max] of the rounds; "
             f"ratio: median of each round's ratio to the no-firewall run of that round.", "",
             "| configuration | " + " | ".join(f"{t} | ratio" for _, t in WORKLOADS) + " |",
             "|---|" + "---:|---:|" * len(WORKLOADS)]
    for c in configs:
        cells = []
        for w, _ in WORKLOADS:
            v = runs.get((c, w))
            if not v:
                cells += ["-", "-"]
                continue
            cells.append(f"{med[(c, w)]:,.0f} [{min(v):,.0f}-{max(v):,.0f}]")
            r = ratio(c, w)
            cells.append(f"{r:.3f}" if r is not None else "-")
        lines.append(f"| {config_name(c)} | " + " | ".join(cells) + " |")

    if "osnitch" in made:
        lines += ["", f"OpenSnitch's runs are cut after {o.osnitch_secs} s: its storms made "
                  f"{min(made['osnitch']):,}-{max(made['osnitch']):,} connections."]
    restarts = [l for l in evidence.splitlines() if " restart: opensnitchd " in l]
    if restarts:
        lines += ["", f"opensnitchd was started again {len(restarts)} time(s) before it set up its queue: " +
                  "; ".join(l.split(" restart: ", 1)[1] for l in restarts) + "."]

    if synre:
        lines += ["", "SYNs sent again (TCPSynRetrans) during the storms, all rounds: " +
                  ", ".join(f"{config_name(c)} {synre.get(c, 0)}" for c in configs) + "."]

    if "v10000" in configs and "v0" in configs:
        per = []
        for w, _ in WORKLOADS:
            rs = per_round("v10000", w, "v0")
            if rs:
                per.append(f"{w} " + ", ".join(f"{x:.3f}" for x in rs))
        if per:
            lines += ["", "10,000 rules over 0 rules, round by round: " + "; ".join(per) + "."]

    qual = [c for c in configs if re.fullmatch(r"vq\d+", c)]
    if qual and "v100" in configs:
        per = []
        for w, _ in WORKLOADS:
            rs = per_round(qual[0], w, "v100")
            if rs:
                per.append(f"{w} " + ", ".join(f"{x:.3f}" for x in rs))
        if per:
            lines += ["", f"{config_name(qual[0])} over 100 unqualified rules, round by round: " + "; ".join(per) + "."]

    targets = []
    if "v10000" in configs and "v0" in configs:
        s, u, s0, u0 = (ratio("v10000", "storm"), ratio("v10000", "udp"),
                        ratio("v0", "storm"), ratio("v0", "udp"))
        if None not in (s, u, s0, u0):
            targets = [("storm ratio with 10,000 rules >= 0.90", s >= 0.90, f"{s:.3f}"),
                       ("UDP flood ratio with 10,000 rules >= 0.97", u >= 0.97, f"{u:.3f}"),
                       ("storm: 10,000-rule ratio within 3% of the 0-rule ratio",
                        abs(s / s0 - 1) <= 0.03, f"{s:.3f} vs {s0:.3f}"),
                       ("UDP: 10,000-rule ratio within 3% of the 0-rule ratio",
                        abs(u / u0 - 1) <= 0.03, f"{u:.3f} vs {u0:.3f}")]
    if targets:
        lines += ["", "Targets:", ""]
        lines += [f"- {'met' if ok else 'MISSED'}: {t} ({v})" for t, ok, v in targets]
    if broken:
        lines += ["", "BROKEN RUN:", ""] + [f"- {b}" for b in broken]

    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(o.out), exist_ok=True)
    with open(o.out, "w", encoding="utf8") as f:
        f.write(text)
    print("===== bench results (also in %s) =====" % o.out)
    print(text, end="")
    if broken:
        return 1
    if o.form == "full" and any(not ok for _, ok, _ in targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
