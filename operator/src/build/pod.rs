//! Pieces shared by serve and route pods: ports, probes, and the security settings that let
//! them run in a namespace that enforces Pod Security `restricted`.

use k8s_openapi::api::core::v1::{
    Capabilities, ContainerPort, HTTPGetAction, PodSecurityContext, Probe, SeccompProfile,
    SecurityContext, ServicePort,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::gpu::AGENT_USER;
use crate::names::{AGENT_PORT, PORT_NAME};

/// Every agent image is pinned by tag (or digest) and never rebuilt under the same name, so
/// a node that has it need not ask the registry again (and a registry outage cannot stop a
/// pod from restarting).
pub const IMAGE_PULL_POLICY: &str = "IfNotPresent";
/// Volume ownership is changed only when the volume's root does not already carry the pod's
/// group: a model cache of many GB is not re-chowned at every start.
const FS_GROUP_CHANGE_POLICY: &str = "OnRootMismatch";

/// Pod security of every pod the operator creates: the image's user and group by number
/// (Pod Security cannot check a user name, and Vulkan pods need the numbers: with
/// containerd's or CRI-O's `device_ownership_from_security_context` the runtime hands the
/// render node the device plugin mounts to the container's effective user and group, which
/// the kubelet takes from here), the same group owning volumes that support ownership (a
/// PVC cache becomes writable), and the runtime's default seccomp profile.
pub(crate) fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(AGENT_USER),
        run_as_group: Some(AGENT_USER),
        fs_group: Some(AGENT_USER),
        fs_group_change_policy: Some(FS_GROUP_CHANGE_POLICY.into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// Container security of every agent container: no capabilities, no way to gain privileges,
/// and a read-only image (the agent writes only to its cache volume).
pub(crate) fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

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
