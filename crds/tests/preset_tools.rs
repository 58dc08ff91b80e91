//! A preset's tool arguments are checked by the Rust twin alone: whether the grammar can
//! enforce a JSON schema is beyond OpenAPI and CEL, so the API server admits what the
//! operator then refuses in the status (the agent would refuse it at start).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use kube::CustomResourceExt;
use llamafleet_crds::LlmDeployment;
use serde_json::{Value, json};

fn deployment(tools: Value) -> Value {
    json!({
        "apiVersion": "llamafleet.dev/v1alpha1",
        "kind": "LlmDeployment",
        "metadata": {"name": "d"},
        "spec": {
            "variants": [{"name": "main", "model": "m", "weight": 100}],
            "presets": [{"name": "agent", "toolChoice": "required", "tools": tools}],
        },
    })
}

fn schema_accepts(doc: &Value) -> bool {
    let schema = llamafleet_crds::testing::open_api_schema(&LlmDeployment::crd());
    jsonschema::draft4::new(&schema).unwrap().is_valid(doc)
        && kube::core::cel::Validator::new()
            .validate(&schema, doc, None)
            .is_ok()
}

fn rust_findings(doc: &Value) -> Vec<(String, String)> {
    let d: LlmDeployment = serde_json::from_value(doc.clone()).unwrap();
    match d.spec.validate() {
        Ok(()) => vec![],
        Err(e) => e.0.into_iter().map(|f| (f.field, f.message)).collect(),
    }
}

#[test]
fn an_enforceable_tool_passes_both_twins() {
    let doc = deployment(json!([{
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }]));
    assert!(schema_accepts(&doc));
    assert_eq!(rust_findings(&doc), vec![]);
}

#[test]
fn a_tool_schema_the_grammar_cannot_enforce_is_refused_by_name() {
    let doc = deployment(json!([
        {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}}},
        {"name": "g", "parameters": {"type": "string"}},
    ]));
    assert!(schema_accepts(&doc), "the API server cannot know");
    let findings = rust_findings(&doc);
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert_eq!(findings[0].0, "spec.presets[0].tools[0].parameters");
    assert!(
        findings[0].1.contains("#/properties/n") && findings[0].1.contains("multipleOf"),
        "{findings:?}"
    );
    assert_eq!(findings[1].0, "spec.presets[0].tools[1].parameters");
    assert_eq!(findings[1].1, "the arguments must be an object");
}
