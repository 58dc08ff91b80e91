//! Scale to zero (`spec.autoscaling.minReplicas: 0`) against the scripted mock API (every
//! request asserted), with the routers' `/router/stats` served by a real HTTP server on
//! loopback: a variant idle for `idleAfter` is scaled to 0 with an Event and `idleSince`; one
//! with a fresh request is kept (and an unchanged one costs no request at all); one the router
//! woke is recorded awake without the operator scaling it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use llamafleet_crds::routing::RouterStats;
use llamafleet_crds::{AutoscalingSpec, LlmDeployment, LlmDeploymentStatus, LlmModel};
use llamafleet_operator::deployment::sleep::UNREPORTED_RECHECK;
use llamafleet_operator::deployment::{self, RESYNC_READY};
use llamafleet_operator::rollout::RouterStatsClient;
use llamafleet_operator::stores::Stores;
use serde_json::{Value, json};
use support::*;

const SHA: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
const EARLIER: &str = "2026-01-02T02:00:00Z";

/// The quickstart with variants that sleep after 60 s without a request.
fn sleepy() -> (Vec<LlmModel>, LlmDeployment) {
    let (models, mut llmd) = fixture("quickstart.yaml");
    llmd.spec.replicas = None;
    llmd.spec.autoscaling = Some(AutoscalingSpec {
        min_replicas: 0,
        max_replicas: 2,
        target_cpu_utilization: None,
        target_queue_depth: None,
        idle_after: Some("60s".into()),
        wake_timeout: None,
        max_held_requests: None,
    });
    (models, llmd)
}

/// The children as listed: the variant Deployment at `replicas`, all of them ready.
fn live(llmd: &LlmDeployment, models: &[LlmModel], replicas: i32) -> Vec<Value> {
    built_children(llmd, models)
        .into_iter()
        .map(|(_, mut v)| {
            if v["kind"] == "Deployment" {
                let n = if v["metadata"]["name"] == "chat-main" {
                    v["spec"]["replicas"] = json!(replicas);
                    replicas
                } else {
                    2
                };
                v["status"] = json!({"replicas": n, "readyReplicas": n});
            }
            with_server_fields(v)
        })
        .collect()
}

/// The status with the variant at `replicas`, asleep since `idle_since` if given.
fn status(replicas: i32, idle_since: Option<&str>) -> Value {
    let counts = format!("{replicas}/{replicas} variant replicas and 2/2 router replicas ready");
    let cond = |t: &str, s: &str, reason: &str| {
        json!({"type": t, "status": s, "reason": reason, "message": if t == "Degraded" { "" } else { counts.as_str() },
               "observedGeneration": 1, "lastTransitionTime": NOW})
    };
    let mut variant = json!({"name": "main", "model": "gemma3-270m", "sha256": SHA, "weight": 100,
                             "replicas": replicas, "readyReplicas": replicas});
    if let Some(t) = idle_since {
        variant["idleSince"] = json!(t);
    }
    json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "status": {
            "variants": [variant],
            "weights": "main=100",
            "ready": format!("{replicas}/{replicas}"),
            "endpoint": "http://chat.default.svc",
            "conditions": [
                cond("Ready", "True", "AllReplicasReady"),
                cond("Progressing", "False", "Stable"),
                cond("Degraded", "False", "AsExpected"),
            ],
            "observedGeneration": 1,
        }
    })
}

fn with_status(llmd: &LlmDeployment, body: &Value) -> LlmDeployment {
    let mut d = llmd.clone();
    let s: LlmDeploymentStatus = serde_json::from_value(body["status"].clone()).unwrap();
    d.status = Some(s);
    d
}

/// A router on loopback that has seen no request for `main` in `idle` seconds.
async fn router(idle: f64) -> String {
    let stats = RouterStats {
        revision: "main=100".into(),
        idle_seconds: BTreeMap::from([("main".to_string(), idle)]),
        ..RouterStats::default()
    };
    router_serving(&stats).await
}

async fn run(llmd: &LlmDeployment, stores: Stores, calls: Vec<Call>, router: String) -> Action {
    let (ctx, handle) = context_with(stores);
    let ctx = Arc::new(
        Arc::into_inner(ctx)
            .unwrap()
            .with_routers(RouterStatsClient::new(vec![router]).unwrap()),
    );
    let server = tokio::spawn(serve(handle, calls));
    let result = deployment::reconcile(Arc::new(llmd.clone()), ctx.clone()).await;
    drop(ctx);
    server.await.unwrap();
    result.unwrap()
}

fn event(reason: &str, note: &str) -> Call {
    Call::event(
        "default",
        json!({"type": "Normal", "reason": reason, "note": note, "action": "Reconcile",
               "regarding": {"kind": "LlmDeployment", "name": "chat", "uid": "uid-chat"}}),
    )
}

#[test]
fn routers_get_an_identity_allowed_to_watch_endpoints_and_scale_exactly_the_variants() {
    let (models, llmd) = sleepy();
    let children = built_children(&llmd, &models);
    let kinds: Vec<&str> = children
        .iter()
        .map(|(_, v)| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service"
        ]
    );
    let role = &children[6].1;
    let watch = json!({"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["list", "watch"]});
    assert_eq!(
        role["rules"],
        json!([watch, {"apiGroups": ["apps"], "resources": ["deployments/scale"],
                "resourceNames": ["chat-main"], "verbs": ["get", "patch"]}])
    );
    let binding = &children[7].1;
    assert_eq!(binding["roleRef"]["name"], "chat-router");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "chat-router", "namespace": "default"}])
    );
    let router = &children[8].1["spec"]["template"]["spec"];
    assert_eq!(router["serviceAccountName"], "chat-router");
    assert_eq!(router["automountServiceAccountToken"], true);
    // The autoscaler never asks for fewer than one replica: sleeping is not its job.
    assert_eq!(children[4].1["spec"]["minReplicas"], 1);
    let table = children[0].1["data"]["routing.yaml"].as_str().unwrap();
    assert!(table.contains("deployment: chat-main"), "{table}");
    assert!(
        table.contains("wake:\n  namespace: default\n  timeoutSeconds: 300\n  maxHeld: 100"),
        "{table}"
    );

    // Without sleeping variants: the same identity, allowed only to watch EndpointSlices.
    let (models, llmd) = fixture("quickstart.yaml");
    let children = built_children(&llmd, &models);
    assert_eq!(children.len(), 9);
    assert_eq!(children[5].1["rules"], json!([watch]));
    let router = &children[7].1["spec"]["template"]["spec"];
    assert_eq!(router["serviceAccountName"], "chat-router");
    assert_eq!(router["automountServiceAccountToken"], true);
}

#[tokio::test]
async fn an_unchanged_awake_variant_costs_no_request_and_is_checked_at_its_idle_deadline() {
    let (models, llmd) = sleepy();
    let llmd = with_status(&llmd, &status(1, None));
    let stores = cluster(&models, &live(&llmd, &models, 1));
    let action = run(&llmd, stores, vec![], router(10.0).await).await;
    // 60 s idleAfter - 10 s idle, plus a second so the deadline has passed.
    assert_eq!(action, Action::requeue(Duration::from_secs(51)));
}

#[tokio::test]
async fn a_variant_idle_for_idle_after_is_scaled_to_zero_with_an_event() {
    let (models, llmd) = sleepy();
    let llmd = with_status(&llmd, &status(1, None));
    let stores = cluster(&models, &live(&llmd, &models, 1));
    let (path, mut deployment) = built_children(&llmd, &models).remove(1);
    assert!(path.ends_with("/deployments/chat-main"));
    deployment["spec"]["replicas"] = json!(0);
    let calls = vec![
        Call::apply(path, deployment),
        // The status shows the count as written.
        Call::status(status_path("default", "chat"), status(0, Some(NOW)), &llmd),
        event(
            "Idle",
            "variant main had no request for idleAfter: scaled to 0 replicas",
        ),
    ];
    let action = run(&llmd, stores, calls, router(61.0).await).await;
    assert_eq!(action, Action::requeue(RESYNC_READY));
}

#[tokio::test]
async fn a_variant_the_router_woke_is_recorded_awake() {
    let (models, llmd) = sleepy();
    let llmd = with_status(&llmd, &status(0, Some(EARLIER)));
    // The router scaled the Deployment to 1; the operator leaves the count to the
    // autoscaler and writes nothing but the status.
    let stores = cluster(&models, &live(&llmd, &models, 1));
    let calls = vec![
        Call::status(status_path("default", "chat"), status(1, None), &llmd),
        event("Woken", "variant main has requests again: awake"),
    ];
    let action = run(&llmd, stores, calls, router(1.0).await).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
}

#[tokio::test]
async fn an_awake_variant_the_routers_do_not_report_yet_is_looked_at_again_soon() {
    let (models, llmd) = sleepy();
    let llmd = with_status(&llmd, &status(1, None));
    let stores = cluster(&models, &live(&llmd, &models, 1));
    // A router still on the table from before `minReplicas: 0` reports no idle figure; the
    // new table reaches it through its ConfigMap volume, which no watch event announces.
    let old_table = router_serving(&RouterStats {
        revision: "main=100".into(),
        ..RouterStats::default()
    })
    .await;
    let action = run(&llmd, stores, vec![], old_table).await;
    assert_eq!(action, Action::requeue(UNREPORTED_RECHECK));
}

#[tokio::test]
async fn a_sleeping_variant_stays_asleep_while_the_routers_cannot_be_read() {
    let (models, llmd) = sleepy();
    let asleep = status(0, Some(EARLIER));
    let llmd = with_status(&llmd, &asleep);
    let stores = cluster(&models, &live(&llmd, &models, 0));
    // Nothing listens on the port the router had: no figures, no change, no request.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let action = run(&llmd, stores, vec![], gone).await;
    assert_eq!(action, Action::requeue(RESYNC_READY));
}
