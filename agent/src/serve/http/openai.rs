//! OpenAI-compatible routes: chat and text completions (SSE when `stream: true`), models,
//! embeddings.

use axum::extract::{Extension, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::fields::Rest;
use super::generate::{self, OneOrMany};
use super::logprobs;
use super::openai_answer::{self, Answer, Choices, Kind};
use super::sampler_fields::SamplerFields;
use super::structured::ResponseFormat;
use super::tool_wire::{self, OpenAiCall, ToolDef};
use super::{ApiError, ApiJson, Flavor, RequestLog};
use crate::serve::engine::{ChatMessage, MAX_TOP_LOGPROBS, Prompt, SamplingParams};
use crate::serve::state::AppState;
use crate::serve::tools::ToolRequest;
use crate::wire::openai::{ChatCompletion, ChatCompletionChunk, TextCompletion};

const FLAVOR: Flavor = Flavor::OpenAi;

/// What both completion requests add to the sampler settings ([`SamplerFields`]).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct Sampling {
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    n: Option<u32>,
    /// The caller's end user, for abuse tracing: written to the request log.
    user: Option<String>,
    /// llama-server's extension: generate `max_tokens` whatever the model says (benchmarks).
    ignore_eos: Option<bool>,
}

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
    // Two flattened structs side by side, not one inside the other: serde reads a struct
    // that flattens another as a map and leaves its keys to the `Rest` after it.
    #[serde(flatten)]
    sampler: SamplerFields,
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
    // Two flattened structs side by side, not one inside the other: serde reads a struct
    // that flattens another as a map and leaves its keys to the `Rest` after it.
    #[serde(flatten)]
    sampler: SamplerFields,
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
