//! The status a model should have after each kind of reconcile (pure).
//!
//! Conditions: `Ready` (usable by deployments), `SourceReachable` (the last contact with the
//! source), `Degraded` (declared quantization differs from the file) and `UpdateAvailable`
//! (scheduled checks; only with a checking policy).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use llamafleet_crds::{
    Candidate, GgufSummary, InvalidSpec, LlmModel, LlmModelStatus, MemoryEstimate, ModelPhase,
    ResolvedSource,
};

use super::resolve::{Resolution, ResolveError};
use crate::deployment::status::{DEGRADED, READY, condition};

/// The last contact with the source succeeded.
pub const SOURCE_REACHABLE: &str = "SourceReachable";
/// A scheduled check found a new revision.
pub const UPDATE_AVAILABLE: &str = "UpdateAvailable";

fn prev(model: &LlmModel) -> LlmModelStatus {
    model.status.clone().unwrap_or_default()
}

pub(super) fn cond(
    model: &LlmModel,
    now: &Time,
    type_: &str,
    ok: bool,
    reason: &str,
    msg: String,
) -> Condition {
    let p = prev(model);
    condition(
        &p.conditions,
        type_,
        ok,
        reason,
        msg,
        model.metadata.generation,
        now,
    )
}

fn i64_of(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

/// The source as the spec writes it.
fn spec_source(model: &LlmModel) -> ResolvedSource {
    ResolvedSource {
        url: Some(model.spec.source.url.clone()),
        sha256: model.spec.source.sha256.clone(),
        ..ResolvedSource::default()
    }
}

/// `Ready` from the spec alone (resolution off, or a `file://` path only the node has).
pub fn from_spec(model: &LlmModel, now: &Time, reason: &str, message: String) -> LlmModelStatus {
    LlmModelStatus {
        phase: Some(ModelPhase::Ready),
        resolved: Some(spec_source(model)),
        conditions: vec![cond(model, now, READY, true, reason, message)],
        observed_generation: model.metadata.generation,
        ..LlmModelStatus::default()
    }
}

/// An invalid spec: `Failed`, nothing resolved.
pub fn invalid(model: &LlmModel, now: &Time, error: &InvalidSpec) -> LlmModelStatus {
    LlmModelStatus {
        phase: Some(ModelPhase::Failed),
        conditions: vec![cond(
            model,
            now,
            READY,
            false,
            "InvalidSpec",
            error.to_string(),
        )],
        observed_generation: model.metadata.generation,
        ..LlmModelStatus::default()
    }
}

pub(super) fn gguf_summary(r: &Resolution) -> GgufSummary {
    let s = &r.summary;
    let i = |v: Option<u64>| v.and_then(i64_of);
    GgufSummary {
        architecture: s.architecture.clone(),
        parameters: i64_of(s.parameters),
        quantization: s.quantization.clone(),
        context_length: i(s.context_length),
        layers: i(s.layers),
        embedding_length: i(s.embedding_length),
        heads: i(s.heads),
        kv_heads: i(s.kv_heads),
        vocab_size: i(s.vocab_size),
    }
}

pub(super) fn memory(r: &Resolution) -> Option<MemoryEstimate> {
    r.memory.as_ref().map(|m| MemoryEstimate {
        weights_bytes: i64_of(m.weights_bytes),
        kv_bytes_per_token: i64_of(m.kv_bytes_per_token),
        layer_weights_bytes: i64_of(m.layer_weights_bytes),
    })
}

/// `Degraded` from the declared quantization and the file's.
pub(super) fn degraded(model: &LlmModel, now: &Time, found: Option<&str>) -> Condition {
    match (model.spec.quantization.as_deref(), found) {
        (Some(declared), Some(found)) if !declared.eq_ignore_ascii_case(found) => cond(
            model,
            now,
            DEGRADED,
            true,
            "QuantizationMismatch",
            format!("spec declares quantization {declared} but the file is {found}"),
        ),
        _ => cond(model, now, DEGRADED, false, "AsExpected", String::new()),
    }
}

/// The `UpdateAvailable` condition for the current candidate (`None` without a checking
/// policy).
fn update_condition(
    model: &LlmModel,
    now: &Time,
    checking: bool,
    candidate: Option<&Candidate>,
) -> Option<Condition> {
    if !checking {
        return None;
    }
    Some(match candidate {
        Some(Candidate {
            rolled_back: Some(why),
            ..
        }) => cond(
            model,
            now,
            UPDATE_AVAILABLE,
            true,
            "RolledBack",
            format!("{why}; the next check that finds another revision replaces it"),
        ),
        Some(c) => {
            let what = c
                .sha256
                .as_deref()
                .or(c.revision.as_deref())
                .or(c.etag.as_deref())
                .unwrap_or("unknown");
            cond(
                model,
                now,
                UPDATE_AVAILABLE,
                true,
                "NewRevision",
                format!("source changed: {what}"),
            )
        }
        None => cond(
            model,
            now,
            UPDATE_AVAILABLE,
            false,
            "UpToDate",
            String::new(),
        ),
    })
}

/// First resolution (or after a spec change) succeeded. It counts as an update check.
pub fn resolved(model: &LlmModel, now: &Time, r: &Resolution, checking: bool) -> LlmModelStatus {
    let note = format!(
        "resolved {} ({})",
        r.resolved.url.as_deref().unwrap_or_default(),
        r.resolved.size.as_deref().unwrap_or("size unknown")
    );
    let mut conditions = vec![
        cond(model, now, READY, true, "Resolved", note.clone()),
        cond(model, now, SOURCE_REACHABLE, true, "Resolved", note),
        degraded(model, now, r.summary.quantization.as_deref()),
    ];
    conditions.extend(update_condition(model, now, checking, None));
    LlmModelStatus {
        phase: Some(ModelPhase::Ready),
        resolved: Some(r.resolved.clone()),
        gguf: Some(gguf_summary(r)),
        memory: memory(r),
        last_update_check: checking.then(|| now.clone()),
        candidate: None,
        conditions,
        observed_generation: model.metadata.generation,
    }
}

/// Whether the spec still names the source the status resolved (a new generation that only
/// changed other fields): same URL, and no sha256 pin that the resolved file does not have.
pub fn same_source(model: &LlmModel) -> bool {
    let Some(status) = model.status.as_ref() else {
        return false;
    };
    let Some(resolved) = status.resolved.as_ref() else {
        return false;
    };
    let source = &model.spec.source;
    status.phase == Some(ModelPhase::Ready)
        && status.gguf.is_some()
        && resolved.source_url.as_deref() == Some(source.url.as_str())
        && source
            .sha256
            .as_ref()
            .is_none_or(|pin| resolved.sha256.as_ref() == Some(pin))
}

/// A new generation over the same source ([`same_source`]): the resolved file stays, since a
/// spec edit (a schedule, a template) must not swap the served model behind a rollout. With a
/// checking policy the read counts as a check, so a changed file becomes the candidate; without
/// one the change is only reported in `SourceReachable`, and a candidate is dropped.
pub fn kept(
    model: &LlmModel,
    now: &Time,
    r: &Resolution,
    checking: bool,
    targets: Targets,
) -> LlmModelStatus {
    let mut status = if checking {
        checked(model, now, r, targets)
    } else {
        let mut status = prev(model);
        status.candidate = None;
        status.last_update_check = None;
        status.conditions.retain(|c| c.type_ != UPDATE_AVAILABLE);
        let old = status.resolved.clone().unwrap_or_default();
        let note = if changed(&old, r.remote_sha256.as_deref(), &r.resolved) {
            format!(
                "the source now serves another file ({}); the resolved one stays: pin \
                 spec.source.sha256 or set an update policy to take it",
                r.remote_sha256
                    .as_deref()
                    .or(r.resolved.revision.as_deref())
                    .or(r.resolved.etag.as_deref())
                    .unwrap_or("changed")
            )
        } else {
            "source unchanged".to_string()
        };
        set(
            &mut status.conditions,
            cond(model, now, SOURCE_REACHABLE, true, "Resolved", note),
        );
        status
    };
    let quantization = status.gguf.as_ref().and_then(|g| g.quantization.clone());
    let ready_note = format!(
        "resolved {} (kept across the spec change)",
        status
            .resolved
            .as_ref()
            .and_then(|r| r.url.as_deref())
            .unwrap_or_default()
    );
    set(
        &mut status.conditions,
        cond(model, now, READY, true, "Resolved", ready_note),
    );
    set(
        &mut status.conditions,
        degraded(model, now, quantization.as_deref()),
    );
    status.phase = Some(ModelPhase::Ready);
    status.observed_generation = model.metadata.generation;
    status
}

/// First resolution failed: `Failed`, with the error in `Ready` and `SourceReachable`.
pub fn failed(model: &LlmModel, now: &Time, error: &ResolveError) -> LlmModelStatus {
    let (reason, message) = (error.reason(), error.to_string());
    LlmModelStatus {
        phase: Some(ModelPhase::Failed),
        conditions: vec![
            cond(model, now, READY, false, reason, message.clone()),
            cond(model, now, SOURCE_REACHABLE, false, reason, message),
        ],
        observed_generation: model.metadata.generation,
        ..LlmModelStatus::default()
    }
}

/// Whether the file the source serves now differs from the resolved one: a known sha256,
/// ETag or revision that changed.
pub fn changed(old: &ResolvedSource, remote_sha256: Option<&str>, new: &ResolvedSource) -> bool {
    let differs = |a: Option<&str>, b: Option<&str>| matches!((a, b), (Some(a), Some(b)) if a != b);
    differs(old.sha256.as_deref(), remote_sha256)
        || differs(old.etag.as_deref(), new.etag.as_deref())
        || differs(old.revision.as_deref(), new.revision.as_deref())
}

/// What a check with policy `Rollout` learnt from the deployments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    /// The progressive deployments serving the model.
    pub rollout_to: Vec<String>,
    /// The current candidate is still rolling out in some of them.
    pub rolling: bool,
}

/// A scheduled check succeeded: only `lastUpdateCheck`, the candidate and its condition
/// change; what deployments serve stays as it is. A candidate still rolling out is kept even
/// when the source moved on again: replacing it would pull its update variants from under the
/// traffic they carry; the newer revision is found by the first check after it finished.
pub fn checked(model: &LlmModel, now: &Time, r: &Resolution, targets: Targets) -> LlmModelStatus {
    let remote_sha256 = r.remote_sha256.as_deref();
    let mut status = prev(model);
    if targets.rolling {
        status.last_update_check = Some(now.clone());
        let note = "update check succeeded; the candidate is still rolling out".to_string();
        let reachable = cond(model, now, SOURCE_REACHABLE, true, "Checked", note);
        set(&mut status.conditions, reachable);
        return status;
    }
    let rollout_to = targets.rollout_to;
    let old = status.resolved.clone().unwrap_or_default();
    let candidate = changed(&old, remote_sha256, &r.resolved).then(|| {
        let same = |c: &Candidate| {
            c.sha256.as_deref() == remote_sha256
                && c.etag == r.resolved.etag
                && c.revision == r.resolved.revision
        };
        // The same revision as last time keeps what its rollout recorded.
        let known = status.candidate.clone().filter(|c| same(c));
        Candidate {
            sha256: remote_sha256.map(str::to_owned),
            revision: r.resolved.revision.clone(),
            detected_at: Some(
                known
                    .as_ref()
                    .and_then(|c| c.detected_at.clone())
                    .unwrap_or_else(|| now.clone()),
            ),
            etag: r.resolved.etag.clone(),
            url: r.resolved.url.clone(),
            size_bytes: r.resolved.size_bytes,
            size: r.resolved.size.clone(),
            last_modified: r.resolved.last_modified.clone(),
            gguf: Some(gguf_summary(r)),
            memory: memory(r),
            rollout_to,
            promoted_in: known
                .as_ref()
                .map(|c| c.promoted_in.clone())
                .unwrap_or_default(),
            rolled_back: known.and_then(|c| c.rolled_back),
        }
    });
    status.last_update_check = Some(now.clone());
    status.candidate = candidate;
    set(
        &mut status.conditions,
        cond(
            model,
            now,
            SOURCE_REACHABLE,
            true,
            "Checked",
            "update check succeeded".into(),
        ),
    );
    if let Some(c) = update_condition(model, now, true, status.candidate.as_ref()) {
        set(&mut status.conditions, c);
    }
    status
}

/// A scheduled check failed: the model stays usable; `SourceReachable` says why, and
/// `lastUpdateCheck` stays, so the check is retried (with backoff).
pub fn check_failed(model: &LlmModel, now: &Time, error: &ResolveError) -> LlmModelStatus {
    let mut status = prev(model);
    set(
        &mut status.conditions,
        cond(
            model,
            now,
            SOURCE_REACHABLE,
            false,
            error.reason(),
            error.to_string(),
        ),
    );
    status
}

/// The schedule cannot be parsed: said in `UpdateAvailable`; nothing is checked.
pub fn bad_schedule(model: &LlmModel, now: &Time, message: String) -> Condition {
    cond(
        model,
        now,
        UPDATE_AVAILABLE,
        false,
        "InvalidSchedule",
        message,
    )
}

/// Replaces the condition of the same type, or appends it.
pub fn set(conditions: &mut Vec<Condition>, c: Condition) {
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(slot) => *slot = c,
        None => conditions.push(c),
    }
}
