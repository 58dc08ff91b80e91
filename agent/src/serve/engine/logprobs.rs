//! Log probabilities of generated tokens (OpenAI `logprobs`/`top_logprobs`, Ollama's
//! `logprobs`). They are the model's own distribution over the whole vocabulary (a
//! log-softmax of the logits, before temperature and the other samplers), as OpenAI reports
//! them, and are computed only for requests that ask: one pass over the vocabulary per token.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::sample::top_k;

/// Most alternatives per token a request may ask for (OpenAI's `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// One token and its log probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenChoice {
    /// Token id.
    pub id: i32,
    /// Its bytes (a multi-byte character may be split across tokens).
    pub bytes: Vec<u8>,
    /// Natural log of its probability.
    pub logprob: f32,
}

/// A generated token with the likeliest alternatives at its position, most likely first.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token generated.
    pub chosen: TokenChoice,
    /// The `top` likeliest tokens (the chosen one among them when it is that likely).
    pub top: Vec<TokenChoice>,
}

/// The log probability of `token` and of the `top` likeliest tokens under `logits`.
pub(super) fn logprob(
    model: &LlamaModel,
    logits: &[f32],
    token: LlamaToken,
    top: u32,
) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_z = max + sum.ln() as f32;
    let choice = |id: i32, logit: f32| TokenChoice {
        id,
        bytes: model.vocab().token_to_piece(LlamaToken(id), false, None),
        logprob: logit - log_z,
    };
    let logit = usize::try_from(token.0)
        .ok()
        .and_then(|i| logits.get(i))
        .copied()
        .unwrap_or(f32::NEG_INFINITY);
    let mut best = Vec::new();
    top_k(logits, top as usize, &mut best);
    TokenLogprob {
        chosen: choice(token.0, logit),
        top: best.into_iter().map(|(l, id)| choice(id, l)).collect(),
    }
}
