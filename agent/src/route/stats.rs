//! `GET /router/stats`: this replica's counters for the routing revision it runs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use llamafleet_crds::routing::{
    RouterStats, RoutingTable, ShadowStats, TTFT_BUCKETS, VariantStats,
};

/// How one proxied request ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Upstream 5xx, connection error, error frame or a stream cut short.
    pub error: bool,
    /// Time from the router receiving the request to the first generated text reaching it
    /// (for an answer that is not streamed: the whole answer).
    pub ttft: Option<Duration>,
    /// Generated tokens.
    pub tokens: u64,
    /// First token to last (for an answer that is not streamed: the whole request).
    pub generation: Duration,
    /// Whole request.
    pub duration: Duration,
}

/// Counters of one revision, started afresh whenever the weights change.
#[derive(Debug)]
pub struct RevisionStats {
    revision: String,
    started: Instant,
    variants: Mutex<Vec<VariantStats>>,
}

impl RevisionStats {
    /// Zeroed counters for every variant of `table`.
    pub fn new(table: &RoutingTable) -> Self {
        let variants = table
            .variants
            .iter()
            .map(|v| VariantStats {
                name: v.name.clone(),
                ttft_buckets: vec![0; TTFT_BUCKETS.len() + 1],
                ..VariantStats::default()
            })
            .collect();
        RevisionStats {
            revision: table.revision(),
            started: Instant::now(),
            variants: Mutex::new(variants),
        }
    }

    /// The revision counted.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    fn with_variant(&self, name: &str, update: impl FnOnce(&mut VariantStats)) {
        let mut variants = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = variants.iter_mut().find(|v| v.name == name) {
            update(v);
        }
    }

    /// Counts a client request answered by `variant`.
    pub fn record(&self, variant: &str, outcome: &Outcome) {
        self.with_variant(variant, |v| {
            v.requests += 1;
            v.errors += u64::from(outcome.error);
            if let Some(ttft) = outcome.ttft {
                let secs = ttft.as_secs_f64();
                for (count, bound) in v.ttft_buckets.iter_mut().zip(TTFT_BUCKETS) {
                    *count += u64::from(secs <= bound);
                }
                if let Some(all) = v.ttft_buckets.last_mut() {
                    *all += 1;
                }
            }
            if outcome.tokens > 0 {
                v.tokens += outcome.tokens;
                v.generation_seconds += outcome.generation.as_secs_f64();
            }
        });
    }

    /// Updates the shadow counters of `variant`.
    pub fn record_shadow(&self, variant: &str, update: impl FnOnce(&mut ShadowStats)) {
        self.with_variant(variant, |v| {
            update(v.shadow.get_or_insert_with(Default::default))
        });
    }

    /// The counters as the operator reads them.
    pub fn snapshot(&self) -> RouterStats {
        let variants = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        RouterStats {
            revision: self.revision.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
            variants: variants.clone(),
            idle_seconds: Default::default(),
        }
    }
}
