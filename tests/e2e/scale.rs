//! Scale on a real API server, opt-in (`LLAMAFLEET_E2E_SCALE=200`): one LlmModel and N
//! LlmDeployments, one operator process; prints the time until every one is Ready and the
//! operator's peak RSS. A benchmark figure, not an assertion (beyond "all converge").
//! kwok plays the pods (3 per LlmDeployment: the variant and two routers) on extra fake nodes
//! the test adds and removes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use llamafleet_e2e::{Cluster, cluster, minimal_deployment, repo_root};

/// Pods each extra fake node takes (the default nodes take 110).
const PODS_PER_NODE: usize = 250;
/// Pods one LlmDeployment runs (one variant replica, two router replicas).
const PODS_PER_LLMD: usize = 3;
/// Upper bound of the wait, per LlmDeployment (seconds), on a loaded 2-core machine.
const SECONDS_PER_LLMD: u64 = 3;

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}}\n  \
         labels: {{kubernetes.io/hostname: {name}, kubernetes.io/os: linux, type: kwok}}\nspec: {{}}\nstatus:\n  \
         allocatable: {{cpu: \"1000\", memory: 4Ti, pods: \"{PODS_PER_NODE}\"}}\n  \
         capacity: {{cpu: \"1000\", memory: 4Ti, pods: \"{PODS_PER_NODE}\"}}\n"
    )
}

fn managed_deployments(c: &Cluster, ns: &str) -> usize {
    let selector = "app.kubernetes.io/managed-by=llamafleet-operator";
    c.kubectl_ok(&["get", "deployments", "-n", ns, "-l", selector, "-o", "name"])
        .lines()
        .count()
}

/// Extra fake nodes, deleted on drop.
struct Nodes<'a> {
    c: &'a Cluster,
    names: Vec<String>,
}

impl Drop for Nodes<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.c.kubectl(&["delete", "node", n, "--wait=false"]);
        }
    }
}

#[test]
fn many_deployments_converge_with_one_operator() {
    let Some(n) = std::env::var("LLAMAFLEET_E2E_SCALE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!("skipped: set LLAMAFLEET_E2E_SCALE=200 to run the scale benchmark");
        return;
    };
    let Some(c) = cluster() else { return };
    c.install_crds();
    let count = (n * PODS_PER_LLMD).div_ceil(PODS_PER_NODE);
    let nodes = Nodes {
        c: &c,
        names: (0..count).map(|i| format!("scale-node-{i}")).collect(),
    };
    let docs: Vec<String> = nodes.names.iter().map(|name| node(name)).collect();
    c.apply_yaml(&docs.join("---\n"));
    for name in &nodes.names {
        // The API server taints new nodes not-ready; kwok reports them Ready, nothing untaints.
        let _ = c.kubectl(&[
            "taint",
            "nodes",
            name,
            "node.kubernetes.io/not-ready:NoSchedule-",
        ]);
    }

    let ns = c.namespace("e2e-scale");
    let dir = tempfile::tempdir().unwrap();
    let operator = c.spawn_operator(&["--no-leader-election"], &dir.path().join("operator.log"));
    let quickstart = repo_root().join("manifests/examples/quickstart.yaml");
    // The quickstart brings the model (and one more LlmDeployment, `chat`).
    c.kubectl_ok(&["apply", "-n", &ns.name, "-f", quickstart.to_str().unwrap()]);
    c.wait_until("quickstart Ready", 90, || {
        c.ready_deployments(&ns.name) == 1
    });
    let idle_kib = operator.peak_rss_kib().unwrap_or(0);

    let batch: Vec<String> = (0..n)
        .map(|i| minimal_deployment(&ns.name, &format!("scale-{i}")))
        .collect();
    let started = Instant::now();
    c.apply_yaml(&batch.join("---\n"));
    let mut peak = 0;
    let limit = Duration::from_secs(60 + SECONDS_PER_LLMD * n as u64);
    let mut ready = 0;
    let mut written = None;
    while started.elapsed() < limit {
        peak = peak.max(operator.peak_rss_kib().unwrap_or(0));
        if written.is_none() && managed_deployments(&c, &ns.name) == 2 * (n + 1) {
            written = Some(started.elapsed());
        }
        ready = c.ready_deployments(&ns.name);
        if ready == n + 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = started.elapsed();
    peak = peak.max(operator.peak_rss_kib().unwrap_or(0));
    assert_eq!(
        ready,
        n + 1,
        "not every LlmDeployment became Ready in {limit:?}"
    );
    let written = written.map_or("?".into(), |w| format!("{:.1}", w.as_secs_f64()));
    println!(
        "scale: {n} LlmDeployments Ready in {:.1} s after apply (every Deployment written by \
         {written} s; the rest is kwok, the scheduler and controllers bringing 3 pods each up); \
         operator peak RSS {:.1} MiB (VmHWM; {:.1} MiB with the quickstart alone)",
        took.as_secs_f64(),
        peak as f64 / 1024.0,
        idle_kib as f64 / 1024.0
    );
    drop(operator);
    // Deleting the namespace takes 3 pods per LlmDeployment with it; wait, so the next test's
    // cluster is not still busy with them.
    c.kubectl_ok(&[
        "delete",
        "llmd",
        "--all",
        "-n",
        &ns.name,
        "--wait=true",
        "--timeout=300s",
    ]);
}
