//! OpenAI's answers: chat completions and their stream chunks, text completions (whole and
//! streamed, the same shape), log probabilities, usage, models and errors.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `object` of a whole chat completion.
pub const CHAT_COMPLETION: &str = "chat.completion";
/// `object` of a chat completion's stream chunk.
pub const CHAT_COMPLETION_CHUNK: &str = "chat.completion.chunk";
/// `object` of a text completion, whole or streamed.
pub const TEXT_COMPLETION: &str = "text_completion";

/// Token counts of an answer (all of its choices).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Prompt tokens, each prompt counted once however many choices it has.
    pub prompt_tokens: u64,
    /// Generated tokens of all choices.
    pub completion_tokens: u64,
    /// The two added up.
    pub total_tokens: u64,
    /// How much of the prompt came from the KV cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// The cached share of a prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV cache was reused rather than computed.
    pub cached_tokens: u64,
}

/// `POST /v1/chat/completions` without `stream`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletion {
    /// `chatcmpl-…`, also the request id in the server's log.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model or preset that answered.
    #[serde(default)]
    pub model: String,
    /// One per generation (`n` per prompt).
    #[serde(default)]
    pub choices: Vec<ChatChoice>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One generation of a chat completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    /// Position among the answer's choices.
    #[serde(default)]
    pub index: u32,
    /// `stop`, `length` or `tool_calls`.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Per token, when the request asked for `logprobs`.
    #[serde(default)]
    pub logprobs: Option<ChatLogprobs>,
    /// What the model said.
    #[serde(default)]
    pub message: AssistantMessage,
}

/// The assistant's message: text, or calls of the request's tools (then `content` is null).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// The text; null when the answer is only tool calls.
    #[serde(default)]
    pub content: Option<String>,
    /// The calls, when the model called tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// A call of one of the request's functions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolCall {
    /// Position among the message's calls (stream deltas only: the client joins deltas with
    /// the same index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The id a tool result refers to.
    #[serde(default)]
    pub id: String,
    /// `function`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The function and its arguments.
    #[serde(default)]
    pub function: FunctionCall,
}

/// The function called.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionCall {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// Its arguments: JSON text of an object.
    #[serde(default)]
    pub arguments: String,
}

/// Chat log probabilities: one entry per generated token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatLogprobs {
    /// The tokens of the text, in order.
    #[serde(default)]
    pub content: Vec<TokenLogprob>,
    /// Always null: the server never refuses.
    #[serde(default)]
    pub refusal: Option<String>,
}

/// A generated token and the likeliest tokens at its position (also Ollama's `logprobs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenLogprob {
    /// The token's text (lossy where it splits a character).
    pub token: String,
    /// Natural log of its probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// The likeliest tokens, most likely first (`top_logprobs` of them).
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One of the likeliest tokens at a position.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Natural log of its probability.
    pub logprob: f32,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A chunk of a streamed chat completion (`data:` of one server-sent event).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    /// The same for every chunk of an answer.
    #[serde(default)]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model or preset that answers.
    #[serde(default)]
    pub model: String,
    /// The choices this chunk advances (empty in the usage chunk).
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// Token counts: in the last chunk (an extra, empty-choices chunk with
    /// `stream_options.include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// What one chunk adds to one choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    /// The choice advanced.
    #[serde(default)]
    pub index: u32,
    /// Set in the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// The delta's tokens, when the request asked for `logprobs`.
    #[serde(default)]
    pub logprobs: Option<ChatLogprobs>,
    /// The text or calls added.
    #[serde(default)]
    pub delta: Delta,
}

/// A piece of the assistant's message; the first names the role, the last is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delta {
    /// `assistant`, in a choice's first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Text added; written as null beside a first chunk's tool calls, absent in the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub content: Option<Option<String>>,
    /// The calls, whole (one delta per call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl Delta {
    /// The text this delta adds, if any.
    pub fn text(&self) -> Option<&str> {
        self.content.as_ref().and_then(Option::as_deref)
    }
}

/// `POST /v1/completions`, whole, or one chunk of it streamed (the same shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextCompletion {
    /// `cmpl-…`.
    #[serde(default)]
    pub id: String,
    /// `text_completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model or preset that answers.
    #[serde(default)]
    pub model: String,
    /// One per generation (prompt-major: every copy of the first prompt, then the next).
    #[serde(default)]
    pub choices: Vec<TextChoice>,
    /// Token counts (whole answer; the last chunk of a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One generation of a text completion (or a chunk of it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextChoice {
    /// Position among the answer's choices.
    #[serde(default)]
    pub index: u32,
    /// Set when the generation ended.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// When the request asked for `logprobs`.
    #[serde(default)]
    pub logprobs: Option<LegacyLogprobs>,
    /// Text generated (added, in a chunk).
    #[serde(default)]
    pub text: String,
}

/// Legacy completions' log probabilities: parallel arrays, one entry per token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegacyLogprobs {
    /// The tokens' texts.
    pub tokens: Vec<String>,
    /// Their log probabilities.
    pub token_logprobs: Vec<f32>,
    /// The likeliest tokens at each position, `{token: logprob}`, most likely first.
    #[schema(value_type = Vec<Object>)]
    pub top_logprobs: Vec<Map<String, Value>>,
    /// Where each token starts in the choice's whole text (bytes).
    pub text_offset: Vec<usize>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// The models.
    #[serde(default)]
    pub data: Vec<Model>,
}

/// A model (`GET /v1/models/{id}`, and an entry of the list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    /// The name requests use.
    pub id: String,
    /// `model`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// `llamafleet`.
    #[serde(default)]
    pub owned_by: String,
}

/// An error answer, or an error frame ending a stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// For people.
    #[serde(default)]
    pub message: String,
    /// The error's class, e.g. `invalid_request_error`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The request field at fault, when one is.
    #[serde(default)]
    pub param: Option<String>,
    /// A machine-readable code, when there is one (this server writes its `type` again;
    /// other servers may send a number, so it reads as any JSON value).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub code: Option<Value>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn deltas_are_written_as_the_official_client_joins_them() {
        let first_call = Delta {
            role: Some("assistant".into()),
            content: Some(None),
            tool_calls: Some(vec![ToolCall {
                index: Some(0),
                id: "call_1".into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: "f".into(),
                    arguments: "{}".into(),
                },
            }]),
        };
        assert_eq!(
            serde_json::to_value(&first_call).unwrap(),
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]})
        );
        assert_eq!(serde_json::to_value(Delta::default()).unwrap(), json!({}));
        let whole_call = ToolCall {
            index: None,
            ..first_call.tool_calls.unwrap()[0].clone()
        };
        assert!(
            serde_json::to_value(whole_call)
                .unwrap()
                .get("index")
                .is_none()
        );
    }

    #[test]
    fn other_servers_chunks_read_with_fields_missing_or_unknown() {
        // llama-server: timings and a fingerprint beside the chunk; vLLM: a usage-only chunk.
        let text = r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],
            "created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b1",
            "object":"chat.completion.chunk","timings":{"predicted_n":1}}"#;
        let chunk: ChatCompletionChunk = serde_json::from_str(text).unwrap();
        assert_eq!(chunk.choices[0].delta.text(), Some("Hi"));
        assert_eq!(chunk.usage, None);
        let usage = r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;
        let chunk: ChatCompletionChunk = serde_json::from_str(usage).unwrap();
        assert_eq!(chunk.usage.map(|u| u.completion_tokens), Some(2));
        let tool_only: ChatCompletionChunk =
            serde_json::from_str(r#"{"choices":[{"index":0,"delta":{"content":null}}]}"#).unwrap();
        assert_eq!(tool_only.choices[0].delta.text(), None);
    }
}
