//! The test cluster's real node (tests/cluster/node.sh): namespaces whose pods run there, a
//! Service in front of a server this test process runs on the node's address, and a client pod
//! that calls Services by their DNS names with curl.

use std::time::Duration;

use crate::{Cluster, Namespace};

/// Name of the node that runs containers.
pub const NODE: &str = "real-node";
/// The node's address on the pod network (the bridge): pods reach this machine there.
pub const NODE_IP: &str = "198.18.0.1";
/// The taint that keeps every other pod on the kwok nodes.
const TAINT_KEY: &str = "llamafleet.dev/real-node";
/// Image of the client pod: Debian with curl (tests/cluster/images/client.Dockerfile).
pub const CLIENT_IMAGE: &str = "llamafleet.dev/e2e-client:1";

/// Whether the cluster has the real node; when it has not, prints why the test is skipped,
/// and fails under CI with `LLAMAFLEET_E2E=required` (tests/cluster/up.sh starts it wherever
/// scripts/setup.sh could install its packages, so CI always has it).
pub fn has_real_node(c: &Cluster) -> bool {
    if c.kubectl(&["get", "node", NODE]).ok {
        return true;
    }
    let required = std::env::var("LLAMAFLEET_E2E").is_ok_and(|v| v == "required");
    assert!(
        !(required && std::env::var_os("CI").is_some()),
        "CI with LLAMAFLEET_E2E=required, but the cluster has no node {NODE} \
         (tests/cluster/up.sh prints why it left it out)"
    );
    eprintln!("skipped: the cluster has no real node {NODE}");
    false
}

impl Cluster {
    /// A fresh namespace whose pods all run on the real node (the PodNodeSelector and
    /// PodTolerationRestriction admission plugins apply the annotations to every pod, so the
    /// manifests under test stay as users write them), with Pod Security `level` enforced.
    pub fn real_node_namespace(&self, prefix: &str, level: &str) -> Namespace<'_> {
        let ns = self.namespace(prefix);
        let selector =
            format!("scheduler.alpha.kubernetes.io/node-selector=kubernetes.io/hostname={NODE}");
        let tolerations = format!(
            r#"scheduler.alpha.kubernetes.io/defaultTolerations=[{{"key":"{TAINT_KEY}","operator":"Exists","effect":"NoSchedule"}}]"#
        );
        self.kubectl_ok(&["annotate", "namespace", &ns.name, &selector, &tolerations]);
        let enforce = format!("pod-security.kubernetes.io/enforce={level}");
        let enforce_version = "pod-security.kubernetes.io/enforce-version=latest";
        self.kubectl_ok(&["label", "namespace", &ns.name, &enforce, enforce_version]);
        ns
    }

    /// A Service `name` (port 80) in `ns` whose one endpoint is `NODE_IP:port`: a server this
    /// test runs on the node's address, reachable from pods by a cluster DNS name.
    pub fn expose_node_port(&self, ns: &str, name: &str, port: u16) {
        self.apply_yaml(&format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  ports: [{{name: http, port: 80, targetPort: {port}, protocol: TCP}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-node
  namespace: {ns}
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["{NODE_IP}"], conditions: {{ready: true}}}}]
"#
        ));
    }
}

/// A pod with curl in a real-node namespace (restricted-compliant), for calls from inside the
/// cluster.
pub struct ClientPod<'a> {
    cluster: &'a Cluster,
    ns: String,
    name: String,
}

impl<'a> ClientPod<'a> {
    /// Starts the pod and waits until it runs.
    pub fn start(cluster: &'a Cluster, ns: &str) -> ClientPod<'a> {
        let name = "client".to_string();
        cluster.apply_yaml(&format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}}}
spec:
  terminationGracePeriodSeconds: 0
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile: {{type: RuntimeDefault}}
  containers:
  - name: curl
    image: {CLIENT_IMAGE}
    imagePullPolicy: IfNotPresent
    command: ["sleep", "infinity"]
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {{drop: [ALL]}}
    volumeMounts: [{{name: tmp, mountPath: /tmp}}]
  volumes: [{{name: tmp, emptyDir: {{}}}}]
"#
        ));
        let pod = format!("pod/{name}");
        cluster.kubectl_ok(&[
            "wait",
            "-n",
            ns,
            "--for=condition=Ready",
            &pod,
            "--timeout=120s",
        ]);
        ClientPod {
            cluster,
            ns: ns.to_string(),
            name,
        }
    }

    /// Runs `sh -c script` in the pod: its exit status and stdout, with stderr added when it
    /// failed. kubectl's own complaints about a working exec stream (`Unknown stream id 1,
    /// discarding message`, containerd 1.6) go to its stderr, so they never mix into the
    /// output of a command that worked.
    pub fn sh(&self, script: &str) -> (bool, String) {
        let out = self
            .cluster
            .kubectl(&["exec", "-n", &self.ns, &self.name, "--", "sh", "-c", script]);
        if out.ok {
            (true, out.stdout)
        } else {
            (false, format!("{}{}", out.stdout, out.stderr))
        }
    }

    /// `curl` in the pod: HTTP status line by line with the body; panics when curl fails.
    pub fn curl(&self, args: &str) -> String {
        let (ok, out) = self.sh(&format!("curl -sS --max-time 300 {args}"));
        assert!(ok, "curl {args} failed in the client pod: {out}");
        out
    }
}

/// Polls `check` every second for up to `seconds`; the time it took.
pub fn time_until(what: &str, seconds: u64, mut check: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("timed out after {seconds}s waiting for {what}");
}
