//! Prometheus metrics of the store (downloads, cache hits, evictions); `serve` exposes the
//! registry they are registered in.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

/// Download durations span seconds (small models on a LAN) to an hour (70B over the internet).
const DURATION_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Counters and histograms of model downloads.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Bytes received from sources (including resumed attempts).
    pub bytes_downloaded: IntCounter,
    /// Wall time of downloads that ended in a verified model.
    pub download_duration: Histogram,
    /// Downloads whose sha256 did not match.
    pub verify_failures: IntCounter,
    /// Fetch attempts (HEAD or GET) that failed, retried ones included: what the
    /// `LlamafleetDownloadFailing` alert watches besides verify failures.
    pub download_errors: IntCounter,
    /// Pulls answered from the cache.
    pub cache_hits: IntCounter,
    /// Pulls that had to fetch.
    pub cache_misses: IntCounter,
    /// Size of the file being downloaded, from Content-Length or Content-Range (0: unknown).
    pub download_size: IntGauge,
    /// Bytes of the file being downloaded that are written, a resumed prefix included.
    pub download_received: IntGauge,
    /// Cached models deleted to make room for a download.
    pub evictions: IntCounter,
    /// Bytes those evictions freed.
    pub evicted_bytes: IntCounter,
}

impl StoreMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self::unregistered()?;
        registry.register(Box::new(m.bytes_downloaded.clone()))?;
        registry.register(Box::new(m.download_duration.clone()))?;
        registry.register(Box::new(m.verify_failures.clone()))?;
        registry.register(Box::new(m.download_errors.clone()))?;
        registry.register(Box::new(m.cache_hits.clone()))?;
        registry.register(Box::new(m.cache_misses.clone()))?;
        registry.register(Box::new(m.download_size.clone()))?;
        registry.register(Box::new(m.download_received.clone()))?;
        registry.register(Box::new(m.evictions.clone()))?;
        registry.register(Box::new(m.evicted_bytes.clone()))?;
        Ok(m)
    }

    /// Metrics that nobody scrapes (CLI use).
    pub fn unregistered() -> prometheus::Result<Self> {
        Ok(StoreMetrics {
            bytes_downloaded: IntCounter::new(
                "llamafleet_agent_download_bytes_total",
                "Bytes of model data received from sources",
            )?,
            download_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "llamafleet_agent_download_duration_seconds",
                    "Wall time of model downloads that ended verified",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
            )?,
            verify_failures: IntCounter::new(
                "llamafleet_agent_verify_failures_total",
                "Model downloads rejected because their sha256 did not match",
            )?,
            download_errors: IntCounter::new(
                "llamafleet_agent_download_errors_total",
                "Failed attempts to fetch a model from its source, retried ones included",
            )?,
            cache_hits: IntCounter::new(
                "llamafleet_agent_cache_hits_total",
                "Model pulls answered from the cache",
            )?,
            cache_misses: IntCounter::new(
                "llamafleet_agent_cache_misses_total",
                "Model pulls that had to fetch",
            )?,
            download_size: IntGauge::new(
                "llamafleet_agent_download_size_bytes",
                "Size of the model file being downloaded (0 when unknown)",
            )?,
            download_received: IntGauge::new(
                "llamafleet_agent_download_received_bytes",
                "Bytes of the model file being downloaded received so far, resumed part included",
            )?,
            evictions: IntCounter::new(
                "llamafleet_agent_cache_evictions_total",
                "Cached models deleted to make room for a download (neither in use nor kept)",
            )?,
            evicted_bytes: IntCounter::new(
                "llamafleet_agent_cache_evicted_bytes_total",
                "Bytes freed by evicting cached models",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_gathers() {
        let registry = Registry::new();
        let m = StoreMetrics::register(&registry).expect("register");
        m.cache_hits.inc();
        let names: Vec<_> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        assert!(
            names.contains(&"llamafleet_agent_cache_hits_total".to_owned()),
            "{names:?}"
        );
        assert_eq!(names.len(), 10);
        assert!(names.contains(&"llamafleet_agent_download_errors_total".to_owned()));
        assert!(names.contains(&"llamafleet_agent_download_size_bytes".to_owned()));
        assert!(names.contains(&"llamafleet_agent_cache_evictions_total".to_owned()));
        assert!(
            StoreMetrics::register(&registry).is_err(),
            "double registration is refused"
        );
    }
}
