//! GPU metrics through NVML, sampled when `/metrics` is scraped (never on the request path).
//!
//! NVML is loaded at run time (`libnvidia-ml.so`, shipped with the NVIDIA driver), so the
//! agent builds and runs without it: on a machine with no GPU or no driver the collector is
//! simply not registered and `/metrics` has no GPU series.

use std::sync::Mutex;

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts};

/// Labels of every GPU series: NVML index, stable UUID, product name.
pub const LABELS: &[&str] = &["gpu", "uuid", "name"];
/// Names of the GPU series, public so that checks of the chart's dashboard and alerts know
/// them on machines without a GPU (where the collector does not exist).
pub const FAMILIES: [&str; 4] = [UTILIZATION, MEMORY_USED, MEMORY_TOTAL, TEMPERATURE];
const UTILIZATION: &str = "llamafleet_agent_gpu_utilization_ratio";
const MEMORY_USED: &str = "llamafleet_agent_gpu_memory_used_bytes";
const MEMORY_TOTAL: &str = "llamafleet_agent_gpu_memory_total_bytes";
const TEMPERATURE: &str = "llamafleet_agent_gpu_temperature_celsius";

/// Per-GPU utilisation, memory and temperature, read from NVML on each scrape.
pub struct GpuCollector {
    nvml: Nvml,
    utilization: GaugeVec,
    memory_used: GaugeVec,
    memory_total: GaugeVec,
    temperature: GaugeVec,
    /// Scrapes are serialised: one NVML sweep at a time, and the gauges are reset and
    /// refilled as a unit so a GPU that vanished does not linger.
    sweep: Mutex<()>,
}

impl std::fmt::Debug for GpuCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCollector").finish_non_exhaustive()
    }
}

fn gauge(name: &str, help: &str) -> prometheus::Result<GaugeVec> {
    GaugeVec::new(Opts::new(name, help), LABELS)
}

impl GpuCollector {
    /// The collector, or `None` (logged at debug) when NVML cannot be initialised: no NVIDIA
    /// driver, no GPU, or no permission. Never an error: GPU metrics are optional.
    pub fn init() -> Option<Self> {
        let nvml = match Nvml::init() {
            Ok(nvml) => nvml,
            Err(e) => {
                tracing::debug!(error = %e, "NVML unavailable: no GPU metrics");
                return None;
            }
        };
        match Self::with_nvml(nvml) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "GPU metrics disabled");
                None
            }
        }
    }

    fn with_nvml(nvml: Nvml) -> prometheus::Result<Self> {
        Ok(GpuCollector {
            nvml,
            utilization: gauge(
                UTILIZATION,
                "Fraction of the last NVML sample period in which a kernel ran on the GPU",
            )?,
            memory_used: gauge(MEMORY_USED, "GPU memory allocated")?,
            memory_total: gauge(MEMORY_TOTAL, "GPU memory installed")?,
            temperature: gauge(TEMPERATURE, "GPU die temperature")?,
            sweep: Mutex::new(()),
        })
    }

    fn gauges(&self) -> [&GaugeVec; 4] {
        [
            &self.utilization,
            &self.memory_used,
            &self.memory_total,
            &self.temperature,
        ]
    }

    /// Reads every device; a reading NVML refuses (some boards lack a sensor) is left out
    /// rather than reported as zero.
    fn sample(&self) {
        for g in self.gauges() {
            g.reset();
        }
        let count = match self.nvml.device_count() {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "NVML device count failed");
                return;
            }
        };
        for index in 0..count {
            let Ok(device) = self.nvml.device_by_index(index) else {
                continue;
            };
            let index = index.to_string();
            let uuid = device.uuid().unwrap_or_default();
            let name = device.name().unwrap_or_default();
            let labels = [index.as_str(), uuid.as_str(), name.as_str()];
            if let Ok(u) = device.utilization_rates() {
                let ratio = f64::from(u.gpu) / 100.0;
                self.utilization.with_label_values(&labels).set(ratio);
            }
            if let Ok(m) = device.memory_info() {
                self.memory_used
                    .with_label_values(&labels)
                    .set(m.used as f64);
                self.memory_total
                    .with_label_values(&labels)
                    .set(m.total as f64);
            }
            if let Ok(t) = device.temperature(TemperatureSensor::Gpu) {
                self.temperature
                    .with_label_values(&labels)
                    .set(f64::from(t));
            }
        }
    }
}

impl Collector for GpuCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauges().into_iter().flat_map(|g| g.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _sweep = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
        self.sample();
        self.gauges()
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}
