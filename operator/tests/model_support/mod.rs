//! LlmModel reconcile helpers shared by the model test binaries: a fake clock, a context on
//! the scripted mock API with a real source fetcher, a model on a loopback source, and the
//! status of its first resolution.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use llamafleet_crds::{LlmModel, LlmModelStatus, UpdatePolicy, UpdateSpec};
use llamafleet_operator::agent_status::NoAgentProbe;
use llamafleet_operator::context::{Context, ModelOptions};
use llamafleet_operator::metrics::Metrics;
use llamafleet_operator::model::{self, fetch::Fetcher, resolve::human_size, schedule::time};
use serde_json::{Value, json};

use super::source_server::{LAST_MODIFIED, SourceServer};
use super::support::{self, Call, NOW, Reply, serve};

pub const STATUS: &str = "/apis/llamafleet.dev/v1alpha1/namespaces/default/llmmodels/m/status";

/// A clock the test sets.
#[derive(Clone)]
pub struct FakeClock(pub Arc<Mutex<Time>>);

impl FakeClock {
    pub fn at(text: &str) -> Self {
        Self(Arc::new(Mutex::new(time(text).unwrap())))
    }
    pub fn set(&self, text: &str) {
        *self.0.lock().unwrap() = time(text).unwrap();
    }
}

pub fn context(clock: &FakeClock) -> (Arc<Context>, support::Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let c = clock.0.clone();
    let ctx = Context::new(
        Client::new(service, "default"),
        Some("op-0".into()),
        Arc::new(Metrics::new()),
        support::IMAGE.into(),
        Arc::new(NoAgentProbe),
        Arc::new(move || c.lock().unwrap().clone()),
    )
    .with_model_options(ModelOptions {
        fetcher: Some(Fetcher::new().unwrap()),
        ..ModelOptions::default()
    });
    (Arc::new(ctx), handle)
}

/// One reconcile of `m` against the scripted calls, with a fresh context.
pub async fn reconcile(m: &LlmModel, clock: &FakeClock, calls: Vec<Call>) -> Action {
    let (ctx, handle) = context(clock);
    reconcile_with(m, &ctx, handle, calls).await
}

pub async fn reconcile_with(
    m: &LlmModel,
    ctx: &Arc<Context>,
    handle: support::Handle,
    calls: Vec<Call>,
) -> Action {
    let server = tokio::spawn(serve(handle, calls));
    let action = model::reconcile(Arc::new(m.clone()), ctx.clone())
        .await
        .unwrap();
    server.await.unwrap();
    action
}

pub fn model(url: &str, policy: UpdatePolicy, quantization: Option<&str>) -> LlmModel {
    let mut m = super::source_server::model_at(url);
    m.spec.quantization = quantization.map(str::to_owned);
    m.spec.update = Some(UpdateSpec {
        schedule: Some("0 * * * *".into()),
        policy,
    });
    m.metadata.uid = Some("uid-m".into());
    m.metadata.generation = Some(1);
    m
}

pub fn cond(type_: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "observedGeneration": 1, "lastTransitionTime": at})
}

/// `applied` (a status patch) after a successful scheduled check at `at`: the check time and
/// the SourceReachable condition (True since the first check) with `message`.
pub fn checked_at(applied: &Value, at: &str, message: &str) -> Value {
    let mut checked = applied.clone();
    let s = &mut checked["status"];
    s["lastUpdateCheck"] = json!(at);
    s["conditions"][1] = cond("SourceReachable", "True", "Checked", message, NOW);
    checked
}

pub fn patch(status: Value) -> Value {
    json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmModel", "status": status})
}

/// A status apply whose body must contain `body_has` (arrays: same length, each element a
/// subset), answered with the model.
pub fn status_has(m: &LlmModel, status_has: Value) -> Call {
    Call {
        method: "PATCH",
        path: format!("{STATUS}{}", support::MANAGER_QUERY),
        body: None,
        body_has: Some(patch(status_has)),
        reply: Reply::Json(serde_json::to_value(m).unwrap()),
    }
}

pub fn with_status(m: &LlmModel, body: &Value) -> LlmModel {
    let mut m = m.clone();
    m.status = Some(serde_json::from_value::<LlmModelStatus>(body["status"].clone()).unwrap());
    m
}

/// The status of the first resolution of the tiny model served by `server`.
pub fn first_status(server: &SourceServer, len: usize) -> Value {
    let c = server.content();
    let pinned = format!("http://{}/o/r/resolve/{}/m.gguf", server.hub, c.commit());
    let note = format!("resolved {pinned} ({})", human_size(len as u64));
    patch(json!({
        "phase": "Ready",
        "resolved": {"sha256": c.sha256(), "sizeBytes": len, "size": human_size(len as u64),
                     "etag": c.etag(), "revision": c.commit(), "url": pinned,
                     "sourceUrl": server.hf_url(), "lastModified": LAST_MODIFIED},
        "gguf": {"architecture": "llama", "parameters": 168, "quantization": "F32",
                 "contextLength": 128, "layers": 2, "embeddingLength": 8, "heads": 2,
                 "kvHeads": 1, "vocabSize": 4},
        "memory": {"weightsBytes": 672, "kvBytesPerToken": 32, "layerWeightsBytes": 512},
        "lastUpdateCheck": NOW,
        "conditions": [
            cond("Ready", "True", "Resolved", &note, NOW),
            cond("SourceReachable", "True", "Resolved", &note, NOW),
            cond("Degraded", "False", "AsExpected", "", NOW),
            cond("UpdateAvailable", "False", "UpToDate", "", NOW),
        ],
        "observedGeneration": 1,
    }))
}

/// The candidate a check records for what `server` serves now, `tiny_llama(extra_rows)`: the
/// pinned URL and the new file's own header figures (8 parameters and 32 bytes per extra
/// vocabulary row).
pub fn candidate(server: &SourceServer, detected_at: &str, extra_rows: u64) -> Value {
    let new = server.content();
    let len = new.bytes.len();
    json!({
        "sha256": new.sha256(), "revision": new.commit(), "etag": new.etag(),
        "detectedAt": detected_at,
        "url": format!("http://{}/o/r/resolve/{}/m.gguf", server.hub, new.commit()),
        "sizeBytes": len, "size": human_size(len as u64), "lastModified": LAST_MODIFIED,
        "gguf": {"architecture": "llama", "parameters": 168 + 8 * extra_rows, "quantization": "F32",
                 "contextLength": 128, "layers": 2, "embeddingLength": 8, "heads": 2,
                 "kvHeads": 1, "vocabSize": 4},
        "memory": {"weightsBytes": 672 + 32 * extra_rows, "kvBytesPerToken": 32,
                   "layerWeightsBytes": 512},
    })
}
