//! Tools for models whose chat template has no tool syntax: the tools are described in the
//! system message, earlier calls and results are written as the JSON the model is asked to
//! answer in, and the answer is held to that JSON by a grammar (as llama.cpp's server does
//! for such templates).

use serde_json::json;

use crate::serve::engine::{ChatMessage, Tool};

/// What the model is told when it may (or must) call tools.
pub(super) fn instructions(tools: &[Tool], required: bool, parallel: bool) -> String {
    let listed: Vec<_> = tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    let listed = serde_json::to_string_pretty(&listed).unwrap_or_default();
    let calls = if parallel {
        "one or more calls"
    } else {
        "exactly one call"
    };
    let answer = if required {
        format!(
            "Answer with JSON only, calling tools ({calls}): \
             {{\"tool_calls\": [{{\"name\": \"<tool name>\", \"arguments\": {{...}}}}]}}"
        )
    } else {
        format!(
            "Answer with JSON only: either {{\"tool_calls\": [{{\"name\": \"<tool name>\", \
             \"arguments\": {{...}}}}]}} to call tools ({calls}), or \
             {{\"response\": \"<your answer>\"}} to answer the user directly."
        )
    };
    format!(
        "You can call these tools; each is given with the JSON schema of its arguments:\n\
         {listed}\n\n{answer}"
    )
}

/// The conversation in the generic form: calls and results as JSON text, `instructions` (when
/// tools are offered) at the end of the system message, assistant answers as `{"response":
/// ...}` so earlier turns look like what the model is asked to write.
pub(super) fn rewrite(
    messages: Vec<ChatMessage>,
    instructions: Option<String>,
) -> Vec<ChatMessage> {
    let offered = instructions.is_some();
    let rewritten: Vec<ChatMessage> = messages
        .into_iter()
        .map(|m| {
            if m.role == "tool" {
                let result = json!({"tool_response": {"name": m.tool_name,
                    "tool_call_id": m.tool_call_id, "content": m.content}});
                return ChatMessage::new("user", result.to_string());
            }
            if !m.tool_calls.is_empty() {
                let calls: Vec<_> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"name": c.name, "arguments": c.arguments_json()}))
                    .collect();
                return ChatMessage::new("assistant", json!({"tool_calls": calls}).to_string());
            }
            if offered && m.role == "assistant" {
                return ChatMessage::new("assistant", json!({"response": m.content}).to_string());
            }
            m
        })
        .collect();
    // Results become user messages; templates that insist on alternating roles must not see
    // two in a row.
    let mut out: Vec<ChatMessage> = Vec::with_capacity(rewritten.len());
    for m in rewritten {
        match out.last_mut() {
            Some(last) if last.role == m.role => {
                last.content.push('\n');
                last.content.push_str(&m.content);
            }
            _ => out.push(m),
        }
    }
    if let Some(text) = instructions {
        match out.iter_mut().find(|m| m.role == "system") {
            Some(system) => system.content = format!("{}\n\n{text}", system.content),
            None => out.insert(0, ChatMessage::new("system", text)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::serve::engine::ToolCall;

    #[test]
    fn calls_and_results_become_json_and_the_tools_join_the_system_message() {
        let tools = [Tool {
            name: "get_time".into(),
            description: Some("The time in a zone".into()),
            parameters: json!({"type": "object"}),
        }];
        let call = ChatMessage {
            role: "assistant".into(),
            tool_calls: vec![ToolCall {
                id: "call_1".into(),
                name: "get_time".into(),
                arguments: r#"{"zone": "UTC"}"#.into(),
            }],
            ..ChatMessage::default()
        };
        let result = ChatMessage {
            role: "tool".into(),
            content: "12:00".into(),
            tool_call_id: Some("call_1".into()),
            tool_name: Some("get_time".into()),
            ..ChatMessage::default()
        };
        let out = rewrite(
            vec![
                ChatMessage::new("system", "Be brief."),
                ChatMessage::new("user", "Time?"),
                call,
                result,
                ChatMessage::new("user", "And?"),
                ChatMessage::new("assistant", "Noon."),
            ],
            Some(instructions(&tools, false, true)),
        );
        assert!(
            out[0]
                .content
                .starts_with("Be brief.\n\nYou can call these tools")
        );
        assert!(out[0].content.contains("The time in a zone"));
        assert_eq!(
            out[2].content,
            r#"{"tool_calls":[{"name":"get_time","arguments":{"zone":"UTC"}}]}"#
        );
        assert_eq!(out[3].role, "user");
        // The result and the next user message are one user turn.
        assert_eq!(
            out[3].content,
            "{\"tool_response\":{\"name\":\"get_time\",\"tool_call_id\":\"call_1\",\"content\":\"12:00\"}}\nAnd?"
        );
        assert_eq!(out[4].content, r#"{"response":"Noon."}"#);
        assert!(out.iter().all(|m| !m.is_tool_related()));
    }
}
