#!/usr/bin/env bash
# Start-up of the sidecar, several builds side by side (alternating, ROUNDS each): wall time from
# spawn to the first 200 from /readyz, the sidecar's CPU time until then, and its RSS once ready.
#
#   bash bench/scripts/sidecar-startup.sh [-r ROUNDS] LABEL=DIST ...
#
# Each start: `dc-operator sidecar` pinned to core 1, tls.key mounted (dev PKI), upstream port
# unused (readiness does not need it), polled every 10 ms from core 0. Loopback only; bounded.
set -euo pipefail
rounds=7
while getopts r: o; do case $o in r) rounds=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || { echo "usage: $0 [-r ROUNDS] LABEL=DIST..." >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/sidecar-bench-setup.sh"
tick=$(getconf CLK_TCK)
echo "sidecar start-up: $rounds alternating starts per build, node $("$node" --version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for spec in "$@"; do
    label=${spec%%=*}; dist=${spec#*=}
    t0=$(date +%s%N)
    taskset -c 1 "$node" "$dist/src/cli/dc-operator.js" sidecar --dc-dir "$work/leaf" --address 127.0.0.1 --port 18643 \
      --upstream 18999 --metrics-port 18600 --metrics-address 127.0.0.1 --log-level warn & pid=$!
    ready=
    for _ in $(seq 1000); do
      if taskset -c 0 curl -s -o /dev/null -f http://127.0.0.1:18600/readyz; then ready=$(date +%s%N); break; fi
      sleep 0.01
    done
    [[ -n $ready ]] || { echo "$label: not ready after 1000 polls" >&2; exit 1; }
    cpu=$(awk -v t="$tick" '{print ($14+$15)*1000/t}' /proc/$pid/stat)
    rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status)
    echo "$label $(( (ready - t0) / 1000000 )) $cpu $rss" >> "$work/results"
    echo "round $r $label ready_ms=$(( (ready - t0) / 1000000 )) cpu_ms=$cpu rss_MiB=$rss"
    kill -INT $pid; wait $pid 2>/dev/null || true
  done
done
echo "| build | spawn to ready, ms (median) | sidecar CPU until ready, ms (median) | RSS when ready, MiB (median) |"
echo "| --- | ---: | ---: | ---: |"
for spec in "$@"; do
  label=${spec%%=*}
  echo "| $label | $(awk -v l="$label" '$1==l {print $2}' "$work/results" | med) | $(awk -v l="$label" '$1==l {print $3}' "$work/results" | med) | $(awk -v l="$label" '$1==l {print $4}' "$work/results" | med) |"
done
