//! Dereference step: what the reconcile needs from the cluster (the models a deployment names
//! and the children it already has), read from the controller's watch caches
//! ([`crate::stores`]). A missing model is data, not an error.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use llamafleet_crds::{LlmDeployment, LlmModel};

use crate::stores::Stores;

/// Children found in the cluster, by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveChildren {
    /// Routing ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// Variant and router Deployments.
    pub deployments: Vec<Deployment>,
    /// Variant and stable Services.
    pub services: Vec<Service>,
    /// Variant PDBs.
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Variant HPAs.
    pub hpas: Vec<HorizontalPodAutoscaler>,
    /// The router's ServiceAccount (while variants may sleep).
    pub service_accounts: Vec<ServiceAccount>,
    /// The router's wake Role.
    pub roles: Vec<Role>,
    /// Its binding.
    pub role_bindings: Vec<RoleBinding>,
}

impl LiveChildren {
    /// The live Deployment of that name.
    pub fn deployment(&self, name: &str) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
    }
}

/// What one reconcile of an LlmDeployment sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Each model the variants name; `None` where it does not exist.
    pub models: BTreeMap<String, Option<LlmModel>>,
    /// Existing children (selected by the instance and managed-by labels).
    pub children: LiveChildren,
}

/// The models a deployment's variants name and the children it has, from the watch caches:
/// no API request.
pub fn observe(stores: &Stores, namespace: &str, llmd: &LlmDeployment, name: &str) -> Observed {
    let models = llmd
        .spec
        .variants
        .iter()
        .map(|v| (v.model.clone(), stores.model(namespace, &v.model)))
        .collect();
    Observed {
        models,
        children: stores.children(namespace, name),
    }
}
