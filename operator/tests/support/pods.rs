//! The pod template of a built variant, for builder tests (`#[path]`-included: no mock API).

use k8s_openapi::api::core::v1::PodSpec;
use llamafleet_operator::build::Children;

/// The pod spec of variant `variant`'s Deployment.
pub fn pod_spec(children: &Children, variant: usize) -> PodSpec {
    children.variants[variant]
        .deployment
        .spec
        .clone()
        .expect("deployment spec")
        .template
        .spec
        .expect("pod spec")
}
