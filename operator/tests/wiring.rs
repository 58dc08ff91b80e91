//! Pieces of the running operator that need no cluster: the model → deployment mapping,
//! agent status parsing and its effect on status, `/metrics` and `/healthz`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;

use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::Event;
use llamafleet_operator::agent_status::AgentStatus;
use llamafleet_operator::deployment::dereference::LiveChildren;
use llamafleet_operator::deployment::plan;
use llamafleet_operator::deployment::status;
use llamafleet_operator::run::deployments_using;
use support::*;

#[test]
fn a_model_maps_to_the_deployments_that_use_it_in_its_namespace() {
    let (models, d02) = fixture("migration/02-green-10.yaml");
    let (_, quick) = fixture("quickstart.yaml");
    let mut other_ns = d02.clone();
    other_ns.metadata.namespace = Some("elsewhere".into());
    let (reader, mut writer) = reflector::store();
    for d in [&d02, &quick, &other_ns] {
        writer.apply_watcher_event(&Event::Apply(d.clone()));
    }
    let vistral = models
        .iter()
        .find(|m| m.metadata.name.as_deref() == Some("vistral-24b"))
        .unwrap();
    assert_eq!(
        deployments_using(&reader, vistral),
        vec![ObjectRef::from_obj(&d02)]
    );
}

/// The quickstart's deployment and its plan.
fn quickstart_plan() -> (llamafleet_crds::LlmDeployment, plan::Plan) {
    let (models, llmd) = fixture("quickstart.yaml");
    let resolved = models
        .iter()
        .map(|m| {
            (
                m.metadata.name.clone().unwrap(),
                plan::ResolvedModel::from_ready(m),
            )
        })
        .collect();
    let plan = plan::make("chat", "default", &llmd.spec, &resolved).unwrap();
    (llmd, plan)
}

#[test]
fn agent_status_fills_download_and_acceleration() {
    let json = r#"{"phase":"downloading","download":{"bytes":1048576,"total":253000000},
        "sha256":null,"device":"NVIDIA H100","layers_offloaded":18,"layers_total":18,
        "slots_busy":1,"slots_total":4,"extra":"ignored"}"#;
    let agent: AgentStatus = serde_json::from_str(json).unwrap();
    let (llmd, plan) = quickstart_plan();
    let agents = BTreeMap::from([("main".to_string(), agent)]);
    let s = status::observed(&llmd, &plan, &LiveChildren::default(), &agents, &clock()());
    let v = &s.variants[0];
    let download = v.download.clone().unwrap();
    assert_eq!(
        (download.bytes, download.total),
        (1_048_576, Some(253_000_000))
    );
    let acc = v.acceleration.clone().unwrap();
    assert_eq!(acc.device.as_deref(), Some("NVIDIA H100"));
    assert_eq!(
        (acc.layers_offloaded, acc.layers_total),
        (Some(18), Some(18))
    );
    let progressing = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "Downloading");

    // A ready agent reports no download, so status stops changing once the file is in place.
    let ready: AgentStatus =
        serde_json::from_str(r#"{"phase":"ready","download":{"bytes":5,"total":5}}"#).unwrap();
    assert_eq!(ready.download_progress(), None);
    assert_eq!(ready.acceleration(), None);
}

#[test]
fn a_failed_agent_degrades_the_deployment_with_its_reason_announced_once() {
    let (llmd, plan) = quickstart_plan();
    let why = "sha256 mismatch for http://models/m.gguf: expected aa…, got bb…";
    let failed: AgentStatus =
        serde_json::from_value(serde_json::json!({"phase": "failed", "error": why})).unwrap();
    let downloading: AgentStatus =
        serde_json::from_value(serde_json::json!({"phase": "downloading"})).unwrap();
    let ready: AgentStatus = serde_json::from_value(serde_json::json!({"phase": "ready"})).unwrap();
    // Among a variant's replicas, the failure is what status shows.
    let merged = AgentStatus::most_telling(vec![ready.clone(), downloading, failed.clone()]);
    assert_eq!(merged.as_ref().and_then(AgentStatus::failure), Some(why));
    assert_eq!(AgentStatus::most_telling(vec![]), None);

    let agents = BTreeMap::from([("main".to_string(), failed)]);
    let s = status::observed(&llmd, &plan, &LiveChildren::default(), &agents, &clock()());
    let degraded = s.conditions.iter().find(|c| c.type_ == "Degraded").unwrap();
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "AgentFailed")
    );
    assert_eq!(degraded.message, format!("variant main: {why}"));
    // One Event when it appears, none while it stays, another when it changes.
    let announced = status::new_agent_failure(llmd.status.as_ref(), &s);
    assert_eq!(announced, Some(format!("variant main: {why}")));
    assert_eq!(status::new_agent_failure(Some(&s), &s), None);
    let healthy = BTreeMap::from([("main".to_string(), ready)]);
    let fixed = status::observed(&llmd, &plan, &LiveChildren::default(), &healthy, &clock()());
    let degraded = fixed
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    assert_eq!(degraded.status, "False");
    assert_eq!(status::new_agent_failure(Some(&s), &fixed), None);
}

#[test]
fn condition_keeps_transition_time_while_status_is_unchanged() {
    let t0 = clock()();
    let first = status::condition(&[], "Ready", false, "A", "m".into(), Some(1), &t0);
    let later = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2030-01-01T00:00:00Z".parse().unwrap(),
    );
    let same = status::condition(
        std::slice::from_ref(&first),
        "Ready",
        false,
        "B",
        "n".into(),
        Some(2),
        &later,
    );
    assert_eq!(same.last_transition_time, t0);
    let flipped = status::condition(&[first], "Ready", true, "C", "o".into(), Some(2), &later);
    assert_eq!(flipped.last_transition_time, later);
}

#[tokio::test]
async fn metrics_and_healthz_are_served() {
    let metrics = std::sync::Arc::new(llamafleet_operator::metrics::Metrics::new());
    metrics
        .reconciles
        .with_label_values(&["llmdeployment"])
        .inc();
    metrics.managed.with_label_values(&["LlmDeployment"]).set(3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, llamafleet_operator::http::app(metrics))
            .await
            .unwrap();
    });
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        body.contains(r#"llamafleet_operator_reconciles_total{controller="llmdeployment"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"llamafleet_operator_managed_objects{kind="LlmDeployment"} 3"#),
        "{body}"
    );
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.abort();
}

#[tokio::test]
async fn a_lasting_warning_is_announced_once_while_it_holds() {
    let (ctx, _api) = context();
    let skipped = vec!["no room for chat-main-u1".to_string()];
    assert_eq!(ctx.newly_announced("default/chat", &skipped), skipped);
    // The next reconciles find the same problem: nothing new to say.
    assert!(ctx.newly_announced("default/chat", &skipped).is_empty());
    assert!(ctx.newly_announced("default/chat", &skipped).is_empty());
    // Another deployment has its own.
    assert_eq!(ctx.newly_announced("default/other", &skipped), skipped);
    // A second problem is said; the first is not repeated.
    let both = vec![skipped[0].clone(), "no room for chat-side-u1".to_string()];
    assert_eq!(
        ctx.newly_announced("default/chat", &both),
        vec!["no room for chat-side-u1".to_string()]
    );
    // Once it is over, a return is news again.
    assert!(ctx.newly_announced("default/chat", &[]).is_empty());
    assert_eq!(ctx.newly_announced("default/chat", &skipped), skipped);
}

#[test]
fn the_watch_caches_give_a_deployment_its_own_children_and_models() {
    let (models, assistant) = fixture("migration/02-green-10.yaml");
    let (chat_models, chat) = fixture("quickstart.yaml");
    let mut live: Vec<serde_json::Value> = built_children(&assistant, &models)
        .into_iter()
        .chain(built_children(&chat, &chat_models))
        .map(|(_, v)| with_server_fields(v))
        .collect();
    // The same child name in another namespace, and one the operator did not make.
    let mut elsewhere = live[0].clone();
    elsewhere["metadata"]["namespace"] = "elsewhere".into();
    let mut foreign = live[0].clone();
    foreign["metadata"]["name"] = "assistant-by-hand".into();
    foreign["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "kubectl".into();
    live.extend([elsewhere, foreign]);
    let stores = cluster(&models, &live);

    let children = stores.children("default", "assistant");
    let names = |objs: Vec<Option<String>>| objs.into_iter().flatten().collect::<Vec<_>>();
    assert_eq!(
        names(
            children
                .deployments
                .iter()
                .map(|d| d.metadata.name.clone())
                .collect()
        ),
        ["assistant-blue", "assistant-green", "assistant-router"]
    );
    assert_eq!(
        names(
            children
                .config_maps
                .iter()
                .map(|c| c.metadata.name.clone())
                .collect()
        ),
        ["assistant-routing"]
    );
    assert!(children.services.iter().all(|s| {
        s.metadata.namespace.as_deref() == Some("default")
            && s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("assistant"))
    }));
    assert!(stores.children("elsewhere", "chat").deployments.is_empty());
    assert!(stores.model("default", "saiga-7b").is_some());
    assert!(stores.model("elsewhere", "saiga-7b").is_none());
}
