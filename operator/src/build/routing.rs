//! The routing table (`routing.yaml` in the `<llmd>-routing` ConfigMap) the router hot-reloads.
//!
//! This is the contract with `llamafleet-agent route`. Weight changes touch only this
//! ConfigMap: the router pod template carries no hash of it, so shifting traffic restarts
//! nothing. API keys are never here; the router reads them from the mounted Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use llamafleet_crds::{Preset, RequestLimits};
use serde::{Deserialize, Serialize};

use super::{BuildOptions, meta};
use crate::names::{self, KEYS_DIR, ROUTING_KEY};
use crate::validate::Plan;

/// Tiers when the spec gives none (the CRD documents these defaults).
pub const DEFAULT_TIERS: [(&str, u32); 3] = [("free", 10), ("premium", 100), ("enterprise", 1000)];

/// Everything the router needs to route one LlmDeployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingTable {
    /// Upstream variants with their weights.
    pub variants: Vec<RoutedVariant>,
    /// Extra model names: a system prompt and sampling defaults over the weighted choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presets: Vec<Preset>,
    /// Rate-limit tiers, budgets per deployment per hour.
    pub tiers: Vec<RoutedTier>,
    /// Router replicas the tier budgets are shared by (each enforces `budget / replicas`).
    pub router_replicas: i32,
    /// Directory of the mounted API-key Secret; absent: the API is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_keys_dir: Option<String>,
    /// Per-request limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RequestLimits>,
    /// CORS origins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Shadow mirroring to a (weight 0) variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RoutedShadow>,
}

/// One upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutedVariant {
    /// Variant name (also the `x-llamafleet-variant` header value).
    pub name: String,
    /// Base URL of the variant Service.
    pub url: String,
    /// Percentage of traffic.
    pub weight: i32,
    /// LlmModel served.
    pub model: String,
}

/// A rate-limit tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutedTier {
    /// Tier name (as in the API-key Secret).
    pub name: String,
    /// Requests per hour per key, whole deployment.
    pub requests_per_hour: u32,
    /// Tokens per hour per key, whole deployment; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_hour: Option<i64>,
}

/// Shadow traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutedShadow {
    /// Variant receiving copies.
    pub variant: String,
    /// Percentage of requests copied.
    pub percent: u32,
}

/// The table for a plan.
pub fn table(plan: &Plan) -> RoutingTable {
    let access = plan.spec.access.clone().unwrap_or_default();
    let tiers = if access.tiers.is_empty() {
        DEFAULT_TIERS
            .iter()
            .map(|(name, rph)| RoutedTier {
                name: (*name).into(),
                requests_per_hour: *rph,
                tokens_per_hour: None,
            })
            .collect()
    } else {
        access
            .tiers
            .iter()
            .map(|t| RoutedTier {
                name: t.name.clone(),
                requests_per_hour: t.requests_per_hour,
                tokens_per_hour: t.tokens_per_hour,
            })
            .collect()
    };
    let rollout = plan.spec.rollout.as_ref();
    RoutingTable {
        variants: plan
            .variants
            .iter()
            .map(|v| RoutedVariant {
                name: v.name.clone(),
                url: names::variant_url(&plan.name, &v.name, &plan.namespace),
                weight: v.weight,
                model: v.model.name.clone(),
            })
            .collect(),
        presets: plan.spec.presets.clone(),
        tiers,
        router_replicas: super::router::ROUTER_REPLICAS,
        api_keys_dir: access.api_keys_secret.as_ref().map(|_| KEYS_DIR.into()),
        limits: access.limits,
        cors_origins: access.cors_origins,
        shadow: rollout
            .and_then(|r| r.shadow.as_ref())
            .map(|s| RoutedShadow {
                variant: s.variant.clone(),
                percent: s.percent,
            }),
    }
}

/// The `<llmd>-routing` ConfigMap.
pub fn config_map(plan: &Plan, opts: &BuildOptions) -> ConfigMap {
    // Serialising plain structs of strings and numbers cannot fail.
    let yaml = serde_norway::to_string(&table(plan)).unwrap_or_default();
    let labels = names::object_labels(&names::router_selector(&plan.name));
    ConfigMap {
        metadata: meta(plan, names::routing_config(&plan.name), labels, opts),
        data: Some(BTreeMap::from([(ROUTING_KEY.into(), yaml)])),
        ..ConfigMap::default()
    }
}
