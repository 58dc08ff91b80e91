//! The node cache: the PersistentVolume and claim the operator builds per namespace (field by
//! field), and the requests it makes for them against a scripted mock API (method, path with
//! `fieldManager=`, body): none while a claim is bound, the missing objects created otherwise
//! (the claim first), a `Released` volume freed for its namespace's new claim and left alone
//! while its namespace is being deleted.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, ObjectReference, PersistentVolumeClaimSpec, PersistentVolumeSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::controller::Action;
use llamafleet_operator::build::node_cache::{claim, persistent_volume, uses_node_cache};
use llamafleet_operator::deployment::{self, RESYNC_READY};
use llamafleet_operator::node_cache::{ensure, reclaim_patch};
use serde_json::{Value, json};
use support::*;

const NS: &str = "team-a";
const CACHE: &str = "/mnt/nvme/llamafleet";

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "llamafleet".into()),
        (
            "app.kubernetes.io/managed-by".into(),
            "llamafleet-operator".into(),
        ),
        ("llamafleet.dev/cache".into(), "node".into()),
    ])
}

#[test]
fn the_volume_is_the_operators_node_directory_reserved_for_one_namespace() {
    let pv = persistent_volume(NS, CACHE);
    assert_eq!(pv.metadata.name.as_deref(), Some("llamafleet-cache-team-a"));
    assert_eq!(pv.metadata.namespace, None, "cluster-scoped");
    assert_eq!(pv.metadata.labels, Some(labels()));
    assert_eq!(
        pv.spec.unwrap(),
        PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource {
                path: CACHE.into(),
                // Mounted only once the DaemonSet has made it, owned by the agents' user.
                type_: Some("Directory".into()),
            }),
            capacity: Some(BTreeMap::from([("storage".into(), Quantity("1Ti".into()))])),
            access_modes: Some(vec!["ReadWriteMany".into()]),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            storage_class_name: Some(String::new()),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(NS.into()),
                name: Some("llamafleet-model-cache".into()),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }
    );
}

#[test]
fn the_claim_is_bound_to_its_namespaces_volume() {
    let pvc = claim(NS);
    assert_eq!(
        (
            pvc.metadata.name.as_deref(),
            pvc.metadata.namespace.as_deref()
        ),
        (Some("llamafleet-model-cache"), Some(NS))
    );
    assert_eq!(pvc.metadata.labels, Some(labels()));
    assert_eq!(
        pvc.spec.unwrap(),
        PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            // No StorageClass: no provisioner, and the default class is not filled in.
            storage_class_name: Some(String::new()),
            volume_name: Some("llamafleet-cache-team-a".into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity("1Gi".into()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }
    );
}

#[test]
fn only_a_deployment_naming_no_cache_of_its_own_uses_the_node_cache() {
    let (_, quickstart) = fixture("quickstart.yaml");
    assert!(uses_node_cache(&quickstart.spec));
    let mut spec = quickstart.spec.clone();
    spec.cache = Some(Default::default());
    assert!(uses_node_cache(&spec), "an empty spec.cache");
    spec.cache = Some(llamafleet_crds::CacheSpec {
        pvc: Some("mine".into()),
        ..Default::default()
    });
    assert!(!uses_node_cache(&spec));
    spec.cache = Some(llamafleet_crds::CacheSpec {
        host_path: Some("/data".into()),
        ..Default::default()
    });
    assert!(!uses_node_cache(&spec));
}

/// The volume as the API server shows it, in `phase`, bound to claim uid `claim_uid`.
fn live_volume(phase: &str, claim_uid: Option<&str>) -> Value {
    let mut pv = with_server_fields(serde_json::to_value(persistent_volume(NS, CACHE)).unwrap());
    pv["metadata"]["resourceVersion"] = json!("41");
    if let Some(uid) = claim_uid {
        pv["spec"]["claimRef"]["uid"] = json!(uid);
        pv["spec"]["claimRef"]["resourceVersion"] = json!("7");
    }
    pv["status"] = json!({"phase": phase});
    pv
}

async fn run_ensure(calls: Vec<Call>) -> Vec<String> {
    let (ctx, handle) = context();
    let server = tokio::spawn(serve(handle, calls));
    let written = ensure(&ctx.client, NS, CACHE).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    written
}

#[tokio::test]
async fn a_bound_claim_costs_one_read() {
    let written = run_ensure(vec![node_cache_bound(NS)]).await;
    assert!(written.is_empty());
}

#[tokio::test]
async fn a_new_namespace_gets_its_claim_then_its_volume() {
    let volume = serde_json::to_value(persistent_volume(NS, CACHE)).unwrap();
    let pvc = serde_json::to_value(claim(NS)).unwrap();
    let written = run_ensure(vec![
        Call::get(node_cache_claim_path(NS), Reply::Status(404)),
        Call::create(
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"),
            pvc,
        ),
        Call::get(node_cache_volume_path(NS), Reply::Status(404)),
        Call::create("/api/v1/persistentvolumes", volume),
    ])
    .await;
    assert_eq!(
        written,
        [
            "PersistentVolumeClaim/llamafleet-model-cache",
            "PersistentVolume/llamafleet-cache-team-a"
        ]
    );
}

/// A reconcile that races its namespace's deletion (the namespace's Deployments are deleted,
/// the operator sees them missing and writes them again): the API server refuses the claim
/// (403, the namespace is terminating) and the `Released` volume is left as it is, for the
/// cleanup that docs/install.md describes; freeing it would make it `Available` for a claim
/// that never comes.
#[tokio::test]
async fn a_namespace_being_deleted_leaves_its_released_volume_alone() {
    let mut create_claim = Call::create(
        format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"),
        serde_json::to_value(claim(NS)).unwrap(),
    );
    create_claim.reply = Reply::Status(403);
    let (ctx, handle) = context();
    let server = tokio::spawn(serve(
        handle,
        vec![
            Call::get(node_cache_claim_path(NS), Reply::Status(404)),
            create_claim,
        ],
    ));
    let err = ensure(&ctx.client, NS, CACHE).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert!(
        err.to_string().contains("PersistentVolumeClaim"),
        "the error names what was refused: {err}"
    );
}

/// A namespace deleted and made again: its old claim is gone and the volume, `Released`,
/// still names that claim's uid; clearing it lets the new claim bind.
#[tokio::test]
async fn a_released_volume_is_freed_for_the_namespaces_new_claim() {
    let released = live_volume("Released", Some("uid-old-claim"));
    let patch = json!({
        "metadata": {"resourceVersion": "41"},
        "spec": {"claimRef": {"uid": null, "resourceVersion": null}},
    });
    let freed = live_volume("Available", None);
    let pvc = serde_json::to_value(claim(NS)).unwrap();
    let written = run_ensure(vec![
        Call::get(node_cache_claim_path(NS), Reply::Status(404)),
        Call::create(
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"),
            pvc,
        ),
        Call::get(node_cache_volume_path(NS), Reply::Json(released)),
        Call::merge_patch(node_cache_volume_path(NS), patch, Reply::Json(freed)),
    ])
    .await;
    assert_eq!(
        written,
        [
            "PersistentVolumeClaim/llamafleet-model-cache",
            "PersistentVolume/llamafleet-cache-team-a"
        ]
    );
}

/// A claim still binding (the binder has not caught up) to a volume reserved for it: nothing
/// to write.
#[tokio::test]
async fn a_pending_claim_on_an_available_volume_is_left_to_the_binder() {
    let written = run_ensure(vec![
        Call::get(
            node_cache_claim_path(NS),
            Reply::Json(node_cache_claim(NS, "Pending")),
        ),
        Call::get(
            node_cache_volume_path(NS),
            Reply::Json(live_volume("Available", None)),
        ),
    ])
    .await;
    assert!(written.is_empty());
}

#[test]
fn only_a_released_volume_is_patched() {
    let pv = |v: Value| serde_json::from_value(v).unwrap();
    assert_eq!(
        reclaim_patch(&pv(live_volume("Bound", Some("uid-1")))),
        None
    );
    assert_eq!(reclaim_patch(&pv(live_volume("Available", None))), None);
    assert!(reclaim_patch(&pv(live_volume("Released", Some("uid-1")))).is_some());
}

/// Made by another replica (or a reconcile whose read was older) in between: not an error.
#[tokio::test]
async fn objects_made_in_between_are_not_an_error() {
    let mut create_volume = Call::create(
        "/api/v1/persistentvolumes",
        serde_json::to_value(persistent_volume(NS, CACHE)).unwrap(),
    );
    create_volume.reply = Reply::Status(409);
    let mut create_claim = Call::create(
        format!("/api/v1/namespaces/{NS}/persistentvolumeclaims"),
        serde_json::to_value(claim(NS)).unwrap(),
    );
    create_claim.reply = Reply::Status(409);
    let written = run_ensure(vec![
        Call::get(node_cache_claim_path(NS), Reply::Status(404)),
        create_claim,
        Call::get(node_cache_volume_path(NS), Reply::Status(404)),
        create_volume,
    ])
    .await;
    assert!(written.is_empty());
}

/// The first reconcile in a namespace without a node cache makes it before the serving pods
/// that mount it (a reconcile that writes no serving pods reads nothing for it: reconcile.rs,
/// `second_reconcile_of_unchanged_object_makes_no_request`).
#[tokio::test]
async fn the_first_deployment_in_a_namespace_makes_its_node_cache() {
    let (models, llmd) = fixture("quickstart.yaml");
    let stores = cluster(&models, &[]);
    let mut calls = vec![
        Call::get(node_cache_claim_path("default"), Reply::Status(404)),
        Call::create(
            "/api/v1/namespaces/default/persistentvolumeclaims",
            serde_json::to_value(claim("default")).unwrap(),
        ),
        Call::get(node_cache_volume_path("default"), Reply::Status(404)),
        Call::create(
            "/api/v1/persistentvolumes",
            serde_json::to_value(persistent_volume("default", "/var/lib/llamafleet/models"))
                .unwrap(),
        ),
    ];
    for (path, body) in built_children(&llmd, &models) {
        calls.push(Call::apply(path, body));
    }
    let mut status = Call::status(status_path("default", "chat"), Value::Null, &llmd);
    status.body = None;
    calls.push(status);
    let (ctx, handle) = context_with(stores);
    let server = tokio::spawn(serve(handle, calls));
    let result = deployment::reconcile(Arc::new(llmd), ctx.clone()).await;
    drop(ctx);
    server.await.unwrap();
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}
