//! The analysis of one step (pure): the candidate's router figures against the limits, the
//! ratios against the stable variants, merged over router replicas on one revision.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_crds::RolloutAnalysis;
use llamafleet_crds::routing::{RouterStats, TTFT_BUCKETS, VariantStats};
use llamafleet_operator::rollout::analyse;
use llamafleet_operator::rollout::analysis::{Verdict, judge};

/// Figures of `requests` requests, `errors` failed, every first token within `ttft` seconds,
/// generating `tps` tokens per second.
fn figures(name: &str, requests: u64, errors: u64, ttft: f64, tps: f64) -> VariantStats {
    let answered = requests - errors;
    let mut buckets: Vec<u64> = TTFT_BUCKETS
        .iter()
        .map(|b| if *b >= ttft { answered } else { 0 })
        .collect();
    buckets.push(answered);
    VariantStats {
        name: name.into(),
        requests,
        errors,
        ttft_buckets: buckets,
        tokens: answered * 100,
        generation_seconds: answered as f64 * 100.0 / tps,
        shadow: None,
    }
}

fn limits() -> RolloutAnalysis {
    RolloutAnalysis {
        max_error_rate: Some(0.02),
        max_ttft_p95_ratio: Some(1.5),
        min_tokens_per_second_ratio: Some(0.8),
        min_requests: Some(50),
    }
}

#[test]
fn too_few_requests_wait_without_judgement() {
    let v = judge(
        &limits(),
        &figures("g", 49, 49, 0.1, 10.0),
        &figures("b", 500, 0, 0.1, 10.0),
    );
    assert_eq!(
        v,
        Verdict::Wait("49 of 50 candidate requests needed to judge the step".into())
    );
}

#[test]
fn each_limit_fails_with_its_figure() {
    let stable = figures("b", 500, 0, 0.1, 20.0);
    let errors = judge(&limits(), &figures("g", 100, 3, 0.1, 20.0), &stable);
    assert_eq!(
        errors,
        Verdict::Fail("error rate 0.0300 (3 of 100) is above maxErrorRate 0.02".into())
    );
    let slow_first_token = judge(&limits(), &figures("g", 100, 0, 0.25, 20.0), &stable);
    assert_eq!(
        slow_first_token,
        Verdict::Fail("TTFT p95 0.25s vs 0.1s (ratio 2.50) is above maxTtftP95Ratio 1.5".into())
    );
    let slow_tokens = judge(&limits(), &figures("g", 100, 0, 0.1, 15.0), &stable);
    assert_eq!(
        slow_tokens,
        Verdict::Fail(
            "15.0 vs 20.0 tokens/s (ratio 0.75) is below minTokensPerSecondRatio 0.8".into()
        )
    );
}

#[test]
fn within_limits_passes_with_the_figures_seen() {
    let v = judge(
        &limits(),
        &figures("g", 100, 2, 0.1, 18.0),
        &figures("b", 500, 0, 0.1, 20.0),
    );
    assert_eq!(
        v,
        Verdict::Pass(
            "100 candidate requests, error rate 0.0200 (2 of 100), TTFT p95 0.1s vs 0.1s \
             (ratio 1.00), 18.0 vs 20.0 tokens/s (ratio 0.90)"
                .into()
        )
    );
}

#[test]
fn ratios_without_stable_figures_and_unset_limits_are_not_checked() {
    let none = VariantStats::default();
    let v = judge(&limits(), &figures("g", 100, 0, 5.0, 1.0), &none);
    assert_eq!(
        v,
        Verdict::Pass("100 candidate requests, error rate 0.0000 (0 of 100)".into())
    );
    // Defaults: 10 requests, 5% errors.
    let v = judge(
        &RolloutAnalysis::default(),
        &figures("g", 10, 1, 0.1, 1.0),
        &none,
    );
    assert_eq!(
        v,
        Verdict::Fail("error rate 0.1000 (1 of 10) is above maxErrorRate 0.05".into())
    );
}

#[test]
fn replicas_are_merged_on_the_current_revision_only() {
    let rollout = llamafleet_crds::RolloutSpec {
        analysis: Some(limits()),
        ..Default::default()
    };
    let current = vec![("blue".to_string(), 90), ("green".to_string(), 10)];
    let replica = |revision: &str, g: VariantStats| RouterStats {
        revision: revision.into(),
        seconds: 60.0,
        variants: vec![figures("blue", 300, 0, 0.1, 20.0), g],
        idle_seconds: Default::default(),
    };
    // 30 + 30 candidate requests on the revision reach minRequests 50; the stale replica's
    // failures do not count.
    let replicas = [
        replica("blue=90,green=10", figures("green", 30, 0, 0.1, 20.0)),
        replica("blue=90,green=10", figures("green", 30, 0, 0.1, 20.0)),
        replica("blue=100,green=0", figures("green", 30, 30, 0.1, 20.0)),
    ];
    let v = analyse(
        &rollout,
        "green",
        &current,
        "blue=90,green=10",
        &replicas,
        3,
    );
    assert!(
        matches!(&v, Verdict::Pass(f) if f.starts_with("60 candidate requests")),
        "{v:?}"
    );
    let v = analyse(
        &rollout,
        "green",
        &current,
        "blue=90,green=10",
        &replicas[2..],
        3,
    );
    assert_eq!(
        v,
        Verdict::Wait(
            "no router figures for revision blue=90,green=10 yet (1 of 3 replicas answered)".into()
        )
    );
}
