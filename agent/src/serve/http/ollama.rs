//! Ollama-compatible routes: generate and chat (NDJSON streaming by default), tags, show,
//! ps, embed, embeddings, version.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::generate::{self, Live, Step, nanos, rfc3339_now};
use super::tool_wire;
use super::{ApiError, ApiJson, Flavor, RequestLog, structured};
use crate::serve::engine::{
    ChatMessage, FinishReason, Prompt, SamplingParams, TokenLogprob, ToolCall,
};
use crate::serve::state::AppState;
use crate::wire::ollama;
use crate::wire::ollama_request::{ChatRequest, Common, GenerateRequest, Options};

const FLAVOR: Flavor = Flavor::Ollama;

impl Options {
    fn apply(self, state: &AppState, mut p: SamplingParams) -> Result<SamplingParams, ApiError> {
        if let (Some(n), Some(engine)) = (self.num_ctx, state.engine.get()) {
            let ctx = engine.info().ctx_per_slot;
            if n > ctx {
                return Err(ApiError::bad_request(
                    FLAVOR,
                    format!("num_ctx {n} exceeds the server's context of {ctx} tokens per request"),
                ));
            }
        }
        self.sampler.apply(&mut p);
        // Ollama: -1 (or -2) means "until done"; here that is the context's remaining room.
        match self.num_predict {
            Some(n) if n > 0 => p.max_tokens = Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(_) => p.max_tokens = None,
            None => {}
        }
        Ok(p)
    }
}

impl Common {
    /// The sampling parameters: `options` over `base` (the preset's), then `format` and
    /// `logprobs`; `think` checked.
    fn params(
        self,
        state: &AppState,
        model: &str,
        base: SamplingParams,
    ) -> Result<SamplingParams, ApiError> {
        let mut params = self.options.apply(state, base)?;
        match &self.think {
            None | Some(Value::Null | Value::Bool(false)) => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    FLAVOR,
                    format!("think: {model:?} does not support thinking"),
                ));
            }
        }
        params.logprobs = super::logprobs::requested(FLAVOR, self.logprobs, self.top_logprobs)?;
        params.grammar = structured::ollama_format(self.format.as_ref())?;
        Ok(params)
    }
}

/// Text generation. The prompt goes in as is unless a system prompt (the request's or the
/// preset's) is given; then system + prompt are rendered with the chat template.
#[utoipa::path(
    post,
    path = "/api/generate",
    tag = "ollama",
    request_body = GenerateRequest,
    responses(
        (status = 200, description = "NDJSON stream (default: one object per line, the last \
            with `done` true) or one JSON object with stream false",
            content(
                (ollama::GenerateResponse = "application/json"),
                (ollama::GenerateResponse = "application/x-ndjson"),
            )),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn generate(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<GenerateRequest>,
) -> Result<Response, ApiError> {
    let (model, preset) = generate::requested(&state, FLAVOR, &log, req.model.as_deref())?;
    generate::no_preset_tools(preset, FLAVOR)?;
    let stream = req.common.stream;
    let params = req
        .common
        .params(&state, &model, generate::base_params(preset))?;
    if req.raw == Some(true) && req.system.is_some() {
        return Err(ApiError::bad_request(
            FLAVOR,
            "raw and system together: a raw prompt is not templated",
        ));
    }
    let system = match req.raw {
        Some(true) => None,
        _ => req.system.or_else(|| preset.and_then(|p| p.system.clone())),
    };
    let prompt = match system {
        None => Prompt::Text(req.prompt),
        Some(system) => Prompt::Chat(
            vec![
                ChatMessage::new("system", system),
                ChatMessage::new("user", req.prompt),
            ]
            .into(),
        ),
    };
    let logprobs = params.logprobs.is_some();
    let live = generate::start(&state, FLAVOR, log, prompt, params).await?;
    respond(live, model, false, stream, logprobs).await
}

/// Chat.
#[utoipa::path(
    post,
    path = "/api/chat",
    tag = "ollama",
    request_body = ChatRequest,
    responses(
        (status = 200, description = "NDJSON stream (default: one object per line, the last \
            with `done` true) or one JSON object with stream false",
            content(
                (ollama::ChatResponse = "application/json"),
                (ollama::ChatResponse = "application/x-ndjson"),
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
    let stream = req.common.stream;
    let params = req
        .common
        .params(&state, &model, generate::base_params(preset))?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(FLAVOR, "messages must not be empty"));
    }
    let bad = |e: String| ApiError::bad_request(FLAVOR, e);
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
            return Err(bad(format!("unsupported role {:?}", m.role)));
        }
        if m.tool_calls.is_some() && m.role != "assistant" {
            return Err(bad(format!(
                "messages[{i}].tool_calls: only assistant messages make calls"
            )));
        }
        if m.tool_name.is_some() && m.role != "tool" {
            return Err(bad(format!(
                "messages[{i}].tool_name: only tool messages name a tool"
            )));
        }
        messages.push(ChatMessage {
            tool_calls: tool_wire::ollama_calls(i, m.tool_calls.unwrap_or_default()),
            tool_name: m.tool_name,
            tool_call_id: None,
            role: m.role,
            content: m.content,
        });
    }
    let tools = tool_wire::tools(req.tools).map_err(bad)?;
    // Ollama has no tool_choice nor parallel_tool_calls: the defaults apply (a preset's
    // own included).
    let request = generate::offered_tools(preset, tools);
    let messages = generate::with_system(preset, messages);
    let logprobs = params.logprobs.is_some();
    let live = generate::start_chat(&state, FLAVOR, log, messages, request, params, stream).await?;
    respond(live, model, true, stream, logprobs).await
}

/// One line of an answer, or the whole answer: a chat message or generated text.
fn piece(
    model: &str,
    chat: bool,
    text: &str,
    calls: &[ToolCall],
    logprobs: Option<&[TokenLogprob]>,
    stats: Option<ollama::DoneStats>,
) -> Value {
    let model = model.to_owned();
    let created_at = rfc3339_now();
    let done = stats.is_some();
    let stats = stats.unwrap_or_default();
    let logprobs = logprobs.map(super::logprobs::entries);
    if chat {
        json!(ollama::ChatResponse {
            model,
            created_at,
            message: ollama::AssistantMessage {
                role: "assistant".into(),
                content: text.into(),
                tool_calls: (!calls.is_empty()).then(|| ollama_calls(calls)),
            },
            done,
            stats,
            logprobs,
        })
    } else {
        json!(ollama::GenerateResponse {
            model,
            created_at,
            response: text.into(),
            done,
            stats,
            logprobs,
        })
    }
}

/// The last line's timings and counts.
fn done_stats(finish: FinishReason, u: &crate::serve::engine::Usage) -> ollama::DoneStats {
    // Ollama ends an answer with calls as any other: "stop".
    let reason = match finish {
        FinishReason::ToolCalls | FinishReason::StopSequence(_) => FinishReason::Stop,
        other => other,
    };
    ollama::DoneStats {
        done_reason: Some(reason.as_str().into()),
        total_duration: Some(nanos(u.total)),
        load_duration: Some(0),
        // The whole prompt, cached part included, as Ollama counts it since 0.30; the cached
        // part on its own as Ollama's `prompt_eval_cached_count`.
        prompt_eval_count: Some(u64::from(u.prompt_tokens)),
        prompt_eval_cached_count: Some(u64::from(u.cached_tokens)),
        prompt_eval_duration: Some(nanos(u.prompt_eval)),
        eval_count: Some(u64::from(u.completion_tokens)),
        eval_duration: Some(nanos(u.total.saturating_sub(u.ttft))),
    }
}

async fn respond(
    live: Live,
    model: String,
    chat: bool,
    stream: bool,
    want_logprobs: bool,
) -> Result<Response, ApiError> {
    if !stream {
        let done = live.collect().await?;
        let body = piece(
            &model,
            chat,
            &done.text,
            &done.tool_calls,
            want_logprobs.then_some(done.logprobs.as_slice()),
            Some(done_stats(done.finish, &done.usage)),
        );
        return Ok(Json(body).into_response());
    }
    live.log.streaming();
    let lines = futures_util::stream::unfold((live, false), move |(mut live, done)| {
        let model = model.clone();
        async move {
            if done {
                return None;
            }
            let (value, done) = match live.next().await? {
                Step::Text(t, _) if t.is_empty() => (None, false),
                Step::Text(t, lps) => {
                    let logprobs = want_logprobs.then_some(lps.as_slice());
                    (Some(piece(&model, chat, &t, &[], logprobs, None)), false)
                }
                Step::ToolCalls(calls) => {
                    (Some(piece(&model, chat, "", &calls, None, None)), false)
                }
                Step::Done(finish, usage) => {
                    let logprobs = want_logprobs.then_some(&[][..]);
                    let stats = Some(done_stats(finish, &usage));
                    (Some(piece(&model, chat, "", &[], logprobs, stats)), true)
                }
                Step::Failed(e) => (Some(e.body()), true),
            };
            let line = value.map(|v| Ok::<_, std::convert::Infallible>(format!("{v}\n")));
            Some((futures_util::stream::iter(line), (live, done)))
        }
    })
    .flatten();
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Ollama's form of calls in an answer: no ids, the arguments as an object.
fn ollama_calls(calls: &[ToolCall]) -> Vec<ollama::ToolCall> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| ollama::ToolCall {
            function: ollama::FunctionCall {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                name: c.name.clone(),
                arguments: c.arguments_json(),
            },
        })
        .collect()
}
