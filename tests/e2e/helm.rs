//! `helm install` of the chart into a real API server (kwok plays the operator pod, so the
//! Deployment becomes Available without running anything), then `helm uninstall`: nothing of
//! the release is left — except the CRDs, which Helm never deletes (charts' `crds/` are
//! install-only by design, so uninstalling cannot wipe every LlmModel and LlmDeployment).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_e2e::{Cluster, cluster, helm, repo_root, run_ok};

/// Namespaced kinds a release could leave behind.
const NAMESPACED: &str =
    "deployments,replicasets,pods,services,serviceaccounts,configmaps,secrets,roles,rolebindings";

fn release_objects(c: &Cluster, ns: &str, release: &str) -> String {
    let selector = format!("app.kubernetes.io/instance={release}");
    let namespaced = c.kubectl_ok(&["get", NAMESPACED, "-n", ns, "-l", &selector, "-o", "name"]);
    let cluster_scoped = c.kubectl_ok(&[
        "get",
        "clusterroles,clusterrolebindings",
        "-l",
        &selector,
        "-o",
        "name",
    ]);
    // Helm's own release record.
    let records = c.kubectl_ok(&["get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name"]);
    format!("{namespaced}{cluster_scoped}{records}")
}

#[test]
fn helm_install_then_uninstall_leaves_only_the_crds() {
    let Some(c) = cluster() else { return };
    let Some(helm) = helm() else { return };
    let ns = c.namespace("e2e-helm");
    let release = ns.name.clone();
    let kubeconfig = c.kubeconfig().to_str().unwrap().to_string();
    let chart = repo_root().join("charts/llamafleet");
    run_ok(
        &helm,
        &[
            "install",
            &release,
            chart.to_str().unwrap(),
            "--namespace",
            &ns.name,
            "--kubeconfig",
            &kubeconfig,
            "--wait",
            "--timeout",
            "120s",
        ],
    );
    let deployment = format!("deployment/{release}-llamafleet");
    assert_eq!(
        c.jsonpath(&ns.name, &deployment, "{.status.availableReplicas}"),
        "1",
        "kwok runs the operator pod"
    );
    let env = c.jsonpath(
        &ns.name,
        &deployment,
        "{.spec.template.spec.containers[0].env[*].name}",
    );
    assert!(
        env.contains("POD_NAME") && env.contains("POD_NAMESPACE"),
        "{env}"
    );
    for crd in ["llmmodels.llamafleet.dev", "llmdeployments.llamafleet.dev"] {
        c.kubectl_ok(&["get", "crd", crd]);
    }
    assert!(!release_objects(&c, &ns.name, &release).is_empty());

    run_ok(
        &helm,
        &[
            "uninstall",
            &release,
            "--namespace",
            &ns.name,
            "--kubeconfig",
            &kubeconfig,
            "--wait",
            "--timeout",
            "120s",
        ],
    );
    c.wait_until("every object of the release gone", 60, || {
        release_objects(&c, &ns.name, &release).is_empty()
    });
    // Kept by design: deleting a CRD deletes every custom resource of its kind.
    for crd in ["llmmodels.llamafleet.dev", "llmdeployments.llamafleet.dev"] {
        c.kubectl_ok(&["get", "crd", crd]);
    }
    c.hand_crds_back();
}
