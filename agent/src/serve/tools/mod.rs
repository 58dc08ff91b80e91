//! Tool calling, shared by the OpenAI and Ollama chat routes: checking the tools a request
//! offers, putting them in front of the model (its template's native syntax, or the generic
//! JSON form), the grammar that makes a required or named call parse, and finding the calls
//! in the output ([`ToolStream`]).

mod generic;
mod grammar;
mod parse;

use crate::serve::engine::{Chat, ChatMessage, SamplingParams, Tool, ToolSyntax, enforceable};

pub(crate) use parse::ToolStream;

/// Tool names as OpenAI allows them: what the model writes back must match exactly.
const MAX_NAME: usize = 64;

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
    name_results(&mut messages);
    let offered = match &request.choice {
        ToolChoice::None => Vec::new(),
        ToolChoice::Auto | ToolChoice::Required if tools.is_empty() => {
            if request.choice == ToolChoice::Required {
                return Err("tool_choice \"required\" needs tools".into());
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
            "tools with a response format: an answer is either tool calls or formatted text; \
             send tool_choice \"none\" to use the format"
                .into(),
        );
    }
    let required = request.choice != ToolChoice::Auto;
    let constraint = grammar::constraint(syntax, &offered, required, request.parallel)
        .map_err(|e| format!("tools: {e}"))?;
    params.grammar = Some(constraint.grammar);
    params.grammar_triggers = constraint.triggers;
    params.grammar_trigger_patterns = constraint.patterns;
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

/// Names are unique and of OpenAI's alphabet, parameters are enforceable JSON schemas
/// (an absent schema means an object of any arguments).
fn checked_tools(tools: Vec<Tool>) -> Result<Vec<Tool>, String> {
    let mut seen = std::collections::HashSet::new();
    tools
        .into_iter()
        .enumerate()
        .map(|(i, mut tool)| {
            let field = format!("tools[{i}].function");
            let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
            if tool.name.is_empty() || tool.name.len() > MAX_NAME || !tool.name.chars().all(valid) {
                return Err(format!(
                    "{field}.name {:?}: 1 to {MAX_NAME} letters, digits, _ or -",
                    tool.name
                ));
            }
            if !seen.insert(tool.name.clone()) {
                return Err(format!("{field}.name {:?} is given twice", tool.name));
            }
            if tool.parameters.is_null() {
                tool.parameters = serde_json::json!({"type": "object", "properties": {}});
            }
            if tool.parameters.get("type").is_some_and(|t| t != "object") {
                return Err(format!(
                    "{field}.parameters: the arguments must be an object"
                ));
            }
            tool.parameters =
                enforceable(&tool.parameters).map_err(|e| format!("{field}.parameters: {e}"))?;
            Ok(tool)
        })
        .collect()
}

/// Tool results name their tool (templates print it) from the call they answer.
fn name_results(messages: &mut [ChatMessage]) {
    let mut names = std::collections::HashMap::new();
    for m in messages.iter_mut() {
        for call in &m.tool_calls {
            names.insert(call.id.clone(), call.name.clone());
        }
        if m.role == "tool"
            && m.tool_name.is_none()
            && let Some(name) = m.tool_call_id.as_ref().and_then(|id| names.get(id))
        {
            m.tool_name = Some(name.clone());
        }
    }
}

/// Ids for the calls of one answer: OpenAI's `call_` prefix, unique per request.
pub(crate) fn call_id(request_id: &str, index: usize) -> String {
    format!("call_{request_id}_{index}")
}
