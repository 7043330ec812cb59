#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Queries over `ivlinkctl status --json` documents (one or several,
concatenated, on stdin) for the shell tests.

  status_query.py stat-max PID FIELD
      The highest value, over the documents, of a shim counter (a field of
      the shim's peer entry or a fallback reason) of the peers of process
      PID (tests/vm/vmtest.sh vmt_stat_max). 0 without any.

  status_query.py wakes PID [--name SUBSTR] [--other-peer]
      Forked children's own doorbells (layout.h wake_to; apps_postgres,
      vm_shim_fork_server). For each document: the sessions whose consumer
      end is a peer of process PID (state up), only channels whose name
      contains SUBSTR if given; how many of them are rung on a moved
      doorbell (with --other-peer: on a peer that is not one of PID's); how
      many distinct (peer, vector) doorbells among those. Prints "SESSIONS
      MOVED DOORBELLS" of the document with the most, 0 0 0 without any.
"""
import argparse
import json
import sys


def documents(text):
    dec, i = json.JSONDecoder(), 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return
        d, i = dec.raw_decode(text, i)
        yield d


def stat(d, pid, field):
    ids = {p["id"] for p in d["peers"] if p.get("pid") == pid}
    return max(
        [p.get(field, p.get("reasons", {}).get(field, 0)) for p in d["shim"]["peers"] if p["id"] in ids],
        default=0,
    )


def wakes(d, pid, name, other_peer):
    me = [p["id"] for p in d["peers"] if p.get("pid") == pid and p["state"] == "up"]
    rows = []
    for c in d["channels"]:
        if not c["matched"] or (name and name not in c["name"]):
            continue
        if c["a"]["peer"] in me:
            rows.append(c["b_to_a"])
        elif c["b"] and c["b"]["peer"] in me:
            rows.append(c["a_to_b"])
    ws = [r["wakes"] for r in rows if r and r["wakes"]]
    moved = [w for w in ws if w["moved"] and not (other_peer and w["peer"] in me)]
    return len(rows), len(moved), len({(w["peer"], w["vector"]) for w in moved})


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stat-max")
    s.add_argument("pid", type=int)
    s.add_argument("field")
    w = sub.add_parser("wakes")
    w.add_argument("pid", type=int)
    w.add_argument("--name", default="")
    w.add_argument("--other-peer", action="store_true")
    a = ap.parse_args()
    docs = documents(sys.stdin.read())
    if a.cmd == "stat-max":
        print(max([stat(d, a.pid, a.field) for d in docs], default=0))
    else:
        print(*max([wakes(d, a.pid, a.name, a.other_peer) for d in docs], default=(0, 0, 0)))


if __name__ == "__main__":
    main()
