//! Every example under `manifests/examples/` is checked by both twins of the API's rules:
//! the generated CRD schema (OpenAPI keywords through a JSON-schema validator, CEL rules
//! through kube's client-side CEL evaluator) and the Rust `validate()`. Good examples pass
//! both; each file under `invalid/` fails both, at exactly the fields its
//! `llamafleet.dev/expect-invalid` annotation names and for the reasons it gives.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use llamafleet_crds::testing::{examples_dir, yaml_documents, yaml_files};
use llamafleet_crds::{LlmDeployment, LlmModel};
use serde_json::Value;

const EXPECT_ANNOTATION: &str = "llamafleet.dev/expect-invalid";

/// One broken rule as a layer reports it: field path (`spec.a[0].b`) and message.
type Finding = (String, String);

fn documents(path: &Path) -> Vec<Value> {
    yaml_documents(&std::fs::read_to_string(path).unwrap())
}

fn open_api_schema(kind: &str) -> Value {
    let crd = match kind {
        "LlmModel" => LlmModel::crd(),
        "LlmDeployment" => LlmDeployment::crd(),
        other => panic!("unexpected kind {other}"),
    };
    llamafleet_crds::testing::open_api_schema(&crd)
}

/// `/spec/variants/0/weight` → `spec.variants[0].weight`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').filter(|s| !s.is_empty()) {
        if seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// What the API server would say: OpenAPI keyword errors plus CEL rule failures.
fn schema_findings(doc: &Value) -> Vec<Finding> {
    let schema = open_api_schema(doc["kind"].as_str().unwrap());
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let mut found: Vec<Finding> = validator
        .iter_errors(doc)
        .map(|e| (dotted(&e.instance_path().to_string()), e.to_string()))
        .collect();
    if let Err(errors) = kube::core::cel::Validator::new().validate(&schema, doc, None) {
        found.extend(
            errors
                .into_vec()
                .into_iter()
                .map(|e| (e.field_path, e.message)),
        );
    }
    found
}

/// What the operator's Rust twin says.
fn rust_findings(doc: &Value) -> Vec<Finding> {
    let result = match doc["kind"].as_str().unwrap() {
        "LlmModel" => serde_json::from_value::<LlmModel>(doc.clone())
            .unwrap()
            .spec
            .validate(),
        _ => serde_json::from_value::<LlmDeployment>(doc.clone())
            .unwrap()
            .spec
            .validate(),
    };
    match result {
        Ok(()) => vec![],
        Err(e) => e.0.into_iter().map(|f| (f.field, f.message)).collect(),
    }
}

/// The annotation's `field: reason` lines.
fn expected(doc: &Value) -> BTreeMap<String, String> {
    let text = doc["metadata"]["annotations"][EXPECT_ANNOTATION]
        .as_str()
        .unwrap_or_default();
    text.lines()
        .map(|l| {
            let (field, reason) = l.split_once(": ").expect("`field: reason` lines");
            (field.trim().to_string(), reason.trim().to_string())
        })
        .collect()
}

fn fields(findings: &[Finding]) -> Vec<String> {
    let mut f: Vec<String> = findings.iter().map(|(f, _)| f.clone()).collect();
    f.sort();
    f.dedup();
    f
}

#[test]
fn good_examples_pass_schema_cel_and_rust_validation() {
    let files: Vec<PathBuf> = yaml_files(&examples_dir())
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "invalid"))
        .collect();
    assert!(
        files.len() >= 6,
        "quickstart, five migration steps and more: {files:?}"
    );
    for file in files {
        let docs = documents(&file);
        assert!(!docs.is_empty(), "{} has no documents", file.display());
        for doc in docs {
            let name = format!("{} {}", file.display(), doc["metadata"]["name"]);
            assert_eq!(schema_findings(&doc), vec![], "schema/CEL rejected {name}");
            assert_eq!(rust_findings(&doc), vec![], "validate() rejected {name}");
        }
    }
}

#[test]
fn each_invalid_example_fails_both_twins_for_its_own_reason() {
    let files = yaml_files(&examples_dir().join("invalid"));
    assert!(files.len() >= 20, "one file per rule, got {}", files.len());
    for file in files {
        let docs = documents(&file);
        assert_eq!(
            docs.len(),
            1,
            "{}: one object per invalid file",
            file.display()
        );
        let doc = &docs[0];
        let want = expected(doc);
        assert!(
            !want.is_empty(),
            "{} lacks {EXPECT_ANNOTATION}",
            file.display()
        );
        let want_fields: Vec<String> = want.keys().cloned().collect();

        let schema = schema_findings(doc);
        assert_eq!(
            fields(&schema),
            want_fields,
            "{}: schema/CEL {schema:?}",
            file.display()
        );
        for (field, message) in &schema {
            // CEL rules carry our own messages; OpenAPI keyword errors use the validator's words.
            let from_cel = doc_is_cel_message(message);
            if from_cel {
                assert!(
                    message.contains(&want[field]),
                    "{}: {message}",
                    file.display()
                );
            }
        }

        let rust = rust_findings(doc);
        assert_eq!(
            fields(&rust),
            want_fields,
            "{}: validate() {rust:?}",
            file.display()
        );
        for (field, message) in &rust {
            assert!(
                message.contains(&want[field]),
                "{}: {field}: {message}",
                file.display()
            );
        }
    }
}

/// Whether a message is one of the CEL messages we wrote (all of them live in `rules`).
fn doc_is_cel_message(message: &str) -> bool {
    llamafleet_crds::rules::CEL_MESSAGES
        .iter()
        .any(|m| message.contains(m))
}
