//! The operator's Kubernetes client: the in-cluster or kubeconfig client, with each request
//! counted by verb (`llamafleet_operator_api_requests_total`), so that an operator which should
//! be quiet at rest can be seen to be.

use http::Request;
use kube::client::{Body, ClientBuilder};
use kube::{Client, Config};
use prometheus::IntCounterVec;
use tower::util::MapRequestLayer;

/// A client from the environment (in-cluster, else the kubeconfig) that counts its requests in
/// `requests`.
pub async fn connect(requests: IntCounterVec) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    let count = MapRequestLayer::new(move |req: Request<Body>| {
        requests.with_label_values(&[verb(&req)]).inc();
        req
    });
    Ok(ClientBuilder::try_from(config)?.with_layer(&count).build())
}

/// The Kubernetes verb of a request: `watch` and `list` are GETs with and without `watch=true`
/// on a collection, `apply` a PATCH of server-side-apply YAML/JSON.
pub fn verb<B>(req: &Request<B>) -> &'static str {
    let query = req.uri().query().unwrap_or_default();
    let watching = query.split('&').any(|p| p == "watch=true");
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match req.method().as_str() {
        "GET" if watching => "watch",
        "GET" if is_collection(req.uri().path()) => "list",
        "GET" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" if content_type.starts_with("application/apply-patch") => "apply",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "other",
    }
}

/// Whether a path names a collection (`…/namespaces/ns/pods`, `/api/v1/nodes`) rather than one
/// object (`…/pods/name`, `…/pods/name/status`): counted from the group/version prefix.
fn is_collection(path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/group/version/...
    let rest = match parts.first() {
        Some(&"api") => parts.get(2..),
        Some(&"apis") => parts.get(3..),
        _ => None,
    };
    let Some(rest) = rest else { return false };
    // namespaces/<ns>/<resource>[/<name>[/<sub>]] or <resource>[/<name>[/<sub>]]
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    rest.len() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, content_type: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap_or_default()
    }

    #[test]
    fn verbs_of_the_requests_the_operator_makes() {
        let cases = [
            (
                "GET",
                "/apis/apps/v1/deployments?&watch=true&labelSelector=x",
                "",
                "watch",
            ),
            (
                "GET",
                "/apis/apps/v1/deployments?&labelSelector=x",
                "",
                "list",
            ),
            (
                "GET",
                "/apis/llamafleet.dev/v1alpha1/namespaces/d/llmmodels",
                "",
                "list",
            ),
            (
                "GET",
                "/api/v1/namespaces/d/persistentvolumeclaims/c",
                "",
                "get",
            ),
            ("GET", "/api/v1/namespaces", "", "list"),
            ("GET", "/api/v1/namespaces/d", "", "get"),
            ("GET", "/api/v1/persistentvolumes/v", "", "get"),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/d/deployments/x?&force=true",
                "application/apply-patch+yaml",
                "apply",
            ),
            (
                "PATCH",
                "/apis/llamafleet.dev/v1alpha1/namespaces/d/llmdeployments/x/status",
                "application/merge-patch+json",
                "patch",
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/d/events",
                "application/json",
                "create",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/d/services/x",
                "application/json",
                "delete",
            ),
        ];
        for (method, uri, content_type, want) in cases {
            assert_eq!(
                verb(&req(method, uri, content_type)),
                want,
                "{method} {uri}"
            );
        }
    }
}
