#!/usr/bin/env bash
# `make demo`: the real node where this machine allows it, else the local control plane; the first
# line says which, and why when it is not the real node.
#
#   demo.sh [auto|node|local|current]     (make demo CLUSTER=...; default auto)
#
# node: scripts/e2e/cluster.sh builds or finds the node's binaries and the image (cached), starts
#   kubelet, containerd and the control plane in namespaces of their own, and runs the demo
#   (dist/src/cli/demo.js --cluster node) in the node's network namespace, so every connection to
#   a pod or Service starts there; then tears it all down and checks nothing is left.
# local: etcd + kube-apiserver only, the operator, webhook, key server and sidecar as processes here
#   (the pod, its kubelet volume and the injection are simulated). current: the current kubeconfig.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
mode="${1:-auto}"
case "$mode" in
  auto)
    if why="$(bash "$here/cluster.sh" preflight)"; then
      mode=node
    else
      echo "[demo] mode: local control plane only, because this machine cannot run the real node: $why (the pod, its Secret volume and the injection are simulated)"
      mode=local
    fi ;;
  node|local|current) ;;
  *) echo "[demo] error: CLUSTER=$mode is not one of node, local, current (or empty: node where the machine allows it)" >&2; exit 2 ;;
esac
cd "$repo"
if [[ "$mode" == node ]]; then
  echo "[demo] mode: real node (root and namespaces available): kubelet, containerd and pods from the image built here (make demo CLUSTER=local: the control plane alone)"
  exec bash "$here/cluster.sh" run --keep-logs .dev/logs/demo-node -- node --enable-source-maps dist/src/cli/demo.js --cluster node
fi
exec node --enable-source-maps dist/src/cli/demo.js --cluster "$mode"
