//! A scripted mock API server (`tower_test`): every request is checked against the next
//! expectation (method, full path with query, JSON body) and answered as scripted; a call that
//! never comes, or one too many, fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::client::Body;
use kube::{Client, Resource};
use llamafleet_crds::{LlmDeployment, LlmModel};
use llamafleet_operator::agent_status::NoAgentProbe;
use llamafleet_operator::build::gpu::AgentImages;
use llamafleet_operator::build::{self, BuildOptions};
use llamafleet_operator::context::Context;
use llamafleet_operator::deployment::dereference::LiveChildren;
use llamafleet_operator::deployment::plan::{self, ResolvedModel};
use llamafleet_operator::metrics::Metrics;
use llamafleet_operator::names::CACHE_DIR;
use llamafleet_operator::stores::Stores;
use serde_json::{Value, json};

pub mod rbac;

pub const IMAGE: &str = "ghcr.io/llamafleet/agent:test";
pub const NOW: &str = "2026-01-02T03:04:05Z";
pub const MANAGER_QUERY: &str = "?&force=true&fieldManager=llamafleet-operator";
/// How long a scripted call may take to arrive.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// What the server answers.
pub enum Reply {
    /// This JSON with 200.
    Json(Value),
    /// The request body with server fields added (uid, resourceVersion), 200.
    Echo,
    /// A Kubernetes `Status` with this code.
    Status(u16),
}

/// One expected request.
pub struct Call {
    pub method: &'static str,
    pub path: String,
    /// Exact body; `None` means "do not compare".
    pub body: Option<Value>,
    /// Fields that must be in the body (subset), for bodies with generated parts.
    pub body_has: Option<Value>,
    pub reply: Reply,
}

impl Call {
    pub fn get(path: impl Into<String>, reply: Reply) -> Self {
        Self {
            method: "GET",
            path: path.into(),
            body: None,
            body_has: None,
            reply,
        }
    }
    pub fn apply(path: impl Into<String>, body: Value) -> Self {
        let path = format!("{}{MANAGER_QUERY}", path.into());
        Self {
            method: "PATCH",
            path,
            body: Some(body),
            body_has: None,
            reply: Reply::Echo,
        }
    }
    /// A status apply, answered with `object` carrying the applied status.
    pub fn status<K: serde::Serialize>(path: impl Into<String>, body: Value, object: &K) -> Self {
        let path = format!("{}{MANAGER_QUERY}", path.into());
        let mut answer = serde_json::to_value(object).unwrap();
        answer["status"] = body["status"].clone();
        Self {
            method: "PATCH",
            path,
            body: Some(body),
            body_has: None,
            reply: Reply::Json(answer),
        }
    }
    /// A create (POST) with the operator's field manager, answered with the object.
    pub fn create(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: "POST",
            path: format!("{}?&fieldManager=llamafleet-operator", path.into()),
            body: Some(body),
            body_has: None,
            reply: Reply::Echo,
        }
    }
    /// A merge patch with the operator's field manager, answered with `reply`.
    pub fn merge_patch(path: impl Into<String>, body: Value, reply: Reply) -> Self {
        Self {
            method: "PATCH",
            path: format!("{}?&fieldManager=llamafleet-operator", path.into()),
            body: Some(body),
            body_has: None,
            reply,
        }
    }
    pub fn delete(path: impl Into<String>) -> Self {
        let body = json!({"propagationPolicy": "Background"});
        let reply = Reply::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
        Self {
            method: "DELETE",
            path: format!("{}?", path.into()),
            body: Some(body),
            body_has: None,
            reply,
        }
    }
    pub fn event(namespace: &str, body_has: Value) -> Self {
        let path = format!("/apis/events.k8s.io/v1/namespaces/{namespace}/events?");
        Self {
            method: "POST",
            path,
            body: None,
            body_has: Some(body_has),
            reply: Reply::Echo,
        }
    }
}

pub fn is_subset(want: &Value, have: &Value) -> bool {
    llamafleet_operator::deployment::apply::is_subset(want, have)
}

fn respond(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

/// Serves `calls` in order, then expects the client to go away without another request.
pub async fn serve(mut handle: Handle, calls: Vec<Call>) {
    for (i, call) in calls.into_iter().enumerate() {
        let next = tokio::time::timeout(CALL_TIMEOUT, handle.next_request()).await;
        let (req, send) = next
            .unwrap_or_else(|_| panic!("call {i} never made: {} {}", call.method, call.path))
            .expect("client gone before all calls were made");
        let method = req.method().to_string();
        let path = req.uri().to_string();
        assert_eq!(
            (method.as_str(), path.as_str()),
            (call.method, call.path.as_str()),
            "call {i}"
        );
        let content_type = req.headers().get(http::header::CONTENT_TYPE);
        rbac::assert_allowed(&method, &path, content_type.and_then(|c| c.to_str().ok()));
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        if let Some(want) = &call.body {
            assert_eq!(&body, want, "body of call {i}: {path}");
        }
        if let Some(want) = &call.body_has {
            assert!(
                is_subset(want, &body),
                "body of call {i} {path} lacks {want}: {body}"
            );
        }
        let response = match call.reply {
            Reply::Json(v) => respond(200, &v),
            Reply::Echo => respond(200, &with_server_fields(body)),
            Reply::Status(code) => respond(
                code,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": "scripted", "reason": if code == 404 { "NotFound" } else { "InternalError" },
                        "code": code}),
            ),
        };
        send.send_response(response);
    }
    let extra = tokio::time::timeout(CALL_TIMEOUT, handle.next_request()).await;
    if let Ok(Some((req, _))) = extra {
        panic!("unexpected call: {} {}", req.method(), req.uri());
    }
}

/// What an API server adds to an applied object.
pub fn with_server_fields(mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("x")
            .to_string();
        meta.entry("uid").or_insert(json!(format!("uid-{name}")));
        meta.entry("resourceVersion").or_insert(json!("1"));
    }
    v
}

pub fn clock() -> llamafleet_operator::context::Clock {
    Arc::new(|| Time(NOW.parse::<Timestamp>().unwrap()))
}

/// A context on a mock client reading `stores`, and the handle that plays the API server.
pub fn context_with(stores: Stores) -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Context::new(
        client,
        Some("op-0".into()),
        Arc::new(Metrics::new()),
        IMAGE.into(),
        Arc::new(NoAgentProbe),
        clock(),
    )
    .with_stores(stores);
    (Arc::new(ctx), handle)
}

/// A context on a mock client over an empty cluster, and the handle that plays the API server.
pub fn context() -> (Arc<Context>, Handle) {
    context_with(cluster(&[], &[]))
}

pub fn example(rel: &str) -> PathBuf {
    llamafleet_crds::testing::examples_dir().join(rel)
}

/// Models (made Ready, as the model controller leaves them) and the last deployment of a file,
/// with the metadata an API server gives them.
pub fn fixture(rel: &str) -> (Vec<LlmModel>, LlmDeployment) {
    let inputs = llamafleet_operator::render::read_inputs(&[example(rel)], "default").unwrap();
    let models = inputs
        .models
        .into_values()
        .map(|mut m| {
            let desired = llamafleet_operator::model::desired_status(&m, &clock()());
            let mut status: llamafleet_crds::LlmModelStatus =
                serde_json::from_value(serde_json::to_value(&desired).unwrap()).unwrap();
            status.observed_generation = Some(1);
            m.status = Some(status);
            m
        })
        .collect();
    let mut d = inputs.deployments.into_iter().last().unwrap();
    let name = d.metadata.name.clone().unwrap();
    d.metadata.uid = Some(format!("uid-{name}"));
    d.metadata.generation = Some(1);
    (models, d)
}

pub fn model_path(ns: &str, name: &str) -> String {
    format!("/apis/llamafleet.dev/v1alpha1/namespaces/{ns}/llmmodels/{name}")
}

pub fn status_path(ns: &str, name: &str) -> String {
    format!("/apis/llamafleet.dev/v1alpha1/namespaces/{ns}/llmdeployments/{name}/status")
}

/// `(collection path, List kind)` of the five child kinds, in the order they are listed.
pub const CHILD_KINDS: [(&str, &str); 5] = [
    ("/api/v1/namespaces/default/configmaps", "ConfigMapList"),
    (
        "/apis/apps/v1/namespaces/default/deployments",
        "DeploymentList",
    ),
    ("/api/v1/namespaces/default/services", "ServiceList"),
    (
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        "PodDisruptionBudgetList",
    ),
    (
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
        "HorizontalPodAutoscalerList",
    ),
];

/// The objects of `kind` among `live`.
fn of_kind<K: serde::de::DeserializeOwned>(live: &[Value], kind: &str) -> Vec<K> {
    live.iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| serde_json::from_value(o.clone()).unwrap())
        .collect()
}

/// Watch caches holding `models` and the live children `live` (JSON as the API server shows
/// them): what a reconcile reads, without a request.
pub fn cluster(models: &[LlmModel], live: &[Value]) -> Stores {
    let children = LiveChildren {
        config_maps: of_kind(live, "ConfigMap"),
        deployments: of_kind(live, "Deployment"),
        services: of_kind(live, "Service"),
        pdbs: of_kind(live, "PodDisruptionBudget"),
        hpas: of_kind(live, "HorizontalPodAutoscaler"),
        service_accounts: of_kind(live, "ServiceAccount"),
        roles: of_kind(live, "Role"),
        role_bindings: of_kind(live, "RoleBinding"),
    };
    Stores::holding(models.to_vec(), children)
}

/// The field set (`fieldsV1`) the API server records for a manager that applied `body`: every
/// field it set, lists owned whole (enough for the fingerprint, which projects the live object
/// on this set; the API server's own sets name keyed list elements, `k:{..}`, which
/// `owned`'s unit tests cover). The name and namespace identify the object, they are no field.
pub fn applied_fields(body: &Value) -> Value {
    fn set(v: &Value, top: bool) -> Value {
        let Some(fields) = v.as_object() else {
            return json!({});
        };
        let mut out = serde_json::Map::new();
        for (key, value) in fields {
            if top && matches!(key.as_str(), "apiVersion" | "kind" | "status") {
                continue;
            }
            out.insert(format!("f:{key}"), set(value, false));
        }
        Value::Object(out)
    }
    let mut fields = set(body, true);
    if let Some(meta) = fields.get_mut("f:metadata").and_then(Value::as_object_mut) {
        meta.remove("f:name");
        meta.remove("f:namespace");
    }
    fields
}

/// `live` as the API server shows it after the operator applied it: its `managedFields` name
/// the fields of the operator's apply (`owned`, from [`applied_fields`]).
pub fn with_managed_fields(mut live: Value, owned: Value) -> Value {
    live["metadata"]["managedFields"] = json!([{
        "manager": llamafleet_operator::names::FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": live["apiVersion"],
        "fieldsType": "FieldsV1",
        "fieldsV1": owned,
    }]);
    live
}

/// The objects of `kind` among `live`, as the watch caches keep them (`stores::keep_owned`).
fn slim_of_kind<K>(live: &[Value], kind: &str) -> Vec<K>
where
    K: serde::de::DeserializeOwned
        + kube::ResourceExt
        + serde::Serialize
        + llamafleet_operator::stores::Slim,
{
    let mut objects: Vec<K> = of_kind(live, kind);
    objects
        .iter_mut()
        .for_each(llamafleet_operator::stores::keep_owned);
    objects
}

/// Watch caches as the running operator fills them: each child slimmed to its identity and the
/// fingerprint of the fields its `managedFields` say the operator owns.
pub fn slim_cluster(models: &[LlmModel], live: &[Value]) -> Stores {
    let children = LiveChildren {
        config_maps: slim_of_kind(live, "ConfigMap"),
        deployments: slim_of_kind(live, "Deployment"),
        services: slim_of_kind(live, "Service"),
        pdbs: slim_of_kind(live, "PodDisruptionBudget"),
        hpas: slim_of_kind(live, "HorizontalPodAutoscaler"),
        service_accounts: slim_of_kind(live, "ServiceAccount"),
        roles: slim_of_kind(live, "Role"),
        role_bindings: slim_of_kind(live, "RoleBinding"),
    };
    Stores::holding(models.to_vec(), children)
}

/// Path of the node cache's claim in `ns`.
pub fn node_cache_claim_path(ns: &str) -> String {
    format!(
        "/api/v1/namespaces/{ns}/persistentvolumeclaims/{}",
        llamafleet_operator::names::NODE_CACHE_CLAIM
    )
}

/// Path of the node cache's volume of `ns`.
pub fn node_cache_volume_path(ns: &str) -> String {
    format!(
        "/api/v1/persistentvolumes/{}",
        llamafleet_operator::names::node_cache_volume(ns)
    )
}

/// The node cache's claim of `ns` as the API server shows it, in `phase`.
pub fn node_cache_claim(ns: &str, phase: &str) -> Value {
    let mut claim = with_server_fields(serde_json::to_value(build::node_cache::claim(ns)).unwrap());
    claim["status"] = json!({"phase": phase});
    claim
}

/// The read a reconcile makes before it writes serving pods of a deployment on the node cache,
/// answered with a bound claim (the namespace has its node cache already).
pub fn node_cache_bound(ns: &str) -> Call {
    Call::get(
        node_cache_claim_path(ns),
        Reply::Json(node_cache_claim(ns, "Bound")),
    )
}

/// The children the operator should build for `llmd`, as JSON, with its owner reference.
pub fn built_children(llmd: &LlmDeployment, models: &[LlmModel]) -> Vec<(String, Value)> {
    let ns = llmd.metadata.namespace.clone().unwrap();
    let name = llmd.metadata.name.clone().unwrap();
    let resolved = models
        .iter()
        .map(|m| {
            (
                m.metadata.name.clone().unwrap(),
                ResolvedModel::from_ready(m),
            )
        })
        .collect();
    let plan = plan::make(&name, &ns, &llmd.spec, &resolved).unwrap();
    let owner = llmd.controller_owner_ref(&()).unwrap();
    let opts = BuildOptions {
        images: AgentImages::derived(IMAGE).unwrap(),
        owner: Some(owner),
        cache_path: CACHE_DIR.into(),
    };
    build::build(&plan, &opts)
        .into_ordered()
        .into_iter()
        .map(|c| {
            (
                object_path(&ns, c.kind(), c.name()),
                serde_json::to_value(&c).unwrap(),
            )
        })
        .collect()
}

/// REST path of a child object.
pub fn object_path(ns: &str, kind: &str, name: &str) -> String {
    let collection = match kind {
        "ConfigMap" => CHILD_KINDS[0].0,
        "Deployment" => CHILD_KINDS[1].0,
        "Service" => CHILD_KINDS[2].0,
        "PodDisruptionBudget" => CHILD_KINDS[3].0,
        "ServiceAccount" => "/api/v1/namespaces/default/serviceaccounts",
        "Role" => "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        "RoleBinding" => "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        _ => CHILD_KINDS[4].0,
    };
    format!(
        "{}/{name}",
        collection.replace("/default/", &format!("/{ns}/"))
    )
}

/// A router stand-in on loopback serving `stats` at `/router/stats`; its base URL.
pub async fn router_serving(stats: &llamafleet_crds::routing::RouterStats) -> String {
    let body = serde_json::to_string(stats).unwrap();
    let app = axum::Router::new().route(
        llamafleet_crds::routing::STATS_PATH,
        axum::routing::get(move || async move { body }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}
