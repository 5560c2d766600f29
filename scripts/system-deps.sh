#!/usr/bin/env bash
# Installs the OS packages that the tests use as real TLS peers, only when they are missing.
# Needs root (CI runs as root); prints what it would need otherwise.
set -euo pipefail
need=()
command -v tstclnt >/dev/null 2>&1 || [ -x /usr/lib/nss/tstclnt ] || need+=(libnss3-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The C compiler of the native AEAD (scripts/build-native.mjs): the unit tests require the addon.
command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# The real node of `make e2e` (scripts/e2e/node-deps.sh sets DC_E2E_SYSTEM_DEPS=1).
if [ "${DC_E2E_SYSTEM_DEPS:-0}" = 1 ]; then
  command -v runc >/dev/null 2>&1 || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
  command -v umoci >/dev/null 2>&1 || need+=(umoci)
  command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
  # kube-proxy's iptables mode inside the node's network namespace (rules never reach the host's).
  command -v iptables-restore >/dev/null 2>&1 || need+=(iptables)
  command -v conntrack >/dev/null 2>&1 || need+=(conntrack)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${need[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: not root; install these packages yourself: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
