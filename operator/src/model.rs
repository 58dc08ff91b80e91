//! Minimal LlmModel reconcile: a valid spec is `Ready` with its source pinned as written; an
//! invalid one is `Failed` with a condition and an Event. Resolution from the source itself
//! (HEAD, ranged GET of the GGUF header, memory plan, schedules) comes with the full model
//! controller.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Resource};
use llamafleet_crds::{LlmModel, LlmModelStatus, ModelPhase, ResolvedSource};
use serde::Serialize;

use crate::context::Context;
use crate::deployment::key;
use crate::error::Error;
use crate::status::{READY, condition, write_if_changed};

/// Controller label of the metrics.
pub const CONTROLLER: &str = "llmmodel";

/// The part of the model status this controller owns (what it applies and compares).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedModelStatus {
    /// `Ready` or `Failed`.
    pub phase: ModelPhase,
    /// URL and sha256 from the spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedSource>,
    /// The `Ready` condition.
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// Generation described.
    pub observed_generation: Option<i64>,
}

impl OwnedModelStatus {
    /// The owned part of a status read from the cluster.
    pub fn of(status: &LlmModelStatus) -> Option<Self> {
        Some(Self {
            phase: status.phase?,
            resolved: status.resolved.as_ref().map(|r| ResolvedSource {
                url: r.url.clone(),
                sha256: r.sha256.clone(),
                ..ResolvedSource::default()
            }),
            conditions: status
                .conditions
                .iter()
                .filter(|c| c.type_ == READY)
                .cloned()
                .collect(),
            observed_generation: status.observed_generation,
        })
    }
}

/// The status a model should have (pure).
pub fn desired_status(model: &LlmModel, now: &Time) -> OwnedModelStatus {
    let prev = model
        .status
        .as_ref()
        .map_or(&[][..], |s| s.conditions.as_slice());
    let generation = model.metadata.generation;
    match model.spec.validate() {
        Ok(()) => OwnedModelStatus {
            phase: ModelPhase::Ready,
            resolved: Some(ResolvedSource {
                url: Some(model.spec.source.url.clone()),
                sha256: model.spec.source.sha256.clone(),
                ..ResolvedSource::default()
            }),
            conditions: vec![condition(
                prev,
                READY,
                true,
                "SourcePinned",
                "source taken as written in the spec".into(),
                generation,
                now,
            )],
            observed_generation: generation,
        },
        Err(invalid) => OwnedModelStatus {
            phase: ModelPhase::Failed,
            resolved: None,
            conditions: vec![condition(
                prev,
                READY,
                false,
                "InvalidSpec",
                invalid.to_string(),
                generation,
                now,
            )],
            observed_generation: generation,
        },
    }
}

/// Reconciles one LlmModel.
pub async fn reconcile(model: Arc<LlmModel>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics
        .reconciles
        .with_label_values(&[CONTROLLER])
        .inc();
    let _timer = ctx
        .metrics
        .duration
        .with_label_values(&[CONTROLLER])
        .start_timer();
    let name = model
        .metadata
        .name
        .clone()
        .ok_or(Error::MissingMetadata("name"))?;
    let ns = model
        .metadata
        .namespace
        .clone()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<LlmModel> = Api::namespaced(ctx.client.clone(), &ns);
    let desired = desired_status(&model, &(ctx.clock)());
    let current = model.status.as_ref().and_then(OwnedModelStatus::of);
    let wrote = write_if_changed(&api, &name, current.as_ref(), &desired).await?;
    if desired.phase == ModelPhase::Failed {
        ctx.metrics
            .errors
            .with_label_values(&[CONTROLLER, "invalid_spec"])
            .inc();
        if wrote {
            let note = desired
                .conditions
                .first()
                .map(|c| c.message.clone())
                .unwrap_or_default();
            ctx.warn(&model.object_ref(&()), "InvalidSpec", note).await;
        }
    }
    ctx.reset_backoff(&key(model.as_ref()));
    Ok(Action::await_change())
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
