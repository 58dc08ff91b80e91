//! The operator's RBAC as the chart renders it (`manifests/install.yaml`, drift-tested against
//! `charts/llamafleet` by tests/e2e/chart.rs), and the API server's authorization of one REST
//! request against it. `serve` checks every request of every mock-API scenario here, so a new
//! API call in the operator fails its own scenario until the ClusterRole allows it.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize;

/// Namespace of the rendered release (the leader-election Role lives there).
pub const RELEASE_NAMESPACE: &str = "llamafleet-system";

/// One rule of a ClusterRole (any namespace) or Role (its namespace only).
#[derive(Debug, Clone)]
pub struct Rule {
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub resource_names: Vec<String>,
    /// `None` for ClusterRole rules.
    pub namespace: Option<String>,
}

/// What the authorizer sees of a request (as in a SubjectAccessReview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    /// `resource` or `resource/subresource`.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    metadata: Option<Meta>,
    rules: Option<Vec<RawRule>>,
}

#[derive(Deserialize)]
struct Meta {
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

/// Path of the rendered chart.
pub fn install_yaml() -> PathBuf {
    llamafleet_crds::testing::repo_root().join("manifests/install.yaml")
}

/// The ClusterRole and Role rules of `manifests/install.yaml` (read once).
pub fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = std::fs::read_to_string(install_yaml()).expect("manifests/install.yaml");
        parse_rules(&text)
    })
}

/// Rules of every ClusterRole and Role in a multi-document YAML.
pub fn parse_rules(yaml: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    for doc in serde_norway::Deserializer::from_str(yaml) {
        let Ok(doc) = Doc::deserialize(doc) else {
            continue;
        };
        let namespace = match doc.kind.as_deref() {
            Some("ClusterRole") => None,
            Some("Role") => Some(
                doc.metadata
                    .and_then(|m| m.namespace)
                    .expect("a Role names its namespace"),
            ),
            _ => continue,
        };
        for r in doc.rules.unwrap_or_default() {
            rules.push(Rule {
                api_groups: r.api_groups,
                resources: r.resources,
                verbs: r.verbs,
                resource_names: r.resource_names,
                namespace: namespace.clone(),
            });
        }
    }
    rules
}

/// The authorization checks a request needs: one, plus `create` for a server-side apply of
/// an object (the API server authorizes the create when the PATCH creates it).
pub fn attributes(method: &str, uri: &str, content_type: Option<&str>) -> Vec<Attributes> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => panic!("not a Kubernetes API path: {uri}"),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    let (resource, name) = match rest {
        [resource] => (resource.to_string(), None),
        [resource, name] => (resource.to_string(), Some(name.to_string())),
        [resource, name, sub] => (format!("{resource}/{sub}"), Some(name.to_string())),
        _ => panic!("unexpected API path: {uri}"),
    };
    let watch = query.split('&').any(|p| p == "watch=true");
    let verb = match (method, name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => panic!("unexpected method {method} {uri}"),
    };
    let one = |verb: &str| Attributes {
        verb: verb.into(),
        group: group.into(),
        resource: resource.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
    };
    let mut checks = vec![one(verb)];
    let is_apply = content_type.is_some_and(|c| c.starts_with("application/apply-patch"));
    if verb == "patch" && is_apply && !resource.contains('/') {
        checks.push(one("create"));
    }
    checks
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// True when some rule allows `a`.
pub fn allowed(rules: &[Rule], a: &Attributes) -> bool {
    rules.iter().any(|r| {
        let in_scope = match &r.namespace {
            None => true,
            Some(ns) => a.namespace.as_deref() == Some(ns.as_str()),
        };
        // resourceNames never match a request without a name (list, watch, create).
        let named = r.resource_names.is_empty()
            || a.name
                .as_deref()
                .is_some_and(|n| matches(&r.resource_names, n));
        in_scope
            && named
            && matches(&r.api_groups, &a.group)
            && matches(&r.resources, &a.resource)
            && matches(&r.verbs, &a.verb)
    })
}

/// Panics, naming the missing permission, unless the rendered chart allows the request.
pub fn assert_allowed(method: &str, uri: &str, content_type: Option<&str>) {
    for a in attributes(method, uri, content_type) {
        assert!(
            allowed(rules(), &a),
            "{method} {uri} needs RBAC the chart does not grant: {a:?}; add it to \
             charts/llamafleet/templates/clusterrole.yaml and regenerate manifests/install.yaml \
             (bash charts/render-install.sh > manifests/install.yaml)"
        );
    }
}
