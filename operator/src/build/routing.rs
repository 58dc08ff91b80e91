//! The routing table (`routing.yaml` in the `<llmd>-routing` ConfigMap) the router hot-reloads.
//!
//! The table's types are the contract with `llamafleet-agent route` and live in
//! `llamafleet_crds::routing`. Weight changes touch only this
//! ConfigMap: the router pod template carries no hash of it, so shifting traffic restarts
//! nothing. API keys are never here; the router reads them from the mounted Secret. The same
//! ConfigMap carries the variant pods' `presets.yaml` ([`super::presets`]) and `keep.yaml`
//! ([`super::keep`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, KeyToPath, Volume, VolumeMount,
};
pub use llamafleet_crds::routing::{
    RoutedReplicas, RoutedShadow, RoutedTier, RoutedVariant, RoutedWake, RoutingTable,
};
use llamafleet_crds::validation::parse_duration;

use super::{BuildOptions, meta};
use crate::deployment::plan::Plan;
use crate::names::{self, KEEP_KEY, KEYS_DIR, PRESETS_KEY, ROUTING_KEY};

/// Tiers when the spec gives none (the CRD documents these defaults).
pub const DEFAULT_TIERS: [(&str, u32); 3] = [("free", 10), ("premium", 100), ("enterprise", 1000)];

/// How long the router holds a request for a sleeping variant unless `wakeTimeout` says.
pub const DEFAULT_WAKE_TIMEOUT_SECONDS: u64 = 300;
/// Requests held per sleeping variant per router replica unless `maxHeldRequests` says.
pub const DEFAULT_MAX_HELD: u32 = 100;

/// The router's wake settings, when the plan's variants may sleep.
fn wake(plan: &Plan) -> Option<RoutedWake> {
    let a = plan.spec.autoscaling.as_ref().filter(|a| a.sleeps())?;
    Some(RoutedWake {
        namespace: plan.namespace.clone(),
        timeout_seconds: a
            .wake_timeout
            .as_deref()
            .and_then(parse_duration)
            .map_or(DEFAULT_WAKE_TIMEOUT_SECONDS, |d| d.as_secs()),
        max_held: a.max_held_requests.unwrap_or(DEFAULT_MAX_HELD),
    })
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
    let wake = wake(plan);
    RoutingTable {
        variants: plan
            .variants
            .iter()
            .map(|v| RoutedVariant {
                name: v.name.clone(),
                url: names::variant_url(&plan.name, &v.name, &plan.namespace),
                weight: v.weight,
                model: v.model.name.clone(),
                deployment: (wake.is_some() && !v.retired)
                    .then(|| names::variant_object(&plan.name, &v.name)),
                replicas: Some(RoutedReplicas::EndpointSlices {
                    namespace: plan.namespace.clone(),
                    service: names::variant_object(&plan.name, &v.name),
                }),
            })
            .collect(),
        presets: plan.spec.presets.clone(),
        tiers,
        router_replicas: super::router::ROUTER_REPLICAS,
        api_keys_dir: access.api_keys_secret.as_ref().map(|_| KEYS_DIR.into()),
        limits: access.limits,
        cors_origins: access.cors_origins,
        sticky_header: access.sticky_header,
        shadow: rollout
            .and_then(|r| r.shadow.as_ref())
            .map(|s| RoutedShadow {
                variant: s.variant.clone(),
                percent: s.percent,
            }),
        wake,
    }
}

/// The `<llmd>-routing` ConfigMap.
pub fn config_map(plan: &Plan, opts: &BuildOptions) -> ConfigMap {
    // Serialising plain structs of strings and numbers cannot fail.
    let yaml = serde_norway::to_string(&table(plan)).unwrap_or_default();
    let labels = names::object_labels(&names::router_selector(&plan.name));
    let mut data = BTreeMap::from([
        (ROUTING_KEY.into(), yaml),
        (KEEP_KEY.into(), super::keep::yaml(plan)),
    ]);
    if let Some(presets) = super::presets::yaml(plan) {
        data.insert(PRESETS_KEY.into(), presets);
    }
    ConfigMap {
        metadata: meta(plan, names::routing_config(&plan.name), labels, opts),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// A volume of one key of the routing ConfigMap (`key`, mounted read-only under `dir`), the
/// way variant pods read their presets and keep list; `optional` lets a pod start without it.
pub fn key_volume(
    plan: &Plan,
    volume: &str,
    key: &str,
    dir: &str,
    optional: Option<bool>,
) -> (Volume, VolumeMount) {
    let source = ConfigMapVolumeSource {
        name: names::routing_config(&plan.name),
        items: Some(vec![KeyToPath {
            key: key.into(),
            path: key.into(),
            mode: None,
        }]),
        optional,
        ..ConfigMapVolumeSource::default()
    };
    let mount = VolumeMount {
        name: volume.into(),
        mount_path: dir.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let volume = Volume {
        name: volume.into(),
        config_map: Some(source),
        ..Volume::default()
    };
    (volume, mount)
}
