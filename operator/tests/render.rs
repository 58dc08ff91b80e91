//! `render`: offline output for the examples, and its errors.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use llamafleet_crds::testing::kubernetes_validate;
use llamafleet_operator::names::CACHE_DIR;
use llamafleet_operator::render::{self, RenderError};

fn example(rel: &str) -> PathBuf {
    llamafleet_crds::testing::examples_dir().join(rel)
}

fn render_files(files: &[&str]) -> Result<String, RenderError> {
    let paths: Vec<PathBuf> = files.iter().map(|f| example(f)).collect();
    render::render(&render::read_inputs(&paths, "default")?, "img:1", CACHE_DIR)
}

fn docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

#[test]
fn quickstart_renders_the_node_cache_and_nine_objects_without_owner_references() {
    let out = render_files(&["quickstart.yaml"]).unwrap();
    let docs = docs(&out);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolume",
            "PersistentVolumeClaim",
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "Service"
        ]
    );
    // The node cache's volume (cluster-scoped) of the operator's --cache-path, reserved for
    // the namespace's claim.
    assert_eq!(docs[0]["metadata"]["name"], "llamafleet-cache-default");
    assert_eq!(docs[0]["spec"]["hostPath"]["path"], CACHE_DIR);
    assert_eq!(docs[1]["spec"]["volumeName"], "llamafleet-cache-default");
    for d in &docs {
        assert!(d["metadata"].get("ownerReferences").is_none());
        let namespace = d["metadata"].get("namespace");
        if d["kind"] == "PersistentVolume" {
            assert_eq!(namespace, None);
        } else {
            assert_eq!(namespace, Some(&"default".into()));
        }
    }
}

/// One node cache per namespace, none for a deployment with its own claim.
#[test]
fn the_node_cache_is_rendered_once_per_namespace_that_uses_it() {
    let mut inputs = render::read_inputs(&[example("quickstart.yaml")], "default").unwrap();
    let chat = inputs.deployments[0].clone();
    let renamed = |name: &str, ns: &str| {
        let mut d = chat.clone();
        d.metadata.name = Some(name.into());
        d.metadata.namespace = Some(ns.into());
        d
    };
    let mut own_claim = renamed("chat-own", "team-b");
    own_claim.spec.cache = Some(llamafleet_crds::CacheSpec {
        pvc: Some("models".into()),
        ..Default::default()
    });
    let model = inputs.models.values().next().unwrap().clone();
    let mut model_b = model.clone();
    model_b.metadata.namespace = Some("team-b".into());
    let key = ("team-b".to_string(), model_b.metadata.name.clone().unwrap());
    inputs.models.insert(key, model_b);
    inputs.deployments.extend([
        renamed("chat-2", "default"),
        own_claim,
        renamed("chat-b", "team-b"),
    ]);
    let out = render::render(&inputs, "img:1", CACHE_DIR).unwrap();
    let volumes: Vec<(String, String)> = docs(&out)
        .iter()
        .filter(|d| d["kind"] == "PersistentVolume")
        .map(|d| {
            let claim = &d["spec"]["claimRef"];
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                format!(
                    "{}/{}",
                    claim["namespace"].as_str().unwrap(),
                    claim["name"].as_str().unwrap()
                ),
            )
        })
        .collect();
    assert_eq!(
        volumes,
        [
            (
                "llamafleet-cache-default".to_string(),
                "default/llamafleet-model-cache".to_string()
            ),
            (
                "llamafleet-cache-team-b".to_string(),
                "team-b/llamafleet-model-cache".to_string()
            ),
        ]
    );
}

/// Every good example, alone or with the file that defines its models.
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

#[test]
fn every_good_example_renders() {
    for case in GOOD_CASES {
        assert!(!docs(&render_files(case).unwrap()).is_empty(), "{case:?}");
    }
    let out = render_files(&["migration/02-green-10.yaml", "progressive.yaml"]).unwrap();
    // Only the deployment of progressive.yaml and of 02 are rendered; models resolve across files.
    assert!(out.contains("name: assistant-progressive-candidate"));
    assert!(out.contains("kind: HorizontalPodAutoscaler"));
    // GPU images derive from the agent image given (`img:1`), per vendor.
    let out = render_files(&["gpu-vendors.yaml"]).unwrap();
    let images: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(
        images,
        ["img:1-cuda13", "img:1-vulkan", "img:1-vulkan", "img:1"]
    );
}

#[test]
fn unresolved_model_names_the_model_and_the_fix() {
    let err = render_files(&["progressive.yaml"]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("assistant-progressive"), "{msg}");
    assert!(msg.contains("\"saiga-7b\""), "{msg}");
    assert!(msg.contains("-f"), "{msg}");
}

#[test]
fn invalid_example_is_refused_with_the_field() {
    let err = render_files(&["invalid/deployment-too-many-variants.yaml"]);
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("spec.variants"), "{msg}");
}

/// Render output passes the Kubernetes OpenAPI schemas of the built-in kinds, strictly (no
/// unknown fields), as checked by the PyPI tool `kubernetes-validate`.
#[test]
fn rendered_objects_pass_kubernetes_validate() {
    let dir = tempfile::tempdir().unwrap();
    for (i, case) in GOOD_CASES.iter().enumerate() {
        let yaml = render_files(case).unwrap();
        let file = dir.path().join(format!("case-{i}.yaml"));
        std::fs::write(&file, &yaml).unwrap();
        // k8s-openapi's feature (v1_33) is the API level the builders target.
        let version = ["--kubernetes-version", "1.33.0"];
        let Some(report) = kubernetes_validate(&version, &[file]) else {
            return;
        };
        let passed = report.matches(" passed for resource ").count();
        assert_eq!(passed, docs(&yaml).len(), "{case:?}:\n{report}");
    }
}
