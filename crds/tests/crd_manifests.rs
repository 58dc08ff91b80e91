//! The committed CRD YAML is what the Rust types generate, and the schema documents itself.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kube::CustomResourceExt;
use llamafleet_crds::{LlmDeployment, LlmDeploymentSpec, LlmModel, LlmModelSpec, crdgen};
use serde_json::Value;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let dir = &llamafleet_crds::testing::repo_root().join("crds");
    for (name, yaml) in crdgen::rendered().unwrap() {
        let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == yaml,
            "crds/{name} differs from the types: run `cargo run -p llamafleet-crds --bin crdgen`"
        );
    }
}

#[test]
fn crds_have_group_version_short_names_and_printer_columns() {
    let model = LlmModel::crd();
    let deploy = LlmDeployment::crd();
    for (crd, short, columns) in [
        (&model, "llm", vec!["Quantization", "Size", "Phase", "Age"]),
        (&deploy, "llmd", vec!["Variants", "Ready", "Rollout", "Age"]),
    ] {
        assert_eq!(crd.spec.group, "llamafleet.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.short_names.clone().unwrap(),
            vec![short.to_string()]
        );
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "status subresource"
        );
        let names: Vec<String> = version
            .additional_printer_columns
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, columns);
    }
}

/// `kubectl explain` prints these; a field without one is a field nobody can look up.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        if let Some(items) = schema.get("items") {
            undocumented(items, &format!("{path}[]"), out);
        }
        return;
    };
    for (name, prop) in props {
        let here = format!("{path}.{name}");
        let documented = prop
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty());
        if !documented {
            out.push(here.clone());
        }
        // Embedded Kubernetes types (resources, tolerations, conditions) carry upstream docs.
        undocumented(prop, &here, out);
    }
}

#[test]
fn every_spec_and_status_field_has_a_description() {
    for crd in [LlmModel::crd(), LlmDeployment::crd()] {
        let schema = llamafleet_crds::testing::open_api_schema(&crd);
        let mut missing = Vec::new();
        for top in ["spec", "status"] {
            undocumented(&schema["properties"][top], top, &mut missing);
        }
        assert_eq!(missing, Vec::<String>::new(), "{}", crd.spec.names.kind);
    }
}

fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(contains_null),
        Value::Object(o) => o.values().any(contains_null),
        _ => false,
    }
}

#[test]
fn unset_optional_fields_are_not_serialized() {
    // Server-side apply would take ownership of every null we send.
    let model: LlmModelSpec =
        serde_json::from_value(serde_json::json!({"source": {"url": "https://x.example/m.gguf"}}))
            .unwrap();
    let deploy: LlmDeploymentSpec = serde_json::from_value(
        serde_json::json!({"variants": [{"name": "main", "model": "m", "weight": 100}]}),
    )
    .unwrap();
    let model_json = serde_json::to_value(&model).unwrap();
    let deploy_json = serde_json::to_value(&deploy).unwrap();
    assert!(!contains_null(&model_json), "{model_json}");
    assert!(!contains_null(&deploy_json), "{deploy_json}");
    assert_eq!(
        deploy_json,
        serde_json::json!({"variants": [{"name": "main", "model": "m", "weight": 100}]})
    );
    let status = serde_json::to_value(llamafleet_crds::LlmDeploymentStatus::default()).unwrap();
    assert_eq!(status, serde_json::json!({}));
}

/// The generated CRDs pass the Kubernetes OpenAPI schema of `apiextensions.k8s.io/v1`
/// (strict: no unknown fields), checked by the PyPI tool `kubernetes-validate`.
#[test]
fn crd_yaml_passes_kubernetes_validate() {
    let dir = &llamafleet_crds::testing::repo_root().join("crds");
    let files: Vec<_> = crdgen::rendered()
        .unwrap()
        .into_iter()
        .map(|(n, _)| dir.join(n))
        .collect();
    let Some(report) = llamafleet_crds::testing::kubernetes_validate(&[], &files) else {
        return;
    };
    let passed = report
        .matches("passed for resource customresourcedefinition")
        .count();
    assert_eq!(passed, 2, "{report}");
}
