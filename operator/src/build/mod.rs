//! Build step (pure, cannot fail): the Kubernetes objects a [`Plan`] asks for.
//!
//! Builders take a checked plan and return plain `k8s-openapi` values; no client is involved,
//! so the tests assert them field by field.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use crate::deployment::plan::Plan;

pub mod gpu;
pub mod keep;
pub mod node_cache;
mod pod;
pub mod presets;
pub mod router;
pub mod router_access;
pub mod routing;
pub mod source_token;
pub mod variant;

/// Options of the build that come from the operator, not the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    /// Agent images: the CPU build for routers and CPU variants, a GPU build per backend.
    pub images: gpu::AgentImages,
    /// Controller owner reference to the LlmDeployment; `None` in `render` (no uid offline).
    pub owner: Option<OwnerReference>,
    /// Node directory of the node cache ([`node_cache`]), the model cache of deployments whose
    /// `spec.cache` names none: the path of its PersistentVolumes.
    pub cache_path: String,
}

/// The objects of one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantObjects {
    /// Variant name.
    pub name: String,
    /// Pods running `llamafleet-agent serve`.
    pub deployment: Deployment,
    /// ClusterIP Service of those pods.
    pub service: Service,
    /// Disruption budget of those pods.
    pub pdb: PodDisruptionBudget,
    /// Autoscaler, when `spec.autoscaling` is set.
    pub hpa: Option<HorizontalPodAutoscaler>,
}

/// Everything one LlmDeployment owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// Routing table of the router.
    pub routing: ConfigMap,
    /// Per-variant objects, in spec order.
    pub variants: Vec<VariantObjects>,
    /// Router pods.
    pub router: Deployment,
    /// The stable Service clients call.
    pub service: Service,
    /// The routers' identity: watch EndpointSlices, wake sleeping variants.
    pub router_access: router_access::RouterAccess,
}

/// One object to apply, of any kind the operator writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Child {
    /// A routing table.
    ConfigMap(ConfigMap),
    /// Variant or router pods (boxed: a Deployment is ten times the size of the others).
    Deployment(Box<Deployment>),
    /// Variant or stable Service.
    Service(Service),
    /// Variant disruption budget.
    Pdb(PodDisruptionBudget),
    /// Variant autoscaler.
    Hpa(HorizontalPodAutoscaler),
    /// The router pods' identity.
    ServiceAccount(ServiceAccount),
    /// The routers' permission to wake variants.
    Role(Role),
    /// Binds that permission to the routers.
    RoleBinding(RoleBinding),
}

impl Child {
    /// Kind, as in `kind:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConfigMap(_) => "ConfigMap",
            Self::Deployment(_) => "Deployment",
            Self::Service(_) => "Service",
            Self::Pdb(_) => "PodDisruptionBudget",
            Self::Hpa(_) => "HorizontalPodAutoscaler",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::Role(_) => "Role",
            Self::RoleBinding(_) => "RoleBinding",
        }
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        let meta = match self {
            Self::ConfigMap(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Pdb(o) => &o.metadata,
            Self::Hpa(o) => &o.metadata,
            Self::ServiceAccount(o) => &o.metadata,
            Self::Role(o) => &o.metadata,
            Self::RoleBinding(o) => &o.metadata,
        };
        meta.name.as_deref().unwrap_or_default()
    }
}

impl Children {
    /// All objects in apply order: the routing table before the router reads it, variants
    /// before the router sends them traffic, the stable Service last.
    pub fn into_ordered(self) -> Vec<Child> {
        let mut out = vec![Child::ConfigMap(self.routing)];
        for v in self.variants {
            out.push(Child::Deployment(Box::new(v.deployment)));
            out.push(Child::Service(v.service));
            out.push(Child::Pdb(v.pdb));
            out.extend(v.hpa.map(Child::Hpa));
        }
        let access = self.router_access;
        out.push(Child::ServiceAccount(access.service_account));
        out.push(Child::Role(access.role));
        out.push(Child::RoleBinding(access.binding));
        out.push(Child::Deployment(Box::new(self.router)));
        out.push(Child::Service(self.service));
        out
    }
}

/// Builds every child of the plan.
pub fn build(plan: &Plan, opts: &BuildOptions) -> Children {
    Children {
        routing: routing::config_map(plan, opts),
        variants: plan
            .variants
            .iter()
            .map(|v| variant::objects(plan, v, opts))
            .collect(),
        router: router::deployment(plan, opts),
        service: router::stable_service(plan, opts),
        router_access: router_access::access(plan, opts),
    }
}

/// Metadata of a child: name, namespace, labels, owner.
pub(crate) fn meta(
    plan: &Plan,
    name: String,
    labels: BTreeMap<String, String>,
    opts: &BuildOptions,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace.clone()),
        labels: Some(labels),
        owner_references: opts.owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}
