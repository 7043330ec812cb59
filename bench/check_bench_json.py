#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs `ivlink-ring-bench --quick --json` and checks that the object has
every key documented in ring-bench/ring_bench.h, each figure a positive number, each
array one positive entry per message size. The list is written out here on
purpose (not taken from the binary), so that a key dropped or renamed there
fails this test. No timing is asserted: the goals are only reported."""
import json
import subprocess
import sys

FIGURES = """
iters slow_iters duration_ms ring_kib clock_overhead_ns
floor_rtt_ns floor_rtt_p99_ns floor_rtt_p999_ns floor_pause_rtt_ns
ring_rtt_p50_ns ring_rtt_p99_ns ring_rtt_p999_ns
ring_block_rtt_p50_ns ring_block_rtt_p99_ns ring_block_rtt_p999_ns
ring_block_kicks_per_rtt ring_lazy_rtt_p50_ns
tcp_rtt_p50_ns tcp_rtt_p99_ns tcp_rtt_p999_ns
tcp_1b_rtt_p50_ns tcp_1b_rtt_p99_ns tcp_1b_rtt_p999_ns
unix_rtt_p50_ns unix_rtt_p99_ns unix_rtt_p999_ns
unix_1b_rtt_p50_ns unix_1b_rtt_p99_ns unix_1b_rtt_p999_ns
msgs_per_s_64b gbps_64b gbps_64k memcpy_gbps_64k
ring_rtt_vs_floor tcp_vs_ring_rtt unix_vs_ring_rtt gbps_64k_pct_of_memcpy
xcopy_gbps_64k gbps_64k_pct_of_xcopy
schema
""".split()
ARRAYS = """sizes tput_msgs_per_s tput_gbps memcpy_gbps tput_pct_of_memcpy
tput_commits_per_msg""".split()
GOALS = "rtt_vs_floor tcp_vs_ring gbps_64k_pct_of_memcpy msgs_per_s_64b".split()


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def main():
    out = subprocess.run([sys.argv[1], "--quick", "--json"], stdout=subprocess.PIPE,
                         timeout=150)
    if out.returncode != 0:
        print(f"ivlink-ring-bench exited with {out.returncode}")
        return 1
    d = json.loads(out.stdout)
    errs = []
    if d.get("tool") != "ivlink-ring-bench":
        errs.append("tool")
    for k in ("quick", "pinned"):
        if not isinstance(d.get(k), bool):
            errs.append(f"{k}: missing or not a boolean")
    if not (isinstance(d.get("cpus"), list) and len(d["cpus"]) == 2):
        errs.append("cpus: missing or not a pair")
    for k in FIGURES:
        if not (number(d.get(k)) and d[k] > 0):
            errs.append(f"{k}: {d.get(k, 'missing')!r}")
    n = len(d.get("sizes") or [])
    if n < 8:
        errs.append(f"sizes: {n} entries")
    for k in ARRAYS:
        v = d.get(k)
        if not (isinstance(v, list) and len(v) == n and all(number(x) and x > 0 for x in v)):
            errs.append(f"{k}: {v!r}")
    if not (isinstance(d.get("tput_mode"), list) and len(d["tput_mode"]) == n and
            set(d["tput_mode"]) <= {"message", "stream"}):
        errs.append("tput_mode")
    goals = d.get("goals") or {}
    for k in GOALS:
        g = goals.get(k) or {}
        if not (number(g.get("target")) and number(g.get("value")) and
                isinstance(g.get("met"), bool)):
            errs.append(f"goals.{k}: {g!r}")
    for e in errs:
        print("bad or missing key:", e)
    print(json.dumps({k: d.get(k) for k in ("ring_rtt_vs_floor", "tcp_vs_ring_rtt",
                      "gbps_64k_pct_of_memcpy", "msgs_per_s_64b")}))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
