//! The chart's dashboard and alerts query only series the agent exports: `serve`'s and the
//! router's registries as `/metrics` renders them (one series in every family), plus the GPU
//! families, which exist only where NVML does. A renamed series fails here instead of leaving
//! a panel empty or an alert silent. The operator's side is `tests/e2e/chart.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use llamafleet_agent::route::metrics::RouterMetrics;
use llamafleet_agent::route::stats::Outcome;
use llamafleet_agent::serve::gpu;
use llamafleet_agent::serve::metrics::ServeMetrics;
use llamafleet_crds::metrics::PROMETHEUS_TARGET_LABELS;
use llamafleet_crds::testing::{chart_metric_names, exposition_labels};

/// Labels the agents ServiceMonitor (charts/llamafleet/templates/servicemonitor.yaml) puts on
/// every agent series besides Prometheus Operator's own target labels: its relabelings. It
/// does not honour labels, so a series carrying one of these would arrive renamed
/// `exported_<label>`.
const RELABELED: [&str; 3] = ["llmdeployment", "component", "variant"];

fn set_by_the_scrape(label: &str) -> bool {
    PROMETHEUS_TARGET_LABELS.contains(&label) || RELABELED.contains(&label)
}

/// `serve`'s families with their labels, every vector given a series.
fn serve_families() -> BTreeMap<String, BTreeSet<String>> {
    let m = ServeMetrics::new().unwrap();
    m.requests
        .with_label_values(&["openai", "/v1/chat/completions", "200"])
        .inc();
    m.request_duration
        .with_label_values(&["openai", "/v1/chat/completions"])
        .observe(0.5);
    let mut families = exposition_labels(&m.render());
    for name in gpu::FAMILIES {
        let labels = gpu::LABELS.iter().map(|l| l.to_string()).collect();
        families.insert(name.to_string(), labels);
    }
    families
}

/// The router's families with their labels, every vector given a series.
fn router_families() -> BTreeMap<String, BTreeSet<String>> {
    let m = RouterMetrics::new().unwrap();
    m.record(
        "blue",
        &Outcome {
            error: true,
            ttft: Some(Duration::from_millis(100)),
            tokens: 10,
            generation: Duration::from_secs(1),
            duration: Duration::from_secs(2),
        },
    );
    m.rate_limited
        .with_label_values(&["free", "requests"])
        .inc();
    m.shadow_requests.with_label_values(&["green", "ok"]).inc();
    m.shadow_exact.with_label_values(&["green"]).inc();
    m.shadow_similarity
        .with_label_values(&["green"])
        .observe(0.9);
    m.reloads.with_label_values(&["table", "ok"]).inc();
    m.retries.with_label_values(&["blue", "connect"]).inc();
    m.ejections.with_label_values(&["blue"]).inc();
    m.ejected.with_label_values(&["blue"]).set(1);
    m.replica_choices
        .with_label_values(&["blue", "prefix"])
        .inc();
    m.replicas.with_label_values(&["blue"]).set(2);
    m.replica_ejections.with_label_values(&["blue"]).inc();
    exposition_labels(&m.render().unwrap())
}

#[test]
fn chart_queries_only_series_the_agent_exports() {
    let serve = serve_families();
    let router = router_families();
    let used = chart_metric_names();
    for name in used.iter().filter(|n| n.starts_with("llamafleet_agent_")) {
        assert!(
            serve.contains_key(name),
            "the chart queries {name}; serve does not export it"
        );
    }
    for name in used.iter().filter(|n| n.starts_with("llamafleet_router_")) {
        assert!(
            router.contains_key(name),
            "the chart queries {name}; the router does not export it"
        );
    }
    // The queue-depth HPA names the same series (llamafleet_crds::metrics).
    assert!(serve.contains_key(llamafleet_crds::metrics::AGENT_QUEUE_DEPTH));
}

#[test]
fn agent_series_carry_no_label_the_scrape_sets() {
    for (name, labels) in serve_families() {
        for label in &labels {
            assert!(!set_by_the_scrape(label), "{name} carries {label}");
        }
    }
    // The router's per-variant series keep `variant`: the router's Service has no variant
    // label, so the scrape sets none (operator/tests/builders.rs holds that).
    for (name, labels) in router_families() {
        for label in labels.iter().filter(|l| *l != "variant") {
            assert!(!set_by_the_scrape(label), "{name} carries {label}");
        }
    }
}
