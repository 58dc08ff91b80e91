//! Least privilege: the chart's ClusterRole and leader-election Role (as rendered in
//! `manifests/install.yaml`) allow every request the operator makes and nothing it does not
//! need. The reconcile scenarios are checked request by request in `support::serve`; here the
//! requests no scenario covers (the CRD check at start, the controllers' list+watch of every
//! kind, leader election) are recorded from the real library calls on a mock API, and what the
//! operator must never be able to do is asserted denied.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Request, Response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::client::Body;
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use llamafleet_crds::{LlmDeployment, LlmModel};
use llamafleet_operator::names;
use llamafleet_operator::run::{self, LEASE_NAME};
use serde_json::{Value, json};
use support::rbac::{self, Attributes, RELEASE_NAMESPACE};

/// How long the library under test may take to make its next request.
const NEXT_REQUEST: Duration = Duration::from_secs(3);

/// One request as the API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    content_type: Option<String>,
    body: Value,
}

/// Runs `work` on a mock client and records up to `count` requests, answering each with
/// `answer`; `work` is dropped afterwards (watch loops never end on their own).
async fn record<F, Fut>(
    count: usize,
    work: F,
    mut answer: impl FnMut(&Seen) -> (u16, Value),
) -> Vec<Seen>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(work(Client::new(service, "default")));
    let mut seen = Vec::new();
    while seen.len() < count {
        let Ok(Some((req, send))) = tokio::time::timeout(NEXT_REQUEST, handle.next_request()).await
        else {
            break;
        };
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .map(str::to_string);
        let (method, uri) = (req.method().to_string(), req.uri().to_string());
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let s = Seen {
            method,
            uri,
            content_type,
            body,
        };
        let (status, reply) = answer(&s);
        let response = Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap();
        send.send_response(response);
        seen.push(s);
    }
    task.abort();
    seen
}

fn assert_all_allowed(seen: &[Seen]) {
    assert!(!seen.is_empty(), "nothing was recorded");
    for s in seen {
        rbac::assert_allowed(&s.method, &s.uri, s.content_type.as_deref());
    }
}

fn empty_list() -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []})
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
           "message": "not found", "code": 404})
}

#[tokio::test]
async fn the_crd_check_at_start_is_allowed() {
    let seen = record(
        2,
        |client| async move {
            let _ = run::check_crds(&client).await;
        },
        |_| (200, empty_list()),
    )
    .await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_all_allowed(&seen);
}

/// List then watch of one kind, the way the controllers' watchers ask (run.rs).
async fn list_and_watch<K>(config: watcher::Config) -> Vec<Seen>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + 'static,
{
    record(
        2,
        |client| async move {
            let stream = watcher(Api::<K>::all(client), config);
            futures_util::pin_mut!(stream);
            while stream.next().await.is_some() {}
        },
        |s| {
            if s.uri.contains("watch=true") {
                (200, Value::Null)
            } else {
                (200, empty_list())
            }
        },
    )
    .await
}

#[tokio::test]
async fn every_watch_of_the_controllers_is_allowed() {
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::FIELD_MANAGER
    ));
    let trigger = watcher::Config::default().any_semantic();
    let mut seen = Vec::new();
    seen.extend(list_and_watch::<LlmDeployment>(trigger.clone()).await);
    seen.extend(list_and_watch::<LlmModel>(trigger).await);
    seen.extend(list_and_watch::<Deployment>(owned.clone()).await);
    seen.extend(list_and_watch::<Service>(owned.clone()).await);
    seen.extend(list_and_watch::<ConfigMap>(owned.clone()).await);
    seen.extend(list_and_watch::<PodDisruptionBudget>(owned.clone()).await);
    seen.extend(list_and_watch::<HorizontalPodAutoscaler>(owned.clone()).await);
    seen.extend(list_and_watch::<ServiceAccount>(owned.clone()).await);
    seen.extend(list_and_watch::<Role>(owned.clone()).await);
    seen.extend(list_and_watch::<RoleBinding>(owned).await);
    assert_eq!(seen.len(), 20, "a list and a watch per kind: {seen:?}");
    assert!(seen.iter().any(|s| s.uri.contains("watch=true")));
    assert_all_allowed(&seen);
}

#[tokio::test]
async fn leader_election_is_allowed_in_the_release_namespace_only() {
    let mut lease: Option<Value> = None;
    let seen = record(
        6,
        |client| async move {
            let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
                .with_namespace(RELEASE_NAMESPACE)
                .with_identity("op-0")
                .with_duration(15)
                .with_grace(5)
                .build()
                .await
                .expect("lease manager");
            let (mut rx, _task) = manager.watch().await;
            let _ = rx.wait_for(|leading| *leading).await;
            std::future::pending::<()>().await;
        },
        move |s| match (s.method.as_str(), &lease) {
            ("GET", None) => (404, not_found()),
            ("POST", _) => {
                let mut created = s.body.clone();
                created["metadata"]["resourceVersion"] = json!("1");
                created["metadata"]["uid"] = json!("uid-lease");
                lease = Some(created.clone());
                (201, created)
            }
            (_, Some(l)) => {
                let mut l = l.clone();
                if let Some(spec) = s.body.get("spec") {
                    for (k, v) in spec.as_object().into_iter().flatten() {
                        l["spec"][k] = v.clone();
                    }
                }
                (200, l)
            }
            (_, None) => (404, not_found()),
        },
    )
    .await;
    assert!(
        seen.iter().any(|s| s.method == "POST") && seen.iter().any(|s| s.method == "PATCH"),
        "the manager creates the Lease and patches it to lead: {seen:?}"
    );
    assert_all_allowed(&seen);
    // The same calls in any other namespace are denied: the Role is not a ClusterRole.
    for s in &seen {
        let elsewhere = s.uri.replace(RELEASE_NAMESPACE, "default");
        for a in rbac::attributes(&s.method, &elsewhere, s.content_type.as_deref()) {
            assert!(!rbac::allowed(rbac::rules(), &a), "{a:?} must be denied");
        }
    }
}

fn request(
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
    name: Option<&str>,
) -> Attributes {
    Attributes {
        verb: verb.into(),
        group: group.into(),
        resource: resource.into(),
        namespace: ns.map(str::to_string),
        name: name.map(str::to_string),
    }
}

#[test]
fn nothing_beyond_what_the_operator_needs_is_granted() {
    let denied = [
        // Secrets are read one by one (an LlmModel's authSecretRef), never listed or watched;
        // pods are only listed (router replicas for rollout stats), never watched, written,
        // exec'd into or read from; nodes not at all.
        request("list", "", "secrets", None, None),
        request("watch", "", "secrets", None, None),
        request("update", "", "secrets", Some("default"), Some("keys")),
        request("watch", "", "pods", None, None),
        request("get", "", "pods", Some("default"), Some("p")),
        request("delete", "", "pods", Some("default"), Some("p")),
        request("create", "", "pods/exec", Some("default"), Some("p")),
        request("get", "", "pods/log", Some("default"), Some("p")),
        request("get", "", "nodes", None, Some("n1")),
        // The node cache: volumes and claims are read by name and created; volumes are patched
        // (a Released one freed). Never listed, watched, replaced or deleted: the operator
        // cannot enumerate or remove anyone's storage.
        request("list", "", "persistentvolumes", None, None),
        request("watch", "", "persistentvolumes", None, None),
        request("update", "", "persistentvolumes", None, Some("pv")),
        request("delete", "", "persistentvolumes", None, Some("pv")),
        request("list", "", "persistentvolumeclaims", None, None),
        request(
            "patch",
            "",
            "persistentvolumeclaims",
            Some("default"),
            Some("data"),
        ),
        request(
            "delete",
            "",
            "persistentvolumeclaims",
            Some("default"),
            Some("data"),
        ),
        // Its own resources: spec is the user's; it writes status only.
        request(
            "update",
            "llamafleet.dev",
            "llmdeployments",
            Some("default"),
            Some("chat"),
        ),
        request(
            "patch",
            "llamafleet.dev",
            "llmmodels",
            Some("default"),
            Some("m"),
        ),
        request(
            "delete",
            "llamafleet.dev",
            "llmdeployments",
            Some("default"),
            Some("chat"),
        ),
        // Children are applied and pruned one by one, never replaced or bulk-deleted.
        request(
            "update",
            "apps",
            "deployments",
            Some("default"),
            Some("chat-main"),
        ),
        request(
            "deletecollection",
            "apps",
            "deployments",
            Some("default"),
            None,
        ),
        // The scale subresource is held only to grant it to the routers (build/router_access.rs).
        request(
            "update",
            "apps",
            "deployments/scale",
            Some("default"),
            Some("chat-main"),
        ),
        // Roles, but not cluster roles; no escalation or binding of roles it does not hold.
        request(
            "create",
            "rbac.authorization.k8s.io",
            "clusterroles",
            None,
            None,
        ),
        request(
            "escalate",
            "rbac.authorization.k8s.io",
            "roles",
            Some("default"),
            Some("chat-router"),
        ),
        request(
            "bind",
            "rbac.authorization.k8s.io",
            "roles",
            Some("default"),
            Some("chat-router"),
        ),
        // No cluster administration: CRDs, RBAC, namespaces, webhooks.
        request(
            "create",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            None,
        ),
        request(
            "create",
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            None,
            None,
        ),
        request("create", "", "namespaces", None, None),
        // Another controller's Lease, even in the release namespace.
        request(
            "patch",
            "coordination.k8s.io",
            "leases",
            Some(RELEASE_NAMESPACE),
            Some("other"),
        ),
        // Core Events (the operator writes events.k8s.io ones).
        request("create", "", "events", Some("default"), None),
    ];
    for a in denied {
        assert!(!rbac::allowed(rbac::rules(), &a), "{a:?} must be denied");
    }
}

#[test]
fn request_paths_map_to_what_the_authorizer_checks() {
    let apply = Some("application/apply-patch+yaml");
    assert_eq!(
        rbac::attributes(
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/chat-main?&force=true&fieldManager=x",
            apply
        )
        .iter()
        .map(|a| a.verb.as_str())
        .collect::<Vec<_>>(),
        ["patch", "create"],
        "an apply may create the object"
    );
    let status = rbac::attributes(
        "PATCH",
        "/apis/llamafleet.dev/v1alpha1/namespaces/ns/llmdeployments/chat/status?&force=true",
        apply,
    );
    assert_eq!(
        status,
        [request(
            "patch",
            "llamafleet.dev",
            "llmdeployments/status",
            Some("ns"),
            Some("chat")
        )]
    );
    assert_eq!(
        rbac::attributes(
            "GET",
            "/api/v1/configmaps?&watch=true&resourceVersion=1",
            None
        ),
        [request("watch", "", "configmaps", None, None)]
    );
    assert_eq!(
        rbac::attributes("DELETE", "/api/v1/namespaces/ns/services/chat-b?", None),
        [request(
            "delete",
            "",
            "services",
            Some("ns"),
            Some("chat-b")
        )]
    );
}
