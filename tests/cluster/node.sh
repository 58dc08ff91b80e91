#!/usr/bin/env bash
# The test cluster's real node: a kubelet that runs containers with containerd + runc (Debian's
# packages), a bridge CNI network, kube-proxy in iptables mode and CoreDNS, all on this machine.
#   node.sh available           exit 0 when this machine can run the node (root, containerd, CNI)
#   node.sh prepare STATE       the bridge and the certificates, before the API server starts
#   node.sh start STATE BIN     containerd, kubelet, kube-proxy, CoreDNS; imports the images in
#                               $LLAMAFLEET_E2E_IMAGES (OCI archives, the pause image among them)
#   node.sh stop STATE          (after kubelet stopped) containers, mounts, network namespaces, bridge and rules gone
# Addresses: pods in 198.18.0.0/16 behind bridge lf0 (198.18.0.1 is the node and the API
# server), Services in 198.19.0.0/16; both inside 198.18.0.0/15, reserved for network tests.
# Nothing from them is routed or masqueraded outward: a FORWARD rule drops any packet that
# would leave that range.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

NODE_NAME=real-node
NODE_IP=198.18.0.1
BRIDGE=lf0
POD_CIDR=198.18.0.0/16
TEST_RANGE=198.18.0.0/15
DNS_PORT=53
# Pods that have not asked for the real node stay on the kwok nodes: this taint keeps them
# off, and a namespace opts in with the annotations in up.sh's REAL_NODE_NAMESPACE_ANNOTATIONS.
TAINT_KEY=llamafleet.dev/real-node
# The sandbox image kubelet v1.34 and its containerd config name; built from source by
# scripts/build-images.sh and imported below (no registry is reachable).
PAUSE_IMAGE=registry.k8s.io/pause:3.10.1

available() {
  [ "$(id -u)" = 0 ] || { echo "real node: needs root (bridge, iptables, containers)"; return 1; }
  local tool
  for tool in containerd containerd-shim-runc-v2 runc ctr iptables conntrack; do
    command -v "$tool" >/dev/null || { echo "real node: $tool is missing (bash scripts/setup.sh test)"; return 1; }
  done
  [ -x /usr/lib/cni/bridge ] || { echo "real node: CNI plugins missing (bash scripts/setup.sh test)"; return 1; }
}

# A self-made CA that signs the API server's client certificate for kubelet (logs, exec,
# port-forward go through it) and that the kubelet trusts.
certificates() {
  local pki="$1/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=llamafleet-e2e-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
    -keyout "$pki/apiserver-kubelet-client.key" -out "$pki/apiserver-kubelet-client.csr" 2>/dev/null
  openssl x509 -req -in "$pki/apiserver-kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 2 -out "$pki/apiserver-kubelet-client.crt" 2>/dev/null
}

prepare() {
  local state="$1"
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    # A node's containerd runs as long as its cluster does; without one, the bridge and rules
    # are what a killed run (a machine's session ended mid-test) left, and only block this one.
    if pgrep -f "containerd --config .*/node/containerd.toml" >/dev/null; then
      echo "real node: bridge $BRIDGE exists and another test cluster runs here;" \
        "stop it (tests/cluster/down.sh DIR)" >&2
      return 1
    fi
    echo "real node: removing bridge $BRIDGE and rules left by a test cluster that was killed" >&2
    network_down
  fi
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Pod traffic crosses this machine's routing (a Service's DNAT) and bridge (pod to pod);
  # both must go through iptables for kube-proxy's rules to apply.
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # Nothing leaves the test range: no masquerade, and no forwarding outward either way.
  iptables -w -I FORWARD -s "$TEST_RANGE" ! -d "$TEST_RANGE" -j DROP -m comment --comment llamafleet-e2e
  iptables -w -I FORWARD -d "$TEST_RANGE" ! -s "$TEST_RANGE" -j DROP -m comment --comment llamafleet-e2e
  certificates "$state"
}

start_bg() { # state, name, command...
  local state="$1" name="$2"; shift 2
  "$@" > "$state/logs/$name.log" 2>&1 &
  echo "$! $name" >> "$state/pids"
}

wait_for() { # state, description, command...
  local state="$1" what="$2"; shift 2
  for _ in $(seq 1 240); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "timed out waiting for $what; logs in $state/logs" >&2
  tail -n 30 "$state/logs/containerd.log" "$state/logs/kubelet.log" >&2 || true
  return 1
}

containerd_config() {
  local node="$1"
  mkdir -p "$node/cni/net.d"
  cat > "$node/containerd.toml" <<TOML
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$node/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine has no CAP_SYS_RESOURCE: lowering a process's oom_score_adj would fail.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni/net.d"
TOML
  cat > "$node/cni/net.d/10-llamafleet-e2e.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "llamafleet-e2e",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$node/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "198.18.1.1", "rangeEnd": "198.18.255.254", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
}

kubelet_config() {
  local state="$1" node="$1/node"
  cat > "$node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine: cgroup v1 without systemd, no swap accounting to rely on.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$node/containerd.sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $node/resolv.conf
registerWithTaints:
- {key: $TAINT_KEY, value: "true", effect: NoSchedule}
# A shared build machine's disk is often past the default thresholds: the images imported
# here cannot be pulled again, so never evict for disk or collect them.
evictionHard: {memory.available: 100Mi, nodefs.available: 100Mi, imagefs.available: 100Mi, nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
serializeImagePulls: false
# ConfigMap and Secret volumes follow their objects within this period (default 1m): a router
# sees new weights in seconds rather than a minute, which the migration test waits for 4 times.
syncFrequency: 10s
YAML
  # Pods resolve cluster names only; nothing is forwarded outward.
  echo "nameserver 127.0.0.1" > "$node/resolv.conf"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

proxy_config() {
  local node="$1"
  cat > "$node/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $node/kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
# No sysctl writes beyond what prepare() set: the conntrack table stays as it is.
conntrack: {maxPerCore: 0, min: 0}
iptables: {masqueradeAll: false, localhostNodePorts: false}
YAML
}

coredns_config() {
  local node="$1" kubeconfig="$2"
  cat > "$node/Corefile" <<CORE
.:$DNS_PORT {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loadbalance
}
CORE
}

start() {
  local state="$1" bin="$2" node="$1/node"
  mkdir -p "$node" "$state/logs"
  echo "$bin" > "$node/bin-dir"
  cp "$state/kubeconfig" "$node/kubeconfig"
  containerd_config "$node"
  kubelet_config "$state"
  proxy_config "$node"
  coredns_config "$node" "$node/kubeconfig"
  start_bg "$state" containerd containerd --config "$node/containerd.toml"
  wait_for "$state" containerd ctr --address "$node/containerd.sock" version
  import_images "$node"
  start_bg "$state" kubelet "$bin/kubelet" --config "$node/kubelet.yaml" \
    --kubeconfig "$node/kubeconfig" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --root-dir "$node/kubelet" --cert-dir "$node/kubelet-pki" \
    --node-labels "llamafleet.dev/node=real,type=real"
  start_bg "$state" kube-proxy "$bin/kube-proxy" --config "$node/kube-proxy.yaml"
  start_bg "$state" coredns "$bin/coredns" -conf "$node/Corefile"
  wait_for "$state" "kube-proxy's rules" iptables -w -t nat -n -L KUBE-SERVICES
  wait_for "$state" "node $NODE_NAME Ready" \
    kubectl --kubeconfig "$node/kubeconfig" wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  # As for the kwok nodes (up.sh): the node-lifecycle controller that would lift it is off.
  kubectl --kubeconfig "$node/kubeconfig" taint nodes "$NODE_NAME" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
}

import_images() {
  local node="$1" archive
  for archive in "${LLAMAFLEET_E2E_IMAGES:?set LLAMAFLEET_E2E_IMAGES to the directory scripts/build-images.sh wrote}"/*.tar; do
    ctr --address "$node/containerd.sock" -n k8s.io images import --all-platforms "$archive" >/dev/null
  done
  # Listed first, searched after: `ctr | grep -q` fails under pipefail when grep's early exit
  # cuts ctr's output (SIGPIPE), which made a present image look missing.
  local images
  images="$(ctr --address "$node/containerd.sock" -n k8s.io images ls -q)"
  grep -qx "$PAUSE_IMAGE" <<<"$images" || {
    echo "real node: $PAUSE_IMAGE is not among the images in $LLAMAFLEET_E2E_IMAGES" >&2
    return 1
  }
}

# Everything start() and the pods left (down.sh stops kubelet, kube-proxy and CoreDNS first,
# containerd after).
stop() {
  local state="$1" node="$1/node" sock="$1/node/containerd.sock" id
  if [ -S "$sock" ]; then
    for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s KILL "$id" >/dev/null 2>&1 || true
    done
    sleep 0.5
    for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks rm -f "$id" >/dev/null 2>&1 || true
    done
  fi
  # Shims outlive containerd; theirs are the ones started with this node's socket.
  pkill -9 -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  # Mounts under the node's directories (container rootfs, secrets, shm), deepest first.
  if [ -d "$node" ]; then
    findmnt -rn -o TARGET | grep "^$node/" | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  local bin
  bin="$(cat "$node/bin-dir" 2>/dev/null || true)"
  if [ -x "$bin/kube-proxy" ]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  network_down
}

# The pods' network namespaces, the isolation rules and the bridge.
network_down() {
  local netns
  for netns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do ip netns delete "$netns" 2>/dev/null || true; done
  while iptables -w -D FORWARD -s "$TEST_RANGE" ! -d "$TEST_RANGE" -j DROP -m comment --comment llamafleet-e2e 2>/dev/null; do :; done
  while iptables -w -D FORWARD -d "$TEST_RANGE" ! -s "$TEST_RANGE" -j DROP -m comment --comment llamafleet-e2e 2>/dev/null; do :; done
  ip link delete "$BRIDGE" 2>/dev/null || true
}

case "${1:-}" in
  available) available ;;
  prepare) prepare "${2:?state dir}" ;;
  start) start "${2:?state dir}" "${3:?bin dir}" ;;
  stop) stop "${2:?state dir}" ;;
  *) echo "usage: node.sh available | prepare STATE | start STATE BIN | stop STATE" >&2; exit 2 ;;
esac
