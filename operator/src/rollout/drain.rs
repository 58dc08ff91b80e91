//! Scaling a variant down only once no router sends it requests: the routers read their table
//! from a mounted ConfigMap, which the kubelet refreshes up to a minute or so after the
//! operator writes it, so a variant that lost its weight can still get requests for that long.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;

use super::state::{self, Outcome};
use super::stats::RouterStatsClient;
use super::weights;
use crate::deployment::dereference::LiveChildren;
use crate::deployment::plan::Plan;
use crate::error::DereferenceError;
use crate::names;

/// Look again this soon at a variant waiting for the routers to drop it.
pub const RECHECK: Duration = Duration::from_secs(5);
/// Scale down after this long even when the routers cannot be read: well past the kubelet's
/// ConfigMap refresh (its sync period, one minute by default, plus its cache TTL).
pub const MAX_WAIT: Duration = Duration::from_secs(180);

/// Sets `outcome.retire`: the variants a promotion left without traffic plus the update
/// variants in `leaving` whose weight is now 0, those still with replicas only once every
/// router replica reports the weights of this outcome (or [`MAX_WAIT`] passed).
pub async fn settle(
    kube: &Client,
    routers: Option<&RouterStatsClient>,
    plan: &Plan,
    live: &LiveChildren,
    leaving: &[String],
    outcome: &mut Outcome,
    now: Timestamp,
) -> Result<(), DereferenceError> {
    let mut retire = state::retired(&plan.spec, outcome.rollout.as_ref());
    for n in leaving {
        if weights::weight_of(&outcome.weights, n) == 0 && !retire.contains(n) {
            retire.push(n.clone());
        }
    }
    let running = |n: &String| {
        live.deployment(&names::variant_object(&plan.name, n))
            .and_then(|d| d.spec.as_ref()?.replicas)
            .unwrap_or(0)
            > 0
    };
    if retire.iter().any(running) && !drained(kube, routers, plan, outcome, now).await? {
        retire.retain(|n| !running(n));
        outcome.requeue = Some(outcome.requeue.map_or(RECHECK, |r| r.min(RECHECK)));
    }
    outcome.retire = retire;
    Ok(())
}

/// Every router replica runs the outcome's weights, or the routers had ample time to.
async fn drained(
    kube: &Client,
    routers: Option<&RouterStatsClient>,
    plan: &Plan,
    outcome: &Outcome,
    now: Timestamp,
) -> Result<bool, DereferenceError> {
    let since = outcome
        .rollout
        .as_ref()
        .and_then(|r| r.step_started_at.as_ref())
        .map_or(0, |t| t.0.as_second());
    let waited = u64::try_from(now.as_second() - since).unwrap_or(0);
    if waited >= MAX_WAIT.as_secs() {
        return Ok(true);
    }
    let Some(routers) = routers else {
        return Ok(false);
    };
    let urls = routers.replicas(kube, &plan.namespace, &plan.name).await?;
    if urls.is_empty() {
        return Ok(false);
    }
    let revision = weights::format(&outcome.weights);
    let replicas = routers.fetch(&urls).await;
    Ok(replicas.len() == urls.len() && replicas.iter().all(|r| r.revision == revision))
}
