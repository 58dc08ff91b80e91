//! Scale to zero (`spec.autoscaling.minReplicas: 0`): which variants sleep.
//!
//! The routers count how long each variant has gone without a request
//! ([`RouterStats::idle_seconds`]); a variant idle for `idleAfter` on every router replica is
//! scaled to 0 replicas (its Deployment, Service, PDB and autoscaler stay). Waking is the
//! router's: it holds the request and scales the Deployment to one replica through the `scale`
//! subresource, and the next reconcile, seeing the fresh request, keeps the variant awake.
//! While the routers cannot be read, a variant keeps the state it has (none is put to sleep
//! without figures). No variant sleeps while a progressive rollout is judging weights: the
//! candidate must be ready to be judged.
//!
//! With an autoscaler the two cooperate without configuration: a HorizontalPodAutoscaler
//! leaves a Deployment at 0 replicas alone ("ScalingDisabled") and takes over again once the
//! router has scaled it to one.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use llamafleet_crds::routing::RouterStats;
use llamafleet_crds::validation::parse_duration;
use llamafleet_crds::{LlmDeployment, RolloutPhase, RolloutStatus};

use super::plan::Plan;
use crate::rollout::RouterStatsClient;

/// How soon an awake variant that some router replica does not report is looked at again.
/// A router reports a variant once it runs the routing table that lets it wake the variant;
/// the ConfigMap reaches running router pods without any object changing, so no watch event
/// would bring the operator back when it does.
pub const UNREPORTED_RECHECK: Duration = Duration::from_secs(15);

/// What the routers say and the status remembers, per variant that may sleep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sleep {
    /// Sleeping variants and since when.
    pub asleep: BTreeMap<String, Time>,
    /// Variants that slept at the last reconcile and are awake now (an Event each).
    pub woken: Vec<String>,
    /// Variants that fell asleep in this reconcile (an Event each).
    pub fell_asleep: Vec<String>,
    /// When the next variant would reach `idleAfter`: reconcile then.
    pub requeue: Option<Duration>,
}

/// Decides which variants of `plan` sleep; reads the routers only when some variant may.
pub async fn decide(
    kube: &Client,
    routers: Option<&RouterStatsClient>,
    llmd: &LlmDeployment,
    plan: &Plan,
    rollout: Option<&RolloutStatus>,
    now: &Time,
) -> Sleep {
    let Some(idle_after) = idle_after(plan) else {
        return Sleep::default();
    };
    let figures = match routers {
        Some(r) => match r.replicas(kube, &plan.namespace, &plan.name).await {
            Ok(urls) => r.fetch(&urls).await,
            Err(error) => {
                tracing::warn!(llmd = %plan.name, %error, "router pods unreadable: no variant changes sleep state");
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    judge(llmd, plan, rollout, &figures, idle_after, now)
}

/// `idleAfter` when the plan's variants may sleep.
pub fn idle_after(plan: &Plan) -> Option<Duration> {
    let a = plan.spec.autoscaling.as_ref().filter(|a| a.sleeps())?;
    a.idle_after.as_deref().and_then(parse_duration)
}

/// The pure decision of [`decide`], given the router replicas' figures.
pub fn judge(
    llmd: &LlmDeployment,
    plan: &Plan,
    rollout: Option<&RolloutStatus>,
    figures: &[RouterStats],
    idle_after: Duration,
    now: &Time,
) -> Sleep {
    let judging = rollout.is_some_and(|r| r.phase == Some(RolloutPhase::Progressing));
    let was_asleep: BTreeMap<&str, &Time> = llmd
        .status
        .iter()
        .flat_map(|s| &s.variants)
        .filter_map(|v| Some((v.name.as_str(), v.idle_since.as_ref()?)))
        .collect();
    let mut sleep = Sleep::default();
    for v in plan.variants.iter().filter(|v| !v.retired) {
        let before = was_asleep.get(v.name.as_str()).copied();
        let idle = RouterStats::idle_for(&v.name, figures).map(Duration::from_secs_f64);
        let asleep = match idle {
            _ if judging => false,
            // Not every router replica reports it (not answering, or still on an older
            // table): keep the state the status records, and look again soon if awake.
            None => {
                if before.is_none() {
                    let again = sleep
                        .requeue
                        .map_or(UNREPORTED_RECHECK, |r| r.min(UNREPORTED_RECHECK));
                    sleep.requeue = Some(again);
                }
                before.is_some()
            }
            Some(idle) if idle >= idle_after => true,
            Some(idle) => {
                let left = idle_after - idle + Duration::from_secs(1);
                sleep.requeue = Some(sleep.requeue.map_or(left, |r| r.min(left)));
                false
            }
        };
        match (asleep, before) {
            (true, Some(since)) => {
                sleep.asleep.insert(v.name.clone(), since.clone());
            }
            (true, None) => {
                sleep.asleep.insert(v.name.clone(), now.clone());
                sleep.fell_asleep.push(v.name.clone());
            }
            (false, Some(_)) => sleep.woken.push(v.name.clone()),
            (false, None) => {}
        }
    }
    sleep
}

/// Scales the sleeping variants of `plan` to 0 replicas (their autoscalers stay).
pub fn apply_to(plan: &mut Plan, sleep: &Sleep) {
    for v in &mut plan.variants {
        if sleep.asleep.contains_key(&v.name) {
            v.replicas = Some(0);
        }
    }
}
