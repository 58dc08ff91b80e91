//! Ollama's answers to `/api/chat` and `/api/generate`: one JSON object, or NDJSON lines of the
//! same shape, the last with `done: true` and the timings and counts ([`DoneStats`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::openai::TokenLogprob;

/// `POST /api/chat`: the whole answer, or one line of its stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaChatResponse)]
pub struct ChatResponse {
    /// The model or preset that answered.
    #[serde(default)]
    pub model: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
    /// The assistant's text (a piece of it in a stream) and calls.
    #[serde(default)]
    pub message: AssistantMessage,
    /// The last line (or the whole answer).
    #[serde(default)]
    pub done: bool,
    /// Timings and counts, on the last line.
    #[serde(flatten)]
    pub stats: DoneStats,
    /// Log probabilities of the tokens of this line, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// `POST /api/generate`: the whole answer, or one line of its stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaGenerateResponse)]
pub struct GenerateResponse {
    /// The model or preset that answered.
    #[serde(default)]
    pub model: String,
    /// RFC 3339.
    #[serde(default)]
    pub created_at: String,
    /// The generated text (a piece of it in a stream).
    #[serde(default)]
    pub response: String,
    /// The last line (or the whole answer).
    #[serde(default)]
    pub done: bool,
    /// Timings and counts, on the last line.
    #[serde(flatten)]
    pub stats: DoneStats,
    /// Log probabilities of the tokens of this line, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// A chat answer's message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaAssistantMessage)]
pub struct AssistantMessage {
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// Text.
    #[serde(default)]
    pub content: String,
    /// The tools the model called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One call of a tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaToolCall)]
pub struct ToolCall {
    /// The function called.
    pub function: FunctionCall,
}

/// The function of a tool call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaFunctionCall)]
pub struct FunctionCall {
    /// The call's place in its message.
    #[serde(default)]
    pub index: u32,
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The arguments, a JSON object (Ollama sends an object, not text).
    #[serde(default)]
    pub arguments: Value,
}

/// Timings (nanoseconds) and counts of a finished answer: on its last line, absent before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaDoneStats)]
pub struct DoneStats {
    /// `stop` or `length` (an answer with tool calls ends with `stop` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// From the request's arrival to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<u64>,
    /// Always 0: the model is loaded at startup, not per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<u64>,
    /// The whole prompt, cached part included (as Ollama counts it since 0.30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    /// The prompt's tokens whose KV cache was reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_cached_count: Option<u64>,
    /// Time to evaluate the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<u64>,
    /// Generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    /// Time to generate them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<u64>,
}

/// An error answer, and a stream's last line when it fails midway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = OllamaError)]
pub struct ErrorBody {
    /// For people.
    #[serde(default)]
    pub error: String,
}
