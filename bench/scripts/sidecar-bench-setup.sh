# Sourced by the sidecar bench scripts: sets `root` (this checkout), `node` ($NODE or node on
# PATH), `work` (a temporary directory removed on exit, background jobs killed) with a dev PKI
# in $work/ca and a leaf for localhost in $work/leaf, and `med` (median of numbers on stdin).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
node="${NODE:-node}"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$node" "$root/dist/src/cli/dcctl.js" ca create --out "$work/ca" >/dev/null
"$node" "$root/dist/src/cli/dcctl.js" cert create --ca-dir "$work/ca" --out "$work/leaf" --dns localhost >/dev/null
med() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
