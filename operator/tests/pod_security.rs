//! Every pod the operator builds is admitted in a namespace that enforces Pod Security
//! `restricted` (checked with the profile's rules in `support/pod_security.rs`), runs as the
//! agent images' user, and keeps its model cache where that user can write: the node cache's
//! claim by default. Pure validate + build, no client.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use k8s_openapi::api::core::v1::{Container, HostPathVolumeSource, PodSpec, Volume};
use llamafleet_crds::CacheSpec;
use llamafleet_operator::build::gpu::AgentImages;
use llamafleet_operator::build::{self, BuildOptions, Children};
use llamafleet_operator::deployment::plan::Plan;
use llamafleet_operator::names::CACHE_DIR;
use pod_security::restricted_violations;
use pods::plan_of_examples;

#[path = "support/pod_security.rs"]
mod pod_security;
#[path = "support/pods.rs"]
mod pods;

const IMAGE: &str = "ghcr.io/llamafleet/agent:test";

/// Every good example, alone or with the file that defines its models: CPU and GPU variants
/// of each vendor, API keys, presets, a PVC cache, autoscaling.
const GOOD_CASES: [&[&str]; 8] = [
    &["quickstart.yaml"],
    &["migration/01-blue-only.yaml"],
    &["migration/02-green-10.yaml"],
    &["migration/03-green-50.yaml"],
    &["migration/04-green-100.yaml"],
    &["migration/05-blue-removed.yaml"],
    &["migration/02-green-10.yaml", "progressive.yaml"],
    &["gpu-vendors.yaml"],
];

fn build(plan: &Plan) -> Children {
    build::build(
        plan,
        &BuildOptions {
            images: AgentImages::derived(IMAGE).unwrap(),
            owner: None,
            cache_path: CACHE_DIR.into(),
        },
    )
}

/// `(Deployment name, pod spec)` of every Deployment built: the variants' and the router's.
fn pods(children: &Children) -> Vec<(String, PodSpec)> {
    let deployments = children
        .variants
        .iter()
        .map(|v| &v.deployment)
        .chain([&children.router]);
    deployments
        .map(|d| {
            let name = d.metadata.name.clone().unwrap();
            let pod = d.spec.clone().unwrap().template.spec.unwrap();
            (name, pod)
        })
        .collect()
}

fn containers(pod: &PodSpec) -> Vec<&Container> {
    pod.init_containers
        .iter()
        .flatten()
        .chain(&pod.containers)
        .collect()
}

#[test]
fn every_pod_the_operator_builds_is_admitted_under_restricted() {
    let mut checked = 0;
    for case in GOOD_CASES {
        for (name, pod) in pods(&build(&plan_of_examples(case))) {
            assert_eq!(
                restricted_violations(&pod),
                Vec::<String>::new(),
                "{case:?}: {name}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} pods");
}

#[test]
fn pods_run_as_the_image_user_with_a_read_only_image_pulled_once() {
    for case in GOOD_CASES {
        for (name, pod) in pods(&build(&plan_of_examples(case))) {
            let sc = pod.security_context.clone().unwrap_or_default();
            assert_eq!(
                sc.fs_group_change_policy.as_deref(),
                Some("OnRootMismatch"),
                "{name}: a large cache is not re-chowned at each start"
            );
            assert_eq!(
                (sc.run_as_user, sc.run_as_group, sc.fs_group),
                (Some(65532), Some(65532), Some(65532)),
                "{case:?}: {name}"
            );
            for c in containers(&pod) {
                let csc = c.security_context.clone().unwrap_or_default();
                assert_eq!(csc.read_only_root_filesystem, Some(true), "{name}");
                assert_eq!(
                    c.image_pull_policy.as_deref(),
                    Some("IfNotPresent"),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn the_default_variant_pod_keeps_models_on_the_node_cache_claim() {
    let c = build(&plan_of_examples(&["quickstart.yaml"]));
    let pod = c.variants[0]
        .deployment
        .spec
        .clone()
        .unwrap()
        .template
        .spec
        .unwrap();
    let cache = pod.volumes.clone().unwrap()[0].clone();
    assert_eq!(cache.name, "model-cache");
    assert_eq!(
        cache.persistent_volume_claim.unwrap().claim_name,
        "llamafleet-model-cache"
    );
    let mount = pod.containers[0].volume_mounts.clone().unwrap()[0].clone();
    assert_eq!(
        (
            mount.name.as_str(),
            mount.mount_path.as_str(),
            mount.read_only
        ),
        ("model-cache", CACHE_DIR, None)
    );
    // Nothing else of the pod is writable: the other volumes are ConfigMap keys.
    for v in &pod.volumes.unwrap()[1..] {
        assert!(v.config_map.is_some(), "{}", v.name);
    }
}

/// An explicit `spec.cache.hostPath` is the one pod the operator builds that `restricted`
/// refuses (a hostPath volume needs `privileged`, docs/install.md), and for that reason only.
#[test]
fn an_explicit_host_path_needs_privileged_and_nothing_else_does() {
    let mut plan = plan_of_examples(&["quickstart.yaml"]);
    plan.spec.cache = Some(CacheSpec {
        host_path: Some("/data/models".into()),
        ..CacheSpec::default()
    });
    let c = build(&plan);
    let (_, variant) = &pods(&c)[0];
    assert_eq!(
        restricted_violations(variant),
        ["volume model-cache: type hostPath is not allowed"]
    );
    let (_, router) = &pods(&c)[1];
    assert_eq!(restricted_violations(router), Vec::<String>::new());
}

/// A change that breaks one rule of the profile.
type Breaks = fn(&mut PodSpec);

/// The checker refuses what the profile refuses: a pod as the operator built it before (no
/// security context, the node cache as a hostPath), and each rule on its own.
#[test]
fn the_checker_refuses_what_restricted_refuses() {
    let c = build(&plan_of_examples(&["quickstart.yaml"]));
    let admitted = pods(&c)[0].1.clone();
    let mut old = admitted.clone();
    old.security_context = None;
    old.containers[0].security_context = None;
    old.volumes.as_mut().unwrap()[0] = Volume {
        name: "model-cache".into(),
        host_path: Some(HostPathVolumeSource {
            path: CACHE_DIR.into(),
            type_: Some("DirectoryOrCreate".into()),
        }),
        ..Volume::default()
    };
    assert_eq!(
        restricted_violations(&old),
        [
            "volume model-cache: type hostPath is not allowed",
            "spec.containers[agent].securityContext.allowPrivilegeEscalation must be false",
            "spec.containers[agent]: runAsNonRoot must be true (on the pod or the container)",
            "spec.containers[agent]: seccompProfile must be RuntimeDefault or Localhost (on the \
             pod or the container)",
            "spec.containers[agent].securityContext.capabilities must drop ALL",
        ]
    );
    let broken: [(&str, Breaks); 7] = [
        ("hostNetwork", |p| p.host_network = Some(true)),
        ("hostPID", |p| p.host_pid = Some(true)),
        ("runAsUser: 0", |p| {
            p.security_context.as_mut().unwrap().run_as_user = Some(0);
        }),
        ("privileged", |p| {
            let sc = p.containers[0].security_context.as_mut().unwrap();
            sc.privileged = Some(true);
        }),
        ("capabilities.add: SYS_ADMIN", |p| {
            let sc = p.containers[0].security_context.as_mut().unwrap();
            sc.capabilities.as_mut().unwrap().add = Some(vec!["SYS_ADMIN".into()]);
        }),
        ("hostPort", |p| {
            p.containers[0].ports.as_mut().unwrap()[0].host_port = Some(8080);
        }),
        ("seccompProfile: Unconfined", |p| {
            let sc = p.security_context.as_mut().unwrap();
            sc.seccomp_profile.as_mut().unwrap().type_ = "Unconfined".into();
        }),
    ];
    for (rule, breaks) in broken {
        let mut pod = admitted.clone();
        breaks(&mut pod);
        let found = restricted_violations(&pod);
        assert!(
            found.len() == 1 && found[0].contains(rule),
            "{rule}: {found:?}"
        );
    }
    // Adding NET_BIND_SERVICE, the one capability `restricted` allows, is admitted.
    let mut pod = admitted;
    let sc = pod.containers[0].security_context.as_mut().unwrap();
    sc.capabilities.as_mut().unwrap().add = Some(vec!["NET_BIND_SERVICE".into()]);
    assert_eq!(restricted_violations(&pod), Vec::<String>::new());
}
