#!/usr/bin/env bash
# Bulk through the sidecar, per Node binary: sidecar CPU per MiB and the GCs it triggers.
# Used for the Node 20 vs Node 24 comparison in bench/results/tls.md (run G).
#
#   bash bench/scripts/sidecar-bulk-gc.sh [ROOT] NODE...
#
# ROOT is a checkout whose dist/ is built (default: this repository); its dist must run on every
# NODE given (an older commit without the runtime check, for Node 20). For each NODE and engine
# (ours, node) it starts `dc-operator sidecar` pinned to core 1 with --trace-gc, tls.key mounted,
# a Node HTTP app upstream and curl --tlsv1.3 on core 0, and moves 256 MiB down and up twice
# each. Prints one line per transfer: CPU ms per MiB (from /proc/PID/stat) and MB/s, then the
# Scavenge and Mark-Compact counts of that sidecar. Loopback only; every loop is bounded.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ $# -ge 1 && -d "$1" ]]; then root="$(cd "$1" && pwd)"; shift; fi
[[ $# -ge 1 ]] || { echo "usage: $0 [ROOT] NODE..." >&2; exit 2; }
helper_node="$(command -v node)"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$helper_node" "$root/dist/src/cli/dcctl.js" ca create --out "$work/ca" >/dev/null
"$helper_node" "$root/dist/src/cli/dcctl.js" cert create --ca-dir "$work/ca" --out "$work/leaf" --dns localhost >/dev/null
head -c $((256 << 20)) /dev/zero > "$work/256M"
cat > "$work/app.mjs" <<'JS'
import { createServer } from 'node:http';
const chunk = Buffer.alloc(64 * 1024, 0x41);
createServer((req, res) => {
  if (req.method !== 'GET') { req.resume(); req.on('end', () => res.end('ok\n')); return; }
  let left = 256 * 1024 * 1024;
  res.writeHead(200, { 'content-length': left });
  const pump = () => { while (left > 0) { left -= chunk.length; if (!res.write(chunk)) return void res.once('drain', pump); } res.end(); };
  pump();
}).listen(Number(process.argv[2]), '127.0.0.1');
JS
app_port=18080; tls_port=18443; metrics_port=18300
taskset -c 0 "$helper_node" "$work/app.mjs" $app_port & app=$!
tick=$(getconf CLK_TCK)
transfer() { # dl|ul
  local args=(-s --tlsv1.3 --cacert "$work/leaf/ca.crt" --resolve "localhost:$tls_port:127.0.0.1" -o /dev/null)
  if [[ $1 == dl ]]; then taskset -c 0 curl "${args[@]}" "https://localhost:$tls_port/dl"
  else taskset -c 0 curl "${args[@]}" --data-binary @"$work/256M" "https://localhost:$tls_port/ul"; fi
}
for node in "$@"; do
  for engine in ours node; do
    taskset -c 1 "$node" --trace-gc "$root/dist/src/cli/dc-operator.js" sidecar --dc-dir "$work/leaf" \
      --address 127.0.0.1 --port "$tls_port" --upstream $app_port --metrics-port $metrics_port --metrics-address 127.0.0.1 \
      --certificate-engine $engine --log-level warn > "$work/gc.log" & sc=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$metrics_port/readyz" && break; sleep 0.1; done
    transfer dl; transfer ul  # warm-up
    before=$(wc -l < "$work/gc.log")
    for dir in dl ul dl ul; do
      a=$(awk '{print $14+$15}' /proc/$sc/stat); t0=$(date +%s%N)
      transfer $dir
      b=$(awk '{print $14+$15}' /proc/$sc/stat); t1=$(date +%s%N)
      echo "$("$node" --version) $engine $dir cpu_ms_per_MiB=$(echo "scale=2; ($b-$a)*1000/$tick/256" | bc) MBps=$(( (256 << 20) * 1000 / (t1 - t0) ))"
    done
    gcs="$(tail -n +"$((before + 1))" "$work/gc.log")"
    echo "$("$node" --version) $engine gc: scavenges=$(grep -c Scavenge <<<"$gcs" || true) mark-compacts=$(grep -c Mark <<<"$gcs" || true)"
    kill $sc; wait $sc 2>/dev/null || true
  done
done
kill $app
