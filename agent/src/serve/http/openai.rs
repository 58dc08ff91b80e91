//! OpenAI-compatible routes: chat and text completions (SSE when `stream: true`), models,
//! embeddings.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fields::Rest;
use super::generate::{self, Live, OneOrMany, Step};
use super::logprobs;
use super::structured::ResponseFormat;
use super::tool_wire::{self, OpenAiCall, ToolDef};
use super::{ApiError, ApiJson, Flavor, RequestLog};
use crate::serve::engine::{
    ChatMessage, FinishReason, MAX_TOP_LOGPROBS, Prompt, SamplingParams, TokenLogprob, ToolCall,
    Usage,
};
use crate::serve::state::AppState;
use crate::serve::tools::ToolRequest;

const FLAVOR: Flavor = Flavor::OpenAi;

/// Sampling fields both completion requests share (llama-server's extensions included).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct Sampling {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    seed: Option<u64>,
    stop: Option<OneOrMany>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    n: Option<u32>,
    /// The caller's end user, for abuse tracing: written to the request log.
    user: Option<String>,
    /// llama-server's extension: generate `max_tokens` whatever the model says (benchmarks).
    ignore_eos: Option<bool>,
}

impl Sampling {
    fn apply(self, log: &RequestLog, mut p: SamplingParams) -> Result<SamplingParams, ApiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request(FLAVOR, "only n = 1 is supported"));
        }
        if let Some(user) = &self.user {
            log.user(user);
        }
        p.ignore_eos = self.ignore_eos.unwrap_or(p.ignore_eos);
        p.temperature = self.temperature.unwrap_or(p.temperature);
        p.top_p = self.top_p.unwrap_or(p.top_p);
        p.top_k = self.top_k.unwrap_or(p.top_k);
        p.min_p = self.min_p.unwrap_or(p.min_p);
        p.repeat_penalty = self.repeat_penalty.unwrap_or(p.repeat_penalty);
        p.presence_penalty = self.presence_penalty.unwrap_or(p.presence_penalty);
        p.frequency_penalty = self.frequency_penalty.unwrap_or(p.frequency_penalty);
        if let Some(seed) = self.seed {
            p.seed = Some(seed as u32);
        }
        if let Some(stop) = self.stop {
            p.stop = stop.into_vec();
        }
        p.max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .or(p.max_tokens);
        Ok(p)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A message's text, or its parts (see [`super::fields::text_or_list`]).
#[derive(Debug, utoipa::ToSchema)]
pub(crate) enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let content = super::fields::text_or_list(deserializer, "parts")?;
        Ok(content.map_or_else(Content::Parts, Content::Text))
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = OpenAiMessage)]
pub(crate) struct Message {
    role: String,
    content: Option<Content>,
    /// Assistant messages: the calls it made.
    tool_calls: Option<Vec<OpenAiCall>>,
    /// Tool messages: the call this result answers.
    tool_call_id: Option<String>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = OpenAiChatRequest)]
pub(crate) struct ChatRequest {
    model: Option<String>,
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    /// Free text, any JSON object, or JSON that follows a schema (constrained decoding).
    response_format: Option<ResponseFormat>,
    /// Each generated token's log probability (`choices[].logprobs.content`).
    logprobs: Option<bool>,
    /// Alternatives per token (0 to 20), with `logprobs: true` only.
    top_logprobs: Option<u32>,
    /// Only `false`: completions are not stored.
    store: Option<bool>,
    /// Only `["text"]`: the server answers in text.
    modalities: Option<Vec<String>>,
    /// OpenAI's successor of `user`: written to the request log the same way.
    safety_identifier: Option<String>,
    /// Functions the model may call.
    tools: Option<Vec<ToolDef>>,
    /// `none`, `auto` (the default with tools), `required`, or `{"type": "function",
    /// "function": {"name": ...}}`.
    #[schema(value_type = Object)]
    tool_choice: Option<Value>,
    /// Several calls in one answer (default true).
    parallel_tool_calls: Option<bool>,
    #[serde(flatten)]
    sampling: Sampling,
    #[serde(flatten)]
    #[schema(ignore)]
    _rest: Rest,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = OpenAiCompletionRequest)]
pub(crate) struct CompletionRequest {
    model: Option<String>,
    prompt: OneOrMany,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    /// Log probabilities with this many alternatives per token (0 to 20).
    logprobs: Option<u32>,
    #[serde(flatten)]
    sampling: Sampling,
    #[serde(flatten)]
    #[schema(ignore)]
    _rest: Rest,
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
        (status = 200, description = "Chat completion (JSON), or SSE chunks when stream is true"),
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
    let mut params = req.sampling.apply(&log, generate::base_params(preset))?;
    params.logprobs = logprobs::requested(FLAVOR, req.logprobs, req.top_logprobs)?;
    if let Some(format) = &req.response_format {
        params.grammar = format.grammar()?;
    }
    let bad = |e: String| ApiError::bad_request(FLAVOR, e);
    let tools = tool_wire::tools(req.tools.unwrap_or_default()).map_err(bad)?;
    let choice =
        tool_wire::tool_choice(req.tool_choice.as_ref(), !tools.is_empty()).map_err(bad)?;
    let request = ToolRequest {
        tools,
        choice,
        parallel: req.parallel_tool_calls.unwrap_or(true),
    };
    let messages = generate::with_system(preset, messages(req.messages)?);
    let logprobs = params.logprobs.is_some();
    let include_usage = usage_in_stream(req.stream, req.stream_options)?;
    let live =
        generate::start_chat(&state, FLAVOR, log, messages, request, params, req.stream).await?;
    respond(
        &state,
        live,
        model,
        Kind::Chat,
        req.stream,
        include_usage,
        logprobs,
    )
    .await
}

/// Text completion, streamed or whole.
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "openai",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "Text completion (JSON), or SSE chunks when stream is true"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn completions(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let (model, preset) = generate::requested(&state, FLAVOR, &log, req.model.as_deref())?;
    let mut params = req.sampling.apply(&log, generate::base_params(preset))?;
    if req.logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
        return Err(ApiError::bad_request(
            FLAVOR,
            format!("logprobs must be at most {MAX_TOP_LOGPROBS}"),
        ));
    }
    params.logprobs = req.logprobs;
    let mut prompts = req.prompt.into_vec();
    match prompts.len() {
        0 => return Err(ApiError::bad_request(FLAVOR, "prompt must not be empty")),
        1 => {}
        _ => {
            usage_in_stream(req.stream, req.stream_options)?;
            return super::prompt_list::complete(&state, log, model, prompts, params, req.stream)
                .await;
        }
    }
    let prompt = Prompt::Text(prompts.remove(0));
    let logprobs = params.logprobs.is_some();
    let include_usage = usage_in_stream(req.stream, req.stream_options)?;
    let live = generate::start(&state, FLAVOR, log, prompt, params).await?;
    respond(
        &state,
        live,
        model,
        Kind::Text,
        req.stream,
        include_usage,
        logprobs,
    )
    .await
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Text,
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

fn choice(
    kind: Kind,
    text: &str,
    finish: Option<FinishReason>,
    first: bool,
    stream: bool,
    logprobs: Option<Value>,
) -> Value {
    let finish = finish.map(FinishReason::as_str);
    let logprobs = logprobs.unwrap_or(Value::Null);
    match (kind, stream) {
        (Kind::Chat, false) => json!({"index": 0, "finish_reason": finish, "logprobs": logprobs,
            "message": {"role": "assistant", "content": text}}),
        (Kind::Chat, true) => {
            let delta = if first {
                json!({"role": "assistant", "content": text})
            } else if finish.is_some() {
                json!({})
            } else {
                json!({"content": text})
            };
            json!({"index": 0, "finish_reason": finish, "logprobs": logprobs, "delta": delta})
        }
        (Kind::Text, _) => {
            json!({"index": 0, "finish_reason": finish, "logprobs": logprobs, "text": text})
        }
    }
}

async fn respond(
    state: &AppState,
    live: Live,
    model: String,
    kind: Kind,
    stream: bool,
    include_usage: bool,
    want_logprobs: bool,
) -> Result<Response, ApiError> {
    // Chat: one entry per token; legacy completions: parallel arrays with text offsets.
    let render = move |lps: &[TokenLogprob], offset: usize| {
        want_logprobs.then(|| match kind {
            Kind::Chat => json!({"content": logprobs::entries(lps), "refusal": null}),
            Kind::Text => logprobs::legacy(lps, offset),
        })
    };
    let (prefix, object) = match (kind, stream) {
        (Kind::Chat, false) => ("chatcmpl", "chat.completion"),
        (Kind::Chat, true) => ("chatcmpl", "chat.completion.chunk"),
        (Kind::Text, _) => ("cmpl", "text_completion"),
    };
    let id = format!("{prefix}-{}", live.log.id());
    let created = generate::unix_now();
    let template = state
        .engine
        .get()
        .map(|e| e.info().chat_template.clone())
        .unwrap_or_default();
    let header = [("x-llamafleet-chat-template", template)];
    if !stream {
        let done = live.collect().await?;
        let logprobs = render(&done.logprobs, 0);
        let mut choice = choice(kind, &done.text, Some(done.finish), false, false, logprobs);
        if !done.tool_calls.is_empty() {
            let calls: Vec<Value> = done
                .tool_calls
                .iter()
                .map(|c| tool_wire::openai_call(c, None))
                .collect();
            choice["message"]["tool_calls"] = calls.into();
            if done.text.is_empty() {
                choice["message"]["content"] = Value::Null;
            }
        }
        let body = json!({
            "id": id, "object": object, "created": created, "model": model,
            "choices": [choice],
            "usage": usage_json(&done.usage),
        });
        return Ok((header, Json(body)).into_response());
    }
    live.log.streaming();
    let frame = move |choices: Value, usage: Option<Value>| {
        let mut v = json!({"id": id, "object": object, "created": created, "model": model,
            "choices": choices});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        SseEvent::default().data(v.to_string())
    };
    let events = futures_util::stream::unfold(
        (live, true, false, 0),
        move |(mut live, first, done, offset)| {
            let frame = frame.clone();
            async move {
                if done {
                    return None;
                }
                let mut next_offset = offset;
                let (events, done) = match live.next().await? {
                    Step::Text(t, _) if t.is_empty() && !first => (vec![], false),
                    Step::Text(t, lps) => {
                        next_offset += t.len();
                        let logprobs = render(&lps, offset);
                        let choice = choice(kind, &t, None, first, true, logprobs);
                        (vec![frame(json!([choice]), None)], false)
                    }
                    Step::ToolCalls(calls) => (
                        vec![frame(json!([calls_delta(&calls, first)]), None)],
                        false,
                    ),
                    Step::Done(finish, usage) => {
                        let mut out = vec![frame(
                            json!([choice(kind, "", Some(finish), false, true, None)]),
                            (!include_usage).then(|| usage_json(&usage)),
                        )];
                        if include_usage {
                            out.push(frame(json!([]), Some(usage_json(&usage))));
                        }
                        out.push(SseEvent::default().data("[DONE]"));
                        (out, true)
                    }
                    Step::Failed(e) => (vec![SseEvent::default().data(e.body().to_string())], true),
                };
                let next_first = first && events.is_empty();
                Some((
                    futures_util::stream::iter(events),
                    (live, next_first, done, next_offset),
                ))
            }
        },
    )
    .flatten()
    .map(Ok::<_, Infallible>);
    Ok((header, Sse::new(events)).into_response())
}

/// The chunk that carries an answer's calls, whole (the official client concatenates the
/// `function.arguments` of deltas with the same `index`; one delta per call is the simplest
/// case of that).
fn calls_delta(calls: &[ToolCall], first: bool) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| tool_wire::openai_call(c, Some(i)))
        .collect();
    let mut delta = json!({"tool_calls": calls});
    if first {
        delta["role"] = json!("assistant");
        delta["content"] = Value::Null;
    }
    json!({"index": 0, "finish_reason": null, "logprobs": null, "delta": delta})
}
