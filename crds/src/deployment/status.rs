//! Status of an `LlmDeployment`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the fleet is actually doing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmDeploymentStatus {
    /// Per-variant state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub variants: Vec<VariantStatus>,
    /// Effective weights in one line, such as `blue=90,green=10` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<String>,
    /// Ready replicas over desired replicas, all variants, such as `3/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// URL clients call inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Progress of a progressive rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Standard conditions: `Ready`, `Progressing`, `Degraded`, `RolledBack`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// State of one variant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantStatus {
    /// Variant name.
    pub name: String,
    /// LlmModel served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// sha256 of the file served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Weight in effect (may differ from the spec during a rollout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Desired replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Replicas passing `/readyz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Where the model runs, as reported by the agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<Acceleration>,
    /// Download progress while replicas fetch the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<DownloadProgress>,
    /// The memory plan of one replica, from the model's GGUF header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<MemoryPlanStatus>,
    /// Set while the variant sleeps (`spec.autoscaling.minReplicas: 0`: scaled to zero after
    /// `idleAfter` without a request): since when. The router wakes it on the next request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<Time>,
}

/// Memory of one replica of a variant, and where its requests come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryPlanStatus {
    /// Bytes of weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_bytes: Option<i64>,
    /// Bytes of f16 KV cache: every slot's context, all layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bytes: Option<i64>,
    /// Layers offloaded to the GPUs (`--gpu-layers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<i32>,
    /// Memory of each GPU the layer split assumed, as a quantity (`16Gi`): the variant's
    /// `gpu.memoryGiB`, else the operator's `--gpu-memory-gib`. Absent without GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<String>,
    /// Layers of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_total: Option<i32>,
    /// Memory request of a replica, as a quantity (`770Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    /// Memory limit of a replica, as a quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// CPU request of a replica, as a quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    /// `Plan` when the requests come from this plan, `Spec` when the spec set resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_from: Option<String>,
}

/// Device and offload of a variant's replicas.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Acceleration {
    /// `cpu`, or the GPU name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Layers running on the GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_offloaded: Option<i32>,
    /// Layers of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_total: Option<i32>,
}

/// Bytes fetched of the model file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadProgress {
    /// Bytes on the node so far.
    pub bytes: i64,
    /// Size of the file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// Progress of a progressive rollout.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Where the rollout stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// Variant being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
    /// Step in force, counting from 1, of the candidate's ladder: the `spec.rollout.steps`
    /// above its starting weight and below its target, then the target. 0 while the rollout
    /// waits for the candidate's replicas to be ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
    /// When the current step began; it is judged once `spec.rollout.interval` has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// Weights in effect when the rollout began, such as `blue=100,green=0`: the other
    /// variants share what the candidate does not take, moving from these towards the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The `metadata.generation` whose spec this rollout follows; a rolled-back rollout stays
    /// rolled back until the generation changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The last decision, such as `advanced to 25%` or `rolled back`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
    /// Why, with the figures the analysis saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Phase of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RolloutPhase {
    /// Nothing to roll out; weights as written.
    Stable,
    /// Moving weight step by step.
    Progressing,
    /// Held by `spec.rollout.paused`.
    Paused,
    /// The candidate reached 100%.
    Promoted,
    /// The candidate failed analysis; its weight is 0.
    RolledBack,
}
