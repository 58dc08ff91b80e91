//! Presets and access control of an `LlmDeployment`.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A system prompt and sampling parameters under a name clients can ask for as a model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.tools) || self.tools.all(a, self.tools.exists_one(b, b.name == a.name))").message(crate::rules::MSG_TOOL_NAMES_UNIQUE).field_path(".tools"),
    validation = kube::core::Rule::new("!has(self.toolChoice) || has(self.tools)").message(crate::rules::MSG_TOOL_SETTINGS_NEED_TOOLS).field_path(".toolChoice"),
    validation = kube::core::Rule::new("!has(self.parallelToolCalls) || has(self.tools)").message(crate::rules::MSG_TOOL_SETTINGS_NEED_TOOLS).field_path(".parallelToolCalls")
)]
pub struct Preset {
    /// Model name clients use for this preset (for example `support-bot`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$")
    )]
    pub name: String,
    /// System prompt put before the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub system: Option<String>,
    /// Sampling defaults; a request's own parameters win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<SamplingParameters>,
    /// Function tools offered to the model on the chat routes (OpenAI chat and responses,
    /// Anthropic messages, Ollama chat) when a request brings none of its own; a request's
    /// `tools` replace them, and its `tool_choice` may pick among them. The completion
    /// routes refuse a preset with tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = crate::rules::PRESET_TOOLS_MAX))]
    pub tools: Vec<PresetTool>,
    /// Whether the model must call one of `tools` (see the type's description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<PresetToolChoice>,
    /// Whether an answer may hold several calls (default true). Ollama clients cannot say
    /// so themselves; a request's own `parallel_tool_calls` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
}

/// A function the model may call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetTool {
    /// Function name the model writes in its call.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-zA-Z0-9_-]+$"))]
    pub name: String,
    /// What the function does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub description: Option<String>,
    /// JSON schema of the arguments (an object; absent: no arguments). Calls are generated
    /// under a grammar, so every keyword must be one the grammar enforces: the operator
    /// refuses others in the status (condition and Event) naming the keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub parameters: Option<serde_json::Value>,
}

/// A JSON object of any shape, kept as written by the API server.
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Whether a preset's answers must call a tool: `auto` (the default) lets the model decide,
/// `required` makes every answer call one of the preset's tools. A request's own
/// `tool_choice` wins.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresetToolChoice {
    /// The model decides.
    Auto,
    /// Every answer calls one of the tools.
    Required,
}

/// Sampling parameters of a preset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SamplingParameters {
    /// Randomness, 0 (greedy) to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,
    /// Sample among this many most likely tokens; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub top_k: Option<u32>,
    /// Penalty for repeating recent tokens; 1 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 5.0))]
    pub repeat_penalty: Option<f64>,
    /// Most tokens generated for one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_tokens: Option<u32>,
    /// Strings that end generation when produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(min = 1, max = 256)))]
    pub stop: Vec<String>,
}

/// Who may call the deployment and how much.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.tiers) || self.tiers.all(a, self.tiers.exists_one(b, b.name == a.name))").message(crate::rules::MSG_TIER_NAMES_UNIQUE).field_path(".tiers")
)]
pub struct AccessSpec {
    /// Name of a Secret in the same namespace whose entries map a client name to
    /// `<tier>:<api key>`. Without it the API is open. Keys are read by the router from the
    /// mounted Secret and never copied elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub api_keys_secret: Option<String>,
    /// Rate-limit tiers. Without any, the defaults apply: free 10, premium 100 and
    /// enterprise 1000 requests per hour. Budgets are per deployment; the operator divides
    /// them between router replicas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tiers: Vec<Tier>,
    /// Size and time limits on each request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RequestLimits>,
    /// Browser origins allowed by CORS; none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 253)))]
    pub cors_origins: Vec<String>,
    /// Request header whose value keeps a client without an API key on one variant while
    /// weights split traffic (for example `x-session-id`); with a key, the key decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9][-A-Za-z0-9_]*$")
    )]
    pub sticky_header: Option<String>,
}

/// A rate-limit tier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    /// Tier name, as used in the API-key Secret.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Requests allowed per hour per key.
    #[schemars(range(min = 1, max = 10_000_000))]
    pub requests_per_hour: u32,
    /// Prompt plus generated tokens allowed per hour per key; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000_000_000_i64))]
    pub tokens_per_hour: Option<i64>,
}

/// Limits on each request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestLimits {
    /// Largest request body in bytes (larger → 413).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 67_108_864))]
    pub max_body_bytes: Option<i64>,
    /// Longest prompt in tokens once templated (longer → 400). Enforced by every serving
    /// agent, whatever the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_prompt_tokens: Option<u32>,
    /// Most tokens one request may generate (asking for more → 400); also caps the default
    /// when a request names none. Enforced by every serving agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_tokens: Option<u32>,
    /// Longest a request may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub request_timeout_seconds: Option<u32>,
}
