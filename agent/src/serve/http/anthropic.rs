//! Anthropic's Messages API: `POST /v1/messages` (whole or as Anthropic's server-sent events)
//! and `POST /v1/messages/count_tokens`, over the same engine, tools and structured output as
//! the OpenAI and Ollama routes. Requests are read into the engine's chat form here; answers
//! are written in `anthropic_answer.rs`.

use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::Value;

use super::{ApiError, ApiJson, Flavor, RequestLog, anthropic_answer, generate, structured};
use crate::serve::engine::{ChatMessage, Prompt, SamplingParams, Tool, ToolCall};
use crate::serve::presets::Preset;
use crate::serve::state::AppState;
use crate::serve::tools::{ToolChoice, ToolRequest};
use crate::wire::anthropic::{self as wire, StreamEvent, TokenCount};
use crate::wire::anthropic_request::{
    Block, Content, Conversation, CountRequest, Message, MessagesRequest, ToolChoiceDef, ToolDef,
};

const FLAVOR: Flavor = Flavor::Anthropic;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(FLAVOR, message)
}

fn text_of(content: Content, what: &str) -> Result<String, ApiError> {
    match content {
        Content::Text(t) => Ok(t),
        // Blocks are separate pieces of text: a line between them, not glued together.
        Content::Blocks(blocks) => blocks
            .into_iter()
            .map(|b| match b {
                Block::Text { text, .. } => Ok(text),
                _ => Err(bad(format!("{what}: only text blocks"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
    }
}

/// The conversation in the engine's form: tool results become tool messages (before the
/// user's text of the same turn, as Anthropic orders them), tool uses become calls.
fn chat_messages(
    system: Option<Content>,
    messages: Vec<Message>,
) -> Result<Vec<ChatMessage>, ApiError> {
    if messages.is_empty() {
        return Err(bad("messages must not be empty"));
    }
    // Anthropic continues a final assistant message ("prefill"); chat templates close every
    // turn they render, so that cannot be honoured here.
    if messages.last().is_some_and(|m| m.role == "assistant") {
        return Err(bad(
            "messages: a final assistant message (prefill) is not supported; the answer \
             always starts a new assistant turn",
        ));
    }
    let mut out = Vec::new();
    if let Some(system) = system {
        out.push(ChatMessage::new("system", text_of(system, "system")?));
    }
    for (i, m) in messages.into_iter().enumerate() {
        let role = m.role;
        if !matches!(role.as_str(), "user" | "assistant" | "system") {
            return Err(bad(format!("messages[{i}].role {role:?}")));
        }
        let blocks = match m.content {
            Content::Text(text) => vec![Block::Text {
                text,
                cache_control: None,
            }],
            Content::Blocks(blocks) => blocks,
        };
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in blocks {
            match block {
                Block::Text { text: t, .. } => {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&t);
                }
                Block::ToolUse {
                    id, name, input, ..
                } if role == "assistant" => {
                    if !input.is_object() {
                        return Err(bad(format!(
                            "messages[{i}]: tool_use input must be an object"
                        )));
                    }
                    calls.push(ToolCall {
                        id,
                        name,
                        arguments: input.to_string(),
                    });
                }
                Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                    ..
                } if role == "user" => {
                    let result = match content {
                        Some(c) => text_of(c, &format!("messages[{i}]: tool_result content"))?,
                        None => String::new(),
                    };
                    let result = if is_error == Some(true) {
                        format!("Error: {result}")
                    } else {
                        result
                    };
                    out.push(ChatMessage {
                        tool_call_id: Some(tool_use_id),
                        ..ChatMessage::new("tool", result)
                    });
                }
                _ => {
                    return Err(bad(format!(
                        "messages[{i}]: tool_use blocks belong to assistant messages and \
                         tool_result blocks to user messages"
                    )));
                }
            }
        }
        if !text.is_empty() || !calls.is_empty() {
            out.push(ChatMessage {
                tool_calls: calls,
                ..ChatMessage::new(role, text)
            });
        }
    }
    Ok(out)
}

fn tool_request(
    preset: Option<&Preset>,
    tools: Option<Vec<ToolDef>>,
    choice: Option<ToolChoiceDef>,
) -> Result<ToolRequest, ApiError> {
    let tools = tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| match t.kind.as_deref() {
            None | Some("custom") => Ok(Tool {
                name: t.name,
                description: t.description,
                parameters: t.input_schema,
            }),
            Some(other) => Err(bad(format!(
                "tools[{i}].type {other:?}: only custom tools are supported"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let offered = generate::offered_tools(preset, tools);
    let auto = if offered.tools.is_empty() {
        ToolChoice::None
    } else {
        ToolChoice::Auto
    };
    let (choice, single) = match choice {
        None => (offered.choice, None),
        Some(ToolChoiceDef::Auto {
            disable_parallel_tool_use,
        }) => (auto, disable_parallel_tool_use),
        Some(ToolChoiceDef::Any {
            disable_parallel_tool_use,
        }) => (ToolChoice::Required, disable_parallel_tool_use),
        Some(ToolChoiceDef::Tool {
            name,
            disable_parallel_tool_use,
        }) => (ToolChoice::Named(name), disable_parallel_tool_use),
        Some(ToolChoiceDef::None {}) => (ToolChoice::None, None),
    };
    Ok(ToolRequest {
        choice,
        parallel: single.map_or(offered.parallel, |single| !single),
        ..offered
    })
}

impl Conversation {
    /// Checks the fields and applies the output format; the conversation (with the preset's
    /// system prompt unless it has its own) and its tools.
    fn read(
        self,
        preset: Option<&Preset>,
        params: &mut SamplingParams,
    ) -> Result<(Vec<ChatMessage>, ToolRequest), ApiError> {
        match &self.thinking {
            None => {}
            Some(t) if t.get("type").and_then(Value::as_str) == Some("disabled") => {}
            Some(_) => return Err(bad("thinking: this model does not support thinking")),
        }
        if let Some(config) = self.output_config {
            if config.effort.is_some() {
                return Err(bad(
                    "output_config.effort: this model does not reason, so effort has no meaning",
                ));
            }
            if let Some(format) = config.format {
                params.grammar = anthropic_format(&format)?;
            }
        }
        let messages = chat_messages(self.system, self.messages)?;
        let request = tool_request(preset, self.tools, self.tool_choice)?;
        Ok((generate::with_system(preset, messages), request))
    }
}

/// `output_config.format`: `{"type": "json_schema", "schema": {...}}`.
fn anthropic_format(format: &Value) -> Result<Option<String>, ApiError> {
    let keys_ok = format
        .as_object()
        .is_some_and(|o| o.keys().all(|k| k == "type" || k == "schema"));
    match (
        format.get("type").and_then(Value::as_str),
        format.get("schema"),
    ) {
        (Some("json_schema"), Some(schema)) if keys_ok => {
            structured::schema_grammar_for(FLAVOR, "output_config.format.schema", schema).map(Some)
        }
        _ => Err(bad(
            "output_config.format: expected {\"type\": \"json_schema\", \"schema\": {...}}",
        )),
    }
}

/// A message, whole or streamed as Anthropic's events.
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "anthropic",
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "A message (JSON), or server-sent events when stream is \
            true (each event named by its data's `type`)",
            content(
                (wire::Message = "application/json"),
                (StreamEvent = "text/event-stream"),
            )),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<MessagesRequest>,
) -> Result<Response, ApiError> {
    let (model, preset) =
        generate::requested(&state, FLAVOR, &log, req.conversation.model.as_deref())?;
    if let Some(tier) = req.service_tier.as_deref()
        && tier != "auto"
        && tier != "standard_only"
    {
        return Err(bad(format!(
            "service_tier {tier:?}: \"auto\" or \"standard_only\""
        )));
    }
    if let Some(user) = req.metadata.and_then(|m| m.user_id) {
        log.user(&user);
    }
    if req.max_tokens == 0 {
        return Err(bad("max_tokens must be at least 1"));
    }
    let mut params = generate::base_params(preset);
    params.max_tokens = Some(req.max_tokens);
    // Anthropic's clients always send a limit, often larger than a small model's context.
    params.fit_max_tokens = true;
    params.temperature = req.temperature.unwrap_or(params.temperature);
    params.top_p = req.top_p.unwrap_or(params.top_p);
    params.top_k = req.top_k.unwrap_or(params.top_k);
    if let Some(stop) = req.stop_sequences {
        params.stop = stop;
    }
    let stops = params.stop.clone();
    let (messages, request) = req.conversation.read(preset, &mut params)?;
    let live =
        generate::start_chat(&state, FLAVOR, log, messages, request, params, req.stream).await?;
    anthropic_answer::respond(live, model, stops, req.stream).await
}

/// The prompt's tokens after templating (tools and system included), as the model sees them.
#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    tag = "anthropic",
    request_body = CountRequest,
    responses(
        (status = 200, description = "The prompt's tokens", body = TokenCount),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn count_tokens(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<CountRequest>,
) -> Result<axum::Json<TokenCount>, ApiError> {
    let (_, preset) = generate::requested(&state, FLAVOR, &log, req.conversation.model.as_deref())?;
    let mut params = generate::base_params(preset);
    let (messages, request) = req.conversation.read(preset, &mut params)?;
    let prepared = generate::prepare_chat(&state, FLAVOR, messages, request, &mut params)?;
    let engine = generate::engine(&state, FLAVOR)?;
    let tokens = engine
        .count_tokens(Prompt::Chat(prepared.chat))
        .await
        .map_err(|e| ApiError::engine(FLAVOR, e))?;
    Ok(axum::Json(TokenCount {
        input_tokens: u64::from(tokens),
    }))
}
