#!/usr/bin/env bash
# Stops the control plane started by up.sh and removes .dev/control-plane and .dev/kubeconfig.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ ! -d .dev/control-plane ]]; then
  echo "[control-plane] not running"
  rm -f .dev/kubeconfig
  exit 0
fi
[[ -d node_modules ]] || npm ci --no-audit --no-fund
[[ -f dist/test/support/control-plane-cli.js ]] || npx tsc -p scripts/control-plane/tsconfig.json
exec node dist/test/support/control-plane-cli.js down
