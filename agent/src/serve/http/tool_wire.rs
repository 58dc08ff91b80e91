//! Tools and tool calls of the OpenAI and Ollama chat requests, turned into the engine's (both
//! APIs use OpenAI's `{"type": "function", "function": {...}}` for tools; calls differ in the
//! arguments: a JSON string on OpenAI, an object on Ollama; the types are in `crate::wire`).

use serde_json::Value;

use crate::serve::engine::{Tool, ToolCall};
use crate::serve::tools::ToolChoice;
use crate::wire::ollama_request::OllamaCall;
use crate::wire::openai_request::{OpenAiCall, ToolDef};

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
