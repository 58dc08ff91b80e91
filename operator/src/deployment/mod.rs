//! The LlmDeployment reconcile: [`dereference`] (the controller's watch caches) → [`plan`]
//! (pure) → build (pure, cannot fail) → node cache → [`apply`] (writes) → [`status`]. Between
//! plan and build, [`crate::rollout`] decides which weights are in effect.

pub mod apply;
pub mod dereference;
pub mod plan;
pub mod sleep;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use llamafleet_crds::{LlmDeployment, LlmModel};

use crate::agent_status::{AgentProbe, AgentStatus, AgentTarget};
use crate::build::{self, BuildOptions};
use crate::context::{Context, ReconcileStart};
use crate::error::{DereferenceError, Error};
use crate::{node_cache, rollout, update};
use plan::{Plan, ResolvedModel, ValidateError};

/// Controller label of the metrics.
pub const CONTROLLER: &str = "llmdeployment";
/// Re-check of a deployment no agent is polled for: a safety net only. Every change of the
/// spec, a model or a child arrives as a watch event (a watch that loses its place relists);
/// at a thousand deployments a five-minute re-check was the operator's whole CPU at rest
/// (`bench/operator-cluster.sh`), an hour costs a twelfth of it.
pub const RESYNC_READY: Duration = Duration::from_secs(3600);
/// Re-check while replicas start and agents are polled, so status shows download progress.
pub const RESYNC_PROGRESSING: Duration = Duration::from_secs(15);

/// Models as the validate step sees them: missing, not ready, or usable.
pub fn resolve_models(
    models: &BTreeMap<String, Option<LlmModel>>,
) -> BTreeMap<String, Result<ResolvedModel, ValidateError>> {
    models
        .iter()
        .map(|(name, m)| {
            let resolved = match m {
                None => Err(ValidateError::ModelNotFound(name.clone())),
                Some(m) => ResolvedModel::from_ready(m),
            };
            (name.clone(), resolved)
        })
        .collect()
}

/// Reconciles one LlmDeployment.
pub async fn reconcile(llmd: Arc<LlmDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ReconcileStart {
        ns,
        name,
        timer: _timer,
    } = ctx.begin_reconcile(CONTROLLER, &llmd.metadata)?;
    let owner = llmd
        .controller_owner_ref(&())
        .ok_or(Error::MissingMetadata("uid"))?;
    let api: Api<LlmDeployment> = Api::namespaced(ctx.client.clone(), &ns);
    let now = (ctx.clock)();

    ctx.stores
        .wait_until_ready()
        .await
        .map_err(DereferenceError::from)?;
    let observed = dereference::observe(&ctx.stores, &ns, &llmd, &name);
    // A model update rolling through: the spec with its update variants.
    let effective =
        update::derive::effective(&name, &llmd.spec, llmd.status.as_ref(), &observed.models);
    let mut models = resolve_models(&observed.models);
    models.extend(
        effective
            .models
            .iter()
            .map(|(key, m)| (key.clone(), Ok(m.clone()))),
    );
    let gpu_memory = ctx.models.gpu_memory_bytes;
    let plan = plan::make_with_gpu_memory(&name, &ns, &effective.spec, &models, gpu_memory);
    let mut plan = match plan {
        Ok(plan) => plan,
        Err(user_error) => {
            let label = user_error.reason();
            ctx.metrics
                .errors
                .with_label_values(&[CONTROLLER, label])
                .inc();
            let desired = status::blocked(&llmd, &user_error, &now);
            let wrote =
                status::write_if_changed(&api, &name, llmd.status.as_ref(), &desired).await?;
            // One Event per change of the problem, not one per reconcile.
            if wrote {
                ctx.warn(&llmd.object_ref(&()), label, user_error.to_string())
                    .await;
            }
            tracing::info!(%ns, %name, reason = label, error = %user_error, "waiting for a change");
            return Ok(Action::await_change());
        }
    };

    for why in ctx.newly_announced(&key(llmd.as_ref()), &effective.skipped) {
        tracing::warn!(%ns, %name, %why, "model update not rolled out");
        ctx.warn(&llmd.object_ref(&()), "UpdateSkipped", why).await;
    }
    let leaving: Vec<String> = effective
        .updates
        .iter()
        .filter(|u| u.handing_back)
        .map(|u| u.update.clone())
        .collect();
    let rollout = rollout::decide(
        &ctx.client,
        ctx.routers.as_ref(),
        &llmd,
        &plan,
        &observed.children,
        &leaving,
        now.0,
    )
    .await?;
    rollout::apply_to(&mut plan, &rollout);
    let sleep = sleep::decide(
        &ctx.client,
        ctx.routers.as_ref(),
        &llmd,
        &plan,
        rollout.rollout.as_ref(),
        &now,
    )
    .await;
    sleep::apply_to(&mut plan, &sleep);
    plan.keep = update::retain::keep(&observed.models);

    let opts = BuildOptions {
        images: ctx.images.clone(),
        owner: Some(owner.clone()),
        cache_path: ctx.cache_path.clone(),
    };
    let built = build::build(&plan, &opts);
    let mut live = observed.children;
    // Only when serving pods are about to be created or changed (see node_cache.rs); a
    // variant scaled to zero has none.
    let pods_change = built.variants.iter().any(|v| {
        let replicas = v.deployment.spec.as_ref().and_then(|s| s.replicas);
        replicas != Some(0) && !apply::is_current(&v.deployment, &live.deployments)
    });
    if pods_change && build::node_cache::uses_node_cache(&plan.spec) {
        let written = node_cache::ensure(&ctx.client, &ns, &ctx.cache_path).await?;
        if !written.is_empty() {
            tracing::info!(%ns, %name, ?written, "node cache claim made");
        }
    }
    let children = built.into_ordered();
    // The agents are asked while the children are written: a slow agent delays the status,
    // never the writes.
    let (outcome, agents) = tokio::join!(
        apply::apply(&ctx.client, &ns, &owner.uid, children, &mut live),
        probe_agents(ctx.agents.as_ref(), &plan)
    );
    let outcome = outcome?;
    if !outcome.applied.is_empty() || !outcome.deleted.is_empty() {
        tracing::info!(%ns, %name, applied = ?outcome.applied, deleted = ?outcome.deleted, "children updated");
    }

    let mut desired = status::observed(&llmd, &plan, &live, &agents, &now);
    status::with_rollout(&mut desired, &llmd, rollout.rollout.clone(), &now);
    status::with_sleep(&mut desired, &sleep);
    status::write_if_changed(&api, &name, llmd.status.as_ref(), &desired).await?;
    if let Some(why) = status::new_agent_failure(llmd.status.as_ref(), &desired) {
        tracing::warn!(%ns, %name, %why, "agent failed");
        ctx.warn(&llmd.object_ref(&()), status::AGENT_FAILED, why)
            .await;
    }
    announce_sleep(&ctx, &llmd, &sleep).await;
    // After the routing table and status are written: the gauges show what is in force.
    let weights: Vec<(&str, i32)> = plan
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.weight))
        .collect();
    let step = rollout.rollout.as_ref().map(|r| r.step.unwrap_or(0));
    ctx.metrics.set_deployment(&ns, &name, &weights, step);
    if let Some(n) = &rollout.notice {
        ctx.metrics
            .rollout_decisions
            .with_label_values(&[n.decision])
            .inc();
        tracing::info!(%ns, %name, decision = n.decision, note = %n.note, "rollout");
        let regarding = llmd.object_ref(&());
        if n.decision == rollout::step::ROLLED_BACK {
            ctx.metrics
                .rollbacks
                .with_label_values(&[ns.as_str(), name.as_str()])
                .inc();
        }
        if n.warning {
            ctx.warn(&regarding, n.reason, n.note.clone()).await;
        } else {
            ctx.notify(&regarding, n.reason, n.note.clone()).await;
        }
    }
    ctx.reset_backoff(&key(llmd.as_ref()));
    // Everything else a status shows arrives as a watch event (a child's status, a model);
    // only the agents' download figures have to be polled, while replicas start.
    let resync = if ctx.agents.reports() && status::replicas_starting(&desired) {
        RESYNC_PROGRESSING
    } else {
        RESYNC_READY
    };
    let requeue = [rollout.requeue, sleep.requeue, Some(resync)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(resync);
    Ok(Action::requeue(requeue))
}

/// An Event for each variant that fell asleep or woke in this reconcile.
async fn announce_sleep(ctx: &Context, llmd: &LlmDeployment, sleep: &sleep::Sleep) {
    let regarding = llmd.object_ref(&());
    for v in &sleep.fell_asleep {
        let note = format!("variant {v} had no request for idleAfter: scaled to 0 replicas");
        ctx.notify(&regarding, "Idle", note).await;
    }
    for v in &sleep.woken {
        let note = format!("variant {v} has requests again: awake");
        ctx.notify(&regarding, "Woken", note).await;
    }
}

/// Backoff key of an object.
pub fn key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Transient errors retry with growing delays; permanent ones wait for a change.
pub fn error_policy(llmd: Arc<LlmDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&[CONTROLLER, error.metric_label()])
        .inc();
    if error.is_permanent() {
        tracing::error!(object = %key(llmd.as_ref()), %error, "reconcile failed; waiting for a change");
        return Action::await_change();
    }
    let delay = ctx.next_backoff(&key(llmd.as_ref()));
    tracing::warn!(object = %key(llmd.as_ref()), %error, ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// The `/status` of each variant that has replicas, asked concurrently (each with its own
/// short timeout); variants without an answer are left out.
async fn probe_agents(probe: &dyn AgentProbe, plan: &Plan) -> BTreeMap<String, AgentStatus> {
    let asks = plan
        .variants
        .iter()
        .filter(|v| v.replicas != Some(0))
        .map(|v| async move {
            let target = AgentTarget {
                namespace: &plan.namespace,
                llmd: &plan.name,
                variant: &v.name,
            };
            probe.status(target).await.map(|s| (v.name.clone(), s))
        });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}
