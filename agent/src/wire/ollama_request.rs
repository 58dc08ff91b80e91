//! Ollama's requests: generate and chat (with `options`, `format`, tools and the calls in an
//! assistant message), embed, embeddings and show.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::openai_request::{OneOrMany, SamplerFields, ToolDef};
use super::request_fields::{OptionsRest, Rest};

/// Ollama's `options`. `num_ctx` may only ask for at most the slot's context (the context is
/// fixed at load; a larger one cannot be granted per request).
#[serde_with::skip_serializing_none]
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaOptions)]
pub struct Options {
    /// The context asked for: at most the server's context per request.
    pub num_ctx: Option<u32>,
    /// Most tokens to generate; -1 or -2: until the context is full.
    pub num_predict: Option<i64>,
    #[serde(flatten)]
    /// The sampler settings shared with OpenAI's requests.
    pub sampler: SamplerFields,
    /// Ollama's other options (`mirostat`, `num_gpu`, ...) are refused by name.
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    pub _rest: OptionsRest,
}

fn default_true() -> bool {
    true
}

/// `POST /api/generate`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaGenerateRequest)]
pub struct GenerateRequest {
    /// The model or preset; the server's model when absent.
    pub model: Option<String>,
    #[serde(default)]
    /// The prompt.
    pub prompt: String,
    /// A system prompt.
    pub system: Option<String>,
    /// `true`: the prompt goes to the model as is (it always does here without a system
    /// prompt, so `raw` with `system` is refused).
    pub raw: Option<bool>,
    #[serde(flatten)]
    /// What chat shares.
    pub common: Common,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}

/// What `generate` and `chat` share.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct Common {
    /// NDJSON lines as tokens come (the default), else one answer.
    #[serde(default = "default_true")]
    pub stream: bool,
    /// Sampling options.
    #[serde(default)]
    pub options: Options,
    /// `"json"` or a JSON schema: constrained decoding.
    #[schema(value_type = Object)]
    pub format: Option<Value>,
    /// Accepted: one pod serves one model and keeps it loaded, so there is nothing to unload.
    #[schema(value_type = Object)]
    pub keep_alive: Option<Value>,
    /// Thinking: these models do not reason, so only `false` is served.
    #[schema(value_type = Object)]
    pub think: Option<Value>,
    /// Each generated token's log probability (`logprobs` on every piece).
    pub logprobs: Option<bool>,
    /// Alternatives per token (0 to 20), with `logprobs: true` only.
    pub top_logprobs: Option<u32>,
}

/// One turn of a chat.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaMessage)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    #[serde(default)]
    /// Its text.
    pub content: String,
    /// Assistant messages: the calls it made.
    pub tool_calls: Option<Vec<OllamaCall>>,
    /// Tool messages: the tool whose result this is.
    pub tool_name: Option<String>,
}

/// `POST /api/chat`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaChatRequest)]
pub struct ChatRequest {
    /// The model or preset; the server's model when absent.
    pub model: Option<String>,
    #[serde(default)]
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Functions the model may call (it decides, as `tool_choice: auto` on OpenAI).
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    #[serde(flatten)]
    /// What generate shares.
    pub common: Common,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}

/// A call in an Ollama assistant message (`arguments` is an object).
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OllamaCall {
    /// The function called.
    pub function: OllamaFunctionCall,
}

/// The function an Ollama call names.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OllamaMessageFunctionCall)]
pub struct OllamaFunctionCall {
    /// The function.
    pub name: String,
    #[schema(value_type = Object)]
    /// Its arguments (an object).
    pub arguments: Value,
    /// The call's position in its message (newer Ollama versions send it).
    pub index: Option<u32>,
}

/// `POST /api/embed`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaEmbedRequest)]
pub struct EmbedRequest {
    /// The model; the server's model when absent.
    pub model: Option<String>,
    /// One text or several.
    pub input: OneOrMany,
    /// Accepted: one pod serves one model and keeps it loaded.
    #[schema(value_type = Object)]
    pub keep_alive: Option<Value>,
}

/// `POST /api/embeddings` (the older single-prompt form).
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaEmbeddingsRequest)]
pub struct EmbeddingsRequest {
    /// The model; the server's model when absent.
    pub model: Option<String>,
    /// The text.
    pub prompt: String,
}

/// `POST /api/show`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OllamaShowRequest)]
pub struct ShowRequest {
    /// The model (`name` is its older spelling).
    pub model: Option<String>,
    /// The model, Ollama's older field.
    pub name: Option<String>,
    /// Accepted: the answer always carries every detail.
    pub verbose: Option<bool>,
}
