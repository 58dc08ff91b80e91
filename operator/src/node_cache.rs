//! Node-cache step: makes sure the namespace of a deployment on the node cache has its
//! PersistentVolume and claim ([`crate::build::node_cache`]) before serving pods that mount
//! the claim are written.
//!
//! Cost, in API requests: none in a reconcile that writes no variant Deployment (the
//! steady state, so a resync or a weight change reads nothing more): pods already running
//! mount a claim that exists. A reconcile that creates or changes a variant Deployment reads
//! the claim (one GET); a bound claim ends it there. Only a namespace without a bound claim
//! costs more: a GET of the volume, then a create of each object missing (at most four
//! requests, once per namespace). A watch of every claim and volume would make even the GET
//! free, at the price of two more watches and cluster-wide list rights for a check that runs
//! only when pods change. The objects are created, never applied: a server-side apply of the
//! volume would replace its `claimRef` (an atomic struct) and unbind a volume in use.
//!
//! A volume outlives its claim (reclaim policy `Retain`): when its namespace is deleted, the
//! claim goes and the volume turns `Released`, still naming the old claim's uid, which no new
//! claim can bind. When the namespace comes back and a deployment uses the node cache again,
//! this step clears that uid (a merge patch conditioned on the volume's resourceVersion), and
//! the volume binds the new claim.
//!
//! The claim is made before the volume is touched: the API server refuses new objects in a
//! namespace being deleted, so a reconcile that races the deletion of its namespace (its
//! Deployments go, the operator sees them missing) stops there and never frees, or makes, a
//! volume for a namespace that is going away. A claim made first waits `Pending` for its
//! volume, which names it.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::build::node_cache;
use crate::error::NodeCacheError;
use crate::names::{self, FIELD_MANAGER, NODE_CACHE_CLAIM};

/// Phase of a claim (and volume) bound to its other half.
const BOUND: &str = "Bound";
/// Phase of a volume whose claim was deleted.
const RELEASED: &str = "Released";

/// Makes sure `namespace` has the node cache's claim, bound or about to bind to its volume of
/// the node directory `cache_path`. Returns `Kind/name` of each object written, for the log.
pub async fn ensure(
    client: &Client,
    namespace: &str,
    cache_path: &str,
) -> Result<Vec<String>, NodeCacheError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = claims
        .get_opt(NODE_CACHE_CLAIM)
        .await
        .map_err(|source| NodeCacheError::Read {
            kind: "PersistentVolumeClaim",
            name: NODE_CACHE_CLAIM.into(),
            source,
        })?;
    if claim
        .as_ref()
        .is_some_and(|c| phase_of_claim(c) == Some(BOUND))
    {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    if claim.is_none() {
        let pvc = node_cache::claim(namespace);
        if create(&claims, &pvc, "PersistentVolumeClaim", NODE_CACHE_CLAIM).await? {
            written.push(format!("PersistentVolumeClaim/{NODE_CACHE_CLAIM}"));
        }
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let volume_name = names::node_cache_volume(namespace);
    let volume = volumes
        .get_opt(&volume_name)
        .await
        .map_err(|source| NodeCacheError::Read {
            kind: "PersistentVolume",
            name: volume_name.clone(),
            source,
        })?;
    match volume {
        None => {
            let pv = node_cache::persistent_volume(namespace, cache_path);
            if create(&volumes, &pv, "PersistentVolume", &volume_name).await? {
                written.push(format!("PersistentVolume/{volume_name}"));
            }
        }
        Some(pv) => {
            if let Some(patch) = reclaim_patch(&pv) {
                volumes
                    .patch(&volume_name, &params(), &Patch::Merge(&patch))
                    .await
                    .map_err(|source| NodeCacheError::Write {
                        kind: "PersistentVolume",
                        name: volume_name.clone(),
                        source,
                    })?;
                written.push(format!("PersistentVolume/{volume_name}"));
            }
            let path = pv.spec.as_ref().and_then(|s| s.host_path.as_ref());
            if path.is_some_and(|p| p.path != cache_path) {
                // A volume's source cannot change; the docs say how to move the cache.
                tracing::warn!(
                    volume = %volume_name,
                    want = cache_path,
                    "the node cache volume points at another directory than --cache-path"
                );
            }
        }
    }
    Ok(written)
}

/// The merge patch that frees a `Released` volume for a new claim of the same name: the old
/// claim's uid (and resourceVersion) out of `claimRef`; `None` for any other volume. The
/// volume's own resourceVersion makes the API server refuse the patch (409) if the volume
/// changed since it was read.
pub fn reclaim_patch(pv: &PersistentVolume) -> Option<serde_json::Value> {
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let stale_uid = claim_ref.is_some_and(|r| r.uid.is_some());
    if phase != Some(RELEASED) || !stale_uid {
        return None;
    }
    let mut patch = json!({"spec": {"claimRef": {"uid": null, "resourceVersion": null}}});
    if let Some(version) = &pv.metadata.resource_version {
        patch["metadata"] = json!({"resourceVersion": version});
    }
    Some(patch)
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> Option<&str> {
    c.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Creates `obj`; false when it exists already (made since it was read).
async fn create<K>(
    api: &Api<K>,
    obj: &K,
    kind: &'static str,
    name: &str,
) -> Result<bool, NodeCacheError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, obj).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(source) => Err(NodeCacheError::Write {
            kind,
            name: name.into(),
            source,
        }),
    }
}
