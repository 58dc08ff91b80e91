//! Judging one step (pure): the candidate's figures from the routers against
//! `spec.rollout.analysis`, relative to the other variants where a ratio.

use llamafleet_crds::RolloutAnalysis;
use llamafleet_crds::routing::{RouterStats, VariantStats};

/// Highest error rate when the analysis sets none: 1 in 20 failing is already an outage to a
/// user, yet tolerates the odd client disconnect on a small sample.
pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.05;
/// Candidate requests a step needs before it is judged, when the analysis sets none: fewer
/// make one failure a 10% error rate.
pub const DEFAULT_MIN_REQUESTS: u32 = 10;
/// Quantile of time to first token compared (what `maxTtftP95Ratio` names).
pub const TTFT_QUANTILE: f64 = 0.95;

/// What the analysis says about a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not enough to judge yet (too few requests, no router figures); the step goes on.
    Wait(String),
    /// Within every limit; the figures seen.
    Pass(String),
    /// A limit broken; which one, with the figures.
    Fail(String),
}

/// The figures of several variants added together (the stable side of a comparison).
pub fn combined(stats: &RouterStats, names: &[&str]) -> VariantStats {
    const STABLE: &str = "stable";
    let parts: Vec<RouterStats> = names
        .iter()
        .filter_map(|n| stats.variant(n))
        .map(|v| RouterStats {
            revision: stats.revision.clone(),
            seconds: stats.seconds,
            variants: vec![VariantStats {
                name: STABLE.into(),
                ..v.clone()
            }],
            idle_seconds: Default::default(),
        })
        .collect();
    RouterStats::merge(&stats.revision, &parts)
        .variant(STABLE)
        .cloned()
        .unwrap_or_default()
}

/// Judges the candidate's figures for one step against the limits, the ratios against the
/// stable figures. A ratio whose stable figure is missing (no stable request) is not
/// checked; a candidate without tokens counts as 0 tokens/s.
pub fn judge(limits: &RolloutAnalysis, candidate: &VariantStats, stable: &VariantStats) -> Verdict {
    let min_requests = limits.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS);
    if candidate.requests < u64::from(min_requests) {
        return Verdict::Wait(format!(
            "{} of {min_requests} candidate requests needed to judge the step",
            candidate.requests
        ));
    }
    let mut seen = vec![format!("{} candidate requests", candidate.requests)];
    let max_error_rate = limits.max_error_rate.unwrap_or(DEFAULT_MAX_ERROR_RATE);
    let error_rate = candidate.error_rate().unwrap_or(0.0);
    let errors = format!(
        "error rate {error_rate:.4} ({} of {})",
        candidate.errors, candidate.requests
    );
    if error_rate > max_error_rate {
        return Verdict::Fail(format!("{errors} is above maxErrorRate {max_error_rate}"));
    }
    seen.push(errors);
    if let Some(max) = limits.max_ttft_p95_ratio
        && let Some(base) = stable.ttft_quantile(TTFT_QUANTILE)
    {
        // No TTFT at all (every request failed before a token) is as slow as it gets.
        let mine = candidate
            .ttft_quantile(TTFT_QUANTILE)
            .unwrap_or(f64::INFINITY);
        let ratio = mine / base;
        let text = format!("TTFT p95 {mine}s vs {base}s (ratio {ratio:.2})");
        if ratio > max {
            return Verdict::Fail(format!("{text} is above maxTtftP95Ratio {max}"));
        }
        seen.push(text);
    }
    if let Some(min) = limits.min_tokens_per_second_ratio
        && let Some(base) = stable.tokens_per_second()
    {
        let mine = candidate.tokens_per_second().unwrap_or(0.0);
        let ratio = mine / base;
        let text = format!("{mine:.1} vs {base:.1} tokens/s (ratio {ratio:.2})");
        if ratio < min {
            return Verdict::Fail(format!("{text} is below minTokensPerSecondRatio {min}"));
        }
        seen.push(text);
    }
    Verdict::Pass(seen.join(", "))
}
