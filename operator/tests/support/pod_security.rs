//! The Pod Security Standards' `restricted` profile (which includes `baseline`), as the
//! API server's admission checks it, over the fields of a pod spec (`#[path]`-included: no
//! mock API). Written by hand because no Rust crate implements the profile; the rules follow
//! <https://kubernetes.io/docs/concepts/security/pod-security-standards/> (policy version
//! `latest`) for every field a `k8s-openapi` PodSpec carries.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext, Volume};

/// Volume types `restricted` admits.
const ALLOWED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];
/// The one capability `restricted` lets a container add.
const ADDABLE_CAPABILITY: &str = "NET_BIND_SERVICE";
/// SELinux types `baseline` admits.
const SELINUX_TYPES: [&str; 5] = [
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];
/// Sysctls `baseline` admits.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The type of a volume: its one source field, as YAML names it (`hostPath`, `secret`).
fn volume_type(v: &Volume) -> String {
    let value = serde_json::to_value(v).expect("a volume serializes");
    let object = value.as_object().expect("a volume is an object");
    let source = object.keys().find(|k| *k != "name");
    source.cloned().unwrap_or_default()
}

/// Everything in `pod` that `restricted` refuses, one line each (empty: admitted).
pub fn restricted_violations(pod: &PodSpec) -> Vec<String> {
    let mut out = Vec::new();
    let psc = pod.security_context.clone().unwrap_or_default();
    for (field, on) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        if on == Some(true) {
            out.push(format!("spec.{field}: host namespaces are forbidden"));
        }
    }
    for v in pod.volumes.iter().flatten() {
        let t = volume_type(v);
        if !ALLOWED_VOLUMES.contains(&t.as_str()) {
            out.push(format!("volume {}: type {t} is not allowed", v.name));
        }
    }
    if psc
        .windows_options
        .as_ref()
        .is_some_and(|w| w.host_process == Some(true))
    {
        out.push("spec.securityContext.windowsOptions.hostProcess".into());
    }
    if let Some(se) = &psc.se_linux_options {
        selinux(&mut out, "spec.securityContext", se);
    }
    if psc
        .app_armor_profile
        .as_ref()
        .is_some_and(|a| a.type_ == "Unconfined")
    {
        out.push("spec.securityContext.appArmorProfile: Unconfined".into());
    }
    for s in psc.sysctls.iter().flatten() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            out.push(format!(
                "spec.securityContext.sysctls: {} is not safe",
                s.name
            ));
        }
    }
    if psc.run_as_user == Some(0) {
        out.push("spec.securityContext.runAsUser: 0".into());
    }
    let pod_non_root = psc.run_as_non_root == Some(true);
    if psc.run_as_non_root == Some(false) {
        out.push("spec.securityContext.runAsNonRoot: false".into());
    }
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|s| s.type_.as_str());
    if let Some(t) = pod_seccomp.filter(|t| *t != "RuntimeDefault" && *t != "Localhost") {
        out.push(format!("spec.securityContext.seccompProfile: {t}"));
    }
    let containers = pod
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c))
        .chain(pod.containers.iter().map(|c| ("containers", c)));
    for (list, c) in containers {
        let at = format!("spec.{list}[{}]", c.name);
        container(&mut out, &at, c, pod_non_root, pod_seccomp.is_some());
    }
    for c in pod.ephemeral_containers.iter().flatten() {
        // Ephemeral containers carry the same fields; checked as containers.
        let as_container: Container =
            serde_json::from_value(serde_json::to_value(c).unwrap()).unwrap();
        let at = format!("spec.ephemeralContainers[{}]", c.name);
        container(
            &mut out,
            &at,
            &as_container,
            pod_non_root,
            pod_seccomp.is_some(),
        );
    }
    out
}

fn selinux(out: &mut Vec<String>, at: &str, se: &k8s_openapi::api::core::v1::SELinuxOptions) {
    let t = se.type_.as_deref().unwrap_or_default();
    if !SELINUX_TYPES.contains(&t) {
        out.push(format!("{at}.seLinuxOptions.type: {t}"));
    }
    if se.user.is_some() || se.role.is_some() {
        out.push(format!("{at}.seLinuxOptions: user and role must be unset"));
    }
}

fn container(
    out: &mut Vec<String>,
    at: &str,
    c: &Container,
    pod_non_root: bool,
    pod_seccomp: bool,
) {
    for p in c.ports.iter().flatten() {
        if p.host_port.is_some_and(|h| h != 0) {
            out.push(format!("{at}.ports: hostPort {:?}", p.host_port));
        }
    }
    let sc: SecurityContext = c.security_context.clone().unwrap_or_default();
    if sc.privileged == Some(true) {
        out.push(format!("{at}.securityContext.privileged"));
    }
    if sc
        .windows_options
        .as_ref()
        .is_some_and(|w| w.host_process == Some(true))
    {
        out.push(format!("{at}.securityContext.windowsOptions.hostProcess"));
    }
    if let Some(se) = &sc.se_linux_options {
        selinux(out, &format!("{at}.securityContext"), se);
    }
    if sc
        .app_armor_profile
        .as_ref()
        .is_some_and(|a| a.type_ == "Unconfined")
    {
        out.push(format!("{at}.securityContext.appArmorProfile: Unconfined"));
    }
    if sc.proc_mount.as_deref().is_some_and(|m| m != "Default") {
        out.push(format!(
            "{at}.securityContext.procMount: {:?}",
            sc.proc_mount
        ));
    }
    if sc.allow_privilege_escalation != Some(false) {
        out.push(format!(
            "{at}.securityContext.allowPrivilegeEscalation must be false"
        ));
    }
    match sc.run_as_non_root {
        Some(false) => out.push(format!("{at}.securityContext.runAsNonRoot: false")),
        None if !pod_non_root => out.push(format!(
            "{at}: runAsNonRoot must be true (on the pod or the container)"
        )),
        _ => {}
    }
    if sc.run_as_user == Some(0) {
        out.push(format!("{at}.securityContext.runAsUser: 0"));
    }
    match sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()) {
        Some("RuntimeDefault" | "Localhost") => {}
        Some(other) => out.push(format!("{at}.securityContext.seccompProfile: {other}")),
        None if !pod_seccomp => out.push(format!(
            "{at}: seccompProfile must be RuntimeDefault or Localhost (on the pod or the container)"
        )),
        None => {}
    }
    let caps = sc.capabilities.unwrap_or_default();
    if !caps.drop.iter().flatten().any(|d| d == "ALL") {
        out.push(format!("{at}.securityContext.capabilities must drop ALL"));
    }
    for add in caps.add.iter().flatten() {
        if add != ADDABLE_CAPABILITY {
            out.push(format!("{at}.securityContext.capabilities.add: {add}"));
        }
    }
}
