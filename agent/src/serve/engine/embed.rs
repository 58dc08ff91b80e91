//! Pooled embeddings from the chat model, in a second context that is created on first use
//! (so servers that never embed pay nothing for it).

use std::num::NonZeroU32;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;

use super::load::EngineConfig;
use super::{Embeddings, EngineError};

/// Inputs per request: bounds how long one request holds the engine thread.
pub const MAX_EMBED_INPUTS: usize = 256;

pub(crate) fn embed<'m>(
    backend: &LlamaBackend,
    model: &'m LlamaModel,
    config: &EngineConfig,
    slot: &mut Option<LlamaContext<'m>>,
    inputs: &[String],
) -> Result<Embeddings, EngineError> {
    if inputs.is_empty() {
        return Err(EngineError::Invalid("input must not be empty".into()));
    }
    if inputs.len() > MAX_EMBED_INPUTS {
        return Err(EngineError::Invalid(format!(
            "at most {MAX_EMBED_INPUTS} inputs per request"
        )));
    }
    let vocab = model.vocab();
    let tokenized: Vec<_> = inputs
        .iter()
        .map(|text| vocab.tokenize(text.as_bytes(), true, false))
        .collect();
    for tokens in &tokenized {
        if tokens.len() as u32 > config.ctx {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: tokens.len() as u32,
                max_tokens: 0,
                context: config.ctx,
            });
        }
    }
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
    let Some(ctx) = slot.as_mut() else {
        return Err(EngineError::Stopped);
    };
    let mut vectors = Vec::with_capacity(inputs.len());
    let mut prompt_tokens = 0;
    for tokens in tokenized {
        prompt_tokens += tokens.len() as u32;
        ctx.clear_kv_cache();
        let mut batch = LlamaBatch::new(tokens.len().max(1), 1);
        batch
            .add_sequence(&tokens, 0, true)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        ctx.decode(&mut batch)
            .map_err(|e| EngineError::Internal(format!("embedding decode: {e}")))?;
        let pooled = ctx
            .embeddings_seq_ith(0)
            .map_err(|e| EngineError::Internal(format!("embedding: {e}")))?;
        vectors.push(normalize(pooled));
    }
    ctx.clear_kv_cache();
    Ok(Embeddings {
        vectors,
        prompt_tokens,
    })
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
