//! The report as Markdown: a summary table per variant, then one row per prompt and variant.

use std::fmt::Write;

use super::report::{Agreement, Report, VariantSummary};
use super::stats::Spread;
use super::votes::VotesReport;

/// Characters of a prompt or an answer shown in the per-prompt table.
const CELL_CHARS: usize = 80;

/// Renders `report` as Markdown.
pub fn render(report: &Report) -> String {
    let mut md = String::new();
    let s = &report.settings;
    let _ = writeln!(md, "# Variant comparison\n");
    let _ = writeln!(
        md,
        "{} prompts × {} repeats, max_tokens {}, temperature {}, concurrency {}. \
         Baseline: `{}`. Similarity: {}. Created {}.\n",
        report.prompts.len(),
        s.repeat,
        s.max_tokens,
        s.temperature,
        s.concurrency,
        report.baseline,
        report.similarity_method,
        report.created,
    );
    for v in &report.variants {
        let how = if v.pinned {
            " (pinned through the router)"
        } else {
            ""
        };
        let model = v.model.as_deref().unwrap_or("unknown");
        let _ = writeln!(md, "- `{}`: {}{how}, model `{model}`", v.name, v.url);
    }
    let _ = writeln!(md, "\n## Summary\n");
    let _ = writeln!(
        md,
        "| Variant | Requests | Errors | Latency ms p50 | p95 | TTFT ms p50 | p95 \
         | Tokens/s p50 | p95 | Length p50 | p95 | Exact match | Mean similarity |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for v in &report.summary {
        summary_row(&mut md, v);
    }
    let failing: Vec<&VariantSummary> = report.summary.iter().filter(|v| v.errors > 0).collect();
    if !failing.is_empty() {
        let _ = writeln!(md, "\n**Errors**\n");
        for v in failing {
            let first = v.first_error.as_deref().unwrap_or_default();
            let _ = writeln!(
                md,
                "- `{}`: {} of {} requests failed; first: {}",
                v.variant,
                v.errors,
                v.requests,
                cell(first, usize::MAX)
            );
        }
    }
    if let Some(votes) = &report.votes {
        votes_section(&mut md, votes);
    }
    let _ = writeln!(md, "\n## Prompts\n");
    let _ = writeln!(
        md,
        "| # | Prompt | Variant | Latency ms | TTFT ms | Tokens | Tokens/s | Exact | Similarity | Answer (first repeat) |"
    );
    let _ = writeln!(md, "|---:|---|---|---:|---:|---:|---:|---|---:|---|");
    for (i, p) in report.prompts.iter().enumerate() {
        for (v, pv) in p.variants.iter().enumerate() {
            let prompt = if v == 0 {
                cell(&p.prompt, CELL_CHARS)
            } else {
                String::new()
            };
            let number = if v == 0 {
                (i + 1).to_string()
            } else {
                String::new()
            };
            let (exact, similar) = agreement_cells(pv.agreement.as_ref());
            let Some(first) = pv.samples.first() else {
                continue;
            };
            let answer = match &first.error {
                Some(e) => format!("**error:** {}", cell(e, CELL_CHARS)),
                None => cell(&first.text, CELL_CHARS),
            };
            let _ = writeln!(
                md,
                "| {number} | {prompt} | `{}` | {} | {} | {} | {} | {exact} | {similar} | {answer} |",
                pv.variant,
                num(first.ok().then_some(first.latency_ms)),
                num(first.ttft_ms),
                first.tokens,
                num(first.tokens_per_second),
            );
        }
    }
    md
}

/// The A/B page's votes: what people judged, beside what was measured.
fn votes_section(md: &mut String, votes: &VotesReport) {
    let _ = writeln!(md, "\n## Votes on the A/B page\n");
    let _ = writeln!(
        md,
        "Read from {} (votes between these variants only).\n",
        votes.sources.join(", ")
    );
    let _ = writeln!(md, "| Variant | Wins | Losses | Ties |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for v in &votes.variants {
        let t = v.tally;
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} |",
            v.variant, t.wins, t.losses, t.ties
        );
    }
}

fn summary_row(md: &mut String, v: &VariantSummary) {
    let pair = |s: &Spread| format!("{} | {}", num(s.median), num(s.p95));
    let (exact, similar) = agreement_cells(v.agreement.as_ref());
    let _ = writeln!(
        md,
        "| `{}` | {} | {} | {} | {} | {} | {} | {exact} | {similar} |",
        v.variant,
        v.requests,
        v.errors,
        pair(&v.latency_ms),
        pair(&v.ttft_ms),
        pair(&v.tokens_per_second),
        pair(&v.length),
    );
}

/// Exact-match rate and mean similarity cells; the baseline reads "baseline".
fn agreement_cells(a: Option<&Agreement>) -> (String, String) {
    match a {
        None => ("baseline".into(), "baseline".into()),
        Some(a) => (
            a.exact_match_rate
                .map_or("–".into(), |r| format!("{:.0}%", r * 100.0)),
            a.mean_similarity.map_or("–".into(), |s| format!("{s:.3}")),
        ),
    }
}

fn num(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{v:.1}"))
}

/// Text fit for a table cell: one line, pipes escaped, cut to `max` characters.
fn cell(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(max).collect();
    if one_line.chars().count() > max {
        out.push('…');
    }
    out.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_stay_on_one_line_and_escape_pipes() {
        assert_eq!(cell("a | b\n\nc", 80), "a \\| b c");
        assert_eq!(cell("abcdef", 3), "abc…");
    }
}
