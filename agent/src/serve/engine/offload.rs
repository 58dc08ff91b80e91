//! GPU offload: which devices llama.cpp can offload to, how many layers `--gpu-layers auto`
//! puts there (llama.cpp's own fit to the devices' free memory, as llama-server does), and how
//! much device memory the engine took.

use std::ffi::CString;
use std::pin::Pin;
use std::sync::Mutex;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::{LlamaBackendDeviceType, list_llama_ggml_backend_devices};
use serde::Serialize;

use super::EngineError;
use super::load::EngineConfig;

/// Device memory `auto` leaves free on each GPU (llama-server's default `--fit-target`): the
/// driver, CUDA graphs and other processes need some, and a fit to the last byte fails later.
const FIT_MARGIN_BYTES: usize = 1 << 30;

/// llama.cpp's fit routes its logging through a process-global logger: one fit at a time.
static FIT: Mutex<()> = Mutex::new(());

/// A GPU that llama.cpp offloads to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GpuDevice {
    /// ggml's device name, e.g. `CUDA0` or `Vulkan0`.
    pub name: String,
    /// The product, e.g. `NVIDIA H200`.
    pub description: String,
    /// The ggml backend, e.g. `CUDA` or `Vulkan`.
    pub backend: String,
    /// Memory the device has.
    pub memory_total_bytes: u64,
    /// Memory that was free when the engine started loading.
    pub memory_free_bytes: u64,
}

impl GpuDevice {
    /// Whether the device reports the use of its memory: one that does not says all of it is
    /// free whatever is allocated (ggml-vulkan on a driver without `VK_EXT_memory_budget`, such
    /// as Mesa's software GPU, lavapipe).
    pub fn reports_memory_use(&self) -> bool {
        self.memory_free_bytes < self.memory_total_bytes
    }
}

/// The GPUs of the compiled-in backends, in ggml's order (CPU devices left out). Empty on a
/// CPU build or a machine without a usable GPU.
pub fn gpu_devices() -> Vec<GpuDevice> {
    list_llama_ggml_backend_devices()
        .into_iter()
        .filter(|d| {
            matches!(
                d.device_type,
                LlamaBackendDeviceType::Gpu | LlamaBackendDeviceType::IntegratedGpu
            )
        })
        .map(|d| GpuDevice {
            name: d.name,
            description: d.description,
            backend: d.backend,
            memory_total_bytes: d.memory_total as u64,
            memory_free_bytes: d.memory_free as u64,
        })
        .collect()
}

/// Device memory taken on `devices` since they were listed (before loading): what the model,
/// its KV cache and compute buffers occupy, read from the devices rather than estimated.
/// `None` when one of them reports no use of its memory ([`GpuDevice::reports_memory_use`]):
/// there is nothing to read.
pub fn memory_taken(devices: &[GpuDevice]) -> Option<u64> {
    if !devices.iter().all(GpuDevice::reports_memory_use) {
        return None;
    }
    let now = gpu_devices();
    Some(
        devices
            .iter()
            .filter_map(|d| {
                let after = now.iter().find(|n| n.name == d.name)?;
                Some(d.memory_free_bytes.saturating_sub(after.memory_free_bytes))
            })
            .sum(),
    )
}

/// Sets `params` to the layers (and tensor split) that fit the GPUs' free memory with the
/// context the engine will create, and returns the layer count chosen. A model too big for
/// the devices gets as many layers as fit; the rest stays on the CPU.
pub fn fit_layers(
    mut params: Pin<&mut LlamaModelParams>,
    config: &EngineConfig,
    mut cparams: LlamaContextParams,
) -> Result<u32, EngineError> {
    let path = CString::new(config.model_path.as_os_str().as_encoded_bytes())
        .map_err(|_| EngineError::Internal("model path contains a NUL byte".into()))?;
    let n_ctx = cparams.n_ctx().map_or(0, |n| n.get());
    let mut margins = vec![FIT_MARGIN_BYTES; llama_cpp_2::max_devices()];
    let _one_at_a_time = FIT.lock().unwrap_or_else(|e| e.into_inner());
    params
        .as_mut()
        .fit_params(
            &path,
            &mut cparams,
            &mut margins,
            n_ctx,
            // Below WARN, the fit's progress lines go to the debug log.
            llama_cpp_sys_2::GGML_LOG_LEVEL_WARN,
        )
        .map_err(|e| {
            EngineError::Internal(format!(
                "fitting the model and a {n_ctx}-token context to the GPUs' free memory: {e}"
            ))
        })?;
    // The fit leaves llama.cpp's default (-1: every layer) when everything fits.
    Ok(u32::try_from(params.n_gpu_layers()).unwrap_or(u32::MAX))
}
