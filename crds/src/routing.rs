//! The two wire contracts between the operator and `llamafleet-agent route`:
//!
//! - [`RoutingTable`]: `routing.yaml` in the `<llmd>-routing` ConfigMap, written by the
//!   operator, hot-reloaded by the router.
//! - [`RouterStats`]: the JSON body of `GET /router/stats` on the router, read by the
//!   operator's progressive rollout. Counters cover one routing-table [`revision`] on one
//!   router replica: a router starts counting afresh when the weights change, so every figure
//!   the operator reads belongs to the step it is judging. [`RouterStats::merge`] adds the
//!   replicas' figures together (histograms merge bucket by bucket, so a p95 over all
//!   replicas is exact to the bucket).
//!
//! Both live here, next to the CRD types, so the operator and the router cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Preset, RequestLimits};

/// Header a client sets to pin a variant (tests, comparisons).
pub const PIN_HEADER: &str = "x-llamafleet-variant";
/// Path of the stats endpoint on the router's port.
pub const STATS_PATH: &str = "/router/stats";
/// Upper bounds (seconds) of the time-to-first-token histogram buckets, shared by the
/// router's Prometheus histogram and [`VariantStats::ttft_buckets`].
pub const TTFT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

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
    /// Router replicas the tier budgets are shared by: each replica enforces
    /// `ceil(budget / router_replicas)` per client on its own, so a client spread evenly over
    /// the replicas (as the Service does) gets about the whole budget.
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
    /// Header whose value keeps a client on one variant when it sends no API key (for
    /// example a user or session id). With a key, the key decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    /// Holding requests for sleeping variants and waking them; absent: no variant sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake: Option<RoutedWake>,
}

impl RoutingTable {
    /// A table routing `variants` on one router replica, with nothing else set: no tiers, no
    /// keys (an open API), no limits, CORS origins, shadow or sticky header.
    pub fn open(variants: Vec<RoutedVariant>) -> Self {
        RoutingTable {
            variants,
            presets: Vec::new(),
            tiers: Vec::new(),
            router_replicas: 1,
            api_keys_dir: None,
            limits: None,
            cors_origins: Vec::new(),
            shadow: None,
            sticky_header: None,
            wake: None,
        }
    }

    /// The revision of this table's weights (see [`revision`]).
    pub fn revision(&self) -> String {
        revision(&self.variants)
    }
}

/// The routing revision of a set of weights: `blue=90,green=10`. Readable in status and logs,
/// and equal for two tables exactly when they split traffic the same way.
pub fn revision(variants: &[RoutedVariant]) -> String {
    variants
        .iter()
        .map(|v| format!("{}={}", v.name, v.weight))
        .collect::<Vec<_>>()
        .join(",")
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
    /// Deployment the router scales from zero to one replica (its `scale` subresource) to wake
    /// this variant; absent: the variant never sleeps, and an unreachable one is a 502.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Where the variant's replicas are, so that the router picks the replica (the one likely
    /// to hold a request's prompt prefix in its cache, else the least loaded) instead of
    /// leaving the choice to the Service; absent, or while none is known to be ready: `url`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_norway::with::singleton_map"
    )]
    pub replicas: Option<RoutedReplicas>,
}

/// How the router finds a variant's replicas: `urls: [...]` or `endpointSlices: {namespace,
/// service}` (a one-key map, not a YAML tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RoutedReplicas {
    /// The ready endpoints of a Service's EndpointSlices (label
    /// `kubernetes.io/service-name`), watched; the router's ServiceAccount may list and watch
    /// EndpointSlices in that namespace.
    EndpointSlices {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        service: String,
    },
    /// Fixed base URLs (replicas outside Kubernetes, benchmarks, tests).
    Urls(Vec<String>),
}

/// Response header in which `serve` reports its load, read by the router to choose replicas:
/// `busy=<slots in use>;slots=<slots>;queued=<requests waiting for a slot>`.
pub const LOAD_HEADER: &str = "x-llamafleet-load";

/// A replica's load, as [`LOAD_HEADER`] carries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaLoad {
    /// Slots generating.
    pub busy: u32,
    /// Slots in all (`--parallel`).
    pub slots: u32,
    /// Requests accepted and waiting for a slot.
    pub queued: u32,
}

impl ReplicaLoad {
    /// The header value.
    pub fn header(&self) -> String {
        format!(
            "busy={};slots={};queued={}",
            self.busy, self.slots, self.queued
        )
    }

    /// Reads a header value; `None` unless all three figures are there.
    pub fn parse(value: &str) -> Option<Self> {
        let (mut busy, mut slots, mut queued) = (None, None, None);
        for part in value.split(';') {
            let (name, figure) = part.trim().split_once('=')?;
            let figure = figure.trim().parse().ok()?;
            match name.trim() {
                "busy" => busy = Some(figure),
                "slots" => slots = Some(figure),
                "queued" => queued = Some(figure),
                _ => {}
            }
        }
        Some(ReplicaLoad {
            busy: busy?,
            slots: slots?,
            queued: queued?,
        })
    }
}

/// How the router treats requests for a variant that sleeps (no ready replica).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutedWake {
    /// Namespace of the variants' Deployments.
    pub namespace: String,
    /// Seconds a request is held while its variant wakes; then a 503 with `Retry-After`.
    pub timeout_seconds: u64,
    /// Requests held per variant on one router replica; more get a 503 at once.
    pub max_held: u32,
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

/// `GET /router/stats`: one router replica's counters since it loaded `revision`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterStats {
    /// The routing revision (weights) these counters cover.
    pub revision: String,
    /// Seconds this replica has counted under `revision`.
    pub seconds: f64,
    /// One entry per variant of the table, shadow targets included.
    pub variants: Vec<VariantStats>,
    /// Seconds since this replica last received a request for each variant (held, answered
    /// or mirrored), or since it started when none came. Unlike the counters it does not
    /// restart with the revision: the operator puts a variant to sleep on it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub idle_seconds: BTreeMap<String, f64>,
}

/// What one variant did under one revision on one router replica.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantStats {
    /// Variant name.
    pub name: String,
    /// Client requests answered by this variant (mirrored copies are counted in `shadow`).
    pub requests: u64,
    /// Of those, failed ones: upstream 5xx, connection errors, streams cut short.
    pub errors: u64,
    /// Cumulative TTFT histogram: `ttft_buckets[i]` requests had their first token within
    /// `TTFT_BUCKETS[i]` seconds; the last entry is every request that produced one (`+Inf`).
    pub ttft_buckets: Vec<u64>,
    /// Generated tokens (as reported by the upstream's usage, else counted stream chunks).
    pub tokens: u64,
    /// Seconds spent generating those tokens (first token to last).
    pub generation_seconds: f64,
    /// Mirrored copies this variant answered as the shadow target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStats>,
}

/// Shadow results for the target variant, compared with the live answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStats {
    /// Copies sent.
    pub requests: u64,
    /// Copies that failed.
    pub errors: u64,
    /// Copies whose answer was compared with the live one.
    pub compared: u64,
    /// Of those, answers identical to the live one.
    pub exact_matches: u64,
    /// Sum of the similarity scores (0..1) of the compared answers.
    pub similarity_sum: f64,
}

impl RouterStats {
    /// All replicas' figures for `revision` added together; replicas still on another revision
    /// are left out (they have not loaded the table yet, or are about to).
    pub fn merge<'a>(revision: &str, replicas: impl IntoIterator<Item = &'a RouterStats>) -> Self {
        let mut total = RouterStats {
            revision: revision.to_string(),
            ..RouterStats::default()
        };
        for replica in replicas.into_iter().filter(|r| r.revision == revision) {
            total.seconds = total.seconds.max(replica.seconds);
            for v in &replica.variants {
                match total.variants.iter_mut().find(|t| t.name == v.name) {
                    Some(t) => t.add(v),
                    None => total.variants.push(v.clone()),
                }
            }
        }
        total
    }

    /// How long `variant` has gone without a request on every one of `replicas` (the least
    /// of their idle times); `None` when there are none, or when one of them does not report
    /// it (a replica that cannot wake it yet).
    pub fn idle_for<'a>(
        variant: &str,
        replicas: impl IntoIterator<Item = &'a RouterStats>,
    ) -> Option<f64> {
        replicas
            .into_iter()
            .map(|r| r.idle_seconds.get(variant).copied())
            .collect::<Option<Vec<f64>>>()?
            .into_iter()
            .reduce(f64::min)
    }

    /// The figures of one variant.
    pub fn variant(&self, name: &str) -> Option<&VariantStats> {
        self.variants.iter().find(|v| v.name == name)
    }
}

impl VariantStats {
    fn add(&mut self, other: &VariantStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.ttft_buckets.len() < other.ttft_buckets.len() {
            self.ttft_buckets.resize(other.ttft_buckets.len(), 0);
        }
        for (mine, theirs) in self.ttft_buckets.iter_mut().zip(&other.ttft_buckets) {
            *mine += theirs;
        }
        self.tokens += other.tokens;
        self.generation_seconds += other.generation_seconds;
        if let Some(theirs) = &other.shadow {
            let mine = self.shadow.get_or_insert_with(ShadowStats::default);
            mine.requests += theirs.requests;
            mine.errors += theirs.errors;
            mine.compared += theirs.compared;
            mine.exact_matches += theirs.exact_matches;
            mine.similarity_sum += theirs.similarity_sum;
        }
    }

    /// Failed share of requests; `None` before any request.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// Generated tokens per second of generation; `None` before any token.
    pub fn tokens_per_second(&self) -> Option<f64> {
        (self.tokens > 0 && self.generation_seconds > 0.0)
            .then(|| self.tokens as f64 / self.generation_seconds)
    }

    /// The upper bound of the bucket holding quantile `q` (0..1) of TTFT, as Prometheus'
    /// `histogram_quantile` would bound it; `None` without observations. Past the last finite
    /// bucket the answer is that bucket's bound (the histogram cannot say more).
    pub fn ttft_quantile(&self, q: f64) -> Option<f64> {
        let total = *self.ttft_buckets.last()?;
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let index = self.ttft_buckets.iter().position(|&count| count >= rank)?;
        TTFT_BUCKETS.get(index).or(TTFT_BUCKETS.last()).copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn replica_load_round_trips_and_refuses_partial_values() {
        let load = ReplicaLoad {
            busy: 3,
            slots: 4,
            queued: 2,
        };
        assert_eq!(ReplicaLoad::parse(&load.header()), Some(load));
        assert_eq!(ReplicaLoad::parse("busy=1;slots=2"), None);
        assert_eq!(ReplicaLoad::parse("busy=x;slots=2;queued=0"), None);
    }

    #[test]
    fn replicas_read_as_a_one_key_map() {
        let yaml = "name: a\nurl: http://a\nweight: 1\nmodel: m\nreplicas:\n  endpointSlices:\n    namespace: ns\n    service: llmd-a\n";
        let v: RoutedVariant = serde_norway::from_str(yaml).unwrap();
        let slices = RoutedReplicas::EndpointSlices {
            namespace: "ns".into(),
            service: "llmd-a".into(),
        };
        assert_eq!(v.replicas, Some(slices));
        assert_eq!(serde_norway::to_string(&v).unwrap(), yaml);
        let v: RoutedVariant = serde_norway::from_str(
            "{name: a, url: 'http://a', weight: 1, model: m, replicas: {urls: ['http://b']}}",
        )
        .unwrap();
        assert_eq!(
            v.replicas,
            Some(RoutedReplicas::Urls(vec!["http://b".into()]))
        );
        let v: RoutedVariant =
            serde_norway::from_str("{name: a, url: 'http://a', weight: 1, model: m}").unwrap();
        assert_eq!(v.replicas, None);
    }

    fn stats(revision: &str, name: &str, requests: u64, errors: u64, ttft: &[u64]) -> RouterStats {
        RouterStats {
            revision: revision.into(),
            seconds: 60.0,
            variants: vec![VariantStats {
                name: name.into(),
                requests,
                errors,
                ttft_buckets: ttft.to_vec(),
                tokens: requests * 10,
                generation_seconds: requests as f64,
                shadow: None,
            }],
            idle_seconds: BTreeMap::new(),
        }
    }

    #[test]
    fn a_variant_is_idle_only_as_long_as_every_replica_says() {
        let replica = |idle: &[(&str, f64)]| RouterStats {
            idle_seconds: idle.iter().map(|(v, s)| ((*v).to_string(), *s)).collect(),
            ..RouterStats::default()
        };
        let a = replica(&[("main", 30.0)]);
        let b = replica(&[("main", 5.0)]);
        assert_eq!(RouterStats::idle_for("main", [&a, &b]), Some(5.0));
        // A replica that does not report it (an older table) keeps it awake.
        let old = replica(&[]);
        assert_eq!(RouterStats::idle_for("main", [&a, &old]), None);
        assert_eq!(RouterStats::idle_for("main", []), None);
    }

    #[test]
    fn revision_lists_weights_in_table_order() {
        let v = |name: &str, weight| RoutedVariant {
            name: name.into(),
            url: String::new(),
            weight,
            model: String::new(),
            deployment: None,
            replicas: None,
        };
        assert_eq!(
            revision(&[v("blue", 90), v("green", 10)]),
            "blue=90,green=10"
        );
    }

    #[test]
    fn merge_adds_replicas_on_the_same_revision_only() {
        let mut buckets = vec![0; TTFT_BUCKETS.len() + 1];
        buckets[5] = 4;
        let a = stats("b=50,g=50", "g", 10, 1, &buckets);
        let b = stats("b=50,g=50", "g", 30, 2, &buckets);
        let stale = stats("b=90,g=10", "g", 1000, 1000, &buckets);
        let total = RouterStats::merge("b=50,g=50", [&a, &b, &stale]);
        let g = total.variant("g").unwrap();
        assert_eq!((g.requests, g.errors, g.tokens), (40, 3, 400));
        assert_eq!(g.ttft_buckets[5], 8);
        assert_eq!(g.error_rate(), Some(3.0 / 40.0));
        assert_eq!(g.tokens_per_second(), Some(10.0));
    }

    #[test]
    fn ttft_quantile_is_the_bound_of_the_bucket_holding_the_rank() {
        // 100 observations: 90 within 0.1 s, 99 within 0.5 s, all within 2.5 s.
        let mut cumulative = vec![0u64; TTFT_BUCKETS.len() + 1];
        for (i, bound) in TTFT_BUCKETS.iter().enumerate() {
            cumulative[i] = match *bound {
                b if b < 0.1 => 0,
                b if b < 0.5 => 90,
                b if b < 2.5 => 99,
                _ => 100,
            };
        }
        cumulative[TTFT_BUCKETS.len()] = 100;
        let v = VariantStats {
            ttft_buckets: cumulative,
            ..VariantStats::default()
        };
        assert_eq!(v.ttft_quantile(0.5), Some(0.1));
        assert_eq!(v.ttft_quantile(0.95), Some(0.5));
        assert_eq!(v.ttft_quantile(1.0), Some(2.5));
        assert_eq!(VariantStats::default().ttft_quantile(0.95), None);
    }
}
