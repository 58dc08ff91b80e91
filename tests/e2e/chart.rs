//! The Helm chart, offline: its CRDs are the generated ones, `helm lint` is clean, what it
//! renders passes `kubernetes-validate --strict`, the operator Deployment is hardened,
//! `manifests/install.yaml` is exactly the rendered chart, the alert rules pass `promtool`
//! (syntax, and unit tests in `alerts_test.yaml`), every metric the rules and the dashboard
//! use is documented and exported (the operator's here, the agent's in
//! `agent/tests/chart_metrics.rs`), and labels reach Prometheus unrenamed. A missing tool
//! skips its test (and fails under CI).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use std::collections::BTreeSet;

use llamafleet_crds::metrics::AGENT_QUEUE_DEPTH;
use llamafleet_crds::metrics::PROMETHEUS_TARGET_LABELS;
use llamafleet_crds::testing::{chart_metric_names, exposition_labels, metric_names};
use llamafleet_e2e::{helm, repo_root, run_ok, tool, yaml_documents};
use llamafleet_operator::metrics::Metrics;
use llamafleet_operator::names::DEFAULT_AGENT_IMAGE;
use serde_json::Value;

/// Values that turn every optional object on.
const ALL_ON: [&str; 6] = [
    "--set",
    "metrics.serviceMonitor.enabled=true",
    "--set",
    "metrics.prometheusRule.enabled=true",
    "--set",
    "metrics.grafanaDashboard.enabled=true",
];

fn chart() -> PathBuf {
    repo_root().join("charts/llamafleet")
}

fn template(helm: &Path, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "llamafleet",
        chart.to_str().unwrap(),
        "--namespace",
        "llamafleet-system",
        "--include-crds",
    ];
    args.extend_from_slice(extra);
    run_ok(helm, &args)
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        v.sort();
        v
    };
    let generated = repo_root().join("crds");
    let in_chart = chart().join("crds");
    assert_eq!(names(&generated), names(&in_chart));
    for name in names(&generated) {
        assert!(
            std::fs::read(generated.join(&name)).unwrap()
                == std::fs::read(in_chart.join(&name)).unwrap(),
            "charts/llamafleet/crds/{name} differs from crds/{name}: cargo run -p llamafleet-crds --bin crdgen && bash charts/render-install.sh > manifests/install.yaml"
        );
    }
}

#[test]
fn helm_lint_is_clean() {
    let Some(helm) = helm() else { return };
    let chart = chart();
    for extra in [&[][..], &ALL_ON[..]] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = run_ok(&helm, &args);
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "helm lint {extra:?}:\n{out}"
        );
    }
}

#[test]
fn rendered_chart_passes_strict_validation() {
    let Some(helm) = helm() else { return };
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [("default", &[][..]), ("all-on", &ALL_ON[..])] {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, template(&helm, extra)).unwrap();
        let out = Command::new(&validate)
            .args(["--strict", file.to_str().unwrap()])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name}:\n{text}");
        assert!(!text.contains("ERROR"), "{name}:\n{text}");
    }
}

#[test]
fn operator_deployment_is_hardened_and_elects_a_leader() {
    let Some(helm) = helm() else { return };
    let docs = yaml_documents(&template(&helm, &[]));
    let deployment = find(&docs, "Deployment")[0];
    assert_eq!(deployment["spec"]["replicas"], 1);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
    }
    let env = container["env"].as_array().unwrap();
    let field = |name: &str| {
        env.iter().find(|e| e["name"] == name).unwrap()["valueFrom"]["fieldRef"]["fieldPath"]
            .clone()
    };
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    };
    assert_eq!(value("LLAMAFLEET_GPU_MEMORY_GIB"), Some("16".into()));
    // The chart's default images are the operator's own defaults, spelled out.
    assert_eq!(
        value("LLAMAFLEET_AGENT_IMAGE"),
        Some(DEFAULT_AGENT_IMAGE.into())
    );
    assert_eq!(
        value("LLAMAFLEET_AGENT_IMAGE_CUDA"),
        Some(format!("{DEFAULT_AGENT_IMAGE}-cuda13").into())
    );
    assert_eq!(
        value("LLAMAFLEET_AGENT_IMAGE_VULKAN"),
        Some(format!("{DEFAULT_AGENT_IMAGE}-vulkan").into())
    );
    assert_eq!(
        value("LLAMAFLEET_NO_RESOLVE"),
        None,
        "model sources resolved by default"
    );
    assert_eq!(field("POD_NAME"), "metadata.name");
    assert_eq!(field("POD_NAMESPACE"), "metadata.namespace");
    assert!(
        container["args"].is_null(),
        "leader election is on by default (no --no-leader-election)"
    );
    assert_eq!(
        find(&docs, "Role")[0]["rules"][1]["resourceNames"][0],
        "llamafleet-operator",
        "the Role may touch the operator's Lease only"
    );
}

#[test]
fn values_schema_and_template_reject_unsafe_values() {
    let Some(helm) = helm() else { return };
    let chart = chart();
    for bad in [
        &["--set", "operator.replicas=-1"][..],
        &["--set", "operator.unknownKey=1"][..],
        &["--set", "metrics.prometheusRule.thresholds.errorRate=2"][..],
        // Two replicas without the Lease would both reconcile.
        &[
            "--set",
            "operator.leaderElection=false",
            "--set",
            "operator.replicas=2",
        ][..],
        // The node cache's DaemonSet mounts the parent of the path from the host: never `/`.
        &["--set", "agent.cachePath=/models"][..],
        &["--set", "agent.cachePath=relative/models"][..],
        &["--set", "agent.cachePath=/var/lib/../models"][..],
    ] {
        let out = Command::new(&helm)
            .args(["template", "x", chart.to_str().unwrap()])
            .args(bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "helm template accepted {bad:?}");
    }
}

#[test]
fn install_yaml_is_the_rendered_chart() {
    let Some(helm) = helm() else { return };
    let out = Command::new("bash")
        .arg(repo_root().join("charts/render-install.sh"))
        .env("HELM", &helm)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = std::fs::read_to_string(repo_root().join("manifests/install.yaml")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == committed,
        "manifests/install.yaml is stale: bash charts/render-install.sh > manifests/install.yaml"
    );
}

#[test]
fn alert_rules_pass_promtool_and_use_documented_metrics() {
    let Some(helm) = helm() else { return };
    let docs = yaml_documents(&template(&helm, &ALL_ON));
    let rule = find(&docs, "PrometheusRule")[0];
    let alerts: Vec<&str> = rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for want in [
        "LlamafleetVariantDown",
        "LlamafleetErrorRateHigh",
        "LlamafleetTtftP95High",
        "LlamafleetRolloutRolledBack",
        "LlamafleetDownloadFailing",
        "LlamafleetGpuMemoryNearFull",
    ] {
        assert!(alerts.contains(&want), "{want} missing from {alerts:?}");
    }

    let dashboard = find(&docs, "ConfigMap")[0]["data"]["llamafleet.json"]
        .as_str()
        .unwrap()
        .to_string();
    let parsed: Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let documented = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let used = metric_names(&format!("{}{dashboard}", rule["spec"]));
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            documented.contains(&format!("`{name}`")),
            "{name} is used by an alert or the dashboard but not documented in docs/metrics.md"
        );
    }

    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_norway::to_string(&rule["spec"]).unwrap()).unwrap();
    let out = run_ok(&promtool, &["check", "rules", file.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
    // Each alert fires on the series it is about (labels, thresholds, `for`, annotations),
    // and a healthy fleet fires none.
    let unit = dir.path().join("alerts_test.yaml");
    std::fs::copy(repo_root().join("tests/e2e/alerts_test.yaml"), &unit).unwrap();
    let out = run_ok(&promtool, &["test", "rules", unit.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn gpu_agent_images_follow_the_agent_tag_unless_set() {
    let Some(helm) = helm() else { return };
    let images = |extra: &[&str]| {
        let docs = yaml_documents(&template(&helm, extra));
        let env = find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
            .clone();
        ["", "_CUDA", "_VULKAN"].map(|suffix| {
            let name = format!("LLAMAFLEET_AGENT_IMAGE{suffix}");
            let e = env.as_array().unwrap().iter().find(|e| e["name"] == name);
            e.unwrap()["value"].as_str().unwrap().to_string()
        })
    };
    assert_eq!(
        images(&["--set", "agent.image.tag=1.2.3"]),
        [
            "ghcr.io/llamafleet/agent:1.2.3",
            "ghcr.io/llamafleet/agent:1.2.3-cuda13",
            "ghcr.io/llamafleet/agent:1.2.3-vulkan",
        ]
    );
    let mirror = [
        "--set",
        "agent.image.repository=mirror.local/agent",
        "--set",
        "agent.vulkanImage.repository=mirror.local/agent-vulkan",
        "--set",
        "agent.vulkanImage.tag=b7",
    ];
    let [cpu, cuda, vulkan] = images(&mirror);
    assert_eq!(
        (cpu.as_str(), cuda.as_str(), vulkan.as_str()),
        (
            format!("mirror.local/agent:{}", env!("CARGO_PKG_VERSION")).as_str(),
            format!("mirror.local/agent:{}-cuda13", env!("CARGO_PKG_VERSION")).as_str(),
            "mirror.local/agent-vulkan:b7",
        )
    );
}

#[test]
fn secret_reads_can_be_turned_off() {
    let Some(helm) = helm() else { return };
    let secrets_rule = |extra: &[&str]| {
        let docs = yaml_documents(&template(&helm, extra));
        let role = find(&docs, "ClusterRole")[0].clone();
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resources"][0] == "secrets")
            .cloned()
    };
    let on = secrets_rule(&[]).expect("on by default, for authSecretRef");
    assert_eq!(
        on["verbs"],
        serde_json::json!(["get"]),
        "never list or watch"
    );
    assert!(secrets_rule(&["--set", "rbac.modelSourceSecrets=false"]).is_none());
}

/// The operator's `/metrics` with a series in every family (a vector without one renders
/// nothing): a new family the chart queries needs a line here.
fn operator_exposition() -> String {
    let m = Metrics::new();
    m.reconciles.with_label_values(&["llmdeployment"]).inc();
    m.errors.with_label_values(&["llmdeployment", "Kube"]).inc();
    m.duration
        .with_label_values(&["llmdeployment"])
        .observe(0.1);
    m.managed.with_label_values(&["LlmDeployment"]).set(1);
    m.rollout_decisions.with_label_values(&["started"]).inc();
    m.rollbacks.with_label_values(&["apps", "chat"]).inc();
    m.set_deployment("apps", "chat", &[("blue", 90), ("green", 10)], Some(1));
    m.render()
}

/// A renamed or dropped series fails here rather than leaving a panel or an alert silent.
#[test]
fn chart_queries_only_series_the_operator_exports() {
    let exported = exposition_labels(&operator_exposition());
    let used = chart_metric_names();
    assert!(used.len() >= 20, "{used:?}");
    for name in &used {
        assert!(
            [
                "llamafleet_operator_",
                "llamafleet_agent_",
                "llamafleet_router_"
            ]
            .iter()
            .any(|p| name.starts_with(p)),
            "{name} has no exporter's prefix, so no test checks that it exists"
        );
        if name.starts_with("llamafleet_operator_") {
            assert!(
                exported.contains_key(name),
                "the chart queries {name}, which the operator does not export"
            );
        }
    }
}

/// The operator's per-LlmDeployment series carry `namespace`: without `honorLabels` the
/// rollback alert and the rollout panels would name the operator's namespace instead.
#[test]
fn operator_labels_reach_prometheus_unrenamed() {
    let Some(helm) = helm() else { return };
    let docs = yaml_documents(&template(&helm, &ALL_ON));
    let monitors = find(&docs, "ServiceMonitor");
    let endpoint = |suffix: &str| {
        let monitor = monitors
            .iter()
            .find(|m| m["metadata"]["name"].as_str().unwrap().ends_with(suffix))
            .unwrap();
        monitor["spec"]["endpoints"][0].clone()
    };
    let clashing: BTreeSet<String> = exposition_labels(&operator_exposition())
        .into_values()
        .flatten()
        .filter(|l| PROMETHEUS_TARGET_LABELS.contains(&l.as_str()))
        .collect();
    assert!(clashing.contains("namespace"), "{clashing:?}");
    assert_eq!(
        endpoint("-operator")["honorLabels"],
        true,
        "the operator's {clashing:?} labels would arrive as exported_*"
    );
    // Agents run in application namespaces; their series carry no target label
    // (agent/tests/chart_metrics.rs), and the scrape's labels stay authoritative.
    assert_eq!(endpoint("-agents")["honorLabels"], Value::Null);
}

/// The prometheus-adapter rule in docs/metrics.md serves the series the variant HPA asks for.
#[test]
fn documented_adapter_rule_serves_the_queue_depth_hpa_metric() {
    let doc = std::fs::read_to_string(repo_root().join("docs/metrics.md")).unwrap();
    let section = doc
        .split("## Autoscaling on queue depth")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let block = section.split("```yaml\n").nth(1).unwrap();
    let values = &yaml_documents(block.split("```").next().unwrap())[0];
    let rule = &values["rules"]["custom"][0];
    let query = rule["seriesQuery"].as_str().unwrap();
    assert_eq!(
        metric_names(query),
        BTreeSet::from([AGENT_QUEUE_DEPTH.to_string()])
    );
    assert_eq!(rule["name"]["as"], AGENT_QUEUE_DEPTH);
    assert_eq!(rule["resources"]["overrides"]["pod"]["resource"], "pod");
}

/// The node cache's DaemonSet: on by default, on every node (it tolerates every taint, so GPU
/// nodes get it too), mounting only the parent of `agent.cachePath`; its init container is the
/// one root process of the chart, with CHOWN and FOWNER alone; its main container is as
/// locked down as the operator's. Off with `nodeCache.enabled=false`.
#[test]
fn node_cache_daemonset_prepares_the_cache_with_the_least_privilege() {
    let Some(helm) = helm() else { return };
    let docs = yaml_documents(&template(
        &helm,
        &["--set", "agent.cachePath=/mnt/nvme/models"],
    ));
    let ds = find(&docs, "DaemonSet");
    assert_eq!(ds.len(), 1, "one DaemonSet");
    let pod = &ds[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let volumes = pod["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["hostPath"]["path"], "/mnt/nvme");
    let init = &pod["initContainers"][0]["securityContext"];
    assert_eq!(init["runAsUser"], 0);
    assert_eq!(init["allowPrivilegeEscalation"], false);
    assert_eq!(init["readOnlyRootFilesystem"], true);
    assert_eq!(init["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        init["capabilities"]["add"],
        serde_json::json!(["CHOWN", "FOWNER"])
    );
    let main = &pod["containers"][0]["securityContext"];
    assert_eq!(main["runAsNonRoot"], true);
    assert_eq!(main["runAsUser"], 65532);
    assert_eq!(main["readOnlyRootFilesystem"], true);
    assert_eq!(main["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(main["capabilities"]["add"].is_null(), "{main}");

    let off = yaml_documents(&template(&helm, &["--set", "nodeCache.enabled=false"]));
    assert!(find(&off, "DaemonSet").is_empty());
}
