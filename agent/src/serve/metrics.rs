//! `/metrics`: HTTP, engine and store metrics in one registry, plus the process collector
//! (RSS, CPU, open files) and, when NVML is present, per-GPU metrics.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

use super::gpu::GpuCollector;
use crate::store::StoreMetrics;

/// Latencies from a millisecond (a cached token on a GPU) to a minute (a long CPU prefill).
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Request durations reach minutes for long generations.
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// Per-stream generation speed: a large CPU model does ~1 tok/s, a small GPU one ~1000.
const TOKENS_PER_SECOND_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0, 1280.0,
];

/// What the engine thread records.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    /// Time from admission to the first token.
    pub ttft: Histogram,
    /// Time between consecutive tokens of one stream.
    pub inter_token: Histogram,
    /// Prompt tokens evaluated.
    pub prompt_tokens: IntCounter,
    /// Tokens generated.
    pub generated_tokens: IntCounter,
    /// Prompt tokens found in the slot's own cache (its previous prompt).
    pub prompt_tokens_reused: IntCounter,
    /// Prompt tokens copied from another slot's cache.
    pub prompt_tokens_shared: IntCounter,
    /// Generation speed per request.
    pub tokens_per_second: Histogram,
    /// Requests accepted and waiting for a slot.
    pub queue_depth: IntGauge,
    /// Slots in use.
    pub busy_slots: IntGauge,
    /// Slots in total (`--parallel`), so dashboards show busy against capacity.
    pub slots: IntGauge,
    /// KV cache cells holding tokens.
    pub kv_cells_used: IntGauge,
    /// KV cache cells in total.
    pub kv_cells_total: IntGauge,
    /// Seconds the model load took.
    pub load_seconds: Gauge,
    /// Decode steps llama.cpp refused that were tried again in smaller parts.
    pub decode_retries: IntCounter,
    /// Requests failed because llama.cpp refused their tokens even on their own.
    pub decode_failures: IntCounter,
}

/// Every metric `serve` exposes.
#[derive(Debug, Clone)]
pub struct ServeMetrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Requests by api, route and status.
    pub requests: IntCounterVec,
    /// Request duration by api and route.
    pub request_duration: HistogramVec,
    /// Engine metrics.
    pub engine: EngineMetrics,
    /// Store (download) metrics.
    pub store: StoreMetrics,
    /// Whether NVML initialised, so `/metrics` carries per-GPU series.
    pub has_gpu_metrics: bool,
}

/// One series of `llamafleet_agent_prompt_tokens_cached_total`: where the tokens came from.
fn cached_tokens(source: &str) -> prometheus::Result<IntCounter> {
    IntCounter::with_opts(
        Opts::new(
            "llamafleet_agent_prompt_tokens_cached_total",
            "Prompt tokens not computed because a cache held them, by where: the slot's own \
             previous prompt, or a prefix shared from another slot",
        )
        .const_label("source", source),
    )
}

/// One series of `llamafleet_agent_decode_failures_total`: what came of a refused decode step.
fn decode_failures(outcome: &str) -> prometheus::Result<IntCounter> {
    IntCounter::with_opts(
        Opts::new(
            "llamafleet_agent_decode_failures_total",
            "Decode steps llama.cpp refused, by outcome: retried (the step was split in smaller \
             parts, by slot and then by prompt chunk) or failed (one request's tokens were refused \
             on their own: that request failed, the other slots went on)",
        )
        .const_label("outcome", outcome),
    )
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
}

impl ServeMetrics {
    /// Creates and registers everything in a fresh registry.
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "llamafleet_agent_http_requests_total",
                "HTTP requests by API, route and status",
            ),
            &["api", "route", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "llamafleet_agent_http_request_duration_seconds",
                "HTTP request duration including streaming, by API and route",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["api", "route"],
        )?;
        let engine = EngineMetrics {
            ttft: histogram(
                "llamafleet_agent_time_to_first_token_seconds",
                "Time from admission to the first generated token",
                LATENCY_BUCKETS,
            )?,
            inter_token: histogram(
                "llamafleet_agent_inter_token_latency_seconds",
                "Time between consecutive generated tokens of one stream",
                LATENCY_BUCKETS,
            )?,
            prompt_tokens: IntCounter::new(
                "llamafleet_agent_prompt_tokens_total",
                "Prompt tokens of finished generations",
            )?,
            generated_tokens: IntCounter::new(
                "llamafleet_agent_generated_tokens_total",
                "Tokens generated",
            )?,
            prompt_tokens_reused: cached_tokens("slot")?,
            prompt_tokens_shared: cached_tokens("shared")?,
            tokens_per_second: histogram(
                "llamafleet_agent_generation_tokens_per_second",
                "Generation speed of each request after its first token",
                TOKENS_PER_SECOND_BUCKETS,
            )?,
            // The variant HPA names this series (targetQueueDepth): one constant for both.
            queue_depth: IntGauge::new(
                llamafleet_crds::metrics::AGENT_QUEUE_DEPTH,
                "Requests accepted and waiting for a slot",
            )?,
            busy_slots: IntGauge::new("llamafleet_agent_slots_busy", "Slots in use")?,
            slots: IntGauge::new("llamafleet_agent_slots", "Parallel slots in total")?,
            kv_cells_used: IntGauge::new(
                "llamafleet_agent_kv_cache_used_cells",
                "Tokens the slots hold in the KV cache, reusable prefixes of idle slots included \
                 (a prefix shared by several slots is stored once, counted once per slot)",
            )?,
            kv_cells_total: IntGauge::new(
                "llamafleet_agent_kv_cache_cells",
                "KV cache cells in total (context per slot times slots)",
            )?,
            load_seconds: Gauge::new(
                "llamafleet_agent_model_load_seconds",
                "Seconds the llama.cpp model load took",
            )?,
            decode_retries: decode_failures("retried")?,
            decode_failures: decode_failures("failed")?,
        };
        let store = StoreMetrics::register(&registry)?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        let e = &engine;
        registry.register(Box::new(e.ttft.clone()))?;
        registry.register(Box::new(e.inter_token.clone()))?;
        registry.register(Box::new(e.prompt_tokens.clone()))?;
        registry.register(Box::new(e.generated_tokens.clone()))?;
        registry.register(Box::new(e.prompt_tokens_reused.clone()))?;
        registry.register(Box::new(e.prompt_tokens_shared.clone()))?;
        registry.register(Box::new(e.tokens_per_second.clone()))?;
        registry.register(Box::new(e.queue_depth.clone()))?;
        registry.register(Box::new(e.busy_slots.clone()))?;
        registry.register(Box::new(e.slots.clone()))?;
        registry.register(Box::new(e.kv_cells_used.clone()))?;
        registry.register(Box::new(e.kv_cells_total.clone()))?;
        registry.register(Box::new(e.load_seconds.clone()))?;
        registry.register(Box::new(e.decode_retries.clone()))?;
        registry.register(Box::new(e.decode_failures.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let gpu = GpuCollector::init();
        let has_gpu_metrics = gpu.is_some();
        if let Some(gpu) = gpu {
            registry.register(Box::new(gpu))?;
        }
        Ok(ServeMetrics {
            registry,
            requests,
            request_duration,
            engine,
            store,
            has_gpu_metrics,
        })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
