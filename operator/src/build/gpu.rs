//! What a variant's GPUs decide about its pods: the device plugin resource they request, the
//! agent build (image) they run, and the user the devices must be handed to.

use llamafleet_crds::GpuVendor;

/// Tag suffix of the CUDA build of the agent image (`docker/agent-cuda.Dockerfile`): CUDA 13,
/// so NVIDIA driver 580 or newer on the node.
pub const CUDA_TAG_SUFFIX: &str = "-cuda13";
/// Tag suffix of the Vulkan build of the agent image (`docker/agent-vulkan.Dockerfile`).
pub const VULKAN_TAG_SUFFIX: &str = "-vulkan";
/// User and group of every agent image (`USER 65532:65532` in `docker/agent*.Dockerfile`).
/// Every pod names them in its security context (`build::pod`): Pod Security `restricted`
/// wants a non-root user it can check, and for Vulkan pods a runtime set to
/// `device_ownership_from_security_context` then hands the GPU's render node
/// (`/dev/dri/renderD*`, mode 0660, group `render` on the host) to that user.
pub const AGENT_USER: i64 = 65532;

/// The agent build a serving pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// llama.cpp on the CPU: no GPU requested.
    Cpu,
    /// NVIDIA GPUs.
    Cuda,
    /// AMD and Intel GPUs.
    Vulkan,
}

impl Backend {
    /// The build for `count` GPUs of `vendor` (none: the CPU build, whatever the vendor).
    pub fn of(count: u32, vendor: GpuVendor) -> Self {
        match (count, vendor) {
            (0, _) => Self::Cpu,
            (_, GpuVendor::Nvidia) => Self::Cuda,
            (_, GpuVendor::Amd | GpuVendor::Intel) => Self::Vulkan,
        }
    }
}

/// Extended resource that `vendor`'s device plugin advertises: NVIDIA's device plugin (or GPU
/// operator), AMD's `k8s-device-plugin`, Intel's GPU plugin (nodes on the `i915` kernel
/// driver).
pub fn resource(vendor: GpuVendor) -> &'static str {
    match vendor {
        GpuVendor::Nvidia => "nvidia.com/gpu",
        GpuVendor::Amd => "amd.com/gpu",
        GpuVendor::Intel => "gpu.intel.com/i915",
    }
}

/// The agent image of each backend. Routers run the CPU image too (they do no inference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentImages {
    /// CPU build: routers and variants without GPUs (`--agent-image`).
    pub cpu: String,
    /// CUDA build: variants on NVIDIA GPUs (`--agent-image-cuda`).
    pub cuda: String,
    /// Vulkan build: variants on AMD and Intel GPUs (`--agent-image-vulkan`).
    pub vulkan: String,
}

/// A GPU image left unset whose default cannot be derived from the CPU image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot derive the {build} agent image from {image:?}: it has no tag to append \
     {suffix:?} to{digest}; set {flag} ({env})"
)]
pub struct ImageError {
    /// `CUDA` or `Vulkan`.
    pub build: &'static str,
    /// The CPU image.
    pub image: String,
    /// The suffix that would have been appended.
    pub suffix: &'static str,
    /// Extra words when the image is pinned by digest.
    pub digest: &'static str,
    /// The flag that sets the image.
    pub flag: &'static str,
    /// Its environment variable.
    pub env: &'static str,
}

impl AgentImages {
    /// `cpu`, and the GPU images given, each one left out derived from `cpu` by appending its
    /// backend's suffix to the tag (`ghcr.io/llamafleet/agent:0.1.0` →
    /// `ghcr.io/llamafleet/agent:0.1.0-cuda13` and `…:0.1.0-vulkan`), as the images are
    /// published. An untagged or digest-pinned `cpu` has no such sibling: the GPU images must
    /// then be given.
    pub fn new(cpu: &str, cuda: Option<&str>, vulkan: Option<&str>) -> Result<Self, ImageError> {
        let derive = |given: Option<&str>, build, suffix, flag, env| match given {
            Some(image) => Ok(image.to_string()),
            None => with_tag_suffix(cpu, suffix).ok_or_else(|| ImageError {
                build,
                image: cpu.to_string(),
                suffix,
                digest: if cpu.contains('@') {
                    " (a digest names one image)"
                } else {
                    ""
                },
                flag,
                env,
            }),
        };
        Ok(Self {
            cpu: cpu.to_string(),
            cuda: derive(
                cuda,
                "CUDA",
                CUDA_TAG_SUFFIX,
                "--agent-image-cuda",
                "LLAMAFLEET_AGENT_IMAGE_CUDA",
            )?,
            vulkan: derive(
                vulkan,
                "Vulkan",
                VULKAN_TAG_SUFFIX,
                "--agent-image-vulkan",
                "LLAMAFLEET_AGENT_IMAGE_VULKAN",
            )?,
        })
    }

    /// `cpu` with both GPU images derived from it ([`AgentImages::new`]).
    pub fn derived(cpu: &str) -> Result<Self, ImageError> {
        Self::new(cpu, None, None)
    }

    /// The image of `backend`.
    pub fn image(&self, backend: Backend) -> &str {
        match backend {
            Backend::Cpu => &self.cpu,
            Backend::Cuda => &self.cuda,
            Backend::Vulkan => &self.vulkan,
        }
    }
}

/// `image` with `suffix` appended to its tag; `None` without a tag or with a digest. A `:`
/// before the last `/` is a registry port, not a tag.
fn with_tag_suffix(image: &str, suffix: &str) -> Option<String> {
    if image.contains('@') {
        return None;
    }
    let name_start = image.rfind('/').map_or(0, |i| i + 1);
    let tag = image[name_start..].split_once(':')?.1;
    (!tag.is_empty()).then(|| format!("{image}{suffix}"))
}
