//! Names of Prometheus series that cross crate boundaries: the agent exports them and the
//! operator builds objects that name them (the queue-depth HPA), so one rename changes both.

/// Requests a serving agent accepted that wait for a slot (gauge, per pod). The variant HPA of
/// `spec.autoscaling.targetQueueDepth` asks the custom metrics API for a Pods metric of this
/// very name, so a prometheus-adapter rule must expose the series under it unchanged
/// (docs/metrics.md).
pub const AGENT_QUEUE_DEPTH: &str = "llamafleet_agent_queue_depth";
