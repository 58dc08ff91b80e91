//! Presets and request limits reach the serving agents, not only the router: the router
//! forwards request bodies unchanged, so the agents must answer the deployment's model name
//! and its preset names themselves. Presets travel as `presets.yaml` in the routing
//! ConfigMap (the CRD's own `Preset` list, which `llamafleet-agent serve --preset` reads),
//! mounted into the variant pods; a hash of it on the pod template restarts the agents when
//! presets change (they read the file once, at start).

use k8s_openapi::api::core::v1::{Volume, VolumeMount};
use sha2::{Digest, Sha256};

use super::routing;
use crate::deployment::plan::Plan;
use crate::names::{PRESETS_DIR, PRESETS_KEY};

/// Name of the presets volume in variant pods.
pub const PRESETS_VOLUME: &str = "presets";
/// Pod-template annotation holding the sha256 of `presets.yaml`.
pub const PRESETS_HASH_ANNOTATION: &str = "llamafleet.dev/presets-sha256";

/// `presets.yaml`, when the deployment has presets.
pub fn yaml(plan: &Plan) -> Option<String> {
    if plan.spec.presets.is_empty() {
        return None;
    }
    // Serialising plain structs of strings and numbers cannot fail.
    serde_norway::to_string(&plan.spec.presets).ok()
}

/// sha256 (hex) of `presets.yaml`.
pub fn hash(yaml: &str) -> String {
    hex::encode(Sha256::digest(yaml.as_bytes()))
}

/// Agent arguments: the deployment's name as the model name, limits, and the presets file.
pub fn serve_args(plan: &Plan) -> Vec<String> {
    let mut args = vec!["--model-name".to_string(), plan.name.clone()];
    let limits = plan.spec.access.as_ref().and_then(|a| a.limits.as_ref());
    if let Some(bytes) = limits.and_then(|l| l.max_body_bytes) {
        args.extend(["--max-body-bytes".into(), bytes.to_string()]);
    }
    if let Some(seconds) = limits.and_then(|l| l.request_timeout_seconds) {
        args.extend(["--request-timeout".into(), seconds.to_string()]);
    }
    if let Some(tokens) = limits.and_then(|l| l.max_prompt_tokens) {
        args.extend(["--max-prompt-tokens".into(), tokens.to_string()]);
    }
    if let Some(tokens) = limits.and_then(|l| l.max_tokens) {
        args.extend(["--max-tokens".into(), tokens.to_string()]);
    }
    if !plan.spec.presets.is_empty() {
        args.extend(["--preset".into(), format!("{PRESETS_DIR}/{PRESETS_KEY}")]);
    }
    args
}

/// The volume (only `presets.yaml` of the routing ConfigMap) and its mount, with presets.
pub fn volume(plan: &Plan) -> Option<(Volume, VolumeMount)> {
    if plan.spec.presets.is_empty() {
        return None;
    }
    Some(routing::key_volume(
        plan,
        PRESETS_VOLUME,
        PRESETS_KEY,
        PRESETS_DIR,
        None,
    ))
}
