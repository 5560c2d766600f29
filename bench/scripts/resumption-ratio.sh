#!/usr/bin/env bash
# Resumed (TLS 1.3 PSK-DHE, x25519) against full (P-256 certificate, x25519) handshakes on real
# sockets: bench/tls-handshake.ts run in full and resumed mode alternately, `pairs` times, so each
# resumed run has a full run of the same minutes beside it (the ratio of a pair is resumed/full
# server CPU per handshake, per server: ours, node:tls, and BENCH_BASELINE_DIST when set).
# Run it under the bench lock, from the repository root after `npm run build`:
#   flock /work/bench.lock bench/scripts/resumption-ratio.sh [pairs=2] [seconds=3] [concurrency=16] [rounds=3] [warmup=2]
set -euo pipefail
pairs=${1:-2}
shift || true
args=("${@}")
[ ${#args[@]} -gt 0 ] || args=(3 16 3 2)
for i in $(seq 1 "$pairs"); do
  for mode in full resumed; do
    echo "## pair $i, $mode: start $(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    BENCH_KEY_TYPES=ecdsa-p256 BENCH_MODE=$mode node dist/bench/tls-handshake.js "${args[@]}"
  done
done
