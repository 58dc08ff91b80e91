//! The rollout state machine (pure): where the last reconcile left the rollout (its status),
//! what the spec now asks, and — when a step is due — the analysis verdict, give the weights
//! in effect, the new `status.rollout` and the decision to announce.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use llamafleet_crds::{LlmDeploymentSpec, LlmDeploymentStatus, RolloutPhase, RolloutStatus};
use llamafleet_crds::{RolloutSpec, RolloutStrategy};

use super::analysis::Verdict;
use super::weights::{self, Weights};

/// Step length when `spec.rollout.interval` is not set: long enough for a few hundred requests
/// at modest traffic, short enough that four steps finish within half an hour.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
/// Longest wait before looking again at a due step that had too few requests to judge: each
/// look is one GET per router replica, so twice a minute costs nothing and adds little delay.
pub const RECHECK_MAX: Duration = Duration::from_secs(30);

/// A decision to announce as an Event and count in the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Warning (rollback) or Normal.
    pub warning: bool,
    /// Event reason.
    pub reason: &'static str,
    /// Event note.
    pub note: String,
    /// Label of `llamafleet_operator_rollout_decisions_total`.
    pub decision: &'static str,
}

/// What one reconcile does about the rollout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Weights in effect, in spec order (routing table and `status.variants[].weight`).
    pub weights: Weights,
    /// `status.rollout`; `None` for a `Manual` deployment.
    pub rollout: Option<RolloutStatus>,
    /// The decision taken, if any.
    pub notice: Option<Notice>,
    /// When the rollout next needs a look, if sooner than the usual resync.
    pub requeue: Option<Duration>,
    /// Variants to scale to 0 replicas now: left without traffic by a promotion (or an update
    /// handing its weight back), once every router stopped sending them requests (see
    /// [`super::drain`]).
    pub retire: Vec<String>,
}

/// Where a reconcile finds the rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Resumed {
    /// Nothing moves: weights as written, held after a rollback, or done.
    Settled(Outcome),
    /// A candidate on its way to its target.
    Active(Active),
}

/// A rollout in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    /// The variant gaining weight.
    pub candidate: String,
    pub(super) spec: Weights,
    pub(super) baseline: Weights,
    pub(super) ladder: Vec<i32>,
    /// Current step, from 1; 0 before the candidate is ready.
    pub(super) step: usize,
    pub(super) started_at: Option<Timestamp>,
    pub(super) previous: Option<RolloutStatus>,
    pub(super) generation: Option<i64>,
}

/// What the reconcile knows when it moves an active rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Now (seconds precision).
    pub now: Timestamp,
    /// The candidate's replicas are all ready.
    pub ready: bool,
    /// The analysis of the current step, when [`Active::wants_verdict`] asked for one.
    pub verdict: Option<Verdict>,
}

/// The spec's weights, in spec order.
pub fn spec_weights(spec: &LlmDeploymentSpec) -> Weights {
    spec.variants
        .iter()
        .map(|v| (v.name.clone(), v.weight))
        .collect()
}

/// Step length of a rollout spec.
pub fn interval(rollout: &RolloutSpec) -> Duration {
    rollout
        .interval
        .as_deref()
        .and_then(weights::parse_interval)
        .unwrap_or(DEFAULT_INTERVAL)
}

/// Picks up the rollout where the previous status left it.
pub fn resume(
    spec: &LlmDeploymentSpec,
    generation: Option<i64>,
    previous: Option<&LlmDeploymentStatus>,
) -> Resumed {
    let target = spec_weights(spec);
    let settled = |rollout| {
        Resumed::Settled(Outcome {
            weights: target.clone(),
            rollout,
            notice: None,
            requeue: None,
            retire: Vec::new(),
        })
    };
    let Some(rollout_spec) = spec
        .rollout
        .as_ref()
        .filter(|r| r.strategy == RolloutStrategy::Progressive)
    else {
        return settled(None);
    };
    let last = previous.and_then(|s| s.rollout.clone());
    let effective: Weights = match previous.filter(|s| !s.variants.is_empty()) {
        // Nothing served yet: there is no traffic to protect.
        None => {
            return settled(Some(last.unwrap_or_else(|| RolloutStatus {
                phase: Some(RolloutPhase::Stable),
                generation,
                ..RolloutStatus::default()
            })));
        }
        Some(s) => spec
            .variants
            .iter()
            .map(|v| {
                let w = s.variants.iter().find(|x| x.name == v.name);
                (v.name.clone(), w.and_then(|x| x.weight).unwrap_or(0))
            })
            .collect(),
    };
    if let Some(r) = &last
        && let (Some(phase), Some(candidate)) = (r.phase, r.candidate.as_deref())
    {
        let baseline = weights::parse(r.baseline.as_deref().unwrap_or_default());
        let from = weights::weight_of(&baseline, candidate);
        let to = weights::weight_of(&target, candidate);
        let in_spec = target.iter().any(|(n, _)| n == candidate);
        match phase {
            RolloutPhase::Progressing | RolloutPhase::Paused if in_spec && to > from => {
                let ladder = weights::ladder(&rollout_spec.steps, from, to);
                let step = (r.step.unwrap_or(0) as usize).min(ladder.len());
                return Resumed::Active(Active {
                    candidate: candidate.to_string(),
                    spec: target,
                    baseline,
                    ladder,
                    step,
                    started_at: r.step_started_at.as_ref().map(|t| t.0),
                    previous: last.clone(),
                    generation,
                });
            }
            // Held until the spec changes: no retry loop.
            RolloutPhase::RolledBack if r.generation == generation && in_spec => {
                return Resumed::Settled(Outcome {
                    weights: weights::at(&target, &baseline, candidate, 0),
                    rollout: last.clone(),
                    notice: None,
                    requeue: None,
                    retire: Vec::new(),
                });
            }
            _ => {}
        }
    }
    match weights::candidate(&target, &effective) {
        None => settled(Some(last.unwrap_or_else(|| RolloutStatus {
            phase: Some(RolloutPhase::Stable),
            generation,
            ..RolloutStatus::default()
        }))),
        Some((candidate, to)) => {
            let from = weights::weight_of(&effective, &candidate);
            Resumed::Active(Active {
                ladder: weights::ladder(&rollout_spec.steps, from, to),
                candidate,
                spec: target,
                baseline: effective,
                step: 0,
                started_at: None,
                previous: None,
                generation,
            })
        }
    }
}

/// Variants a promoted rollout left with weight 0 that served before it: scaled to 0
/// replicas (their objects are kept, so moving weight back needs no new objects). A shadow
/// target keeps its replicas.
pub fn retired(spec: &LlmDeploymentSpec, rollout: Option<&RolloutStatus>) -> Vec<String> {
    let Some(r) = rollout.filter(|r| r.phase == Some(RolloutPhase::Promoted)) else {
        return Vec::new();
    };
    let baseline = weights::parse(r.baseline.as_deref().unwrap_or_default());
    let shadow = spec
        .rollout
        .as_ref()
        .and_then(|r| r.shadow.as_ref())
        .map(|s| s.variant.as_str());
    spec.variants
        .iter()
        .filter(|v| v.weight == 0 && weights::weight_of(&baseline, &v.name) > 0)
        .filter(|v| Some(v.name.as_str()) != shadow)
        .map(|v| v.name.clone())
        .collect()
}

impl Active {
    /// The candidate's weight now.
    pub fn weight(&self) -> i32 {
        match self.step {
            0 => weights::weight_of(&self.baseline, &self.candidate),
            k => self.ladder[k - 1],
        }
    }

    /// Weights in effect at the current step.
    pub fn weights(&self) -> Weights {
        weights::at(&self.spec, &self.baseline, &self.candidate, self.weight())
    }

    /// True when the current step is due for judgement (the caller then fetches the router
    /// figures and passes a verdict in the [`Tick`]).
    pub fn wants_verdict(&self, rollout: &RolloutSpec, now: Timestamp) -> bool {
        self.step > 0
            && rollout.paused != Some(true)
            && rollout.promote.as_deref() != Some(self.candidate.as_str())
            && self.remaining(rollout, now).is_zero()
    }

    pub(super) fn remaining(&self, rollout: &RolloutSpec, now: Timestamp) -> Duration {
        let started = self.started_at.map_or(0, |t| t.as_second());
        let elapsed = u64::try_from(now.as_second() - started).unwrap_or(0);
        interval(rollout).saturating_sub(Duration::from_secs(elapsed))
    }
}
