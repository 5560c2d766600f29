#!/usr/bin/env bash
# Bulk through the sidecar, several builds side by side in one run (issue 19's rule: before and
# after measured together, interleaved): sidecar CPU per MiB and MB/s, download and upload.
#
#   bash bench/scripts/sidecar-bulk-ab.sh [-r ROUNDS] [-m MiB] LABEL=DIST[:ENGINE] ...
#
# DIST is a built dist/ directory (e.g. a copy of main's at /tmp/base-dist, and ./dist); ENGINE is
# `ours` (default) or `node` (--certificate-engine). Each LABEL gets its own `dc-operator sidecar`
# process pinned to core 1 (tls.key mounted, the same dev PKI, a Node HTTP app upstream on core
# 0), started once; every round moves MiB down and then up through each sidecar in turn (order
# reversed every other round) with curl --tlsv1.3 on core 0. Per transfer: CPU ms per MiB of the
# sidecar (/proc/PID/stat user+system) and MB/s; at the end the median per label and direction.
# WRITE_BYTES sets the size of the app's writes (default 65536; 512 for small writes: the download
# then reaches the sidecar as many small reads; the upload is curl's either way).
# DIRS limits the directions measured (default "dl ul"; DIRS=ul for an upload-only profile).
# Set PROF_DIR to run the sidecars under --cpu-prof (profiles written there on exit), TRACE_GC=1
# to count each sidecar's garbage collections during the measured rounds (--trace-gc).
# Loopback only; every loop is bounded.
set -euo pipefail
rounds=5; mib=128
while getopts r:m: o; do case $o in r) rounds=$OPTARG;; m) mib=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || { echo "usage: $0 [-r ROUNDS] [-m MiB] LABEL=DIST[:ENGINE]..." >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/sidecar-bench-setup.sh"
head -c $((mib << 20)) /dev/zero > "$work/body"
cat > "$work/app.mjs" <<'JS'
import { createServer } from 'node:http';
const chunk = Buffer.alloc(Number(process.argv[4]) || 64 * 1024, 0x41);
const size = Number(process.argv[3]) * 1024 * 1024;
createServer((req, res) => {
  if (req.method !== 'GET') { req.resume(); req.on('end', () => res.end('ok\n')); return; }
  let left = size;
  res.writeHead(200, { 'content-length': left });
  const pump = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump); } res.end(); };
  pump();
}).listen(Number(process.argv[2]), '127.0.0.1');
JS
app_port=18180
taskset -c 0 "$node" "$work/app.mjs" $app_port "$mib" "${WRITE_BYTES:-65536}" &
tick=$(getconf CLK_TCK)
labels=(); pids=(); ports=()
i=0
for spec in "$@"; do
  label=${spec%%=*}; rest=${spec#*=}; dist=${rest%%:*}; engine=ours
  [[ $rest == *:* ]] && engine=${rest##*:}
  port=$((18543 + i)); mport=$((18400 + i))
  prof=(); [[ -n ${PROF_DIR:-} ]] && prof=(--cpu-prof --cpu-prof-dir "$PROF_DIR" --cpu-prof-name "sidecar-$label.cpuprofile")
  [[ -n ${TRACE_GC:-} ]] && prof+=(--trace-gc)
  taskset -c 1 "$node" "${prof[@]}" "$dist/src/cli/dc-operator.js" sidecar --dc-dir "$work/leaf" \
    --address 127.0.0.1 --port "$port" --upstream $app_port --metrics-port $mport --metrics-address 127.0.0.1 \
    --certificate-engine "$engine" --log-level warn > "$work/out-$i" & pids+=($!)
  labels+=("$label"); ports+=("$port")
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$mport/readyz" && break; sleep 0.1; done
  i=$((i + 1))
done
transfer() { # dl|ul port
  local args=(-s --tlsv1.3 --cacert "$work/leaf/ca.crt" --resolve "localhost:$2:127.0.0.1" -o /dev/null)
  if [[ $1 == dl ]]; then taskset -c 0 curl "${args[@]}" "https://localhost:$2/dl"
  else taskset -c 0 curl "${args[@]}" --data-binary @"$work/body" "https://localhost:$2/ul"; fi
}
dirs=(${DIRS:-dl ul})
for k in "${!labels[@]}"; do for dir in "${dirs[@]}"; do transfer "$dir" "${ports[$k]}"; done; done # warm-up
for k in "${!labels[@]}"; do gc_before[$k]=$(wc -l < "$work/out-$k"); done
echo "sidecar bulk A/B: $rounds rounds x $mib MiB each way, app writes of ${WRITE_BYTES:-65536} bytes, node $("$node" --version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
results="$work/results"
for r in $(seq "$rounds"); do
  order=("${!labels[@]}"); (( r % 2 == 0 )) && order=($(printf '%s\n' "${order[@]}" | tac))
  for dir in "${dirs[@]}"; do
    for k in "${order[@]}"; do
      pid=${pids[$k]}
      a=$(awk '{print $14+$15}' /proc/$pid/stat); t0=$(date +%s%N)
      transfer $dir "${ports[$k]}"
      b=$(awk '{print $14+$15}' /proc/$pid/stat); t1=$(date +%s%N)
      cpu=$(echo "scale=3; ($b-$a)*1000/$tick/$mib" | bc); mbps=$(( (mib << 20) * 1000 / (t1 - t0) ))
      echo "round $r ${labels[$k]} $dir cpu_ms_per_MiB=$cpu MBps=$mbps"
      echo "${labels[$k]} $dir $cpu $mbps" >> "$results"
    done
  done
done
head="| build"; rule="| ---"
for dir in "${dirs[@]}"; do
  name=download; [[ $dir == ul ]] && name=upload
  head+=" | $name MB/s (median) | $name sidecar CPU ms/MiB"; rule+=" | ---: | ---:"
done
echo "$head |"; echo "$rule |"
for label in "${labels[@]}"; do
  row="| $label"
  for dir in "${dirs[@]}"; do
    row+=" | $(awk -v l="$label" -v d=$dir '$1==l && $2==d {print $4}' "$results" | med) | $(awk -v l="$label" -v d=$dir '$1==l && $2==d {print $3}' "$results" | med)"
  done
  echo "$row |"
done
if [[ -n ${TRACE_GC:-} ]]; then
  for k in "${!labels[@]}"; do
    tail -n +"$((gc_before[$k] + 1))" "$work/out-$k" | awk -v l="${labels[$k]}" '
      /Scavenge/ {s++} /Mark-Compact/ {m++}
      /Mark-Compact|Scavenge/ { if (match($0, /, [0-9.]+ \/ [0-9.]+ ms/)) { split(substr($0, RSTART + 2, RLENGTH), a, " "); ms += a[1] } }
      END { printf "%s GCs during the measured rounds: %d Scavenges, %d Mark-Compacts, %.0f ms of pauses\n", l, s, m, ms }'
  done
fi
for k in "${!pids[@]}"; do kill -INT "${pids[$k]}" 2>/dev/null || true; done
for k in "${!pids[@]}"; do wait "${pids[$k]}" 2>/dev/null || true; done
