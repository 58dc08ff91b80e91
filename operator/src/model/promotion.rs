//! Policy `Rollout` on the model's side: follows the candidate through the rollouts of the
//! deployments in `rolloutTo` (see [`crate::update`]); once all of them promoted it, it becomes
//! the resolved revision; once one rolled it back, it is marked rolled back and not rolled out
//! again.

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::ListParams;
use llamafleet_crds::{LlmDeployment, LlmModel, LlmModelStatus, ResolvedSource, UpdatePolicy};

use super::desired::{UPDATE_AVAILABLE, cond, degraded, set};
use crate::context::Context;
use crate::deployment::status::write_if_changed;
use crate::error::{DereferenceError, Error};
use crate::update::adopt::{self, Verdict};
use crate::update::candidate_tag;

/// Look again at a rolling candidate this often even without a deployment event (the watch
/// on deployments is what normally brings the model controller back).
pub const RECHECK: Duration = Duration::from_secs(60);

fn prev(model: &LlmModel) -> LlmModelStatus {
    model.status.clone().unwrap_or_default()
}

/// Every deployment promoted the candidate: it becomes the resolved revision, with its own
/// header's metadata and memory figures.
pub fn promoted(model: &LlmModel, now: &Time, promoted_in: &[String]) -> LlmModelStatus {
    let mut status = prev(model);
    let Some(c) = status.candidate.take() else {
        return status;
    };
    let source_url = status.resolved.as_ref().and_then(|r| r.source_url.clone());
    status.resolved = Some(ResolvedSource {
        sha256: c.sha256.clone(),
        size_bytes: c.size_bytes,
        size: c.size.clone(),
        etag: c.etag.clone(),
        revision: c.revision.clone(),
        url: c.url.clone(),
        source_url,
        last_modified: c.last_modified.clone(),
    });
    if c.gguf.is_some() {
        status.gguf.clone_from(&c.gguf);
        status.memory.clone_from(&c.memory);
    }
    let quantization = status.gguf.as_ref().and_then(|g| g.quantization.clone());
    set(
        &mut status.conditions,
        degraded(model, now, quantization.as_deref()),
    );
    let message = format!(
        "revision {} promoted in {}; it is now the resolved revision",
        candidate_tag(&c),
        promoted_in.join(", ")
    );
    set(
        &mut status.conditions,
        cond(model, now, UPDATE_AVAILABLE, false, "Promoted", message),
    );
    status
}

/// A deployment rolled the candidate back.
pub fn rolled_back(model: &LlmModel, now: &Time, why: String) -> LlmModelStatus {
    let mut status = prev(model);
    if let Some(c) = status.candidate.as_mut() {
        c.rolled_back = Some(why.clone());
    }
    let message = format!("{why}; the next check that finds another revision replaces it");
    set(
        &mut status.conditions,
        cond(model, now, UPDATE_AVAILABLE, true, "RolledBack", message),
    );
    status
}

/// Still rolling out: records where it was promoted so far.
pub fn pending(model: &LlmModel, promoted_in: Vec<String>) -> LlmModelStatus {
    let mut status = prev(model);
    if let Some(c) = status.candidate.as_mut() {
        c.promoted_in = promoted_in;
    }
    status
}

/// Follows the candidate's rollout when policy `Rollout` has one out; returns whether it is
/// still on its way (the caller then looks again within [`RECHECK`]).
pub async fn follow(
    ctx: &Context,
    api: &Api<LlmModel>,
    model: &LlmModel,
    ns: &str,
    regarding: &ObjectReference,
) -> Result<bool, Error> {
    let rollout = model.spec.update.as_ref().map(|u| u.policy) == Some(UpdatePolicy::Rollout);
    let Some(candidate) = model
        .status
        .as_ref()
        .and_then(|s| s.candidate.as_ref())
        .filter(|c| rollout && c.rolled_back.is_none())
    else {
        return Ok(false);
    };
    let name = model.metadata.name.clone().unwrap_or_default();
    let deployments = list_deployments(ctx, ns).await?;
    let now = (ctx.clock)();
    let verdict = adopt::judge(&name, candidate, &deployments);
    let desired = match &verdict {
        Verdict::Pending { promoted_in, .. } => pending(model, promoted_in.clone()),
        Verdict::Promoted { promoted_in } => promoted(model, &now, promoted_in),
        Verdict::RolledBack(why) => rolled_back(model, &now, why.clone()),
    };
    let wrote = write_if_changed(api, &name, model.status.as_ref(), &desired).await?;
    let note = desired
        .conditions
        .iter()
        .find(|c| c.type_ == UPDATE_AVAILABLE)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    match verdict {
        Verdict::Promoted { .. } if wrote => {
            tracing::info!(%ns, model = %name, %note, "update promoted");
            ctx.notify(regarding, "UpdatePromoted", note).await;
        }
        Verdict::RolledBack(_) if wrote => {
            tracing::warn!(%ns, model = %name, %note, "update rolled back");
            ctx.warn(regarding, "UpdateRolledBack", note).await;
        }
        _ => {}
    }
    Ok(matches!(verdict, Verdict::Pending { .. }))
}

/// The LlmDeployments of the namespace.
pub async fn list_deployments(ctx: &Context, ns: &str) -> Result<Vec<LlmDeployment>, Error> {
    let api: Api<LlmDeployment> = Api::namespaced(ctx.client.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| DereferenceError::List {
            kind: "LlmDeployment",
            source,
        })?;
    Ok(list.items)
}
