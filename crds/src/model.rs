//! `LlmModel`: where a GGUF file lives, what it should be, and how often to look for a newer one.
// Each `printcolumn(...)` repeats `type_ = "string"`; clippy reads the derive's nested
// lists as one attribute and calls that a duplicate.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A GGUF language model: its source, the integrity pin and the serving defaults that belong
/// to the file itself. Deployments refer to it by name.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "llamafleet.dev",
    version = "v1alpha1",
    kind = "LlmModel",
    namespaced,
    shortname = "llm",
    category = "llamafleet",
    status = "LlmModelStatus",
    derive = "PartialEq",
    cel,
    doc = "A GGUF language model: where the file lives, its sha256, quantization, context length and update schedule.",
    printcolumn(
        name = "Quantization",
        type_ = "string",
        json_path = ".spec.quantization",
        description = "Declared quantization"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        json_path = ".status.resolved.size",
        description = "Size of the GGUF file"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Resolution phase"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct LlmModelSpec {
    /// Where the GGUF file is fetched from, and the hash it must have.
    pub source: ModelSource,
    /// Quantization the file is expected to have (for example `Q4_K_M`); checked against the
    /// GGUF's `general.file_type` once the header is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub quantization: Option<String>,
    /// Context length to serve with, in tokens per request (each parallel slot gets this
    /// many). Defaults to the model's own training context; a deployment's
    /// `serving.contextLength` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 256, max = 1_048_576))]
    pub context_length: Option<u32>,
    /// Chat template (Jinja) to use instead of the one embedded in the GGUF; needed for base
    /// models that carry none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub chat_template: Option<String>,
    /// Scheduled checks of the source for a newer revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSpec>,
}

/// The location of a GGUF file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.url.startsWith('https://') || self.url.startsWith('file://') || (self.url.startsWith('http://') && has(self.allowInsecureHttp) && self.allowInsecureHttp)").message(crate::rules::MSG_URL_SCHEME).field_path(".url")
)]
pub struct ModelSource {
    /// URL of the GGUF file: `https://...`, `file:///path` (a file already on the node), or
    /// `http://...` when `allowInsecureHttp` is true. A Hugging Face `resolve/<revision>/` URL
    /// lets the operator pin the revision and read the LFS sha256.
    #[schemars(length(min = 8, max = 2048))]
    pub url: String,
    /// Expected sha256 of the whole file, 64 lowercase hex digits. When absent, the
    /// Hugging Face LFS hash (or the first download's hash) is pinned in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    /// Secret holding a bearer token for gated repositories. The token is sent only to the
    /// URL's own host, never after a redirect to another host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,
    /// Allow a plain `http://` URL. Off by default: the sha256 pin is then the only integrity
    /// check, so set `sha256` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,
}

/// A key inside a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret; defaults to `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// When and how to look for a newer revision of the model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("self.policy == 'Disabled' || has(self.schedule)").message(crate::rules::MSG_SCHEDULE_REQUIRED).field_path(".schedule")
)]
pub struct UpdateSpec {
    /// Cron expression (five fields, or six with seconds first; evaluated in UTC) or a macro
    /// such as `@weekly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|\S+(\s+\S+){4,5})$"),
        length(max = 128)
    )]
    pub schedule: Option<String>,
    /// What to do when the source changed: `Disabled` (no checks), `Notify` (record the
    /// candidate in status and raise an Event) or `Rollout` (also roll it out to deployments
    /// with a progressive rollout).
    #[serde(default)]
    pub policy: UpdatePolicy,
}

/// What a scheduled check does with a new revision.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UpdatePolicy {
    /// No scheduled checks.
    #[default]
    Disabled,
    /// Record the new revision as a candidate and raise an Event.
    Notify,
    /// Also roll the candidate out through each deployment's progressive rollout.
    Rollout,
}

/// What the operator found out about the model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmModelStatus {
    /// Where resolution stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ModelPhase>,
    /// The exact file the deployments serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedSource>,
    /// Metadata read from the GGUF header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufSummary>,
    /// Memory the model needs, from the GGUF header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryEstimate>,
    /// When the source was last checked for a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_check: Option<Time>,
    /// A newer revision found by a scheduled check and not yet promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    /// Standard conditions: `Ready`, `Degraded`, `UpdateAvailable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Resolution phase of a model.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ModelPhase {
    /// Not looked at yet.
    Pending,
    /// The source is being resolved.
    Resolving,
    /// Resolved and usable.
    Ready,
    /// Could not be resolved; see the conditions.
    Failed,
}

/// The pinned file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSource {
    /// sha256 of the file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Size for people, such as `253.1 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// HTTP ETag of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Repository revision (for example a Hugging Face commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// URL pinned to the revision where the host supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `spec.source.url` as it was when this was resolved (`url` may be pinned to a revision):
    /// a later spec change that keeps it keeps this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// HTTP Last-Modified of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// Metadata from a GGUF header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GgufSummary {
    /// `general.architecture`, such as `llama` or `gemma3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Parameter count, summed over the tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<i64>,
    /// Quantization named from `general.file_type`, such as `Q4_K_M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// Training context length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<i64>,
    /// Transformer blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<i64>,
    /// Embedding width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<i64>,
    /// Attention heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<i64>,
    /// Key/value heads (fewer than `heads` with grouped-query attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<i64>,
    /// Tokens in the vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_size: Option<i64>,
}

/// Memory the model needs, before replicas and slots are chosen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryEstimate {
    /// Bytes of weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_bytes: Option<i64>,
    /// KV-cache bytes per token of context (f16 cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bytes_per_token: Option<i64>,
    /// Bytes of the repeating transformer blocks, the part offloaded to GPUs layer by layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_weights_bytes: Option<i64>,
}

/// A newer revision waiting to be rolled out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// sha256 of the new file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// ETag or repository revision of the new file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the check found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<Time>,
    /// ETag of the new file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// URL of the new file, pinned to its revision where the host supports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Size in bytes of the new file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Size for people, such as `253.1 MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// HTTP Last-Modified of the new file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// Metadata of the new file's GGUF header (a new revision may change the architecture,
    /// the context length or the quantization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufSummary>,
    /// Memory the new file needs: the update variants are sized from it, not from the old
    /// file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryEstimate>,
    /// With policy `Rollout`: the LlmDeployments with a progressive rollout that use this
    /// model and are to roll the candidate out. Each gets, for every variant of this model
    /// with traffic, an update variant `<variant>-<revision tag>` serving the candidate,
    /// which takes the variant's weight through the deployment's rollout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout_to: Vec<String>,
    /// With policy `Rollout`: the deployments of `rolloutTo` that promoted the candidate so
    /// far. When all have, the candidate becomes `status.resolved`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promoted_in: Vec<String>,
    /// With policy `Rollout`: why the candidate was rolled back (the deployment and its
    /// failing figure). A rolled-back candidate is not rolled out again; the next check that
    /// finds another revision replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}
