//! Least privilege on a real API server: the operator runs as a ServiceAccount bound to the
//! chart's ClusterRole and leader-election Role (created from the rendered chart, token from
//! `kubectl create token`), with leader election on. It converges the quickstart, moves the
//! migration from blue to green (creating, applying, pruning) and reports a missing model with
//! an Event — and nothing it asked for was forbidden. What it must not do stays denied.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_e2e::{Cluster, cluster, helm, repo_root, run_ok, yaml_documents};

/// Long enough for a cold API server under a loaded 2-core CI machine; converging takes ~2 s.
const CONVERGE_SECONDS: u64 = 90;
/// Kinds of the chart that make up the operator's identity and permissions.
const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

fn apply_example(c: &Cluster, ns: &str, example: &str) {
    let path = repo_root().join("manifests/examples").join(example);
    c.kubectl_ok(&["apply", "-n", ns, "-f", path.to_str().unwrap()]);
}

/// The chart's ServiceAccount and RBAC objects for a release `release` in `ns`.
fn chart_rbac(helm: &std::path::Path, release: &str, ns: &str) -> String {
    let chart = repo_root().join("charts/llamafleet");
    let rendered = run_ok(
        helm,
        &[
            "template",
            release,
            chart.to_str().unwrap(),
            "--namespace",
            ns,
        ],
    );
    yaml_documents(&rendered)
        .into_iter()
        .filter(|d| RBAC_KINDS.iter().any(|k| d["kind"] == *k))
        .map(|d| serde_norway::to_string(&d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn operator_works_with_exactly_the_chart_rbac() {
    let Some(c) = cluster() else { return };
    let Some(helm) = helm() else { return };
    c.install_crds();
    let home = c.namespace("e2e-rbac-home");
    let release = home.name.clone();
    c.apply_yaml(&chart_rbac(&helm, &release, &home.name));
    let sa = format!("{release}-llamafleet");
    let _cluster_scoped = ClusterScoped { c: &c, name: &sa };
    let subject = format!("system:serviceaccount:{}:{sa}", home.name);

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = c.service_account_kubeconfig(dir.path(), &home.name, &sa);
    let as_operator = Cluster::with_kubeconfig(kubeconfig);
    let log = dir.path().join("operator.log");
    let operator = as_operator.spawn_operator(
        &[
            "--lease-namespace",
            &home.name,
            "--identity",
            "rbac-operator",
        ],
        &log,
    );

    c.wait_until("the operator holds the Lease", CONVERGE_SECONDS, || {
        c.kubectl(&[
            "get",
            "lease",
            "llamafleet-operator",
            "-n",
            &home.name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .stdout
            == "rbac-operator"
    });

    let apps = c.namespace("e2e-rbac-apps");
    let n = &apps.name;
    apply_example(&c, n, "quickstart.yaml");
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    c.wait_until("quickstart Ready", CONVERGE_SECONDS, || {
        c.jsonpath(n, "llmd/chat", ready) == "True"
    });

    // Create, then prune: blue goes, green comes.
    apply_example(&c, n, "migration/01-blue-only.yaml");
    c.wait_until("blue deployed", CONVERGE_SECONDS, || {
        c.kubectl(&["get", "-n", n, "deployment/assistant-blue"]).ok
    });
    apply_example(&c, n, "migration/05-blue-removed.yaml");
    c.wait_until("blue pruned, green deployed", CONVERGE_SECONDS, || {
        !c.kubectl(&["get", "-n", n, "deployment/assistant-blue"]).ok
            && c.kubectl(&["get", "-n", n, "deployment/assistant-green"])
                .ok
    });

    // A missing model: a condition and an Event (events.k8s.io create).
    c.kubectl_ok(&[
        "patch",
        "-n",
        n,
        "llmd/chat",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/variants/0/model","value":"no-such-model"}]"#,
    ]);
    c.wait_until("an Event about the missing model", CONVERGE_SECONDS, || {
        c.kubectl_ok(&["get", "events.events.k8s.io", "-n", n, "-o", "json"])
            .contains("no-such-model")
    });

    let logs = operator.logs();
    // Not a bare "403": timestamps' microseconds contain it (a flaky match once). Writes into
    // a namespace that an earlier test is still deleting are refused with 403 as well, by
    // the NamespaceLifecycle admission plugin, not by the authorizer: those do not count.
    let refused: Vec<&str> = logs
        .lines()
        .filter(|line| {
            ["forbidden", "Forbidden", "\"code\":403", "403 Forbidden"]
                .iter()
                .any(|needle| line.contains(needle))
                && !line.contains("NamespaceTerminating")
        })
        .collect();
    assert!(
        refused.is_empty(),
        "the operator was refused something:\n{}\n\nwhole log:\n{logs}",
        refused.join("\n")
    );
    assert!(logs.contains("children updated"), "{logs}");

    // What the role must not allow, asked of the API server's own authorizer.
    for (verb, resource) in [
        ("list", "secrets"),
        // Pods are listed (router replicas for rollout stats), nothing more.
        ("watch", "pods"),
        ("get", "pods"),
        ("delete", "pods"),
        ("create", "pods/exec"),
        ("update", "llmdeployments.llamafleet.dev"),
        ("delete", "llmmodels.llamafleet.dev"),
        ("create", "customresourcedefinitions.apiextensions.k8s.io"),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ] {
        let out = c.kubectl(&["auth", "can-i", verb, resource, "-A", "--as", &subject]);
        assert_eq!(out.stdout.trim(), "no", "{subject} may {verb} {resource}");
    }
    let lease_elsewhere = c.kubectl(&[
        "auth",
        "can-i",
        "patch",
        "leases.coordination.k8s.io",
        "-n",
        "default",
        "--as",
        &subject,
    ]);
    assert_eq!(lease_elsewhere.stdout.trim(), "no");
}

/// The chart's ClusterRole and ClusterRoleBinding of one test release, deleted on drop (a
/// namespace takes only its own objects with it).
struct ClusterScoped<'a> {
    c: &'a Cluster,
    name: &'a str,
}

impl Drop for ClusterScoped<'_> {
    fn drop(&mut self) {
        for kind in ["clusterrolebinding", "clusterrole"] {
            let _ = self.c.kubectl(&["delete", kind, self.name, "--wait=false"]);
        }
    }
}
