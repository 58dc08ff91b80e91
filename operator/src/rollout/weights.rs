//! Weight arithmetic of a progressive rollout (pure): the candidate's ladder of steps, and the
//! split of the rest between the other variants at each step.

/// Steps when `spec.rollout.steps` is empty (the CRD documents these): a small canary first,
/// then doubling, so a bad candidate meets a tenth of the traffic before it meets half.
pub const DEFAULT_STEPS: [u32; 4] = [10, 25, 50, 100];

/// Weights by variant, in spec order: `[("blue", 90), ("green", 10)]`.
pub type Weights = Vec<(String, i32)>;

/// `blue=90,green=10`, the same form as a routing revision and `status.weights`.
pub fn format(weights: &Weights) -> String {
    weights
        .iter()
        .map(|(name, w)| format!("{name}={w}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses [`format`]'s output; entries that do not parse are skipped (a hand-edited status
/// must not stop the reconcile: a missing variant counts as weight 0).
pub fn parse(text: &str) -> Weights {
    text.split(',')
        .filter_map(|pair| {
            let (name, w) = pair.split_once('=')?;
            Some((name.trim().to_string(), w.trim().parse().ok()?))
        })
        .collect()
}

/// Weight of `name` in `weights`, 0 when absent.
pub fn weight_of(weights: &Weights, name: &str) -> i32 {
    weights
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, w)| *w)
}

/// The weights the candidate takes in turn: the steps strictly between where it starts and
/// its target, then the target (so a step never asks more than the spec does).
pub fn ladder(steps: &[u32], from: i32, target: i32) -> Vec<i32> {
    let steps: Vec<i32> = if steps.is_empty() {
        DEFAULT_STEPS.iter().map(|s| *s as i32).collect()
    } else {
        steps
            .iter()
            .map(|s| i32::try_from(*s).unwrap_or(100))
            .collect()
    };
    let mut out: Vec<i32> = steps
        .into_iter()
        .filter(|s| *s > from && *s < target)
        .collect();
    out.push(target);
    out
}

/// Weights with the candidate at `w`: every other variant moves in a straight line from its
/// baseline weight (candidate at its baseline) to its spec weight (candidate at its target),
/// rounded so all weights sum to 100. Below the baseline (a rollback to 0) the line is
/// extended, never under 0.
pub fn at(spec: &Weights, baseline: &Weights, candidate: &str, w: i32) -> Weights {
    let from = weight_of(baseline, candidate);
    let target = weight_of(spec, candidate);
    let span = f64::from((target - from).max(1));
    let share = f64::from(target - w) / span;
    let raw: Vec<(usize, f64)> = spec
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| name != candidate)
        .map(|(i, (name, to))| {
            let start = f64::from(weight_of(baseline, name));
            let end = f64::from(*to);
            (i, (end + (start - end) * share).max(0.0))
        })
        .collect();
    let rest = 100 - w;
    let shares = largest_remainder(&raw, rest);
    spec.iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let weight = if name == candidate {
                w
            } else {
                shares.iter().find(|(j, _)| *j == i).map_or(0, |(_, s)| *s)
            };
            (name.clone(), weight)
        })
        .collect()
}

/// Splits `total` in proportion to `raw` in whole numbers (largest remainder, ties to the
/// earlier entry); equal parts when every proportion is 0.
fn largest_remainder(raw: &[(usize, f64)], total: i32) -> Vec<(usize, i32)> {
    if raw.is_empty() {
        return Vec::new();
    }
    let sum: f64 = raw.iter().map(|(_, r)| r).sum();
    let exact: Vec<f64> = raw
        .iter()
        .map(|(_, r)| {
            if sum > 0.0 {
                r / sum * f64::from(total)
            } else {
                f64::from(total) / raw.len() as f64
            }
        })
        .collect();
    let mut parts: Vec<i32> = exact.iter().map(|e| e.floor() as i32).collect();
    let mut left = total - parts.iter().sum::<i32>();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|a, b| {
        let (ra, rb) = (exact[*a] - exact[*a].floor(), exact[*b] - exact[*b].floor());
        rb.total_cmp(&ra).then(a.cmp(b))
    });
    for i in order.into_iter().cycle() {
        if left <= 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    raw.iter().map(|(i, _)| *i).zip(parts).collect()
}

/// The variant the spec gives the most more weight than it has (first in spec order on a
/// tie), with the weight it is to reach; `None` when no variant gains.
pub fn candidate(spec: &Weights, effective: &Weights) -> Option<(String, i32)> {
    let mut best: Option<(&str, i32, i32)> = None;
    for (name, target) in spec {
        let gain = target - weight_of(effective, name);
        if gain > 0 && best.is_none_or(|(_, g, _)| gain > g) {
            best = Some((name, gain, *target));
        }
    }
    best.map(|(name, _, target)| (name.to_string(), target))
}

/// Parses `30s`, `5m`, `1h` (the CRD's duration pattern).
pub fn parse_interval(text: &str) -> Option<std::time::Duration> {
    llamafleet_crds::validation::parse_duration(text)
}
