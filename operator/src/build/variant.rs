//! Objects of one variant: Deployment (`llamafleet-agent serve`), Service, PDB, HPA.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
    ResourceRequirements, Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gpu::{self, Backend};
use super::pod::{
    IMAGE_PULL_POLICY, container_port, container_security_context, http_probe,
    pod_security_context, service_port,
};
use super::{BuildOptions, VariantObjects, keep, meta, presets, source_token};
use crate::deployment::plan::{Plan, VariantPlan};
use crate::names::{self, AGENT_PORT, CACHE_DIR, NODE_CACHE_CLAIM};

/// Name of the model-cache volume.
pub const CACHE_VOLUME: &str = "model-cache";
/// Type of a `spec.cache.hostPath` volume: the directory must exist (see [`cache_volume`]).
pub const HOST_PATH_TYPE: &str = "Directory";
/// Liveness starts late and tolerates two minutes of silence: the agent answers `/healthz`
/// while it downloads, but a node under a multi-GB download can be slow to schedule it.
const LIVENESS_INITIAL_DELAY_SECONDS: i32 = 60;
/// Seconds a variant pod whose startup failed (download, verification, load) keeps /metrics
/// and /status up before exiting: two scrapes at the chart's 30 s interval, so the download
/// alert and the status see why it crash-loops instead of a pod that died unobserved.
const FAILURE_LINGER_SECONDS: &str = "60";
const LIVENESS_PERIOD_SECONDS: i32 = 20;
const LIVENESS_FAILURE_THRESHOLD: i32 = 6;
/// Readiness is checked often (it gates traffic) and may fail forever while downloading. A
/// variant woken from zero serves once this probe passes: every second of period is a second
/// the held requests may wait after the model has loaded (the probe is a cheap local GET).
const READINESS_PERIOD_SECONDS: i32 = 2;
const READINESS_FAILURE_THRESHOLD: i32 = 3;
/// Time to finish in-flight generations on SIGTERM; a long answer streams for a minute.
const TERMINATION_GRACE_SECONDS: i64 = 120;
/// The agent's own drain (`--grace`): the pod's grace less the time it needs to end the
/// streams still open with an error event and exit before the kubelet's SIGKILL would cut them.
const AGENT_GRACE_SECONDS: &str = "110";
/// Pods of a variant that may be down at once during voluntary disruptions.
const PDB_MAX_UNAVAILABLE: i32 = 1;
/// Pods metric of queue-depth autoscaling: the agent's own gauge, served under its Prometheus
/// name by a custom-metrics adapter (docs/metrics.md has the prometheus-adapter rule).
pub const QUEUE_DEPTH_METRIC: &str = llamafleet_crds::metrics::AGENT_QUEUE_DEPTH;

/// All objects of one variant.
pub fn objects(plan: &Plan, v: &VariantPlan, opts: &BuildOptions) -> VariantObjects {
    VariantObjects {
        name: v.name.clone(),
        deployment: deployment(plan, v, opts),
        service: service(plan, v, opts),
        pdb: pdb(plan, v, opts),
        hpa: hpa(plan, v, opts),
    }
}

fn selector(plan: &Plan, v: &VariantPlan) -> BTreeMap<String, String> {
    names::variant_selector(&plan.name, &v.name)
}

fn variant_meta(plan: &Plan, v: &VariantPlan, opts: &BuildOptions) -> ObjectMeta {
    let name = names::variant_object(&plan.name, &v.name);
    meta(plan, name, names::object_labels(&selector(plan, v)), opts)
}

/// `llamafleet-agent serve` arguments (after the program name).
pub fn serve_args(plan: &Plan, v: &VariantPlan) -> Vec<String> {
    let s = &v.serving;
    let mut args = vec!["serve".to_string(), "--model".into(), v.model.url.clone()];
    if let Some(sha) = &v.model.sha256 {
        args.extend(["--sha256".into(), sha.clone()]);
    }
    if v.model.allow_insecure_http {
        args.push("--allow-http".into());
    }
    args.extend(source_token::serve_args(&v.model));
    args.extend(["--cache-dir".into(), CACHE_DIR.into()]);
    args.extend(keep::serve_args());
    args.extend(["--failure-linger".into(), FAILURE_LINGER_SECONDS.into()]);
    args.extend(["--grace".into(), AGENT_GRACE_SECONDS.into()]);
    // A wrong sha256 or a broken file would fail every restart the same way after another
    // whole download: the agent stays up saying why (status Degraded/AgentFailed) instead.
    args.push("--hold-permanent-failure".into());
    args.extend(["--listen".into(), format!("0.0.0.0:{AGENT_PORT}")]);
    args.extend(["--ctx".into(), s.context_length.to_string()]);
    args.extend(["--parallel".into(), s.parallel.to_string()]);
    if let Some(t) = s.threads {
        args.extend(["--threads".into(), t.to_string()]);
    }
    args.extend(["--gpu-layers".into(), s.gpu_layers.clone()]);
    args.extend(presets::serve_args(plan));
    args
}

/// Requests and limits from the spec, plus the GPU limit (the vendor's device plugin
/// resource) when the variant uses GPUs.
fn resources(v: &VariantPlan) -> Option<ResourceRequirements> {
    let mut res = v.resources.clone();
    if v.serving.gpu_count > 0 {
        let r = res.get_or_insert_with(ResourceRequirements::default);
        let gpus = Quantity(v.serving.gpu_count.to_string());
        r.limits
            .get_or_insert_with(BTreeMap::new)
            .insert(gpu::resource(v.serving.gpu_vendor).into(), gpus);
    }
    res
}

/// Volume of the model cache: the deployment's own claim, its own node directory (a hostPath
/// volume, which only Pod Security `privileged` admits), or else the node cache's claim
/// ([`super::node_cache`]).
fn cache_volume(plan: &Plan) -> Volume {
    let cache = plan.spec.cache.as_ref();
    let claim = |claim_name: String| Volume {
        name: CACHE_VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name,
            ..PersistentVolumeClaimVolumeSource::default()
        }),
        ..Volume::default()
    };
    match (
        cache.and_then(|c| c.pvc.clone()),
        cache.and_then(|c| c.host_path.clone()),
    ) {
        (Some(own), _) => claim(own),
        (None, Some(path)) => Volume {
            name: CACHE_VOLUME.into(),
            host_path: Some(HostPathVolumeSource {
                path,
                // Not DirectoryOrCreate: the kubelet would create it root-owned 0755, which the
                // agent (uid 65532) cannot write; the pod waits for a prepared directory.
                type_: Some(HOST_PATH_TYPE.into()),
            }),
            ..Volume::default()
        },
        (None, None) => claim(NODE_CACHE_CLAIM.into()),
    }
}

/// Deployment of the variant's serving pods.
pub fn deployment(plan: &Plan, v: &VariantPlan, opts: &BuildOptions) -> Deployment {
    let selector = selector(plan, v);
    let backend = Backend::of(v.serving.gpu_count, v.serving.gpu_vendor);
    let mut container = Container {
        name: "agent".into(),
        image: Some(opts.images.image(backend).to_string()),
        command: Some(vec!["llamafleet-agent".into()]),
        args: Some(serve_args(plan, v)),
        ports: Some(vec![container_port()]),
        readiness_probe: Some(http_probe(
            "/readyz",
            0,
            READINESS_PERIOD_SECONDS,
            READINESS_FAILURE_THRESHOLD,
        )),
        liveness_probe: Some(http_probe(
            "/healthz",
            LIVENESS_INITIAL_DELAY_SECONDS,
            LIVENESS_PERIOD_SECONDS,
            LIVENESS_FAILURE_THRESHOLD,
        )),
        resources: resources(v),
        image_pull_policy: Some(IMAGE_PULL_POLICY.into()),
        security_context: Some(container_security_context()),
        volume_mounts: Some(vec![VolumeMount {
            name: CACHE_VOLUME.into(),
            mount_path: CACHE_DIR.into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let mut volumes = vec![cache_volume(plan)];
    let (keep_volume, keep_mount) = keep::volume(plan);
    volumes.push(keep_volume);
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(keep_mount);
    if let Some((volume, mount)) = source_token::volume(&v.model) {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount);
        volumes.push(volume);
    }
    let mut annotations = None;
    if let (Some((volume, mount)), Some(yaml)) = (presets::volume(plan), presets::yaml(plan)) {
        container
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(mount);
        volumes.push(volume);
        annotations = Some(BTreeMap::from([(
            presets::PRESETS_HASH_ANNOTATION.to_string(),
            presets::hash(&yaml),
        )]));
    }
    Deployment {
        metadata: variant_meta(plan, v, opts),
        spec: Some(DeploymentSpec {
            replicas: v.replicas,
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::object_labels(&selector)),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    node_selector: plan.spec.node_selector.clone(),
                    tolerations: plan.spec.tolerations.clone(),
                    security_context: Some(pod_security_context()),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// ClusterIP Service of the variant (the router's upstream).
pub fn service(plan: &Plan, v: &VariantPlan, opts: &BuildOptions) -> Service {
    Service {
        metadata: variant_meta(plan, v, opts),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector(plan, v)),
            ports: Some(vec![service_port(AGENT_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Disruption budget: drains take one replica at a time.
pub fn pdb(plan: &Plan, v: &VariantPlan, opts: &BuildOptions) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: variant_meta(plan, v, opts),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(PDB_MAX_UNAVAILABLE)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(plan, v)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// Autoscaler of the variant's Deployment, when `spec.autoscaling` is set.
pub fn hpa(plan: &Plan, v: &VariantPlan, opts: &BuildOptions) -> Option<HorizontalPodAutoscaler> {
    let a = plan.spec.autoscaling.as_ref().filter(|_| !v.retired)?;
    let mut metrics = Vec::new();
    if let Some(cpu) = a.target_cpu_utilization {
        metrics.push(MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(cpu),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    if let Some(depth) = a.target_queue_depth {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: QUEUE_DEPTH_METRIC.into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(depth.to_string())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    Some(HorizontalPodAutoscaler {
        metadata: variant_meta(plan, v, opts),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: names::variant_object(&plan.name, &v.name),
            },
            // An autoscaler cannot go below 1 (without the HPAScaleToZero gate); sleeping is
            // the operator's and the router's (see crate::deployment::sleep).
            min_replicas: Some(a.min_replicas.max(1)),
            max_replicas: a.max_replicas,
            metrics: (!metrics.is_empty()).then_some(metrics),
            behavior: None,
        }),
        status: None,
    })
}
