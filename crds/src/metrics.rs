//! Names of Prometheus series that cross crate boundaries: the agent exports them and the
//! operator builds objects that name them (the queue-depth HPA), so one rename changes both.

/// Requests a serving agent accepted that wait for a slot (gauge, per pod). The variant HPA of
/// `spec.autoscaling.targetQueueDepth` asks the custom metrics API for a Pods metric of this
/// very name, so a prometheus-adapter rule must expose the series under it unchanged
/// (docs/metrics.md).
pub const AGENT_QUEUE_DEPTH: &str = "llamafleet_agent_queue_depth";

/// Labels Prometheus Operator gives every series of a ServiceMonitor's targets. A series that
/// carries one of its own arrives renamed `exported_<label>` unless the endpoint honours
/// labels (the chart's tests hold the agent and operator series to that).
pub const PROMETHEUS_TARGET_LABELS: [&str; 7] = [
    "namespace",
    "service",
    "pod",
    "container",
    "endpoint",
    "job",
    "instance",
];
