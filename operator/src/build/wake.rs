//! What the routers need to wake sleeping variants (`spec.autoscaling.minReplicas: 0`): a
//! ServiceAccount for the router pods, and a Role bound to it that allows exactly `get` and
//! `patch` of the `scale` subresource of this deployment's variant Deployments, by name.
//! Nothing else: the router cannot read or change any other object. Without sleeping
//! variants none of the three exists and the router pods mount no API token at all.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::{BuildOptions, meta};
use crate::deployment::plan::Plan;
use crate::names;

/// The router's identity and its one permission.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterAccess {
    /// `<llmd>-router`, the router pods' ServiceAccount.
    pub service_account: ServiceAccount,
    /// `<llmd>-router-wake`: scale the variant Deployments.
    pub role: Role,
    /// Binds the Role to the ServiceAccount.
    pub binding: RoleBinding,
}

/// Whether the plan's variants may sleep, so that routers wake them.
pub fn wakes(plan: &Plan) -> bool {
    plan.spec.autoscaling.as_ref().is_some_and(|a| a.sleeps())
}

/// The router's access, when the plan's variants may sleep.
pub fn access(plan: &Plan, opts: &BuildOptions) -> Option<RouterAccess> {
    if !wakes(plan) {
        return None;
    }
    let labels = names::object_labels(&names::router_selector(&plan.name));
    let account = names::router_account(&plan.name);
    let role_name = names::router_wake_role(&plan.name);
    let deployments = plan
        .variants
        .iter()
        .map(|v| names::variant_object(&plan.name, &v.name))
        .collect();
    let role = Role {
        metadata: meta(plan, role_name.clone(), labels.clone(), opts),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["apps".into()]),
            resources: Some(vec!["deployments/scale".into()]),
            resource_names: Some(deployments),
            verbs: vec!["get".into(), "patch".into()],
            ..PolicyRule::default()
        }]),
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
    Some(RouterAccess {
        service_account,
        role,
        binding,
    })
}
