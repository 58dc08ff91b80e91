//! Scale benchmark (not a timed test): 1000 LlmDeployments reconciled against an in-memory
//! mock API server (a `tower_test` pair answering like an API server would: GETs, label
//! LISTs, server-side applies, status applies). Round 1 creates every child, round 2 must
//! write nothing. Run through `bench/operator-scale.sh` for CPU time and peak RSS.
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
use llamafleet_operator::metrics::Metrics;
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
        "GET" if path.contains("/llmmodels/") => model(),
        // The namespace's node-cache claim, already bound (operator/src/node_cache.rs).
        "GET" if path.ends_with("/persistentvolumeclaims/llamafleet-model-cache") => json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "llamafleet-model-cache", "namespace": "default"},
            "status": {"phase": "Bound"}
        }),
        "GET" => {
            // LIST by instance label: labelSelector=app.kubernetes.io%2Finstance%3D<name>%2C...
            let instance = uri
                .split("instance%3D")
                .nth(1)
                .and_then(|s| s.split("%2C").next());
            let items: Vec<Value> = c
                .objects
                .iter()
                .filter(|(p, o)| {
                    p.starts_with(&path)
                        && o["metadata"]["labels"]["app.kubernetes.io/instance"].as_str()
                            == instance
                })
                .map(|(_, o)| o.clone())
                .collect();
            json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
        }
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
    let ctx = Arc::new(Context::new(
        Client::new(service, "default"),
        None,
        Arc::new(Metrics::new()),
        "agent:bench".into(),
        Arc::new(NoAgentProbe),
        clock,
    ));
    let mut objects: Vec<LlmDeployment> = (0..count).map(deployment).collect();
    for round in 1..=2 {
        let before = {
            let c = cluster.lock().unwrap();
            (c.requests, c.writes)
        };
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
