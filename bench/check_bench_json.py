#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs `ivlink-ring-bench --quick --json` and checks that the object has
every key documented in ring-bench/ring_bench.h, each figure a positive number, each
array one positive entry per message size, and the peers comparison (issue 11):
every row in order, the optional ones built when the build found them
(--expect-built KEY,...), figures positive where they apply and null where not,
instruction counts when valgrind is on the PATH. The list is written out here on
purpose (not taken from the binary), so that a key dropped or renamed there
fails this test. No timing is asserted: the goals are only reported."""
import argparse
import json
import shutil
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
PEER_ROWS = "floor memcpy ivlink_msg ivlink_stream boost_spsc dpdk_rte_ring".split()
PEER_ALWAYS = {"floor", "memcpy", "ivlink_msg", "ivlink_stream"}


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive(v):
    return number(v) and v > 0


def check_peers(p, expect_built, sanitized, errs):
    """The peers object: rows in order; figures where they apply."""
    if not isinstance(p, dict):
        errs.append("peers: missing")
        return
    for k in ("rounds", "rtt_iters", "oneway_ms"):
        if not positive(p.get(k)):
            errs.append(f"peers.{k}: {p.get(k)!r}")
    if p.get("msg_bytes") != 64:
        errs.append(f"peers.msg_bytes: {p.get('msg_bytes')!r}")
    counted = shutil.which("valgrind") is not None and not sanitized
    if p.get("instructions") is not counted:
        errs.append(f"peers.instructions: {p.get('instructions')!r}, expected {counted}")
    if not counted and not (isinstance(p.get("instr_why"), str) and p["instr_why"]):
        errs.append("peers.instr_why: no reason for the missing counts")
    rows = p.get("rows") or []
    if [r.get("key") for r in rows] != PEER_ROWS:
        errs.append(f"peers.rows: keys {[r.get('key') for r in rows]!r}")
        return
    for r in rows:
        k = r["key"]
        built = r.get("built")
        if not isinstance(r.get("name"), str) or not isinstance(built, bool):
            errs.append(f"peers.{k}: name or built")
            continue
        if (k in PEER_ALWAYS or k in expect_built) and not built:
            errs.append(f"peers.{k}: not built: {r.get('why_not')!r}")
            continue
        if not built:
            if not (isinstance(r.get("why_not"), str) and r["why_not"]):
                errs.append(f"peers.{k}: not built and no reason")
            continue
        # What applies: no round trip for memcpy (one thread), no one-way
        # rate or instructions for the floor (not a queue).
        want = {"rtt_p50_ns": k != "memcpy", "rtt_vs_floor": k != "memcpy",
                "msgs_per_s": k != "floor", "instr_per_pair": k != "floor" and counted}
        for f, applies in want.items():
            v = r.get(f, "missing")
            if applies and not positive(v):
                errs.append(f"peers.{k}.{f}: {v!r}")
            if not applies and v is not None:
                errs.append(f"peers.{k}.{f}: {v!r}, expected null")
    if rows[0].get("rtt_vs_floor") != 1:
        errs.append(f"peers.floor.rtt_vs_floor: {rows[0].get('rtt_vs_floor')!r}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("--expect-built", default="",
                    help="comma-separated optional peer rows the build found")
    ap.add_argument("--sanitized", action="store_true",
                    help="an ASan/TSan build: valgrind cannot count instructions")
    a = ap.parse_args()
    expect_built = {k for k in a.expect_built.split(",") if k}
    out = subprocess.run([a.bench, "--quick", "--json", "--instructions"],
                         stdout=subprocess.PIPE, timeout=170)
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
    check_peers(d.get("peers"), expect_built, a.sanitized, errs)
    for e in errs:
        print("bad or missing key:", e)
    print(json.dumps({k: d.get(k) for k in ("ring_rtt_vs_floor", "tcp_vs_ring_rtt",
                      "gbps_64k_pct_of_memcpy", "msgs_per_s_64b")}))
    for r in (d.get("peers") or {}).get("rows") or []:
        print(json.dumps({k: r.get(k) for k in ("key", "rtt_vs_floor", "msgs_per_s",
                                                "instr_per_pair", "why_not")}))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
