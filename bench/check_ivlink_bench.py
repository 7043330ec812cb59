#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Smoke test of ivlink-bench: a --quick host run against a private ivlinkd
must exit 0 and write results.json, the three CSV files and the three PNG
plots, each with the fields documented in ivlink-bench --help (written out
here on purpose, so that a field dropped or renamed there fails this test).
No figure is judged beyond being a number: a shared CI machine must not fail
on a measurement, and the issue's goals are only reported.

Usage: check_ivlink_bench.py IVLINK-BENCH IVLINKD OUT-DIR
Exit 0 pass, 1 fail, 77 skipped (ivlinkd not built)."""
import csv
import json
import os
import shutil
import subprocess
import sys

LAT_COLS = ("mode size n min_ns p50_ns p90_ns p99_ns p999_ns max_ns avg_ns "
            "cli_cpu_ns_per_rtt srv_cpu_ns_per_rtt p50_speedup_vs_base").split()
CDF_COLS = "mode size quantile ns".split()
TPUT_COLS = ("mode size msgs bytes seconds msgs_per_s gbps snd_cpu_ns_per_msg "
             "rcv_cpu_ns_per_msg cpu_ns_per_msg snd_cpu_ns_per_byte rcv_cpu_ns_per_byte "
             "gbps_vs_base cpu_pct_less_than_base").split()
# Keys that must be numbers > 0 in every row of a run on this host.
LAT_POS = "size n min_ns p50_ns p90_ns p99_ns p999_ns max_ns avg_ns".split()
TPUT_POS = ("size msgs bytes seconds msgs_per_s gbps snd_cpu_ns_per_msg "
            "rcv_cpu_ns_per_msg cpu_ns_per_msg").split()
TOP = "tool schema meta modes skipped failed latency throughput goals files".split()
META = "cpu cpus host kernel date label iters duration_ms quick".split()
GOAL = "goal mode baseline target value met".split()
MODES = ["ivlink", "ivlink-spin", "ivlink-block", "tcp", "unix"]
LAT_SIZES = [64, 1024, 16384]
TPUT_SIZES = [64, 1024, 16384, 262144, 1048576]
PNGS = ["latency_cdf.png", "throughput.png", "cpu.png"]

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def main():
    bench, ivlinkd, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if not os.access(ivlinkd, os.X_OK):
        print("SKIP: ivlinkd not built: " + ivlinkd)
        return 77
    shutil.rmtree(out, ignore_errors=True)
    # Plots need gnuplot: install it when we may (as `make test` does).
    if shutil.which("gnuplot") is None:
        deps = os.path.join(os.path.dirname(__file__), "..", "scripts", "ivl-deps")
        subprocess.run([deps, "plot"], check=False)
    have_gnuplot = shutil.which("gnuplot") is not None
    # The shim's row too, when the shim is built next to the bench.
    run = os.path.join(os.path.dirname(bench), "..", "guest-lib", "preload", "ivlink-run")
    if os.access(run, os.X_OK):
        MODES.append("shim-tcp")
    cmd = [bench, "--quick", "--daemon", ivlinkd, "--modes", ",".join(MODES), "--out", out]
    if not have_gnuplot:
        cmd.append("--no-plot")
    print("running: " + " ".join(cmd))
    res = subprocess.run(cmd, stdout=subprocess.PIPE, timeout=240)
    text = res.stdout.decode(errors="replace")
    print(text)
    check(res.returncode == 0, "exit status 0 (got %d)" % res.returncode)
    check("Round-trip latency" in text and "Throughput" in text and "Goal" in text,
          "human table on stdout")

    with open(os.path.join(out, "results.json")) as f:
        j = json.load(f)
    for k in TOP:
        check(k in j, "results.json has %s" % k)
    check(j.get("tool") == "ivlink-bench" and j.get("schema") == 1, "tool and schema")
    for k in META:
        check(k in j.get("meta", {}), "meta has %s" % k)
    check(j.get("failed") == [], "no mode failed: %s" % j.get("failed"))
    check(sorted(j.get("modes", [])) == sorted(MODES), "every mode ran: %s" % j.get("modes"))
    for mode in MODES:
        for size in LAT_SIZES:
            rows = [r for r in j["latency"] if r["mode"] == mode and r["size"] == size]
            check(len(rows) == 1, "latency row %s %d" % (mode, size))
            for r in rows:
                for k in LAT_COLS + ["baseline", "cpu_pct_less_than_base"]:
                    check(k in r, "latency %s %d has %s" % (mode, size, k))
                for k in LAT_POS:
                    check(num(r.get(k)) and r[k] > 0, "latency %s %d %s > 0" % (mode, size, k))
                check(r["p50_ns"] <= r["p90_ns"] <= r["p99_ns"] <= r["p999_ns"] <= r["max_ns"],
                      "latency %s %d percentiles ordered" % (mode, size))
        for size in TPUT_SIZES:
            rows = [r for r in j["throughput"] if r["mode"] == mode and r["size"] == size]
            check(len(rows) == 1, "throughput row %s %d" % (mode, size))
            for r in rows:
                for k in TPUT_COLS + ["baseline"]:
                    check(k in r, "throughput %s %d has %s" % (mode, size, k))
                for k in TPUT_POS:
                    check(num(r.get(k)) and r[k] > 0,
                          "throughput %s %d %s > 0" % (mode, size, k))
    goals = j.get("goals", [])
    check(len(goals) >= 3, "a goal entry per native (and shim) mode")
    for g in goals:
        for k in GOAL:
            check(k in g, "goal has %s" % k)

    for name, cols in (("latency.csv", LAT_COLS), ("latency_cdf.csv", CDF_COLS),
                       ("throughput.csv", TPUT_COLS)):
        with open(os.path.join(out, name)) as f:
            rows = list(csv.reader(f))
        check(rows and rows[0] == cols, "%s header" % name)
        check(len(rows) > 1 and all(len(r) == len(cols) for r in rows[1:]),
              "%s rows have %d fields" % (name, len(cols)))
    for name in PNGS:
        p = os.path.join(out, name)
        if not have_gnuplot:
            print("note: no gnuplot, %s not checked" % name)
            continue
        ok = os.path.exists(p) and os.path.getsize(p) > 1000
        if ok:
            with open(p, "rb") as f:
                ok = f.read(8) == b"\x89PNG\r\n\x1a\n"
        check(ok, "%s is a PNG" % name)
        check(name in j.get("files", []), "results.json lists %s" % name)

    # The result lines re-read give the same report (what the VM bench uses).
    res2 = subprocess.run([bench, "--from", os.path.join(out, "results.ivb")],
                          stdout=subprocess.PIPE, timeout=30)
    check(res2.returncode == 0 and b"Round-trip latency" in res2.stdout,
          "--from results.ivb re-reports the run")
    print("%s: %d check(s) failed" % ("FAILED" if failures else "passed", len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
