//! Anthropic's Messages requests: `POST /v1/messages` and `/v1/messages/count_tokens`, their
//! messages, content blocks, tools, tool choice and `output_config`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::request_fields::Rest;

/// Text as a string or a list of text blocks (`system`, message and tool-result content).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = AnthropicContent)]
pub enum Content {
    /// A string.
    Text(String),
    /// Content blocks: text, and in messages also `tool_use` and `tool_result`.
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let content = super::request_fields::text_or_list(deserializer, "blocks")?;
        Ok(content.map_or_else(Content::Blocks, Content::Text))
    }
}

/// The content blocks this server reads; any other `type` (images, documents, thinking,
/// server tools) is refused by name.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    /// Text.
    Text {
        /// The text.
        text: String,
        /// Accepted: prompt prefixes are reused from the slot's cache without being asked.
        #[schema(value_type = Object)]
        cache_control: Option<Value>,
    },
    /// A call the assistant made.
    ToolUse {
        /// The call's id, which its result names.
        id: String,
        /// The tool called.
        name: String,
        #[schema(value_type = Object)]
        /// The call's arguments (an object).
        input: Value,
        #[schema(value_type = Object)]
        /// Accepted: prompt prefixes are reused from the slot's cache without being asked.
        cache_control: Option<Value>,
    },
    /// The result of a call.
    ToolResult {
        /// The call this result answers.
        tool_use_id: String,
        /// Text, or text blocks (refused otherwise when read).
        #[schema(no_recursion)]
        content: Option<Content>,
        /// Written in front of the result ("Error: ...") so the model sees it.
        is_error: Option<bool>,
        #[schema(value_type = Object)]
        /// Accepted: prompt prefixes are reused from the slot's cache without being asked.
        cache_control: Option<Value>,
    },
}

/// One turn of the conversation.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AnthropicMessage)]
pub struct Message {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Text or blocks.
    pub content: Content,
}

/// One tool (`custom`, the default type; server tools are refused).
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AnthropicToolDef)]
pub struct ToolDef {
    /// The name the model calls it by.
    pub name: String,
    /// What it does (shown to the model).
    pub description: Option<String>,
    #[schema(value_type = Object)]
    /// JSON schema of its input.
    pub input_schema: Value,
    /// Only `custom`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Calls always follow the schema here, so both values are served.
    pub strict: Option<bool>,
    #[schema(value_type = Object)]
    /// Accepted: prompt prefixes are reused from the slot's cache without being asked.
    pub cache_control: Option<Value>,
}

/// `tool_choice`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolChoiceDef {
    /// The model decides (the default with tools).
    Auto {
        /// `true`: at most one call.
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// `true`: at most one call.
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        /// The tool.
        name: String,
        /// `true`: at most one call.
        disable_parallel_tool_use: Option<bool>,
    },
    /// No call.
    None {},
}

/// `output_config`: structured output (`format`); `effort` is for reasoning models.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[schema(value_type = Object)]
    /// `{"type": "json_schema", "schema": ...}`: output that follows the schema.
    pub format: Option<Value>,
    #[schema(value_type = Object)]
    /// Only for reasoning models: refused here.
    pub effort: Option<Value>,
}

/// What the two routes share: the conversation and its tools.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Conversation {
    /// The model or preset; the server's model when absent.
    pub model: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// The system prompt.
    pub system: Option<Content>,
    /// Tools the model may call.
    pub tools: Option<Vec<ToolDef>>,
    /// Whether and which tool to call.
    pub tool_choice: Option<ToolChoiceDef>,
    /// Structured output.
    pub output_config: Option<OutputConfig>,
    /// Only `{"type": "disabled"}`: these models do not reason.
    #[schema(value_type = Object)]
    pub thinking: Option<Value>,
    /// Accepted: prompt prefixes are reused from the slot's cache without being asked.
    #[schema(value_type = Object)]
    pub cache_control: Option<Value>,
}

/// `POST /v1/messages`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = AnthropicMessagesRequest)]
pub struct MessagesRequest {
    /// Most tokens to generate.
    pub max_tokens: u32,
    #[serde(default)]
    /// Answer as server-sent events.
    pub stream: bool,
    /// Texts that end the answer.
    pub stop_sequences: Option<Vec<String>>,
    /// `user_id` is written to the request log (`user=`).
    pub metadata: Option<Metadata>,
    /// `auto` or `standard_only`: there is one tier here, so both are served.
    pub service_tier: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k sampling.
    pub top_k: Option<i32>,
    #[serde(flatten)]
    /// The conversation and its tools.
    pub conversation: Conversation,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}

/// `metadata`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The caller's end user.
    pub user_id: Option<String>,
}

/// `POST /v1/messages/count_tokens`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = AnthropicCountTokensRequest)]
pub struct CountRequest {
    #[serde(flatten)]
    /// The conversation and its tools.
    pub conversation: Conversation,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}
