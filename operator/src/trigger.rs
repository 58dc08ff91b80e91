//! Which watch events of children wake their LlmDeployment's reconcile.
//!
//! Every event still reaches the store (the reconcile reads current objects); only the trigger
//! is filtered. Other controllers write our children's status all the time: at a thousand
//! LlmDeployments the controller-manager's status writes of Deployments and PDBs (about twenty
//! a second for minutes after a mass creation, at its default client rate) woke a reconcile
//! each, which then found nothing to do. A child's event triggers only when something a
//! reconcile reads changed: its metadata and spec (drift is repaired), and of a Deployment's
//! status the ready replicas and whether it stalled ([`StatusRead`]). Creations and deletions
//! always trigger.
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::runtime::watcher;
use serde::Serialize;
use serde_json::Value;

use crate::deployment::status;

/// Metadata fields that change on every write without a change of content.
const VOLATILE_METADATA: [&str; 3] = ["resourceVersion", "managedFields", "generation"];

/// What a reconcile reads of a child's status (nothing, for most kinds).
pub trait StatusRead {
    /// The read part of the status, `null` when none is read.
    fn status_read(&self) -> Value {
        Value::Null
    }
}

impl StatusRead for Deployment {
    /// Ready replicas (readiness, rollout steps) and whether it stalled (`Degraded`).
    fn status_read(&self) -> Value {
        let ready = self.status.as_ref().and_then(|s| s.ready_replicas);
        serde_json::json!({"readyReplicas": ready, "stalled": status::stalled(self)})
    }
}

impl StatusRead for ConfigMap {}
impl StatusRead for Service {}
impl StatusRead for PodDisruptionBudget {}
impl StatusRead for HorizontalPodAutoscaler {}
impl StatusRead for ServiceAccount {}
impl StatusRead for Role {}
impl StatusRead for RoleBinding {}

/// A hash of what a reconcile reads of `obj` (see the module's comment).
pub fn content_hash<K: Serialize + StatusRead>(obj: &K) -> u64 {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in VOLATILE_METADATA {
            meta.remove(f);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("status".into(), obj.status_read());
    }
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// Passes the events of `events` that change an object's content (see [`content_hash`]),
/// every deletion, and the listing markers.
pub fn content_changes<K, S>(events: S) -> impl Stream<Item = S::Item> + Send
where
    K: Resource + StatusRead + Serialize + Send,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut seen: HashMap<(Option<String>, String), u64> = HashMap::new();
    events.filter(move |event| {
        let pass = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let hash = content_hash(o);
                seen.insert(key_of(o), hash) != Some(hash)
            }
            Ok(watcher::Event::Delete(o)) => {
                seen.remove(&key_of(o));
                true
            }
            _ => true,
        };
        std::future::ready(pass)
    })
}

fn key_of<K: Resource>(o: &K) -> (Option<String>, String) {
    let meta = o.meta();
    (
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(rv: &str, updated: &str, ready: i32) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "n", "resourceVersion": rv},
            "spec": {"selector": {}, "template": {}},
            "status": {"readyReplicas": ready, "conditions": [
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "lastUpdateTime": updated, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap_or_default()
    }

    #[tokio::test]
    async fn only_changes_of_content_and_deletions_pass() {
        let events = vec![
            Ok(watcher::Event::InitApply(deployment(
                "1",
                "2026-01-01T00:00:01Z",
                0,
            ))),
            Ok(watcher::Event::InitDone),
            // A heartbeat of the Deployment controller: nothing a reconcile reads changed.
            Ok(watcher::Event::Apply(deployment(
                "2",
                "2026-01-01T00:00:02Z",
                0,
            ))),
            Ok(watcher::Event::Apply(deployment(
                "3",
                "2026-01-01T00:00:03Z",
                1,
            ))),
            Ok(watcher::Event::Delete(deployment(
                "3",
                "2026-01-01T00:00:03Z",
                1,
            ))),
            // Made again as it was: a creation, which triggers.
            Ok(watcher::Event::Apply(deployment(
                "4",
                "2026-01-01T00:00:03Z",
                1,
            ))),
        ];
        let passed: Vec<String> = content_changes(futures_util::stream::iter(events))
            .map(|e| match e {
                Ok(watcher::Event::InitApply(d)) => {
                    format!("init {:?}", d.metadata.resource_version)
                }
                Ok(watcher::Event::Apply(d)) => format!("apply {:?}", d.metadata.resource_version),
                Ok(watcher::Event::Delete(d)) => {
                    format!("delete {:?}", d.metadata.resource_version)
                }
                Ok(_) => "marker".into(),
                Err(e) => format!("error {e}"),
            })
            .collect()
            .await;
        assert_eq!(
            passed,
            [
                "init Some(\"1\")",
                "marker",
                "apply Some(\"3\")",
                "delete Some(\"3\")",
                "apply Some(\"4\")"
            ]
        );
    }

    #[test]
    fn status_is_read_only_where_a_reconcile_reads_it() {
        let pdb = |allowed: i32, spec_max: i32| -> PodDisruptionBudget {
            serde_json::from_value(json!({
                "metadata": {"name": "p", "namespace": "n"},
                "spec": {"maxUnavailable": spec_max},
                "status": {"disruptionsAllowed": allowed, "currentHealthy": 0,
                           "desiredHealthy": 0, "expectedPods": 0}
            }))
            .unwrap_or_default()
        };
        // A PDB's status is the disruption controller's business.
        assert_eq!(content_hash(&pdb(0, 1)), content_hash(&pdb(1, 1)));
        assert_ne!(content_hash(&pdb(0, 1)), content_hash(&pdb(0, 2)));
        // A Deployment's ready count and conditions are read; the heartbeat is not.
        let a = deployment("1", "2026-01-01T00:00:01Z", 0);
        let b = deployment("2", "2026-01-01T00:00:02Z", 0);
        let c = deployment("3", "2026-01-01T00:00:02Z", 1);
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&b), content_hash(&c));
    }
}
