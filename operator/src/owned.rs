//! What of a child this operator owns: the fields its field manager applied, as the API server
//! records them in `managedFields` (`fieldsV1`, the structured-merge-diff field set), and a
//! fingerprint of their values.
//!
//! The watch caches keep of a child its metadata, the few fields a step reads, and this
//! fingerprint instead of its whole content: at a thousand LlmDeployments the cached pod
//! templates were most of the operator's memory. The apply step compares the fingerprint of
//! a built child with the live one's. A field another manager changed changed owner too (an
//! update or a forced apply takes the ownership of what it changes), so it leaves our set,
//! the fingerprints differ and the child is applied again; a field the operator stopped
//! setting is still in our set until the next apply, which removes it.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Serialize;
use serde_json::{Map, Value};

/// The label under which a cached child carries the fingerprint of the fields the operator
/// owns. Only in the operator's memory: never written to the cluster.
pub const FINGERPRINT: &str = "llamafleet.dev/cached-owned-fingerprint";

/// The fingerprint of the owned fields of a live object (`whole`, its `managedFields`
/// aside): everything but `apiVersion`, `kind` and `status`, projected on `owned`.
pub fn live_fingerprint(whole: &Value, owned: &Map<String, Value>) -> String {
    let mut kept = Map::new();
    for (key, value) in whole.as_object().into_iter().flatten() {
        if matches!(key.as_str(), "apiVersion" | "kind" | "status") {
            continue;
        }
        if let Some(set) = owned.get(&format!("f:{key}")).and_then(Value::as_object) {
            let projected = project(value, set);
            // As `built_fingerprint` leaves out a metadata with only a name.
            if !(key == "metadata" && projected.as_object().is_some_and(Map::is_empty)) {
                kept.insert(key.clone(), projected);
            }
        }
    }
    fingerprint(&Value::Object(kept))
}

/// The fingerprint a built object's live copy has once applied: all it sets but what
/// identifies it (`apiVersion`, `kind`, name and namespace, which are no owned fields).
pub fn built_fingerprint<K: Serialize>(obj: &K) -> String {
    let mut v = serde_json::to_value(obj).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
        o.remove("status");
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("name");
            meta.remove("namespace");
            if meta.is_empty() {
                o.remove("metadata");
            }
        }
    }
    fingerprint(&v)
}

/// A hash of `v` that does not depend on the order of object keys (the API server's JSON and
/// ours order them differently).
fn fingerprint(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    hash_value(v, &mut h);
    format!("{:016x}", h.finish())
}

fn hash_value(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            "{".hash(h);
            for k in keys {
                k.hash(h);
                hash_value(&o[k], h);
            }
            "}".hash(h);
        }
        Value::Array(items) => {
            "[".hash(h);
            items.iter().for_each(|i| hash_value(i, h));
            "]".hash(h);
        }
        other => other.to_string().hash(h),
    }
}

/// The fields `manager` owns in an object with these `managedFields` entries (those of the
/// main resource, not of a subresource such as `status`), merged; `None` when it owns none.
pub fn fields_of(
    entries: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry],
    manager: &str,
) -> Option<Map<String, Value>> {
    let mut owned: Option<Map<String, Value>> = None;
    let mine = entries.iter().filter(|e| {
        e.manager.as_deref() == Some(manager) && e.subresource.as_deref().unwrap_or("").is_empty()
    });
    for entry in mine {
        let Some(Value::Object(set)) = entry.fields_v1.as_ref().map(|f| &f.0) else {
            continue;
        };
        match owned.as_mut() {
            Some(o) => merge(o, set),
            None => owned = Some(set.clone()),
        }
    }
    owned
}

fn merge(into: &mut Map<String, Value>, set: &Map<String, Value>) {
    for (key, sub) in set {
        match (into.get_mut(key), sub) {
            (Some(Value::Object(have)), Value::Object(add)) => merge(have, add),
            (Some(_), _) => {}
            (None, _) => {
                into.insert(key.clone(), sub.clone());
            }
        }
    }
}

/// The part of `value` that the field set `set` names. A set naming no member (`{}`, or only
/// `.`, the element itself) owns the value whole: a scalar, or an atomic map or list.
/// Members of a map are `f:<name>`; of a list, `k:<key fields as JSON>` (an element of a map
/// list), `v:<value as JSON>` (of a set list) or `i:<index>`.
fn project(value: &Value, set: &Map<String, Value>) -> Value {
    let members: Vec<(&String, &Value)> = set.iter().filter(|(k, _)| *k != ".").collect();
    if members.is_empty() {
        return value.clone();
    }
    match value {
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, sub) in members {
                let Some(name) = key.strip_prefix("f:") else {
                    continue;
                };
                if let Some(v) = fields.get(name) {
                    out.insert(name.to_string(), project(v, as_set(sub)));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let (_, sub) = members.iter().find(|(k, _)| names(k, i, item))?;
                Some(project(item, as_set(sub)))
            })
            .collect(),
        other => other.clone(),
    }
}

fn as_set(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    v.as_object().unwrap_or(&EMPTY)
}

/// Whether the list member `key` names the element `item` at `index`.
fn names(key: &str, index: usize, item: &Value) -> bool {
    if let Some(json) = key.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(json) else {
            return false;
        };
        keys.iter().all(|(k, v)| item.get(k) == Some(v))
    } else if let Some(json) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(json).is_ok_and(|v| &v == item)
    } else if let Some(i) = key.strip_prefix("i:") {
        i.parse() == Ok(index)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_projection_keeps_exactly_the_owned_fields() {
        let live = json!({
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"spec": {
                "dnsPolicy": "ClusterFirst",
                "containers": [
                    {"name": "agent", "image": "a:1", "args": ["serve", "--port", "8080"],
                     "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/x",
                     "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}]},
                    {"name": "injected", "image": "sidecar"}
                ],
                "tolerations": [{"key": "gpu", "operator": "Exists"}],
                "finalizers": ["a", "b"]
            }}
        });
        let owned = set(json!({
            "f:replicas": {},
            "f:selector": {},
            "f:template": {"f:spec": {
                "f:containers": {"k:{\"name\":\"agent\"}": {
                    ".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                    "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {
                        ".": {}, "f:containerPort": {}, "f:name": {}}}}},
                "f:tolerations": {},
                "f:finalizers": {"v:\"b\"": {}}
            }}
        }));
        assert_eq!(
            project(&live, &owned),
            json!({
                "replicas": 1,
                "selector": {"matchLabels": {"app": "x"}},
                "template": {"spec": {
                    "containers": [{"name": "agent", "image": "a:1",
                                    "args": ["serve", "--port", "8080"],
                                    "ports": [{"containerPort": 8080, "name": "http"}]}],
                    "tolerations": [{"key": "gpu", "operator": "Exists"}],
                    "finalizers": ["b"]
                }}
            })
        );
        // By index, and a member of a field that is not there.
        let list = json!([10, 20, 30]);
        assert_eq!(project(&list, &set(json!({"i:1": {}}))), json!([20]));
        assert_eq!(
            project(&json!({"a": 1}), &set(json!({"f:b": {}}))),
            json!({})
        );
    }

    #[test]
    fn the_owned_set_merges_the_managers_entries_of_the_main_resource() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let entry = |manager: &str, sub: Option<&str>, fields: Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            subresource: sub.map(Into::into),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        let entries = [
            entry("me", None, json!({"f:spec": {"f:a": {}}})),
            entry("other", None, json!({"f:spec": {"f:b": {}}})),
            entry("me", Some("status"), json!({"f:status": {}})),
            entry("me", Some(""), json!({"f:spec": {"f:c": {}}})),
        ];
        assert_eq!(
            fields_of(&entries, "me"),
            Some(set(json!({"f:spec": {"f:a": {}, "f:c": {}}})))
        );
        assert_eq!(fields_of(&entries, "nobody"), None);
    }
}
