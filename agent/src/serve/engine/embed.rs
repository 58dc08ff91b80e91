//! Pooled embeddings from the chat model, in a second context that is created on first use
//! (so servers that never embed pay nothing for it). Inputs are tokenized off the engine
//! thread and embedded one per loop turn, between generation steps.

use std::num::NonZeroU32;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;

use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::load::{EngineConfig, Shared};
use super::{Embeddings, EngineError};

/// Inputs per request.
pub const MAX_EMBED_INPUTS: usize = 256;

/// An embedding request on the engine thread: one input is embedded per loop turn, between
/// generation steps, so a large request does not freeze running streams.
pub(crate) struct EmbedJob {
    pub inputs: Vec<Vec<LlamaToken>>,
    pub vectors: Vec<Vec<f32>>,
    pub reply: oneshot::Sender<Result<Embeddings, EngineError>>,
}

/// Tokenizes and checks `inputs` (off the engine thread).
pub(crate) fn prepare(
    shared: &Shared,
    inputs: &[String],
) -> Result<Vec<Vec<LlamaToken>>, EngineError> {
    if inputs.is_empty() {
        return Err(EngineError::Invalid("input must not be empty".into()));
    }
    if inputs.len() > MAX_EMBED_INPUTS {
        return Err(EngineError::Invalid(format!(
            "at most {MAX_EMBED_INPUTS} inputs per request"
        )));
    }
    let vocab = shared.model.vocab();
    let ctx = shared.config.ctx;
    inputs
        .iter()
        .map(|text| {
            let tokens = vocab.tokenize(text.as_bytes(), true, false);
            if tokens.len() as u32 > ctx {
                return Err(EngineError::ContextOverflow {
                    prompt_tokens: tokens.len() as u32,
                    max_tokens: 0,
                    context: ctx,
                });
            }
            Ok(tokens)
        })
        .collect()
}

impl EmbedJob {
    /// Embeds the next input; answers the request after the last one (or the first failure).
    /// `true` while inputs remain.
    pub(crate) fn step<'m>(
        &mut self,
        backend: &LlamaBackend,
        model: &'m LlamaModel,
        config: &EngineConfig,
        slot: &mut Option<LlamaContext<'m>>,
    ) -> Result<bool, EngineError> {
        let Some(tokens) = self.inputs.get(self.vectors.len()) else {
            return Ok(false);
        };
        let ctx = context(backend, model, config, slot)?;
        // The cells' metadata only: clearing the data too would write the whole cache
        // (context size times layers) for every input.
        let _ = ctx.clear_kv_cache_seq(None, None, None);
        let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
        batch
            .add_sequence(tokens, 0, true)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        ctx.decode(&mut batch)
            .map_err(|e| EngineError::Internal(format!("embedding decode: {e}")))?;
        let pooled = ctx
            .embeddings_seq_ith(0)
            .map_err(|e| EngineError::Internal(format!("embedding: {e}")))?;
        self.vectors.push(normalize(pooled));
        Ok(self.vectors.len() < self.inputs.len())
    }

    /// The answer, once every input is embedded.
    pub(crate) fn finish(self) {
        let prompt_tokens = self.inputs.iter().map(|t| t.len() as u32).sum();
        let _ = self.reply.send(Ok(Embeddings {
            vectors: self.vectors,
            prompt_tokens,
        }));
    }
}

/// The embedding context, created on first use.
fn context<'s, 'm>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    config: &EngineConfig,
    slot: &'s mut Option<LlamaContext<'m>>,
) -> Result<&'s mut LlamaContext<'m>, EngineError> {
    if slot.is_none() {
        let params = LlamaContextParams::default()
            .with_embeddings(true)
            .with_pooling_type(LlamaPoolingType::Mean)
            .with_n_ctx(NonZeroU32::new(config.ctx))
            .with_n_batch(config.ctx)
            .with_n_ubatch(config.ctx)
            .with_n_threads(config.threads)
            .with_n_threads_batch(config.threads);
        let ctx = model
            .new_context(backend, params)
            .map_err(|e| EngineError::Internal(format!("embedding context: {e}")))?;
        *slot = Some(ctx);
    }
    slot.as_mut().ok_or(EngineError::Stopped)
}

/// OpenAI and Ollama both return unit-length vectors (cosine similarity = dot product).
fn normalize(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter().map(|x| x / norm).collect()
    } else {
        v.to_vec()
    }
}
