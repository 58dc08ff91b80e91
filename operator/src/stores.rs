//! The controllers' watch caches: what a reconcile reads instead of asking the API server.
//!
//! One watch per kind (the models and the eight kinds of children) feeds both a controller's
//! triggers and a reflector store, so a reconcile of an unchanged LlmDeployment makes no API
//! request at all. A store can lag a write by one watch event; the steps after it tolerate
//! that: an apply of an object already current is a no-op for the API server (server-side
//! apply), and a delete of one already gone is ignored.

use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use llamafleet_crds::LlmModel;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::deployment::dereference::LiveChildren;
use crate::{names, owned};

/// The stores a reconcile reads.
#[derive(Clone)]
pub struct Stores {
    /// Every LlmModel.
    pub models: Store<LlmModel>,
    /// Children of every LlmDeployment, by kind (selected by the managed-by label).
    pub config_maps: Store<ConfigMap>,
    /// Variant and router Deployments.
    pub deployments: Store<Deployment>,
    /// Variant and stable Services.
    pub services: Store<Service>,
    /// Variant PDBs.
    pub pdbs: Store<PodDisruptionBudget>,
    /// Variant HPAs.
    pub hpas: Store<HorizontalPodAutoscaler>,
    /// Router ServiceAccounts.
    pub service_accounts: Store<ServiceAccount>,
    /// Router wake Roles.
    pub roles: Store<Role>,
    /// Their bindings.
    pub role_bindings: Store<RoleBinding>,
    /// Whether every store had its first listing, once known. Reconciles wait here rather
    /// than on the stores: kube-runtime's `Store::wait_until_ready` keeps the waker of only
    /// the last of concurrent waiters, so all but one reconcile waiting at startup would
    /// never wake (seen as a new leader that reconciled one LlmDeployment of eleven).
    ready: Arc<OnceCell<Result<(), StoresStopped>>>,
}

/// The writing ends of [`Stores`], each fed by its kind's watch (see `run.rs`).
pub struct Writers {
    /// Fed by the LlmModel watch.
    pub models: Writer<LlmModel>,
    /// Fed by the ConfigMap watch.
    pub config_maps: Writer<ConfigMap>,
    /// Fed by the Deployment watch.
    pub deployments: Writer<Deployment>,
    /// Fed by the Service watch.
    pub services: Writer<Service>,
    /// Fed by the PodDisruptionBudget watch.
    pub pdbs: Writer<PodDisruptionBudget>,
    /// Fed by the HorizontalPodAutoscaler watch.
    pub hpas: Writer<HorizontalPodAutoscaler>,
    /// Fed by the ServiceAccount watch.
    pub service_accounts: Writer<ServiceAccount>,
    /// Fed by the Role watch.
    pub roles: Writer<Role>,
    /// Fed by the RoleBinding watch.
    pub role_bindings: Writer<RoleBinding>,
}

/// A store's writer was dropped before its first full listing: the watch stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("a watch cache stopped before its first listing")]
pub struct StoresStopped;

impl Stores {
    /// Empty stores, ready once each writer has seen its watch's first listing.
    pub fn new() -> (Self, Writers) {
        let (models, models_w) = reflector::store();
        let (config_maps, config_maps_w) = reflector::store();
        let (deployments, deployments_w) = reflector::store();
        let (services, services_w) = reflector::store();
        let (pdbs, pdbs_w) = reflector::store();
        let (hpas, hpas_w) = reflector::store();
        let (service_accounts, service_accounts_w) = reflector::store();
        let (roles, roles_w) = reflector::store();
        let (role_bindings, role_bindings_w) = reflector::store();
        let stores = Self {
            models,
            config_maps,
            deployments,
            services,
            pdbs,
            hpas,
            service_accounts,
            roles,
            role_bindings,
            ready: Arc::new(OnceCell::new()),
        };
        let writers = Writers {
            models: models_w,
            config_maps: config_maps_w,
            deployments: deployments_w,
            services: services_w,
            pdbs: pdbs_w,
            hpas: hpas_w,
            service_accounts: service_accounts_w,
            roles: roles_w,
            role_bindings: role_bindings_w,
        };
        (stores, writers)
    }

    /// Stores that hold exactly these objects and are ready (tests, benchmarks, `render`).
    pub fn holding(models: Vec<LlmModel>, children: LiveChildren) -> Self {
        let (stores, w) = Self::new();
        fill(w.models, models);
        fill(w.config_maps, children.config_maps);
        fill(w.deployments, children.deployments);
        fill(w.services, children.services);
        fill(w.pdbs, children.pdbs);
        fill(w.hpas, children.hpas);
        fill(w.service_accounts, children.service_accounts);
        fill(w.roles, children.roles);
        fill(w.role_bindings, children.role_bindings);
        stores
    }

    /// Waits until every store has had its first full listing: before that, a missing child
    /// could be one not listed yet, and a reconcile would write what exists.
    pub async fn wait_until_ready(&self) -> Result<(), StoresStopped> {
        // One task at a time polls the stores (the cell's initializer); the others wait on
        // the cell, which wakes them all.
        *self
            .ready
            .get_or_init(|| async {
                let ready = tokio::try_join!(
                    self.models.wait_until_ready(),
                    self.config_maps.wait_until_ready(),
                    self.deployments.wait_until_ready(),
                    self.services.wait_until_ready(),
                    self.pdbs.wait_until_ready(),
                    self.hpas.wait_until_ready(),
                    self.service_accounts.wait_until_ready(),
                    self.roles.wait_until_ready(),
                    self.role_bindings.wait_until_ready(),
                );
                ready.map(drop).map_err(|_| StoresStopped)
            })
            .await
    }

    /// The LlmModel `name` in `namespace`, if it exists.
    pub fn model(&self, namespace: &str, name: &str) -> Option<LlmModel> {
        let key = ObjectRef::new(name).within(namespace);
        self.models.get(&key).map(Arc::unwrap_or_clone)
    }

    /// The children of the LlmDeployment `instance` in `namespace` (its instance label), each
    /// kind sorted by name as a LIST would return them.
    pub fn children(&self, namespace: &str, instance: &str) -> LiveChildren {
        LiveChildren {
            config_maps: of_instance(&self.config_maps, namespace, instance),
            deployments: of_instance(&self.deployments, namespace, instance),
            services: of_instance(&self.services, namespace, instance),
            pdbs: of_instance(&self.pdbs, namespace, instance),
            hpas: of_instance(&self.hpas, namespace, instance),
            service_accounts: of_instance(&self.service_accounts, namespace, instance),
            roles: of_instance(&self.roles, namespace, instance),
            role_bindings: of_instance(&self.role_bindings, namespace, instance),
        }
    }
}

/// Fields a store never needs: the write history (`managedFields`) is most of a small
/// object's size, and no step reads it.
pub fn trim<K: ResourceExt>(obj: &mut K) {
    obj.managed_fields_mut().clear();
}

/// What a store keeps of a child: its identity, owner and selection labels, what a step
/// reads of the rest ([`Slim`]), and the fingerprint of the fields the operator owns
/// ([`crate::owned`]) for the apply step's comparison. A child the operator owns no field of
/// (made by someone else with its labels) is kept whole and compared field by field.
pub fn keep_owned<K>(obj: &mut K)
where
    K: ResourceExt + Serialize + Slim,
{
    let owned = obj
        .meta()
        .managed_fields
        .as_deref()
        .and_then(|entries| owned::fields_of(entries, names::FIELD_MANAGER));
    trim(obj);
    let (Some(owned), Ok(whole)) = (owned, serde_json::to_value(&*obj)) else {
        return;
    };
    let print = owned::live_fingerprint(&whole, &owned);
    obj.slim();
    // Of the metadata, what selects a deployment's children (`of_instance`) and what the
    // prune step reads (owner references); the fingerprint goes with the labels, a map of
    // its own would cost as much again.
    let meta = obj.meta_mut();
    meta.annotations = None;
    let labels = meta.labels.get_or_insert_default();
    labels.retain(|k, _| k == names::LABEL_INSTANCE || k == names::LABEL_MANAGED_BY);
    labels.insert(owned::FINGERPRINT.to_string(), print);
}

/// Drops what no step reads of a cached child (the apply step compares fingerprints).
pub trait Slim {
    /// Keeps the metadata, the status, and what the doc of each kind's impl says.
    fn slim(&mut self);
}

impl Slim for Deployment {
    /// Keeps `spec.replicas` (whoever set it: an autoscaler, a router waking its variant).
    fn slim(&mut self) {
        if let Some(spec) = self.spec.as_mut() {
            *spec = DeploymentSpec {
                replicas: spec.replicas,
                ..Default::default()
            };
        }
    }
}

impl Slim for Service {
    fn slim(&mut self) {
        self.spec = None;
    }
}

impl Slim for ConfigMap {
    fn slim(&mut self) {
        self.data = None;
        self.binary_data = None;
    }
}

impl Slim for PodDisruptionBudget {
    fn slim(&mut self) {
        self.spec = None;
    }
}

impl Slim for HorizontalPodAutoscaler {
    fn slim(&mut self) {
        self.spec = None;
    }
}

impl Slim for ServiceAccount {
    fn slim(&mut self) {
        self.secrets = None;
        self.image_pull_secrets = None;
    }
}

impl Slim for Role {
    fn slim(&mut self) {
        self.rules = None;
    }
}

impl Slim for RoleBinding {
    fn slim(&mut self) {
        self.role_ref = Default::default();
        self.subjects = None;
    }
}

fn fill<K>(mut writer: Writer<K>, objects: Vec<K>)
where
    K: Resource<DynamicType = ()> + Clone,
{
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
}

fn of_instance<K>(store: &Store<K>, namespace: &str, instance: &str) -> Vec<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone,
{
    let mut found: Vec<K> = store
        .state_filter(|o| {
            o.meta().namespace.as_deref() == Some(namespace)
                && label(o, names::LABEL_INSTANCE) == Some(instance)
                && label(o, names::LABEL_MANAGED_BY) == Some(names::FIELD_MANAGER)
        })
        .into_iter()
        .map(Arc::unwrap_or_clone)
        .collect();
    found.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    found
}

fn label<'a, K: ResourceExt>(o: &'a K, key: &str) -> Option<&'a str> {
    o.labels().get(key).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::deployment::apply::is_current;
    use crate::names::FIELD_MANAGER;

    /// A Deployment as the operator builds it.
    fn built() -> Deployment {
        let v = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "chat-blue", "namespace": "ns",
                         "labels": {"app.kubernetes.io/managed-by": "llamafleet-operator"},
                         "ownerReferences": [{"apiVersion": "llamafleet.dev/v1alpha1",
                             "kind": "LlmDeployment", "name": "chat", "uid": "u1",
                             "controller": true}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"v": "blue"}},
                     "template": {"metadata": {"labels": {"v": "blue"}},
                                  "spec": {"containers": [{"name": "agent", "image": "a:1",
                                      "args": ["serve"], "ports": [{"containerPort": 8080,
                                      "name": "http"}]}]}}}
        });
        serde_json::from_value(v).expect("a Deployment")
    }

    /// The same as the API server returns it: defaults, status, and the operator's field set
    /// (as the API server writes it, list elements by key) plus another manager's.
    fn live(image: &str, image_owner: &str) -> Deployment {
        let mut container = json!({".": {}, "f:name": {}, "f:args": {},
            "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":
                {".": {}, "f:containerPort": {}, "f:name": {}}}});
        if image_owner == FIELD_MANAGER {
            container["f:image"] = json!({});
        }
        let mut entries = vec![
            json!({"manager": FIELD_MANAGER, "operation": "Apply",
            "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app.kubernetes.io/managed-by": {}},
                               "f:ownerReferences": {"k:{\"uid\":\"u1\"}": {}}},
                "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {
                    "f:metadata": {"f:labels": {"f:v": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"agent\"}": container}}}}}}),
            json!({"manager": "kube-controller-manager", "operation": "Update",
                   "subresource": "status", "fieldsType": "FieldsV1",
                   "fieldsV1": {"f:status": {"f:readyReplicas": {}}}}),
        ];
        if image_owner != FIELD_MANAGER {
            entries.push(json!({"manager": image_owner, "operation": "Update",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:template": {"f:spec": {
                    "f:containers": {"k:{\"name\":\"agent\"}": {"f:image": {}}}}}}}}));
        }
        let mut v = serde_json::to_value(built()).expect("JSON");
        v["metadata"]["uid"] = json!("d1");
        v["metadata"]["resourceVersion"] = json!("7");
        v["metadata"]["managedFields"] = Value::Array(entries);
        v["spec"]["revisionHistoryLimit"] = json!(10);
        v["spec"]["template"]["spec"]["dnsPolicy"] = json!("ClusterFirst");
        let c = &mut v["spec"]["template"]["spec"]["containers"][0];
        c["image"] = json!(image);
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["ports"][0]["protocol"] = json!("TCP");
        v["status"] = json!({"readyReplicas": 1});
        serde_json::from_value(v).expect("a live Deployment")
    }

    fn cached(mut d: Deployment) -> Deployment {
        keep_owned(&mut d);
        d
    }

    #[test]
    fn a_cached_child_is_slim_and_compares_by_its_owned_fields() {
        let c = cached(live("a:1", FIELD_MANAGER));
        // What steps read is there; the pod template and the write history are not.
        let spec = c.spec.clone().unwrap_or_default();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(spec.template, Default::default());
        assert_eq!(c.status.as_ref().and_then(|s| s.ready_replicas), Some(1));
        assert!(c.metadata.managed_fields.as_ref().is_none_or(Vec::is_empty));
        assert_eq!(c.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        let labels = c.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get(names::LABEL_MANAGED_BY).map(String::as_str),
            Some(FIELD_MANAGER)
        );
        // As built, despite the defaults and the status: nothing to write.
        assert!(is_current(&built(), std::slice::from_ref(&c)));
        // Something built differently is written.
        let mut changed = serde_json::to_value(built()).expect("JSON");
        changed["spec"]["template"]["spec"]["containers"][0]["args"] = json!(["serve", "-v"]);
        let changed: Deployment = serde_json::from_value(changed).expect("a Deployment");
        assert!(!is_current(&changed, std::slice::from_ref(&c)));
        // Another manager changed the image: it owns it now, and the child is written again.
        let edited = cached(live("b:2", "kubectl-edit"));
        assert!(!is_current(&built(), &[edited]));
    }

    #[tokio::test]
    async fn every_reconcile_waiting_for_the_first_listing_wakes() {
        let (stores, w) = Stores::new();
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let stores = stores.clone();
                tokio::spawn(async move { stores.wait_until_ready().await })
            })
            .collect();
        // Let all of them wait before the listings arrive.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        fill(w.models, vec![]);
        fill(w.config_maps, vec![]);
        fill(w.deployments, vec![]);
        fill(w.services, vec![]);
        fill(w.pdbs, vec![]);
        fill(w.hpas, vec![]);
        fill(w.service_accounts, vec![]);
        fill(w.roles, vec![]);
        fill(w.role_bindings, vec![]);
        let all = futures_util::future::join_all(waiters);
        // A bound for a hang (a lost wake-up), not a timing: they wake at once.
        let woken = tokio::time::timeout(std::time::Duration::from_secs(30), all)
            .await
            .expect("every waiter wakes");
        assert!(woken.into_iter().all(|r| matches!(r, Ok(Ok(())))));
    }
}
