#!/usr/bin/env bash
# PID 1 of the real node's namespaces (started by scripts/e2e/cluster.sh through
#   unshare --mount --net --pid --fork --mount-proc --kill-child
# so that when it dies every process of the cluster dies with it). It prepares the mount and
# network namespaces, then runs containerd (importing the images in the background meanwhile),
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, CoreDNS, kube-proxy and kubelet,
# all with their state under $root, and waits.
#
# Isolation, which cluster.sh's leftover check verifies from the host:
#   - writes: everything under $root ($root/containerd on a tmpfs of this namespace). /run is a
#     fresh tmpfs and /var/lib, /var/log and /etc are overlays whose upper layers are in $root, so
#     a path some component hard-codes (containerd's /var/run/netns, runc's /run/runc, ...) lands
#     in $root as well;
#   - kernel settings kubelet insists on (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops)
#     are files of $root bind-mounted over /proc/sys inside this mount namespace only;
#   - network: the addresses exist only in this network namespace: the node 10.77.0.1 on a veth
#     pair, the `kubernetes` Service's ClusterIP 10.96.0.1 on lo (the apiserver listens on :443, so
#     pods reach it without kube-proxy), pods on the bridge CNI 10.244.0.0/24 without masquerade;
#   - Services: kube-proxy in iptables mode, so its rules live in this namespace's netfilter tables
#     only (the host's iptables-save and nft ruleset are compared before and after). It masquerades
#     all Service traffic: a pod reaching a Service whose endpoint is on the same bridge gets the
#     answer back through the node, with no br_netfilter needed;
#   - cluster DNS (cluster.local): CoreDNS as a process of this namespace on the node's address,
#     its kubernetes plugin reading the apiserver; the kube-dns Service (10.96.0.10, kubelet's
#     clusterDNS) has a hand-written EndpointSlice pointing at it, so pods reach it through
#     kube-proxy like any Service;
#   - cgroups: everything kubelet and runc create is under /<cgroup_name> of each v1 hierarchy,
#     which cluster.sh removes after the namespace is gone.
set -euo pipefail
root="$1" bin="$2" cgroup_name="$3"
log() { echo "[node $(date +%T)] $*"; }
trap 'log "stopping"; kill -TERM $(jobs -p) 2>/dev/null; sleep 2; exit 0' TERM INT

# --- mounts -----------------------------------------------------------------------------------
mount --make-rshared /   # a peer group of this namespace's own: kubelet's volumes propagate within it
mount -t tmpfs -o mode=0755 tmpfs /run
for d in /var/lib /var/log /etc; do
  n="${d//\//_}"; mkdir -p "$root/ovl/$n/upper" "$root/ovl/$n/work"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$root/ovl/$n/upper,workdir=$root/ovl/$n/work" "$d"
done
# containerd's content and snapshots (the image unpacked, the containers' layers) in memory: the
# import and teardown skip the disk, and the tmpfs vanishes with this namespace, so cluster.sh's
# teardown has only an empty directory left to remove. Bounded, so it cannot eat the machine's RAM.
mkdir -p "$root/containerd"
mount -t tmpfs -o size=3g,mode=0700 tmpfs "$root/containerd"
mkdir -p "$root/sysctl"
for kv in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
  k="${kv%%=*}"; f="$root/sysctl/${k//\//.}"
  echo "${kv#*=}" >"$f"; mount --bind "$f" "/proc/sys/$k"
done

# --- network ----------------------------------------------------------------------------------
ip link set lo up
ip link add e2e0 type veth peer name e2e1
ip addr add 10.77.0.1/24 dev e2e0
ip link set e2e0 up; ip link set e2e1 up
ip route add default dev e2e0
ip addr add 10.96.0.1/32 dev lo
log "mounts and network ready"

# --- PKI --------------------------------------------------------------------------------------
pki="$root/pki"; mkdir -p "$pki"; cd "$pki"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -subj /CN=dc-e2e-ca -days 2 -out ca.crt \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
leaf() { # name subject extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%b' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
leaf apiserver /CN=kube-apiserver "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:10.77.0.1,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
# One admin identity (system:masters) for the test client and the components: this is a test
# node, not a hardened cluster.
leaf admin /O=system:masters/CN=dc-e2e-admin "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
key sa.key; openssl pkey -in sa.key -pubout -out sa.pub
kc="$root/kubeconfig"
cat >"$kc.tmp" <<KC
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "https://10.77.0.1:443", certificate-authority: $pki/ca.crt}}]
users: [{name: admin, user: {client-certificate: $pki/admin.crt, client-key: $pki/admin.key}}]
contexts: [{name: e2e, context: {cluster: e2e, user: admin}}]
current-context: e2e
KC
cd "$root"
logs="$root/logs"; mkdir -p "$logs"

# --- containerd ---------------------------------------------------------------------------------
# Started first and in the background: it and the image import (unpacking the image's layers, the
# slowest part of the node's start) need nothing of the control plane, which starts meanwhile.
# kubelet, below, waits for it ($root/containerd.ready).
mkdir -p "$root/cni/net.d" "$root/containerd" "$root/run"
cat >"$root/cni/net.d/10-e2e.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "e2e", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$root/cni/ipam", "ranges": [[{"subnet": "10.244.0.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
CNI
cat >"$root/containerd.toml" <<TOML
version = 3
root = "$root/containerd/root"
state = "$root/containerd/state"
[grpc]
  address = "$root/run/containerd.sock"
[ttrpc]
  address = "$root/run/containerd.sock.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$(cat "$root/pause.ref")"
[plugins.'io.containerd.cri.v1.runtime']
  enable_selinux = false
  # root here lacks CAP_SYS_RESOURCE: never lower a container's oom_score_adj below ours.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$root/cni/net.d"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$(command -v runc)"
      SystemdCgroup = false
TOML
(
  PATH="$bin:$PATH" "$bin/containerd" --config "$root/containerd.toml" >"$logs/containerd.log" 2>&1 &
  for _ in $(seq 1 300); do "$bin/ctr" --address "$root/run/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
  while read -r archive ref; do
    "$bin/ctr" --address "$root/run/containerd.sock" -n k8s.io images import --base-name "${ref%:*}" "$archive" >>"$logs/images.log" 2>&1
  done <"$root/images.txt"
  "$bin/ctr" --address "$root/run/containerd.sock" -n k8s.io images ls -q | tr '\n' ' ' >"$root/containerd.ready.tmp"
  mv "$root/containerd.ready.tmp" "$root/containerd.ready"
) >>"$logs/containerd-setup.log" 2>&1 &
containerd_setup=$!

# --- control plane ----------------------------------------------------------------------------
"$bin/etcd" --data-dir "$root/etcd" --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --unsafe-no-fsync >"$logs/etcd.log" 2>&1 &
# kube-apiserver runs under this loop, which restarts it when it exits and when a test asks for a
# restart by creating $root/restart-apiserver (its PIDs are of this PID namespace). The loop is the
# apiserver's parent, so it reaps it (a zombie would look alive to kill -0).
( while true; do
    "$bin/kube-apiserver" --etcd-servers http://127.0.0.1:2379 --secure-port 443 --bind-address 0.0.0.0 \
      --advertise-address 10.77.0.1 --service-cluster-ip-range 10.96.0.0/16 \
      --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
      --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
      --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
      --service-account-signing-key-file "$pki/sa.key" --authorization-mode Node,RBAC --allow-privileged=true \
      --enable-aggregator-routing=true --endpoint-reconciler-type lease --kubelet-preferred-address-types InternalIP \
      >>"$logs/kube-apiserver.log" 2>&1 &
    p=$!
    while kill -0 "$p" 2>/dev/null && [[ ! -f "$root/restart-apiserver" ]]; do sleep 0.3; done
    if [[ -f "$root/restart-apiserver" ]]; then
      log "restarting kube-apiserver $p on request"
      kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
      rm -f "$root/restart-apiserver"
    else
      wait "$p" 2>/dev/null || true
      log "kube-apiserver $p exited; starting a new one"
    fi
  done ) &
until curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" https://10.77.0.1/readyz >/dev/null 2>&1; do sleep 0.5; done
mv "$kc.tmp" "$kc"
log "apiserver ready"
"$bin/kube-controller-manager" --kubeconfig "$kc" --service-account-private-key-file "$pki/sa.key" \
  --root-ca-file "$pki/ca.crt" --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 \
  >"$logs/kube-controller-manager.log" 2>&1 &
"$bin/kube-scheduler" --kubeconfig "$kc" --leader-elect=false --bind-address 127.0.0.1 >"$logs/kube-scheduler.log" 2>&1 &

# --- Service routing and cluster DNS -------------------------------------------------------------
cat >"$root/kube-proxy.yaml" <<KP
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $kc}
hostnameOverride: dc-e2e-node
mode: iptables
clusterCIDR: 10.244.0.0/24
bindAddress: 10.77.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
iptables: {masqueradeAll: true, localhostNodePorts: false}
# Zero leaves the kernel's conntrack settings alone (some are not this namespace's to change).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
KP
"$bin/kube-proxy" --config "$root/kube-proxy.yaml" >"$logs/kube-proxy.log" 2>&1 &
# No forward plugin: names outside cluster.local are refused, so nothing leaves the namespace.
cat >"$root/Corefile" <<CF
cluster.local:53 {
  bind 10.77.0.1
  errors
  log
  kubernetes cluster.local {
    kubeconfig $kc e2e
  }
  cache 5
}
CF
"$bin/coredns" -conf "$root/Corefile" >"$logs/coredns.log" 2>&1 &
"$bin/kubectl" --kubeconfig "$kc" apply -f - >"$logs/kube-dns.log" 2>&1 <<DNS || { log "creating the kube-dns Service failed: $(cat "$logs/kube-dns.log")"; exit 1; }
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: dc-e2e-node}
addressType: IPv4
endpoints: [{addresses: [10.77.0.1], conditions: {ready: true}}]
ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
DNS
log "kube-proxy and CoreDNS started, kube-dns Service at 10.96.0.10"

# --- containerd (started above) ------------------------------------------------------------------
for _ in $(seq 1 1200); do [[ -f "$root/containerd.ready" ]] && break; kill -0 "$containerd_setup" 2>/dev/null || break; sleep 0.1; done
wait "$containerd_setup" || { log "containerd did not start or the images did not import (logs: $logs/containerd.log, $logs/images.log)"; exit 1; }
log "containerd ready, images imported: $(cat "$root/containerd.ready")"

# --- kubelet ----------------------------------------------------------------------------------
cat >"$root/kubelet.yaml" <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1, and it cannot be changed.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_name
containerRuntimeEndpoint: unix://$root/run/containerd.sock
# How often kubelet resyncs pods, and so the longest a Secret update waits to reach a volume.
syncFrequency: 10s
podLogsDir: $root/pod-logs
failSwapOn: false
readOnlyPort: 0
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
KCFG
"$bin/kubelet" --config "$root/kubelet.yaml" --kubeconfig "$kc" --root-dir "$root/kubelet" \
  --node-ip 10.77.0.1 --hostname-override dc-e2e-node >"$logs/kubelet.log" 2>&1 &
log "kubelet started"
touch "$root/started"
wait
