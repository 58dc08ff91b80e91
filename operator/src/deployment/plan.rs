//! Plan step (pure): checks an `LlmDeployment` and turns it and the models it names into a [`Plan`]
//! every builder can use without further checks, or says what the user has to fix.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use llamafleet_crds::{
    Candidate, GpuVendor, InvalidSpec, LlmDeploymentSpec, LlmModel, ModelPhase, SecretKeyRef,
    ServingSpec,
};

use crate::names;
use crate::sizing::{self, DEFAULT_GPU_MEMORY_BYTES};
use llamafleet_gguf::{MemoryPlan, ModelMemory};

/// Context length when neither the deployment nor the model names one; every GGUF chat model
/// in use today trains with at least this much.
pub const DEFAULT_CONTEXT_LENGTH: u32 = 4096;
/// Decoding slots when none are set: one slot keeps the whole context for one request.
pub const DEFAULT_PARALLEL: u32 = 1;
/// Replicas of a variant when neither the variant nor the deployment says.
pub const DEFAULT_REPLICAS: i32 = 1;

/// A spec the operator cannot act on; each one is a user error (condition + Event, no retry).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidateError {
    /// The Rust twin of the CRD rules failed.
    #[error(transparent)]
    InvalidSpec(#[from] InvalidSpec),
    /// A generated object name would not be a valid DNS-1123 label.
    #[error("name {0:?} is longer than 63 characters; shorten the LlmDeployment or variant name")]
    NameTooLong(String),
    /// A variant names an LlmModel that does not exist in the namespace.
    #[error("LlmModel {0:?} not found in this namespace")]
    ModelNotFound(String),
    /// A variant names an LlmModel whose status phase is not `Ready`.
    #[error("LlmModel {name:?} is not Ready (phase {phase})")]
    ModelNotReady {
        /// The model.
        name: String,
        /// Its phase, or `unknown`.
        phase: String,
    },
}

impl ValidateError {
    /// Condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) | Self::NameTooLong(_) => "InvalidSpec",
            Self::ModelNotFound(_) => "ModelNotFound",
            Self::ModelNotReady { .. } => "ModelNotReady",
        }
    }
}

/// The model file a variant serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// LlmModel name.
    pub name: String,
    /// URL the agent downloads.
    pub url: String,
    /// Pinned sha256, when known.
    pub sha256: Option<String>,
    /// The LlmModel allows plain http (`spec.source.allowInsecureHttp`): the agent is told so
    /// (`--allow-http`), or it refuses the URL the operator resolved.
    pub allow_insecure_http: bool,
    /// The Secret key holding the source's bearer token (`spec.source.authSecretRef`): the
    /// agents download the file too, so they get it as well (`build::source_token`).
    pub auth_secret: Option<SecretKeyRef>,
    /// Context length the model declares (spec, else GGUF header).
    pub context_length: Option<u32>,
    /// Memory figures from the GGUF header (`None` until the model controller read it).
    pub memory: Option<ModelMemory>,
}

impl ResolvedModel {
    /// The model as a deployment may use it: only a `Ready` model, with its resolved source
    /// (falling back to the spec for fields status does not carry).
    pub fn from_ready(model: &LlmModel) -> Result<Self, ValidateError> {
        let name = model.metadata.name.clone().unwrap_or_default();
        let status = model.status.as_ref();
        let phase = status.and_then(|s| s.phase);
        if phase != Some(ModelPhase::Ready) {
            let phase = phase.map_or_else(|| "unknown".to_string(), |p| format!("{p:?}"));
            return Err(ValidateError::ModelNotReady { name, phase });
        }
        Ok(Self::from_spec_and_status(model))
    }

    /// The candidate revision of `model` (policy `Rollout`), as its update variants serve it:
    /// the candidate's pinned file and the memory figures of its own header.
    pub fn from_candidate(model: &LlmModel, candidate: &Candidate) -> Self {
        let gguf = candidate.gguf.as_ref();
        Self {
            name: model.metadata.name.clone().unwrap_or_default(),
            url: candidate
                .url
                .clone()
                .unwrap_or_else(|| model.spec.source.url.clone()),
            sha256: candidate.sha256.clone(),
            allow_insecure_http: model.spec.source.allow_insecure_http.unwrap_or(false),
            auth_secret: model.spec.source.auth_secret_ref.clone(),
            context_length: model.spec.context_length.or_else(|| {
                gguf.and_then(|g| g.context_length)
                    .and_then(|c| u32::try_from(c).ok())
            }),
            memory: candidate
                .memory
                .as_ref()
                .zip(gguf)
                .and_then(|(m, g)| sizing::memory_of(m, g)),
        }
    }

    /// The model as render sees it offline: its spec, as the minimal model controller pins it.
    pub fn from_spec_and_status(model: &LlmModel) -> Self {
        let resolved = model.status.as_ref().and_then(|s| s.resolved.as_ref());
        let gguf_ctx = model
            .status
            .as_ref()
            .and_then(|s| s.gguf.as_ref()?.context_length);
        Self {
            name: model.metadata.name.clone().unwrap_or_default(),
            url: resolved
                .and_then(|r| r.url.clone())
                .unwrap_or_else(|| model.spec.source.url.clone()),
            sha256: resolved
                .and_then(|r| r.sha256.clone())
                .or_else(|| model.spec.source.sha256.clone()),
            allow_insecure_http: model.spec.source.allow_insecure_http.unwrap_or(false),
            auth_secret: model.spec.source.auth_secret_ref.clone(),
            context_length: model
                .spec
                .context_length
                .or_else(|| gguf_ctx.and_then(|c| u32::try_from(c).ok())),
            memory: sizing::model_memory(model),
        }
    }
}

/// Serving settings of one variant after overrides and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveServing {
    /// `--ctx`.
    pub context_length: u32,
    /// `--parallel`.
    pub parallel: u32,
    /// `--threads`, when set.
    pub threads: Option<u32>,
    /// GPUs per replica (of `gpu_vendor`'s device plugin resource).
    pub gpu_count: u32,
    /// `--gpu-layers`: `auto` or a number.
    pub gpu_layers: String,
    /// Maker of the GPUs (NVIDIA when the spec names none).
    pub gpu_vendor: GpuVendor,
    /// Memory of each GPU the layer split assumes: `gpu.memoryGiB`, else the operator's.
    pub gpu_memory_bytes: u64,
}

/// One variant, ready to build.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantPlan {
    /// Variant name.
    pub name: String,
    /// Traffic weight in effect.
    pub weight: i32,
    /// The model it serves.
    pub model: ResolvedModel,
    /// Serving settings.
    pub serving: EffectiveServing,
    /// Requests and limits (variant, else deployment, else the memory plan), without the GPU.
    pub resources: Option<ResourceRequirements>,
    /// Memory plan of one replica, when the model's header was read.
    pub memory_plan: Option<MemoryPlan>,
    /// Whether `resources` came from the spec (else from the plan, or none).
    pub resources_from_spec: bool,
    /// Replicas, or `None` when an HPA owns the count.
    pub replicas: Option<i32>,
    /// Left with no traffic by a promoted progressive rollout: 0 replicas, no autoscaler.
    pub retired: bool,
}

/// Everything the build step needs, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// LlmDeployment name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The spec (for presets, access, rollout, autoscaling, cache, scheduling).
    pub spec: LlmDeploymentSpec,
    /// Variants in spec order.
    pub variants: Vec<VariantPlan>,
    /// sha256s of the cached models every serving pod keeps on its node besides the one it
    /// serves (see [`crate::update::retain`]); empty unless a model update is under way.
    pub keep: Vec<String>,
}

/// Checks the spec and the models (`None`: not found) and makes the plan, with the default
/// GPU memory for layer splits.
pub fn make(
    name: &str,
    namespace: &str,
    spec: &LlmDeploymentSpec,
    models: &BTreeMap<String, Result<ResolvedModel, ValidateError>>,
) -> Result<Plan, ValidateError> {
    make_with_gpu_memory(name, namespace, spec, models, DEFAULT_GPU_MEMORY_BYTES)
}

/// [`make`] with the memory of each GPU for `gpu.layers: auto` where `gpu.memoryGiB` names
/// none.
pub fn make_with_gpu_memory(
    name: &str,
    namespace: &str,
    spec: &LlmDeploymentSpec,
    models: &BTreeMap<String, Result<ResolvedModel, ValidateError>>,
    gpu_memory_bytes: u64,
) -> Result<Plan, ValidateError> {
    spec.validate()?;
    let mut object_names = vec![names::router_deployment(name), names::routing_config(name)];
    object_names.extend(
        spec.variants
            .iter()
            .map(|v| names::variant_object(name, &v.name)),
    );
    if let Some(long) = object_names
        .into_iter()
        .find(|n| n.len() > names::SERVICE_NAME_MAX)
    {
        return Err(ValidateError::NameTooLong(long));
    }
    let mut variants = Vec::with_capacity(spec.variants.len());
    for v in &spec.variants {
        let model = match models.get(&v.model) {
            Some(Ok(m)) => m.clone(),
            Some(Err(e)) => return Err(e.clone()),
            None => return Err(ValidateError::ModelNotFound(v.model.clone())),
        };
        let mut serving = effective_serving(
            spec.serving.as_ref(),
            v.serving.as_ref(),
            &model,
            gpu_memory_bytes,
        );
        let memory_plan = model.memory.as_ref().map(|m| {
            sizing::plan(
                m,
                serving.context_length,
                serving.parallel,
                serving.gpu_count,
                &serving.gpu_layers,
                serving.gpu_memory_bytes,
            )
        });
        if let Some(p) = &memory_plan
            && serving.gpu_count > 0
            && serving.gpu_layers == "auto"
        {
            serving.gpu_layers = p.gpu_layers.to_string();
        }
        let spec_resources = v.resources.clone().or_else(|| spec.resources.clone());
        let resources_from_spec = spec_resources.is_some();
        let resources = spec_resources.or_else(|| {
            memory_plan
                .as_ref()
                .map(|p| sizing::resources(p, serving.threads))
        });
        let replicas = match spec.autoscaling {
            Some(_) => None,
            None => Some(v.replicas.or(spec.replicas).unwrap_or(DEFAULT_REPLICAS)),
        };
        variants.push(VariantPlan {
            name: v.name.clone(),
            weight: v.weight,
            model,
            serving,
            resources,
            memory_plan,
            resources_from_spec,
            replicas,
            retired: false,
        });
    }
    Ok(Plan {
        name: name.into(),
        namespace: namespace.into(),
        spec: spec.clone(),
        variants,
        keep: Vec::new(),
    })
}

/// Variant fields win over deployment fields; `gpu` is one unit (count, layers, vendor and
/// memory together).
fn effective_serving(
    base: Option<&ServingSpec>,
    over: Option<&ServingSpec>,
    model: &ResolvedModel,
    default_gpu_memory_bytes: u64,
) -> EffectiveServing {
    let pick = |f: fn(&ServingSpec) -> Option<u32>| over.and_then(f).or_else(|| base.and_then(f));
    let gpu = over
        .and_then(|s| s.gpu.clone())
        .or_else(|| base.and_then(|s| s.gpu.clone()));
    let gpu_count = gpu.as_ref().map_or(0, |g| g.count);
    let gpu_vendor = gpu.as_ref().and_then(|g| g.vendor).unwrap_or_default();
    let gpu_memory_bytes = gpu
        .as_ref()
        .and_then(|g| g.memory_gib)
        .map_or(default_gpu_memory_bytes, |gib| u64::from(gib) << 30);
    let gpu_layers = match gpu.and_then(|g| g.layers) {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => s,
        None if gpu_count > 0 => "auto".into(),
        None => "0".into(),
    };
    EffectiveServing {
        context_length: pick(|s| s.context_length)
            .or(model.context_length)
            .unwrap_or(DEFAULT_CONTEXT_LENGTH),
        parallel: pick(|s| s.parallel).unwrap_or(DEFAULT_PARALLEL),
        threads: pick(|s| s.threads),
        gpu_count,
        gpu_layers,
        gpu_vendor,
        gpu_memory_bytes,
    }
}
