//! Scale benchmark (not a timed test): 1000 LlmDeployments reconciled against an in-memory
//! mock API server (a `tower_test` pair answering like an API server would: server-side
//! applies, status applies, the node cache's claim). The reconciles read watch caches that
//! hold what the mock stored, as the operator's watches would. Round 1 creates every child,
//! round 2 must make no request. Run through `bench/operator-scale.sh` for CPU time and peak RSS.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::client::Body;
use llamafleet_crds::LlmDeployment;
use llamafleet_operator::agent_status::NoAgentProbe;
use llamafleet_operator::context::Context;
use llamafleet_operator::deployment::dereference::LiveChildren;
use llamafleet_operator::metrics::Metrics;
use llamafleet_operator::stores::Stores;
use serde_json::{Value, json};

/// LlmDeployments reconciled per round (override with the first argument).
const DEFAULT_COUNT: usize = 1000;

#[derive(Default)]
struct Cluster {
    /// path → object (children, by their REST path).
    objects: BTreeMap<String, Value>,
    /// LlmDeployment name → last applied status.
    statuses: BTreeMap<String, Value>,
    writes: usize,
    requests: usize,
}

fn model() -> Value {
    json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmModel",
           "metadata": {"name": "gemma3-270m", "namespace": "default", "uid": "m"},
           "spec": {"source": {"url": "https://example.com/m.gguf"}},
           "status": {"phase": "Ready", "resolved": {"url": "https://example.com/m.gguf"}}})
}

fn deployment(i: usize) -> LlmDeployment {
    serde_json::from_value(json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "metadata": {"name": format!("llmd-{i}"), "namespace": "default",
                     "uid": format!("uid-{i}"), "generation": 1},
        "spec": {"variants": [{"name": "blue", "model": "gemma3-270m", "weight": 90},
                              {"name": "green", "model": "gemma3-270m", "weight": 10}],
                 "replicas": 1, "serving": {"parallel": 4}}
    }))
    .unwrap()
}

fn answer(cluster: &Mutex<Cluster>, method: &str, uri: &str, body: Value) -> Value {
    let mut c = cluster.lock().unwrap();
    c.requests += 1;
    let path = uri.split('?').next().unwrap_or_default().to_string();
    match method {
        // The namespace's node-cache claim, already bound (operator/src/node_cache.rs).
        "GET" if path.ends_with("/persistentvolumeclaims/llamafleet-model-cache") => json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "llamafleet-model-cache", "namespace": "default"},
            "status": {"phase": "Bound"}
        }),
        // Reads come from the watch caches (`stores_of`), never from the API server.
        "GET" => panic!("unexpected read: {uri}"),
        "PATCH" if path.ends_with("/status") => {
            c.writes += 1;
            let name = path
                .trim_end_matches("/status")
                .rsplit('/')
                .next()
                .unwrap_or_default();
            c.statuses.insert(name.to_string(), body["status"].clone());
            let mut obj = serde_json::to_value(deployment(0)).unwrap();
            obj["status"] = body["status"].clone();
            obj
        }
        _ => {
            c.writes += 1;
            let mut obj = body;
            obj["metadata"]["uid"] = json!("x");
            c.objects.insert(path, obj.clone());
            obj
        }
    }
}

/// Watch caches holding the model and every stored child, as the watches would after a round.
fn stores_of(c: &Cluster) -> Stores {
    let mut live = LiveChildren::default();
    for o in c.objects.values() {
        let o = o.clone();
        match o["kind"].as_str() {
            Some("ConfigMap") => live.config_maps.push(serde_json::from_value(o).unwrap()),
            Some("Deployment") => live.deployments.push(serde_json::from_value(o).unwrap()),
            Some("Service") => live.services.push(serde_json::from_value(o).unwrap()),
            Some("PodDisruptionBudget") => live.pdbs.push(serde_json::from_value(o).unwrap()),
            Some("HorizontalPodAutoscaler") => live.hpas.push(serde_json::from_value(o).unwrap()),
            other => panic!("unexpected kind {other:?}"),
        }
    }
    Stores::holding(vec![serde_json::from_value(model()).unwrap()], live)
}

async fn serve(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    cluster: Arc<Mutex<Cluster>>,
) {
    while let Some((req, send)) = handle.next_request().await {
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        let out = answer(&cluster, &method, &uri, body);
        send.send_response(Response::new(Body::from(serde_json::to_vec(&out).unwrap())));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_COUNT);
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    tokio::spawn(serve(handle, cluster.clone()));
    let clock = Arc::new(|| Time("2026-01-01T00:00:00Z".parse().unwrap()));
    let client = Client::new(service, "default");
    let metrics = Arc::new(Metrics::new());
    let mut objects: Vec<LlmDeployment> = (0..count).map(deployment).collect();
    for round in 1..=2 {
        let before = {
            let c = cluster.lock().unwrap();
            (c.requests, c.writes)
        };
        let stores = stores_of(&cluster.lock().unwrap());
        let ctx = Arc::new(
            Context::new(
                client.clone(),
                None,
                metrics.clone(),
                "agent:bench".into(),
                Arc::new(NoAgentProbe),
                clock.clone(),
            )
            .with_stores(stores),
        );
        let started = Instant::now();
        for d in &mut objects {
            llamafleet_operator::deployment::reconcile(Arc::new(d.clone()), ctx.clone())
                .await
                .unwrap();
            // Keep the status the round wrote, as the watch cache would.
            let name = d.metadata.name.clone().unwrap();
            let written = cluster.lock().unwrap().statuses.get(&name).cloned();
            if let Some(status) = written {
                d.status = Some(serde_json::from_value(status).unwrap());
            }
        }
        let c = cluster.lock().unwrap();
        println!(
            "round {round}: {count} LlmDeployments reconciled in {:.2?}; {} requests, {} writes; {} objects stored",
            started.elapsed(),
            c.requests - before.0,
            c.writes - before.1,
            c.objects.len()
        );
    }
}
