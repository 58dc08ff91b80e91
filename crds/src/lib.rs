//! The llamafleet API: the `LlmModel` and `LlmDeployment` custom resources (group
//! `llamafleet.dev`, version `v1alpha1`), their validation, and the CRD manifests generated
//! from them.
//!
//! Every rule is written twice on purpose: once as OpenAPI ranges/patterns and CEL
//! `x-kubernetes-validations` inside the CRD, so the API server rejects a bad object at
//! `kubectl apply`, and once in Rust ([`LlmModelSpec::validate`],
//! [`LlmDeploymentSpec::validate`]), so the operator can explain a bad spec in status on
//! clusters that skip CEL (older API servers, or objects stored before a rule existed). Both
//! twins share their messages through [`rules`], and the tests hold them to the same cases.
#![forbid(unsafe_code)]

pub mod crdgen;
pub mod deployment;
pub mod json_schema;
pub mod metrics;
pub mod model;
pub mod reference;
pub mod routing;
pub mod rules;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tools;
pub mod validation;

pub use deployment::*;
pub use model::*;
pub use validation::{FieldError, InvalidSpec};

/// API group of both custom resources.
pub const GROUP: &str = "llamafleet.dev";
/// API version of both custom resources.
pub const VERSION: &str = "v1alpha1";
