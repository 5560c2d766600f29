# Sourced by the scripts of scripts/e2e/: the repository root, the pinned versions, and log/die
# with the caller's prefix ($log_prefix).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../control-plane/versions.env
source "$root/scripts/control-plane/versions.env"
log() { echo "[${log_prefix:-e2e}] $*" >&2; }
die() { echo "[${log_prefix:-e2e}] error: $*" >&2; exit 1; }
