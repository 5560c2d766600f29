#!/usr/bin/env bash
# Starts a local etcd + kube-apiserver in the background (loopback, free ports, admin client
# certificate) and writes .dev/kubeconfig. The start logic is shared with the test harness:
# test/support/control-plane.ts, driven here through test/support/control-plane-cli.ts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
[[ -d node_modules ]] || npm ci --no-audit --no-fund
DC_K8S_BIN_DIR="$(bash scripts/control-plane/ensure.sh --print-dir)"
export DC_K8S_BIN_DIR
# Compile the starter only when its sources changed (only these files, so it works mid-edit).
js=dist/test/support/control-plane-cli.js
if [[ ! -f $js || ! -f dist/test/support/control-plane.js ]] ||
   [[ -n "$(find test/support scripts/control-plane -name 'control-plane*.ts' -newer $js -o -name tsconfig.json -newer $js)" ]]; then
  npx tsc -p scripts/control-plane/tsconfig.json
fi
exec node dist/test/support/control-plane-cli.js up
