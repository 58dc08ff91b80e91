//! The llama.cpp engine: one model and one context on a dedicated thread, shared by
//! `parallel` slots with continuous batching. Handlers talk to it through channels only, behind
//! a seam ([`backend::Backend`]) that a scripted engine also fills, for tests of the HTTP layer
//! without a model.

mod backend;
mod chat;
mod embed;
mod jinja;
mod job;
mod llama;
mod load;
mod logprobs;
mod offload;
mod params;
mod pinned;
mod sample;
mod schema;
mod scripted;
mod stop;
mod template;
mod tokens;
mod worker;

#[cfg(test)]
mod decode_failure_tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc as tmpsc;

use backend::Backend;
pub use chat::{Chat, ChatMessage, Tool, ToolCall, ToolSyntax, native_tool_syntax};
pub use load::{EngineConfig, GpuLayers, ModelInfo, RequestLimits};
pub use logprobs::{MAX_TOP_LOGPROBS, TokenChoice, TokenLogprob};
pub use offload::{GpuDevice, gpu_devices};
pub use params::{DEFAULT_MAX_TOKENS, MAX_STOP_STRINGS, SamplingParams};
pub use sample::Sampler;
pub use schema::{SchemaError, convert, enforceable, json_object_grammar, schema_grammar};
pub use scripted::Scripted;
pub use tokens::TokenPiece;

use crate::serve::metrics::EngineMetrics;

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Raw text (completions, Ollama generate).
    Text(String),
    /// Chat messages (and tools), rendered with the model's (or the fallback) chat template.
    Chat(Chat),
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End of generation (the model's end-of-turn token).
    Stop,
    /// A stop string, by its index in the request's list.
    StopSequence(u16),
    /// The token limit.
    Length,
    /// The answer is tool calls (decided by the API layer, which parses them).
    ToolCalls,
}

impl FinishReason {
    /// The OpenAI spelling (`stop` / `length`), which Ollama's `done_reason` shares.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// Token counts and timings of a finished generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Prompt tokens (after templating).
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV cache was reused from the slot's previous request.
    pub cached_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// From admission to the first token.
    pub ttft: Duration,
    /// From admission to the end.
    pub total: Duration,
    /// Prompt evaluation time (admission to first token, minus queueing).
    pub prompt_eval: Duration,
}

impl Usage {
    /// Two generations of one request together (a list of prompts): token counts add up,
    /// times are the longer one's, as they ran side by side.
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens + other.prompt_tokens,
            cached_tokens: self.cached_tokens + other.cached_tokens,
            completion_tokens: self.completion_tokens + other.completion_tokens,
            ttft: self.ttft.max(other.ttft),
            total: self.total.max(other.total),
            prompt_eval: self.prompt_eval.max(other.prompt_eval),
        }
    }
}

/// What the engine sends back for one generation, in order: `Accepted`, `Token`*, `Done`
/// (or `Error` at any point).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The prompt fits; the request waits for or holds a slot.
    Accepted {
        /// Prompt tokens.
        prompt_tokens: u32,
    },
    /// New text.
    Token(String),
    /// The log probability of a generated token (requests with `logprobs` only); sent before
    /// the text it contributes to.
    Logprob(Box<TokenLogprob>),
    /// Finished.
    Done {
        /// Why.
        finish: FinishReason,
        /// Counts and timings.
        usage: Usage,
    },
    /// Failed.
    Error(EngineError),
}

/// Engine failures; the HTTP layer maps them to statuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The prompt plus the requested tokens do not fit the slot's context (a client error).
    #[error(
        "prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds the context size ({context} tokens)"
    )]
    ContextOverflow {
        /// Prompt tokens.
        prompt_tokens: u32,
        /// Requested tokens.
        max_tokens: u32,
        /// Tokens per slot.
        context: u32,
    },
    /// The chat template could not render the messages (a client error, e.g. bad roles).
    #[error("chat template failed: {0}")]
    Template(String),
    /// Empty input (a client error).
    #[error("{0}")]
    Invalid(String),
    /// llama.cpp failed.
    #[error("inference failed: {0}")]
    Internal(String),
    /// The engine thread is gone.
    #[error("the engine has stopped")]
    Stopped,
}

impl EngineError {
    /// Client errors become 400s; the rest 500s and a server-side log line.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            EngineError::ContextOverflow { .. }
                | EngineError::Template(_)
                | EngineError::Invalid(_)
        )
    }
}

/// Pooled, L2-normalised embeddings plus the tokens they cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens over all inputs.
    pub prompt_tokens: u32,
}

/// One prompt and its copies (`n`), each with its own parameters and events.
pub(crate) struct Generation {
    pub prompt: Prompt,
    pub copies: Vec<Copy>,
    pub enqueued: Instant,
}

pub(crate) struct Copy {
    pub params: SamplingParams,
    pub events: tmpsc::UnboundedSender<Event>,
}

pub(crate) enum Command {
    Generate(Box<job::Prepared>),
    Embed(Box<embed::EmbedJob>),
    /// Tests only: drops the last KV cell of the slot running job `id` (ids count admitted
    /// copies from 1) behind the engine's back, so llama.cpp refuses that slot's next token
    /// for real (its positions no longer follow on).
    #[cfg(test)]
    Desync(u64),
}

/// Live counters the engine thread updates and `/healthz`, `/status` read.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Slots generating or prefilling.
    pub busy_slots: AtomicUsize,
    /// Requests accepted and waiting for a slot.
    pub queued: AtomicUsize,
    /// Milliseconds since `started` at the last decode step (or idle tick).
    pub last_progress_ms: AtomicU64,
}

/// A handle to an engine; cheap to clone. The llama.cpp engine ([`Engine::load`]) serves; a
/// scripted one ([`Engine::scripted`]) stands in where the HTTP layer's cases are tested
/// without a model. Dropping the last handle of the llama.cpp engine waits for its thread to
/// finish its streams and free the context and model.
#[derive(Clone)]
pub struct Engine {
    backend: Arc<dyn Backend>,
    info: Arc<ModelInfo>,
    stats: Arc<EngineStats>,
    started: Instant,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("info", &self.info).finish()
    }
}

impl Engine {
    /// Loads the model and starts the engine thread. Blocking: call from `spawn_blocking`.
    pub fn load(config: EngineConfig, metrics: EngineMetrics) -> Result<Engine, EngineError> {
        let stats = Arc::new(EngineStats::default());
        let started = Instant::now();
        let (backend, info) = llama::LlamaEngine::start(config, metrics, stats.clone(), started)?;
        Ok(Engine {
            backend: Arc::new(backend),
            info: Arc::new(info),
            stats,
            started,
        })
    }

    /// An engine that answers every generation as `script` says, and says it serves `info`.
    pub fn scripted(script: Scripted, info: ModelInfo) -> Engine {
        Engine {
            backend: Arc::new(script.with_context(info.ctx_per_slot)),
            info: Arc::new(info),
            stats: Arc::new(EngineStats::default()),
            started: Instant::now(),
        }
    }

    /// The loaded model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Live counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Time since the engine last made progress, if it has work (for `/healthz`).
    pub fn stalled_for(&self) -> Option<Duration> {
        let busy = self.stats.busy_slots.load(Ordering::Relaxed);
        if busy == 0 {
            return None;
        }
        let last = Duration::from_millis(self.stats.last_progress_ms.load(Ordering::Relaxed));
        Some(self.started.elapsed().saturating_sub(last))
    }

    /// Queues a generation; events arrive on the returned receiver. Dropping the receiver
    /// cancels the generation and frees its slot at the next decode step.
    pub fn generate(
        &self,
        prompt: Prompt,
        params: SamplingParams,
    ) -> Result<tmpsc::UnboundedReceiver<Event>, EngineError> {
        let mut copies = self.generate_copies(prompt, vec![params])?;
        copies.pop().ok_or(EngineError::Stopped)
    }

    /// Queues copies of one prompt (`n` choices), one per entry of `params`, with a receiver
    /// each. The prompt is tokenized and prefilled once: the copies take slots with the first
    /// and, once its prompt is decoded, its KV cache and the same logits for their first token
    /// (so greedy copies agree), then generate on their own. A copy that finds no free slot
    /// then, or whose first copy goes away, runs as a request of its own.
    pub fn generate_copies(
        &self,
        prompt: Prompt,
        params: Vec<SamplingParams>,
    ) -> Result<Vec<tmpsc::UnboundedReceiver<Event>>, EngineError> {
        self.backend.generate_copies(prompt, params)
    }

    /// Pooled embeddings of each input.
    pub async fn embed(&self, inputs: Vec<String>) -> Result<Embeddings, EngineError> {
        self.backend.embed(inputs).await
    }

    /// The tokens of `text` with their pieces; `add_special` adds BOS as generation does.
    pub async fn tokenize(
        &self,
        text: String,
        add_special: bool,
    ) -> Result<Vec<TokenPiece>, EngineError> {
        self.backend.tokenize(text, add_special).await
    }

    /// The tokens `prompt` takes once templated (Anthropic's `count_tokens`).
    pub async fn count_tokens(&self, prompt: Prompt) -> Result<u32, EngineError> {
        self.backend.count_tokens(prompt).await
    }

    /// The text of token ids (an id outside the vocabulary is [`EngineError::Invalid`]).
    pub async fn detokenize(&self, ids: Vec<i32>) -> Result<String, EngineError> {
        self.backend.detokenize(ids).await
    }

    /// See [`Command::Desync`].
    #[cfg(test)]
    fn desync(&self, job: u64) {
        self.backend.desync(job);
    }
}

/// Runs `f` on tokio's blocking pool (off the engine thread and off the async workers).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(format!("a blocking task failed: {e}")))
}

/// Runs `f` on tokio's blocking pool when called inside a runtime, else right here.
fn off_engine_thread(f: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(f);
        }
        Err(_) => f(),
    }
}
