//! Default requests and GPU layers of a variant from its model's memory figures (pure): the
//! arithmetic is `llamafleet_gguf::memory`; this module feeds it from the LlmModel status and
//! the serving settings, and turns the plan into Kubernetes quantities.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use llamafleet_crds::{GgufSummary, LlmModel, MemoryEstimate, MemoryPlanStatus};
use llamafleet_gguf::{GpuLayers, MemoryPlan, ModelMemory, PlanInput};

use crate::deployment::plan::EffectiveServing;

/// GPU memory assumed per GPU when planning layer offload where `gpu.memoryGiB` names none:
/// 16 GiB is the smallest common data-centre GPU (T4, V100-16GB).
pub const DEFAULT_GPU_MEMORY_BYTES: u64 = 16 << 30;

/// CPU request when `serving.threads` is not set: two cores keep one slot's decode and the
/// HTTP side from starving each other. No CPU limit is set: CFS throttling of llama.cpp's
/// busy-waiting threads costs far more latency than it saves.
pub const DEFAULT_CPU_REQUEST: u32 = 2;

/// The memory figures of a model, from its status (`None` until the header was read).
pub fn model_memory(model: &LlmModel) -> Option<ModelMemory> {
    let status = model.status.as_ref()?;
    memory_of(status.memory.as_ref()?, status.gguf.as_ref()?)
}

/// Memory figures of a file from its status fields (resolved or candidate).
pub fn memory_of(memory: &MemoryEstimate, gguf: &GgufSummary) -> Option<ModelMemory> {
    let u = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
    Some(ModelMemory {
        weights_bytes: u(memory.weights_bytes)?,
        layer_weights_bytes: u(memory.layer_weights_bytes).unwrap_or(0),
        layers: u(gguf.layers)?,
        kv_bytes_per_token: u(memory.kv_bytes_per_token)?,
        vocab_size: u(gguf.vocab_size).unwrap_or(0),
    })
}

/// `gpu.layers` as the plan reads it: `auto` (or anything not a number) plans the split.
pub fn gpu_layers(text: &str) -> GpuLayers {
    text.parse().map_or(GpuLayers::Auto, GpuLayers::Fixed)
}

/// Plans one replica.
pub fn plan(
    memory: &ModelMemory,
    context_length: u32,
    parallel: u32,
    gpu_count: u32,
    gpu_layers_text: &str,
    gpu_memory_bytes: u64,
) -> MemoryPlan {
    llamafleet_gguf::memory::plan(
        memory,
        &PlanInput {
            context_length: u64::from(context_length),
            parallel: u64::from(parallel),
            gpu_count: u64::from(gpu_count),
            gpu_memory_bytes,
            gpu_layers: gpu_layers(gpu_layers_text),
        },
    )
}

fn mebibytes(bytes: u64) -> Quantity {
    Quantity(format!("{}Mi", bytes.div_ceil(1 << 20)))
}

/// Memory of each GPU the plan split layers for, as a quantity (`16Gi`, or `Mi` when not whole
/// GiB); `None` without GPUs.
pub fn gpu_memory(serving: &EffectiveServing) -> Option<String> {
    let bytes = serving.gpu_memory_bytes;
    (serving.gpu_count > 0).then(|| match bytes % (1 << 30) {
        0 => format!("{}Gi", bytes >> 30),
        _ => mebibytes(bytes).0,
    })
}

/// Requests (CPU, memory) and the memory limit of a plan.
pub fn resources(plan: &MemoryPlan, threads: Option<u32>) -> ResourceRequirements {
    let cpu = Quantity(threads.unwrap_or(DEFAULT_CPU_REQUEST).to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), cpu),
            ("memory".to_string(), mebibytes(plan.memory_request_bytes)),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_string(),
            mebibytes(plan.memory_limit_bytes),
        )])),
        ..ResourceRequirements::default()
    }
}

/// The plan as `VariantStatus.plan`; `from_spec` when the spec's resources were used. The
/// GPU memory it assumed is the caller's to add ([`gpu_memory`]).
pub fn status(plan: &MemoryPlan, threads: Option<u32>, from_spec: bool) -> MemoryPlanStatus {
    let i64_of = |v: u64| i64::try_from(v).ok();
    let i32_of = |v: u64| i32::try_from(v).ok();
    let computed = resources(plan, threads);
    let get = |m: &Option<BTreeMap<String, Quantity>>, k: &str| {
        m.as_ref().and_then(|m| m.get(k)).map(|q| q.0.clone())
    };
    MemoryPlanStatus {
        weights_bytes: i64_of(plan.weights_bytes),
        kv_bytes: i64_of(plan.kv_bytes),
        gpu_layers: i32_of(plan.gpu_layers),
        gpu_memory: None,
        layers_total: i32_of(plan.layers),
        memory_request: get(&computed.requests, "memory"),
        memory_limit: get(&computed.limits, "memory"),
        cpu_request: get(&computed.requests, "cpu"),
        resources_from: Some(if from_spec { "Spec" } else { "Plan" }.into()),
    }
}
