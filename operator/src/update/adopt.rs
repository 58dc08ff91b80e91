//! The model's side of an update rollout (pure): reads the rollouts of the deployments the
//! candidate goes to and says whether it was promoted in all of them, rolled back in one, or
//! is still on its way.

use llamafleet_crds::{Candidate, LlmDeployment, RolloutPhase};

use super::derive::fits;
use super::{candidate_tag, progressive, updated_variants, variant_name};

/// Where a candidate's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still rolling out (or no deployment rolls it out any more).
    Pending {
        /// The deployments that promoted it so far.
        promoted_in: Vec<String>,
        /// The deployments still rolling it out.
        waiting: Vec<String>,
    },
    /// Every deployment that rolls it out promoted it.
    Promoted {
        /// Those deployments.
        promoted_in: Vec<String>,
    },
    /// A deployment rolled it back: which, and the failing figure.
    RolledBack(String),
}

/// Judges the candidate of `model` from the deployments of its namespace. A deployment of
/// `rolloutTo` that is gone, no longer progressive, no longer serves the model or has no room
/// for its update variants is not waited for.
pub fn judge(model: &str, candidate: &Candidate, deployments: &[LlmDeployment]) -> Verdict {
    let tag = candidate_tag(candidate);
    let mut promoted_in = Vec::new();
    let mut waiting = Vec::new();
    for name in &candidate.rollout_to {
        let Some(d) = deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name.as_str()))
            .filter(|d| progressive(&d.spec))
        else {
            continue;
        };
        let updates: Vec<(String, i32)> = updated_variants(&d.spec, model)
            .map(|v| (variant_name(&v.name, &tag), v.weight))
            .collect();
        // A deployment that cannot hold its update variants said so (UpdateSkipped) and
        // does not roll the candidate out: it is not waited for.
        let room = (0..updates.len()).all(|k| {
            let (update, _) = &updates[k];
            fits(name, update, d.spec.variants.len() + k).is_ok()
        });
        if updates.is_empty() || !room {
            continue;
        }
        let status = d.status.as_ref();
        let rollout = status.and_then(|s| s.rollout.as_ref());
        if let Some(r) = rollout.filter(|r| r.phase == Some(RolloutPhase::RolledBack))
            && updates
                .iter()
                .any(|(u, _)| r.candidate.as_deref() == Some(u.as_str()))
        {
            let why = r.reason.as_deref().unwrap_or("rolled back");
            return Verdict::RolledBack(format!("rolled back in {name}: {why}"));
        }
        let moving = rollout.is_some_and(|r| {
            matches!(
                r.phase,
                Some(RolloutPhase::Progressing | RolloutPhase::Paused)
            )
        });
        let carried = updates.iter().all(|(u, w)| {
            status.is_some_and(|s| {
                s.variants
                    .iter()
                    .any(|x| &x.name == u && x.weight == Some(*w))
            })
        });
        if carried && !moving {
            promoted_in.push(name.clone());
        } else {
            waiting.push(name.clone());
        }
    }
    if !waiting.is_empty() || promoted_in.is_empty() {
        Verdict::Pending {
            promoted_in,
            waiting,
        }
    } else {
        Verdict::Promoted { promoted_in }
    }
}
