//! Build step on the shipped examples, asserted field by field, no client involved.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use llamafleet_crds::{RolloutPhase, RolloutStatus};
use llamafleet_operator::build::gpu::AgentImages;
use llamafleet_operator::build::routing::RoutingTable;
use llamafleet_operator::build::{self, BuildOptions, Child, Children};
use llamafleet_operator::names::CACHE_DIR;
use llamafleet_operator::render;
use llamafleet_operator::rollout::{self, Outcome};
use pods::{plan_of_examples, plan_of_inputs, pod_spec, read_examples};
use sha2::Digest;

#[path = "support/pods.rs"]
mod pods;

const IMAGE: &str = "ghcr.io/llamafleet/agent:test";
const SHA: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

fn example(rel: &str) -> PathBuf {
    llamafleet_crds::testing::examples_dir().join(rel)
}

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "llamafleet.dev/v1alpha1".into(),
        kind: "LlmDeployment".into(),
        name: "x".into(),
        uid: "uid-1".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Builds the (single) deployment of the given example files.
fn build_example(files: &[&str]) -> Children {
    build_example_with_cache(files, CACHE_DIR)
}

/// [`build_example`] with the operator's `--cache-path` set to `cache_path`.
fn build_example_with_cache(files: &[&str], cache_path: &str) -> Children {
    build::build(
        &plan_of_examples(files),
        &BuildOptions {
            images: AgentImages::derived(IMAGE).unwrap(),
            owner: Some(owner()),
            cache_path: cache_path.into(),
        },
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn container(children: &Children, variant: usize) -> Container {
    let pod = pod_spec(children, variant);
    assert_eq!(pod.containers.len(), 1);
    pod.containers[0].clone()
}

#[test]
fn quickstart_variant_deployment() {
    let c = build_example(&["quickstart.yaml"]);
    assert_eq!(c.variants.len(), 1);
    let d = &c.variants[0].deployment;
    assert_eq!(d.metadata.name.as_deref(), Some("chat-main"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(d.metadata.owner_references, Some(vec![owner()]));
    let selector = labels(&[
        ("app.kubernetes.io/name", "llamafleet"),
        ("app.kubernetes.io/instance", "chat"),
        ("app.kubernetes.io/component", "variant"),
        ("llamafleet.dev/variant", "main"),
    ]);
    let mut object_labels = selector.clone();
    object_labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "llamafleet-operator".into(),
    );
    assert_eq!(d.metadata.labels, Some(object_labels.clone()));
    let spec = d.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.selector.match_labels, Some(selector));
    assert_eq!(spec.template.metadata.unwrap().labels, Some(object_labels));

    let ct = container(&c, 0);
    assert_eq!(ct.image.as_deref(), Some(IMAGE));
    assert_eq!(ct.command, Some(strings(&["llamafleet-agent"])));
    let url =
        "https://huggingface.co/ggml-org/gemma-3-270m-GGUF/resolve/main/gemma-3-270m-Q4_K_M.gguf";
    assert_eq!(
        ct.args,
        Some(strings(&[
            "serve",
            "--model",
            url,
            "--sha256",
            SHA,
            "--cache-dir",
            "/var/lib/llamafleet/models",
            "--keep-file",
            "/etc/llamafleet/keep/keep.yaml",
            "--failure-linger",
            "60",
            "--grace",
            "110",
            "--hold-permanent-failure",
            "--listen",
            "0.0.0.0:8080",
            "--ctx",
            "4096",
            "--parallel",
            "4",
            "--gpu-layers",
            "0",
            "--model-name",
            "chat",
        ]))
    );
    // The agent's drain ends before the kubelet's SIGKILL, with time left to send the error
    // events of the streams still open (a stream is never cut by a deleted pod).
    let args = ct.args.clone().unwrap();
    let grace_at = args.iter().position(|a| a == "--grace").unwrap();
    let agent_grace: i64 = args[grace_at + 1].parse().unwrap();
    let pod_grace = spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.termination_grace_period_seconds)
        .unwrap();
    assert!(
        agent_grace + 5 <= pod_grace,
        "agent --grace {agent_grace} s, pod {pod_grace} s"
    );
    let port = &ct.ports.clone().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("http"), 8080)
    );
    let ready = ct.readiness_probe.unwrap().http_get.unwrap();
    assert_eq!(ready.path.as_deref(), Some("/readyz"));
    assert_eq!(ready.port, IntOrString::String("http".into()));
    let live = ct.liveness_probe.unwrap();
    assert_eq!(live.http_get.unwrap().path.as_deref(), Some("/healthz"));
    assert_eq!(live.initial_delay_seconds, Some(60));
    assert_eq!(live.failure_threshold, Some(6));
    let res = ct.resources.unwrap();
    let q = |s: &str| Quantity(s.into());
    assert_eq!(
        res.requests,
        Some(BTreeMap::from([
            ("cpu".into(), q("2")),
            ("memory".into(), q("1Gi"))
        ]))
    );
    assert_eq!(
        res.limits,
        Some(BTreeMap::from([("memory".into(), q("1Gi"))]))
    );
    let mount = &ct.volume_mounts.unwrap()[0];
    assert_eq!(
        (mount.name.as_str(), mount.mount_path.as_str()),
        ("model-cache", "/var/lib/llamafleet/models")
    );
    let pod = spec.template.spec.unwrap();
    let vol = &pod.volumes.unwrap()[0];
    assert_eq!(vol.name, "model-cache");
    assert_eq!(
        vol.persistent_volume_claim.clone().unwrap().claim_name,
        "llamafleet-model-cache",
        "the node cache's claim"
    );
    assert_eq!(vol.host_path, None);
    assert_eq!(pod.node_selector, None);
    assert_eq!(pod.tolerations, None);
}

/// `(hostPath and its type, claim, mount path)` of variant 0's cache volume.
fn cache_of(c: &Children) -> (Option<(String, String)>, Option<String>, String) {
    let pod = pod_spec(c, 0);
    let mount = pod.containers[0].volume_mounts.clone().unwrap()[0]
        .mount_path
        .clone();
    let vol = pod.volumes.unwrap()[0].clone();
    let host = vol.host_path.map(|h| (h.path, h.type_.unwrap_or_default()));
    let claim = vol.persistent_volume_claim.map(|p| p.claim_name);
    (host, claim, mount)
}

#[test]
fn no_spec_cache_mounts_the_node_cache_claim_and_the_spec_wins() {
    // No spec.cache: the node cache's claim, whatever the operator's flag (that is the path
    // of the claim's volume, tests/node_cache.rs); the container's path stays.
    let quickstart = build_example_with_cache(&["quickstart.yaml"], "/mnt/nvme/llamafleet");
    assert_eq!(
        cache_of(&quickstart),
        (
            None,
            Some("llamafleet-model-cache".into()),
            CACHE_DIR.into()
        )
    );
    // spec.cache.hostPath: that node directory, which must exist (a kubelet-made one would be
    // root's, unwritable to the agent).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("own-cache.yaml");
    let yaml = std::fs::read_to_string(example("quickstart.yaml")).unwrap()
        + "  cache:\n    hostPath: /data/models\n";
    std::fs::write(&file, yaml).unwrap();
    let own = build_example_with_cache(&[file.to_str().unwrap()], "/mnt/nvme/llamafleet");
    assert_eq!(
        cache_of(&own),
        (
            Some(("/data/models".into(), "Directory".into())),
            None,
            CACHE_DIR.into()
        )
    );
    // spec.cache.pvc: the user's own claim.
    let pvc = build_example_with_cache(&["migration/02-green-10.yaml", "progressive.yaml"], "/x");
    assert_eq!(cache_of(&pvc).1.as_deref(), Some("llamafleet-models"));
}

#[test]
fn quickstart_service_pdb_no_hpa() {
    let c = build_example(&["quickstart.yaml"]);
    let v = &c.variants[0];
    let svc = v.service.spec.clone().unwrap();
    assert_eq!(v.service.metadata.name.as_deref(), Some("chat-main"));
    assert_eq!(svc.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        svc.selector,
        v.deployment.spec.clone().unwrap().selector.match_labels
    );
    let port = &svc.ports.unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));
    assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
    let pdb = v.pdb.spec.clone().unwrap();
    assert_eq!(v.pdb.metadata.owner_references, Some(vec![owner()]));
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(pdb.selector.unwrap().match_labels, svc.selector);
    assert_eq!(v.hpa, None);
}

#[test]
fn quickstart_router_configmap_and_stable_service() {
    let c = build_example(&["quickstart.yaml"]);
    assert_eq!(c.routing.metadata.name.as_deref(), Some("chat-routing"));
    assert_eq!(c.routing.metadata.owner_references, Some(vec![owner()]));
    let yaml = &c.routing.data.as_ref().unwrap()["routing.yaml"];
    let table: RoutingTable = serde_norway::from_str(yaml).unwrap();
    assert_eq!(table.variants.len(), 1);
    assert_eq!(table.variants[0].url, "http://chat-main.default.svc:8080");
    assert_eq!(
        (table.variants[0].weight, table.variants[0].model.as_str()),
        (100, "gemma3-270m")
    );
    let tiers: Vec<(String, u32)> = table
        .tiers
        .iter()
        .map(|t| (t.name.clone(), t.requests_per_hour))
        .collect();
    assert_eq!(
        tiers,
        vec![
            ("free".into(), 10),
            ("premium".into(), 100),
            ("enterprise".into(), 1000)
        ]
    );
    assert_eq!(table.api_keys_dir, None);

    let router = c.router.spec.clone().unwrap();
    assert_eq!(c.router.metadata.name.as_deref(), Some("chat-router"));
    assert_eq!(router.replicas, Some(2));
    let selector = labels(&[
        ("app.kubernetes.io/name", "llamafleet"),
        ("app.kubernetes.io/instance", "chat"),
        ("app.kubernetes.io/component", "router"),
    ]);
    assert_eq!(router.selector.match_labels, Some(selector.clone()));
    let pod = router.template.spec.unwrap();
    let ct = &pod.containers[0];
    assert_eq!(
        ct.args,
        Some(strings(&[
            "route",
            "--config",
            "/etc/llamafleet/routing/routing.yaml"
        ]))
    );
    let mounts = ct.volume_mounts.clone().unwrap();
    assert_eq!(mounts.len(), 1, "no API-key Secret in the quickstart");
    assert_eq!(mounts[0].mount_path, "/etc/llamafleet/routing");
    let vols = pod.volumes.unwrap();
    assert_eq!(vols[0].config_map.clone().unwrap().name, "chat-routing");
    // Weight changes must not restart routers: nothing in the template depends on the table.
    assert_eq!(router.template.metadata.unwrap().annotations, None);

    let svc = c.service.spec.clone().unwrap();
    assert_eq!(c.service.metadata.name.as_deref(), Some("chat"));
    assert_eq!(svc.selector, Some(selector));
    let port = &svc.ports.unwrap()[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (80, Some(IntOrString::String("http".into())))
    );
}

#[test]
fn migration_green_10_two_variants_with_gpu_and_keys() {
    let c = build_example(&["migration/02-green-10.yaml"]);
    let names: Vec<_> = c.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["blue", "green"]);
    for (i, model_url) in [
        "https://huggingface.co/IlyaGusev/saiga_mistral_7b_gguf/resolve/main/model-q4_K.gguf",
        "https://huggingface.co/Vikhrmodels/Vistral-24B-Instruct-GGUF/resolve/main/Vistral-24B-Instruct-Q4_K_M.gguf",
    ]
    .iter()
    .enumerate()
    {
        let ct = container(&c, i);
        assert_eq!(
            ct.args,
            Some(strings(&[
                "serve",
                "--model",
                model_url,
                "--cache-dir",
                "/var/lib/llamafleet/models",
                "--keep-file",
                "/etc/llamafleet/keep/keep.yaml",
                "--failure-linger",
                "60",
                "--grace",
                "110",
                "--hold-permanent-failure",
                "--listen",
                "0.0.0.0:8080",
                "--ctx",
                "8192",
                "--parallel",
                "4",
                "--gpu-layers",
                "auto",
                "--model-name",
                "assistant",
                "--preset",
                "/etc/llamafleet/presets/presets.yaml",
            ])),
            "no sha256 in the spec: no --sha256"
        );
        let limits = ct.resources.unwrap().limits.unwrap();
        assert_eq!(limits, BTreeMap::from([("nvidia.com/gpu".into(), Quantity("1".into()))]));
        assert_eq!(c.variants[i].deployment.spec.clone().unwrap().replicas, Some(2));
    }
    let table: RoutingTable =
        serde_norway::from_str(&c.routing.data.as_ref().unwrap()["routing.yaml"]).unwrap();
    let weights: Vec<_> = table
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.weight))
        .collect();
    assert_eq!(weights, [("blue", 90), ("green", 10)]);
    assert_eq!(
        table.variants[1].url,
        "http://assistant-green.default.svc:8080"
    );
    assert_eq!(table.presets[0].name, "assistant-support");
    assert_eq!(table.api_keys_dir.as_deref(), Some("/etc/llamafleet/keys"));
    let yaml = &c.routing.data.as_ref().unwrap()["routing.yaml"];
    assert!(
        !yaml.contains("assistant-api-keys"),
        "the Secret stays out of the ConfigMap"
    );

    let pod = c.router.spec.clone().unwrap().template.spec.unwrap();
    let keys = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "api-keys")
        .unwrap();
    assert_eq!(
        keys.secret.unwrap().secret_name.as_deref(),
        Some("assistant-api-keys")
    );
    let mount = pod.containers[0]
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "api-keys")
        .unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/llamafleet/keys", Some(true))
    );
}

#[test]
fn weight_change_between_migration_steps_changes_only_the_routing_config_map() {
    let step2 = build_example(&["migration/02-green-10.yaml"]);
    let step3 = build_example(&["migration/03-green-50.yaml"]);
    assert_ne!(step2.routing, step3.routing);
    assert_eq!(step2.variants, step3.variants);
    assert_eq!(step2.router, step3.router);
    assert_eq!(step2.service, step3.service);
}

#[test]
fn migration_blue_removed_has_only_green() {
    let c = build_example(&["migration/05-blue-removed.yaml"]);
    let objects: Vec<(String, String)> = c
        .into_ordered()
        .iter()
        .map(|o| (o.kind().to_string(), o.name().to_string()))
        .collect();
    let expect = [
        ("ConfigMap", "assistant-routing"),
        ("Deployment", "assistant-green"),
        ("Service", "assistant-green"),
        ("PodDisruptionBudget", "assistant-green"),
        ("ServiceAccount", "assistant-router"),
        ("Role", "assistant-router"),
        ("RoleBinding", "assistant-router"),
        ("Deployment", "assistant-router"),
        ("Service", "assistant"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(k, n)| ((*k).into(), (*n).into()))
        .collect();
    assert_eq!(objects, expect);
}

#[test]
fn progressive_pvc_hpa_scheduling_and_variant_override() {
    let c = build_example(&["migration/02-green-10.yaml", "progressive.yaml"]);
    let candidate = container(&c, 1);
    let args = candidate.args.unwrap();
    let gpu_layers = args.iter().position(|a| a == "--gpu-layers").unwrap();
    assert_eq!(
        args[gpu_layers + 1],
        "40",
        "variant serving.gpu overrides the deployment's"
    );
    let threads = args.iter().position(|a| a == "--threads").unwrap();
    assert_eq!(args[threads + 1], "8");
    let d = c.variants[1].deployment.spec.clone().unwrap();
    assert_eq!(d.replicas, None, "the HPA owns the replica count");
    let pod = d.template.spec.unwrap();
    let vol = &pod.volumes.unwrap()[0];
    assert_eq!(
        vol.persistent_volume_claim.clone().unwrap().claim_name,
        "llamafleet-models"
    );
    assert_eq!(vol.host_path, None);
    assert_eq!(
        pod.node_selector,
        Some(BTreeMap::from([(
            "nvidia.com/gpu.present".into(),
            "true".into()
        )]))
    );
    let tol = &pod.tolerations.unwrap()[0];
    assert_eq!(tol.key.as_deref(), Some("nvidia.com/gpu"));
    let hpa = c.variants[1].hpa.clone().unwrap();
    assert_eq!(
        hpa.metadata.name.as_deref(),
        Some("assistant-progressive-candidate")
    );
    let spec = hpa.spec.unwrap();
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 6));
    assert_eq!(
        spec.scale_target_ref.name,
        "assistant-progressive-candidate"
    );
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    let metric = &spec.metrics.unwrap()[0];
    let target = metric.resource.clone().unwrap().target;
    assert_eq!(
        (target.type_.as_str(), target.average_utilization),
        ("Utilization", Some(70))
    );
    let table: RoutingTable =
        serde_norway::from_str(&c.routing.data.as_ref().unwrap()["routing.yaml"]).unwrap();
    let shadow = table.shadow.unwrap();
    assert_eq!((shadow.variant.as_str(), shadow.percent), ("candidate", 5));
    assert_eq!(table.cors_origins, ["https://app.example.com"]);
    assert_eq!(table.limits.unwrap().max_tokens, Some(2048));
    assert_eq!(table.tiers[0].tokens_per_hour, Some(20000));
    assert_eq!(table.sticky_header.as_deref(), Some("x-session-id"));
}

/// `targetQueueDepth` asks the custom metrics API for the gauge the agent really exports (an
/// HPA on a name nobody exports reports `FailedGetPodsMetric` and never scales).
#[test]
fn queue_depth_hpa_names_the_agents_queue_gauge() {
    let mut plan = plan_of_examples(&["migration/02-green-10.yaml", "progressive.yaml"]);
    plan.spec.autoscaling.as_mut().unwrap().target_queue_depth = Some(4);
    let opts = BuildOptions {
        images: AgentImages::derived(IMAGE).unwrap(),
        owner: Some(owner()),
        cache_path: CACHE_DIR.into(),
    };
    let c = build::build(&plan, &opts);
    let metrics = c.variants[0].hpa.clone().unwrap().spec.unwrap().metrics;
    let pods = metrics.unwrap()[1].pods.clone().unwrap();
    assert_eq!(pods.metric.name, "llamafleet_agent_queue_depth");
    assert_eq!(
        pods.metric.name,
        llamafleet_crds::metrics::AGENT_QUEUE_DEPTH
    );
    assert_eq!(pods.target.type_, "AverageValue");
    assert_eq!(pods.target.average_value, Some(Quantity("4".into())));
}

/// The agents' ServiceMonitor copies `llamafleet.dev/variant` of a Service into the `variant`
/// label of its series; on the router's Service it must be absent, or the router's own
/// per-variant series would be renamed `exported_variant` (it does not honour labels).
#[test]
fn router_service_carries_no_variant_label() {
    let c = build_example(&["migration/02-green-10.yaml"]);
    for labels in [&c.service.metadata.labels, &c.router.metadata.labels] {
        assert!(
            !labels
                .as_ref()
                .unwrap()
                .contains_key("llamafleet.dev/variant")
        );
    }
    let variant = c.variants[0].service.metadata.labels.as_ref().unwrap();
    assert_eq!(variant["llamafleet.dev/variant"], "blue");
}

#[test]
fn rollout_weights_go_into_the_table_and_a_retired_variant_scales_to_zero() {
    let mut plan = plan_of_examples(&["migration/02-green-10.yaml", "progressive.yaml"]);
    plan.spec.variants[0].weight = 0;
    plan.spec.variants[1].weight = 100;
    let promoted = Outcome {
        weights: vec![("stable".into(), 0), ("candidate".into(), 100)],
        rollout: Some(RolloutStatus {
            phase: Some(RolloutPhase::Promoted),
            baseline: Some("stable=100,candidate=0".into()),
            ..RolloutStatus::default()
        }),
        notice: None,
        requeue: None,
        retire: vec!["stable".into()],
    };
    let mut midway = plan.clone();
    rollout::apply_to(&mut plan, &promoted);
    let opts = BuildOptions {
        images: AgentImages::derived(IMAGE).unwrap(),
        owner: Some(owner()),
        cache_path: CACHE_DIR.into(),
    };
    let c = build::build(&plan, &opts);
    let stable = &c.variants[0];
    assert_eq!(stable.deployment.spec.as_ref().unwrap().replicas, Some(0));
    assert!(stable.hpa.is_none(), "an HPA would scale it back up");
    assert!(c.variants[1].hpa.is_some());
    let table: RoutingTable =
        serde_norway::from_str(&c.routing.data.as_ref().unwrap()["routing.yaml"]).unwrap();
    assert_eq!(table.revision(), "stable=0,candidate=100");

    // Mid-rollout the table carries the effective weights, not the spec's, and nothing
    // is retired.
    let step = Outcome {
        weights: vec![("stable".into(), 75), ("candidate".into(), 25)],
        rollout: Some(RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            baseline: Some("stable=100,candidate=0".into()),
            ..RolloutStatus::default()
        }),
        notice: None,
        requeue: None,
        retire: Vec::new(),
    };
    rollout::apply_to(&mut midway, &step);
    let c = build::build(&midway, &opts);
    let table: RoutingTable =
        serde_norway::from_str(&c.routing.data.as_ref().unwrap()["routing.yaml"]).unwrap();
    assert_eq!(table.revision(), "stable=75,candidate=25");
    assert!(c.variants[0].hpa.is_some());
}

#[test]
fn children_serialize_with_api_version_and_kind() {
    let c = build_example(&["quickstart.yaml"]);
    for child in c.into_ordered() {
        let v = serde_json::to_value(&child).unwrap();
        assert!(v["apiVersion"].is_string(), "{v}");
        assert_eq!(v["kind"], child.kind());
        if let Child::Hpa(_) = child {
            assert_eq!(v["apiVersion"], "autoscaling/v2");
        }
    }
}

#[test]
fn agents_answer_the_deployment_name_its_presets_and_its_limits() {
    let c = build_example(&["migration/02-green-10.yaml", "progressive.yaml"]);
    let args = container(&c, 0).args.unwrap();
    let tail = &args[args.iter().position(|a| a == "--model-name").unwrap()..];
    assert_eq!(
        tail,
        strings(&[
            "--model-name",
            "assistant-progressive",
            "--max-body-bytes",
            "1048576",
            "--request-timeout",
            "300",
            "--max-prompt-tokens",
            "6000",
            "--max-tokens",
            "2048",
            "--preset",
            "/etc/llamafleet/presets/presets.yaml",
        ])
    );
    // The presets file is the CRD's own list, beside the routing table.
    let data = c.routing.data.clone().unwrap();
    let yaml = &data["presets.yaml"];
    let presets: Vec<llamafleet_crds::Preset> = serde_norway::from_str(yaml).unwrap();
    assert_eq!(presets.len(), 1);
    assert_eq!(presets[0].name, "assistant-creative");
    let template = c.variants[0].deployment.spec.clone().unwrap().template;
    let pod = template.spec.unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "presets")
        .unwrap();
    let source = volume.config_map.unwrap();
    assert_eq!(source.name, "assistant-progressive-routing");
    assert_eq!(source.items.unwrap()[0].key, "presets.yaml");
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "presets" && m.mount_path == "/etc/llamafleet/presets")
    );
    // Agents read presets once: a change of the file must roll the pods.
    let annotations = template.metadata.unwrap().annotations.unwrap();
    let sha = hex::encode(sha2::Sha256::digest(yaml.as_bytes()));
    assert_eq!(annotations["llamafleet.dev/presets-sha256"], sha);

    let quick = build_example(&["quickstart.yaml"]);
    assert!(
        !quick
            .routing
            .data
            .clone()
            .unwrap()
            .contains_key("presets.yaml")
    );
    let pod = quick.variants[0].deployment.spec.clone().unwrap().template;
    assert!(pod.metadata.unwrap().annotations.is_none());
    assert!(
        !container(&quick, 0)
            .args
            .unwrap()
            .contains(&"--preset".to_string())
    );
}

/// An LlmModel that allows plain http has its agents told so: without `--allow-http` the agent
/// refuses the very URL the operator resolved (found running the quickstart on real pods).
#[test]
fn a_model_that_allows_plain_http_passes_allow_http_to_its_agents() {
    let mut inputs = read_examples(&["quickstart.yaml"]);
    let args_with = |inputs: &render::Inputs| {
        let plan = plan_of_inputs(inputs);
        build::variant::serve_args(&plan, &plan.variants[0])
    };
    assert!(
        !args_with(&inputs).contains(&"--allow-http".to_string()),
        "https source: no --allow-http"
    );
    for m in inputs.models.values_mut() {
        m.spec.source.url = "http://models.example.svc/m.gguf".into();
        m.spec.source.allow_insecure_http = Some(true);
    }
    let args = args_with(&inputs);
    assert!(args.contains(&"--allow-http".to_string()), "{args:?}");
}

/// A private source's token (`authSecretRef`) reaches the agents, which download the file
/// themselves: the Secret's key as a read-only file, passed as `--token-file` (before, the
/// operator resolved the source with it and the agents got a 401).
#[test]
fn a_private_model_source_gives_its_agents_the_token_file() {
    let mut inputs = read_examples(&["quickstart.yaml"]);
    for m in inputs.models.values_mut() {
        m.spec.source.auth_secret_ref = Some(llamafleet_crds::SecretKeyRef {
            name: "hf-token".into(),
            key: Some("hf".into()),
        });
    }
    let plan = plan_of_inputs(&inputs);
    let children = build::build(
        &plan,
        &BuildOptions {
            images: AgentImages::derived("ghcr.io/llamafleet/agent:test").unwrap(),
            owner: None,
            cache_path: CACHE_DIR.into(),
        },
    );
    let pod = pod_spec(&children, 0);
    let container = &pod.containers[0];
    let args = container.args.clone().unwrap();
    let flag = args
        .iter()
        .position(|a| a == "--token-file")
        .expect("--token-file");
    let file = &args[flag + 1];
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.secret.is_some())
        .expect("a Secret volume");
    let secret = volume.secret.unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("hf-token"));
    let item = &secret.items.unwrap()[0];
    assert_eq!(item.key, "hf");
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == volume.name)
        .expect("mounted");
    assert_eq!(mount.read_only, Some(true));
    assert_eq!(*file, format!("{}/{}", mount.mount_path, item.path));
}
