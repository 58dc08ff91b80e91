//! Reaching one pod directly: its IP and `http` container port. The operator asks pods, not
//! their Service, where every replica counts (each router's figures) or where a replica that
//! is not Ready has the news (an agent downloading, or failed): a Service routes to Ready
//! pods only.

use k8s_openapi::api::core::v1::Pod;

use crate::names::{AGENT_PORT, PORT_NAME};

/// `http://<pod IP>:<http port>` of a running pod.
pub fn of(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip = status.pod_ip.as_deref()?;
    let port = pod
        .spec
        .as_ref()
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(PORT_NAME))
        .map_or(AGENT_PORT, |p| p.container_port);
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    Some(format!("http://{host}:{port}"))
}
