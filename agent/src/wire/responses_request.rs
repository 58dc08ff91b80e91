//! OpenAI's Responses request (`POST /v1/responses`). Its `input` items and tools stay JSON:
//! `serve` reads them item by item, refusing unknown keys by their path.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::request_fields::Rest;

/// `text`: the output format (`verbosity` is refused: nothing here adjusts it).
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// The output format.
    pub format: Option<TextFormat>,
}

/// `text.format`: the Responses API writes the schema beside the type, not under it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TextFormat {
    /// Free text.
    Text {},
    /// Any JSON object.
    JsonObject {},
    /// JSON that follows `schema`.
    JsonSchema {
        /// The schema's name.
        name: String,
        #[schema(value_type = Object)]
        /// The JSON schema.
        schema: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        /// What the schema is for.
        description: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        /// OpenAI's strict mode (both values are served: output always follows the schema).
        strict: Option<bool>,
    },
}

/// `POST /v1/responses`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[schema(as = OpenAiResponsesRequest)]
pub struct ResponsesRequest {
    /// The model or preset; the server's model when absent.
    pub model: Option<String>,
    /// A string (one user message) or a list of input items.
    #[schema(value_type = Object)]
    pub input: Value,
    /// A system message in front of the input.
    pub instructions: Option<String>,
    /// Function tools (`{"type": "function", "name", "description", "parameters", "strict"}`).
    #[schema(value_type = Vec<Object>)]
    pub tools: Option<Vec<Value>>,
    #[schema(value_type = Object)]
    /// `none`, `auto`, `required` or `{"type": "function", "name": ...}`.
    pub tool_choice: Option<Value>,
    /// Several calls in one answer (default true).
    pub parallel_tool_calls: Option<bool>,
    /// Most tokens to generate.
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    #[serde(default)]
    /// Answer as Responses events.
    pub stream: bool,
    /// Output format.
    pub text: Option<TextConfig>,
    /// Only `false`: nothing is stored.
    pub store: Option<bool>,
    /// Echoed in the response.
    #[schema(value_type = Object)]
    pub metadata: Option<Map<String, Value>>,
    /// Written to the request log (`user=`).
    pub user: Option<String>,
    /// OpenAI's successor of `user`: written to the request log the same way.
    pub safety_identifier: Option<String>,
    /// Only `disabled`: a prompt over the context is a 400, never cut.
    pub truncation: Option<String>,
    #[serde(flatten)]
    #[serde(skip_serializing)]
    #[schema(ignore)]
    /// Any other field: refused by name when read.
    pub _rest: Rest,
}
