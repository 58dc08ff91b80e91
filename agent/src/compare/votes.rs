//! The A/B page's votes in the report: read from routers (`GET /console/votes`), summed over
//! them (one URL per router replica: each counts the votes it took), and kept only between the
//! variants being compared.

use serde::Serialize;
use url::Url;

use super::Target;
use super::request::Client;
use crate::route::votes::{Tally, VoteSummary};

/// The votes section of the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VotesReport {
    /// The routers read.
    pub sources: Vec<String>,
    /// Per compared variant: its outcomes against the other compared variants.
    pub variants: Vec<VariantVotes>,
}

/// One variant's votes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VariantVotes {
    /// The variant.
    pub variant: String,
    /// Wins, losses and ties against the other compared variants.
    #[serde(flatten)]
    pub tally: Tally,
}

/// Reads every router's counts; the first that cannot be read is the error.
pub async fn read(
    client: &Client,
    routers: &[Url],
    targets: &[Target],
) -> Result<VotesReport, (String, String)> {
    let mut summaries = Vec::new();
    for router in routers {
        let summary = client
            .votes(router)
            .await
            .map_err(|e| (router.to_string(), e))?;
        summaries.push(summary);
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    Ok(VotesReport {
        sources: routers.iter().map(Url::to_string).collect(),
        variants: names
            .iter()
            .map(|&variant| VariantVotes {
                variant: variant.to_owned(),
                tally: among(&summaries, variant, &names),
            })
            .collect(),
    })
}

/// `variant`'s outcomes against the other `names`, summed over `summaries`.
fn among(summaries: &[VoteSummary], variant: &str, names: &[&str]) -> Tally {
    let mut sum = Tally::default();
    let against = summaries
        .iter()
        .filter_map(|s| s.pairs.get(variant))
        .flat_map(|others| others.iter())
        .filter(|(other, _)| names.contains(&other.as_str()) && other.as_str() != variant);
    for (_, t) in against {
        sum.wins += t.wins;
        sum.losses += t.losses;
        sum.ties += t.ties;
    }
    sum
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn summary(pairs: &[(&str, &str, Tally)]) -> VoteSummary {
        let mut s = VoteSummary::default();
        for (variant, other, tally) in pairs {
            s.pairs
                .entry((*variant).to_owned())
                .or_insert_with(BTreeMap::new)
                .insert((*other).to_owned(), *tally);
        }
        s
    }

    #[test]
    fn votes_are_summed_over_routers_and_kept_between_the_compared_variants() {
        let t = |wins, losses, ties| Tally { wins, losses, ties };
        let one = summary(&[("blue", "green", t(2, 1, 1)), ("blue", "red", t(5, 0, 0))]);
        let two = summary(&[("blue", "green", t(1, 0, 3))]);
        assert_eq!(among(&[one, two], "blue", &["blue", "green"]), t(3, 1, 4));
    }
}
