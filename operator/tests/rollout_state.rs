//! The progressive rollout's pure parts: weight arithmetic, the analysis, and the state
//! machine walked reconcile by reconcile (each outcome becomes the next reconcile's status).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use llamafleet_crds::{LlmDeploymentSpec, LlmDeploymentStatus, RolloutPhase, VariantStatus};
use llamafleet_operator::rollout::analysis::Verdict;
use llamafleet_operator::rollout::state::{self, Outcome, Resumed, Tick};
use llamafleet_operator::rollout::weights::{self, Weights};
use serde_json::json;

fn w(pairs: &[(&str, i32)]) -> Weights {
    pairs.iter().map(|(n, w)| ((*n).to_string(), *w)).collect()
}

#[test]
fn ladder_runs_the_steps_between_start_and_target_then_the_target() {
    assert_eq!(weights::ladder(&[], 0, 100), vec![10, 25, 50, 100]);
    assert_eq!(weights::ladder(&[], 0, 30), vec![10, 25, 30]);
    assert_eq!(weights::ladder(&[], 10, 100), vec![25, 50, 100]);
    assert_eq!(weights::ladder(&[], 0, 10), vec![10]);
    assert_eq!(weights::ladder(&[5, 100], 0, 100), vec![5, 100]);
}

#[test]
fn other_variants_share_the_rest_moving_from_baseline_to_spec() {
    let spec = w(&[("blue", 0), ("green", 100)]);
    let base = w(&[("blue", 100), ("green", 0)]);
    assert_eq!(
        weights::at(&spec, &base, "green", 25),
        w(&[("blue", 75), ("green", 25)])
    );
    // Three variants: a and b split 90 as 2:1 at the baseline and 1:1 in the spec.
    let spec = w(&[("a", 30), ("b", 30), ("c", 40)]);
    let base = w(&[("a", 60), ("b", 30), ("c", 10)]);
    let mid = weights::at(&spec, &base, "c", 25);
    assert_eq!(mid.iter().map(|(_, x)| x).sum::<i32>(), 100);
    assert_eq!(mid, w(&[("a", 45), ("b", 30), ("c", 25)]));
    assert_eq!(weights::at(&spec, &base, "c", 40), spec);
    // Rolling back a candidate that started at 10 gives the stable variant everything.
    let spec = w(&[("blue", 0), ("green", 100)]);
    let base = w(&[("blue", 90), ("green", 10)]);
    assert_eq!(
        weights::at(&spec, &base, "green", 0),
        w(&[("blue", 100), ("green", 0)])
    );
}

#[test]
fn candidate_is_the_variant_gaining_most_and_none_when_nothing_gains() {
    let eff = w(&[("a", 50), ("b", 50), ("c", 0)]);
    let spec = w(&[("a", 0), ("b", 60), ("c", 40)]);
    assert_eq!(weights::candidate(&spec, &eff), Some(("c".into(), 40)));
    assert_eq!(weights::candidate(&eff, &eff), None);
    assert_eq!(
        weights::parse("blue=90,green=10"),
        w(&[("blue", 90), ("green", 10)])
    );
    assert_eq!(
        weights::format(&w(&[("blue", 90), ("green", 10)])),
        "blue=90,green=10"
    );
}

#[test]
fn intervals_parse_in_seconds_minutes_and_hours() {
    assert_eq!(weights::parse_interval("2s"), Some(Duration::from_secs(2)));
    assert_eq!(
        weights::parse_interval("5m"),
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        weights::parse_interval("1h"),
        Some(Duration::from_secs(3600))
    );
    assert_eq!(weights::parse_interval("5d"), None);
    assert_eq!(weights::parse_interval(""), None);
}

fn spec(extra: serde_json::Value) -> LlmDeploymentSpec {
    let mut rollout = json!({"strategy": "Progressive", "interval": "5m"});
    for (k, v) in extra.as_object().unwrap() {
        rollout[k] = v.clone();
    }
    serde_json::from_value(json!({
        "variants": [
            {"name": "blue", "model": "m1", "weight": 0},
            {"name": "green", "model": "m2", "weight": 100},
        ],
        "rollout": rollout,
    }))
    .unwrap()
}

/// The status a reconcile leaves: the weights in effect and the rollout.
fn status_from(weights: &Weights, o: Option<&Outcome>) -> LlmDeploymentStatus {
    LlmDeploymentStatus {
        variants: weights
            .iter()
            .map(|(n, x)| VariantStatus {
                name: n.clone(),
                weight: Some(*x),
                ..VariantStatus::default()
            })
            .collect(),
        rollout: o.and_then(|o| o.rollout.clone()),
        ..LlmDeploymentStatus::default()
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_000_000 + second).unwrap()
}

/// One reconcile at `t` (seconds), the candidate ready, with `verdict` when one is asked.
fn reconcile(
    s: &LlmDeploymentSpec,
    generation: i64,
    prev: &LlmDeploymentStatus,
    t: i64,
    verdict: Verdict,
) -> Outcome {
    match state::resume(s, Some(generation), Some(prev)) {
        Resumed::Settled(o) => o,
        Resumed::Active(a) => {
            let r = s.rollout.clone().unwrap();
            let verdict = a.wants_verdict(&r, at(t)).then_some(verdict);
            a.tick(
                &r,
                Tick {
                    now: at(t),
                    ready: true,
                    verdict,
                },
            )
        }
    }
}

fn pass() -> Verdict {
    Verdict::Pass("fine".into())
}

#[test]
fn manual_strategy_and_a_new_deployment_take_the_spec_weights() {
    let mut manual = spec(json!({}));
    manual.rollout.as_mut().unwrap().strategy = llamafleet_crds::RolloutStrategy::Manual;
    let prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    let o = reconcile(&manual, 1, &prev, 0, pass());
    assert_eq!(
        (o.weights.clone(), o.rollout, o.notice),
        (w(&[("blue", 0), ("green", 100)]), None, None)
    );
    match state::resume(&spec(json!({})), Some(1), None) {
        Resumed::Settled(o) => {
            assert_eq!(o.weights, w(&[("blue", 0), ("green", 100)]));
            assert_eq!(o.rollout.unwrap().phase, Some(RolloutPhase::Stable));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_passing_candidate_climbs_every_step_and_is_promoted() {
    let s = spec(json!({}));
    let mut prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    // Not ready: the candidate is announced, weights stay.
    let Resumed::Active(a) = state::resume(&s, Some(2), Some(&prev)) else {
        panic!()
    };
    let r = s.rollout.clone().unwrap();
    let o = a.tick(
        &r,
        Tick {
            now: at(0),
            ready: false,
            verdict: None,
        },
    );
    assert_eq!(o.weights, w(&[("blue", 100), ("green", 0)]));
    assert_eq!(o.notice.as_ref().unwrap().reason, "RolloutPending");
    assert_eq!(o.rollout.as_ref().unwrap().step, Some(0));
    prev = status_from(&o.weights, Some(&o));
    // Ready: step 1 at 10%, judged after the interval.
    let o = reconcile(&s, 2, &prev, 10, pass());
    assert_eq!(o.weights, w(&[("blue", 90), ("green", 10)]));
    assert_eq!(o.notice.as_ref().unwrap().reason, "RolloutStarted");
    assert_eq!(o.requeue, Some(Duration::from_secs(300)));
    let ro = o.rollout.clone().unwrap();
    assert_eq!(
        (ro.phase, ro.step, ro.candidate.as_deref()),
        (Some(RolloutPhase::Progressing), Some(1), Some("green"))
    );
    assert_eq!(ro.baseline.as_deref(), Some("blue=100,green=0"));
    prev = status_from(&o.weights, Some(&o));
    // Before the interval: held, quiet, back when due.
    let o = reconcile(&s, 2, &prev, 100, Verdict::Fail("not asked".into()));
    assert_eq!(
        (o.weights.clone(), o.notice.clone()),
        (w(&[("blue", 90), ("green", 10)]), None)
    );
    assert_eq!(o.requeue, Some(Duration::from_secs(210)));
    assert_eq!(o.rollout, prev.rollout);
    // Too few requests: waits and looks again soon.
    let o = reconcile(&s, 2, &prev, 310, Verdict::Wait("3 of 10".into()));
    assert_eq!(
        (o.notice.clone(), o.requeue),
        (None, Some(Duration::from_secs(30)))
    );
    assert_eq!(
        o.rollout.as_ref().unwrap().reason.as_deref(),
        Some("3 of 10")
    );
    // Passing: 25, then 50, then promoted at 100.
    let o = reconcile(&s, 2, &prev, 320, pass());
    assert_eq!(o.weights, w(&[("blue", 75), ("green", 25)]));
    assert_eq!(o.notice.as_ref().unwrap().reason, "RolloutAdvanced");
    prev = status_from(&o.weights, Some(&o));
    let o = reconcile(&s, 2, &prev, 700, pass());
    assert_eq!(o.weights, w(&[("blue", 50), ("green", 50)]));
    prev = status_from(&o.weights, Some(&o));
    let o = reconcile(&s, 2, &prev, 1100, pass());
    assert_eq!(o.weights, w(&[("blue", 0), ("green", 100)]));
    let n = o.notice.clone().unwrap();
    assert_eq!(
        (n.reason, n.decision, n.warning),
        ("RolloutPromoted", "promoted", false)
    );
    assert_eq!(
        o.rollout.as_ref().unwrap().phase,
        Some(RolloutPhase::Promoted)
    );
    assert_eq!(
        state::retired(&s, o.rollout.as_ref()),
        vec!["blue".to_string()]
    );
    // Promoted is settled, also in a later generation.
    prev = status_from(&o.weights, Some(&o));
    let again = reconcile(&s, 3, &prev, 5000, Verdict::Fail("not asked".into()));
    assert_eq!(
        (again.weights, again.notice, again.rollout),
        (o.weights, None, o.rollout)
    );
}

#[test]
fn a_failing_step_rolls_back_and_stays_until_the_generation_changes() {
    let s = spec(json!({}));
    let prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    let o = reconcile(&s, 2, &prev, 0, pass());
    let prev = status_from(&o.weights, Some(&o));
    let fail = Verdict::Fail("error rate 0.5000 (5 of 10) is above maxErrorRate 0.05".into());
    let o = reconcile(&s, 2, &prev, 300, fail);
    assert_eq!(o.weights, w(&[("blue", 100), ("green", 0)]));
    let n = o.notice.clone().unwrap();
    assert_eq!(
        (n.reason, n.decision, n.warning),
        ("RolledBack", "rolled_back", true)
    );
    let ro = o.rollout.clone().unwrap();
    assert_eq!(ro.phase, Some(RolloutPhase::RolledBack));
    assert!(
        ro.reason.unwrap().contains("error rate 0.5000"),
        "{:?}",
        o.rollout
    );
    assert!(state::retired(&s, o.rollout.as_ref()).is_empty());
    // Same generation: no retry, however long it waits.
    let prev = status_from(&o.weights, Some(&o));
    let held = reconcile(&s, 2, &prev, 100_000, pass());
    assert_eq!(
        (held.weights.clone(), held.notice, held.rollout),
        (o.weights, None, o.rollout)
    );
    // A new generation starts over from step 1.
    let retry = reconcile(&s, 3, &prev, 100_010, pass());
    assert_eq!(retry.weights, w(&[("blue", 90), ("green", 10)]));
    assert_eq!(retry.notice.unwrap().reason, "RolloutStarted");
}

#[test]
fn pause_holds_the_step_and_resume_continues_it() {
    let running = spec(json!({}));
    let paused = spec(json!({"paused": true}));
    let prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    let o = reconcile(&running, 2, &prev, 0, pass());
    let prev = status_from(&o.weights, Some(&o));
    let Resumed::Active(a) = state::resume(&paused, Some(3), Some(&prev)) else {
        panic!()
    };
    assert!(!a.wants_verdict(paused.rollout.as_ref().unwrap(), at(10_000)));
    let o = reconcile(&paused, 3, &prev, 10_000, pass());
    assert_eq!(o.weights, w(&[("blue", 90), ("green", 10)]));
    assert_eq!(
        o.rollout.as_ref().unwrap().phase,
        Some(RolloutPhase::Paused)
    );
    assert_eq!(o.notice.as_ref().unwrap().reason, "RolloutPaused");
    let prev = status_from(&o.weights, Some(&o));
    let quiet = reconcile(&paused, 3, &prev, 10_010, pass());
    assert_eq!(
        (quiet.notice, quiet.rollout.clone()),
        (None, o.rollout.clone())
    );
    // Unpaused before the step's interval is over: resumed, and the reason says so rather
    // than still reading "held".
    let early = reconcile(&running, 4, &prev, 10, pass());
    assert_eq!(early.notice.unwrap().reason, "RolloutResumed");
    let r = early.rollout.unwrap();
    assert_eq!(r.phase, Some(RolloutPhase::Progressing));
    let reason = r.reason.unwrap();
    assert!(reason.contains("resumed at 10%"), "{reason}");
    // Unpaused after the interval: judged at once.
    let o = reconcile(&running, 4, &prev, 10_020, pass());
    assert_eq!(o.weights, w(&[("blue", 75), ("green", 25)]));
    assert_eq!(o.rollout.unwrap().phase, Some(RolloutPhase::Progressing));
}

#[test]
fn promote_jumps_the_candidate_to_its_target() {
    let s = spec(json!({}));
    let prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    let o = reconcile(&s, 2, &prev, 0, pass());
    let prev = status_from(&o.weights, Some(&o));
    let promoted = spec(json!({"promote": "green"}));
    let o = reconcile(&promoted, 3, &prev, 5, Verdict::Fail("not asked".into()));
    assert_eq!(o.weights, w(&[("blue", 0), ("green", 100)]));
    assert_eq!(o.rollout.unwrap().phase, Some(RolloutPhase::Promoted));
    assert!(o.notice.unwrap().note.contains("spec.rollout.promote"));
    // Naming another variant does nothing.
    let other = spec(json!({"promote": "blue"}));
    let o = reconcile(&other, 3, &prev, 5, pass());
    assert_eq!(o.weights, w(&[("blue", 90), ("green", 10)]));
}

#[test]
fn a_canary_target_below_100_is_judged_then_promoted_without_retiring() {
    let mut s = spec(json!({}));
    s.variants[0].weight = 90;
    s.variants[1].weight = 10;
    let prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    let o = reconcile(&s, 2, &prev, 0, pass());
    assert_eq!(o.weights, w(&[("blue", 90), ("green", 10)]));
    assert_eq!(
        o.rollout.as_ref().unwrap().phase,
        Some(RolloutPhase::Progressing)
    );
    let prev = status_from(&o.weights, Some(&o));
    let o = reconcile(&s, 2, &prev, 300, pass());
    assert_eq!(o.weights, w(&[("blue", 90), ("green", 10)]));
    assert_eq!(
        o.rollout.as_ref().unwrap().phase,
        Some(RolloutPhase::Promoted)
    );
    assert!(state::retired(&s, o.rollout.as_ref()).is_empty());
}

#[test]
fn pause_before_the_first_step_holds_the_baseline() {
    let paused = spec(json!({"paused": true}));
    let prev = status_from(&w(&[("blue", 100), ("green", 0)]), None);
    let o = reconcile(&paused, 2, &prev, 0, pass());
    assert_eq!(o.weights, w(&[("blue", 100), ("green", 0)]));
    let ro = o.rollout.clone().unwrap();
    assert_eq!((ro.phase, ro.step), (Some(RolloutPhase::Paused), Some(0)));
    let prev = status_from(&o.weights, Some(&o));
    let o = reconcile(&spec(json!({})), 3, &prev, 10, pass());
    assert_eq!(o.weights, w(&[("blue", 90), ("green", 10)]));
    assert_eq!(o.notice.unwrap().reason, "RolloutStarted");
}
