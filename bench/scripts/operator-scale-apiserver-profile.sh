#!/usr/bin/env bash
# One bench/operator-scale run with a CPU profile of its private kube-apiserver, taken while the
# operator issues: SECONDS of /debug/pprof/profile starting DELAY s after the operator leads, plus
# the apiserver's request counts just before and after the profile and its watch metrics.
#
#   bash bench/scripts/operator-scale-apiserver-profile.sh ROOT OUT COUNT [SECONDS=40] [DELAY=5] [bench args...]
#
# ROOT is a tree with dist/, crds/, charts/, scripts/ and node_modules (a build to measure); OUT
# receives report.json, stderr, cpu.pprof, requests-{before,after}.txt, watch-metrics.txt, loadavg.
# The harness starts kube-apiserver with --profiling=false (test/support/control-plane.ts); for this
# run only, DC_K8S_BIN_DIR points at a directory whose kube-apiserver is a wrapper adding
# --profiling=true after the harness's flags (the later flag wins). Nothing else changes.
# Read the profile with: node bench/scripts/apiserver-profile-partition.mjs OUT/cpu.pprof
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: $0 ROOT OUT COUNT [SECONDS] [DELAY] [bench args...]" >&2; exit 2; }
root=$(cd "$1" && pwd); out=$2; count=$3; seconds=${4:-40}; delay=${5:-5}
shift $(( $# < 5 ? $# : 5 ))
mkdir -p "$out"; out=$(cd "$out" && pwd)
bins=$(bash "$root/scripts/control-plane/ensure.sh" --print-dir 2>/dev/null | tail -1)
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
for b in etcd helm kubectl; do [[ -e "$bins/$b" ]] && ln -s "$bins/$b" "$wrap/$b"; done
printf '#!/bin/sh\nexec %q "$@" --profiling=true\n' "$bins/kube-apiserver" > "$wrap/kube-apiserver"
chmod +x "$wrap/kube-apiserver"

cat /proc/loadavg > "$out/loadavg"
cd "$root"
DC_K8S_BIN_DIR=$wrap node dist/bench/operator-scale.js --count "$count" "$@" > "$out/report.json" 2> "$out/stderr" &
bench=$!
for _ in $(seq 1 1200); do grep -q "operator leads" "$out/stderr" 2>/dev/null && break; kill -0 $bench 2>/dev/null || break; sleep 0.5; done
state="$root/.dev/bench-control-plane-$bench"
if [[ -f "$state/kubeconfig" ]]; then
  server=$(awk '/server:/ {print $2; exit}' "$state/kubeconfig")
  get() { curl -sS --max-time $((seconds + 30)) --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" "$server$1"; }
  sleep "$delay"
  get /metrics | grep -E '^apiserver_request_total' > "$out/requests-before.txt" || true
  get "/debug/pprof/profile?seconds=$seconds" > "$out/cpu.pprof"
  get /metrics | grep -E '^apiserver_request_total' > "$out/requests-after.txt" || true
  get /metrics | grep -E '^apiserver_longrunning_requests|^apiserver_registered_watchers|^apiserver_watch_events_(total|sizes_sum|sizes_count)' > "$out/watch-metrics.txt" || true
fi
wait $bench
cat /proc/loadavg >> "$out/loadavg"
