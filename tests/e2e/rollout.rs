//! Progressive rollout end to end on loopback and a real control plane (kwok runs the pods):
//! the operator writes the routing ConfigMap, which the test copies into the file of a real
//! `llamafleet-agent route` (as the kubelet would, with variant URLs pointed at loopback);
//! the router sends real client traffic to a real `llamafleet-agent serve` with the test
//! model, and the operator judges each step on the router's own `/router/stats`. A healthy
//! candidate climbs to 100% and is promoted, the old variant scaled to 0; a candidate behind
//! an upstream that fails every request is rolled back, with a `RolledBack` condition and a
//! Warning Event, and stays rolled back.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use llamafleet_crds::routing::{RouterStats, STATS_PATH};
use llamafleet_e2e::loopback::{self, ConfigMapSync, Load};
use llamafleet_e2e::{Cluster, cluster};

/// Long enough for a cold API server and real inference on a loaded 2-core CI machine.
const CONVERGE_SECONDS: u64 = 180;
/// Clients calling the router throughout.
const CLIENTS: usize = 2;

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
    steps: [50, 100]
    interval: 2s
    analysis: {maxErrorRate: 0.2, minRequests: 3}
"#;

fn shift(c: &Cluster, ns: &str, blue: i32, green: i32) {
    let patch = format!(
        r#"[{{"op":"replace","path":"/spec/variants/0/weight","value":{blue}}},
           {{"op":"replace","path":"/spec/variants/1/weight","value":{green}}}]"#
    );
    c.kubectl_ok(&[
        "patch",
        "-n",
        ns,
        "llmd/canary",
        "--type=json",
        "-p",
        &patch,
    ]);
}

fn event_reasons(c: &Cluster, ns: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ];
    args.extend_from_slice(extra);
    c.kubectl_ok(&args)
}

#[test]
fn progressive_rollout_through_a_real_router_promotes_healthy_and_rolls_back_failing() {
    let Some(c) = cluster() else { return };
    let Some(model) = loopback::test_model() else {
        return;
    };
    c.install_crds();
    let ns = c.namespace("e2e-rollout");
    let n = ns.name.as_str();
    let dir = tempfile::tempdir().unwrap();
    let agent = loopback::serve(&model, &dir.path().join("cache"));
    let router_port = loopback::free_port();
    let router_url = format!("http://127.0.0.1:{router_port}");
    let _operator = c.spawn_operator(
        &["--no-leader-election", "--router-url", &router_url],
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

    // Both variants on the real agent; the router follows the ConfigMap.
    let table = dir.path().join("routing.yaml");
    let healthy = BTreeMap::from([
        ("blue".to_string(), agent.base.clone()),
        ("green".to_string(), agent.base.clone()),
    ]);
    let sync = ConfigMapSync::start(&c, n, "canary-routing", healthy, &table);
    let router = loopback::route(&table, router_port);
    let load = Load::start(&router.base, CLIENTS);

    // The commit that moves all traffic to green: 50% judged on real figures, then promoted.
    shift(&c, n, 0, 100);
    c.wait_until("green promoted", CONVERGE_SECONDS, || phase() == "Promoted");
    assert_eq!(weights(), "blue=0,green=100");
    // Blue goes to 0 replicas once the router runs the promoted weights.
    c.wait_until("blue scaled to 0", 30, || {
        c.jsonpath(n, "deployment/canary-blue", "{.spec.replicas}") == "0"
    });
    let reasons = event_reasons(&c, n, &[]);
    for reason in ["RolloutStarted", "RolloutPromoted"] {
        assert!(reasons.contains(reason), "no {reason} Event: {reasons}");
    }
    // The router picked the promoted table up and green answers real requests.
    c.wait_until("router on the promoted weights", 30, || {
        let (status, body) = loopback::get(&router.base, STATS_PATH);
        let stats: RouterStats = serde_json::from_str(&body).unwrap_or_default();
        status == 200
            && stats.revision == "blue=0,green=100"
            && stats
                .variant("green")
                .is_some_and(|g| g.requests > 0 && g.errors == 0)
    });

    // Moving back to blue, now behind an upstream that fails every request: rolled back.
    drop(sync);
    let failing = BTreeMap::from([
        ("blue".to_string(), loopback::failing_upstream()),
        ("green".to_string(), agent.base.clone()),
    ]);
    let _sync = ConfigMapSync::start(&c, n, "canary-routing", failing, &table);
    shift(&c, n, 100, 0);
    c.wait_until("blue rolled back", CONVERGE_SECONDS, || {
        phase() == "RolledBack"
    });
    assert_eq!(weights(), "blue=0,green=100");
    let rolled_back = "{.status.conditions[?(@.type==\"RolledBack\")]}";
    let condition = c.jsonpath(n, "llmd/canary", rolled_back);
    assert!(
        condition.contains("\"status\":\"True\"") && condition.contains("error rate"),
        "{condition}"
    );
    let warnings = event_reasons(&c, n, &["--field-selector", "type=Warning"]);
    assert!(warnings.contains("RolledBack"), "{warnings}");
    // No retry loop: several intervals later it is still rolled back, weights untouched.
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert_eq!(
        (phase(), weights()),
        ("RolledBack".into(), "blue=0,green=100".into())
    );
    drop(load);
}
