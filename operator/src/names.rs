//! Names, labels and fixed values shared by every object the operator writes.

use std::collections::BTreeMap;

/// The one field manager of every server-side apply the operator makes (children and status).
pub const FIELD_MANAGER: &str = "llamafleet-operator";
/// Image of the agent when neither `--agent-image` nor `LLAMAFLEET_AGENT_IMAGE` says otherwise;
/// pinned to the operator's own version so the two are released together.
pub const DEFAULT_AGENT_IMAGE: &str =
    concat!("ghcr.io/llamafleet/agent:", env!("CARGO_PKG_VERSION"));
/// Port every agent listens on (serve and route).
pub const AGENT_PORT: i32 = 8080;
/// Name of that port everywhere (containers, Services, probes).
pub const PORT_NAME: &str = "http";
/// Port of the stable Service clients call.
pub const STABLE_SERVICE_PORT: i32 = 80;
/// Where the model cache sits in the serving container (and on the node by default).
pub const CACHE_DIR: &str = "/var/lib/llamafleet/models";
/// Directory of the routing ConfigMap in router pods.
pub const ROUTING_DIR: &str = "/etc/llamafleet/routing";
/// Where variant pods mount the deployment's presets.
pub const PRESETS_DIR: &str = "/etc/llamafleet/presets";
/// Key of the presets list in the routing ConfigMap (and file name in `PRESETS_DIR`).
pub const PRESETS_KEY: &str = "presets.yaml";
/// Where variant pods mount the list of cached models to keep (from the routing ConfigMap).
pub const KEEP_DIR: &str = "/etc/llamafleet/keep";
/// Key of that list in the routing ConfigMap (and file name in `KEEP_DIR`).
pub const KEEP_KEY: &str = "keep.yaml";
/// Key of the routing table in the ConfigMap (and file name in `ROUTING_DIR`).
pub const ROUTING_KEY: &str = "routing.yaml";
/// Directory of the API-key Secret in router pods.
pub const KEYS_DIR: &str = "/etc/llamafleet/keys";

/// The PersistentVolumeClaim of the node cache in each namespace that uses it.
pub const NODE_CACHE_CLAIM: &str = "llamafleet-model-cache";
/// `llamafleet.dev/cache`: on the node cache's PersistentVolumes and claims.
pub const LABEL_CACHE: &str = "llamafleet.dev/cache";
/// Value of `llamafleet.dev/cache` for the node cache.
pub const CACHE_NODE: &str = "node";

/// `app.kubernetes.io/name`: the product.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: the LlmDeployment.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: `variant` or `router`.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: the operator.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// `llamafleet.dev/variant`: the variant name, on variant objects only.
pub const LABEL_VARIANT: &str = "llamafleet.dev/variant";
/// Value of `app.kubernetes.io/name`.
pub const PRODUCT: &str = "llamafleet";
/// Component value of variant objects.
pub const COMPONENT_VARIANT: &str = "variant";
/// Component value of router objects.
pub const COMPONENT_ROUTER: &str = "router";

/// Longest name of a Service (a DNS-1123 label).
pub const SERVICE_NAME_MAX: usize = 63;

/// `<llmd>-<variant>`: Deployment, Service, PDB and HPA of a variant.
pub fn variant_object(llmd: &str, variant: &str) -> String {
    format!("{llmd}-{variant}")
}

/// `<llmd>-router`: the router Deployment.
pub fn router_deployment(llmd: &str) -> String {
    format!("{llmd}-router")
}

/// `<llmd>-router`: the router pods' ServiceAccount.
pub fn router_account(llmd: &str) -> String {
    format!("{llmd}-router")
}

/// `<llmd>-router`: the Role (and RoleBinding) of the routers (`build/router_access.rs`).
pub fn router_role(llmd: &str) -> String {
    format!("{llmd}-router")
}

/// `<llmd>-routing`: the routing ConfigMap.
pub fn routing_config(llmd: &str) -> String {
    format!("{llmd}-routing")
}

/// `llamafleet-cache-<namespace>`: the PersistentVolume (cluster-scoped, so named after the
/// one namespace whose claim it is reserved for) of the node cache.
pub fn node_cache_volume(namespace: &str) -> String {
    format!("llamafleet-cache-{namespace}")
}

/// In-cluster URL of a variant's Service.
pub fn variant_url(llmd: &str, variant: &str, namespace: &str) -> String {
    let svc = variant_object(llmd, variant);
    format!("http://{svc}.{namespace}.svc:{AGENT_PORT}")
}

/// In-cluster URL clients call (the stable Service, port 80).
pub fn endpoint(llmd: &str, namespace: &str) -> String {
    format!("http://{llmd}.{namespace}.svc")
}

/// Labels that select one variant's pods (also the Deployment selector, so never changed).
pub fn variant_selector(llmd: &str, variant: &str) -> BTreeMap<String, String> {
    let mut labels = component_selector(llmd, COMPONENT_VARIANT);
    labels.insert(LABEL_VARIANT.into(), variant.into());
    labels
}

/// Labels that select the router pods.
pub fn router_selector(llmd: &str) -> BTreeMap<String, String> {
    component_selector(llmd, COMPONENT_ROUTER)
}

fn component_selector(llmd: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.into(), PRODUCT.into()),
        (LABEL_INSTANCE.into(), llmd.into()),
        (LABEL_COMPONENT.into(), component.into()),
    ])
}

/// Selector labels plus `managed-by`: the labels on objects and pods.
pub fn object_labels(selector: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = selector.clone();
    labels.insert(LABEL_MANAGED_BY.into(), FIELD_MANAGER.into());
    labels
}
