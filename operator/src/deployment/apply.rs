//! Apply step: server-side apply of every built child (one field manager, forced), skipping
//! those the cluster already has exactly as built, then deleting children that the spec no
//! longer asks for (a removed variant, autoscaling turned off).

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::build::Child;
use crate::deployment::dereference::LiveChildren;
use crate::error::ApplyError;
use crate::names::FIELD_MANAGER;
use crate::owned;

/// What the apply step did, for logs and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// `Kind/name` of each object written.
    pub applied: Vec<String>,
    /// `Kind/name` of each object deleted.
    pub deleted: Vec<String>,
}

/// True when every field of `want` is in `have` with the same value (arrays element-wise, same
/// length). Fields the API server defaults (and status) are in `have` only, so an object
/// unchanged since the last apply compares as a subset and is not written again.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| is_subset(wv, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        _ => want == have,
    }
}

/// Applies `desired` in order and deletes owned children not in it; `live` is updated with
/// what the API server returned so the status step sees current objects.
pub async fn apply(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    desired: Vec<Child>,
    live: &mut LiveChildren,
) -> Result<ApplyOutcome, ApplyError> {
    let mut outcome = ApplyOutcome::default();
    let wanted: BTreeSet<(&'static str, String)> = desired
        .iter()
        .map(|c| (c.kind(), c.name().to_string()))
        .collect();
    for child in desired {
        let written = match child {
            Child::ConfigMap(o) => apply_one(client, namespace, o, &mut live.config_maps).await?,
            Child::Deployment(o) => apply_one(client, namespace, *o, &mut live.deployments).await?,
            Child::Service(o) => apply_one(client, namespace, o, &mut live.services).await?,
            Child::Pdb(o) => apply_one(client, namespace, o, &mut live.pdbs).await?,
            Child::Hpa(o) => apply_one(client, namespace, o, &mut live.hpas).await?,
            Child::ServiceAccount(o) => {
                apply_one(client, namespace, o, &mut live.service_accounts).await?
            }
            Child::Role(o) => apply_one(client, namespace, o, &mut live.roles).await?,
            Child::RoleBinding(o) => {
                apply_one(client, namespace, o, &mut live.role_bindings).await?
            }
        };
        outcome.applied.extend(written);
    }
    let mut deleted = Vec::new();
    deleted.extend(prune(client, namespace, owner_uid, &wanted, &mut live.config_maps).await?);
    deleted.extend(prune(client, namespace, owner_uid, &wanted, &mut live.deployments).await?);
    deleted.extend(prune(client, namespace, owner_uid, &wanted, &mut live.services).await?);
    deleted.extend(prune(client, namespace, owner_uid, &wanted, &mut live.pdbs).await?);
    deleted.extend(prune(client, namespace, owner_uid, &wanted, &mut live.hpas).await?);
    // The binding first: the routers lose the permission before anything else goes.
    deleted.extend(
        prune(
            client,
            namespace,
            owner_uid,
            &wanted,
            &mut live.role_bindings,
        )
        .await?,
    );
    deleted.extend(prune(client, namespace, owner_uid, &wanted, &mut live.roles).await?);
    let accounts = &mut live.service_accounts;
    deleted.extend(prune(client, namespace, owner_uid, &wanted, accounts).await?);
    outcome.deleted = deleted;
    Ok(outcome)
}

trait Kind:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + k8s_openapi::Resource
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
{
}

impl<K> Kind for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

fn name_of<K: Resource>(o: &K) -> String {
    o.meta().name.clone().unwrap_or_default()
}

/// True when `live` holds `obj` as built: applying it would write nothing. A cached child is
/// compared by the fingerprint of the fields the operator owns ([`crate::owned`]), a whole
/// one (just written, or not the operator's) field by field ([`is_subset`]).
pub fn is_current<K: Resource + Serialize>(obj: &K, live: &[K]) -> bool {
    let name = name_of(obj);
    live.iter().find(|l| name_of(*l) == name).is_some_and(|l| {
        match l
            .meta()
            .labels
            .as_ref()
            .and_then(|a| a.get(owned::FINGERPRINT))
        {
            Some(print) => owned::built_fingerprint(obj) == *print,
            None => {
                let want = serde_json::to_value(obj).unwrap_or_default();
                let have = serde_json::to_value(l).unwrap_or_default();
                is_subset(&want, &have)
            }
        }
    })
}

async fn apply_one<K: Kind>(
    client: &Client,
    namespace: &str,
    obj: K,
    live: &mut Vec<K>,
) -> Result<Option<String>, ApplyError> {
    if is_current(&obj, live) {
        return Ok(None);
    }
    let name = name_of(&obj);
    let position = live.iter().position(|l| name_of(l) == name);
    let kind = <K as k8s_openapi::Resource>::KIND;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api
        .patch(&name, &params, &Patch::Apply(&obj))
        .await
        .map_err(|source| ApplyError::Apply {
            kind,
            name: name.clone(),
            source,
        })?;
    match position {
        Some(i) => live[i] = applied,
        None => live.push(applied),
    }
    Ok(Some(format!("{kind}/{name}")))
}

async fn prune<K: Kind>(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    wanted: &BTreeSet<(&'static str, String)>,
    live: &mut Vec<K>,
) -> Result<Vec<String>, ApplyError> {
    let kind = <K as k8s_openapi::Resource>::KIND;
    let owned = |o: &K| {
        let refs = o.meta().owner_references.iter().flatten();
        refs.into_iter()
            .any(|r| r.uid == owner_uid && r.controller == Some(true))
    };
    let (stale, keep): (Vec<K>, Vec<K>) = std::mem::take(live)
        .into_iter()
        .partition(|o| owned(o) && !wanted.contains(&(kind, name_of(o))));
    *live = keep;
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut deleted = Vec::new();
    for o in stale {
        let name = name_of(&o);
        let params = DeleteParams::background();
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(source) => return Err(ApplyError::Delete { kind, name, source }),
        }
        deleted.push(format!("{kind}/{name}"));
    }
    Ok(deleted)
}
