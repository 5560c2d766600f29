#!/usr/bin/env bash
# Builds the project's image without Docker, with the content the Dockerfile describes, and writes
# it as an OCI archive that `ctr -n k8s.io images import` loads:
#   base layer (cached): a Debian root filesystem from mmdebstrap (Debian's mirror) + Node from the
#     npm package node-linux-<arch> (scripts/node/ensure.sh's cache) in /usr/local/bin + /app with
#     package.json and the production node_modules (`npm ci --omit=dev`) + the dc-operator/dcctl links;
#   app layer (each build): dist/src, the compiled code (run `npm run build` first);
#   config: the Dockerfile's ENTRYPOINT, CMD, USER, WORKDIR and ENV (test/unit/e2e-image.test.ts
#     compares them).
# Also writes the pause image (the static pause binary of node-deps.sh) as a second archive.
#
# Usage: image.sh <bin-dir> <out-dir>   prints "<archive> <image ref>" lines on stdout
set -euo pipefail
log_prefix=e2e-image
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bin_dir="${1:?usage: image.sh <bin-dir> <out-dir>}"
out_dir="${2:?usage: image.sh <bin-dir> <out-dir>}"
mkdir -p "$out_dir"

[[ -f "$root/dist/src/cli/dc-operator.js" ]] || die "no dist/src/cli/dc-operator.js: run \`npm run build\` first"
[[ -f "$root/dist/src/tls/native/aead.node" ]] || die "no dist/src/tls/native/aead.node (the native AEAD): install gcc and run \`npm run build\`"
[[ -f "$root/dist/src/tls/native/handshake.node" ]] || die "no dist/src/tls/native/handshake.node (the handshake's native crypto): install gcc and run \`npm run build\`"
node_bin="$(bash "$root/scripts/node/ensure.sh" --print-bin-dir 2>/dev/null)/node"
node_version="$("$node_bin" --version)"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/charts/dc-operator/Chart.yaml")"
# The chart's default image, so manifests/install.yaml (pullPolicy IfNotPresent) finds it too.
image_ref="ghcr.io/dc-operator/dc-operator:$app_version"
commit="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"

cache="${XDG_CACHE_HOME:-$HOME/.cache}/dc-operator/e2e-image"
mkdir -p "$cache"
exec 8>"$cache/.lock"; flock 8

# --- base layout, keyed by everything that goes into it --------------------------------------
base_key="$( { echo "$IMAGE_DEBIAN_SUITE $node_version"; cat "$root/package-lock.json" "$root/package.json" "$0"; } | sha256sum | cut -c1-16)"
base="$cache/base-$base_key"
if [[ ! -f "$base/.ready" ]]; then
  t0=$(date +%s)
  rm -rf "$cache"/base-* "$cache/.work"
  work="$cache/.work"; mkdir -p "$work"
  rootfs_tar="$cache/rootfs-$IMAGE_DEBIAN_SUITE.tar"
  if [[ ! -f "$rootfs_tar" ]]; then
    log "mmdebstrap $IMAGE_DEBIAN_SUITE (minbase) from Debian's mirror"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates "$IMAGE_DEBIAN_SUITE" "$work/rootfs.tar" >&2
    mv "$work/rootfs.tar" "$rootfs_tar"
  fi
  log "production node_modules (npm ci --omit=dev)"
  mkdir -p "$work/deps"
  cp "$root/package.json" "$root/package-lock.json" "$work/deps/"
  (cd "$work/deps" && PATH="$(dirname "$node_bin"):$PATH" npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >&2)
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:base"
  umoci unpack --image "$work/oci:base" "$work/bundle" >&2
  tar -xf "$rootfs_tar" -C "$work/bundle/rootfs"
  install -m 0755 "$node_bin" "$work/bundle/rootfs/usr/local/bin/node"
  mkdir -p "$work/bundle/rootfs/app/dist"
  cp "$work/deps/package.json" "$work/bundle/rootfs/app/package.json"
  cp -a "$work/deps/node_modules" "$work/bundle/rootfs/app/node_modules"
  ln -s /app/dist/src/cli/dc-operator.js "$work/bundle/rootfs/usr/local/bin/dc-operator"
  ln -s /app/dist/src/cli/dcctl.js "$work/bundle/rootfs/usr/local/bin/dcctl"
  umoci repack --image "$work/oci:base" "$work/bundle" >&2
  rm -rf "$work/bundle" "$work/deps"
  mv "$work/oci" "$base"; touch "$base/.ready"; rm -rf "$work"
  log "base layer built in $(( $(date +%s) - t0 ))s ($base)"
fi

# --- app layer + config -----------------------------------------------------------------------
t0=$(date +%s)
oci="$out_dir/oci-app"; rm -rf "$oci" "$out_dir/app"
cp -a "$base" "$oci"
mkdir -p "$out_dir/app/dist"
cp -a "$root/dist/src" "$out_dir/app/dist/src"
chmod 0755 "$out_dir/app/dist/src/cli/dc-operator.js" "$out_dir/app/dist/src/cli/dcctl.js"
umoci insert --image "$oci:base" "$out_dir/app/dist" /app/dist >&2
# What the Dockerfile's runtime stage says (ENV PATH is the node image's). The compile cache the
# Dockerfile fills at build time is not made here: its directory is absent, and Node then compiles
# as without one (bench/results/sidecar-perf.md, section 8).
umoci config --image "$oci:base" --tag "$app_version" \
  --config.user 65532:65532 --config.workingdir /app \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env NODE_ENV=production --config.env "DC_OPERATOR_COMMIT=$commit" \
  --config.env NODE_COMPILE_CACHE=/app/.cache/node-compile \
  --config.entrypoint node --config.entrypoint dist/src/cli/dc-operator.js \
  --config.cmd --help >&2
umoci rm --image "$oci:base"
umoci gc --layout "$oci"
rm -f "$oci/.ready"
(cd "$oci" && tar -cf "$out_dir/dc-operator.oci.tar" .) && rm -rf "$oci"
rm -rf "$out_dir/app"
echo "$out_dir/dc-operator.oci.tar $image_ref"
log "image $image_ref in $(( $(date +%s) - t0 ))s"

# --- pause ------------------------------------------------------------------------------------
pause_ref="dc-e2e.local/pause:$K8S_VERSION"
p="$out_dir/oci-pause"; rm -rf "$p" "$out_dir/pause-bundle"
umoci init --layout "$p"
umoci new --image "$p:p"
umoci unpack --image "$p:p" "$out_dir/pause-bundle" >&2
install -m 0755 "$bin_dir/pause" "$out_dir/pause-bundle/rootfs/pause"
umoci repack --image "$p:p" "$out_dir/pause-bundle" >&2
umoci config --image "$p:p" --tag "$K8S_VERSION" --config.user 65535:65535 --config.entrypoint /pause >&2
umoci rm --image "$p:p"
(cd "$p" && tar -cf "$out_dir/pause.oci.tar" .) && rm -rf "$p"
rm -rf "$out_dir/pause-bundle"
echo "$out_dir/pause.oci.tar $pause_ref"
