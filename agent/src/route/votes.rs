//! Votes of the A/B page: which variant's answer to a prompt was better, or a tie.
//!
//! A vote for `a` among the variants compared counts a win for `a` against each other one and a
//! loss for each other one against `a`; a tie counts a tie for every pair. The counts are
//! exported on `/metrics` (`llamafleet_router_votes_total`, summed over router replicas by
//! Prometheus) and summed here per variant for the page and `compare`; the votes themselves are
//! kept in memory (the newest [`KEPT_VOTES`] on this replica) for the JSON-lines download.
//! Only the prompt's SHA-256 is kept unless the voter opts in to keeping its text.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::metrics::RouterMetrics;

/// Votes kept for the download, per router replica (older ones are dropped; the counts stay).
pub const KEPT_VOTES: usize = 10_000;
/// Longest comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 4_000;
/// Most variants one vote compares (an LlmDeployment has at most four).
const MAX_VARIANTS: usize = 4;

/// A vote as the page posts it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteRequest {
    /// The prompt all variants answered (hashed; kept only with `keep_prompt`).
    pub prompt: String,
    /// Keep the prompt's text in the download.
    #[serde(default)]
    pub keep_prompt: bool,
    /// One entry per variant compared, in the page's order.
    pub answers: Vec<AnswerFigures>,
    /// The better variant; `null` for a tie.
    pub winner: Option<String>,
    /// The voter's note.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The figures of one variant's answer, as the page measured them (no answer text).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnswerFigures {
    /// Variant name.
    pub variant: String,
    /// Model that answered.
    #[serde(default)]
    pub model: Option<String>,
    /// Time to first token, milliseconds.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Decode speed.
    #[serde(default)]
    pub tokens_per_second: Option<f64>,
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens served from the KV cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// Whole answer, milliseconds.
    #[serde(default)]
    pub duration_ms: Option<f64>,
    /// Why the variant gave no answer.
    #[serde(default)]
    pub error: Option<String>,
}

/// One vote as kept and downloaded (a JSON line).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VoteRecord {
    /// When the router took it (RFC 3339).
    pub time: String,
    /// SHA-256 of the prompt, hex.
    pub prompt_sha256: String,
    /// The prompt, only when the voter opted in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prompt: Option<String>,
    /// The answers' figures.
    pub answers: Vec<AnswerFigures>,
    /// The better variant; absent for a tie.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub winner: Option<String>,
    /// The voter's note.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<String>,
}

/// Wins, losses and ties of a variant (against every other one it was compared with).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    /// Votes it won.
    pub wins: u64,
    /// Votes another variant won against it.
    pub losses: u64,
    /// Ties it was part of.
    pub ties: u64,
}

/// `GET /console/votes`: the counts on this replica.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VoteSummary {
    /// Votes taken since the router started.
    pub votes: u64,
    /// Per variant.
    pub variants: BTreeMap<String, Tally>,
    /// Per variant against another one (`variant` → `other` → tally of `variant`).
    pub pairs: BTreeMap<String, BTreeMap<String, Tally>>,
}

/// Why a vote was refused (the message names the field).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidVote(pub String);

/// The votes of this router replica.
#[derive(Debug, Default)]
pub struct Votes {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    summary: VoteSummary,
    kept: VecDeque<VoteRecord>,
}

impl Votes {
    /// Checks `vote` against the variants the router knows, counts it and keeps it.
    pub fn take(
        &self,
        vote: VoteRequest,
        known: &[&str],
        metrics: &RouterMetrics,
    ) -> Result<VoteRecord, InvalidVote> {
        check(&vote, known)?;
        let record = VoteRecord {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            prompt_sha256: hex::encode(Sha256::digest(vote.prompt.as_bytes())),
            prompt: vote.keep_prompt.then_some(vote.prompt),
            answers: vote.answers,
            winner: vote.winner,
            comment: vote.comment.filter(|c| !c.trim().is_empty()),
        };
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.summary.votes += 1;
        for (variant, other, outcome) in outcomes(&record) {
            metrics
                .votes
                .with_label_values(&[variant, other, outcome])
                .inc();
            let tally = inner
                .summary
                .pairs
                .entry(variant.to_owned())
                .or_default()
                .entry(other.to_owned())
                .or_default();
            match outcome {
                "win" => tally.wins += 1,
                "loss" => tally.losses += 1,
                _ => tally.ties += 1,
            }
        }
        if inner.kept.len() == KEPT_VOTES {
            inner.kept.pop_front();
        }
        inner.kept.push_back(record.clone());
        Ok(record)
    }

    /// The counts.
    pub fn summary(&self) -> VoteSummary {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut summary = inner.summary.clone();
        // Per variant is the sum of its pairs: derived here, not kept twice.
        for (variant, others) in &summary.pairs {
            let total = summary.variants.entry(variant.clone()).or_default();
            for t in others.values() {
                total.wins += t.wins;
                total.losses += t.losses;
                total.ties += t.ties;
            }
        }
        summary
    }

    /// The kept votes, oldest first, one JSON object per line.
    pub fn json_lines(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for record in &inner.kept {
            if let Ok(line) = serde_json::to_string(record) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

fn check(vote: &VoteRequest, known: &[&str]) -> Result<(), InvalidVote> {
    let invalid = |m: String| Err(InvalidVote(m));
    if vote.prompt.trim().is_empty() {
        return invalid("prompt: must not be empty".into());
    }
    let n = vote.answers.len();
    if !(2..=MAX_VARIANTS).contains(&n) {
        return invalid(format!(
            "answers: must compare 2 to {MAX_VARIANTS} variants, got {n}"
        ));
    }
    for (i, answer) in vote.answers.iter().enumerate() {
        if !known.contains(&answer.variant.as_str()) {
            return invalid(format!(
                "answers[{i}].variant: unknown variant {:?}",
                answer.variant
            ));
        }
        if vote.answers[..i]
            .iter()
            .any(|a| a.variant == answer.variant)
        {
            return invalid(format!(
                "answers[{i}].variant: {:?} is listed twice",
                answer.variant
            ));
        }
    }
    if let Some(winner) = &vote.winner
        && !vote.answers.iter().any(|a| &a.variant == winner)
    {
        return invalid(format!(
            "winner: {winner:?} is not among the answers' variants"
        ));
    }
    if let Some(comment) = &vote.comment
        && comment.chars().count() > MAX_COMMENT_CHARS
    {
        return invalid(format!(
            "comment: longer than {MAX_COMMENT_CHARS} characters"
        ));
    }
    Ok(())
}

/// (variant, other, outcome for variant) for every ordered pair of the vote's variants.
fn outcomes(record: &VoteRecord) -> Vec<(&str, &str, &'static str)> {
    let names: Vec<&str> = record.answers.iter().map(|a| a.variant.as_str()).collect();
    let mut out = Vec::new();
    for &variant in &names {
        for &other in names.iter().filter(|&&o| o != variant) {
            let outcome = match record.winner.as_deref() {
                None => "tie",
                Some(w) if w == variant => "win",
                Some(w) if w == other => "loss",
                // Another variant won: neither beat the other.
                Some(_) => continue,
            };
            out.push((variant, other, outcome));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn answer(variant: &str) -> AnswerFigures {
        AnswerFigures {
            variant: variant.into(),
            model: None,
            ttft_ms: Some(12.0),
            tokens_per_second: None,
            prompt_tokens: Some(5),
            cached_tokens: None,
            completion_tokens: Some(7),
            duration_ms: None,
            error: None,
        }
    }

    fn vote(variants: &[&str], winner: Option<&str>) -> VoteRequest {
        VoteRequest {
            prompt: "Is a verbal contract binding?".into(),
            keep_prompt: false,
            answers: variants.iter().map(|v| answer(v)).collect(),
            winner: winner.map(str::to_owned),
            comment: None,
        }
    }

    const KNOWN: [&str; 3] = ["blue", "green", "red"];

    #[test]
    fn a_win_counts_for_the_winner_against_each_other_and_a_tie_for_every_pair() {
        let votes = Votes::default();
        let metrics = RouterMetrics::new().unwrap();
        votes
            .take(vote(&["blue", "green"], Some("green")), &KNOWN, &metrics)
            .unwrap();
        votes
            .take(vote(&["blue", "green", "red"], None), &KNOWN, &metrics)
            .unwrap();
        votes
            .take(
                vote(&["blue", "green", "red"], Some("red")),
                &KNOWN,
                &metrics,
            )
            .unwrap();
        let s = votes.summary();
        assert_eq!(s.votes, 3);
        let t = |wins, losses, ties| Tally { wins, losses, ties };
        assert_eq!(s.variants["green"], t(1, 1, 2));
        assert_eq!(s.variants["blue"], t(0, 2, 2));
        assert_eq!(s.variants["red"], t(2, 0, 2));
        // Blue and green were both beaten by red in the third vote: no outcome between them.
        assert_eq!(s.pairs["green"]["blue"], t(1, 0, 1));
        let text = metrics.render().unwrap();
        assert!(
            text.contains(
                r#"llamafleet_router_votes_total{other="blue",outcome="win",variant="green"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn the_prompt_is_kept_only_as_its_hash_unless_asked() {
        let votes = Votes::default();
        let metrics = RouterMetrics::new().unwrap();
        let hidden = votes
            .take(vote(&["blue", "green"], None), &KNOWN, &metrics)
            .unwrap();
        assert_eq!(hidden.prompt, None);
        assert_eq!(
            hidden.prompt_sha256,
            hex::encode(Sha256::digest(b"Is a verbal contract binding?"))
        );
        let mut kept = vote(&["blue", "green"], Some("blue"));
        kept.keep_prompt = true;
        votes.take(kept, &KNOWN, &metrics).unwrap();
        let lines = votes.json_lines();
        let records: Vec<VoteRecord> = lines
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 2);
        assert!(!lines.lines().next().unwrap().contains("verbal"));
        assert_eq!(
            records[1].prompt.as_deref(),
            Some("Is a verbal contract binding?")
        );
    }

    #[test]
    fn a_vote_that_does_not_add_up_is_refused_by_field_and_counts_nothing() {
        let votes = Votes::default();
        let metrics = RouterMetrics::new().unwrap();
        let refused = |v: VoteRequest| votes.take(v, &KNOWN, &metrics).unwrap_err().0;
        assert!(refused(vote(&["blue"], None)).starts_with("answers: must compare 2 to 4"));
        assert!(
            refused(vote(&["blue", "purple"], None)).starts_with("answers[1].variant: unknown")
        );
        assert!(refused(vote(&["blue", "blue"], None)).contains("listed twice"));
        assert!(refused(vote(&["blue", "green"], Some("red"))).starts_with("winner:"));
        let mut long = vote(&["blue", "green"], None);
        long.comment = Some("x".repeat(MAX_COMMENT_CHARS + 1));
        assert!(refused(long).starts_with("comment:"));
        let mut empty = vote(&["blue", "green"], None);
        empty.prompt = " ".into();
        assert!(refused(empty).starts_with("prompt:"));
        assert_eq!(votes.summary(), VoteSummary::default());
        assert!(votes.json_lines().is_empty());
    }
}
