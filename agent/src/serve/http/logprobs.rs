//! Log probabilities in each API's shape: OpenAI chat and Ollama list one entry per token
//! (`token`, `logprob`, `bytes`, `top_logprobs`); legacy completions use parallel arrays.

use serde_json::{Map, Value, json};

use super::{ApiError, Flavor};
use crate::serve::engine::{TokenChoice, TokenLogprob};

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

fn entry(choice: &TokenChoice) -> Value {
    json!({"token": text(choice), "logprob": choice.logprob, "bytes": choice.bytes})
}

/// OpenAI chat's `logprobs.content` and Ollama's `logprobs`.
pub(crate) fn entries(logprobs: &[TokenLogprob]) -> Value {
    logprobs
        .iter()
        .map(|lp| {
            let mut v = entry(&lp.chosen);
            v["top_logprobs"] = lp.top.iter().map(entry).collect();
            v
        })
        .collect()
}

/// Legacy completions' `logprobs`: tokens, their log probabilities, the alternatives as
/// `{token: logprob}` and each token's offset in the whole text (`offset` is where this part
/// of the text starts).
pub(crate) fn legacy(logprobs: &[TokenLogprob], mut offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top = Vec::new();
    let mut text_offset = Vec::new();
    for lp in logprobs {
        let token = text(&lp.chosen);
        text_offset.push(offset);
        offset += token.len();
        tokens.push(token);
        token_logprobs.push(lp.chosen.logprob);
        let alternatives: Map<String, Value> =
            lp.top.iter().map(|c| (text(c), json!(c.logprob))).collect();
        top.push(alternatives);
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top,
        "text_offset": text_offset})
}
