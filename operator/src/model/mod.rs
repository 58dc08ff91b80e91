//! The LlmModel controller: resolve the source without downloading it (HEAD + ranged GETs of
//! the GGUF header), record the pinned file, its GGUF summary and memory figures, check the
//! declared quantization, and look for new revisions on the update schedule.
//!
//! A reconcile does one of: nothing (resolved, no check due: requeue at the next cron tick),
//! a first resolution (new object or new generation), or a scheduled check. Status is only
//! written when it differs (radio silence); `lastUpdateCheck` only moves when a check ran.

pub mod desired;
pub mod fetch;
pub mod promotion;
pub mod resolve;
pub mod schedule;

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Resource};
use llamafleet_crds::{LlmModel, LlmModelStatus, ModelPhase, UpdatePolicy};

use crate::context::{Context, ReconcileStart};
use crate::deployment::key;
use crate::deployment::status::{DEGRADED, write_if_changed};
use crate::error::Error;
use crate::update;
use crate::update::adopt::Verdict;
use desired::UPDATE_AVAILABLE;
use resolve::{Outcome, ResolveError};
use schedule::Schedule;

/// Controller label of the metrics.
pub const CONTROLLER: &str = "llmmodel";

/// The status of a model whose source is not contacted (resolution off): `Ready` from the
/// spec (pure; also what `render` and the deployment tests assume).
pub fn desired_status(model: &LlmModel, now: &Time) -> LlmModelStatus {
    match model.spec.validate() {
        Ok(()) => desired::from_spec(
            model,
            now,
            "ResolutionDisabled",
            "source taken as written in the spec: remote resolution is off (--no-resolve)".into(),
        ),
        Err(invalid) => desired::invalid(model, now, &invalid),
    }
}

/// What this reconcile has to do.
enum Step {
    /// Resolved for this generation and no check due.
    Nothing,
    /// New object or new generation (or the last attempt failed).
    Resolve,
    /// The update schedule's tick passed.
    Check,
}

fn step(model: &LlmModel, schedule: Option<&Schedule>, now: &Time) -> Step {
    let status = model.status.as_ref();
    let current = status.is_some_and(|s| {
        s.observed_generation == model.metadata.generation
            && s.phase == Some(ModelPhase::Ready)
            && s.resolved.is_some()
            && s.gguf.is_some()
    });
    if !current {
        return Step::Resolve;
    }
    match schedule {
        Some(s) if s.due(status.and_then(|s| s.last_update_check.as_ref()), now) => Step::Check,
        _ => Step::Nothing,
    }
}

/// Reconciles one LlmModel.
pub async fn reconcile(model: Arc<LlmModel>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ReconcileStart {
        ns,
        name,
        timer: _timer,
    } = ctx.begin_reconcile(CONTROLLER, &model.metadata)?;
    let api: Api<LlmModel> = Api::namespaced(ctx.client.clone(), &ns);
    let now = (ctx.clock)();
    let regarding = model.object_ref(&());
    let backoff_key = key(model.as_ref());

    if let Err(invalid) = model.spec.validate() {
        ctx.metrics
            .errors
            .with_label_values(&[CONTROLLER, "invalid_spec"])
            .inc();
        let desired = desired::invalid(&model, &now, &invalid);
        if write_if_changed(&api, &name, model.status.as_ref(), &desired).await? {
            ctx.warn(&regarding, "InvalidSpec", invalid.to_string())
                .await;
        }
        return Ok(Action::await_change());
    }
    let Some(fetcher) = ctx.models.fetcher.clone() else {
        let desired = desired_status(&model, &now);
        write_if_changed(&api, &name, model.status.as_ref(), &desired).await?;
        ctx.reset_backoff(&backoff_key);
        return Ok(Action::await_change());
    };
    let (schedule, schedule_error) = match Schedule::of(model.spec.update.as_ref()) {
        Ok(s) => (s, None),
        Err(message) => (None, Some(message)),
    };
    let checking = schedule.is_some();
    let step = step(&model, schedule.as_ref(), &now);
    if matches!(step, Step::Nothing) && schedule_error.is_none() {
        let rolling = promotion::follow(&ctx, &api, &model, &ns, &regarding).await?;
        let wait = next_wait(model.status.as_ref(), schedule.as_ref(), &now);
        return Ok(after_following(rolling, wait));
    }

    let outcome = match step {
        Step::Nothing => None,
        Step::Resolve | Step::Check => {
            Some(match resolve::bearer_token(&ctx.client, &model).await {
                Ok(token) => resolve::resolve(&fetcher, &model, token.as_deref()).await,
                Err(e) => Err(e),
            })
        }
    };
    let mut desired = match (&step, &outcome) {
        (Step::Nothing, _) | (_, None) => model.status.clone().unwrap_or_default(),
        (_, Some(Ok(Outcome::VerifyOnNode(path)))) => desired::from_spec(
            &model,
            &now,
            "VerifyOnNode",
            format!(
                "{} is not on the operator's filesystem; the agent verifies it on the node",
                path.display()
            ),
        ),
        (Step::Resolve, Some(Ok(Outcome::Read(r)))) if desired::same_source(&model) => {
            let targets = rollout_targets(&ctx, &model, &ns, schedule.as_ref()).await?;
            desired::kept(&model, &now, r, checking, targets)
        }
        (Step::Resolve, Some(Ok(Outcome::Read(r)))) => desired::resolved(&model, &now, r, checking),
        (Step::Check, Some(Ok(Outcome::Read(r)))) => {
            let targets = rollout_targets(&ctx, &model, &ns, schedule.as_ref()).await?;
            desired::checked(&model, &now, r, targets)
        }
        // The file already resolved for this source stays usable; the resolve is retried
        // (the generation is not marked observed until it succeeds).
        (Step::Resolve, Some(Err(e))) if desired::same_source(&model) => {
            desired::check_failed(&model, &now, e)
        }
        (Step::Resolve, Some(Err(e))) => desired::failed(&model, &now, e),
        (Step::Check, Some(Err(e))) => desired::check_failed(&model, &now, e),
    };
    if let Some(message) = schedule_error {
        desired::set(
            &mut desired.conditions,
            desired::bad_schedule(&model, &now, message),
        );
    }
    let wrote = write_if_changed(&api, &name, model.status.as_ref(), &desired).await?;
    if wrote {
        publish_changes(&ctx, &regarding, model.status.as_ref(), &desired).await;
    }
    match outcome {
        Some(Err(e)) => {
            ctx.metrics
                .errors
                .with_label_values(&[CONTROLLER, metric_label(&e)])
                .inc();
            if wrote {
                ctx.warn(&regarding, e.reason(), e.to_string()).await;
            }
            let delay = ctx.next_backoff(&backoff_key);
            tracing::warn!(object = %backoff_key, error = %e, ?delay, "resolving the source failed; retrying");
            Ok(Action::requeue(delay))
        }
        _ => {
            ctx.reset_backoff(&backoff_key);
            // A check does not stop following the candidate's rollout. The requeue lands on
            // the next tick, so with a short schedule every reconcile can be a check: a
            // promotion or rollback that happened meanwhile would never be recorded, and a
            // candidate still rolling out would not be looked at again until the next tick.
            let mut checked = (*model).clone();
            checked.status = Some(desired);
            let rolling = promotion::follow(&ctx, &api, &checked, &ns, &regarding).await?;
            let wait = next_wait(checked.status.as_ref(), schedule.as_ref(), &now);
            Ok(after_following(rolling, wait))
        }
    }
}

/// The requeue after following a rollout: soon while it is on its way, else the next tick.
fn after_following(rolling: bool, wait: Option<std::time::Duration>) -> Action {
    match (rolling, wait) {
        (true, wait) => {
            Action::requeue(wait.map_or(promotion::RECHECK, |w| w.min(promotion::RECHECK)))
        }
        (false, Some(wait)) => Action::requeue(wait),
        (false, None) => Action::await_change(),
    }
}

fn metric_label(e: &ResolveError) -> &'static str {
    match e.reason() {
        "InvalidGguf" => "invalid_gguf",
        "AuthSecretUnavailable" => "auth_secret",
        "InvalidSource" => "invalid_source",
        _ => "source_unreachable",
    }
}

/// Time until the next cron tick after the last check, if there is a schedule.
fn next_wait(
    status: Option<&LlmModelStatus>,
    schedule: Option<&Schedule>,
    now: &Time,
) -> Option<std::time::Duration> {
    let last = status.and_then(|s| s.last_update_check.as_ref())?;
    schedule?.wait(last, now)
}

/// With policy `Rollout`: the deployments of this namespace that serve the model with traffic
/// and roll out progressively (each gets the candidate as update variants, see
/// [`crate::update`]), and whether the current candidate is still rolling out in some of them.
async fn rollout_targets(
    ctx: &Context,
    model: &LlmModel,
    ns: &str,
    schedule: Option<&Schedule>,
) -> Result<desired::Targets, Error> {
    if schedule.map(|s| s.policy) != Some(UpdatePolicy::Rollout) {
        return Ok(desired::Targets::default());
    }
    let name = model.metadata.name.as_deref().unwrap_or_default();
    let deployments = promotion::list_deployments(ctx, ns).await?;
    let mut names: Vec<String> = deployments
        .iter()
        .filter(|d| update::progressive(&d.spec))
        .filter(|d| update::updated_variants(&d.spec, name).next().is_some())
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    names.sort();
    let rolling = model
        .status
        .as_ref()
        .and_then(|s| s.candidate.as_ref())
        .filter(|c| c.rolled_back.is_none())
        .map(|c| update::adopt::judge(name, c, &deployments))
        .is_some_and(|v| matches!(v, Verdict::Pending { waiting, .. } if !waiting.is_empty()));
    Ok(desired::Targets {
        rollout_to: names,
        rolling,
    })
}

fn condition_true(status: Option<&LlmModelStatus>, type_: &str) -> Option<(String, String)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// Events for what newly became true: a quantization mismatch, a new candidate.
async fn publish_changes(
    ctx: &Context,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    before: Option<&LlmModelStatus>,
    after: &LlmModelStatus,
) {
    let degraded = condition_true(Some(after), DEGRADED);
    if degraded.is_some() && degraded != condition_true(before, DEGRADED) {
        let (reason, message) = degraded.unwrap_or_default();
        ctx.warn(regarding, &reason, message).await;
    }
    let candidate = |s: Option<&LlmModelStatus>| {
        s.and_then(|s| s.candidate.as_ref())
            .map(|c| (c.sha256.clone(), c.etag.clone(), c.revision.clone()))
    };
    if after.candidate.is_some() && candidate(Some(after)) != candidate(before) {
        let message = condition_true(Some(after), UPDATE_AVAILABLE)
            .map(|(_, m)| m)
            .unwrap_or_default();
        ctx.notify(regarding, UPDATE_AVAILABLE, message).await;
    }
}

/// Same policy as the deployments: backoff for transient errors.
pub fn error_policy(model: Arc<LlmModel>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&[CONTROLLER, error.metric_label()])
        .inc();
    if error.is_permanent() {
        return Action::await_change();
    }
    let delay = ctx.next_backoff(&key(model.as_ref()));
    tracing::warn!(object = %key(model.as_ref()), %error, ?delay, "model reconcile failed; retrying");
    Action::requeue(delay)
}
