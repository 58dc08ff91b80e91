//! Prometheus metrics of the operator, served on `/metrics`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Reconcile durations from a cache hit (ms) to a slow API server (tens of seconds).
const DURATION_BUCKETS: [f64; 9] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Variant names by `(namespace, llmdeployment)`.
type Published = HashMap<(String, String), Vec<String>>;

/// The operator's metrics and the registry that serves them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `llamafleet_operator_reconciles_total{controller}`.
    pub reconciles: IntCounterVec,
    /// `llamafleet_operator_reconcile_errors_total{controller,error}`.
    pub errors: IntCounterVec,
    /// `llamafleet_operator_reconcile_duration_seconds{controller}`.
    pub duration: HistogramVec,
    /// `llamafleet_operator_managed_objects{kind}`: custom resources in the controllers' caches.
    pub managed: IntGaugeVec,
    /// `llamafleet_operator_rollout_decisions_total{decision}`: `pending`, `started`,
    /// `advanced`, `paused`, `resumed`, `promoted`, `rolled_back`.
    pub rollout_decisions: IntCounterVec,
    /// `llamafleet_operator_rollbacks_total{namespace,llmdeployment}`: what the
    /// `LlamafleetRolloutRolledBack` alert watches.
    pub rollbacks: IntCounterVec,
    /// `llamafleet_operator_variant_weight{namespace,llmdeployment,variant}`: percent of the
    /// traffic the routing table last written gives the variant (mid-rollout, not the spec's).
    pub variant_weight: IntGaugeVec,
    /// `llamafleet_operator_rollout_step{namespace,llmdeployment}`: `status.rollout.step` of a
    /// Progressive deployment (0 while it waits for the candidate); absent for Manual ones.
    pub rollout_step: IntGaugeVec,
    /// `llamafleet_operator_api_requests_total{verb}`: requests to the Kubernetes API server
    /// (`get`, `list`, `watch`, `create`, `patch`, `delete`, …); an operator at rest makes
    /// none but its watches.
    pub api_requests: IntCounterVec,
    /// The variants of each `(namespace, llmdeployment)` that have a weight series: removing
    /// the stale ones by name costs a lookup, where searching the gauge's series cost a copy
    /// of all of them on every reconcile (most of one at a thousand LlmDeployments).
    published: Arc<Mutex<Published>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("llamafleet_operator_reconciles_total", "Reconciles started"),
            &["controller"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "llamafleet_operator_reconcile_errors_total",
                "Reconciles that failed or found a user error, by error label",
            ),
            &["controller", "error"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "llamafleet_operator_reconcile_duration_seconds",
                "Time spent in one reconcile",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["controller"],
        )
        .expect("valid metric");
        let managed = IntGaugeVec::new(
            Opts::new(
                "llamafleet_operator_managed_objects",
                "Custom resources being managed",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let rollout_decisions = IntCounterVec::new(
            Opts::new(
                "llamafleet_operator_rollout_decisions_total",
                "Decisions of progressive rollouts",
            ),
            &["decision"],
        )
        .expect("valid metric");
        let rollbacks = IntCounterVec::new(
            Opts::new(
                "llamafleet_operator_rollbacks_total",
                "Progressive rollouts rolled back",
            ),
            &["namespace", "llmdeployment"],
        )
        .expect("valid metric");
        let variant_weight = IntGaugeVec::new(
            Opts::new(
                "llamafleet_operator_variant_weight",
                "Percent of traffic routed to each variant, as last written",
            ),
            &["namespace", "llmdeployment", "variant"],
        )
        .expect("valid metric");
        let rollout_step = IntGaugeVec::new(
            Opts::new(
                "llamafleet_operator_rollout_step",
                "Step in force of a progressive rollout (0: waiting for the candidate)",
            ),
            &["namespace", "llmdeployment"],
        )
        .expect("valid metric");
        let api_requests = IntCounterVec::new(
            Opts::new(
                "llamafleet_operator_api_requests_total",
                "Requests sent to the Kubernetes API server, by verb",
            ),
            &["verb"],
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(api_requests.clone()),
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(managed.clone()),
            Box::new(rollout_decisions.clone()),
            Box::new(rollbacks.clone()),
            Box::new(variant_weight.clone()),
            Box::new(rollout_step.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            managed,
            rollout_decisions,
            rollbacks,
            variant_weight,
            rollout_step,
            api_requests,
            published: Arc::default(),
        }
    }

    /// Records what one LlmDeployment's reconcile put in force: each variant's weight (the
    /// series of variants it no longer has go) and, for a Progressive one, the rollout step.
    pub fn set_deployment(&self, ns: &str, name: &str, weights: &[(&str, i32)], step: Option<u32>) {
        let current: BTreeSet<&str> = weights.iter().map(|(v, _)| *v).collect();
        let before = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (ns.to_owned(), name.to_owned()),
                current.iter().map(|v| (*v).to_owned()).collect(),
            )
            .unwrap_or_default();
        for gone in before.iter().filter(|v| !current.contains(v.as_str())) {
            let _ = self.variant_weight.remove_label_values(&[ns, name, gone]);
        }
        for (variant, weight) in weights {
            self.variant_weight
                .with_label_values(&[ns, name, *variant])
                .set(i64::from(*weight));
        }
        match step {
            Some(step) => self
                .rollout_step
                .with_label_values(&[ns, name])
                .set(i64::from(step)),
            None => {
                let _ = self.rollout_step.remove_label_values(&[ns, name]);
            }
        }
    }

    /// Drops the per-deployment gauges of LlmDeployments that are gone: a deleted object gets
    /// no reconcile, so the controller loop calls this with the `(namespace, name)`s it holds.
    pub fn retain_deployments(&self, live: &BTreeSet<(String, String)>) {
        self.published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(ns, name), variants| {
                if live.contains(&(ns.clone(), name.clone())) {
                    return true;
                }
                for v in variants.iter() {
                    let _ = self.variant_weight.remove_label_values(&[ns, name, v]);
                }
                let _ = self.rollout_step.remove_label_values(&[ns, name]);
                false
            });
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn weight_series(m: &Metrics) -> Vec<String> {
        m.render()
            .lines()
            .filter(|l| l.starts_with("llamafleet_operator_variant_weight{"))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn gauges_follow_variants_and_deleted_deployments_go() {
        let m = Metrics::new();
        m.set_deployment("a", "chat", &[("blue", 90), ("green", 10)], Some(1));
        m.set_deployment("b", "chat", &[("main", 100)], None);
        // green removed from the spec: its series goes, blue's stays.
        m.set_deployment("a", "chat", &[("blue", 100)], Some(0));
        assert_eq!(
            weight_series(&m),
            [
                r#"llamafleet_operator_variant_weight{llmdeployment="chat",namespace="a",variant="blue"} 100"#,
                r#"llamafleet_operator_variant_weight{llmdeployment="chat",namespace="b",variant="main"} 100"#,
            ]
        );
        let text = m.render();
        assert!(
            text.contains(
                r#"llamafleet_operator_rollout_step{llmdeployment="chat",namespace="a"} 0"#
            )
        );
        assert!(
            !text.contains(r#"rollout_step{llmdeployment="chat",namespace="b"}"#),
            "Manual"
        );

        m.retain_deployments(&BTreeSet::from([("b".to_owned(), "chat".to_owned())]));
        assert_eq!(weight_series(&m).len(), 1);
        assert!(!m.render().contains("llamafleet_operator_rollout_step{"));
    }
}
