//! Status step: computes the LlmDeployment status (pure) and writes it with server-side apply
//! on the status subresource, only when it differs from what is there (radio silence).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use llamafleet_crds::{
    LlmDeployment, LlmDeploymentStatus, MemoryPlanStatus, RolloutPhase, RolloutStatus,
    VariantStatus,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent_status::AgentStatus;
use crate::deployment::dereference::LiveChildren;
use crate::deployment::plan::{Plan, ValidateError};
use crate::error::StatusError;
use crate::names::{self, FIELD_MANAGER};

/// Condition types the operator owns on an LlmDeployment, in the order written.
pub const READY: &str = "Ready";
/// Replicas are starting or downloading.
pub const PROGRESSING: &str = "Progressing";
/// Something is wrong that needs a person.
pub const DEGRADED: &str = "Degraded";
/// A progressive rollout put its candidate's weight back to 0.
pub const ROLLED_BACK: &str = "RolledBack";
/// `Degraded` reason (and Event reason) when an agent's startup failed.
pub const AGENT_FAILED: &str = "AgentFailed";

/// A condition whose `lastTransitionTime` stays what it was while its status does not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

fn previous_conditions(llmd: &LlmDeployment) -> &[Condition] {
    llmd.status
        .as_ref()
        .map_or(&[], |s| s.conditions.as_slice())
}

/// Status of a deployment the operator cannot act on: the user error in all three conditions.
pub fn blocked(llmd: &LlmDeployment, error: &ValidateError, now: &Time) -> LlmDeploymentStatus {
    let prev = previous_conditions(llmd);
    let generation = llmd.metadata.generation;
    let reason = error.reason();
    let message = error.to_string();
    let mut status = llmd.status.clone().unwrap_or_default();
    status.conditions = vec![
        condition(prev, READY, false, reason, message.clone(), generation, now),
        condition(
            prev,
            PROGRESSING,
            false,
            reason,
            message.clone(),
            generation,
            now,
        ),
        condition(prev, DEGRADED, true, reason, message, generation, now),
    ];
    status.observed_generation = generation;
    status
}

fn replicas_of(d: Option<&Deployment>) -> (i32, i32) {
    let desired = d.and_then(|d| d.spec.as_ref()?.replicas).unwrap_or(0);
    let ready = d
        .and_then(|d| d.status.as_ref()?.ready_replicas)
        .unwrap_or(0);
    (desired, ready)
}

/// A child Deployment that has given up: deadline exceeded, or pods that cannot be created.
pub fn stalled(d: &Deployment) -> bool {
    let conditions = d.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| {
        (c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            || (c.type_ == "ReplicaFailure" && c.status == "True")
    })
}

/// Records since when each sleeping variant sleeps.
pub fn with_sleep(status: &mut LlmDeploymentStatus, sleep: &super::sleep::Sleep) {
    for v in &mut status.variants {
        v.idle_since = sleep.asleep.get(&v.name).cloned();
    }
}

/// Status of a deployment whose children were applied.
pub fn observed(
    llmd: &LlmDeployment,
    plan: &Plan,
    live: &LiveChildren,
    agents: &BTreeMap<String, AgentStatus>,
    now: &Time,
) -> LlmDeploymentStatus {
    let mut variants = Vec::with_capacity(plan.variants.len());
    let (mut desired_total, mut ready_total) = (0, 0);
    for v in &plan.variants {
        let name = names::variant_object(&plan.name, &v.name);
        let (desired, ready) = replicas_of(live.deployment(&name));
        desired_total += desired;
        ready_total += ready;
        let agent = agents.get(&v.name);
        variants.push(VariantStatus {
            name: v.name.clone(),
            model: Some(v.model.name.clone()),
            sha256: v
                .model
                .sha256
                .clone()
                .or_else(|| agent.and_then(|a| a.sha256.clone())),
            weight: Some(v.weight),
            replicas: Some(desired),
            ready_replicas: Some(ready),
            acceleration: agent.and_then(AgentStatus::acceleration),
            download: agent.and_then(AgentStatus::download_progress),
            plan: v.memory_plan.as_ref().map(|p| MemoryPlanStatus {
                gpu_memory: crate::sizing::gpu_memory(&v.serving),
                ..crate::sizing::status(p, v.serving.threads, v.resources_from_spec)
            }),
            idle_since: None,
        });
    }
    let (router_desired, router_ready) =
        replicas_of(live.deployment(&names::router_deployment(&plan.name)));
    let all_ready = ready_total >= desired_total && router_ready >= router_desired.max(1);
    let downloading = variants.iter().any(|v| v.download.is_some());
    let stalled: Vec<&str> = live
        .deployments
        .iter()
        .filter(|d| stalled(d))
        .filter_map(|d| d.metadata.name.as_deref())
        .collect();

    let prev = previous_conditions(llmd);
    let generation = llmd.metadata.generation;
    let counts = format!(
        "{ready_total}/{desired_total} variant replicas and {router_ready}/{router_desired} \
         router replicas ready"
    );
    let (ready_reason, progress_reason) = match (all_ready, downloading) {
        (true, _) => ("AllReplicasReady", "Stable"),
        (false, true) => ("ReplicasNotReady", "Downloading"),
        (false, false) => ("ReplicasNotReady", "ReplicasStarting"),
    };
    // An agent that failed for good stays up saying why (`serve --hold-permanent-failure`):
    // that reason, not a restart count, is what the user needs.
    let failed: Vec<String> = agents
        .iter()
        .filter_map(|(variant, a)| a.failure().map(|why| format!("variant {variant}: {why}")))
        .collect();
    let degraded = if !failed.is_empty() {
        condition(
            prev,
            DEGRADED,
            true,
            AGENT_FAILED,
            failed.join("; "),
            generation,
            now,
        )
    } else if stalled.is_empty() {
        condition(
            prev,
            DEGRADED,
            false,
            "AsExpected",
            String::new(),
            generation,
            now,
        )
    } else {
        let message = format!("Deployments not progressing: {}", stalled.join(", "));
        condition(
            prev,
            DEGRADED,
            true,
            "DeploymentStalled",
            message,
            generation,
            now,
        )
    };
    let mut status = llmd.status.clone().unwrap_or_default();
    status.weights = Some(
        variants
            .iter()
            .map(|v| format!("{}={}", v.name, v.weight.unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(","),
    );
    status.ready = Some(format!("{ready_total}/{desired_total}"));
    status.endpoint = Some(names::endpoint(&plan.name, &plan.namespace));
    status.variants = variants;
    status.conditions = vec![
        condition(
            prev,
            READY,
            all_ready,
            ready_reason,
            counts.clone(),
            generation,
            now,
        ),
        condition(
            prev,
            PROGRESSING,
            !all_ready,
            progress_reason,
            counts,
            generation,
            now,
        ),
        degraded,
    ];
    status.observed_generation = generation;
    status
}

/// The message of an agent failure `new` reports and `old` did not (so one Event is
/// published per failure, not one per reconcile).
pub fn new_agent_failure(
    old: Option<&LlmDeploymentStatus>,
    new: &LlmDeploymentStatus,
) -> Option<String> {
    let failure = |s: &LlmDeploymentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == DEGRADED && c.reason == AGENT_FAILED)
            .map(|c| c.message.clone())
    };
    let now = failure(new)?;
    (old.and_then(failure).as_ref() != Some(&now)).then_some(now)
}

/// Sets `status.rollout` and, while there is a rollout status, the `RolledBack` condition:
/// True with the failing figures after a rollback, else False.
pub fn with_rollout(
    status: &mut LlmDeploymentStatus,
    llmd: &LlmDeployment,
    rollout: Option<RolloutStatus>,
    now: &Time,
) {
    if let Some(r) = &rollout {
        let rolled_back = r.phase == Some(RolloutPhase::RolledBack);
        let (reason, message) = if rolled_back {
            ("AnalysisFailed", r.reason.clone().unwrap_or_default())
        } else {
            ("NotRolledBack", String::new())
        };
        status.conditions.push(condition(
            previous_conditions(llmd),
            ROLLED_BACK,
            rolled_back,
            reason,
            message,
            llmd.metadata.generation,
            now,
        ));
    }
    status.rollout = rollout;
}

/// Whether some variant has fewer ready replicas than it asks for (the reconcile then polls
/// its agents for download progress).
pub fn replicas_starting(status: &LlmDeploymentStatus) -> bool {
    status
        .variants
        .iter()
        .any(|v| v.ready_replicas.unwrap_or(0) < v.replicas.unwrap_or(0))
}

/// Writes `desired` as the object's status when it differs from `current`; returns whether
/// it wrote. The patch is `{apiVersion, kind, status}`, server-side applied and forced.
pub async fn write_if_changed<K, S>(
    api: &Api<K>,
    name: &str,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, StatusError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&patch))
        .await
        .map_err(StatusError::Patch)?;
    Ok(true)
}
