#!/bin/sh
# Builds the interop suite's Go TLS client (scripts/interop/go-tls-client, standard library only)
# once per source version and prints the binary's path. Cached under
# ~/.cache/dc-operator/go-tls-client/<hash of the sources>/; rebuilt when the sources change.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$here/go-tls-client"
hash=$(cat "$src/go.mod" "$src"/*.go | sha256sum | cut -c1-16)
out="${HOME}/.cache/dc-operator/go-tls-client/$hash"
if [ ! -x "$out/go-tls-client" ]; then
  command -v go >/dev/null 2>&1 || { echo "ensure-go-client: Go is not installed (needed for the Go crypto/tls interop tests)" >&2; exit 1; }
  mkdir -p "$out"
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$out/go-tls-client.tmp" .)
  mv "$out/go-tls-client.tmp" "$out/go-tls-client"
fi
echo "$out/go-tls-client"
