//! The report: every sample, agreement with the baseline, and a summary per variant.

use serde::Serialize;

use super::request::Sample;
use super::stats::{Spread, mean, similarity};
use super::votes::VotesReport;

/// How the answers were compared (written into the report).
pub const SIMILARITY_METHOD: &str = "normalized Levenshtein similarity of the answer characters";

/// The whole comparison, as written to `<out>.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the comparison finished (RFC 3339, UTC).
    pub created: String,
    /// The variant the others are compared with (the first listed).
    pub baseline: String,
    /// How `similarity` is computed.
    pub similarity_method: &'static str,
    /// What was asked for.
    pub settings: Settings,
    /// The variants, baseline first.
    pub variants: Vec<VariantInfo>,
    /// Per prompt, per variant: the samples and their agreement with the baseline.
    pub prompts: Vec<PromptResult>,
    /// Per variant, over all prompts.
    pub summary: Vec<VariantSummary>,
    /// The A/B page's votes between these variants (`--votes-from`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub votes: Option<VotesReport>,
}

/// The request settings shared by every request.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Times each prompt was sent to each variant.
    pub repeat: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
}

/// One variant and how it was reached.
#[derive(Debug, Clone, Serialize)]
pub struct VariantInfo {
    /// Its name.
    pub name: String,
    /// The URL requests went to.
    pub url: String,
    /// Whether requests were pinned with the router's variant header.
    pub pinned: bool,
    /// The model name requested (`None` when it could not be found out).
    pub model: Option<String>,
}

/// One prompt's results.
#[derive(Debug, Clone, Serialize)]
pub struct PromptResult {
    /// The prompt as shown (text, or the last user message).
    pub prompt: String,
    /// Per variant, in variant order.
    pub variants: Vec<PromptVariant>,
}

/// One variant's answers to one prompt.
#[derive(Debug, Clone, Serialize)]
pub struct PromptVariant {
    /// The variant's name.
    pub variant: String,
    /// One per repeat.
    pub samples: Vec<Sample>,
    /// Against the baseline's samples of the same repeat (`None` for the baseline itself).
    pub agreement: Option<Agreement>,
}

/// How far a variant's answers agree with the baseline's; only pairs where both succeeded count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    /// Pairs compared.
    pub compared: usize,
    /// Share of pairs with identical text (`None` when none compared).
    pub exact_match_rate: Option<f64>,
    /// Mean similarity of the pairs (`None` when none compared).
    pub mean_similarity: Option<f64>,
}

impl Agreement {
    fn of(pairs: &[(bool, f64)]) -> Self {
        let exact: Vec<f64> = pairs.iter().map(|p| f64::from(u8::from(p.0))).collect();
        let similar: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        Self {
            compared: pairs.len(),
            exact_match_rate: mean(&exact),
            mean_similarity: mean(&similar),
        }
    }
}

/// One variant over all prompts; the spreads cover successful requests only.
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    /// The variant's name.
    pub variant: String,
    /// Requests sent (or that could not be sent).
    pub requests: usize,
    /// Requests that failed.
    pub errors: usize,
    /// The first failure's message, if any.
    pub first_error: Option<String>,
    /// Total request time, milliseconds.
    pub latency_ms: Spread,
    /// Time to the first answer text, milliseconds.
    pub ttft_ms: Spread,
    /// Output tokens per second after the first.
    pub tokens_per_second: Spread,
    /// Answer length in characters.
    pub length: Spread,
    /// Against the baseline over all prompts (`None` for the baseline itself).
    pub agreement: Option<Agreement>,
}

/// (exact match, similarity) of each repeat where both the baseline and the variant succeeded.
fn pairs(baseline: &[Sample], other: &[Sample]) -> Vec<(bool, f64)> {
    baseline
        .iter()
        .zip(other)
        .filter(|(a, b)| a.ok() && b.ok())
        .map(|(a, b)| (a.text == b.text, similarity(&a.text, &b.text)))
        .collect()
}

impl Report {
    /// Builds the report from `samples[prompt][variant][repeat]`.
    pub fn build(
        settings: Settings,
        variants: Vec<VariantInfo>,
        prompts: Vec<String>,
        samples: Vec<Vec<Vec<Sample>>>,
    ) -> Self {
        let results: Vec<PromptResult> = prompts
            .into_iter()
            .zip(samples)
            .map(|(prompt, per_variant)| PromptResult {
                prompt,
                variants: variants
                    .iter()
                    .zip(&per_variant)
                    .enumerate()
                    .map(|(v, (info, samples))| PromptVariant {
                        variant: info.name.clone(),
                        samples: samples.clone(),
                        agreement: (v > 0).then(|| Agreement::of(&pairs(&per_variant[0], samples))),
                    })
                    .collect(),
            })
            .collect();
        let summary = variants
            .iter()
            .enumerate()
            .map(|(v, info)| summarize(&info.name, v, &results))
            .collect();
        Self {
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            baseline: variants.first().map(|v| v.name.clone()).unwrap_or_default(),
            similarity_method: SIMILARITY_METHOD,
            settings,
            variants,
            prompts: results,
            summary,
            votes: None,
        }
    }

    /// Variants none of whose requests succeeded.
    pub fn all_failed(&self) -> Vec<&VariantSummary> {
        self.summary
            .iter()
            .filter(|s| s.errors == s.requests)
            .collect()
    }
}

fn summarize(name: &str, v: usize, results: &[PromptResult]) -> VariantSummary {
    let samples: Vec<&Sample> = results
        .iter()
        .flat_map(|r| &r.variants[v].samples)
        .collect();
    let ok: Vec<&Sample> = samples.iter().copied().filter(|s| s.ok()).collect();
    let spread = |f: &dyn Fn(&Sample) -> Option<f64>| {
        Spread::of(&ok.iter().filter_map(|s| f(s)).collect::<Vec<_>>())
    };
    let all_pairs: Vec<(bool, f64)> = results
        .iter()
        .flat_map(|r| pairs(&r.variants[0].samples, &r.variants[v].samples))
        .collect();
    VariantSummary {
        variant: name.to_owned(),
        requests: samples.len(),
        errors: samples.len() - ok.len(),
        first_error: samples.iter().find_map(|s| s.error.clone()),
        latency_ms: spread(&|s| Some(s.latency_ms)),
        ttft_ms: spread(&|s| s.ttft_ms),
        tokens_per_second: spread(&|s| s.tokens_per_second),
        length: spread(&|s| Some(s.length as f64)),
        agreement: (v > 0).then(|| Agreement::of(&all_pairs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str, latency_ms: f64) -> Sample {
        Sample {
            latency_ms,
            text: text.to_owned(),
            ..Sample::default()
        }
    }

    fn info(name: &str) -> VariantInfo {
        VariantInfo {
            name: name.to_owned(),
            url: "http://127.0.0.1:1/".to_owned(),
            pinned: false,
            model: None,
        }
    }

    #[test]
    fn agreement_pairs_repeats_and_skips_failures() {
        let settings = Settings {
            max_tokens: 8,
            temperature: 0.0,
            repeat: 3,
            concurrency: 1,
        };
        let base = vec![ok("abcd", 10.0), ok("same", 20.0), ok("x", 30.0)];
        let other = vec![
            ok("abcx", 40.0),
            ok("same", 50.0),
            Sample::failed("refused".to_owned()),
        ];
        let report = Report::build(
            settings,
            vec![info("a"), info("b")],
            vec!["p".to_owned()],
            vec![vec![base, other]],
        );
        let agreement = report.prompts[0].variants[1].agreement.expect("b vs a");
        assert_eq!(agreement.compared, 2);
        assert_eq!(agreement.exact_match_rate, Some(0.5));
        assert_eq!(agreement.mean_similarity, Some((0.75 + 1.0) / 2.0));
        assert_eq!(report.prompts[0].variants[0].agreement, None);
        let b = &report.summary[1];
        assert_eq!((b.requests, b.errors), (3, 1));
        assert_eq!(b.first_error.as_deref(), Some("refused"));
        assert_eq!(
            b.latency_ms.median,
            Some(45.0),
            "failed samples are left out"
        );
        assert_eq!(b.agreement, Some(agreement));
        assert!(report.all_failed().is_empty());
    }
}
