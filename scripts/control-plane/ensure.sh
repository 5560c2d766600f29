#!/usr/bin/env bash
# Makes kube-apiserver, etcd and helm (and kubectl when the machine has none) available, the way
# controller-runtime's envtest finds its binaries. Lookup order:
#   1. $KUBEBUILDER_ASSETS, a directory holding kube-apiserver, etcd and helm;
#   2. the cache directory ${XDG_CACHE_HOME:-$HOME/.cache}/dc-operator/k8s/<k8s-version>/;
#   3. the official envtest release archive (and helm's release archive), failing fast offline;
#   4. a build from source with Go through the Go module proxy (10-20 minutes cold on 2 cores).
# Versions are pinned in versions.env. Binaries are installed atomically (build to a temporary
# name, then mv), so an interrupted build never leaves a half-written binary behind.
#
# Usage: ensure.sh              ensure, progress on stderr
#        ensure.sh --print-dir  ensure, then print the directory holding the binaries on stdout
# With DC_K8S_NODE=1 it also ensures what a real node needs (make e2e): kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler and kubectl, built from source the same way.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

print_dir=0
case "${1:-}" in
  --print-dir) print_dir=1 ;;
  "") ;;
  *) echo "usage: $0 [--print-dir]" >&2; exit 2 ;;
esac

log() { echo "[control-plane] $*" >&2; }
die() { echo "[control-plane] error: $*" >&2; exit 1; }

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/dc-operator/k8s"
cache_dir="$cache_root/$K8S_VERSION"
build_dir="$cache_dir/build"

k8s_plain="${K8S_VERSION#v}"        # 1.36.3
k8s_major="${k8s_plain%%.*}"        # 1
k8s_minor="${k8s_plain#*.}"; k8s_minor="${k8s_minor%%.*}"   # 36
etcd_plain="${ETCD_VERSION#v}"

os="$(go env GOOS 2>/dev/null || uname -s | tr '[:upper:]' '[:lower:]')"
arch="$(go env GOARCH 2>/dev/null || true)"
if [[ -z "$arch" ]]; then
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
fi

# --- version checks: a binary counts only if it runs and reports the pinned version ------------
# (Output is captured before matching: `cmd | grep -q` would fail under pipefail on SIGPIPE.)
reports() { # <binary> <expected line> <args...>
  local bin="$1" want="$2" out
  shift 2
  [[ -x "$bin" ]] || return 1
  out="$("$bin" "$@" 2>/dev/null)" || return 1
  grep -qxF -- "$want" <<<"$out"
}
apiserver_ok() { reports "$1/kube-apiserver" "Kubernetes $K8S_VERSION" --version; }
etcd_ok()      { reports "$1/etcd" "etcd Version: $etcd_plain" --version; }
helm_ok()      { reports "$1/helm" "$HELM_VERSION" version --template '{{.Version}}'; }
kubectl_ok()   { [[ -x "$1/kubectl" ]] && "$1/kubectl" version --client >/dev/null 2>&1; }
# The node's binaries, wanted only with DC_K8S_NODE=1; kubectl then must be the pinned one.
node_cmds=(kubelet kube-controller-manager kube-scheduler kube-proxy)
k8s_cmd_ok()   { reports "$1/$2" "Kubernetes $K8S_VERSION" --version; }
kubectl_pinned_ok() { reports "$1/kubectl" "Client Version: $K8S_VERSION" version --client; }
node_ok() {
  [[ "${DC_K8S_NODE:-0}" == 1 ]] || return 0
  local c
  for c in "${node_cmds[@]}"; do k8s_cmd_ok "$1" "$c" || return 1; done
  kubectl_pinned_ok "$1"
}

# --- 1. $KUBEBUILDER_ASSETS --------------------------------------------------------------------
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  d="$KUBEBUILDER_ASSETS"
  if [[ -x "$d/kube-apiserver" && -x "$d/etcd" && -x "$d/helm" ]]; then
    apiserver_ok "$d" || log "warning: $d/kube-apiserver is not $K8S_VERSION ($("$d/kube-apiserver" --version 2>&1 | head -1))"
    log "using KUBEBUILDER_ASSETS=$d"
    if ! command -v kubectl >/dev/null 2>&1 && [[ ! -x "$d/kubectl" ]]; then
      log "warning: no kubectl on PATH nor in $d"
    fi
    [[ $print_dir == 1 ]] && echo "$d"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$d lacks one of kube-apiserver, etcd, helm; falling back to the cache"
fi

mkdir -p "$cache_dir"

need_kubectl=0
if ! command -v kubectl >/dev/null 2>&1; then need_kubectl=1; fi

# --- 2. cache ----------------------------------------------------------------------------------
all_cached() {
  apiserver_ok "$cache_dir" && etcd_ok "$cache_dir" && helm_ok "$cache_dir" &&
    { [[ $need_kubectl == 0 ]] || kubectl_ok "$cache_dir"; } && node_ok "$cache_dir"
}
if all_cached; then
  log "cached: $cache_dir (kube-apiserver $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)"
  [[ $print_dir == 1 ]] && echo "$cache_dir"
  exit 0
fi

# One build at a time per cache directory (make test and make control-plane-up may race).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache_dir/.lock"
  if ! flock -n 9; then
    log "another ensure.sh is building in $cache_dir; waiting for it"
    flock 9
  fi
  if all_cached; then
    log "cached: $cache_dir (built by the other run)"
    [[ $print_dir == 1 ]] && echo "$cache_dir"
    exit 0
  fi
fi

# Moves a freshly produced binary into the cache directory atomically.
install_bin() { # <src> <name>
  chmod +x "$1"
  mv -f "$1" "$cache_dir/.$2.tmp.$$"
  mv -f "$cache_dir/.$2.tmp.$$" "$cache_dir/$2"
}

# --- 3. official release archives (fail fast without network) ----------------------------------
fetch() { # <url> <out>
  curl -fsSL --connect-timeout 5 --max-time "${DC_DOWNLOAD_MAX_TIME:-120}" -o "$2" "$1"
}
if [[ "${DC_SKIP_DOWNLOAD:-0}" != 1 ]] && command -v curl >/dev/null 2>&1; then
  tmp="$(mktemp -d "$cache_dir/.download.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  if ! apiserver_ok "$cache_dir" || ! etcd_ok "$cache_dir" || { [[ $need_kubectl == 1 ]] && ! kubectl_ok "$cache_dir"; }; then
    url="https://github.com/kubernetes-sigs/controller-tools/releases/download/envtest-$K8S_VERSION/envtest-$K8S_VERSION-$os-$arch.tar.gz"
    log "trying the envtest release archive $url"
    if fetch "$url" "$tmp/envtest.tar.gz" && tar -xzf "$tmp/envtest.tar.gz" -C "$tmp"; then
      src="$(dirname "$(find "$tmp" -type f -name kube-apiserver | head -1)")"
      for b in kube-apiserver etcd kubectl; do
        [[ -f "$src/$b" ]] && install_bin "$src/$b" "$b"
      done
      # The archive's etcd may differ from our pin; keep it only when it matches.
      etcd_ok "$cache_dir" || rm -f "$cache_dir/etcd"
      log "envtest archive installed"
    else
      log "envtest archive not reachable; building from source instead"
    fi
  fi
  if ! helm_ok "$cache_dir"; then
    url="https://get.helm.sh/helm-$HELM_VERSION-$os-$arch.tar.gz"
    log "trying the helm release archive $url"
    if fetch "$url" "$tmp/helm.tar.gz" && tar -xzf "$tmp/helm.tar.gz" -C "$tmp"; then
      install_bin "$tmp/$os-$arch/helm" helm
      log "helm archive installed"
    else
      log "helm archive not reachable; building from source instead"
    fi
  fi
  rm -rf "$tmp"
  trap - EXIT
fi

# --- 4. build from source through the Go module proxy ------------------------------------------
command -v go >/dev/null 2>&1 || die "Go is needed to build the control-plane binaries (Go >= 1.21; it fetches the 1.26 toolchain itself) or set KUBEBUILDER_ASSETS"
# GOTOOLCHAIN stays as the user has it: with the default (auto) an older Go fetches the toolchain
# the modules ask for (go 1.26) through the same module proxy.
export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"
mkdir -p "$build_dir"

# Prints "<minutes>m<seconds>s" since $1.
since() { local s=$(( $(date +%s) - $1 )); echo "$((s / 60))m$((s % 60))s"; }

# Runs "$@" in directory $2 with its output on stderr, printing a line every minute so a long
# compile is visibly alive. Usage: in_dir_with_heartbeat <label> <dir> <cmd...>
in_dir_with_heartbeat() {
  local label="$1" dir="$2" t0 hb rc=0
  shift 2
  t0=$(date +%s)
  ( exec 9>&-; while sleep 60; do kill -0 $$ 2>/dev/null || exit 0; log "... still $label ($(since "$t0"))"; done ) &
  hb=$!
  (cd "$dir" && "$@" >&2) || rc=$?
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  return "$rc"
}

# Generates a module requiring k8s.io/kubernetes and replacing every staging module with its
# published version; the staging list comes from the go.mod the proxy serves for that release.
prepare_k8s_module() {
  local dir="$build_dir/kubernetes"
  [[ -f "$dir/.ready-$K8S_VERSION" ]] && return 0
  log "resolving k8s.io/kubernetes@$K8S_VERSION through the module proxy"
  rm -rf "$dir"; mkdir -p "$dir"
  local info gomod
  info="$(cd "$dir" && GOFLAGS= go mod download -json "k8s.io/kubernetes@$K8S_VERSION")"
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
  [[ -f "$gomod" ]] || die "go mod download did not give a go.mod for k8s.io/kubernetes@$K8S_VERSION"
  local go_line staging
  go_line="$(grep -m1 '^go ' "$gomod")"
  # replace k8s.io/foo => ./staging/src/k8s.io/foo  (inside or outside a replace ( ... ) block)
  staging="$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*$#\2#p' "$gomod" | sort -u)"
  [[ -n "$staging" ]] || die "no staging replace lines found in $gomod"
  {
    echo "// Generated by scripts/control-plane/ensure.sh: builds k8s.io/kubernetes binaries at $K8S_VERSION."
    echo "module dc-operator.local/k8s-build"
    echo
    echo "$go_line"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $K8S_STAGING_VERSION"; done <<<"$staging"
    echo ")"
  } >"$dir/go.mod"
  log "generated $dir/go.mod with $(wc -l <<<"$staging") staging replacements"
  # Record the release commit and date for the version ldflags.
  local infofile
  infofile="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
  sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$infofile" >"$dir/.build-date"
  sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p' <<<"$info" >"$dir/.git-commit"
  touch "$dir/.ready-$K8S_VERSION"
}

k8s_ldflags() {
  local dir="$build_dir/kubernetes" date commit flags=""
  date="$(cat "$dir/.build-date" 2>/dev/null || true)"; date="${date:-1970-01-01T00:00:00Z}"
  commit="$(cat "$dir/.git-commit" 2>/dev/null || true)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$k8s_major -X $pkg.gitMinor=$k8s_minor"
    flags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  echo "-s -w$flags"
}

build_k8s_cmd() { # <cmd name>
  local name="$1" dir="$build_dir/kubernetes" t0
  prepare_k8s_module
  t0=$(date +%s)
  log "building $name $K8S_VERSION from source (cold: 10-20 minutes on 2 cores; progress below)"
  in_dir_with_heartbeat "resolving $name dependencies" "$dir" go get "k8s.io/kubernetes/cmd/$name@$K8S_VERSION"
  in_dir_with_heartbeat "compiling $name" "$dir" go build -trimpath -ldflags "$(k8s_ldflags)" -o "$dir/$name.out" "k8s.io/kubernetes/cmd/$name"
  install_bin "$dir/$name.out" "$name"
  log "built $name in $(since "$t0")"
}

build_etcd() {
  local dir="$build_dir/etcd" t0
  t0=$(date +%s)
  log "building etcd $ETCD_VERSION from source"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
// Generated by scripts/control-plane/ensure.sh: builds etcd $ETCD_VERSION.
module dc-operator.local/etcd-build

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$dir/main.go" <<'EOF'
// Generated by scripts/control-plane/ensure.sh: the etcd server's own entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  in_dir_with_heartbeat "resolving etcd dependencies" "$dir" go mod tidy
  in_dir_with_heartbeat "compiling etcd" "$dir" go build -trimpath -ldflags "-s -w" -o "$dir/etcd.out" .
  install_bin "$dir/etcd.out" etcd
  log "built etcd in $(since "$t0")"
}

build_helm() {
  local dir="$build_dir/helm" t0 commit
  t0=$(date +%s)
  log "building helm $HELM_VERSION from source (Kubernetes $k8s_major.$k8s_minor capabilities)"
  mkdir -p "$dir/bin"
  commit="$(GOFLAGS= go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",\{0,1\}$/\1/p')"
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  flags+=" -X helm.sh/helm/v3/internal/version.gitCommit=$commit -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    flags+=" -X $pkg.k8sVersionMajor=$k8s_major -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  GOFLAGS= GOBIN="$dir/bin" in_dir_with_heartbeat "compiling helm" "$dir" go install -trimpath -ldflags "$flags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  install_bin "$dir/bin/helm" helm
  log "built helm in $(since "$t0")"
}

start=$(date +%s)
etcd_ok "$cache_dir"      || build_etcd
helm_ok "$cache_dir"      || build_helm
apiserver_ok "$cache_dir" || build_k8s_cmd kube-apiserver
if [[ $need_kubectl == 1 ]] && ! kubectl_ok "$cache_dir"; then build_k8s_cmd kubectl; fi
if [[ "${DC_K8S_NODE:-0}" == 1 ]]; then
  for c in "${node_cmds[@]}"; do k8s_cmd_ok "$cache_dir" "$c" || build_k8s_cmd "$c"; done
  kubectl_pinned_ok "$cache_dir" || build_k8s_cmd kubectl
fi

all_cached || die "binaries in $cache_dir still do not report the pinned versions"
log "ready in $(since "$start"): $cache_dir (kube-apiserver $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)"
[[ $print_dir == 1 ]] && echo "$cache_dir"
exit 0
