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
fn quickstart_renders_six_objects_without_owner_references() {
    let out = render_files(&["quickstart.yaml"]).unwrap();
    let docs = docs(&out);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "Deployment",
            "Service"
        ]
    );
    for d in &docs {
        assert!(d["metadata"].get("ownerReferences").is_none());
        assert_eq!(d["metadata"]["namespace"], "default");
    }
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
