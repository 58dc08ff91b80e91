//! Progressive rollout reconciles against the scripted mock API (every request asserted),
//! with the routers' `/router/stats` served by a real HTTP server on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use llamafleet_crds::routing::{RouterStats, TTFT_BUCKETS, VariantStats};
use llamafleet_crds::{LlmDeployment, LlmModel, RolloutStrategy};
use llamafleet_operator::context::Context;
use llamafleet_operator::deployment::{self, RESYNC_READY};
use llamafleet_operator::rollout::{RouterStatsClient, drain};
use llamafleet_operator::stores::Stores;
use serde_json::{Value, json};
use support::*;

/// Ten seconds before the fixed clock: a step started then is due with a `2s` interval.
const EARLIER: &str = "2026-01-02T03:03:55Z";
const BLUE_ONLY: (i32, i32) = (100, 0);

/// The migration deployment asking for green=100, Progressive with a 2 s interval, at
/// generation 2; its models.
fn progressive() -> (Vec<LlmModel>, LlmDeployment) {
    let (models, mut llmd) = fixture("migration/04-green-100.yaml");
    let rollout = llmd.spec.rollout.as_mut().unwrap();
    rollout.strategy = RolloutStrategy::Progressive;
    rollout.interval = Some("2s".into());
    llmd.metadata.generation = Some(2);
    (models, llmd)
}

fn with_weights(llmd: &LlmDeployment, (blue, green): (i32, i32)) -> LlmDeployment {
    let mut d = llmd.clone();
    d.spec.variants[0].weight = blue;
    d.spec.variants[1].weight = green;
    d
}

/// The children of the deployment at `weights`, as listed, green's replicas all ready.
fn live_at(llmd: &LlmDeployment, models: &[LlmModel], weights: (i32, i32)) -> Vec<Value> {
    built_children(&with_weights(llmd, weights), models)
        .into_iter()
        .map(|(_, mut v)| {
            if v["kind"] == "Deployment" && v["metadata"]["name"] == "assistant-green" {
                v["status"] = json!({"replicas": 2, "readyReplicas": 2});
            }
            with_server_fields(v)
        })
        .collect()
}

/// `(path, body)` of the routing ConfigMap at `weights`.
fn routing_at(llmd: &LlmDeployment, models: &[LlmModel], weights: (i32, i32)) -> (String, Value) {
    let (path, body) = built_children(&with_weights(llmd, weights), models).remove(0);
    assert!(path.ends_with("/configmaps/assistant-routing"));
    (path, body)
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": 2, "lastTransitionTime": NOW})
}

/// The status applied: effective weights, green ready, the rollout and `RolledBack`.
fn status_at(weights: (i32, i32), rollout: Value, rolled_back: Value) -> Value {
    let counts = "2/4 variant replicas and 0/2 router replicas ready";
    json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "status": {
            "variants": [
                {"name": "blue", "model": "saiga-7b", "weight": weights.0, "replicas": 2, "readyReplicas": 0},
                {"name": "green", "model": "vistral-24b", "weight": weights.1, "replicas": 2, "readyReplicas": 2},
            ],
            "weights": format!("blue={},green={}", weights.0, weights.1),
            "ready": "2/4",
            "endpoint": "http://assistant.default.svc",
            "rollout": rollout,
            "conditions": [
                cond("Ready", "False", "ReplicasNotReady", counts),
                cond("Progressing", "True", "ReplicasStarting", counts),
                cond("Degraded", "False", "AsExpected", ""),
                rolled_back,
            ],
            "observedGeneration": 2,
        }
    })
}

fn not_rolled_back() -> Value {
    cond("RolledBack", "False", "NotRolledBack", "")
}

fn event(type_: &str, reason: &str, note: &str) -> Call {
    Call::event(
        "default",
        json!({"type": type_, "reason": reason, "note": note, "action": "Reconcile",
               "regarding": {"kind": "LlmDeployment", "name": "assistant", "uid": "uid-assistant"}}),
    )
}

/// The status after the first step began (at `started`), as the previous reconcile left it.
fn at_step_one(llmd: &mut LlmDeployment, started: &str) {
    let mut status = status_at((90, 10), step_one_rollout(), not_rolled_back())["status"].clone();
    status["rollout"]["stepStartedAt"] = json!(started);
    llmd.status = Some(serde_json::from_value(status).unwrap());
}

fn step_one_rollout() -> Value {
    json!({"phase": "Progressing", "candidate": "green", "step": 1, "stepStartedAt": NOW,
           "baseline": "blue=100,green=0", "generation": 2, "lastDecision": "started at 10%",
           "reason": "green: 10% (step 1 of 4); from blue=100,green=0 towards blue=0,green=100; weights blue=90,green=10"})
}

/// Figures of one router replica for revision `blue=90,green=10`.
fn stats(green_requests: u64, green_errors: u64) -> RouterStats {
    stats_of("blue=90,green=10", green_requests, green_errors)
}

fn stats_of(revision: &str, green_requests: u64, green_errors: u64) -> RouterStats {
    let variant = |name: &str, requests: u64, errors: u64| {
        let ok = requests - errors;
        let mut ttft: Vec<u64> = TTFT_BUCKETS
            .iter()
            .map(|b| if *b >= 0.1 { ok } else { 0 })
            .collect();
        ttft.push(ok);
        VariantStats {
            name: name.into(),
            requests,
            errors,
            ttft_buckets: ttft,
            tokens: ok * 50,
            generation_seconds: ok as f64 * 2.5,
            shadow: None,
        }
    };
    RouterStats {
        revision: revision.into(),
        seconds: 10.0,
        variants: vec![
            variant("blue", 180, 0),
            variant("green", green_requests, green_errors),
        ],
        idle_seconds: Default::default(),
    }
}

/// A router stand-in on loopback serving `stats` at `/router/stats`; its base URL.
async fn router(stats: RouterStats) -> String {
    router_serving(&stats).await
}

async fn run(
    llmd: &LlmDeployment,
    stores: Stores,
    calls: Vec<Call>,
    router_urls: Vec<String>,
) -> (Action, Arc<Context>) {
    let (ctx, handle) = context_with(stores);
    let ctx = Arc::new(
        Arc::into_inner(ctx)
            .unwrap()
            .with_routers(RouterStatsClient::new(router_urls).unwrap()),
    );
    let server = tokio::spawn(serve(handle, calls));
    let result = deployment::reconcile(Arc::new(llmd.clone()), ctx.clone()).await;
    server.await.unwrap();
    (result.unwrap(), ctx)
}

#[tokio::test]
async fn spec_shift_starts_at_the_first_step() {
    let (models, mut llmd) = progressive();
    let mut previous = status_at(BLUE_ONLY, Value::Null, Value::Null)["status"].clone();
    previous["conditions"].as_array_mut().unwrap().truncate(3);
    llmd.status = Some(serde_json::from_value(previous).unwrap());
    let stores = cluster(&models, &live_at(&llmd, &models, BLUE_ONLY));
    let mut calls = Vec::new();
    let (path, body) = routing_at(&llmd, &models, (90, 10));
    assert!(
        body["data"]["routing.yaml"]
            .as_str()
            .unwrap()
            .contains("weight: 10\n")
    );
    calls.push(Call::apply(path, body));
    calls.push(Call::status(
        status_path("default", "assistant"),
        status_at((90, 10), step_one_rollout(), not_rolled_back()),
        &llmd,
    ));
    calls.push(event(
        "Normal",
        "RolloutStarted",
        step_one_rollout()["reason"].as_str().unwrap(),
    ));
    let (action, ctx) = run(&llmd, stores, calls, vec![]).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
    let text = ctx.metrics.render();
    assert!(
        text.contains(r#"llamafleet_operator_rollout_decisions_total{decision="started"} 1"#),
        "{text}"
    );
    assert_in_force(&text, (90, 10), 1);
}

/// The operator's gauges (dashboard: weights and step) hold what the reconcile put in force.
fn assert_in_force(text: &str, (blue, green): (i32, i32), step: u32) {
    let at = r#"llmdeployment="assistant",namespace="default""#;
    for series in [
        format!(r#"llamafleet_operator_variant_weight{{{at},variant="blue"}} {blue}"#),
        format!(r#"llamafleet_operator_variant_weight{{{at},variant="green"}} {green}"#),
        format!("llamafleet_operator_rollout_step{{{at}}} {step}"),
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "{series} missing:\n{text}"
        );
    }
}

#[tokio::test]
async fn healthy_step_advances_after_the_interval() {
    let (models, mut llmd) = progressive();
    at_step_one(&mut llmd, EARLIER);
    let url = router(stats(60, 0)).await;
    let stores = cluster(&models, &live_at(&llmd, &models, (90, 10)));
    let mut calls = Vec::new();
    let (path, body) = routing_at(&llmd, &models, (75, 25));
    calls.push(Call::apply(path, body));
    let note = "green: 25% (step 2 of 4); passed 10%: 60 candidate requests, error rate 0.0000 \
                (0 of 60); weights blue=75,green=25";
    let rollout = json!({"phase": "Progressing", "candidate": "green", "step": 2,
        "stepStartedAt": NOW, "baseline": "blue=100,green=0", "generation": 2,
        "lastDecision": "advanced to 25%", "reason": note});
    calls.push(Call::status(
        status_path("default", "assistant"),
        status_at((75, 25), rollout, not_rolled_back()),
        &llmd,
    ));
    calls.push(event("Normal", "RolloutAdvanced", note));
    let (action, _) = run(&llmd, stores, calls, vec![url]).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
}

#[tokio::test]
async fn failing_step_rolls_back_with_a_warning() {
    let (models, mut llmd) = progressive();
    at_step_one(&mut llmd, EARLIER);
    let url = router(stats(60, 6)).await;
    let stores = cluster(&models, &live_at(&llmd, &models, (90, 10)));
    let mut calls = Vec::new();
    let (path, body) = routing_at(&llmd, &models, BLUE_ONLY);
    assert!(
        body["data"]["routing.yaml"]
            .as_str()
            .unwrap()
            .contains("weight: 0\n")
    );
    calls.push(Call::apply(path, body));
    let reason = "green failed analysis at 10%: error rate 0.1000 (6 of 60) is above \
                  maxErrorRate 0.05";
    let rollout = json!({"phase": "RolledBack", "candidate": "green", "step": 1,
        "stepStartedAt": NOW, "baseline": "blue=100,green=0", "generation": 2,
        "lastDecision": "rolled back from 10%", "reason": reason});
    let rolled_back = cond("RolledBack", "True", "AnalysisFailed", reason);
    let body = status_at(BLUE_ONLY, rollout, rolled_back);
    calls.push(Call::status(
        status_path("default", "assistant"),
        body.clone(),
        &llmd,
    ));
    let note = format!("{reason}; weights blue=100,green=0");
    calls.push(event("Warning", "RolledBack", &note));
    let (action, ctx) = run(&llmd, stores, calls, vec![url]).await;
    assert_eq!(action, Action::requeue(RESYNC_READY));
    let text = ctx.metrics.render();
    assert!(
        text.contains(r#"llamafleet_operator_rollout_decisions_total{decision="rolled_back"} 1"#),
        "{text}"
    );
    let alerted =
        r#"llamafleet_operator_rollbacks_total{llmdeployment="assistant",namespace="default"} 1"#;
    assert!(text.contains(alerted), "{text}");
    assert_in_force(&text, BLUE_ONLY, 1);

    // The next reconcile of the same generation stays rolled back and writes nothing.
    llmd.status = Some(serde_json::from_value(body["status"].clone()).unwrap());
    let stores = cluster(&models, &live_at(&llmd, &models, BLUE_ONLY));
    let calls = Vec::new();
    let (action, _) = run(&llmd, stores, calls, vec![]).await;
    assert_eq!(action, Action::requeue(RESYNC_READY));
}

#[tokio::test]
async fn router_replicas_are_found_by_their_pods() {
    let (models, mut llmd) = progressive();
    at_step_one(&mut llmd, EARLIER);
    let url = router(stats(60, 0)).await;
    let port: i32 = url.rsplit(':').next().unwrap().parse().unwrap();
    let pod = |phase: &str, ip: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("router-{phase}")},
               "spec": {"containers": [{"name": "router", "ports": [{"name": "http", "containerPort": port}]}]},
               "status": {"phase": phase, "podIP": ip}})
    };
    let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"},
                      "items": [pod("Running", "127.0.0.1"), pod("Pending", "127.0.0.2")]});
    let stores = cluster(&models, &live_at(&llmd, &models, (90, 10)));
    let mut calls = Vec::new();
    calls.push(Call::get(
        "/api/v1/namespaces/default/pods?&labelSelector=app.kubernetes.io%2Fcomponent%3Drouter%2Capp.kubernetes.io%2Finstance%3Dassistant%2Capp.kubernetes.io%2Fname%3Dllamafleet",
        Reply::Json(pods),
    ));
    let (path, body) = routing_at(&llmd, &models, (75, 25));
    calls.push(Call::apply(path, body));
    let mut status = Call::status(status_path("default", "assistant"), Value::Null, &llmd);
    status.body = None;
    status.body_has = Some(json!({"status": {"weights": "blue=75,green=25",
        "rollout": {"step": 2, "lastDecision": "advanced to 25%"}}}));
    calls.push(status);
    calls.push(Call::event(
        "default",
        json!({"type": "Normal", "reason": "RolloutAdvanced"}),
    ));
    let (action, _) = run(&llmd, stores, calls, vec![]).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(2)));
}

/// The status of the promotion to green=100, with blue's desired replicas.
fn promoted_status(blue_replicas: i32, note: &str) -> Value {
    let counts = format!(
        "2/{} variant replicas and 0/2 router replicas ready",
        2 + blue_replicas
    );
    json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "status": {
            "variants": [
                {"name": "blue", "model": "saiga-7b", "weight": 0, "replicas": blue_replicas, "readyReplicas": 0},
                {"name": "green", "model": "vistral-24b", "weight": 100, "replicas": 2, "readyReplicas": 2},
            ],
            "weights": "blue=0,green=100",
            "ready": format!("2/{}", 2 + blue_replicas),
            "endpoint": "http://assistant.default.svc",
            "rollout": {"phase": "Promoted", "candidate": "green", "step": 4,
                "stepStartedAt": NOW, "baseline": "blue=100,green=0", "generation": 2,
                "lastDecision": "promoted at 100%", "reason": note},
            "conditions": [
                cond("Ready", "False", "ReplicasNotReady", &counts),
                cond("Progressing", "True", "ReplicasStarting", &counts),
                cond("Degraded", "False", "AsExpected", ""),
                not_rolled_back(),
            ],
            "observedGeneration": 2,
        }
    })
}

#[tokio::test]
async fn passing_the_last_step_promotes_and_scales_the_old_variant_to_zero_once_routers_drop_it() {
    let (models, mut llmd) = progressive();
    at_step_one(&mut llmd, EARLIER);
    let status = llmd.status.as_mut().unwrap();
    for v in &mut status.variants {
        v.weight = Some(50);
    }
    status.weights = Some("blue=50,green=50".into());
    let rollout = status.rollout.as_mut().unwrap();
    rollout.step = Some(3);
    rollout.last_decision = Some("advanced to 50%".into());

    // Promotion: the table moves to blue=0, but the router still runs blue=50,green=50, so
    // blue keeps its replicas (requests in flight to it still land) and the operator looks
    // again shortly.
    let url = router(stats_of("blue=50,green=50", 60, 0)).await;
    let stores = cluster(&models, &live_at(&llmd, &models, (50, 50)));
    let mut calls = Vec::new();
    let (path, body) = routing_at(&llmd, &models, (0, 100));
    calls.push(Call::apply(path, body));
    let note = "green promoted to 100% (passed 50%: 60 candidate requests, error rate 0.0000 \
                (0 of 60)); weights blue=0,green=100";
    let promoted = promoted_status(2, note);
    calls.push(Call::status(
        status_path("default", "assistant"),
        promoted.clone(),
        &llmd,
    ));
    calls.push(event("Normal", "RolloutPromoted", note));
    let (action, _) = run(&llmd, stores, calls, vec![url]).await;
    assert_eq!(action, Action::requeue(drain::RECHECK));

    // The router reloaded the table: blue goes to 0 replicas, with no new decision.
    llmd.status = Some(serde_json::from_value(promoted["status"].clone()).unwrap());
    let url = router(stats_of("blue=0,green=100", 0, 0)).await;
    let stores = cluster(&models, &live_at(&llmd, &models, (0, 100)));
    let mut calls = Vec::new();
    let (path, mut blue) = built_children(&with_weights(&llmd, (0, 100)), &models).remove(1);
    assert!(path.ends_with("/deployments/assistant-blue"));
    blue["spec"]["replicas"] = json!(0);
    calls.push(Call::apply(path, blue));
    calls.push(Call::status(
        status_path("default", "assistant"),
        promoted_status(0, note),
        &llmd,
    ));
    let (action, _) = run(&llmd, stores, calls, vec![url]).await;
    assert_eq!(action, Action::requeue(RESYNC_READY));
}
