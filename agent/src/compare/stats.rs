//! Order statistics and the answer similarity used by the report.

use serde::Serialize;

/// Median and 95th percentile of one measure; `None` when nothing was measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The middle value (mean of the two middle values for an even count).
    pub median: Option<f64>,
    /// Nearest-rank 95th percentile: a value that was actually observed.
    pub p95: Option<f64>,
}

impl Spread {
    /// The spread of `values` (their order does not matter).
    pub fn of(values: &[f64]) -> Self {
        Self {
            median: median(values),
            p95: percentile(values, 95.0),
        }
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The median of `values`, `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let v = sorted(values);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The nearest-rank `p`th percentile (0 < p <= 100) of `values`, `None` when empty.
///
/// Nearest rank rather than interpolation: with the few samples a comparison takes, an
/// interpolated p95 would be a latency nobody saw.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let v = sorted(values);
    if v.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

/// How alike two answers are, from 0 (nothing in common) to 1 (identical): the normalized
/// Levenshtein similarity of their characters (`strsim`). Two empty answers are identical.
pub fn similarity(a: &str, b: &str) -> f64 {
    strsim::normalized_levenshtein(a, b)
}

/// The arithmetic mean, `None` when empty.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn p95_is_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&hundred, 95.0), Some(95.0));
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&twenty, 95.0), Some(19.0));
        // Fewer than 20 samples: p95 is the largest.
        assert_eq!(percentile(&[5.0, 1.0, 9.0], 95.0), Some(9.0));
        assert_eq!(percentile(&[], 95.0), None);
        assert_eq!(
            Spread::of(&[2.0, 10.0, 4.0]),
            Spread {
                median: Some(4.0),
                p95: Some(10.0)
            }
        );
    }

    #[test]
    fn similarity_is_normalized_levenshtein() {
        assert_eq!(similarity("same answer", "same answer"), 1.0);
        assert_eq!(similarity("", ""), 1.0);
        assert_eq!(similarity("abc", ""), 0.0);
        // One substitution in four characters.
        assert!((similarity("kitt", "sitt") - 0.75).abs() < 1e-9);
        // Characters, not bytes: "é" is one edit.
        assert!((similarity("café", "cafe") - 0.75).abs() < 1e-9);
    }

    #[test]
    fn mean_of_values() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 0.5]), Some(0.75));
    }
}
