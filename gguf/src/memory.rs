//! Memory plan from a GGUF header: weights, KV cache, overhead and the GPU layer split.
//!
//! Pure arithmetic on the header (no file data, no llama.cpp), so the operator can size pods
//! before any node has the file. The figures are upper bounds llama.cpp stays below:
//! - KV cache: f16 (llama.cpp's default `--cache-type-k/v`), one stream of cells per slot
//!   (llama.cpp's default, non-unified cache), each padded to [`KV_CELLS_PAD`], every layer
//!   holding the slot's whole context. That includes sliding-window layers (Gemma 2/3): the
//!   agent asks llama.cpp for full-size caches there (`swa_full`), since its prefix reuse cuts
//!   sequences back, which a window-sized cache cannot undo.
//! - Weights: the tensor data as stored (quantised blocks are kept as they are).

use serde::Serialize;

use crate::reader::GgufHeader;
use crate::value::Value;

/// Bytes per KV-cache element: f16, llama.cpp's default cache type.
pub const KV_BYTES_PER_ELEMENT: u64 = 2;
/// Fixed host overhead of a serving replica: process, HTTP server, tokenizer, llama.cpp's
/// context and graph metadata. Measured agents idle well below this.
pub const OVERHEAD_BASE_BYTES: u64 = 256 << 20;
/// Extra share of weights + KV for llama.cpp's compute buffers, which grow with the model.
pub const OVERHEAD_SLACK_PERCENT: u64 = 10;
/// Bytes of one logit (f32); each slot keeps a vocabulary-wide row.
const LOGIT_BYTES: u64 = 4;
/// Memory limit above the request: room for compute-buffer peaks before the OOM killer.
pub const LIMIT_HEADROOM_PERCENT: u64 = 25;
/// llama.cpp pads each sequence's KV cells to a multiple of this (`GGML_PAD(.., 256)`).
pub const KV_CELLS_PAD: u64 = 256;
/// GPU memory per GPU kept free of layers: CUDA context and llama.cpp's GPU compute buffer.
pub const GPU_RESERVE_BYTES: u64 = 512 << 20;

/// What a model needs, independent of how it is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelMemory {
    /// Bytes of all tensor data.
    pub weights_bytes: u64,
    /// Bytes of the repeating blocks (`blk.N.*`), the part offloaded layer by layer.
    pub layer_weights_bytes: u64,
    /// Transformer blocks.
    pub layers: u64,
    /// KV-cache bytes per token of context, all layers, f16.
    pub kv_bytes_per_token: u64,
    /// Tokens in the vocabulary (one logit row per slot).
    pub vocab_size: u64,
}

/// Why a header cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// A key the arithmetic needs is missing or not a positive integer.
    #[error("GGUF metadata {0:?} is missing or not a positive integer")]
    Missing(String),
}

fn integers(h: &GgufHeader, key: &str) -> Option<Vec<u64>> {
    let values = match h.get(key)? {
        Value::Array(a) => a.integers()?,
        v => vec![v.as_integer()?],
    };
    values.into_iter().map(|v| u64::try_from(v).ok()).collect()
}

/// The value for layer `l` of a per-layer key (an array) or of a scalar key.
fn per_layer(values: &[u64], l: usize) -> u64 {
    match values {
        [one] => *one,
        many => many.get(l).copied().unwrap_or(0),
    }
}

impl ModelMemory {
    /// Reads the figures from a parsed header.
    pub fn from_header(h: &GgufHeader) -> Result<ModelMemory, MemoryError> {
        let arch = h
            .architecture()
            .ok_or_else(|| MemoryError::Missing("general.architecture".into()))?;
        let key = |suffix: &str| format!("{arch}.{suffix}");
        let need = |suffix: &str| {
            integers(h, &key(suffix))
                .filter(|v| v.iter().any(|&x| x > 0))
                .ok_or_else(|| MemoryError::Missing(key(suffix)))
        };
        let layers = *need("block_count")?
            .first()
            .ok_or_else(|| MemoryError::Missing(key("block_count")))?;
        let embedding = need("embedding_length")?[0];
        let heads = need("attention.head_count")?;
        // llama.cpp: no head_count_kv means one KV head per query head (no GQA).
        let kv_heads = integers(h, &key("attention.head_count_kv")).unwrap_or(heads.clone());
        let max_heads = heads.iter().copied().max().unwrap_or(1).max(1);
        let scalar = |suffix: &str| integers(h, &key(suffix)).and_then(|v| v.first().copied());
        let key_length = scalar("attention.key_length").unwrap_or(embedding / max_heads);
        let value_length = scalar("attention.value_length").unwrap_or(embedding / max_heads);
        let kv_bytes_per_token = (0..usize::try_from(layers).unwrap_or(usize::MAX))
            .map(|l| per_layer(&kv_heads, l) * (key_length + value_length) * KV_BYTES_PER_ELEMENT)
            .fold(0u64, u64::saturating_add);
        let sum = |f: &dyn Fn(&str) -> bool| {
            h.tensors
                .iter()
                .filter(|t| f(&t.name))
                .fold(0u64, |acc, t| acc.saturating_add(t.n_bytes))
        };
        let vocab_size = match h.get("tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => a.len() as u64,
            _ => scalar("vocab_size").unwrap_or(0),
        };
        Ok(ModelMemory {
            weights_bytes: sum(&|_| true),
            layer_weights_bytes: sum(&|name| name.starts_with("blk.")),
            layers,
            kv_bytes_per_token,
            vocab_size,
        })
    }
}

/// How many layers to offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLayers {
    /// As many as fit in the GPU memory.
    Auto,
    /// This many (capped at the model's layers).
    Fixed(u64),
}

/// How a replica serves the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// Context length in tokens of each slot (the agent's `--ctx`; llama.cpp's `n_ctx` is this
    /// times `parallel`).
    pub context_length: u64,
    /// Parallel decoding slots, each with its own KV cells.
    pub parallel: u64,
    /// GPUs per replica; 0 serves on CPU.
    pub gpu_count: u64,
    /// Memory of each GPU.
    pub gpu_memory_bytes: u64,
    /// Layers to offload.
    pub gpu_layers: GpuLayers,
}

/// Memory of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryPlan {
    /// Bytes of weights.
    pub weights_bytes: u64,
    /// Bytes of KV cache for every slot's context.
    pub kv_bytes: u64,
    /// Host overhead (see [`OVERHEAD_BASE_BYTES`], [`OVERHEAD_SLACK_PERCENT`]).
    pub overhead_bytes: u64,
    /// Layers offloaded to the GPUs.
    pub gpu_layers: u64,
    /// Layers of the model.
    pub layers: u64,
    /// Weights + KV of the offloaded layers.
    pub gpu_bytes: u64,
    /// Host memory: everything not offloaded, plus the overhead.
    pub host_bytes: u64,
    /// Memory request: `host_bytes` rounded up to MiB.
    pub memory_request_bytes: u64,
    /// Memory limit: the request plus [`LIMIT_HEADROOM_PERCENT`], rounded up to MiB.
    pub memory_limit_bytes: u64,
}

const MIB: u64 = 1 << 20;

fn round_up_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

/// KV bytes llama.cpp allocates: each slot's context, padded, in every layer.
pub fn kv_bytes(m: &ModelMemory, input: &PlanInput) -> u64 {
    let cells = input
        .context_length
        .div_ceil(KV_CELLS_PAD)
        .saturating_mul(KV_CELLS_PAD);
    m.kv_bytes_per_token
        .saturating_mul(cells)
        .saturating_mul(input.parallel.max(1))
}

/// Plans one replica.
pub fn plan(m: &ModelMemory, input: &PlanInput) -> MemoryPlan {
    let kv_bytes = kv_bytes(m, input);
    let layers = m.layers.max(1);
    // Per offloaded layer: its weights and its share of the KV cache (uniform layers assumed;
    // per-layer KV differences only matter for hybrid models).
    let per_layer = m
        .layer_weights_bytes
        .div_ceil(layers)
        .saturating_add(kv_bytes.div_ceil(layers));
    let gpu_layers = match (input.gpu_count, input.gpu_layers) {
        (0, _) => 0,
        (_, GpuLayers::Fixed(n)) => n.min(m.layers),
        (count, GpuLayers::Auto) => {
            let budget = count
                .saturating_mul(input.gpu_memory_bytes)
                .saturating_sub(count.saturating_mul(GPU_RESERVE_BYTES));
            (budget / per_layer.max(1)).min(m.layers)
        }
    };
    let gpu_bytes = per_layer.saturating_mul(gpu_layers);
    let overhead_bytes = OVERHEAD_BASE_BYTES
        .saturating_add(
            m.vocab_size
                .saturating_mul(LOGIT_BYTES)
                .saturating_mul(input.parallel.max(1)),
        )
        .saturating_add(m.weights_bytes.saturating_add(kv_bytes) / 100 * OVERHEAD_SLACK_PERCENT);
    let host_bytes = m
        .weights_bytes
        .saturating_add(kv_bytes)
        .saturating_sub(gpu_bytes)
        .saturating_add(overhead_bytes);
    let memory_request_bytes = round_up_mib(host_bytes);
    let memory_limit_bytes = round_up_mib(
        memory_request_bytes.saturating_add(memory_request_bytes / 100 * LIMIT_HEADROOM_PERCENT),
    );
    MemoryPlan {
        weights_bytes: m.weights_bytes,
        kv_bytes,
        overhead_bytes,
        gpu_layers,
        layers: m.layers,
        gpu_bytes,
        host_bytes,
        memory_request_bytes,
        memory_limit_bytes,
    }
}
