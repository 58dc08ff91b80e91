//! Prometheus metrics of the operator, served on `/metrics`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Reconcile durations from a cache hit (ms) to a slow API server (tens of seconds).
const DURATION_BUCKETS: [f64; 9] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

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
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(managed.clone()),
            Box::new(rollout_decisions.clone()),
            Box::new(rollbacks.clone()),
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
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}
