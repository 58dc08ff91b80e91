//! Progressive rollout: moves weight to a candidate variant step by step, judging each step
//! on the routers' figures, and promotes it or rolls it back.
//!
//! The candidate is the variant the spec gives more weight than it has in effect
//! (`status.variants[].weight`). [`state`] and [`step`] decide (pure); [`analysis`] judges
//! a step (pure); [`stats`] reads the routers; this module wires them into the reconcile,
//! which then builds the routing table from the weights decided here.

use kube::Client;
use llamafleet_crds::routing::RouterStats;
use llamafleet_crds::{LlmDeployment, RolloutSpec};

use crate::deployment::dereference::LiveChildren;
use crate::deployment::plan::Plan;
use crate::error::DereferenceError;
use crate::names;

pub mod analysis;
pub mod drain;
pub mod state;
pub mod stats;
pub mod step;
pub mod weights;

pub use state::{Notice, Outcome, Resumed, Tick};
pub use stats::RouterStatsClient;

use analysis::Verdict;

/// What the rollout decides for one reconcile of `llmd`, whose plan (`plan.spec`, with any
/// update variants) it follows: reads the router figures only when a step is due, or when a
/// variant left without traffic waits to be scaled down. `leaving`: update variants handing
/// their weight back (see [`crate::update`]), scaled down like a retired variant.
pub async fn decide(
    kube: &Client,
    routers: Option<&RouterStatsClient>,
    llmd: &LlmDeployment,
    plan: &Plan,
    live: &LiveChildren,
    leaving: &[String],
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Outcome, DereferenceError> {
    let mut outcome = weights_now(kube, routers, llmd, plan, live, now).await?;
    drain::settle(kube, routers, plan, live, leaving, &mut outcome, now).await?;
    Ok(outcome)
}

async fn weights_now(
    kube: &Client,
    routers: Option<&RouterStatsClient>,
    llmd: &LlmDeployment,
    plan: &Plan,
    live: &LiveChildren,
    now: k8s_openapi::jiff::Timestamp,
) -> Result<Outcome, DereferenceError> {
    let spec = &plan.spec;
    let active = match state::resume(spec, llmd.metadata.generation, llmd.status.as_ref()) {
        Resumed::Settled(outcome) => return Ok(outcome),
        Resumed::Active(active) => active,
    };
    let rollout = spec.rollout.clone().unwrap_or_default();
    let ready = candidate_ready(plan, live, &active.candidate);
    let verdict = if !active.wants_verdict(&rollout, now) {
        None
    } else if let Some(routers) = routers {
        let current = active.weights();
        let revision = weights::format(&current);
        let urls = routers.replicas(kube, &plan.namespace, &plan.name).await?;
        let replicas = routers.fetch(&urls).await;
        Some(analyse(
            &rollout,
            &active.candidate,
            &current,
            &revision,
            &replicas,
            urls.len(),
        ))
    } else {
        Some(Verdict::Wait(
            "router figures are not read by this operator".into(),
        ))
    };
    Ok(active.tick(
        &rollout,
        Tick {
            now,
            ready,
            verdict,
        },
    ))
}

/// Judges the candidate on the replicas' figures for `revision` (pure).
pub fn analyse(
    rollout: &RolloutSpec,
    candidate: &str,
    current: &weights::Weights,
    revision: &str,
    replicas: &[RouterStats],
    asked: usize,
) -> Verdict {
    let merged = RouterStats::merge(revision, replicas);
    if merged.variants.is_empty() {
        return Verdict::Wait(format!(
            "no router figures for revision {revision} yet ({} of {asked} replicas answered)",
            replicas.len()
        ));
    }
    let stable: Vec<&str> = current
        .iter()
        .filter(|(name, w)| name != candidate && *w > 0)
        .map(|(name, _)| name.as_str())
        .collect();
    let mine = merged.variant(candidate).cloned().unwrap_or_default();
    let theirs = analysis::combined(&merged, &stable);
    let limits = rollout.analysis.clone().unwrap_or_default();
    analysis::judge(&limits, &mine, &theirs)
}

/// All the candidate's replicas (at least one) pass their readiness probe.
fn candidate_ready(plan: &Plan, live: &LiveChildren, candidate: &str) -> bool {
    let deployment = live.deployment(&names::variant_object(&plan.name, candidate));
    let live_desired = deployment
        .and_then(|d| d.spec.as_ref()?.replicas)
        .unwrap_or(0);
    let ready = deployment
        .and_then(|d| d.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    let wanted = plan
        .variants
        .iter()
        .find(|v| v.name == candidate)
        .and_then(|v| v.replicas)
        .unwrap_or(live_desired);
    ready >= wanted.max(1)
}

/// Puts the decided weights into the plan (so the routing table and status carry them), and
/// scales the variants the outcome retires to 0 replicas without an autoscaler.
pub fn apply_to(plan: &mut Plan, outcome: &Outcome) {
    for v in &mut plan.variants {
        v.weight = weights::weight_of(&outcome.weights, &v.name);
        if outcome.retire.contains(&v.name) {
            v.replicas = Some(0);
            v.retired = true;
        }
    }
}
