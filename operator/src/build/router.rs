//! Router objects: the Deployment running `llamafleet-agent route` and the stable Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretVolumeSource, Service, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::pod::{
    IMAGE_PULL_POLICY, container_port, container_security_context, http_probe,
    pod_security_context, service_port,
};
use super::{BuildOptions, meta};
use crate::deployment::plan::Plan;
use crate::names::{self, KEYS_DIR, ROUTING_DIR, ROUTING_KEY, STABLE_SERVICE_PORT};

/// Router replicas: two, so one node going away never takes the endpoint down.
pub const ROUTER_REPLICAS: i32 = 2;
/// The router only proxies; these cover thousands of concurrent streams.
const ROUTER_CPU_REQUEST: &str = "100m";
const ROUTER_MEMORY_REQUEST: &str = "64Mi";
const ROUTER_MEMORY_LIMIT: &str = "256Mi";
/// Router probes: it is ready within a second of starting.
const ROUTER_PROBE_PERIOD_SECONDS: i32 = 10;
const ROUTER_LIVENESS_INITIAL_DELAY_SECONDS: i32 = 5;
const ROUTER_FAILURE_THRESHOLD: i32 = 3;
/// Time to finish in-flight proxied streams on SIGTERM.
const ROUTER_TERMINATION_GRACE_SECONDS: i64 = 120;
/// Name of the routing-table volume.
pub const ROUTING_VOLUME: &str = "routing";
/// Name of the API-key volume.
pub const KEYS_VOLUME: &str = "api-keys";

/// `llamafleet-agent route` arguments.
pub fn route_args() -> Vec<String> {
    vec![
        "route".into(),
        "--config".into(),
        format!("{ROUTING_DIR}/{ROUTING_KEY}"),
    ]
}

fn router_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), Quantity(ROUTER_CPU_REQUEST.into())),
            ("memory".into(), Quantity(ROUTER_MEMORY_REQUEST.into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".into(),
            Quantity(ROUTER_MEMORY_LIMIT.into()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// The router Deployment.
pub fn deployment(plan: &Plan, opts: &BuildOptions) -> Deployment {
    let selector = names::router_selector(&plan.name);
    let mut volumes = vec![Volume {
        name: ROUTING_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::routing_config(&plan.name),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: ROUTING_VOLUME.into(),
        mount_path: ROUTING_DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }];
    let keys_secret = plan
        .spec
        .access
        .as_ref()
        .and_then(|a| a.api_keys_secret.clone());
    if let Some(secret_name) = keys_secret {
        volumes.push(Volume {
            name: KEYS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: KEYS_VOLUME.into(),
            mount_path: KEYS_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let container = Container {
        name: "router".into(),
        image: Some(opts.images.cpu.clone()),
        command: Some(vec!["llamafleet-agent".into()]),
        args: Some(route_args()),
        ports: Some(vec![container_port()]),
        readiness_probe: Some(http_probe(
            "/readyz",
            0,
            ROUTER_PROBE_PERIOD_SECONDS,
            ROUTER_FAILURE_THRESHOLD,
        )),
        liveness_probe: Some(http_probe(
            "/healthz",
            ROUTER_LIVENESS_INITIAL_DELAY_SECONDS,
            ROUTER_PROBE_PERIOD_SECONDS,
            ROUTER_FAILURE_THRESHOLD,
        )),
        resources: Some(router_resources()),
        image_pull_policy: Some(IMAGE_PULL_POLICY.into()),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    Deployment {
        metadata: meta(
            plan,
            names::router_deployment(&plan.name),
            names::object_labels(&selector),
            opts,
        ),
        spec: Some(DeploymentSpec {
            replicas: Some(ROUTER_REPLICAS),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::object_labels(&selector)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    // The token of the router's own account: it watches EndpointSlices and
                    // wakes sleeping variants, nothing else (`router_access.rs`).
                    service_account_name: Some(names::router_account(&plan.name)),
                    automount_service_account_token: Some(true),
                    security_context: Some(pod_security_context()),
                    termination_grace_period_seconds: Some(ROUTER_TERMINATION_GRACE_SECONDS),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The Service named after the LlmDeployment: port 80 to the routers' `http` port.
pub fn stable_service(plan: &Plan, opts: &BuildOptions) -> Service {
    let selector = names::router_selector(&plan.name);
    Service {
        metadata: meta(
            plan,
            plan.name.clone(),
            names::object_labels(&selector),
            opts,
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![service_port(STABLE_SERVICE_PORT)]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
