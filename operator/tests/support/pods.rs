//! The pod template of a built variant, for builder tests (`#[path]`-included: no mock API).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::PodSpec;
use llamafleet_operator::build::Children;
use llamafleet_operator::deployment::plan::{self, Plan, ResolvedModel};
use llamafleet_operator::render::{self, DEFAULT_NAMESPACE};

/// The plan of the last deployment of the given example files (under
/// `manifests/examples/`), each model taken as the minimal model controller pins it.
#[allow(dead_code)] // not every test binary that includes this file plans examples
pub fn plan_of_examples(files: &[&str]) -> Plan {
    plan_of_inputs(&read_examples(files))
}

/// The example files, read as `render` reads them (for tests that change them first).
#[allow(dead_code)]
pub fn read_examples(files: &[&str]) -> render::Inputs {
    let dir = llamafleet_crds::testing::examples_dir();
    let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    render::read_inputs(&paths, DEFAULT_NAMESPACE).unwrap()
}

/// The plan of the last deployment of `inputs`, each model taken as the minimal model
/// controller pins it.
#[allow(dead_code)]
pub fn plan_of_inputs(inputs: &render::Inputs) -> Plan {
    let d = inputs.deployments.last().unwrap();
    let models = inputs
        .models
        .values()
        .map(|m| {
            (
                m.metadata.name.clone().unwrap(),
                Ok(ResolvedModel::from_spec_and_status(m)),
            )
        })
        .collect();
    let name = d.metadata.name.as_deref().unwrap();
    plan::make(name, DEFAULT_NAMESPACE, &d.spec, &models).unwrap()
}

/// The pod spec of variant `variant`'s Deployment.
#[allow(dead_code)] // not every test binary that includes this file reads pod specs
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
