//! Tool calling, shared by the OpenAI and Ollama chat routes: checking the tools a request
//! offers, putting them in front of the model (its template's native syntax, or the generic
//! JSON form), the grammar that makes a required or named call parse, and finding the calls
//! in the output ([`ToolStream`]).

mod generic;
mod grammar;
mod parse;

use llamafleet_crds::tools::{arguments, check_name};

use crate::serve::engine::{Chat, ChatMessage, SamplingParams, Tool, ToolSyntax};

pub(crate) use parse::ToolStream;

/// OpenAI `tool_choice` (Ollama always means `auto`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolChoice {
    /// Never call: the tools are not shown.
    None,
    /// The model decides.
    Auto,
    /// At least one call.
    Required,
    /// A call of this function.
    Named(String),
}

/// The tool part of a chat request.
#[derive(Debug, Clone)]
pub(crate) struct ToolRequest {
    pub tools: Vec<Tool>,
    pub choice: ToolChoice,
    /// More than one call in an answer.
    pub parallel: bool,
}

/// A conversation ready for the engine, and how its output is read.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub chat: Chat,
    /// Set when tools are offered: splits the output into content and calls.
    pub stream: Option<ToolStream>,
}

/// Checks the tools (a 400 message naming the field when one is wrong), fills in the tool
/// name of tool results from the calls they answer, and prepares `messages` for `syntax`;
/// sets the grammar of `params` when tools are offered.
pub(crate) fn prepare(
    request: ToolRequest,
    syntax: ToolSyntax,
    mut messages: Vec<ChatMessage>,
    params: &mut SamplingParams,
) -> Result<Prepared, String> {
    let tools = checked_tools(request.tools)?;
    link_results(&mut messages);
    if syntax == ToolSyntax::Mistral {
        mistral_ids(&mut messages);
    }
    let offered = match &request.choice {
        ToolChoice::None => Vec::new(),
        ToolChoice::Auto | ToolChoice::Required if tools.is_empty() => {
            if request.choice == ToolChoice::Required {
                return Err("a required tool call (tool_choice) needs tools".into());
            }
            Vec::new()
        }
        ToolChoice::Auto | ToolChoice::Required => tools.clone(),
        ToolChoice::Named(name) => match tools.iter().find(|t| t.name == *name) {
            Some(tool) => vec![tool.clone()],
            None => return Err(format!("tool_choice names {name:?}, which is not in tools")),
        },
    };
    if offered.is_empty() {
        let messages = match syntax {
            ToolSyntax::Generic => generic::rewrite(messages, None),
            _ => messages,
        };
        return Ok(Prepared {
            chat: messages.into(),
            stream: None,
        });
    }
    if params.grammar.is_some() {
        return Err(
            "tools with a structured output format: an answer is either tool calls or \
             formatted text; turn the tools off (tool_choice none) to use the format"
                .into(),
        );
    }
    let required = request.choice != ToolChoice::Auto;
    let constraint = grammar::constraint(syntax, &offered, required, request.parallel)
        .map_err(|e| format!("tools: {e}"))?;
    params.grammar = Some(constraint.grammar);
    params.grammar_triggers = constraint.triggers;
    params.grammar_trigger_patterns = constraint.patterns;
    params.preserved = grammar::opening_tokens(syntax);
    let names = tools.iter().map(|t| t.name.clone()).collect();
    let chat = match syntax {
        ToolSyntax::Generic => {
            let text = generic::instructions(&offered, required, request.parallel);
            generic::rewrite(messages, Some(text)).into()
        }
        _ => Chat {
            messages,
            tools: offered,
        },
    };
    Ok(Prepared {
        chat,
        stream: Some(ToolStream::new(syntax, names)),
    })
}

/// Log probabilities come with the text they belong to; on a stream with tools offered, text
/// is held back while a call may be starting and calls are not text, so the two are not
/// combined (a whole answer lists every token's).
pub(crate) fn streamable(
    stream: bool,
    params: &SamplingParams,
    prepared: &Prepared,
) -> Result<(), String> {
    if stream && params.logprobs.is_some() && prepared.stream.is_some() {
        return Err(
            "logprobs with tools on a stream: ask for a whole answer (stream: false)".into(),
        );
    }
    Ok(())
}

/// Names are unique and of OpenAI's alphabet, parameters are enforceable JSON schemas
/// (an absent schema means an object of any arguments).
fn checked_tools(tools: Vec<Tool>) -> Result<Vec<Tool>, String> {
    let mut seen = std::collections::HashSet::new();
    tools
        .into_iter()
        .enumerate()
        .map(|(i, mut tool)| {
            let field = format!("tools[{i}].function");
            check_name(&tool.name).map_err(|e| format!("{field}.name {e}"))?;
            if !seen.insert(tool.name.clone()) {
                return Err(format!("{field}.name {:?} is given twice", tool.name));
            }
            tool.parameters =
                arguments(&tool.parameters).map_err(|e| format!("{field}.parameters: {e}"))?;
            Ok(tool)
        })
        .collect()
}

/// Links tool results to the calls they answer: the tool's name from the call's id (OpenAI
/// sends only the id), or the id from the name, in order, among the calls of the last
/// assistant message not answered yet (Ollama sends only the name). Templates print both.
fn link_results(messages: &mut [ChatMessage]) {
    let mut names = std::collections::HashMap::new();
    let mut open: Vec<(String, String)> = Vec::new();
    for m in messages.iter_mut() {
        if !m.tool_calls.is_empty() {
            open = m
                .tool_calls
                .iter()
                .map(|c| (c.id.clone(), c.name.clone()))
                .collect();
        }
        for call in &m.tool_calls {
            names.insert(call.id.clone(), call.name.clone());
        }
        if m.role != "tool" {
            continue;
        }
        if m.tool_call_id.is_none() {
            let at = open
                .iter()
                .position(|(_, name)| m.tool_name.as_ref().is_none_or(|n| n == name));
            m.tool_call_id = at.map(|i| open.remove(i).0);
        } else {
            open.retain(|(id, _)| Some(id) != m.tool_call_id.as_ref());
        }
        if m.tool_name.is_none()
            && let Some(name) = m.tool_call_id.as_ref().and_then(|id| names.get(id))
        {
            m.tool_name = Some(name.clone());
        }
    }
}

/// Mistral's templates accept only call ids of 9 letters and digits: other ids are replaced
/// by one made from their hash (the same for a call and the results that answer it).
fn mistral_ids(messages: &mut [ChatMessage]) {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let nine = |id: &str| -> String {
        if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return id.to_owned();
        }
        Sha256::digest(id.as_bytes())
            .iter()
            .take(9)
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect()
    };
    for m in messages.iter_mut() {
        for call in &mut m.tool_calls {
            call.id = nine(&call.id);
        }
        if let Some(id) = &mut m.tool_call_id {
            *id = nine(id);
        }
    }
}

/// Ids for the calls of one answer: OpenAI's `call_` prefix, unique per request.
pub(crate) fn call_id(request_id: &str, index: usize) -> String {
    format!("call_{request_id}_{index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::engine::ToolCall;

    fn call(id: &str, name: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: "{}".into(),
        }
    }

    fn result(id: Option<&str>, name: Option<&str>) -> ChatMessage {
        ChatMessage {
            tool_call_id: id.map(Into::into),
            tool_name: name.map(Into::into),
            ..ChatMessage::new("tool", "r")
        }
    }

    #[test]
    fn results_get_the_id_or_the_name_of_the_call_they_answer() {
        let mut messages = vec![
            ChatMessage {
                tool_calls: vec![
                    call("a", "weather"),
                    call("b", "time"),
                    call("c", "weather"),
                ],
                ..ChatMessage::new("assistant", "")
            },
            result(None, Some("weather")),
            result(Some("b"), None),
            result(None, None),
        ];
        link_results(&mut messages);
        let linked: Vec<_> = messages[1..]
            .iter()
            .map(|m| (m.tool_call_id.as_deref(), m.tool_name.as_deref()))
            .collect();
        assert_eq!(
            linked,
            [
                (Some("a"), Some("weather")),
                (Some("b"), Some("time")),
                (Some("c"), Some("weather"))
            ]
        );
        mistral_ids(&mut messages);
        let id = &messages[0].tool_calls[0].id;
        assert_eq!(id.len(), 9);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(messages[1].tool_call_id.as_ref(), Some(id));
    }
}
