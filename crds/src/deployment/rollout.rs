//! Rollout policy of an `LlmDeployment`.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How weight moves to a new variant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.steps) || (self.steps.isSorted() && self.steps.all(s, self.steps.exists_one(t, t == s)) && self.steps[size(self.steps) - 1] == 100)").message(crate::rules::MSG_STEPS_ORDER).field_path(".steps")
)]
pub struct RolloutSpec {
    /// `Manual`: weights are exactly what the spec says. `Progressive`: when the spec gives a
    /// variant more weight than it has (the candidate), its weight moves through `steps`, one
    /// each `interval`, while its metrics pass `analysis`; a failure sets its weight back to 0
    /// until the spec changes again. Variants left with weight 0 by a promoted rollout are
    /// scaled to 0 replicas (their objects are kept for a quick way back).
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Weights (percent) the new variant takes in turn, ascending, ending at 100. Defaults to
    /// 10, 25, 50, 100.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10), inner(range(min = 1, max = 100)))]
    pub steps: Vec<u32>,
    /// Time each step is held and analysed before the next, such as `5m` (the default) or
    /// `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}(s|m|h)$"))]
    pub interval: Option<String>,
    /// Limits the new variant must stay within at each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Mirror a share of requests to a variant with weight 0, to compare without serving its
    /// answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowSpec>,
    /// Hold a progressive rollout at its current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Name of the candidate to promote now, without further analysis: its weight jumps to
    /// what the spec asks as soon as its replicas are ready. Ignored while it names no
    /// candidate; naming the candidate of a rolled-back rollout restarts and promotes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub promote: Option<String>,
}

/// Rollout strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutStrategy {
    /// Weights are exactly what the spec says.
    #[default]
    Manual,
    /// Weights move step by step with analysis and automatic rollback.
    Progressive,
}

/// Limits a new variant must meet, relative to the stable one where a ratio. Figures come from
/// the routers' counters for the step being judged; a ratio not set is not checked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Highest share of failed requests, 0 to 1 (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: Option<f64>,
    /// Highest time-to-first-token p95 as a multiple of the stable variant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub max_ttft_p95_ratio: Option<f64>,
    /// Lowest tokens per second as a fraction of the stable variant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 10.0))]
    pub min_tokens_per_second_ratio: Option<f64>,
    /// Candidate requests a step must see before it is judged (default 10); with fewer the
    /// step waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub min_requests: Option<u32>,
}

/// Shadow traffic to a variant that serves no client.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowSpec {
    /// Variant that receives the copies; it should have weight 0.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub variant: String,
    /// Percentage of requests copied, 0 to 100.
    #[schemars(range(min = 0, max = 100))]
    pub percent: u32,
}
