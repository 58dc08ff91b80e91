//! A conversation as the engine renders it: messages (tool calls and tool results included)
//! and the tools the model may call, and which tool-call syntax a chat template teaches.

use serde_json::Value;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatMessage {
    /// system, user, assistant or tool.
    pub role: String,
    /// The text.
    pub content: String,
    /// The calls an assistant message made.
    pub tool_calls: Vec<ToolCall>,
    /// On a tool message: the call it answers.
    pub tool_call_id: Option<String>,
    /// On a tool message: the tool that answered.
    pub tool_name: Option<String>,
}

impl ChatMessage {
    /// A message with text only.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            ..ChatMessage::default()
        }
    }

    /// Whether rendering it needs a template that knows tools.
    pub fn is_tool_related(&self) -> bool {
        self.role == "tool" || !self.tool_calls.is_empty()
    }
}

/// A function call the model made (or made earlier, in the history).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The id tool results refer to.
    pub id: String,
    /// The function.
    pub name: String,
    /// Its arguments, JSON text (an object).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as JSON (chat templates and Ollama want an object), or the text itself
    /// when it does not parse.
    pub fn arguments_json(&self) -> Value {
        serde_json::from_str(&self.arguments)
            .unwrap_or_else(|_| Value::String(self.arguments.clone()))
    }
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does, for the model.
    pub description: Option<String>,
    /// JSON schema of its arguments.
    pub parameters: Value,
}

impl Tool {
    /// The OpenAI/Hugging Face form chat templates read: `{type: function, function: {...}}`.
    pub fn as_json(&self) -> Value {
        let mut function = serde_json::json!({"name": self.name, "parameters": self.parameters});
        if let Some(d) = &self.description {
            function["description"] = Value::String(d.clone());
        }
        serde_json::json!({"type": "function", "function": function})
    }
}

/// Messages plus the tools the chat template should present (empty: none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chat {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tools rendered by the template itself (only for templates with a native syntax).
    pub tools: Vec<Tool>,
}

impl From<Vec<ChatMessage>> for Chat {
    fn from(messages: Vec<ChatMessage>) -> Self {
        Chat {
            messages,
            tools: Vec::new(),
        }
    }
}

/// How a model writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolSyntax {
    /// `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (Hermes, Qwen 2.5/3).
    Hermes,
    /// A bare `{"name": ..., "parameters": ...}` object (Llama 3.1-3.3).
    Llama3,
    /// `[TOOL_CALLS][{"name": ..., "arguments": ...}]` (Mistral).
    Mistral,
    /// No syntax of the model's own: tools are described in a system message and the whole
    /// answer is JSON, `{"tool_calls": [...]}` or `{"response": "..."}`, by constrained
    /// decoding (what llama.cpp's server does for such templates).
    Generic,
}

/// The syntax a Jinja chat template teaches, when it renders `tools` itself and writes calls
/// in a form this server parses; `None` otherwise (tools then take the generic form).
pub fn native_tool_syntax(source: &str) -> Option<ToolSyntax> {
    // XML call formats (Qwen3-Coder's `<function=...>`, GLM's `<arg_key>`) inside
    // `<tool_call>` are not the JSON this server parses.
    if !source.contains("tools") || source.contains("<function=") || source.contains("<arg_key>") {
        return None;
    }
    if source.contains("<tool_call>") {
        Some(ToolSyntax::Hermes)
    } else if source.contains("[TOOL_CALLS]") {
        Some(ToolSyntax::Mistral)
    } else if source.contains("<|python_tag|>")
        || (source.contains("<|start_header_id|>") && source.contains("\"parameters\""))
    {
        Some(ToolSyntax::Llama3)
    } else {
        None
    }
}
