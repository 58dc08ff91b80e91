//! The llamafleet operator: reconciles `LlmDeployment`s into variant Deployments, Services,
//! PDBs and HPAs plus a router with its routing table and stable Service, sized from each
//! model's memory plan; and resolves `LlmModel` sources (GGUF header, pinned revision,
//! scheduled update checks) in [`model`].
//!
//! A reconcile is a short run of steps, each its own module under [`deployment`]:
//! dereference (the controller's watch caches, [`stores`]) → plan (pure) → [`build`] (pure,
//! cannot fail) → [`node_cache`] (the namespace's model-cache claim, when serving pods are
//! about to change) → apply (writes) → status. Between plan and build, [`rollout`] decides
//! which weights are in effect (a progressive rollout's step, or the spec's).
#![forbid(unsafe_code)]

pub mod agent_status;
pub mod api_client;
pub mod build;
pub mod context;
pub mod deployment;
pub mod error;
pub mod http;
pub mod metrics;
pub mod model;
pub mod names;
pub mod node_cache;
pub mod owned;
pub mod pod_url;
pub mod render;
pub mod rollout;
pub mod run;
pub mod sizing;
pub mod stores;
pub mod trigger;
pub mod update;
