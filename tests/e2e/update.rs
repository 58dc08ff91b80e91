//! Scheduled model updates rolled out through a deployment, end to end: a real control plane
//! (kwok runs the pods), the operator resolving a model source on loopback whose file changes,
//! a real `llamafleet-agent route` fed from the routing ConfigMap (as the kubelet would, with
//! variant URLs pointed at loopback) in front of a real `llamafleet-agent serve`, and client
//! load throughout.
//!
//! A new revision becomes the update variant `main-<tag>`, climbs through the rollout judged on
//! the router's own figures, and is promoted; the model then resolves to it and the variant
//! `main` takes the traffic back on the new file, the update variant is removed. A second
//! revision behind an upstream that fails every request is rolled back: the model marks it, the
//! deployment keeps serving the promoted file. At every moment the router's table sends traffic
//! only to variants with ready replicas, and no client request fails; while each candidate is
//! live the routing ConfigMap's keep list names both files, and nothing once it is settled.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, dead_code)]

#[path = "../../operator/tests/source_server/mod.rs"]
mod source_server;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llamafleet_crds::routing::{RouterStats, STATS_PATH};
use llamafleet_e2e::loopback::{self, ConfigMapSync, Load};
use llamafleet_e2e::{Cluster, cluster};
use llamafleet_gguf::writer::GgufWriter;
use source_server::SourceServer;

/// Long enough for a cold API server and real inference on a loaded 2-core CI machine.
const CONVERGE_SECONDS: u64 = 180;
const CLIENTS: usize = 2;

fn manifest(url: &str) -> String {
    format!(
        r#"
apiVersion: llamafleet.dev/v1alpha1
kind: LlmModel
metadata: {{name: m}}
spec:
  source: {{url: "{url}", allowInsecureHttp: true}}
  update: {{schedule: "*/2 * * * * *", policy: Rollout}}
---
apiVersion: llamafleet.dev/v1alpha1
kind: LlmDeployment
metadata: {{name: chat}}
spec:
  variants:
    - {{name: main, model: m, weight: 100}}
  replicas: 1
  rollout:
    strategy: Progressive
    steps: [50, 100]
    interval: 2s
    analysis: {{maxErrorRate: 0.2, minRequests: 3}}
"#
    )
}

/// The update variant of `main` for the file the source serves now.
fn update_variant(server: &SourceServer) -> String {
    format!("main-{}", &server.content().sha256()[..8])
}

/// Watches, until dropped, that every variant the router sends traffic to has ready
/// replicas: reads the router's revision, then the Deployments, then the revision again, and
/// judges only when both reads agree (the operator scales a variant down only after the
/// router left every revision that gives it weight).
struct GapWatch {
    stop: Arc<AtomicBool>,
    gaps: Arc<Mutex<Vec<String>>>,
    looks: Arc<Mutex<u64>>,
}

impl GapWatch {
    fn start(c: &Cluster, ns: &str, router: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let gaps = Arc::new(Mutex::new(Vec::new()));
        let looks = Arc::new(Mutex::new(0));
        let (flag, found, counted) = (stop.clone(), gaps.clone(), looks.clone());
        let c = Cluster::with_kubeconfig(c.kubeconfig().to_path_buf());
        let (ns, router) = (ns.to_string(), router.to_string());
        std::thread::spawn(move || {
            let revision = || {
                let (_, body) = loopback::get(&router, STATS_PATH);
                serde_json::from_str::<RouterStats>(&body)
                    .map(|s| s.revision)
                    .unwrap_or_default()
            };
            while !flag.load(Ordering::Relaxed) {
                let before = revision();
                let ready = c.kubectl_ok(&[
                    "get", "deployments", "-n", &ns, "-o",
                    r#"jsonpath={range .items[*]}{.metadata.name}={.status.readyReplicas}{"\n"}{end}"#,
                ]);
                if before.is_empty() || revision() != before {
                    continue;
                }
                *counted.lock().unwrap() += 1;
                for (variant, weight) in before.split(',').filter_map(|p| p.split_once('=')) {
                    let line = format!("chat-{variant}=");
                    let replicas = ready
                        .lines()
                        .find_map(|l| l.strip_prefix(&line))
                        .and_then(|n| n.parse::<u32>().ok())
                        .unwrap_or(0);
                    if weight != "0" && replicas == 0 {
                        found.lock().unwrap().push(format!(
                            "router on {before}: {variant} has no ready replica"
                        ));
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self { stop, gaps, looks }
    }

    fn finish(self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        let gaps = self.gaps.lock().unwrap().clone();
        let looks = *self.looks.lock().unwrap();
        (gaps, looks)
    }
}

/// Records, until finished, each distinct `keep.yaml` of the routing ConfigMap in order: the
/// cached models the serving agents keep (both revisions only while a candidate is live).
struct KeepWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl KeepWatch {
    fn start(c: &Cluster, ns: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (flag, found) = (stop.clone(), seen.clone());
        let c = Cluster::with_kubeconfig(c.kubeconfig().to_path_buf());
        let ns = ns.to_string();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let path = r"jsonpath={.data.keep\.yaml}";
                let out = c.kubectl(&["get", "-n", &ns, "configmap/chat-routing", "-o", path]);
                let keep = out.stdout.trim().to_string();
                let mut seen = found.lock().unwrap();
                if out.ok && seen.last() != Some(&keep) {
                    seen.push(keep);
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self { stop, seen }
    }

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(500));
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn a_new_model_revision_rolls_out_is_promoted_and_a_failing_one_rolls_back() {
    let Some(c) = cluster() else { return };
    let Some(model) = loopback::test_model() else {
        return;
    };
    c.install_crds();
    let ns = c.namespace("e2e-update");
    let n = ns.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(SourceServer::start(GgufWriter::tiny_llama(0).to_bytes()));
    let first_sha = server.content().sha256();

    let agent = loopback::serve(&model, &dir.path().join("cache"));
    let router_port = loopback::free_port();
    let router_url = format!("http://127.0.0.1:{router_port}");
    let _operator = c.spawn_resolving_operator(
        &["--no-leader-election", "--router-url", &router_url],
        &dir.path().join("operator.log"),
    );
    let file = dir.path().join("update.yaml");
    std::fs::write(&file, manifest(&server.hf_url())).unwrap();
    c.kubectl_ok(&["apply", "-n", n, "-f", file.to_str().unwrap()]);
    let weights = || c.jsonpath(n, "llmd/chat", "{.status.weights}");
    let resolved = || c.jsonpath(n, "llm/m", "{.status.resolved.sha256}");
    // Ready too: its pod waits for the namespace's node-cache claim to bind before it is
    // scheduled, and the gap watch below counts traffic to a variant without a ready replica.
    let main_ready = || {
        let ready = c.kubectl(&[
            "get",
            "-n",
            n,
            "deployment/chat-main",
            "-o",
            "jsonpath={.status.readyReplicas}",
        ]);
        ready.ok && ready.stdout == "1"
    };
    c.wait_until("model resolved, main serving", CONVERGE_SECONDS, || {
        resolved() == first_sha && weights() == "main=100" && main_ready()
    });

    // The next two revisions: a healthy one, then one whose variant fails every request.
    server.replace(GgufWriter::tiny_llama(1).to_bytes());
    let second = update_variant(&server);
    let second_sha = server.content().sha256();
    let third_sha = {
        let mut probe = server.content();
        probe.bytes = Arc::new(GgufWriter::tiny_llama(2).to_bytes());
        probe.sha256()
    };
    let third = format!("main-{}", &third_sha[..8]);
    let upstreams = BTreeMap::from([
        ("main".to_string(), agent.base.clone()),
        (second.clone(), agent.base.clone()),
        (third.clone(), loopback::failing_upstream()),
    ]);
    let table = dir.path().join("routing.yaml");
    let _sync = ConfigMapSync::start(&c, n, "chat-routing", upstreams, &table);
    let router = loopback::route(&table, router_port);
    let load = Load::start(&router.base, CLIENTS);
    let watch = GapWatch::start(&c, n, &router.base);
    let keep = KeepWatch::start(&c, n);

    // The check finds the second revision; the update variant takes main's traffic, is
    // promoted, the model resolves to it, and main takes the traffic back on the new file.
    c.wait_until("second revision adopted", CONVERGE_SECONDS, || {
        resolved() == second_sha
    });
    c.wait_until("traffic handed back to main", CONVERGE_SECONDS, || {
        weights() == "main=100"
            && c.kubectl(&["get", "-n", n, &format!("deployment/chat-{second}")])
                .stderr
                .contains("NotFound")
    });
    let args = c.jsonpath(
        n,
        "deployment/chat-main",
        "{.spec.template.spec.containers[0].args}",
    );
    assert!(
        args.contains(&second_sha),
        "main serves the new file: {args}"
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        n,
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in [
        "UpdateAvailable",
        "RolloutStarted",
        "RolloutPromoted",
        "UpdatePromoted",
    ] {
        assert!(events.contains(reason), "no {reason} Event: {events}");
    }
    assert_eq!(c.jsonpath(n, "llm/m", "{.status.candidate}"), "");

    // Through the whole update and hand-back, no client request failed.
    let (answered, failed) = load.counts();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed",
        answered + failed
    );

    // The third revision fails every request through its update variant: rolled back.
    server.replace(GgufWriter::tiny_llama(2).to_bytes());
    assert_eq!(update_variant(&server), third);
    c.wait_until("third revision rolled back", CONVERGE_SECONDS, || {
        !c.jsonpath(n, "llm/m", "{.status.candidate.rolledBack}")
            .is_empty()
    });
    let why = c.jsonpath(n, "llm/m", "{.status.candidate.rolledBack}");
    assert!(
        why.contains("rolled back in chat") && why.contains("error rate"),
        "{why}"
    );
    c.wait_until(
        "rolled-back update variant removed",
        CONVERGE_SECONDS,
        || {
            weights() == "main=100"
                && c.kubectl(&["get", "-n", n, &format!("deployment/chat-{third}")])
                    .stderr
                    .contains("NotFound")
        },
    );
    assert_eq!(resolved(), second_sha, "the promoted file stays resolved");
    let warnings = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        n,
        "--field-selector",
        "type=Warning",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(warnings.contains("UpdateRolledBack"), "{warnings}");
    // Several checks later the same revision is not tried again.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(weights(), "main=100");

    // The agents kept both files of each update while it was live, and none after.
    let kept = keep.finish();
    let both = |a: &str, b: &str| kept.iter().any(|k| k.contains(a) && k.contains(b));
    assert!(both(&first_sha, &second_sha), "{kept:?}");
    assert!(both(&second_sha, &third_sha), "{kept:?}");
    assert_eq!(kept.last().map(String::as_str), Some("[]"), "{kept:?}");

    let (gaps, looks) = watch.finish();
    assert!(looks > 10, "the gap watch looked only {looks} times");
    assert!(
        gaps.is_empty(),
        "traffic to variants without ready replicas: {gaps:?}"
    );
    // Requests to the failing revision's variant fail by design (that is what the rollout
    // judged).
    let (answered, failed) = load.counts();
    assert!(answered > 20, "only {answered} requests answered");
    drop(load);
    eprintln!("update e2e: {answered} answered, {failed} failed, {looks} gap looks");
}
