//! One move of an active rollout (pure): start, hold, pause, judge, advance, promote or roll
//! back.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use llamafleet_crds::{RolloutPhase, RolloutSpec, RolloutStatus};

use super::analysis::Verdict;
use super::state::{Active, Notice, Outcome, RECHECK_MAX, Tick, interval};
use super::weights;

/// Decision label of a rollback.
pub const ROLLED_BACK: &str = "rolled_back";

/// Re-check of a rollout waiting for its candidate's replicas; the same as the resync of a
/// starting deployment (their Deployment's status changes also trigger a reconcile).
pub const WAIT_READY: Duration = Duration::from_secs(15);

fn notice(reason: &'static str, decision: &'static str, note: String) -> Option<Notice> {
    Some(Notice {
        warning: false,
        reason,
        note,
        decision,
    })
}

impl Active {
    fn of_ladder(&self) -> String {
        format!("step {} of {}", self.step, self.ladder.len())
    }

    fn status(&self, phase: RolloutPhase, decision: String, reason: String) -> RolloutStatus {
        RolloutStatus {
            phase: Some(phase),
            candidate: Some(self.candidate.clone()),
            step: Some(u32::try_from(self.step).unwrap_or(u32::MAX)),
            step_started_at: self.started_at.map(Time),
            baseline: Some(weights::format(&self.baseline)),
            generation: self.generation,
            last_decision: Some(decision),
            reason: Some(reason),
        }
    }

    fn outcome(
        &self,
        phase: RolloutPhase,
        decision: String,
        reason: String,
        notice: Option<Notice>,
        requeue: Option<Duration>,
    ) -> Outcome {
        Outcome {
            weights: self.weights(),
            rollout: Some(self.status(phase, decision, reason)),
            notice,
            requeue,
            retire: Vec::new(),
        }
    }

    /// The previous decision, kept while nothing new is decided.
    fn last_decision(&self) -> String {
        self.previous
            .as_ref()
            .and_then(|p| p.last_decision.clone())
            .unwrap_or_default()
    }

    fn promote(mut self, why: &str, now: Time) -> Outcome {
        self.step = self.ladder.len();
        self.started_at = Some(now.0);
        let target = self.weight();
        let note = format!(
            "{} promoted to {target}% ({why}); weights {}",
            self.candidate,
            weights::format(&self.weights())
        );
        let n = notice("RolloutPromoted", "promoted", note.clone());
        let decision = format!("promoted at {target}%");
        self.outcome(RolloutPhase::Promoted, decision, note, n, None)
    }

    /// Enters step `k` (from 1), to be judged after `interval`; a step of 100% is the
    /// promotion (nothing left to compare).
    fn enter(
        mut self,
        k: usize,
        now: Time,
        why: String,
        first: bool,
        interval: Duration,
    ) -> Outcome {
        self.step = k;
        self.started_at = Some(now.0);
        if self.weight() == 100 {
            return self.promote(&why, now);
        }
        let w = self.weight();
        let (reason, decision, label) = if first {
            ("RolloutStarted", format!("started at {w}%"), "started")
        } else {
            ("RolloutAdvanced", format!("advanced to {w}%"), "advanced")
        };
        let note = format!(
            "{}: {w}% ({}); {why}; weights {}",
            self.candidate,
            self.of_ladder(),
            weights::format(&self.weights())
        );
        let n = notice(reason, label, note.clone());
        self.outcome(RolloutPhase::Progressing, decision, note, n, Some(interval))
    }

    /// Moves the rollout one reconcile on.
    pub fn tick(self, rollout: &RolloutSpec, tick: Tick) -> Outcome {
        let now = Time(tick.now);
        if self.step == 0 && !tick.ready {
            return self.pending();
        }
        if rollout.promote.as_deref() == Some(self.candidate.as_str()) {
            return self.promote("spec.rollout.promote", now);
        }
        let was_paused = self.previous.as_ref().and_then(|p| p.phase) == Some(RolloutPhase::Paused);
        if rollout.paused == Some(true) {
            let w = self.weight();
            let (decision, n) = if was_paused {
                (self.last_decision(), None)
            } else {
                let note = format!("{} held at {w}% by spec.rollout.paused", self.candidate);
                (
                    format!("paused at {w}%"),
                    notice("RolloutPaused", "paused", note),
                )
            };
            let why = format!("held at {w}% by spec.rollout.paused");
            return self.outcome(RolloutPhase::Paused, decision, why, n, None);
        }
        if self.step == 0 {
            let why = format!(
                "from {} towards {}",
                weights::format(&self.baseline),
                weights::format(&self.spec)
            );
            return self.enter(1, now, why, true, interval(rollout));
        }
        let resumed = was_paused.then(|| {
            let w = self.weight();
            let note = format!("{} resumed at {w}% ({})", self.candidate, self.of_ladder());
            (format!("resumed at {w}%"), note)
        });
        let remaining = self.remaining(rollout, tick.now);
        match tick.verdict {
            _ if !remaining.is_zero() => {
                let (decision, n, why) = match resumed {
                    Some((d, note)) => (d, notice("RolloutResumed", "resumed", note.clone()), note),
                    None => (
                        self.last_decision(),
                        None,
                        self.previous
                            .as_ref()
                            .and_then(|p| p.reason.clone())
                            .unwrap_or_default(),
                    ),
                };
                self.outcome(RolloutPhase::Progressing, decision, why, n, Some(remaining))
            }
            None | Some(Verdict::Wait(_)) => {
                let why = match tick.verdict {
                    Some(Verdict::Wait(why)) => why,
                    _ => "no analysis yet".into(),
                };
                let (decision, n) = match resumed {
                    Some((d, note)) => (d, notice("RolloutResumed", "resumed", note)),
                    None => (self.last_decision(), None),
                };
                let recheck = interval(rollout).min(RECHECK_MAX);
                self.outcome(RolloutPhase::Progressing, decision, why, n, Some(recheck))
            }
            Some(Verdict::Fail(why)) => self.roll_back(why, now),
            Some(Verdict::Pass(figures)) => {
                let w = self.weight();
                let why = format!("passed {w}%: {figures}");
                if self.step == self.ladder.len() {
                    return self.promote(&why, now);
                }
                let next = self.step + 1;
                self.enter(next, now, why, false, interval(rollout))
            }
        }
    }

    /// Before the first step: the candidate's replicas are not ready yet.
    fn pending(self) -> Outcome {
        let why = format!("waiting for the replicas of {} to be ready", self.candidate);
        // Announced once, when the candidate is first seen.
        let n = self.previous.is_none().then(|| Notice {
            warning: false,
            reason: "RolloutPending",
            note: format!(
                "{} is the candidate, from {} towards {}; {why}",
                self.candidate,
                weights::format(&self.baseline),
                weights::format(&self.spec)
            ),
            decision: "pending",
        });
        let decision = format!("{} is the candidate", self.candidate);
        self.outcome(
            RolloutPhase::Progressing,
            decision,
            why,
            n,
            Some(WAIT_READY),
        )
    }

    fn roll_back(mut self, why: String, now: Time) -> Outcome {
        let w = self.weight();
        self.started_at = Some(now.0);
        let rolled = weights::at(&self.spec, &self.baseline, &self.candidate, 0);
        let reason = format!("{} failed analysis at {w}%: {why}", self.candidate);
        let note = format!("{reason}; weights {}", weights::format(&rolled));
        let mut out = self.outcome(
            RolloutPhase::RolledBack,
            format!("rolled back from {w}%"),
            reason,
            Some(Notice {
                warning: true,
                reason: "RolledBack",
                note,
                decision: ROLLED_BACK,
            }),
            None,
        );
        out.weights = rolled;
        out
    }
}
