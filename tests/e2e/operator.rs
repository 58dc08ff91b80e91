//! The operator as a process against a real control plane (kwok runs the pods): the
//! quickstart converges to Ready with owned children; the Saiga → Vistral migration applied
//! commit by commit moves weights through the routing ConfigMap alone, schedules the GPU
//! variant only on the GPU node and garbage-collects the removed variant; a missing model is a
//! condition and an Event; deleting the LlmDeployment removes everything it owned, and its
//! series from the operator's `/metrics`.
//! One test function, because one operator process watches every namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_e2e::{Cluster, Operator, cluster, repo_root};

/// Long enough for a cold API server under a loaded 2-core CI machine; converging takes ~2 s.
const CONVERGE_SECONDS: u64 = 90;
/// Window in which a deployment waiting on a missing model must stay quiet.
const QUIET_SECONDS: u64 = 20;

fn apply(c: &Cluster, ns: &str, example: &str) {
    let path = repo_root().join("manifests/examples").join(example);
    c.kubectl_ok(&["apply", "-n", ns, "-f", path.to_str().unwrap()]);
}

fn exists(c: &Cluster, ns: &str, object: &str) -> bool {
    c.kubectl(&["get", "-n", ns, object]).ok
}

#[test]
fn operator_drives_quickstart_migration_and_deletion_on_a_real_cluster() {
    let Some(c) = cluster() else { return };
    c.install_crds();
    let operator = c.start_operator();

    quickstart_becomes_ready_with_owned_children(&c, &operator);
    migration_steps_follow_git(&c);
    missing_model_is_a_condition_and_an_event(&c, &operator);
}

fn quickstart_becomes_ready_with_owned_children(c: &Cluster, operator: &Operator) {
    let ns = c.namespace("e2e-quickstart");
    apply(c, &ns.name, "quickstart.yaml");
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    c.wait_until("quickstart Ready", CONVERGE_SECONDS, || {
        c.jsonpath(&ns.name, "llmd/chat", ready) == "True"
    });
    assert_eq!(c.jsonpath(&ns.name, "llmd/chat", "{.status.ready}"), "1/1");
    assert_eq!(
        c.jsonpath(&ns.name, "llmd/chat", "{.status.weights}"),
        "main=100"
    );
    let uid = c.jsonpath(&ns.name, "llmd/chat", "{.metadata.uid}");
    for child in [
        "deployment/chat-main",
        "service/chat-main",
        "poddisruptionbudget/chat-main",
        "deployment/chat-router",
        "configmap/chat-routing",
        "service/chat",
    ] {
        let owner = c.jsonpath(&ns.name, child, "{.metadata.ownerReferences[0].uid}");
        assert_eq!(owner, uid, "{child} is not owned by llmd/chat");
    }

    // A CPU variant never asks for a GPU.
    let gpu = "{.spec.template.spec.containers[0].resources.limits.nvidia\\.com/gpu}";
    assert_eq!(
        c.jsonpath(&ns.name, "deployment/chat-main", gpu),
        "",
        "CPU variant requests a GPU"
    );

    // The dashboard's weight panel: the weight in force, under the LlmDeployment's namespace.
    let weight = format!(
        "llamafleet_operator_variant_weight{{llmdeployment=\"chat\",namespace=\"{}\",variant=\"main\"}} 100",
        ns.name
    );
    assert!(operator.metrics().contains(&weight), "{weight} missing");

    // Deleting the LlmDeployment garbage-collects every child, and drops its series.
    c.kubectl_ok(&["delete", "-n", &ns.name, "llmd/chat"]);
    c.wait_until("children garbage-collected", CONVERGE_SECONDS, || {
        !exists(c, &ns.name, "deployment/chat-main")
            && !exists(c, &ns.name, "deployment/chat-router")
            && !exists(c, &ns.name, "configmap/chat-routing")
    });
    c.wait_until("its series dropped", CONVERGE_SECONDS, || {
        !operator.metrics().contains(&weight)
    });
}

fn migration_steps_follow_git(c: &Cluster) {
    let ns = c.namespace("e2e-migration");
    let n = &ns.name;
    apply(c, n, "migration/01-blue-only.yaml");
    c.wait_until("blue deployed", CONVERGE_SECONDS, || {
        exists(c, n, "deployment/assistant-blue")
    });

    apply(c, n, "migration/02-green-10.yaml");
    c.wait_until("weights 90/10", CONVERGE_SECONDS, || {
        c.jsonpath(n, "llmd/assistant", "{.status.weights}") == "blue=90,green=10"
    });
    let generation = |d: &str| c.jsonpath(n, &format!("deployment/{d}"), "{.metadata.generation}");
    let before: Vec<String> = ["assistant-blue", "assistant-green", "assistant-router"]
        .iter()
        .map(|d| generation(d))
        .collect();
    let routing = |c: &Cluster| c.jsonpath(n, "configmap/assistant-routing", "{.data}");
    let routing_before = routing(c);

    // A weight change is one Git commit: only the routing ConfigMap may change.
    apply(c, n, "migration/03-green-50.yaml");
    c.wait_until("weights 50/50", CONVERGE_SECONDS, || {
        c.jsonpath(n, "llmd/assistant", "{.status.weights}") == "blue=50,green=50"
    });
    let after: Vec<String> = ["assistant-blue", "assistant-green", "assistant-router"]
        .iter()
        .map(|d| generation(d))
        .collect();
    assert_eq!(
        before, after,
        "a weight change must not touch the Deployments"
    );
    assert_ne!(
        routing_before,
        routing(c),
        "the routing table must carry the new weights"
    );

    // The migration's variants ask for a GPU: their pods land only on the GPU node.
    let nodes = c.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        n,
        "-l",
        "app.kubernetes.io/component=variant",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeName} {end}",
    ]);
    assert!(
        nodes.split_whitespace().all(|node| node == "gpu-node"),
        "GPU pods on {nodes:?}"
    );

    apply(c, n, "migration/04-green-100.yaml");
    apply(c, n, "migration/05-blue-removed.yaml");
    c.wait_until("blue removed", CONVERGE_SECONDS, || {
        !exists(c, n, "deployment/assistant-blue")
            && !exists(c, n, "service/assistant-blue")
            && !exists(c, n, "poddisruptionbudget/assistant-blue")
    });
    assert!(exists(c, n, "deployment/assistant-green"));
    c.wait_until("status follows", CONVERGE_SECONDS, || {
        c.jsonpath(n, "llmd/assistant", "{.status.weights}") == "green=100"
    });
}

fn missing_model_is_a_condition_and_an_event(c: &Cluster, operator: &Operator) {
    let ns = c.namespace("e2e-missing");
    let n = &ns.name;
    let doc = r#"{"apiVersion":"llamafleet.dev/v1alpha1","kind":"LlmDeployment",
        "metadata":{"name":"orphan"},
        "spec":{"variants":[{"name":"main","model":"does-not-exist","weight":100}]}}"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orphan.json");
    std::fs::write(&file, doc).unwrap();
    c.kubectl_ok(&["apply", "-n", n, "-f", file.to_str().unwrap()]);
    let reason = "{.status.conditions[?(@.type==\"Ready\")].reason}";
    c.wait_until("ModelNotFound condition", CONVERGE_SECONDS, || {
        c.jsonpath(n, "llmd/orphan", reason) == "ModelNotFound"
    });
    c.wait_until("ModelNotFound Event", CONVERGE_SECONDS, || {
        c.kubectl_ok(&[
            "get",
            "events",
            "-n",
            n,
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .contains("ModelNotFound")
    });
    assert!(
        !exists(c, n, "deployment/orphan-main"),
        "nothing is built for a missing model"
    );

    // Not a hot loop: waiting on the missing model costs no further reconciles.
    let before = operator.reconciles_of(n, "orphan");
    assert!(
        before >= 1,
        "the operator's debug log shows no reconcile of orphan"
    );
    std::thread::sleep(std::time::Duration::from_secs(QUIET_SECONDS));
    let during = operator.reconciles_of(n, "orphan") - before;
    assert!(
        during <= 1,
        "{during} reconciles in {QUIET_SECONDS}s while waiting on a model"
    );
}
