//! OpenAI's Responses API, stateless: `POST /v1/responses` with `input` as text or items
//! (messages, function calls and their outputs, as the official client sends a conversation
//! back), `instructions`, function tools and `text.format`, answered whole or as Responses
//! events (`responses_answer.rs`). Nothing is stored: `store: true`, `previous_response_id`
//! and `conversation` are refused.

use axum::extract::{Extension, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::tool_wire::tool_choice;
use super::{ApiError, ApiJson, Flavor, RequestLog, generate, responses_answer, structured};
use crate::serve::engine::{ChatMessage, Tool, ToolCall, json_object_grammar};
use crate::serve::state::AppState;
use crate::serve::tools::{self, ToolRequest};
use crate::wire::request_fields::unsupported;
use crate::wire::responses as wire;
use crate::wire::responses_request::{ResponsesRequest, TextFormat};

const FLAVOR: Flavor = Flavor::OpenAi;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(FLAVOR, message)
}

/// Refuses keys of an input item other than `allowed`, naming the first.
fn only_keys(item: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), ApiError> {
    match item.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(bad(unsupported(&format!("{path}.{key}")))),
        None => Ok(()),
    }
}

fn string_at(item: &Map<String, Value>, key: &str, path: &str) -> Result<String, ApiError> {
    item.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| bad(format!("{path}.{key} must be a string")))
}

/// A message's text: a string, or `input_text`/`output_text` parts.
fn content_text(content: &Value, path: &str) -> Result<String, ApiError> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let at = format!("{path}[{i}]");
                let part = part
                    .as_object()
                    .ok_or_else(|| bad(format!("{at} must be an object")))?;
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text") => only_keys(part, &["type", "text"], &at)?,
                    // What the server answered, sent back: annotations only when empty.
                    Some("output_text") => {
                        only_keys(part, &["type", "text", "annotations", "logprobs"], &at)?;
                        if part
                            .get("annotations")
                            .and_then(Value::as_array)
                            .is_some_and(|a| !a.is_empty())
                        {
                            return Err(bad(format!("{at}.annotations: only an empty list")));
                        }
                    }
                    other => {
                        return Err(bad(format!(
                            "{at}.type {other:?}: only input_text and output_text parts"
                        )));
                    }
                }
                string_at(part, "text", &at)
            })
            .collect(),
        _ => Err(bad(format!("{path} must be a string or a list of parts"))),
    }
}

/// The input items as chat messages: consecutive function calls become one assistant message
/// with calls, function outputs become tool messages.
fn input_messages(input: &Value) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match input {
        Value::String(text) => return Ok(vec![ChatMessage::new("user", text.clone())]),
        Value::Array(items) if !items.is_empty() => items,
        _ => return Err(bad("input must be a string or a non-empty list of items")),
    };
    let mut out: Vec<ChatMessage> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let item = item
            .as_object()
            .ok_or_else(|| bad(format!("{path} must be an object")))?;
        match item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
        {
            "message" => {
                only_keys(item, &["type", "role", "content", "id", "status"], &path)?;
                let role = match string_at(item, "role", &path)?.as_str() {
                    "user" => "user",
                    "assistant" => "assistant",
                    "system" | "developer" => "system",
                    other => return Err(bad(format!("{path}.role {other:?}"))),
                };
                let content = item.get("content").unwrap_or(&Value::Null);
                let text = content_text(content, &format!("{path}.content"))?;
                out.push(ChatMessage::new(role, text));
            }
            "function_call" => {
                only_keys(
                    item,
                    &["type", "call_id", "name", "arguments", "id", "status"],
                    &path,
                )?;
                let call = ToolCall {
                    id: string_at(item, "call_id", &path)?,
                    name: string_at(item, "name", &path)?,
                    arguments: string_at(item, "arguments", &path)?,
                };
                match out.last_mut() {
                    Some(last) if last.role == "assistant" && !last.tool_calls.is_empty() => {
                        last.tool_calls.push(call);
                    }
                    _ => out.push(ChatMessage {
                        tool_calls: vec![call],
                        ..ChatMessage::new("assistant", "")
                    }),
                }
            }
            "function_call_output" => {
                only_keys(item, &["type", "call_id", "output", "id", "status"], &path)?;
                let output = item.get("output").unwrap_or(&Value::Null);
                out.push(ChatMessage {
                    tool_call_id: Some(string_at(item, "call_id", &path)?),
                    ..ChatMessage::new("tool", content_text(output, &format!("{path}.output"))?)
                });
            }
            other => {
                return Err(bad(format!(
                    "{path}.type {other:?}: only message, function_call and function_call_output items"
                )));
            }
        }
    }
    Ok(out)
}

/// Function tools in the Responses form (name at the top, not under `function`).
fn function_tools(tools: &[Value]) -> Result<Vec<Tool>, ApiError> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = format!("tools[{i}]");
            let t = t
                .as_object()
                .ok_or_else(|| bad(format!("{path} must be an object")))?;
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad(format!(
                    "{path}.type {}: only function tools are supported",
                    t.get("type").unwrap_or(&Value::Null)
                )));
            }
            only_keys(
                t,
                &["type", "name", "description", "parameters", "strict"],
                &path,
            )?;
            Ok(Tool {
                name: string_at(t, "name", &path)?,
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters: t.get("parameters").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// A tool in the Responses form. Calls always follow the parameters' schema (constrained
/// decoding), which is what `strict` asks for.
fn responses_tool(tool: &Tool) -> Value {
    json!({"type": "function", "name": tool.name, "description": tool.description,
           "parameters": tool.parameters, "strict": true})
}

/// A tool choice in the Responses form.
fn responses_choice(choice: &tools::ToolChoice) -> Value {
    match choice {
        tools::ToolChoice::None => json!("none"),
        tools::ToolChoice::Auto => json!("auto"),
        tools::ToolChoice::Required => json!("required"),
        tools::ToolChoice::Named(name) => json!({"type": "function", "name": name}),
    }
}

/// `tool_choice`: the chat forms, with a named function written `{"type": "function",
/// "name": ...}`.
fn responses_tool_choice(
    value: Option<&Value>,
    default: tools::ToolChoice,
) -> Result<tools::ToolChoice, ApiError> {
    let value = match value {
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            only_keys(o, &["type", "name"], "tool_choice")?;
            let name = string_at(o, "name", "tool_choice")?;
            return Ok(tools::ToolChoice::Named(name));
        }
        other => other,
    };
    tool_choice(value, default).map_err(bad)
}

/// A response, whole or as events.
#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "openai",
    request_body = ResponsesRequest,
    responses(
        (status = 200, description = "A response (JSON), or server-sent events when stream is \
            true (each event named by its data's `type`)",
            content(
                (wire::Response = "application/json"),
                (wire::StreamEvent = "text/event-stream"),
            )),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn responses(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<ResponsesRequest>,
) -> Result<Response, ApiError> {
    let (model, preset) = generate::requested(&state, FLAVOR, &log, req.model.as_deref())?;
    if req.store == Some(true) {
        return Err(bad(
            "store: true is not supported: responses are not stored",
        ));
    }
    if req.truncation.as_deref().is_some_and(|t| t != "disabled") {
        return Err(bad("truncation: only \"disabled\""));
    }
    for user in [&req.user, &req.safety_identifier].into_iter().flatten() {
        log.user(user);
    }
    let mut params = generate::base_params(preset);
    params.temperature = req.temperature.unwrap_or(params.temperature);
    params.top_p = req.top_p.unwrap_or(params.top_p);
    if req.max_output_tokens.is_some() {
        params.max_tokens = req.max_output_tokens;
    }
    let format = req.text.and_then(|t| t.format);
    params.grammar = match &format {
        None | Some(TextFormat::Text {}) => None,
        Some(TextFormat::JsonObject {}) => {
            Some(json_object_grammar().map_err(|e| ApiError::internal(FLAVOR, &e.to_string()))?)
        }
        Some(TextFormat::JsonSchema { schema, .. }) => Some(structured::schema_grammar_for(
            FLAVOR,
            "text.format.schema",
            schema,
        )?),
    };
    let raw_tools = req.tools.unwrap_or_default();
    let offered = generate::offered_tools(preset, function_tools(&raw_tools)?);
    let choice = responses_tool_choice(req.tool_choice.as_ref(), offered.choice.clone())?;
    let parallel = req.parallel_tool_calls.unwrap_or(offered.parallel);
    let mut messages = input_messages(&req.input)?;
    if let Some(instructions) = &req.instructions {
        messages.insert(0, ChatMessage::new("system", instructions.clone()));
    }
    let messages = generate::with_system(preset, messages);
    let request = ToolRequest {
        choice,
        parallel,
        ..offered
    };
    // The response names the tools in effect: a preset's when the request brought none.
    let settings = wire::Response {
        model,
        instructions: req.instructions,
        tools: request.tools.iter().map(responses_tool).collect(),
        tool_choice: responses_choice(&request.choice),
        parallel_tool_calls: parallel,
        temperature: Some(params.temperature),
        top_p: Some(params.top_p),
        max_output_tokens: req.max_output_tokens,
        text: wire::TextSettings {
            format: format.map_or_else(|| json!({"type": "text"}), |f| json!(f)),
        },
        metadata: req.metadata.unwrap_or_default(),
        store: false,
        truncation: "disabled".into(),
        ..wire::Response::default()
    };
    let live =
        generate::start_chat(&state, FLAVOR, log, messages, request, params, req.stream).await?;
    responses_answer::respond(live, settings, req.stream).await
}
