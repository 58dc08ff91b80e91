//! Tools and tool calls as the OpenAI and Ollama chat APIs write them (both use OpenAI's
//! `{"type": "function", "function": {...}}` for tools; calls differ in the arguments: a JSON
//! string on OpenAI, an object on Ollama).

use serde::Deserialize;
use serde_json::Value;

use crate::serve::engine::{Tool, ToolCall};
use crate::serve::tools::ToolChoice;

/// One entry of `tools`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolDef {
    /// Only `"function"`.
    #[serde(rename = "type")]
    kind: String,
    function: FunctionDef,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunctionDef {
    name: String,
    description: Option<String>,
    /// JSON schema of the arguments (absent: no arguments).
    #[schema(value_type = Object)]
    parameters: Option<Value>,
    /// OpenAI's strict mode: calls here always follow the schema, so both values are served.
    #[allow(dead_code, reason = "both values are served by the same enforcement")]
    strict: Option<bool>,
}

/// The tools of a request, checked for their type.
pub(crate) fn tools(defs: Vec<ToolDef>) -> Result<Vec<Tool>, String> {
    defs.into_iter()
        .enumerate()
        .map(|(i, d)| {
            if d.kind != "function" {
                return Err(format!(
                    "tools[{i}].type {:?}: only \"function\" tools are supported",
                    d.kind
                ));
            }
            Ok(Tool {
                name: d.function.name,
                description: d.function.description,
                parameters: d.function.parameters.unwrap_or(Value::Null),
            })
        })
        .collect()
}

/// OpenAI `tool_choice`: `"none"`, `"auto"`, `"required"` or `{"type": "function",
/// "function": {"name": ...}}`; `default` when the request names none (see
/// [`super::generate::offered_tools`]).
pub(crate) fn tool_choice(
    value: Option<&Value>,
    default: ToolChoice,
) -> Result<ToolChoice, String> {
    let named = |v: &Value| {
        let name = v.pointer("/function/name")?.as_str()?;
        let keys_ok = v
            .as_object()?
            .keys()
            .all(|k| k == "type" || k == "function")
            && v["function"].as_object()?.keys().all(|k| k == "name")
            && v["type"] == "function";
        keys_ok.then(|| ToolChoice::Named(name.to_owned()))
    };
    match value {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(format!(
                "tool_choice {other:?}: \"none\", \"auto\", \"required\" or a named function"
            )),
        },
        Some(other) => named(other).ok_or_else(|| {
            format!(
                "tool_choice {other}: expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
            )
        }),
    }
}

/// A call in an OpenAI assistant message (`arguments` is JSON text).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenAiCall {
    id: String,
    /// Only `"function"`.
    #[serde(rename = "type")]
    kind: String,
    function: OpenAiFunctionCall,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenAiFunctionCall {
    name: String,
    arguments: String,
}

/// The engine's calls from an OpenAI message.
pub(crate) fn openai_calls(calls: Vec<OpenAiCall>) -> Result<Vec<ToolCall>, String> {
    calls
        .into_iter()
        .map(|c| {
            if c.kind != "function" {
                return Err(format!(
                    "tool_calls: type {:?}: only \"function\" calls are supported",
                    c.kind
                ));
            }
            Ok(ToolCall {
                id: c.id,
                name: c.function.name,
                arguments: c.function.arguments,
            })
        })
        .collect()
}

/// A call in an Ollama assistant message (`arguments` is an object).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OllamaCall {
    function: OllamaFunctionCall,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OllamaFunctionCall {
    name: String,
    #[schema(value_type = Object)]
    arguments: Value,
    /// The call's position in its message (newer Ollama versions send it).
    #[allow(dead_code, reason = "the position in the list says the same")]
    index: Option<u32>,
}

/// The engine's calls from an Ollama message; Ollama has no call ids, so they are made up
/// from the message's position (tool results then follow by tool name).
pub(crate) fn ollama_calls(message: usize, calls: Vec<OllamaCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: format!("call_m{message}_{i}"),
            name: c.function.name,
            arguments: c.function.arguments.to_string(),
        })
        .collect()
}
