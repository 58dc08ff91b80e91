//! OpenAI-compatible routes: chat and text completions (SSE when `stream: true`), models,
//! embeddings.

use super::generate;
use super::logprobs;
use super::openai_answer::{self, Answer, Choices, Kind};
use super::tool_wire;
use super::{ApiError, ApiJson, Flavor, RequestLog};
use crate::serve::engine::{ChatMessage, MAX_TOP_LOGPROBS, Prompt, SamplingParams};
use crate::serve::state::AppState;
use crate::serve::tools::ToolRequest;
use crate::wire::openai::{ChatCompletion, ChatCompletionChunk, TextCompletion};
use crate::wire::openai_request::SamplerFields;
use crate::wire::openai_request::{
    ChatRequest, CompletionRequest, Content, Message, Sampling, StreamOptions,
};
use axum::extract::{Extension, State};
use axum::response::Response;

const FLAVOR: Flavor = Flavor::OpenAi;

impl Sampling {
    fn apply(
        self,
        sampler: SamplerFields,
        log: &RequestLog,
        mut p: SamplingParams,
    ) -> Result<SamplingParams, ApiError> {
        if let Some(user) = &self.user {
            log.user(user);
        }
        p.ignore_eos = self.ignore_eos.unwrap_or(p.ignore_eos);
        sampler.apply(&mut p);
        p.max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .or(p.max_tokens);
        Ok(p)
    }
}

/// `stream_options.include_usage`; as on OpenAI, `stream_options` needs `stream: true`.
fn usage_in_stream(stream: bool, options: Option<StreamOptions>) -> Result<bool, ApiError> {
    match options {
        Some(_) if !stream => Err(ApiError::bad_request(
            FLAVOR,
            "stream_options is only allowed with stream: true",
        )),
        options => Ok(options.is_some_and(|o| o.include_usage)),
    }
}

/// Choices per prompt (`n`): at most the slots, so the copies run side by side and share the
/// prompt's KV cache, and all choices together at most what the slots and queue can hold
/// (more would always be refused as busy).
fn choices_per_prompt(state: &AppState, n: Option<u32>, prompts: usize) -> Result<usize, ApiError> {
    let slots = generate::engine(state, FLAVOR)?.info().slots as usize;
    let n = n.unwrap_or(1) as usize;
    if n == 0 || n > slots {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!("n: between 1 and {slots} (this server's slots), not {n}"),
        ));
    }
    let capacity = slots + state.options.queue;
    if prompts * n > capacity {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!(
                "prompt: {prompts} prompts times n = {n} choices exceed the {capacity} this \
                 server's slots and queue places hold"
            ),
        ));
    }
    Ok(n)
}

/// A field this server does not implement with any value but `false`.
fn only_false(value: Option<bool>, field: &str) -> Result<(), ApiError> {
    if value == Some(true) {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!("{field}: true is not supported by this server"),
        ));
    }
    Ok(())
}

fn messages(raw: Vec<Message>) -> Result<Vec<ChatMessage>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request(FLAVOR, "messages must not be empty"));
    }
    raw.into_iter()
        .map(|m| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" => "tool",
                other => {
                    return Err(ApiError::bad_request(
                        FLAVOR,
                        format!("unsupported message role {other:?}"),
                    ));
                }
            };
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    if let Some(p) = parts.iter().find(|p| p.kind != "text") {
                        return Err(ApiError::bad_request(
                            FLAVOR,
                            format!("unsupported content part {:?}", p.kind),
                        ));
                    }
                    parts.into_iter().map(|p| p.text).collect()
                }
            };
            let tool_calls = match m.tool_calls {
                Some(calls) if role == "assistant" => {
                    tool_wire::openai_calls(calls).map_err(|e| ApiError::bad_request(FLAVOR, e))?
                }
                Some(_) => {
                    return Err(ApiError::bad_request(
                        FLAVOR,
                        format!(
                            "tool_calls on a {role} message: only assistant messages make calls"
                        ),
                    ));
                }
                None => Vec::new(),
            };
            if (role == "tool") != m.tool_call_id.is_some() {
                return Err(ApiError::bad_request(
                    FLAVOR,
                    "tool_call_id: tool messages need it, other messages must not have it",
                ));
            }
            Ok(ChatMessage {
                role: role.into(),
                content,
                tool_calls,
                tool_call_id: m.tool_call_id,
                tool_name: None,
            })
        })
        .collect()
}

/// Chat completion, streamed or whole.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "openai",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "Chat completion (JSON), or SSE chunks when stream is true \
            (each event's data one chunk, then `[DONE]`)",
            content(
                (ChatCompletion = "application/json"),
                (ChatCompletionChunk = "text/event-stream"),
            )),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn chat(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let (model, preset) = generate::requested(&state, FLAVOR, &log, req.model.as_deref())?;
    only_false(req.store, "store")?;
    if req
        .modalities
        .as_ref()
        .is_some_and(|m| m.iter().any(|m| m != "text"))
    {
        return Err(ApiError::bad_request(
            FLAVOR,
            "modalities: only \"text\" is supported",
        ));
    }
    if let Some(id) = &req.safety_identifier {
        log.user(id);
    }
    let n = req.sampling.n;
    let mut params = req
        .sampling
        .apply(req.sampler, &log, generate::base_params(preset))?;
    params.logprobs = logprobs::requested(FLAVOR, req.logprobs, req.top_logprobs)?;
    if let Some(format) = &req.response_format {
        params.grammar = format.grammar()?;
    }
    let bad = |e: String| ApiError::bad_request(FLAVOR, e);
    let tools = tool_wire::tools(req.tools.unwrap_or_default()).map_err(bad)?;
    let offered = generate::offered_tools(preset, tools);
    let request = ToolRequest {
        choice: tool_wire::tool_choice(req.tool_choice.as_ref(), offered.choice.clone())
            .map_err(bad)?,
        parallel: req.parallel_tool_calls.unwrap_or(offered.parallel),
        ..offered
    };
    let messages = generate::with_system(preset, messages(req.messages)?);
    let answer = Answer {
        model,
        kind: Kind::Chat,
        stream: req.stream,
        include_usage: usage_in_stream(req.stream, req.stream_options)?,
        logprobs: params.logprobs.is_some(),
    };
    let n = choices_per_prompt(&state, n, 1)?;
    let lives = generate::start_chat_copies(
        &state, FLAVOR, log, messages, request, params, n, req.stream,
    )
    .await?;
    let choices = Choices {
        lives,
        per_prompt: n,
    };
    openai_answer::respond(&state, choices, answer).await
}

/// Text completion, streamed or whole.
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "openai",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "Text completion (JSON), or SSE chunks of the same shape \
            when stream is true (then `[DONE]`)",
            content(
                (TextCompletion = "application/json"),
                (TextCompletion = "text/event-stream"),
            )),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn completions(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let (model, preset) = generate::requested(&state, FLAVOR, &log, req.model.as_deref())?;
    generate::no_preset_tools(preset, FLAVOR)?;
    let n = req.sampling.n;
    let mut params = req
        .sampling
        .apply(req.sampler, &log, generate::base_params(preset))?;
    if req.logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!("logprobs must be at most {MAX_TOP_LOGPROBS}"),
        ));
    }
    params.logprobs = req.logprobs;
    let prompts = req.prompt.into_vec();
    if prompts.is_empty() {
        return Err(ApiError::bad_request(FLAVOR, "prompt must not be empty"));
    }
    let answer = Answer {
        model,
        kind: Kind::Text,
        stream: req.stream,
        include_usage: usage_in_stream(req.stream, req.stream_options)?,
        logprobs: params.logprobs.is_some(),
    };
    let n = choices_per_prompt(&state, n, prompts.len())?;
    // Admitted one after another (each checked against the context), then generated together.
    let mut lives = Vec::with_capacity(prompts.len() * n);
    for prompt in prompts {
        let copies = generate::copies(&params, n);
        let prompt = Prompt::Text(prompt);
        for live in generate::start_copies(&state, FLAVOR, log.clone(), prompt, copies).await? {
            lives.push(live.choice_at(lives.len()));
        }
    }
    let choices = Choices {
        lives,
        per_prompt: n,
    };
    openai_answer::respond(&state, choices, answer).await
}
