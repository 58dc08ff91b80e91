//! Dereference step: reads what the reconcile needs from the cluster (the models a deployment
//! names and the children it already has). Reads only; a missing model is data, not an error.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use llamafleet_crds::{LlmDeployment, LlmModel};
use serde::de::DeserializeOwned;

use crate::error::DereferenceError;
use crate::names;

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

/// Reads the models (one GET each, sorted by name) and lists the children (one LIST per kind).
pub async fn observe(
    client: &Client,
    namespace: &str,
    llmd: &LlmDeployment,
    name: &str,
) -> Result<Observed, DereferenceError> {
    let models_api: Api<LlmModel> = Api::namespaced(client.clone(), namespace);
    let mut models = BTreeMap::new();
    for v in &llmd.spec.variants {
        models.insert(v.model.clone(), None);
    }
    for (model, slot) in &mut models {
        *slot = models_api
            .get_opt(model)
            .await
            .map_err(|source| DereferenceError::Model {
                name: model.clone(),
                source,
            })?;
    }
    let lp = ListParams::default().labels(&names::instance_selector(name));
    let children = LiveChildren {
        config_maps: list(client, namespace, &lp).await?,
        deployments: list(client, namespace, &lp).await?,
        services: list(client, namespace, &lp).await?,
        pdbs: list(client, namespace, &lp).await?,
        hpas: list(client, namespace, &lp).await?,
    };
    Ok(Observed { models, children })
}

async fn list<K>(client: &Client, ns: &str, lp: &ListParams) -> Result<Vec<K>, DereferenceError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.list(lp).await {
        Ok(list) => Ok(list.items),
        Err(source) => Err(DereferenceError::List {
            kind: <K as k8s_openapi::Resource>::KIND,
            source,
        }),
    }
}
