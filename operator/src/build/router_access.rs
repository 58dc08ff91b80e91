//! The router pods' identity: a ServiceAccount and a Role bound to it that allows exactly
//!
//! - `list` and `watch` of EndpointSlices in the namespace, so that a router knows each
//!   variant's ready replicas and picks one itself (prefix affinity, load) instead of leaving
//!   the choice to the variant Service. EndpointSlice names are generated, so this cannot be
//!   narrowed by name; slices carry addresses and ports only.
//! - while the variants may sleep (`spec.autoscaling.minReplicas: 0`), `get` and `patch` of
//!   the `scale` subresource of this deployment's variant Deployments, by name, to wake them.
//!
//! Nothing else: the router cannot read or change any other object.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{BuildOptions, meta};
use crate::deployment::plan::Plan;
use crate::names;

/// The router's identity and its permissions.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterAccess {
    /// `<llmd>-router`, the router pods' ServiceAccount.
    pub service_account: ServiceAccount,
    /// `<llmd>-router`: watch EndpointSlices, scale the variant Deployments when they sleep.
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub binding: RoleBinding,
}

/// Whether the plan's variants may sleep, so that routers wake them.
pub fn wakes(plan: &Plan) -> bool {
    plan.spec.autoscaling.as_ref().is_some_and(|a| a.sleeps())
}

/// The router's access.
pub fn access(plan: &Plan, opts: &BuildOptions) -> RouterAccess {
    let labels = names::object_labels(&names::router_selector(&plan.name));
    let account = names::router_account(&plan.name);
    let role_name = names::router_role(&plan.name);
    let mut rules = vec![PolicyRule {
        api_groups: Some(vec!["discovery.k8s.io".into()]),
        resources: Some(vec!["endpointslices".into()]),
        verbs: vec!["list".into(), "watch".into()],
        ..PolicyRule::default()
    }];
    if wakes(plan) {
        let deployments = plan
            .variants
            .iter()
            .map(|v| names::variant_object(&plan.name, &v.name))
            .collect();
        rules.push(PolicyRule {
            api_groups: Some(vec!["apps".into()]),
            resources: Some(vec!["deployments/scale".into()]),
            resource_names: Some(deployments),
            verbs: vec!["get".into(), "patch".into()],
            ..PolicyRule::default()
        });
    }
    let role = Role {
        metadata: meta(plan, role_name.clone(), labels.clone(), opts),
        rules: Some(rules),
    };
    let binding = RoleBinding {
        metadata: meta(plan, role_name.clone(), labels.clone(), opts),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: role_name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account.clone(),
            namespace: Some(plan.namespace.clone()),
            ..Subject::default()
        }]),
    };
    let service_account = ServiceAccount {
        metadata: meta(plan, account, labels, opts),
        ..ServiceAccount::default()
    };
    RouterAccess {
        service_account,
        role,
        binding,
    }
}
