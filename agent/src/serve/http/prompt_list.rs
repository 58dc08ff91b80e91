//! A list of prompts on `POST /v1/completions`: one generation per prompt, run side by side
//! in the slots, answered as one completion whose choices follow the list (`index`). Whole
//! answers only: interleaving several streams in one response is refused by name.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::generate::{self, Live};
use super::{ApiError, Flavor, RequestLog, logprobs};
use crate::serve::engine::{Prompt, SamplingParams, Usage};
use crate::serve::state::AppState;

const FLAVOR: Flavor = Flavor::OpenAi;

/// The completions of `prompts` (two or more).
pub(crate) async fn complete(
    state: &AppState,
    log: RequestLog,
    model: String,
    prompts: Vec<String>,
    params: SamplingParams,
    stream: bool,
) -> Result<Response, ApiError> {
    if stream {
        return Err(ApiError::bad_request(
            FLAVOR,
            "a list of prompts with stream: true is not supported; stream one prompt per request",
        ));
    }
    // More than the slots and queue places can hold would always be refused as busy.
    let capacity = generate::engine(state, FLAVOR)?.info().slots as usize + state.options.queue;
    if prompts.len() > capacity {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!(
                "prompt: at most {capacity} prompts (this server's slots and queue places), not {}",
                prompts.len()
            ),
        ));
    }
    let want_logprobs = params.logprobs.is_some();
    let id = format!("cmpl-{}", log.id());
    // Admitted one after another (each checked against the context), then generated together.
    let mut lives: Vec<Live> = Vec::with_capacity(prompts.len());
    for prompt in prompts {
        let live = generate::start(
            state,
            FLAVOR,
            log.clone(),
            Prompt::Text(prompt),
            params.clone(),
        )
        .await?;
        lives.push(live);
    }
    let done = futures_util::future::try_join_all(lives.into_iter().map(Live::collect)).await?;
    let choices: Vec<_> = done
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"index": i, "text": d.text, "finish_reason": d.finish.as_str(),
                "logprobs": want_logprobs.then(|| logprobs::legacy(&d.logprobs, 0))})
        })
        .collect();
    let usage = done
        .iter()
        .map(|d| d.usage)
        .reduce(Usage::plus)
        .unwrap_or_default();
    let body = json!({
        "id": id, "object": "text_completion", "created": generate::unix_now(), "model": model,
        "choices": choices,
        "usage": super::openai::usage_json(&usage),
    });
    Ok(Json(body).into_response())
}
