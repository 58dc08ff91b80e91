//! The cached models every serving pod keeps on its node besides the one it serves: `keep.yaml`
//! in the routing ConfigMap (a YAML list of sha256s, see [`crate::update::retain`]), read by
//! `llamafleet-agent serve --keep-file`.
//!
//! The list changes without restarting anything. The agents re-read it, so unlike presets
//! the pod template carries neither it nor a hash of it, and every variant pod mounts the key
//! and passes the flag whether or not an update is under way: a candidate appearing changes
//! only the ConfigMap. The key is always written, `[]` when nothing is kept, because the apply
//! step skips an object whose fields the live one already has, so a key left out would never
//! be removed from the cluster. The mount is optional so a missing key can never keep a pod
//! from starting; the agent reads a missing file as an empty list.

use k8s_openapi::api::core::v1::{Volume, VolumeMount};

use super::routing;
use crate::deployment::plan::Plan;
use crate::names::{KEEP_DIR, KEEP_KEY};

/// Name of the keep-list volume in variant pods.
pub const KEEP_VOLUME: &str = "keep";

/// `keep.yaml`.
pub fn yaml(plan: &Plan) -> String {
    // Serialising a list of strings cannot fail.
    serde_norway::to_string(&plan.keep).unwrap_or_default()
}

/// Agent arguments: the keep file.
pub fn serve_args() -> Vec<String> {
    vec!["--keep-file".into(), format!("{KEEP_DIR}/{KEEP_KEY}")]
}

/// The volume (only `keep.yaml` of the routing ConfigMap, optional) and its mount.
pub fn volume(plan: &Plan) -> (Volume, VolumeMount) {
    routing::key_volume(plan, KEEP_VOLUME, KEEP_KEY, KEEP_DIR, Some(true))
}
