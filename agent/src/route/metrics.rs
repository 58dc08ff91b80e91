//! The router's Prometheus metrics (`GET /metrics`), cumulative over its lifetime.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::stats::Outcome;
use llamafleet_crds::routing::TTFT_BUCKETS;

const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
const TOKENS_PER_SECOND_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0,
];
const SIMILARITY_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0];
/// Router work per request is tens of microseconds.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
];

/// Every metric the router exposes.
#[derive(Debug, Clone)]
pub struct RouterMetrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    ttft: HistogramVec,
    duration: HistogramVec,
    tokens: IntCounterVec,
    tokens_per_second: HistogramVec,
    /// 429s by tier and budget (`requests` or `tokens`).
    pub rate_limited: IntCounterVec,
    /// 401s.
    pub unauthorized: IntCounter,
    /// Shadow copies by target variant and result (`ok`, `error`).
    pub shadow_requests: IntCounterVec,
    /// Shadow answers identical to the live one.
    pub shadow_exact: IntCounterVec,
    /// Similarity of shadow answers to the live ones.
    pub shadow_similarity: HistogramVec,
    /// Loads of the routing table or the keys by what (`table`, `keys`) and result.
    pub reloads: IntCounterVec,
    /// Router time per request before the upstream is called (auth, limits, choice).
    pub overhead: prometheus::Histogram,
    /// Requests held while their sleeping variant wakes, by variant.
    pub held: IntGaugeVec,
    /// Wakes of sleeping variants by variant and result (`ok`, `timeout`).
    pub wakes: IntCounterVec,
    /// A/B votes of the console, per variant against another and outcome (`win`, `loss`,
    /// `tie`): a vote for `a` over `b` counts (a, b, win) and (b, a, loss).
    pub votes: IntCounterVec,
    /// Requests sent again after their first variant failed before answering, by that
    /// variant and why (`connect`: no connection or no answer; `busy`: a 503 with
    /// `Retry-After`).
    pub retries: IntCounterVec,
    /// Ejections of variants that kept failing, by variant.
    pub ejections: IntCounterVec,
    /// 1 while a variant is ejected (it drops at the first request after the ejection).
    pub ejected: IntGaugeVec,
    /// How each request's replica was chosen, by variant and choice (`prefix`: the replica
    /// this router sent its prompt prefix to; `hash`: the replica its first block hashes to,
    /// a prefix not seen yet; `load`: that replica had no free slot, so the least loaded;
    /// `least_loaded`: a prompt shorter than a block; `random`; `service`: no replica known,
    /// the variant Service chose).
    pub replica_choices: IntCounterVec,
    /// Ready replicas the router knows of, by variant.
    pub replicas: IntGaugeVec,
    /// Replicas set aside after failing before an answer, by variant.
    pub replica_ejections: IntCounterVec,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl RouterMetrics {
    /// Creates and registers everything (plus the process collector) in a fresh registry.
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let v = &["variant"];
        let unauthorized = IntCounter::new(
            "llamafleet_router_unauthorized_total",
            "Requests refused for a missing or unknown API key",
        )?;
        r.register(Box::new(unauthorized.clone()))?;
        let overhead = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "llamafleet_router_overhead_seconds",
                "Router time per request before the upstream is called",
            )
            .buckets(OVERHEAD_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(overhead.clone()))?;
        let held = IntGaugeVec::new(
            Opts::new(
                "llamafleet_router_held_requests",
                "Requests held while their sleeping variant wakes",
            ),
            v,
        )?;
        r.register(Box::new(held.clone()))?;
        let ejected = IntGaugeVec::new(
            Opts::new(
                "llamafleet_router_variant_ejected",
                "1 while a variant that kept failing is out of the weighted choice",
            ),
            v,
        )?;
        r.register(Box::new(ejected.clone()))?;
        let replicas = IntGaugeVec::new(
            Opts::new(
                "llamafleet_router_replicas",
                "Ready replicas the router knows of, by variant",
            ),
            v,
        )?;
        r.register(Box::new(replicas.clone()))?;
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(RouterMetrics {
            requests: counter(
                &r,
                "llamafleet_router_requests_total",
                "Client requests by variant",
                v,
            )?,
            errors: counter(
                &r,
                "llamafleet_router_errors_total",
                "Failed client requests by variant",
                v,
            )?,
            ttft: histogram(
                &r,
                "llamafleet_router_ttft_seconds",
                "Time to first token by variant",
                &TTFT_BUCKETS,
                v,
            )?,
            duration: histogram(
                &r,
                "llamafleet_router_request_duration_seconds",
                "Request duration by variant",
                DURATION_BUCKETS,
                v,
            )?,
            tokens: counter(
                &r,
                "llamafleet_router_generated_tokens_total",
                "Generated tokens by variant",
                v,
            )?,
            tokens_per_second: histogram(
                &r,
                "llamafleet_router_tokens_per_second",
                "Generation speed per request by variant",
                TOKENS_PER_SECOND_BUCKETS,
                v,
            )?,
            rate_limited: counter(
                &r,
                "llamafleet_router_rate_limited_total",
                "Requests refused by a tier budget",
                &["tier", "budget"],
            )?,
            shadow_requests: counter(
                &r,
                "llamafleet_router_shadow_requests_total",
                "Shadow copies by target variant and result",
                &["variant", "result"],
            )?,
            shadow_exact: counter(
                &r,
                "llamafleet_router_shadow_exact_matches_total",
                "Shadow answers identical to the live answer",
                v,
            )?,
            shadow_similarity: histogram(
                &r,
                "llamafleet_router_shadow_similarity",
                "Similarity (0..1) of shadow answers to live ones",
                SIMILARITY_BUCKETS,
                v,
            )?,
            reloads: counter(
                &r,
                "llamafleet_router_config_loads_total",
                "Loads of the routing table and keys by result",
                &["what", "result"],
            )?,
            wakes: counter(
                &r,
                "llamafleet_router_wakes_total",
                "Wakes of sleeping variants by variant and result",
                &["variant", "result"],
            )?,
            votes: counter(
                &r,
                "llamafleet_router_votes_total",
                "A/B votes of the console per variant, the variant it was compared with, and \
                 the outcome for the first (win, loss, tie)",
                &["variant", "other", "outcome"],
            )?,
            retries: counter(
                &r,
                "llamafleet_router_retries_total",
                "Requests sent again after their variant failed before answering, by that \
                 variant and reason (connect, busy)",
                &["variant", "reason"],
            )?,
            ejections: counter(
                &r,
                "llamafleet_router_ejections_total",
                "Ejections of variants that kept failing, by variant",
                v,
            )?,
            replica_choices: counter(
                &r,
                "llamafleet_router_replica_choices_total",
                "How requests' replicas were chosen, by variant and choice (prefix, hash, load, \
                 least_loaded, random, service)",
                &["variant", "choice"],
            )?,
            replica_ejections: counter(
                &r,
                "llamafleet_router_replica_ejections_total",
                "Replicas set aside after failing before an answer, by variant",
                v,
            )?,
            replicas,
            ejected,
            unauthorized,
            overhead,
            held,
            registry: r,
        })
    }

    /// Records a finished client request.
    pub fn record(&self, variant: &str, outcome: &Outcome) {
        let v = &[variant];
        self.requests.with_label_values(v).inc();
        if outcome.error {
            self.errors.with_label_values(v).inc();
        }
        if let Some(ttft) = outcome.ttft {
            self.ttft.with_label_values(v).observe(ttft.as_secs_f64());
        }
        self.duration
            .with_label_values(v)
            .observe(outcome.duration.as_secs_f64());
        if outcome.tokens > 0 {
            self.tokens.with_label_values(v).inc_by(outcome.tokens);
            let secs = outcome.generation.as_secs_f64();
            if secs > 0.0 {
                self.tokens_per_second
                    .with_label_values(v)
                    .observe(outcome.tokens as f64 / secs);
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}
