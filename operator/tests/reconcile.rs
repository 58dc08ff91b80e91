//! Reconcile scenarios against a scripted mock API: every request's method, path (with
//! `fieldManager=`) and body is asserted, and nothing else may be sent.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use kube::runtime::controller::Action;
use llamafleet_crds::{LlmDeployment, LlmDeploymentStatus};
use llamafleet_operator::agent_status::{AgentProbe, AgentStatus, AgentTarget};
use llamafleet_operator::deployment::{self, RESYNC_PROGRESSING, RESYNC_READY};
use llamafleet_operator::error::Error;
use llamafleet_operator::model;
use llamafleet_operator::stores::Stores;
use serde_json::{Value, json};
use support::*;

/// Runs one reconcile of `llmd` against the scripted calls.
async fn run(
    llmd: &LlmDeployment,
    stores: Stores,
    calls: Vec<Call>,
) -> (
    Result<Action, Error>,
    Arc<llamafleet_operator::context::Context>,
) {
    let (ctx, handle) = context_with(stores);
    let server = tokio::spawn(serve(handle, calls));
    let result = deployment::reconcile(Arc::new(llmd.clone()), ctx.clone()).await;
    drop(ctx);
    server.await.unwrap();
    // A fresh context (its client unused) for callers that call error_policy.
    (result, context().0)
}

/// The status every first reconcile of `llmd` writes (no replica ready yet).
fn status_body(llmd: &LlmDeployment, variants: Value, weights: &str, desired: i32) -> Value {
    let name = llmd.metadata.name.clone().unwrap();
    let counts = format!("0/{desired} variant replicas and 0/2 router replicas ready");
    json!({
        "apiVersion": "llamafleet.dev/v1alpha1",
        "kind": "LlmDeployment",
        "status": {
            "variants": variants,
            "weights": weights,
            "ready": format!("0/{desired}"),
            "endpoint": format!("http://{name}.default.svc"),
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ReplicasNotReady", "message": counts,
                 "observedGeneration": 1, "lastTransitionTime": NOW},
                {"type": "Progressing", "status": "True", "reason": "ReplicasStarting", "message": counts,
                 "observedGeneration": 1, "lastTransitionTime": NOW},
                {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
                 "observedGeneration": 1, "lastTransitionTime": NOW},
            ],
            "observedGeneration": 1,
        }
    })
}

fn quickstart_status(llmd: &LlmDeployment) -> Value {
    let sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
    let variants = json!([{"name": "main", "model": "gemma3-270m", "sha256": sha, "weight": 100,
                           "replicas": 1, "readyReplicas": 0}]);
    status_body(llmd, variants, "main=100", 1)
}

/// Echoed children as a list response would hold them.
fn live_from(children: &[(String, Value)]) -> Vec<Value> {
    children
        .iter()
        .map(|(_, v)| with_server_fields(v.clone()))
        .collect()
}

#[tokio::test]
async fn first_reconcile_creates_everything_and_writes_status() {
    let (models, llmd) = fixture("quickstart.yaml");
    let stores = cluster(&models, &[]);
    let mut calls = Vec::new();
    // Serving pods are about to be created: their node cache claim is read first.
    calls.push(node_cache_bound("default"));
    let children = built_children(&llmd, &models);
    assert_eq!(children.len(), 9);
    for (path, body) in &children {
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "uid-chat");
        calls.push(Call::apply(path.clone(), body.clone()));
    }
    calls.push(Call::status(
        status_path("default", "chat"),
        quickstart_status(&llmd),
        &llmd,
    ));
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

#[tokio::test]
async fn second_reconcile_of_unchanged_object_makes_no_request() {
    let (models, mut llmd) = fixture("quickstart.yaml");
    let live = live_from(&built_children(&llmd, &models));
    let status = quickstart_status(&llmd)["status"].clone();
    llmd.status = Some(serde_json::from_value::<LlmDeploymentStatus>(status).unwrap());
    let stores = cluster(&models, &live);
    let calls = Vec::new();
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

/// The same with the caches as the running operator keeps them (slim children compared by the
/// fingerprint of the fields their `managedFields` say the operator owns): no request either,
/// although the cached children hold no spec at all.
#[tokio::test]
async fn an_unchanged_reconcile_on_slim_caches_makes_no_request() {
    let (models, mut llmd) = fixture("quickstart.yaml");
    let live: Vec<Value> = built_children(&llmd, &models)
        .iter()
        .map(|(_, v)| with_managed_fields(with_server_fields(v.clone()), applied_fields(v)))
        .collect();
    let status = quickstart_status(&llmd)["status"].clone();
    llmd.status = Some(serde_json::from_value::<LlmDeploymentStatus>(status).unwrap());
    let stores = slim_cluster(&models, &live);
    let cached = stores.children("default", "chat");
    assert_eq!(
        cached.deployments.len(),
        2,
        "the variant's and the router's"
    );
    for d in &cached.deployments {
        assert!(d.spec.as_ref().unwrap().template.spec.is_none(), "{d:?}");
    }
    let (result, _) = run(&llmd, stores, Vec::new()).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

/// A field another manager took over leaves the operator's set (an update takes the ownership
/// of what it changes): the slim child's fingerprint no longer matches what the operator
/// builds, and that child alone is applied again.
#[tokio::test]
async fn a_slim_child_whose_field_another_manager_took_is_applied_again() {
    let (models, mut llmd) = fixture("quickstart.yaml");
    let built = built_children(&llmd, &models);
    let (routing_path, routing) = built
        .iter()
        .find(|(_, v)| v["kind"] == "ConfigMap")
        .cloned()
        .unwrap();
    let live: Vec<Value> = built
        .iter()
        .map(|(_, v)| {
            let mut owned = applied_fields(v);
            let mut v = with_server_fields(v.clone());
            if v["kind"] == "ConfigMap" {
                owned.as_object_mut().unwrap().remove("f:data");
                v["data"] = json!({"routes.json": "{}"});
            }
            with_managed_fields(v, owned)
        })
        .collect();
    let status = quickstart_status(&llmd)["status"].clone();
    llmd.status = Some(serde_json::from_value::<LlmDeploymentStatus>(status).unwrap());
    let stores = slim_cluster(&models, &live);
    let calls = vec![Call::apply(routing_path, routing)];
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

#[tokio::test]
async fn missing_model_sets_condition_publishes_event_and_waits() {
    let (_, llmd) = fixture("quickstart.yaml");
    let stores = cluster(&[], &[]);
    let mut calls = Vec::new();
    let msg = "LlmModel \"gemma3-270m\" not found in this namespace";
    let cond = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "ModelNotFound", "message": msg,
               "observedGeneration": 1, "lastTransitionTime": NOW})
    };
    let body = json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "status": {
            "conditions": [cond("Ready", "False"), cond("Progressing", "False"), cond("Degraded", "True")],
            "observedGeneration": 1,
        }
    });
    calls.push(Call::status(status_path("default", "chat"), body, &llmd));
    calls.push(Call::event(
        "default",
        json!({"type": "Warning", "reason": "ModelNotFound", "note": msg, "action": "Reconcile",
               "reportingController": "llamafleet-operator", "reportingInstance": "op-0",
               "regarding": {"kind": "LlmDeployment", "name": "chat", "namespace": "default", "uid": "uid-chat"}}),
    ));
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn unchanged_user_error_is_radio_silent() {
    let (_, mut llmd) = fixture("quickstart.yaml");
    let err =
        llamafleet_operator::deployment::plan::ValidateError::ModelNotFound("gemma3-270m".into());
    let now = clock()();
    llmd.status = Some(llamafleet_operator::deployment::status::blocked(
        &llmd, &err, &now,
    ));
    let stores = cluster(&[], &[]);
    let calls = Vec::new();
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn invalid_spec_sets_condition_publishes_event_and_waits() {
    let (models, mut llmd) = fixture("quickstart.yaml");
    llmd.spec.variants[0].weight = 90;
    let stores = cluster(&models, &[]);
    let mut calls = Vec::new();
    let msg = "invalid spec: spec.variants: variant weights must sum to 100";
    let cond = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "InvalidSpec", "message": msg,
               "observedGeneration": 1, "lastTransitionTime": NOW})
    };
    let body = json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "status": {
            "conditions": [cond("Ready", "False"), cond("Progressing", "False"), cond("Degraded", "True")],
            "observedGeneration": 1,
        }
    });
    calls.push(Call::status(status_path("default", "chat"), body, &llmd));
    calls.push(Call::event(
        "default",
        json!({"type": "Warning", "reason": "InvalidSpec", "note": msg}),
    ));
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::await_change());
}

#[tokio::test]
async fn weight_change_updates_only_the_routing_config_map() {
    let (models, before) = fixture("migration/02-green-10.yaml");
    let (_, mut after) = fixture("migration/03-green-50.yaml");
    let live = live_from(&built_children(&before, &models));
    let old_status = status_of(&before, &models, "blue=90,green=10", 90, 10);
    after.status = Some(serde_json::from_value(old_status["status"].clone()).unwrap());
    let stores = cluster(&models, &live);
    let mut calls = Vec::new();
    let new_children = built_children(&after, &models);
    let (cm_path, cm_body) = new_children[0].clone();
    assert!(cm_path.ends_with("/configmaps/assistant-routing"));
    calls.push(Call::apply(cm_path, cm_body));
    let body = status_of(&after, &models, "blue=50,green=50", 50, 50);
    calls.push(Call::status(
        status_path("default", "assistant"),
        body,
        &after,
    ));
    let (result, _) = run(&after, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

#[tokio::test]
async fn a_model_update_under_way_rewrites_only_the_keep_list_and_back() {
    let (mut models, mut llmd) = fixture("quickstart.yaml");
    let live = live_from(&built_children(&llmd, &models));
    let status = quickstart_status(&llmd)["status"].clone();
    llmd.status = Some(serde_json::from_value::<LlmDeploymentStatus>(status).unwrap());
    let old = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
    let new = "b".repeat(64);
    let candidate = json!({"sha256": new, "revision": "r2"});
    models[0].status.as_mut().unwrap().candidate = Some(serde_json::from_value(candidate).unwrap());
    // The agents re-read the list: no pod template changes, so no pod restarts.
    let (path, routing) = built_children(&llmd, &models).swap_remove(0);
    let mut during = routing.clone();
    during["data"]["keep.yaml"] = json!(format!("- {old}\n- {new}\n"));
    let stores = cluster(&models, &live);
    let calls = vec![Call::apply(path.clone(), during.clone())];
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));

    // Promoted (the candidate is gone): the list empties again, and nothing else changes.
    models[0].status.as_mut().unwrap().candidate = None;
    let mut live = live;
    live[0] = with_server_fields(during);
    let stores = cluster(&models, &live);
    let mut calls = Vec::new();
    assert_eq!(routing["data"]["keep.yaml"], "[]\n");
    calls.push(Call::apply(path, routing));
    let (result, _) = run(&llmd, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

fn status_of(
    llmd: &LlmDeployment,
    _models: &[llamafleet_crds::LlmModel],
    weights: &str,
    blue: i32,
    green: i32,
) -> Value {
    let variants = json!([
        {"name": "blue", "model": "saiga-7b", "weight": blue, "replicas": 2, "readyReplicas": 0},
        {"name": "green", "model": "vistral-24b", "weight": green, "replicas": 2, "readyReplicas": 0},
    ]);
    status_body(llmd, variants, weights, 4)
}

#[tokio::test]
async fn removed_variant_objects_are_deleted() {
    let (models, before) = fixture("migration/04-green-100.yaml");
    let (_, after) = fixture("migration/05-blue-removed.yaml");
    let live = live_from(&built_children(&before, &models));
    let stores = cluster(&models, &live);
    let mut calls = Vec::new();
    let new_children = built_children(&after, &models);
    calls.push(Call::apply(
        new_children[0].0.clone(),
        new_children[0].1.clone(),
    ));
    calls.push(Call::delete(object_path(
        "default",
        "Deployment",
        "assistant-blue",
    )));
    calls.push(Call::delete(object_path(
        "default",
        "Service",
        "assistant-blue",
    )));
    calls.push(Call::delete(object_path(
        "default",
        "PodDisruptionBudget",
        "assistant-blue",
    )));
    let variants = json!([{"name": "green", "model": "vistral-24b", "weight": 100, "replicas": 2,
                           "readyReplicas": 0}]);
    let body = status_body(&after, variants, "green=100", 2);
    calls.push(Call::status(
        status_path("default", "assistant"),
        body,
        &after,
    ));
    let (result, _) = run(&after, stores, calls).await;
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}

#[tokio::test]
async fn transient_error_requeues_with_growing_backoff() {
    let (models, llmd) = fixture("quickstart.yaml");
    let (path, body) = built_children(&llmd, &models).remove(0);
    let mut refused = Call::apply(path, body);
    refused.reply = Reply::Status(500);
    let calls = vec![node_cache_bound("default"), refused];
    let (result, ctx) = run(&llmd, cluster(&models, &[]), calls).await;
    let err = result.unwrap_err();
    assert_eq!(err.metric_label(), "apply");
    assert!(!err.is_permanent());
    let llmd = Arc::new(llmd);
    let first = deployment::error_policy(llmd.clone(), &err, ctx.clone());
    let second = deployment::error_policy(llmd.clone(), &err, ctx.clone());
    assert_eq!(first, Action::requeue(Duration::from_secs(5)));
    assert_eq!(second, Action::requeue(Duration::from_secs(10)));
    let text = ctx.metrics.render();
    assert!(
        text.contains(r#"llamafleet_operator_reconcile_errors_total{controller="llmdeployment",error="apply"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn permanent_error_waits_for_a_change() {
    let (_, mut llmd) = fixture("quickstart.yaml");
    llmd.metadata.namespace = None;
    let (result, ctx) = run(&llmd, cluster(&[], &[]), vec![]).await;
    let err = result.unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(
        deployment::error_policy(Arc::new(llmd), &err, ctx),
        Action::await_change()
    );
}

#[tokio::test]
async fn model_reconcile_pins_spec_once_then_is_silent() {
    let inputs =
        llamafleet_operator::render::read_inputs(&[example("quickstart.yaml")], "default").unwrap();
    let mut m = inputs.models.into_values().next().unwrap();
    m.metadata.uid = Some("uid-m".into());
    m.metadata.generation = Some(3);
    let body = json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmModel",
        "status": {
            "phase": "Ready",
            "resolved": {"url": m.spec.source.url, "sha256": m.spec.source.sha256},
            "conditions": [{"type": "Ready", "status": "True", "reason": "ResolutionDisabled",
                            "message": "source taken as written in the spec: remote resolution is off (--no-resolve)",
                            "observedGeneration": 3, "lastTransitionTime": NOW}],
            "observedGeneration": 3,
        }
    });
    let path = "/apis/llamafleet.dev/v1alpha1/namespaces/default/llmmodels/gemma3-270m/status";
    let (ctx, handle) = context();
    let server = tokio::spawn(serve(handle, vec![Call::status(path, body.clone(), &m)]));
    let action = model::reconcile(Arc::new(m.clone()), ctx.clone())
        .await
        .unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(action, Action::await_change());

    m.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
    let (ctx, handle) = context();
    let server = tokio::spawn(serve(handle, vec![]));
    model::reconcile(Arc::new(m), ctx.clone()).await.unwrap();
    drop(ctx);
    server.await.unwrap();
}

/// Answers for every variant together: the barrier lets no probe through until all of them are
/// in flight, so a reconcile that asked one agent after another would never finish.
struct TogetherProbe(tokio::sync::Barrier);

impl AgentProbe for TogetherProbe {
    fn status<'a>(&'a self, _target: AgentTarget<'a>) -> BoxFuture<'a, Option<AgentStatus>> {
        Box::pin(async move {
            self.0.wait().await;
            serde_json::from_value(
                json!({"phase": "downloading", "download": {"bytes": 10, "total": 100}}),
            )
            .ok()
        })
    }
}

#[tokio::test]
async fn agents_are_asked_together_and_polled_while_replicas_start() {
    let (models, mut llmd) = fixture("migration/02-green-10.yaml");
    let live = live_from(&built_children(&llmd, &models));
    let before = status_of(&llmd, &models, "blue=90,green=10", 90, 10);
    llmd.status = Some(serde_json::from_value(before["status"].clone()).unwrap());
    let download = json!({"bytes": 10, "total": 100});
    let mut write = Call::status(status_path("default", "assistant"), Value::Null, &llmd);
    write.body = None;
    write.body_has = Some(json!({"status": {"variants": [
        {"name": "blue", "download": download}, {"name": "green", "download": download}]}}));
    let (ctx, handle) = context_with(cluster(&models, &live));
    let mut ctx = Arc::into_inner(ctx).unwrap();
    ctx.agents = Arc::new(TogetherProbe(tokio::sync::Barrier::new(2)));
    let ctx = Arc::new(ctx);
    let server = tokio::spawn(serve(handle, vec![write]));
    let reconcile = deployment::reconcile(Arc::new(llmd), ctx.clone());
    let result = tokio::time::timeout(Duration::from_secs(30), reconcile)
        .await
        .expect("the agents were asked one after another");
    drop(ctx);
    server.await.unwrap();
    // Download figures come only from polling: the next look is soon, not at the resync.
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_PROGRESSING));
}
