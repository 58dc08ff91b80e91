//! Loading: backend (once per process), model, chat template choice, then the engine thread.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use serde::Serialize;

use super::offload::{self, GpuDevice};
use super::template::{ChatFormat, choose_template};
use super::worker::BATCH_TOKENS;
use super::{Command, EngineError, EngineStats, ToolSyntax, worker};
use crate::serve::metrics::EngineMetrics;

/// llama.cpp's backend may be initialised once per process; tests load several engines.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// How many layers go to the GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuLayers {
    /// As many as fit the GPUs' free memory with the context (all of them when the model
    /// fits); none on a CPU build or a machine without a GPU.
    Auto,
    /// Exactly this many (capped by the model).
    Count(u32),
}

impl std::str::FromStr for GpuLayers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(GpuLayers::Auto);
        }
        s.parse()
            .map(GpuLayers::Count)
            .map_err(|_| format!("expected auto or a number, got {s:?}"))
    }
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The verified GGUF.
    pub model_path: PathBuf,
    /// Context tokens per slot (the KV cache holds `ctx * parallel`).
    pub ctx: u32,
    /// Slots decoded together.
    pub parallel: u32,
    /// CPU threads for decoding.
    pub threads: i32,
    /// GPU offload.
    pub gpu_layers: GpuLayers,
    /// A chat template (llama.cpp name such as `chatml`, or Jinja text) overriding the GGUF's.
    pub chat_template: Option<String>,
    /// Whether a slot copies the longest cached prefix of its prompt from any other slot
    /// (off only to measure or rule out the sharing).
    pub share_prefixes: bool,
    /// What one request may ask for.
    pub limits: RequestLimits,
    /// System prompts kept warm (the presets'): each one's templated prefix is decoded at
    /// startup into a sequence of its own, beside the slots, that requests copy and nothing
    /// evicts. The KV cache grows by their tokens.
    pub pinned: Vec<String>,
}

/// Per-request limits the server enforces whatever the API (an LlmDeployment's
/// `spec.access.limits`): a request beyond them is refused with a message that names the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLimits {
    /// The longest prompt, in tokens once templated.
    pub prompt_tokens: Option<u32>,
    /// The most tokens one generation may produce; also caps the default.
    pub max_tokens: Option<u32>,
}

impl EngineConfig {
    /// The settings for `model_path` that `serve` starts from: 2048 tokens in one slot, all
    /// cores, as many GPU layers as fit, the model's own template, prefix sharing, no limits.
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        EngineConfig {
            model_path: model_path.into(),
            ctx: 2048,
            parallel: 1,
            threads: std::thread::available_parallelism().map_or(4, |n| n.get() as i32),
            gpu_layers: GpuLayers::Auto,
            chat_template: None,
            share_prefixes: true,
            limits: RequestLimits::default(),
            pinned: Vec::new(),
        }
    }
}

/// Facts about the loaded model that `/status`, `/api/show` and the handlers need.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// `general.architecture`.
    pub architecture: String,
    /// Context tokens per slot.
    pub ctx_per_slot: u32,
    /// The model's training context.
    pub ctx_train: u32,
    /// Slots.
    pub slots: u32,
    /// Transformer blocks.
    pub layers_total: u32,
    /// Blocks on the GPU.
    pub layers_offloaded: u32,
    /// `cpu`, or the GPUs the layers went to by product name (`NVIDIA H200`), comma-separated.
    pub device: String,
    /// The GPUs the layers went to (empty when none did).
    pub gpus: Vec<GpuDevice>,
    /// Device memory the engine took on those GPUs (weights, KV cache, compute buffers):
    /// their free memory before loading less after creating the context; 0 without GPUs,
    /// `None` on a GPU that does not report its memory use ([`super::offload::memory_taken`]).
    pub gpu_memory_bytes: Option<u64>,
    /// Embedding width.
    pub embedding_length: u32,
    /// Parameters.
    pub parameters: u64,
    /// Bytes of weights.
    pub size_bytes: u64,
    /// Which chat template chat requests use: `gguf`, `override`, `builtin:gemma`,
    /// `builtin:chatml`, or `gguf:jinja` / `override:jinja` when rendered with minijinja.
    pub chat_template: String,
    /// How the model writes tool calls (its template's syntax, or the generic JSON form).
    pub tool_syntax: ToolSyntax,
    /// Tokens of each pinned prefix kept warm (the presets' system prompts that could be).
    pub pinned_prefix_tokens: Vec<u32>,
    /// Seconds the load took.
    pub load_seconds: f64,
}

pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            // llama.cpp logs every tensor at load; our own log lines say what matters.
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| EngineError::Internal(format!("llama.cpp backend: {e}")))
}

/// What the engine thread and the request handlers share: the model (llama.cpp models are
/// `Send + Sync`), its chat format and the settings. Handlers template and tokenize with them
/// on blocking-pool threads, so the engine thread only decodes.
pub(crate) struct Shared {
    pub model: LlamaModel,
    pub template: ChatFormat,
    pub config: EngineConfig,
}

/// What [`spawn`] hands back: the model's facts, what handlers share, the thread.
pub(crate) type Spawned = (ModelInfo, Arc<Shared>, JoinHandle<()>);

/// Loads the model on a new thread and returns once it is loaded (or failed), with the thread's
/// handle; the thread then serves `rx` until every [`super::Engine`] handle is dropped.
pub(crate) fn spawn(
    config: EngineConfig,
    metrics: EngineMetrics,
    rx: mpsc::Receiver<Command>,
    stats: Arc<EngineStats>,
    started: Instant,
) -> Result<Spawned, EngineError> {
    let backend = backend()?;
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("llama-engine".into())
        .spawn(move || {
            let t0 = Instant::now();
            let loaded = load_model(backend, &config);
            let (model, mut info) = match loaded {
                Ok(mut ok) => {
                    ok.1.load_seconds = t0.elapsed().as_secs_f64();
                    ok
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let template = match choose_template(
                &model,
                &info.architecture,
                config.chat_template.as_deref(),
            ) {
                Ok((t, name)) => {
                    info.chat_template = name;
                    info.tool_syntax = t.tool_syntax();
                    t
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            metrics.load_seconds.set(info.load_seconds);
            let shared = Arc::new(Shared {
                model,
                template,
                config,
            });
            let setup = worker::Setup {
                backend,
                model: &shared.model,
                template: &shared.template,
                config: &shared.config,
                metrics,
                stats,
                started,
            };
            worker::run(setup, rx, ready_tx, (info, shared.clone()));
        })
        .map_err(|e| EngineError::Internal(format!("spawning the engine thread: {e}")))?;
    // A failed load frees what it had loaded before the caller goes on (or exits).
    let error = match ready_rx.recv() {
        Ok(Ok((info, shared))) => return Ok((info, shared, thread)),
        Ok(Err(e)) => e,
        Err(_) => EngineError::Stopped,
    };
    let _ = thread.join();
    Err(error)
}

/// The context every engine creates: one KV cache of `ctx` cells per slot, decoded in steps of
/// at most [`BATCH_TOKENS`]. `--gpu-layers auto` fits the model together with this context.
/// `pinned`: how many pinned prefixes there are and their tokens, which the KV cache holds
/// beside the slots' contexts.
pub(super) fn context_params(config: &EngineConfig, pinned: (u32, u32)) -> LlamaContextParams {
    let cells = config
        .ctx
        .saturating_mul(config.parallel)
        .saturating_add(pinned.1);
    LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(cells))
        .with_n_batch(BATCH_TOKENS as u32)
        .with_n_ubatch(BATCH_TOKENS as u32)
        .with_n_seq_max(config.parallel + pinned.0)
        // One pool of cells for all slots: copying a prefix from one slot to another then
        // only tags its cells with a second sequence (split per-slot buffers would need whole
        // buffer copies, which llama.cpp allows only for entire sequences). The pool holds
        // ctx * parallel cells, so every slot still has room for a full context.
        .with_kv_unified(true)
        // Full-size caches for sliding-window layers (llama.cpp's default, said here because
        // it matters): prefix reuse cuts a slot's sequence back to a shared prefix, which a
        // window-sized cache, having dropped older positions, could not attend from. The
        // operator's memory plan counts these full-size caches.
        .with_swa_full(true)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads)
}

fn load_model(
    backend: &LlamaBackend,
    config: &EngineConfig,
) -> Result<(LlamaModel, ModelInfo), EngineError> {
    if config.ctx == 0 || config.parallel == 0 {
        return Err(EngineError::Internal(
            "ctx and parallel must be positive".into(),
        ));
    }
    NonZeroU32::new(config.ctx.saturating_mul(config.parallel))
        .ok_or_else(|| EngineError::Internal("ctx * parallel overflows".into()))?;
    let gpus = if backend.supports_gpu_offload() {
        offload::gpu_devices()
    } else {
        Vec::new()
    };
    let mut params = LlamaModelParams::default();
    let requested = match (config.gpu_layers, gpus.is_empty()) {
        (_, true) => {
            params = params.with_n_gpu_layers(0);
            0
        }
        (GpuLayers::Count(n), false) => {
            params = params.with_n_gpu_layers(n);
            n
        }
        // The fit leaves its choice (layers, and a split over several GPUs) in `params`.
        (GpuLayers::Auto, false) => offload::fit_layers(
            Pin::new(&mut params),
            config,
            context_params(config, (0, 0)),
        )?,
    };
    let model = LlamaModel::load_from_file(backend, &config.model_path, &params)
        .map_err(|e| EngineError::Internal(format!("loading the model: {e}")))?;
    let architecture = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    let layers_total = model.n_layer();
    // llama.cpp offloads the last n blocks (and the output layer once n exceeds them).
    let layers_offloaded = requested.min(layers_total);
    let ctx_train = model.n_ctx_train();
    let gpus = if layers_offloaded > 0 {
        gpus
    } else {
        Vec::new()
    };
    let device = if gpus.is_empty() {
        "cpu".to_owned()
    } else {
        let names: Vec<&str> = gpus.iter().map(|g| g.description.as_str()).collect();
        names.join(", ")
    };
    let info = ModelInfo {
        architecture,
        ctx_per_slot: config.ctx,
        ctx_train,
        slots: config.parallel,
        layers_total,
        layers_offloaded,
        device,
        gpus,
        gpu_memory_bytes: Some(0),
        pinned_prefix_tokens: Vec::new(),
        embedding_length: u32::try_from(model.n_embd()).unwrap_or(0),
        parameters: model.n_params(),
        size_bytes: model.size(),
        chat_template: String::new(),
        tool_syntax: ToolSyntax::Generic,
        load_seconds: 0.0,
    };
    Ok((model, info))
}
