#!/usr/bin/env bash
# Runs a command against a real single-node cluster that lives in namespaces of its own, then tears
# it down and checks that nothing is left behind.
#
#   cluster.sh run [--keep-logs DIR] -- <command...>
#   cluster.sh preflight     exit 0 when this machine can run the node, else print why and exit 3
#
# 1. preflight: root, and unshare of mount+network+PID namespaces (else one line and exit 3);
# 2. node-deps.sh (binaries, cached) and image.sh (the project's image and pause, OCI archives);
# 3. the node: node-inner.sh as PID 1 of `unshare --mount --net --pid --fork --kill-child`, state
#    in a fresh directory $DC_E2E_ROOT under ${TMPDIR:-/tmp}; cgroups under /<id> of each v1 hierarchy;
# 4. <command> runs in the node's NETWORK namespace only (nsenter --net): every connection it makes
#    to the apiserver (https://10.77.0.1), a pod or a Service starts there, and the host has no route
#    to those ranges. Its environment: KUBECONFIG, DC_E2E_ROOT, DC_E2E_BIN (kubectl, helm),
#    DC_E2E_IMAGE, DC_E2E_NETNS (the namespace's inode, checked by test/e2e/support);
# 5. teardown, also on Ctrl-C, on a crash of <command> and on the end of this script: the PID
#    namespace's init is killed, which kills every process of the cluster (containers included);
#    the mount and network namespaces vanish with their last process; then the cgroups and the
#    state directory are removed. If this script itself is SIGKILLed, the parent-death signal still
#    kills the cluster, and the next run removes the stale cgroups and directories;
# 6. the leftover check (test/e2e/leftovers.after.ts) runs on the host against a snapshot taken
#    before step 3.
# Exit status: the command's, or the leftover check's when the command passed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
log() { echo "[e2e] $*" >&2; }
die() { echo "[e2e] error: $*" >&2; exit 1; }

# --- 1. preflight ---------------------------------------------------------------------------------
preflight() {
  [[ "$(id -u)" == 0 ]] || { echo "needs root (uid $(id -u))"; return 1; }
  unshare --mount --net --pid --fork true 2>/dev/null || { echo "unshare --mount --net --pid fails here"; return 1; }
  [[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || { echo "no cgroup filesystem at /sys/fs/cgroup"; return 1; }
}
if [[ "${1:-}" == preflight ]]; then
  why="$(preflight)" && exit 0
  echo "$why"; exit 3
fi

keep_logs="" snap=""
[[ "${1:-}" == run ]] || die "usage: cluster.sh run [--keep-logs DIR] -- <command...> | cluster.sh preflight"
shift
while [[ $# -gt 0 && "$1" != -- ]]; do
  case "$1" in --keep-logs) keep_logs="$2"; shift 2 ;; *) die "unknown option $1" ;; esac
done
[[ "${1:-}" == -- ]] && shift
[[ $# -gt 0 ]] || die "no command given"

if ! why="$(preflight)"; then
  echo "[e2e] this machine cannot run the real node: $why (run with E2E=skip to skip it)" >&2
  exit 3
fi

# --- stale leftovers of a run that was SIGKILLed ----------------------------------------------------
for d in /sys/fs/cgroup/*/dc-e2e-*; do
  [[ -d "$d" ]] || continue
  owner="${d##*/dc-e2e-}"
  kill -0 "$owner" 2>/dev/null && continue
  log "removing stale cgroup $d"; find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
for d in "${TMPDIR:-/tmp}"/dc-e2e.* "${TMPDIR:-/tmp}"/dc-e2e-snapshot.*; do
  [[ -d "$d" && -f "$d/owner" ]] || continue
  kill -0 "$(cat "$d/owner")" 2>/dev/null && continue
  log "removing stale state directory $d"; rm -rf "$d"
done

# --- teardown, set up before anything is made ------------------------------------------------------
root="" cgroup_name="dc-e2e-$$" pidns=""
unshare_pid=""
# Stops the node and removes what it made; safe to call twice.
cleanup() {
  local t0; t0=$(date +%s%N)
  if [[ -n "$unshare_pid" ]]; then
    log "teardown"
    kill -KILL "$unshare_pid" 2>/dev/null || true   # --kill-child: its child, PID 1 of the node, dies too
    wait "$unshare_pid" 2>/dev/null || true
    unshare_pid=""
    # PID 1's death kills the rest of the PID namespace; wait until none of it is left.
    for _ in $(seq 1 100); do [[ -z "$(node_pids)" ]] && break; sleep 0.1; done
  fi
  if [[ -n "$keep_logs" && -d "$root/logs" ]]; then rm -rf "$keep_logs"; mkdir -p "$keep_logs"; cp -r "$root/logs/." "$root/node.log" "$keep_logs/" 2>/dev/null || true; cp -r "$root/pod-logs" "$keep_logs/" 2>/dev/null || true; fi
  local h
  for h in /sys/fs/cgroup/*; do
    if [[ -d "$h/$cgroup_name" ]]; then find "$h/$cgroup_name" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  [[ -n "$root" ]] && rm -rf "$root"
  log "torn down in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  return 0
}
# The leftover check, after every teardown (a passed run, a failed one, Ctrl-C).
check_leftovers() {
  [[ -n "$snap" && -f "$snap/before.json" ]] || return 0
  DC_E2E_BEFORE="$snap/before.json" DC_E2E_ROOT="$root" DC_E2E_CGROUP="$cgroup_name" DC_E2E_NODE_PIDNS="${pidns:-none}" \
    node --test --test-reporter=spec "$repo/dist/test/e2e/leftovers.after.js"
}
on_exit() {
  local rc=$? left=0
  trap - EXIT INT TERM
  cleanup
  check_leftovers || left=$?
  rm -rf "$snap"
  (( rc != 0 )) && exit "$rc"
  exit "$left"
}
# The processes of the node: those in its PID namespace.
node_pids() {
  [[ -n "${pidns:-}" ]] || return 0
  local inode="${pidns//[^0-9]/}"
  ps -e -o pid=,pidns= | awk -v ns="$inode" '$2 == ns { print $1 }'
}
trap on_exit EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --- 2. binaries and images -----------------------------------------------------------------------
t_start=$(date +%s%N)
bin="$(bash "$here/node-deps.sh" --print-dir | tail -1)"
root="$(mktemp -d "${TMPDIR:-/tmp}/dc-e2e.XXXXXX")"
echo $$ >"$root/owner"
bash "$here/image.sh" "$bin" "$root/images" >"$root/images.txt"
grep pause "$root/images.txt" | awk '{print $2}' >"$root/pause.ref"
image="$(grep -v pause "$root/images.txt" | awk '{print $2}')"

# --- snapshot for the leftover check --------------------------------------------------------------
snap="$(mktemp -d "${TMPDIR:-/tmp}/dc-e2e-snapshot.XXXXXX")"
echo $$ >"$snap/owner"
node "$repo/dist/test/e2e/support/host-state.js" >"$snap/before.json"

# --- 3. the node ----------------------------------------------------------------------------------
for h in /sys/fs/cgroup/*; do
  [[ -d "$h" && ! -L "$h" && -f "$h/cgroup.procs" ]] || continue
  mkdir -p "$h/$cgroup_name"
  if [[ -f "$h/cpuset.cpus" ]]; then
    cat "$h/cpuset.cpus" >"$h/$cgroup_name/cpuset.cpus"; cat "$h/cpuset.mems" >"$h/$cgroup_name/cpuset.mems"
  fi
done

setpriv --pdeathsig KILL -- unshare --mount --net --pid --fork --mount-proc --kill-child=KILL -- \
  bash "$here/node-inner.sh" "$root" "$bin" "$cgroup_name" >"$root/node.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 1 50); do
  nspid="$(cat "/proc/$unshare_pid/task/$unshare_pid/children" 2>/dev/null | awk '{print $1}')"
  [[ -n "$nspid" ]] && break; sleep 0.1
done
[[ -n "${nspid:-}" ]] || die "the node's PID 1 did not start: $(cat "$root/node.log")"
pidns="$(readlink "/proc/$nspid/ns/pid")"
netns="/proc/$nspid/ns/net"
netns_inode="$(stat -L -c %i "$netns")"
in_ns() { nsenter --net="$netns" -- "$@"; }
kubectl=("$bin/kubectl" --kubeconfig "$root/kubeconfig")

log "waiting for the node (state in $root, log $root/node.log)"
# The state directory goes at teardown: point at the copy of the logs when there is one.
logs_hint="${keep_logs:-$root/logs, removed at teardown: add --keep-logs DIR to keep them}"
deadline=$(( $(date +%s) + 180 ))
until [[ -f "$root/kubeconfig" ]] && in_ns "${kubectl[@]}" wait --for=condition=Ready node/dc-e2e-node --timeout=2s >/dev/null 2>&1; do
  kill -0 "$unshare_pid" 2>/dev/null || die "the node died (logs: $logs_hint): $(tail -20 "$root/node.log")"
  (( $(date +%s) < deadline )) || die "the node was not Ready in 180 s (logs: $logs_hint): $(tail -5 "$root/logs/kubelet.log" 2>/dev/null)"
  sleep 1
done
log "node Ready $(( ($(date +%s%N) - t_start) / 1000000 )) ms after start (binaries and image included)"

# --- 4. the command -------------------------------------------------------------------------------
set +e
KUBECONFIG="$root/kubeconfig" DC_E2E_ROOT="$root" DC_E2E_BIN="$bin" DC_E2E_IMAGE="$image" \
  DC_E2E_NETNS="$netns_inode" DC_E2E_NODE_PIDNS="$pidns" in_ns "$@"
rc=$?
set -e
log "command exited $rc"

# --- 5. teardown, 6. leftover check (on_exit) ----------------------------------------------------
exit "$rc"
