//! `llamafleet-operator render`: the objects the operator would apply, offline.
//!
//! Models resolve across all files given (a deployment may name a model from another file).
//! Models count as their spec says (the state the minimal model controller pins them in).
//! Owner references are left out: they need the live LlmDeployment's uid, and a made-up uid
//! would make the garbage collector delete the objects if someone applied the output.
//! Deployments on the node cache also get its PersistentVolume and claim, once per namespace,
//! as the operator would create them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use llamafleet_crds::{LlmDeployment, LlmModel};
use serde::Deserialize;

use crate::build::gpu::{AgentImages, ImageError};
use crate::build::{self, BuildOptions, node_cache};
use crate::deployment::plan::{self, ResolvedModel, ValidateError};

/// Namespace of documents that name none (what `kubectl apply` without `-n` would use).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why render could not produce output.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A document is not YAML or not a valid LlmModel/LlmDeployment.
    #[error("{path}: document {index}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based document number in the file.
        index: usize,
        /// The cause.
        message: String,
    },
    /// A deployment names a model none of the files defines.
    #[error(
        "LlmDeployment {namespace}/{deployment}: LlmModel {model:?} is not defined in any file \
         given; add the file that defines it with another -f"
    )]
    UnresolvedModel {
        /// Its namespace.
        namespace: String,
        /// The deployment.
        deployment: String,
        /// The missing model.
        model: String,
    },
    /// A deployment cannot be built.
    #[error("LlmDeployment {namespace}/{name}: {source}")]
    Invalid {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The cause.
        source: ValidateError,
    },
    /// Serialising the output failed.
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    /// The GPU agent images cannot be derived from the agent image.
    #[error(transparent)]
    Images(#[from] ImageError),
}

/// Documents read from the files.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Models by `(namespace, name)`; a later file wins.
    pub models: BTreeMap<(String, String), LlmModel>,
    /// Deployments in file order.
    pub deployments: Vec<LlmDeployment>,
}

/// Reads every document of every file; documents of other kinds are skipped.
pub fn read_inputs(paths: &[PathBuf], namespace: &str) -> Result<Inputs, RenderError> {
    let mut inputs = Inputs::default();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| RenderError::Read {
            path: path.clone(),
            source,
        })?;
        parse_into(&mut inputs, path, &text, namespace)?;
    }
    Ok(inputs)
}

fn parse_into(inputs: &mut Inputs, path: &Path, text: &str, ns: &str) -> Result<(), RenderError> {
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let err = |message: String| RenderError::Parse {
            path: path.into(),
            index: i + 1,
            message,
        };
        let value = serde_json::Value::deserialize(doc).map_err(|e| err(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        match kind.as_str() {
            "LlmModel" => {
                let mut m: LlmModel =
                    serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                let key = (
                    m.metadata
                        .namespace
                        .get_or_insert_with(|| ns.into())
                        .clone(),
                    name(&m.metadata),
                );
                inputs.models.insert(key, m);
            }
            "LlmDeployment" => {
                let mut d: LlmDeployment =
                    serde_json::from_value(value).map_err(|e| err(e.to_string()))?;
                d.metadata.namespace.get_or_insert_with(|| ns.into());
                inputs.deployments.push(d);
            }
            _ => {}
        }
    }
    Ok(())
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Multi-document YAML of every object the deployments in `inputs` would get, with the agent
/// image and default node cache directory the operator would use; the GPU images are derived
/// from `agent_image` as the operator's defaults are ([`AgentImages::derived`]).
pub fn render(inputs: &Inputs, agent_image: &str, cache_path: &str) -> Result<String, RenderError> {
    let images = AgentImages::derived(agent_image)?;
    render_with_images(inputs, &images, cache_path)
}

/// [`render`] with these agent images.
pub fn render_with_images(
    inputs: &Inputs,
    images: &AgentImages,
    cache_path: &str,
) -> Result<String, RenderError> {
    let opts = BuildOptions {
        images: images.clone(),
        owner: None,
        cache_path: cache_path.into(),
    };
    let mut out = String::from(
        "# Rendered by llamafleet-operator; ownerReferences are added at apply time.\n",
    );
    let mut node_caches = BTreeSet::new();
    for d in &inputs.deployments {
        let namespace = d
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        let llmd = name(&d.metadata);
        let models = d
            .spec
            .variants
            .iter()
            .filter_map(|v| {
                let m = inputs.models.get(&(namespace.clone(), v.model.clone()))?;
                if let Err(e) = m.spec.validate() {
                    let reason = format!("invalid: {e}");
                    let err = ValidateError::ModelNotReady {
                        name: v.model.clone(),
                        phase: reason,
                    };
                    return Some((v.model.clone(), Err(err)));
                }
                Some((v.model.clone(), Ok(ResolvedModel::from_spec_and_status(m))))
            })
            .collect();
        let plan =
            plan::make(&llmd, &namespace, &d.spec, &models).map_err(|source| match source {
                ValidateError::ModelNotFound(model) => RenderError::UnresolvedModel {
                    namespace,
                    deployment: llmd,
                    model,
                },
                source => RenderError::Invalid {
                    namespace,
                    name: llmd,
                    source,
                },
            })?;
        // The node cache's volume and claim, once per namespace, before the pods that mount it.
        if node_cache::uses_node_cache(&plan.spec) && node_caches.insert(plan.namespace.clone()) {
            let pv = node_cache::persistent_volume(&plan.namespace, cache_path);
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(&pv)?);
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(&node_cache::claim(
                &plan.namespace,
            ))?);
        }
        for child in build::build(&plan, &opts).into_ordered() {
            out.push_str("---\n");
            out.push_str(&serde_norway::to_string(&child)?);
        }
    }
    Ok(out)
}
