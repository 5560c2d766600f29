#!/usr/bin/env bash
# The Dockerfile's compile-cache steps without a container engine, and what the image relies on
# (bench/results/sidecar-perf.md, section 8). Run as root after `npm run build`:
#
#   bash bench/scripts/compile-cache-image.sh [STARTS]
#
# 1. Lays out an /app like the runtime stage's under a work directory (package.json, node_modules,
#    dist/src, and a copy of node the non-root uid can run), then runs the Dockerfile's steps:
#    cache directory made and given to 65532, filled by 65532 running `--help` of both programs,
#    then owned by root and read-only.
# 2. Starts `dc-operator sidecar` as 65532 (setpriv) in a mount namespace where the whole work
#    directory is a read-only bind mount (the injected sidecar's readOnlyRootFilesystem), and
#    checks that it serves: a `dcctl probe` handshake with a delegated credential.
# 3. Counts, with Node's own compile-cache debug output, how many modules came from the cache, and
#    compares spawn-to-ready and CPU until ready over STARTS starts with and without the cache.
# 4. Spoils the cache three ways and checks each start still serves, with the entries refused:
#    every file corrupted, entries of another V8 flag set (what another Node/V8 version looks
#    like to V8), and a module changed after the cache was written.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
starts="${1:-5}"
uid=65532
[[ "$(id -u)" == 0 ]] || { echo "run as root (setpriv, chown, mount namespaces)" >&2; exit 2; }
[[ -f "$root/dist/src/cli/dc-operator.js" ]] || { echo "run npm run build first" >&2; exit 2; }
work="$(mktemp -d /tmp/dc-compile-cache-image.XXXXXX)"
chmod 0755 "$work"
trap "${KEEP_WORK:+:} rm -rf \"\$work\"" EXIT
app="$work/app"
cache="$app/.cache/node-compile"
node="$work/node"
port=18791 upstream=18792 metrics=18793

# --- the runtime stage's layout --------------------------------------------------------------
mkdir -p "$app/dist"
cp "$(command -v node)" "$node"
cp "$root/package.json" "$app/package.json"
cp -a "$root/node_modules" "$app/node_modules"
cp -a "$root/dist/src" "$app/dist/src"
bundle="$work/bundle"
(cd "$root" && node bench/scripts/compile-cache-bundle.mjs "$bundle" "$work/ca.crt") >/dev/null
chmod -R a+rX "$bundle"

# --- the Dockerfile's steps ----------------------------------------------------------------------
as_uid() { setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"; }
t0=$(date +%s%N)
mkdir -p "$cache" && chown "$uid:$uid" "$cache"
(cd "$app" && as_uid env NODE_ENV=production NODE_COMPILE_CACHE="$cache" "$node" dist/src/cli/dc-operator.js --help >/dev/null \
  && as_uid env NODE_ENV=production NODE_COMPILE_CACHE="$cache" "$node" dist/src/cli/dcctl.js --help >/dev/null)
chown -R root:root "$cache" && chmod -R a=rX "$cache"
echo "# build step: $(( ($(date +%s%N) - t0) / 1000000 )) ms; cache $(du -sh "$cache" | cut -f1), $(find "$cache" -type f | wc -l) files in $(ls "$cache")"

# --- one start: as 65532, the work directory read-only; prints "ready_ms cpu_ms accepted refused" --
# $1: extra env (space-separated NAME=VALUE), $2: a label for errors
start() {
  local extra="$1" log="$work/sidecar.log"
  local t0 pid ready cpu
  t0=$(date +%s%N)
  # shellcheck disable=SC2086
  unshare -m sh -c 'mount --bind -o ro "$0" "$0" && exec "$@"' "$work" \
    setpriv --reuid="$uid" --regid="$uid" --clear-groups \
    env -C "$app" NODE_ENV=production NODE_COMPILE_CACHE="$cache" NODE_DEBUG_NATIVE=COMPILE_CACHE $extra \
    "$node" dist/src/cli/dc-operator.js sidecar --dc-dir "$bundle" --address 127.0.0.1 --port "$port" \
    --upstream "$upstream" --metrics-address 127.0.0.1 --metrics-port "$metrics" --report-interval 0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 1000); do
    if curl -sf -o /dev/null "http://127.0.0.1:$metrics/readyz"; then break; fi
    kill -0 "$pid" 2>/dev/null || { echo "$2: the sidecar exited" >&2; tail -5 "$log" >&2; return 1; }
    sleep 0.01
  done
  ready=$(( ($(date +%s%N) - t0) / 1000000 ))
  cpu=$(awk '{ print ($14 + $15) * 10 }' "/proc/$pid/stat")
  # It serves: one handshake with a delegated credential (the probe fails otherwise).
  if ! node "$root/dist/src/cli/dcctl.js" probe "127.0.0.1:$port" --ca "$work/ca.crt" --servername localhost >"$work/probe.log" 2>&1; then
    echo "$2: the probe failed" >&2; cat "$work/probe.log" >&2; kill -INT "$pid"; wait "$pid" || true; return 1
  fi
  kill -INT "$pid"; wait "$pid" || { echo "$2: exit code $?" >&2; return 1; }
  # Node's debug output: one "reading cache from ... for MODULE..." line per module, ending in
  # "success" or why not (missing, unreadable, corrupted), then V8's verdict on what was read:
  # "was accepted" or "was rejected" (another V8 version or flag set). Accepted counts V8's yes;
  # refused counts both kinds of no.
  local accepted failed rejected
  accepted=$(grep -c ' was accepted,' "$log" || true)
  failed=$(grep '] reading cache from ' "$log" | grep -vc '\.\.\. success' || true)
  rejected=$(grep -c ' was rejected,' "$log" || true)
  echo "$ready $cpu $accepted $((failed + rejected))"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "# $starts starts each, alternating, as uid $uid with the work directory read-only; node $("$node" --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$work/with"; : >"$work/without"
for _ in $(seq 1 "$starts"); do
  start "" "with the cache" >>"$work/with"
  start "NODE_DISABLE_COMPILE_CACHE=1" "without the cache" >>"$work/without"
done
for kind in with without; do
  echo "$kind the cache: spawn to ready $(cut -d' ' -f1 "$work/$kind" | median) ms, CPU until ready $(cut -d' ' -f2 "$work/$kind" | median) ms, modules accepted from the cache $(cut -d' ' -f3 "$work/$kind" | median), refused $(cut -d' ' -f4 "$work/$kind" | median) (medians; each start served a DC handshake)"
done

# --- spoiled caches: each start must still serve, the spoiled entries refused ------------------
pristine="$work/pristine"
cp -a "$cache" "$pristine"
tag="$(ls "$cache")"
restore() { chmod -R u+w "$cache"; rm -rf "$cache"; cp -a "$pristine" "$cache"; }
spoil() { chmod -R u+w "$cache"; "$@"; chmod -R a=rX "$cache"; }

corrupt_all() { for f in "$cache/$tag"/*; do printf 'garbage' | dd of="$f" bs=1 seek=40 conv=notrunc status=none; done; }
spoil corrupt_all
echo "every cache file corrupted: $(start "" corrupted)  (spawn to ready ms, CPU until ready ms, modules accepted from the cache, refused)"
restore

# Entries written under another V8 flag set, put where this one looks: V8 refuses them on its own
# check (the same check that refuses another V8 version's code cache).
other_flags() {
  local other="$work/other-flags"
  mkdir -p "$other" && chown "$uid:$uid" "$other"
  (cd "$app" && as_uid env NODE_COMPILE_CACHE="$other" "$node" --max-lazy dist/src/cli/dc-operator.js --help >/dev/null)
  rm -f "$cache/$tag"/* && cp "$other"/*/* "$cache/$tag/"
}
spoil other_flags
echo "entries of another V8 flag set: $(start "" other-flags)"
restore

# A module changed after the cache was written (an image layer patched, a file edited).
chmod u+w "$app/dist/src/sidecar/main.js" && echo '// changed' >>"$app/dist/src/sidecar/main.js"
echo "dist/src/sidecar/main.js changed: $(start "" changed-file)"
