#!/usr/bin/env bash
# Makes everything the real node of `make e2e` runs available, cached and pinned in
# scripts/control-plane/versions.env:
#   - kube-apiserver, etcd, helm, kubelet, kube-controller-manager, kube-scheduler, kubectl
#     (scripts/control-plane/ensure.sh with DC_K8S_NODE=1, built through the Go module proxy);
#   - containerd $CONTAINERD_VERSION (+ containerd-shim-runc-v2, ctr), built through the Go module
#     proxy from inside its downloaded module directory (`go install ...@v2` refuses: its go.mod has
#     `exclude` lines);
#   - CoreDNS $COREDNS_VERSION, the node's cluster DNS (its kubernetes plugin reads the apiserver),
#     built the same way from inside its downloaded module directory;
#   - the pause binary, build/pause/linux/pause.c of the Kubernetes module compiled statically;
#   - Debian's runc, containernetworking-plugins, mmdebstrap, umoci (scripts/system-deps.sh).
# Everything lands in ${XDG_CACHE_HOME:-$HOME/.cache}/dc-operator/k8s/<k8s-version>/ beside the
# control plane; binaries are moved in atomically.
#
# Usage: node-deps.sh              ensure, progress on stderr
#        node-deps.sh --print-dir  ensure, then print the directory holding the binaries
set -euo pipefail
log_prefix=e2e-node
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DC_E2E_SYSTEM_DEPS=1 bash "$root/scripts/system-deps.sh"
dir="$(DC_K8S_NODE=1 bash "$root/scripts/control-plane/ensure.sh" --print-dir | tail -1)"
[[ -d "$dir" ]] || die "ensure.sh gave no directory"

install_bin() { chmod +x "$1"; mv -f "$1" "$dir/.$2.tmp.$$"; mv -f "$dir/.$2.tmp.$$" "$dir/$2"; }

containerd_ok() {
  local out
  out="$("$dir/containerd" --version 2>/dev/null)" || return 1
  [[ "$out" == *" $CONTAINERD_VERSION "* || "$out" == *" $CONTAINERD_VERSION" ]] &&
    [[ -x "$dir/containerd-shim-runc-v2" && -x "$dir/ctr" ]]
}
if ! containerd_ok; then
  command -v go >/dev/null || die "Go is needed to build containerd $CONTAINERD_VERSION"
  t0=$(date +%s)
  log "building containerd $CONTAINERD_VERSION from source (a few minutes on 2 cores)"
  info="$(cd /tmp && GOFLAGS= go mod download -json "github.com/containerd/containerd/v2@$CONTAINERD_VERSION")"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
  [[ -d "$moddir" ]] || die "go mod download gave no directory for containerd $CONTAINERD_VERSION"
  out="$dir/build/containerd"; mkdir -p "$out"
  # No btrfs/devmapper snapshotters (they need C headers); the overlayfs and native ones remain.
  ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION -X github.com/containerd/containerd/v2/version.Revision=go-module-proxy"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    (cd "$moddir" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
      -ldflags "$ldflags" -o "$out/$cmd.out" "./cmd/$cmd") >&2
  done
  for cmd in containerd containerd-shim-runc-v2 ctr; do install_bin "$out/$cmd.out" "$cmd"; done
  containerd_ok || die "the containerd built does not report $CONTAINERD_VERSION"
  log "built containerd in $(( $(date +%s) - t0 ))s"
fi

coredns_ok() {
  local out
  out="$("$dir/coredns" -version 2>/dev/null)" || return 1
  [[ "$out" == *"CoreDNS-${COREDNS_VERSION#v}"* ]]
}
if ! coredns_ok; then
  command -v go >/dev/null || die "Go is needed to build CoreDNS $COREDNS_VERSION"
  t0=$(date +%s)
  log "building CoreDNS $COREDNS_VERSION from source (a few minutes on 2 cores)"
  info="$(cd /tmp && GOFLAGS= go mod download -json "github.com/coredns/coredns@$COREDNS_VERSION")"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
  [[ -d "$moddir" ]] || die "go mod download gave no directory for CoreDNS $COREDNS_VERSION"
  out="$dir/build/coredns"; mkdir -p "$out"
  # The module ships its generated plugin list (core/plugin/zplugin.go), so a plain build of the
  # main package is the stock CoreDNS with every in-tree plugin.
  (cd "$moddir" && CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod" go build -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=go-module-proxy" -o "$out/coredns.out" .) >&2
  install_bin "$out/coredns.out" coredns
  coredns_ok || die "the CoreDNS built does not report $COREDNS_VERSION"
  log "built CoreDNS in $(( $(date +%s) - t0 ))s"
fi

if ! [[ -x "$dir/pause" ]]; then
  src="$(cd /tmp && GOFLAGS= go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/build/pause/linux/pause.c"
  [[ -f "$src" ]] || die "no pause.c in the k8s.io/kubernetes@$K8S_VERSION module"
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION-dc-e2e" -o "$dir/.pause.out" "$src" || die "compiling $src failed (gcc with a static libc is needed)"
  install_bin "$dir/.pause.out" pause
  log "compiled pause from $src"
fi
log "node binaries ready in $dir"
[[ "${1:-}" == --print-dir ]] && echo "$dir"
exit 0
