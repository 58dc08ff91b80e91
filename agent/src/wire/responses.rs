//! The Responses API's answers: a `response` object whose `output` holds a `message` item
//! (`output_text` parts) and `function_call` items, and the events of its stream, each with a
//! `sequence_number`, as the official client accumulates them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `object` of a response.
pub const RESPONSE: &str = "response";

/// `POST /v1/responses` without `stream`, and the response inside the stream's
/// `response.created`, `response.in_progress` and final events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesResponse)]
pub struct Response {
    /// `resp_…`, also the request id in the server's log.
    #[serde(default)]
    pub id: String,
    /// `response`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: u64,
    /// `in_progress`, `completed` or `incomplete`.
    #[serde(default)]
    pub status: String,
    /// Always null here: a failure is an error answer (or a stream's `error` event).
    #[serde(default)]
    pub error: Option<Value>,
    /// The message and the function calls, in the order generated.
    #[serde(default)]
    pub output: Vec<OutputItem>,
    /// Why the response is `incomplete`.
    #[serde(default)]
    pub incomplete_details: Option<IncompleteDetails>,
    /// Token counts, once generation ended.
    #[serde(default)]
    pub usage: Option<Usage>,
    // The request's settings as they were applied, echoed as OpenAI's server does.
    /// The model or preset that answered.
    #[serde(default)]
    pub model: String,
    /// The request's `instructions` (its system message).
    #[serde(default)]
    pub instructions: Option<String>,
    /// The function tools in effect: the request's, else its preset's.
    #[serde(default)]
    pub tools: Vec<Value>,
    /// `auto`, `none`, `required` or the named function.
    #[serde(default)]
    pub tool_choice: Value,
    /// Whether the model may call several tools in one turn.
    #[serde(default)]
    pub parallel_tool_calls: bool,
    /// Sampling temperature applied.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling applied.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// The request's limit on generated tokens.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    /// The output format: `{"format": {"type": "text"}}` or a JSON schema.
    #[serde(default)]
    pub text: TextSettings,
    /// The request's metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Always false: responses are not stored (the API is stateless here).
    #[serde(default)]
    pub store: bool,
    /// Always `disabled`: a prompt longer than the context is refused, not truncated.
    #[serde(default)]
    pub truncation: String,
}

/// The output format a response was generated in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesTextSettings)]
pub struct TextSettings {
    /// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", …}`.
    #[serde(default)]
    pub format: Value,
}

impl Response {
    /// The text of the output's messages.
    pub fn output_text(&self) -> String {
        self.output
            .iter()
            .filter_map(|item| match item {
                OutputItem::Message { content, .. } => Some(content),
                _ => None,
            })
            .flatten()
            .filter_map(OutputContent::text)
            .collect()
    }
}

/// One item of a response's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = ResponsesOutputItem)]
pub enum OutputItem {
    /// The assistant's text.
    Message {
        /// `msg_…`.
        #[serde(default)]
        id: String,
        /// `in_progress`, `completed` or `incomplete`.
        #[serde(default)]
        status: String,
        /// `assistant`.
        #[serde(default)]
        role: String,
        /// Its text parts (none while it is being added).
        #[serde(default)]
        content: Vec<OutputContent>,
    },
    /// A call of one of the request's tools.
    FunctionCall {
        /// `fc_…`, the item's id.
        #[serde(default)]
        id: String,
        /// `call_…`, quoted by the `function_call_output` that answers it.
        #[serde(default)]
        call_id: String,
        /// The function's name.
        #[serde(default)]
        name: String,
        /// The arguments, a JSON object as text (empty while the item is being added).
        #[serde(default)]
        arguments: String,
        /// `in_progress` or `completed`.
        #[serde(default)]
        status: String,
    },
    /// An item of a kind this reader does not know (written by other servers).
    #[serde(other)]
    #[default]
    Other,
}

/// One part of a message item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[schema(as = ResponsesOutputContent)]
pub enum OutputContent {
    /// Generated text.
    OutputText {
        /// The text.
        #[serde(default)]
        text: String,
        /// Always empty here (no citations).
        #[serde(default)]
        annotations: Vec<Value>,
    },
    /// A part of a kind this reader does not know (written by other servers).
    #[serde(other)]
    #[default]
    Other,
}

impl OutputContent {
    /// Generated text, without annotations.
    pub fn output_text(text: impl Into<String>) -> Self {
        OutputContent::OutputText {
            text: text.into(),
            annotations: Vec::new(),
        }
    }

    /// The text of a text part.
    pub fn text(&self) -> Option<&str> {
        match self {
            OutputContent::OutputText { text, .. } => Some(text),
            OutputContent::Other => None,
        }
    }
}

/// Why a response is incomplete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesIncompleteDetails)]
pub struct IncompleteDetails {
    /// `max_output_tokens`.
    #[serde(default)]
    pub reason: String,
}

/// Token counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesUsage)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// The cached share of the prompt.
    #[serde(default)]
    pub input_tokens_details: InputTokensDetails,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Reasoning among them (none: the models served here do not reason apart).
    #[serde(default)]
    pub output_tokens_details: OutputTokensDetails,
    /// Input and output added up.
    #[serde(default)]
    pub total_tokens: u64,
}

/// The cached share of a prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesInputTokensDetails)]
pub struct InputTokensDetails {
    /// Prompt tokens whose KV cache was reused rather than computed.
    #[serde(default)]
    pub cached_tokens: u64,
}

/// The reasoning share of the output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesOutputTokensDetails)]
pub struct OutputTokensDetails {
    /// Reasoning tokens.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// One event of a streamed response; its SSE event name is its `type` ([`Event::name`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = ResponsesStreamEvent)]
pub struct StreamEvent {
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// The event's place in the stream, from 0.
    #[serde(default)]
    pub sequence_number: u64,
}

/// What a stream event says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
#[schema(as = ResponsesEvent)]
pub enum Event {
    /// The response exists, with no output yet.
    #[serde(rename = "response.created")]
    Created {
        /// The response.
        #[serde(default)]
        response: Response,
    },
    /// Generation started.
    #[serde(rename = "response.in_progress")]
    InProgress {
        /// The response.
        #[serde(default)]
        response: Response,
    },
    /// An output item opens.
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The item, without content or arguments yet.
        #[serde(default)]
        item: OutputItem,
    },
    /// A part of the message opens.
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        /// The message item's id.
        #[serde(default)]
        item_id: String,
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The part's place in the item's `content`.
        #[serde(default)]
        content_index: usize,
        /// The part, without text yet.
        #[serde(default)]
        part: OutputContent,
    },
    /// More text.
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        /// The message item's id.
        #[serde(default)]
        item_id: String,
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The part's place in the item's `content`.
        #[serde(default)]
        content_index: usize,
        /// The text.
        #[serde(default)]
        delta: String,
        /// Always empty here.
        #[serde(default)]
        logprobs: Vec<Value>,
    },
    /// The text is complete.
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        /// The message item's id.
        #[serde(default)]
        item_id: String,
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The part's place in the item's `content`.
        #[serde(default)]
        content_index: usize,
        /// The whole text.
        #[serde(default)]
        text: String,
        /// Always empty here.
        #[serde(default)]
        logprobs: Vec<Value>,
    },
    /// A part of the message is complete.
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        /// The message item's id.
        #[serde(default)]
        item_id: String,
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The part's place in the item's `content`.
        #[serde(default)]
        content_index: usize,
        /// The whole part.
        #[serde(default)]
        part: OutputContent,
    },
    /// An output item is complete.
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The whole item.
        #[serde(default)]
        item: OutputItem,
    },
    /// More of a function call's arguments.
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        /// The call item's id.
        #[serde(default)]
        item_id: String,
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// A piece of the arguments' JSON text.
        #[serde(default)]
        delta: String,
    },
    /// A function call's arguments are complete.
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        /// The call item's id.
        #[serde(default)]
        item_id: String,
        /// The item's place in `output`.
        #[serde(default)]
        output_index: usize,
        /// The function's name.
        #[serde(default)]
        name: String,
        /// The whole arguments' JSON text.
        #[serde(default)]
        arguments: String,
    },
    /// The last event of a complete response.
    #[serde(rename = "response.completed")]
    Completed {
        /// The whole response, with usage.
        #[serde(default)]
        response: Response,
    },
    /// The last event of a response cut short (`max_output_tokens`).
    #[serde(rename = "response.incomplete")]
    Incomplete {
        /// The response so far, with usage.
        #[serde(default)]
        response: Response,
    },
    /// The last event of a response that failed (written by other servers).
    #[serde(rename = "response.failed")]
    Failed {
        /// The response, with its error.
        #[serde(default)]
        response: Response,
    },
    /// The stream failed; nothing follows.
    #[serde(rename = "error")]
    Error {
        /// A machine-readable kind.
        #[serde(default)]
        code: Option<Value>,
        /// For people.
        #[serde(default)]
        message: String,
        /// The request field at fault, if one is.
        #[serde(default)]
        param: Option<String>,
    },
    /// An event of a kind this reader does not know (written by other servers).
    #[serde(other)]
    #[default]
    Unknown,
}

impl Event {
    /// The SSE `event:` name: the `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Created { .. } => "response.created",
            Event::InProgress { .. } => "response.in_progress",
            Event::OutputItemAdded { .. } => "response.output_item.added",
            Event::ContentPartAdded { .. } => "response.content_part.added",
            Event::OutputTextDelta { .. } => "response.output_text.delta",
            Event::OutputTextDone { .. } => "response.output_text.done",
            Event::ContentPartDone { .. } => "response.content_part.done",
            Event::OutputItemDone { .. } => "response.output_item.done",
            Event::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Event::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            Event::Completed { .. } => "response.completed",
            Event::Incomplete { .. } => "response.incomplete",
            Event::Failed { .. } => "response.failed",
            Event::Error { .. } => "error",
            Event::Unknown => "unknown",
        }
    }
}
