//! Progressive rollout on a real control plane (kwok runs the pods). The operator reads
//! `/router/stats` (`--router-url`) from a stand-in router on loopback that, like the real
//! one, reports figures for the routing table the operator wrote: it reads the routing
//! ConfigMap on every request and answers for that table's revision. Healthy figures walk the
//! candidate 10 → 25 → 50 → 100 and promote it, scaling the old variant to 0; failing figures
//! roll the next candidate back, with a `RolledBack` condition and a Warning Event, and it
//! stays rolled back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use llamafleet_crds::routing::{RouterStats, RoutingTable, TTFT_BUCKETS, VariantStats};
use llamafleet_e2e::{Cluster, cluster};

/// Long enough for a cold API server under a loaded 2-core CI machine.
const CONVERGE_SECONDS: u64 = 120;

const MANIFEST: &str = r#"
apiVersion: llamafleet.dev/v1alpha1
kind: LlmModel
metadata: {name: old-model}
spec:
  source: {url: "https://models.example/old.gguf"}
---
apiVersion: llamafleet.dev/v1alpha1
kind: LlmModel
metadata: {name: new-model}
spec:
  source: {url: "https://models.example/new.gguf"}
---
apiVersion: llamafleet.dev/v1alpha1
kind: LlmDeployment
metadata: {name: canary}
spec:
  variants:
    - {name: blue, model: old-model, weight: 100}
    - {name: green, model: new-model, weight: 0}
  replicas: 1
  rollout:
    strategy: Progressive
    interval: 2s
    analysis: {maxErrorRate: 0.05, minRequests: 10}
"#;

/// What the stand-in serves: the namespace whose ConfigMap it reads, the variant whose
/// requests all fail, and every revision it answered for.
#[derive(Default)]
struct Script {
    namespace: String,
    failing: Option<String>,
    served: Vec<String>,
}

fn figures(name: &str, failing: bool) -> VariantStats {
    let (requests, errors) = if failing { (40, 20) } else { (40, 0) };
    let ok = requests - errors;
    let mut ttft: Vec<u64> = TTFT_BUCKETS
        .iter()
        .map(|b| if *b >= 0.1 { ok } else { 0 })
        .collect();
    ttft.push(ok);
    VariantStats {
        name: name.into(),
        requests,
        errors,
        ttft_buckets: ttft,
        tokens: ok * 20,
        generation_seconds: ok as f64,
        shadow: None,
    }
}

/// Serves `GET /router/stats` on loopback; its base URL.
fn stand_in(cluster: &Cluster, script: Arc<Mutex<Script>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let c = Cluster::with_kubeconfig(cluster.kubeconfig().to_path_buf());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let ns = script.lock().unwrap().namespace.clone();
            let table = c.kubectl(&[
                "get",
                "-n",
                &ns,
                "configmap/canary-routing",
                "-o",
                "jsonpath={.data.routing\\.yaml}",
            ]);
            let body = match serde_norway::from_str::<RoutingTable>(&table.stdout) {
                Ok(table) => {
                    let mut s = script.lock().unwrap();
                    s.served.push(table.revision());
                    let stats = RouterStats {
                        revision: table.revision(),
                        seconds: 2.0,
                        variants: table
                            .variants
                            .iter()
                            .filter(|v| v.weight > 0)
                            .map(|v| figures(&v.name, s.failing.as_deref() == Some(&v.name)))
                            .collect(),
                    };
                    serde_json::to_string(&stats).unwrap()
                }
                Err(_) => "{}".into(),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn progressive_rollout_promotes_healthy_and_rolls_back_failing_candidates() {
    let Some(c) = cluster() else { return };
    c.install_crds();
    let ns = c.namespace("e2e-rollout");
    let n = ns.name.as_str();
    let script = Arc::new(Mutex::new(Script {
        namespace: n.to_string(),
        ..Script::default()
    }));
    let url = stand_in(&c, script.clone());
    let dir = tempfile::tempdir().unwrap();
    let _operator = c.spawn_operator(
        &["--no-leader-election", "--router-url", &url],
        &dir.path().join("operator.log"),
    );
    let file = dir.path().join("canary.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    c.kubectl_ok(&["apply", "-n", n, "-f", file.to_str().unwrap()]);
    let weights = || c.jsonpath(n, "llmd/canary", "{.status.weights}");
    let phase = || c.jsonpath(n, "llmd/canary", "{.status.rollout.phase}");
    c.wait_until("first weights as written", CONVERGE_SECONDS, || {
        weights() == "blue=100,green=0"
    });

    // The commit that moves all traffic to green: stepped, judged, promoted.
    let shift = |blue: i32, green: i32| {
        let patch = format!(
            r#"[{{"op":"replace","path":"/spec/variants/0/weight","value":{blue}}},
               {{"op":"replace","path":"/spec/variants/1/weight","value":{green}}}]"#
        );
        c.kubectl_ok(&["patch", "-n", n, "llmd/canary", "--type=json", "-p", &patch]);
    };
    shift(0, 100);
    c.wait_until("green promoted", CONVERGE_SECONDS, || phase() == "Promoted");
    assert_eq!(weights(), "blue=0,green=100");
    let served = script.lock().unwrap().served.clone();
    for step in ["blue=90,green=10", "blue=75,green=25", "blue=50,green=50"] {
        assert!(
            served.iter().any(|r| r == step),
            "{step} never judged: {served:?}"
        );
    }
    assert_eq!(
        c.jsonpath(n, "deployment/canary-blue", "{.spec.replicas}"),
        "0"
    );
    let reasons = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        n,
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    for reason in ["RolloutStarted", "RolloutAdvanced", "RolloutPromoted"] {
        assert!(reasons.contains(reason), "no {reason} Event: {reasons}");
    }

    // Moving back to blue with blue failing: blue scales up, takes 10%, is rolled back.
    script.lock().unwrap().failing = Some("blue".into());
    shift(100, 0);
    c.wait_until("blue rolled back", CONVERGE_SECONDS, || {
        phase() == "RolledBack"
    });
    assert_eq!(weights(), "blue=0,green=100");
    let rolled_back = "{.status.conditions[?(@.type==\"RolledBack\")]}";
    let condition = c.jsonpath(n, "llmd/canary", rolled_back);
    assert!(
        condition.contains("\"status\":\"True\"") && condition.contains("error rate 0.5000"),
        "{condition}"
    );
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
    assert!(warnings.contains("RolledBack"), "{warnings}");
    // No retry loop: several intervals later it is still rolled back, weights untouched.
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert_eq!(
        (phase(), weights()),
        ("RolledBack".into(), "blue=0,green=100".into())
    );
}
