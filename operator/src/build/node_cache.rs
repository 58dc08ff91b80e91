//! The node cache, the default model cache: one directory per node (the operator's
//! `--cache-path`) that every serving pod on that node shares, so a model is downloaded once
//! per node, reached through a PersistentVolumeClaim so the pods need no hostPath volume and
//! run under Pod Security `restricted`.
//!
//! Per namespace the operator keeps a PersistentVolume `llamafleet-cache-<namespace>` of type
//! hostPath, pre-bound (`claimRef`) to the claim `llamafleet-model-cache` in that namespace,
//! and the claim itself, pre-bound (`volumeName`) to the volume. A hostPath volume has no node
//! affinity, so each pod mounts the directory of the node it runs on: the same arrangement as
//! Rancher's local-path-provisioner. The volume's path comes only from the operator's flag,
//! never from a spec. Its type is `Directory`, not `DirectoryOrCreate`: the kubelet would create
//! a missing directory root-owned 0755, where the agent (uid 65532) cannot write; with
//! `Directory` a pod waits until the chart's node-cache DaemonSet has made the directory,
//! owned by 65532, and never sees it otherwise.
//!
//! Builders only: [`crate::node_cache`] decides when to read and write them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use llamafleet_crds::LlmDeploymentSpec;

use crate::names::{
    self, CACHE_NODE, FIELD_MANAGER, LABEL_CACHE, LABEL_MANAGED_BY, LABEL_NAME, NODE_CACHE_CLAIM,
    PRODUCT,
};

/// Capacity of the volume: nominal. A hostPath volume holds what the node's disk holds (the
/// agent evicts least recently used models when it is full); nothing enforces this figure.
pub const VOLUME_CAPACITY: &str = "1Ti";
/// Storage the claim requests: nominal too, and small, because namespaces with a
/// ResourceQuota count `requests.storage`; a pre-bound claim binds to any volume at least
/// this large.
pub const CLAIM_REQUEST: &str = "1Gi";
/// Every pod on every node reads and writes its own node's directory through the one claim.
const ACCESS_MODE: &str = "ReadWriteMany";
/// The directory outlives its claim (deleted with its namespace): other namespaces' volumes
/// point at the same directory, so nothing may ever delete it.
const RECLAIM_POLICY: &str = "Retain";
/// Existence check only, on the node; see the module comment.
const HOST_PATH_TYPE: &str = "Directory";

/// True when the deployment uses the node cache: its `spec.cache` names neither a hostPath
/// nor a claim of its own.
pub fn uses_node_cache(spec: &LlmDeploymentSpec) -> bool {
    spec.cache
        .as_ref()
        .is_none_or(|c| c.host_path.is_none() && c.pvc.is_none())
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.into(), PRODUCT.into()),
        (LABEL_MANAGED_BY.into(), FIELD_MANAGER.into()),
        (LABEL_CACHE.into(), CACHE_NODE.into()),
    ])
}

/// The volume of `namespace`'s claim: the node directory `cache_path` on whichever node the
/// pod runs.
pub fn persistent_volume(namespace: &str, cache_path: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(names::node_cache_volume(namespace)),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource {
                path: cache_path.into(),
                type_: Some(HOST_PATH_TYPE.into()),
            }),
            capacity: Some(BTreeMap::from([(
                "storage".into(),
                Quantity(VOLUME_CAPACITY.into()),
            )])),
            access_modes: Some(vec![ACCESS_MODE.into()]),
            persistent_volume_reclaim_policy: Some(RECLAIM_POLICY.into()),
            // Empty: no StorageClass, so no provisioner competes for the claim.
            storage_class_name: Some(String::new()),
            // Reserved for this namespace's claim: no other claim can bind it.
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(namespace.into()),
                name: Some(NODE_CACHE_CLAIM.into()),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// The claim variant pods mount, bound to [`persistent_volume`] of the same namespace.
pub fn claim(namespace: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(NODE_CACHE_CLAIM.into()),
            namespace: Some(namespace.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![ACCESS_MODE.into()]),
            storage_class_name: Some(String::new()),
            volume_name: Some(names::node_cache_volume(namespace)),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(CLAIM_REQUEST.into()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}
