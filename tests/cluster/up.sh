#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback from the binaries build.sh made: etcd,
# kube-apiserver (RBAC, service-account signing keys, an admin token), controller-manager,
# scheduler, and kwok with two fake nodes (cpu-node, and gpu-node advertising nvidia.com/gpu).
# Usage: up.sh STATE_DIR — writes STATE_DIR/kubeconfig and STATE_DIR/pids; down.sh stops it.
# Every address is 127.0.0.1; kwok's fake pod IPs come from 127.42.0.0/16 so nothing that
# follows a pod IP leaves the machine.
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
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --cert-dir "$state/certs" --token-auth-file "$state/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$state/sa.pub" --service-account-signing-key-file "$state/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
  --enable-admission-plugins NamespaceLifecycle,ServiceAccount,DefaultStorageClass,ResourceQuota
server="https://127.0.0.1:$api_port"
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
  --controllers '*,-nodeipam,-nodelifecycle,-service,-route,-cloud-node-lifecycle,-persistentvolume-binder,-attachdetach' \
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
echo "$kubeconfig"
