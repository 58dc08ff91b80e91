//! Anthropic Messages' answers: a whole `message` with text and `tool_use` blocks, the events of
//! its stream (`message_start`, `content_block_start`/`_delta`/`_stop` per block,
//! `message_delta` with the stop reason and usage, `message_stop`), and errors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `type` of a whole message.
pub const MESSAGE: &str = "message";

/// `POST /v1/messages` without `stream`, and the message a stream's `message_start` opens
/// (no content yet, `stop_reason` null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AnthropicResponseMessage)]
pub struct Message {
    /// `msg_…`, also the request id in the server's log.
    #[serde(default)]
    pub id: String,
    /// `message`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// The model or preset that answered.
    #[serde(default)]
    pub model: String,
    /// Text and tool calls, in the order generated.
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    /// `end_turn`, `stop_sequence`, `max_tokens` or `tool_use`; null while streaming.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that ended the message, when one did.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
}

/// One block of a message's content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = AnthropicContentBlock)]
pub enum ContentBlock {
    /// Generated text.
    Text {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// A call of one of the request's tools.
    ToolUse {
        /// `toolu_…`, quoted by the `tool_result` that answers it.
        #[serde(default)]
        id: String,
        /// The tool's name.
        #[serde(default)]
        name: String,
        /// The arguments, a JSON object (empty in a stream's `content_block_start`: the
        /// deltas carry it).
        #[serde(default)]
        input: Value,
    },
    /// A block of a kind this reader does not know (written by other servers).
    #[serde(other)]
    #[default]
    Other,
}

impl ContentBlock {
    /// The text of a text block.
    pub fn text(&self) -> Option<&str> {
        match self {
            ContentBlock::Text { text } => Some(text),
            _ => None,
        }
    }
}

/// Token counts. Anthropic counts prompt tokens read from the cache apart from `input_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AnthropicUsage)]
pub struct Usage {
    /// Prompt tokens computed for this request.
    #[serde(default)]
    pub input_tokens: u64,
    /// Prompt tokens whose KV cache was reused (absent in `message_start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
}

impl Usage {
    /// The whole prompt: computed and read from the cache.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens.unwrap_or(0)
    }
}

/// One event of a streamed message; its SSE event name is its `type` ([`StreamEvent::name`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = AnthropicStreamEvent)]
pub enum StreamEvent {
    /// The message, without content.
    MessageStart {
        /// Its id, model and the prompt's tokens.
        #[serde(default)]
        message: Message,
    },
    /// A block opens.
    ContentBlockStart {
        /// The block's place in `content`.
        #[serde(default)]
        index: usize,
        /// The block, empty.
        #[serde(default)]
        content_block: ContentBlock,
    },
    /// A piece of a block.
    ContentBlockDelta {
        /// The block's place in `content`.
        #[serde(default)]
        index: usize,
        /// Text, or a piece of a tool call's JSON input.
        #[serde(default)]
        delta: BlockDelta,
    },
    /// A block is complete.
    ContentBlockStop {
        /// The block's place in `content`.
        #[serde(default)]
        index: usize,
    },
    /// Why the message ended, and its token counts.
    MessageDelta {
        /// The stop reason.
        #[serde(default)]
        delta: MessageDelta,
        /// Token counts of the whole message.
        #[serde(default)]
        usage: Usage,
    },
    /// The last event of a complete message.
    MessageStop,
    /// Keeps a quiet connection open.
    Ping,
    /// The stream failed; nothing follows.
    Error {
        /// What failed.
        #[serde(default)]
        error: ErrorDetail,
    },
    /// An event of a kind this reader does not know (written by other servers).
    #[serde(other)]
    #[default]
    Unknown,
}

impl StreamEvent {
    /// The SSE `event:` name, which Anthropic's clients dispatch on.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Unknown => "unknown",
        }
    }
}

/// A piece of a content block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = AnthropicBlockDelta)]
pub enum BlockDelta {
    /// More text.
    TextDelta {
        /// The text.
        #[serde(default)]
        text: String,
    },
    /// More of a tool call's input: clients concatenate the pieces and parse at the block's end.
    InputJsonDelta {
        /// A piece of JSON.
        #[serde(default)]
        partial_json: String,
    },
    /// A delta of a kind this reader does not know (written by other servers).
    #[serde(other)]
    #[default]
    Other,
}

/// `message_delta`'s delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AnthropicMessageDelta)]
pub struct MessageDelta {
    /// As [`Message::stop_reason`].
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// As [`Message::stop_sequence`].
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// An error answer (and a stream's `error` event without its SSE framing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AnthropicError)]
pub struct ErrorBody {
    /// `error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// What failed.
    #[serde(default)]
    pub error: ErrorDetail,
}

/// What failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AnthropicErrorDetail)]
pub struct ErrorDetail {
    /// `invalid_request_error`, `not_found_error`, `overloaded_error`, `api_error`, ….
    #[serde(rename = "type", default)]
    pub kind: String,
    /// For people.
    #[serde(default)]
    pub message: String,
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens after templating.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = AnthropicTokenCount)]
pub struct TokenCount {
    /// Tokens, tools and system prompt included.
    #[serde(default)]
    pub input_tokens: u64,
}
