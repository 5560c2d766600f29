#!/usr/bin/env bash
# `make demo` on the control plane alone (CLUSTER=local) and on the real node (the default where
# the machine allows it), alternating, ROUNDS times (default 3): wall clock of each `make`, with the
# load average before and after. Logs of each run in ${TMPDIR:-/tmp}/demo-timing-<mode>-<round>.log.
# For bench/results/e2e.md; run it from a checkout nobody edits meanwhile (make builds it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
for i in $(seq 1 "${1:-3}"); do
  for mode in local node; do
    arg=(); [[ $mode == local ]] && arg=(CLUSTER=local)
    l0=$(cut -d' ' -f1-3 /proc/loadavg); s=$(date +%s%N)
    rc=0; make demo "${arg[@]}" >"${TMPDIR:-/tmp}/demo-timing-$mode-$i.log" 2>&1 || rc=$?
    e=$(date +%s%N)
    echo "round $i mode $mode rc=$rc wall=$(( (e - s) / 1000000 ))ms load_before=$l0 load_after=$(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%T)"
  done
done
