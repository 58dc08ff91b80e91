//! Pieces shared by serve and route pods.

use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction, Probe, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::names::{AGENT_PORT, PORT_NAME};

/// The agent's one port, named `http`.
pub(crate) fn container_port() -> ContainerPort {
    ContainerPort {
        name: Some(PORT_NAME.into()),
        container_port: AGENT_PORT,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

/// A Service port named `http` to the pods' `http` port.
pub(crate) fn service_port(port: i32) -> ServicePort {
    ServicePort {
        name: Some(PORT_NAME.into()),
        port,
        target_port: Some(IntOrString::String(PORT_NAME.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// An HTTP GET probe on the `http` port.
pub(crate) fn http_probe(path: &str, initial_delay: i32, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(PORT_NAME.into()),
            ..HTTPGetAction::default()
        }),
        // The API server drops a zero here (omitempty); sending it would make every later
        // comparison with the live object differ and re-apply the Deployment for nothing.
        initial_delay_seconds: (initial_delay != 0).then_some(initial_delay),
        period_seconds: Some(period),
        timeout_seconds: Some(PROBE_TIMEOUT_SECONDS),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// Probe timeout: a busy replica answers health checks from its own task, so 5s is ample.
const PROBE_TIMEOUT_SECONDS: i32 = 5;
