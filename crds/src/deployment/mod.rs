//! `LlmDeployment`: variants of models served behind one stable endpoint.
// Each `printcolumn(...)` repeats `type_ = "string"`; clippy reads the derive's nested
// lists as one attribute and calls that a duplicate.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod access;
mod rollout;
mod status;

pub use access::*;
pub use rollout::*;
pub use status::*;

/// One or more model variants served behind one Service, with traffic split by weight.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "llamafleet.dev",
    version = "v1alpha1",
    kind = "LlmDeployment",
    namespaced,
    shortname = "llmd",
    category = "llamafleet",
    status = "LlmDeploymentStatus",
    derive = "PartialEq",
    cel,
    doc = "Variants of LlmModels served behind one stable Service, with blue/green weights, presets, API-key tiers, rollout policy and autoscaling.",
    printcolumn(
        name = "Variants",
        type_ = "string",
        json_path = ".status.weights",
        description = "Effective weight of each variant"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.ready",
        description = "Ready replicas over desired, all variants"
    ),
    printcolumn(
        name = "Rollout",
        type_ = "string",
        json_path = ".status.rollout.phase",
        description = "Rollout phase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.variants.map(v, v.weight).sum() == 100").message(crate::rules::MSG_WEIGHTS_SUM).field_path(".variants"),
    validation = kube::core::Rule::new("self.variants.all(a, self.variants.exists_one(b, b.name == a.name))").message(crate::rules::MSG_VARIANT_NAMES_UNIQUE).field_path(".variants"),
    validation = kube::core::Rule::new("!has(self.presets) || self.presets.all(a, self.presets.exists_one(b, b.name == a.name))").message(crate::rules::MSG_PRESET_NAMES_UNIQUE).field_path(".presets")
)]
pub struct LlmDeploymentSpec {
    /// The models served, 1 to 4, each with a traffic weight; weights sum to 100. A migration
    /// adds a second variant and moves weight to it.
    #[schemars(length(min = 1, max = 4))]
    pub variants: Vec<Variant>,
    /// Replicas of each variant, unless the variant or autoscaling says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    /// How each replica runs the model; a variant may override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingSpec>,
    /// CPU and memory (and other) requests and limits per replica. When absent they are
    /// computed from the model's memory plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Named sets of a system prompt and sampling parameters, offered to clients as extra
    /// model names (like an Ollama Modelfile).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub presets: Vec<Preset>,
    /// API keys, tiers with rate limits, request limits and CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,
    /// How weight moves between variants: exactly as written, or step by step with
    /// automatic rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// Horizontal autoscaling of each variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// Where serving pods keep downloaded model files. Without `hostPath` or `pvc`: the node
    /// cache, one directory per node (the operator's `--cache-path`, chart value
    /// `agent.cachePath`) shared by every replica there, so a model is downloaded once per
    /// node; the pods reach it through the claim `llamafleet-model-cache` the operator makes
    /// in the namespace, and run under Pod Security `restricted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheSpec>,
    /// Node labels the serving pods must match (for example a GPU node pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the serving pods (for example for tainted GPU nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
}

/// One model served under a name, with its share of traffic.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    /// Name of the variant (a DNS-1123 label, such as `blue` or `green`); used in the names of
    /// its Deployment and Service and in the `x-llamafleet-variant` header.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Name of the LlmModel in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// Percentage of traffic sent to this variant, 0 to 100.
    #[schemars(range(min = 0, max = 100))]
    pub weight: i32,
    /// Replicas of this variant; overrides `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    /// Requests and limits of this variant; overrides `spec.resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Serving settings of this variant; fields set here override `spec.serving`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingSpec>,
}

/// How a replica runs its model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingSpec {
    /// Context length in tokens of each slot: the most one request (prompt and answer) can
    /// use. The KV cache holds `contextLength` x `parallel` tokens; defaults to the model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 1_048_576))]
    pub context_length: Option<u32>,
    /// Parallel decoding slots (concurrent requests per replica, batched together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub parallel: Option<u32>,
    /// CPU threads for llama.cpp; defaults to the CPU limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub threads: Option<u32>,
    /// GPUs per replica: how many, of which vendor, and how many layers to offload to them.
    /// A variant's `gpu` replaces the deployment's whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuSpec>,
}

/// GPU use of a replica. It is one unit: a variant's `serving.gpu` replaces the deployment's
/// whole (count, layers, vendor and memory together).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.layers) || string(self.layers) == 'auto' || (string(self.layers).matches('^[0-9]{1,4}$') && int(string(self.layers)) <= 1024)").message(crate::rules::MSG_GPU_LAYERS).field_path(".layers"),
    validation = kube::core::Rule::new("(has(self.count) && self.count > 0) || (!has(self.vendor) && !has(self.memoryGiB))").message(crate::rules::MSG_GPU_NEEDS_COUNT).field_path(".count")
)]
pub struct GpuSpec {
    /// GPUs per replica, requested as the extended resource of `vendor`'s device plugin
    /// (`nvidia.com/gpu`, `amd.com/gpu` or `gpu.intel.com/i915`); 0 serves on CPU.
    #[serde(default)]
    #[schemars(range(min = 0, max = 8))]
    pub count: u32,
    /// Layers to offload: `auto` (as many as fit, from the memory plan) or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<IntOrString>,
    /// Maker of the GPUs; picks the device plugin's resource and the agent image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<GpuVendor>,
    /// Memory of one of these GPUs in GiB, for the layer split of `layers: auto`; defaults to
    /// the operator's `--gpu-memory-gib` (chart value `operator.gpuMemoryGiB`, 16). Set it to
    /// the smallest GPU of this kind the pods may land on; for an integrated GPU, to the share
    /// of system memory it may use.
    #[serde(default, rename = "memoryGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub memory_gib: Option<u32>,
}

/// Maker of the GPUs: `nvidia` (the default) runs the CUDA agent image with `nvidia.com/gpu`;
/// `amd` runs the Vulkan image with `amd.com/gpu`; `intel` runs the Vulkan image with
/// `gpu.intel.com/i915`. Nodes need the vendor's device plugin.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GpuVendor {
    /// NVIDIA GPUs through CUDA (NVIDIA's device plugin or GPU operator).
    #[default]
    Nvidia,
    /// AMD GPUs through Vulkan (Mesa's RADV), with AMD's device plugin.
    Amd,
    /// Intel GPUs through Vulkan (Mesa's ANV), with Intel's GPU device plugin.
    Intel,
}

/// Horizontal autoscaling of each variant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.minReplicas <= self.maxReplicas").message(crate::rules::MSG_MIN_LE_MAX).field_path(".minReplicas"),
    validation = kube::core::Rule::new("self.minReplicas > 0 || has(self.idleAfter)").message(crate::rules::MSG_IDLE_AFTER).field_path(".idleAfter")
)]
pub struct AutoscalingSpec {
    /// Fewest replicas. `0` lets a variant sleep: after `idleAfter` without a request it is
    /// scaled to zero, and the router wakes it on the next request.
    #[schemars(range(min = 0, max = 100))]
    pub min_replicas: i32,
    /// Most replicas.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilisation to aim for, in percent of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization: Option<i32>,
    /// Average queued requests per replica to aim for (needs the custom metrics API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_queue_depth: Option<i32>,
    /// With `minReplicas: 0`: time without a request (as the routers count) after which a
    /// variant is scaled to zero, such as `15m`. Required when `minReplicas` is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}(s|m|h)$"))]
    pub idle_after: Option<String>,
    /// With `minReplicas: 0`: how long the router holds a request for a sleeping variant
    /// while it wakes, such as `5m` (the default); past it the client gets a 503 with
    /// `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}(s|m|h)$"))]
    pub wake_timeout: Option<String>,
    /// With `minReplicas: 0`: requests each router replica holds per sleeping variant
    /// (default 100); more get a 503 with `Retry-After` at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_held_requests: Option<u32>,
}

impl AutoscalingSpec {
    /// Whether variants may sleep (`minReplicas: 0`).
    pub fn sleeps(&self) -> bool {
        self.min_replicas == 0
    }
}

/// Where serving pods keep model files instead of the node cache.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!(has(self.hostPath) && has(self.pvc))").message(crate::rules::MSG_CACHE_ONE_OF)
)]
pub struct CacheSpec {
    /// Directory on each node, mounted as a hostPath volume: replicas on one node share it.
    /// It must exist, writable by the agents' user 65532 (pods wait until it does), and
    /// hostPath volumes need Pod Security `privileged` in the namespace; the node cache (no
    /// `spec.cache`) needs neither.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub host_path: Option<String>,
    /// Name of a PersistentVolumeClaim of the namespace (ReadWriteMany for more than one
    /// replica); the pods' fsGroup 65532 makes it writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pvc: Option<String>,
}
