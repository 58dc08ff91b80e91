//! OpenAI's requests: chat and text completions, the sampler settings they share with Ollama's
//! `options`, structured output (`response_format`), tools and the calls in an assistant
//! message, embeddings; and llama-server's `/tokenize` and `/detokenize`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::request_fields::Rest;

/// A string or a list of strings (`stop`, `prompt`, `input`).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, one or many.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Flattened into a request (OpenAI) or into Ollama's `options`; each field overrides the
/// preset's value when present.
#[serde_with::skip_serializing_none]
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct SamplerFields {
    /// Sampling temperature (0: greedy).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Top-k sampling.
    pub top_k: Option<i32>,
    /// Minimum probability relative to the most likely token.
    pub min_p: Option<f32>,
    /// Penalty for repeated tokens.
    pub repeat_penalty: Option<f32>,
    /// Penalty for tokens already present.
    pub presence_penalty: Option<f32>,
    /// Penalty by how often a token occurred.
    pub frequency_penalty: Option<f32>,
    /// The same seed and request give the same answer; llama.cpp's sampler takes 32 bits.
    pub seed: Option<i64>,
    /// Texts that end the answer.
    pub stop: Option<OneOrMany>,
}

/// What both completion requests add to the sampler settings ([`SamplerFields`]).
#[serde_with::skip_serializing_none]
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct Sampling {
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// The newer name of `max_tokens` (wins over it).
    pub max_completion_tokens: Option<u32>,
    /// Choices per prompt.
    pub n: Option<u32>,
    /// The caller's end user, for abuse tracing: written to the request log.
    pub user: Option<String>,
    /// llama-server's extension: generate `max_tokens` whatever the model says (benchmarks).
    pub ignore_eos: Option<bool>,
}

/// `stream_options`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    #[serde(default)]
    /// A last chunk with the usage.
    pub include_usage: bool,
}

/// A message's text, or its parts (see [`super::request_fields::text_or_list`]).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = OpenAiContent)]
pub enum Content {
    /// A string.
    Text(String),
    /// Content parts: only `text` parts are served (any other type is refused by name).
    Parts(Vec<Part>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let content = super::request_fields::text_or_list(deserializer, "parts")?;
        Ok(content.map_or_else(Content::Parts, Content::Text))
    }
}

/// One content part.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Part {
    #[serde(rename = "type")]
    /// Only `text`.
    pub kind: String,
    #[serde(default)]
    /// The text.
    pub text: String,
}

/// One chat message.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[schema(as = OpenAiMessage)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text or parts (absent for an assistant message that only calls tools).
    pub content: Option<Content>,
    /// Assistant messages: the calls it made.
    pub tool_calls: Option<Vec<OpenAiCall>>,
    /// Tool messages: the call this result answers.
    pub tool_call_id: Option<String>,
}

/// `POST /v1/chat/completions`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = OpenAiChatRequest)]
pub struct ChatRequest {
    /// The model or preset; the server's model when absent.
    pub model: Option<String>,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    #[serde(default)]
    /// Answer as server-sent events.
    pub stream: bool,
    /// With `stream: true` only.
    pub stream_options: Option<StreamOptions>,
    /// Free text, any JSON object, or JSON that follows a schema (constrained decoding).
    pub response_format: Option<ResponseFormat>,
    /// Each generated token's log probability (`choices[].logprobs.content`).
    pub logprobs: Option<bool>,
    /// Alternatives per token (0 to 20), with `logprobs: true` only.
    pub top_logprobs: Option<u32>,
    /// Only `false`: completions are not stored.
    pub store: Option<bool>,
    /// Only `["text"]`: the server answers in text.
    pub modalities: Option<Vec<String>>,
    /// OpenAI's successor of `user`: written to the request log the same way.
    pub safety_identifier: Option<String>,
    /// Functions the model may call.
    pub tools: Option<Vec<ToolDef>>,
    /// `none`, `auto` (the default with tools), `required`, or `{"type": "function",
    /// "function": {"name": ...}}`.
    #[schema(value_type = Object)]
    pub tool_choice: Option<Value>,
    /// Several calls in one answer (default true).
    pub parallel_tool_calls: Option<bool>,
    // Two flattened structs side by side, not one inside the other: serde reads a struct
    // that flattens another as a map and leaves its keys to the `Rest` after it.
    #[serde(flatten)]
    /// Sampler settings.
    pub sampler: SamplerFields,
    #[serde(flatten)]
    /// Lengths, `n` and the caller.
    pub sampling: Sampling,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}

/// `POST /v1/completions`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OpenAiCompletionRequest)]
pub struct CompletionRequest {
    /// The model or preset; the server's model when absent.
    pub model: Option<String>,
    /// One prompt or several.
    pub prompt: OneOrMany,
    #[serde(default)]
    /// Answer as server-sent events.
    pub stream: bool,
    /// With `stream: true` only.
    pub stream_options: Option<StreamOptions>,
    /// Log probabilities with this many alternatives per token (0 to 20).
    pub logprobs: Option<u32>,
    // Two flattened structs side by side, not one inside the other: serde reads a struct
    // that flattens another as a map and leaves its keys to the `Rest` after it.
    #[serde(flatten)]
    /// Sampler settings.
    pub sampler: SamplerFields,
    #[serde(flatten)]
    /// Lengths, `n` and the caller.
    pub sampling: Sampling,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}

/// OpenAI `response_format`. The variants without fields are written `{}` because serde
/// skips unknown keys beside the tag of a unit variant: `{"type": "json_object", "schema":
/// ...}` (llama-server's extension) must be refused, not answered with any object.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ResponseFormat {
    /// Free text (the default).
    Text {},
    /// Any JSON object.
    JsonObject {},
    /// JSON that validates against `json_schema.schema`.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// OpenAI `response_format.json_schema`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    /// The schema's name (OpenAI requires it; it does not change the output).
    pub name: String,
    /// What the schema is for (documentation only, as on OpenAI).
    pub description: Option<String>,
    /// The JSON schema; absent means any JSON object.
    #[schema(value_type = Object)]
    pub schema: Option<Value>,
    /// OpenAI's strict mode. Output here always follows the schema, so both values are
    /// honoured: `false` only allows what `true` guarantees.
    pub strict: Option<bool>,
}

/// One entry of `tools`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OpenAiToolDef)]
pub struct ToolDef {
    /// Only `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function.
    pub function: FunctionDef,
}

/// A function tool.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    /// The name the model calls it by.
    pub name: String,
    /// What it does (shown to the model).
    pub description: Option<String>,
    /// JSON schema of the arguments (absent: no arguments).
    #[schema(value_type = Object)]
    pub parameters: Option<Value>,
    /// OpenAI's strict mode: calls here always follow the schema, so both values are served.
    pub strict: Option<bool>,
}

/// A call in an OpenAI assistant message (`arguments` is JSON text).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiCall {
    /// The call's id, which the tool message names.
    pub id: String,
    /// Only `"function"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function called.
    pub function: OpenAiFunctionCall,
}

/// The function an OpenAI call names.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiFunctionCall {
    /// The function.
    pub name: String,
    /// Its arguments as JSON text.
    pub arguments: String,
}

/// `POST /v1/embeddings`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OpenAiEmbeddingRequest)]
pub struct EmbeddingRequest {
    /// The model; the server's model when absent.
    pub model: Option<String>,
    /// One text or several.
    pub input: OneOrMany,
    /// `float` (the default) or `base64`.
    pub encoding_format: Option<String>,
    /// The caller's end user: written to the request log.
    pub user: Option<String>,
}

/// `POST /tokenize`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct TokenizeRequest {
    /// The text.
    pub content: String,
    /// Add the model's BOS as generation does (default false, as llama-server).
    #[serde(default)]
    pub add_special: bool,
    /// Each token with its text instead of bare ids.
    #[serde(default)]
    pub with_pieces: bool,
}

/// `POST /detokenize`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct DetokenizeRequest {
    /// Token ids.
    pub tokens: Vec<i32>,
}
