//! Log probabilities in each API's shape: OpenAI chat and Ollama list one entry per token
//! (`token`, `logprob`, `bytes`, `top_logprobs`); legacy completions use parallel arrays.

use serde_json::{Map, Value, json};

use super::{ApiError, Flavor};
use crate::serve::engine::{TokenChoice, TokenLogprob};
use crate::wire::openai as wire;

/// The engine's setting from `logprobs: bool` and `top_logprobs` (OpenAI chat and Ollama):
/// alternatives per token, `None` for none; `top_logprobs` alone is refused, as on OpenAI.
pub(crate) fn requested(
    flavor: Flavor,
    logprobs: Option<bool>,
    top: Option<u32>,
) -> Result<Option<u32>, ApiError> {
    match (logprobs, top) {
        (Some(true), top) => Ok(Some(top.unwrap_or(0))),
        (_, Some(_)) => Err(ApiError::bad_request(
            flavor,
            "top_logprobs requires logprobs: true",
        )),
        _ => Ok(None),
    }
}

fn text(choice: &TokenChoice) -> String {
    String::from_utf8_lossy(&choice.bytes).into_owned()
}

/// OpenAI chat's `logprobs.content` and Ollama's `logprobs`.
pub(crate) fn entries(logprobs: &[TokenLogprob]) -> Vec<wire::TokenLogprob> {
    logprobs
        .iter()
        .map(|lp| wire::TokenLogprob {
            token: text(&lp.chosen),
            logprob: lp.chosen.logprob,
            bytes: lp.chosen.bytes.clone(),
            top_logprobs: lp
                .top
                .iter()
                .map(|c| wire::TopLogprob {
                    token: text(c),
                    logprob: c.logprob,
                    bytes: c.bytes.clone(),
                })
                .collect(),
        })
        .collect()
}

/// Legacy completions' `logprobs`: tokens, their log probabilities, the alternatives as
/// `{token: logprob}` and each token's offset in the whole text (`offset` is where this part
/// of the text starts).
pub(crate) fn legacy(logprobs: &[TokenLogprob], mut offset: usize) -> wire::LegacyLogprobs {
    let mut out = wire::LegacyLogprobs::default();
    for lp in logprobs {
        let token = text(&lp.chosen);
        out.text_offset.push(offset);
        offset += token.len();
        out.tokens.push(token);
        out.token_logprobs.push(lp.chosen.logprob);
        let alternatives: Map<String, Value> =
            lp.top.iter().map(|c| (text(c), json!(c.logprob))).collect();
        out.top_logprobs.push(alternatives);
    }
    out
}
