#!/usr/bin/env bash
# Starts a real Kubernetes control plane from the binaries build.sh made: etcd, kube-apiserver
# (RBAC, service-account signing keys, an admin token), controller-manager, scheduler, kwok with
# two fake nodes (cpu-node, and gpu-node advertising nvidia.com/gpu), and, where this machine
# can (node.sh available: root, containerd, CNI plugins), a real node that runs containers
# (node.sh: kubelet, containerd, kube-proxy, CoreDNS), tainted so that only pods of namespaces
# that opt in land on it (REAL_NODE_NAMESPACE_ANNOTATIONS below).
# Usage: up.sh STATE_DIR — writes STATE_DIR/kubeconfig and STATE_DIR/pids; down.sh stops it.
# LLAMAFLEET_E2E_IMAGES: the directory of OCI archives scripts/build-images.sh wrote (the real
# node imports them). LLAMAFLEET_E2E_REAL_NODE=0 leaves the real node out.
# Addresses stay on this machine: etcd on 127.0.0.1; the API server on 127.0.0.1, or on the real
# node's bridge address 198.18.0.1 (pods reach it there); kwok's fake pod IPs come from
# 127.42.0.0/16; real pods from 198.18.0.0/16 and Services from 198.19.0.0/16 (node.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${1:?usage: up.sh STATE_DIR}"
bin="$(bash "$here/build.sh")"
mkdir -p "$state/etcd" "$state/certs" "$state/logs"
state="$(cd "$state" && pwd)"
# Free loopback ports unless given: a leftover control plane (or another suite) never collides.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_port="${LLAMAFLEET_E2E_API_PORT:-$(free_port)}"
etcd_port="${LLAMAFLEET_E2E_ETCD_PORT:-$(free_port)}"
etcd_peer_port="$(free_port)"
: > "$state/pids"

start() { # name, command...
  local name="$1"; shift
  "$@" > "$state/logs/$name.log" 2>&1 &
  echo "$! $name" >> "$state/pids"
}

wait_for() { # description, command...
  local what="$1"; shift
  for _ in $(seq 1 120); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "timed out waiting for $what; logs in $state/logs" >&2
  tail -n 20 "$state"/logs/*.log >&2 || true
  exit 1
}

real_node=0
if [ "${LLAMAFLEET_E2E_REAL_NODE:-1}" != 0 ] && bash "$here/node.sh" available >&2; then
  real_node=1
  bash "$here/node.sh" prepare "$state"
  echo "0 real-node" >> "$state/pids"   # down.sh: node.sh stop
fi
api_address=127.0.0.1
real_node_flags=()
if [ "$real_node" = 1 ]; then
  api_address=198.18.0.1
  real_node_flags=(--kubelet-client-certificate "$state/pki/apiserver-kubelet-client.crt"
    --kubelet-client-key "$state/pki/apiserver-kubelet-client.key"
    --kubelet-preferred-address-types InternalIP)
fi

# Credentials: an admin token (system:masters) and the service-account signing key pair.
token="$(openssl rand -hex 24)"
echo "$token,llamafleet-admin,llamafleet-admin,system:masters" > "$state/tokens.csv"
openssl genrsa -out "$state/sa.key" 2048 2>/dev/null
openssl rsa -in "$state/sa.key" -pubout -out "$state/sa.pub" 2>/dev/null

start etcd "$bin/etcd" --data-dir "$state/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync --quota-backend-bytes 2147483648
wait_for etcd curl -sf "http://127.0.0.1:$etcd_port/health"

start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address "$api_address" --advertise-address "$api_address" --secure-port "$api_port" \
  --cert-dir "$state/certs" --token-auth-file "$state/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$state/sa.pub" --service-account-signing-key-file "$state/sa.key" \
  --service-cluster-ip-range 198.19.0.0/16 --allow-privileged=true \
  --enable-admission-plugins NamespaceLifecycle,ServiceAccount,DefaultStorageClass,ResourceQuota,PodNodeSelector,PodTolerationRestriction \
  "${real_node_flags[@]}"
server="https://$api_address:$api_port"
wait_for kube-apiserver curl -skf -H "Authorization: Bearer $token" "$server/readyz"

kubeconfig="$state/kubeconfig"
cat > "$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: llamafleet-e2e
  cluster: {server: "$server", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: llamafleet-e2e
  context: {cluster: llamafleet-e2e, user: admin, namespace: default}
current-context: llamafleet-e2e
KC

start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false \
  --service-account-private-key-file "$state/sa.key" --root-ca-file "$state/certs/apiserver.crt" \
  --use-service-account-credentials=false \
  --controllers '*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle,-attachdetach' \
  --horizontal-pod-autoscaler-sync-period 5s
start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$kubeconfig" \
  --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false
start kwok "$bin/kwok" --kubeconfig "$kubeconfig" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --cidr 127.42.0.0/16 --node-ip 127.0.0.1 --server-address 127.0.0.1:0

export KUBECONFIG="$kubeconfig"
kubectl apply -f "$here/nodes.yaml" >/dev/null
# The API server taints new nodes not-ready; the node-lifecycle controller would lift it, but
# it also marks kwok's nodes NotReady whenever a loaded machine delays their heartbeats. It is
# off, so lift the taint here, once.
kubectl taint nodes cpu-node gpu-node node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
wait_for "nodes Ready" kubectl wait --for=condition=Ready node/cpu-node node/gpu-node --timeout=2s
wait_for "default ServiceAccount" kubectl get serviceaccount default -n default
if [ "$real_node" = 1 ]; then
  # The real node's processes are recorded in pids by node.sh; down.sh stops them first.
  bash "$here/node.sh" start "$state" "$bin" >&2
fi
echo "$kubeconfig"
