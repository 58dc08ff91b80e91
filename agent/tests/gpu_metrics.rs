//! GPU metrics follow the machine: with an NVIDIA driver (`nvidia-smi -L` lists GPUs) every
//! GPU has utilisation, memory and temperature series; without one there are no GPU series
//! and building the metrics still succeeds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use llamafleet_agent::serve::gpu::{FAMILIES, GpuCollector};
use llamafleet_agent::serve::metrics::ServeMetrics;
use prometheus::Registry;
use serve_support::process::gpus_listed_by_nvidia_smi;

#[test]
fn gpu_metrics_exist_exactly_when_the_driver_lists_gpus() {
    let gpus = gpus_listed_by_nvidia_smi();
    let metrics = ServeMetrics::new().expect("metrics build with or without a GPU");
    let text = metrics.render();
    assert_eq!(
        metrics.has_gpu_metrics,
        gpus > 0,
        "nvidia-smi lists {gpus} GPUs"
    );
    if gpus == 0 {
        assert!(!text.contains("llamafleet_agent_gpu_"), "{text}");
        assert!(GpuCollector::init().is_none());
        return;
    }
    let registry = Registry::new();
    registry
        .register(Box::new(GpuCollector::init().expect("NVML")))
        .expect("register");
    let families = registry.gather();
    for name in FAMILIES {
        let family = families
            .iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(family.get_metric().len(), gpus, "{name}");
    }
    for family in &families {
        for m in family.get_metric() {
            let value = m.get_gauge().get_value();
            match family.name() {
                "llamafleet_agent_gpu_utilization_ratio" => assert!((0.0..=1.0).contains(&value)),
                "llamafleet_agent_gpu_memory_total_bytes" => assert!(value > 0.0),
                "llamafleet_agent_gpu_temperature_celsius" => assert!(value > 0.0 && value < 150.0),
                _ => assert!(value >= 0.0),
            }
        }
    }
    assert!(
        text.contains("llamafleet_agent_gpu_memory_total_bytes{gpu=\"0\""),
        "{text}"
    );
}
