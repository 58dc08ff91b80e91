//! Model updates rolled out through deployments (`spec.update.policy: Rollout`).
//!
//! When a scheduled check finds a new revision of a model, every progressive LlmDeployment in
//! `status.candidate.rolloutTo` gets, for each variant of that model with traffic, an *update
//! variant* `<variant>-<tag>` (the tag, 8 hex digits, names the revision) that serves the
//! candidate file. The deployment's own rollout moves the variant's weight to it step by step
//! and promotes or rolls it back ([`derive`]). The model controller follows those rollouts
//! ([`adopt`]): once every deployment promoted, the candidate becomes `status.resolved`; when
//! one rolled back, the candidate is marked rolled back and not tried again.
//!
//! Then each deployment hands the traffic back to the variant, now on the resolved file (the
//! new one after a promotion, the old one after a rollback): the variant's replicas start,
//! it takes its weight back as soon as they are ready, and the update variant is scaled down
//! and removed only once every router runs the table without it. Until then the old variant's
//! objects stay in place, and every serving pod of every deployment of the model keeps both
//! files in its node's cache ([`retain`]), so a rollback needs no download.

pub mod adopt;
pub mod derive;
pub mod retain;

use llamafleet_crds::{
    Candidate, LlmDeploymentSpec, LlmModel, ResolvedSource, RolloutStrategy, UpdatePolicy, Variant,
};
use sha2::{Digest, Sha256};

/// Hex digits of a revision tag: short enough for object names, enough to tell revisions of
/// one model apart.
pub const TAG_LEN: usize = 8;

/// The tag of a revision: the start of its sha256 when known, else of a hash of what names it
/// (revision, ETag, URL).
pub fn tag(
    sha256: Option<&str>,
    revision: Option<&str>,
    etag: Option<&str>,
    url: Option<&str>,
) -> String {
    let hex = match sha256.filter(|s| s.len() >= TAG_LEN) {
        Some(sha) => sha.to_ascii_lowercase(),
        None => {
            let mut h = Sha256::new();
            for part in [revision, etag, url] {
                h.update(part.unwrap_or_default().as_bytes());
                h.update([0]);
            }
            hex::encode(h.finalize())
        }
    };
    hex[..TAG_LEN].to_string()
}

/// Tag of a candidate revision.
pub fn candidate_tag(c: &Candidate) -> String {
    tag(
        c.sha256.as_deref(),
        c.revision.as_deref(),
        c.etag.as_deref(),
        c.url.as_deref(),
    )
}

/// Tag of a resolved revision (equal to its candidate's tag once promoted).
pub fn resolved_tag(r: &ResolvedSource) -> String {
    tag(
        r.sha256.as_deref(),
        r.revision.as_deref(),
        r.etag.as_deref(),
        r.url.as_deref(),
    )
}

/// Name of the update variant of `variant` for the revision `tag`.
pub fn variant_name(variant: &str, tag: &str) -> String {
    format!("{variant}-{tag}")
}

/// Key of a revision of `model` in the models a plan is made from; `@` cannot occur in an
/// object name, so it never meets a real model.
pub fn model_key(model: &str, tag: &str) -> String {
    format!("{model}@{tag}")
}

/// Whether the deployment rolls out progressively.
pub fn progressive(spec: &LlmDeploymentSpec) -> bool {
    spec.rollout
        .as_ref()
        .is_some_and(|r| r.strategy == RolloutStrategy::Progressive)
}

/// The variants of `spec` that serve `model` with traffic: the ones an update replaces.
pub fn updated_variants<'a>(
    spec: &'a LlmDeploymentSpec,
    model: &'a str,
) -> impl Iterator<Item = &'a Variant> + 'a {
    spec.variants
        .iter()
        .filter(move |v| v.model == model && v.weight > 0)
}

/// The candidate `model` is rolling out to the deployment `llmd` now: policy `Rollout`, the
/// deployment named in `rolloutTo`, and not rolled back.
pub fn rolling_to<'a>(model: &'a LlmModel, llmd: &str) -> Option<&'a Candidate> {
    let policy = model.spec.update.as_ref().map(|u| u.policy);
    if policy != Some(UpdatePolicy::Rollout) {
        return None;
    }
    model
        .status
        .as_ref()?
        .candidate
        .as_ref()
        .filter(|c| c.rolled_back.is_none() && c.rollout_to.iter().any(|d| d == llmd))
}
