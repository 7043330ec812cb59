#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run-fuzz.sh BIN SEEDS WORKDIR: a bounded libFuzzer run of one harness over
# its committed seed corpus. New inputs and crash artifacts go to WORKDIR
# (in the build tree), never into the committed corpus. The duration is
# $IVLINK_FUZZ_TIME seconds (default 20); $IVLINK_FUZZ_RUNS, if set, bounds
# the number of executions instead.
set -euo pipefail
bin=$1 seeds=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
limit=(-max_total_time="${IVLINK_FUZZ_TIME:-20}")
if [ -n "${IVLINK_FUZZ_RUNS:-}" ]; then
  limit=(-runs="$IVLINK_FUZZ_RUNS")
fi
exec "$bin" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work" "$seeds"
