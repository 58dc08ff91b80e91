//! `docs/configuration.md` is what the CRD schema renders, and it covers every field.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_crds::{crdgen, reference};
use serde_json::Value;

fn committed() -> String {
    let path = llamafleet_crds::testing::repo_root().join(reference::PATH);
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn committed_reference_matches_the_crd_schema() {
    assert!(
        committed() == reference::markdown(),
        "{} differs from the CRD schema: run `cargo run -p llamafleet-crds --bin crdgen`",
        reference::PATH
    );
}

/// Every property path of a schema, `[]` marking list items.
fn paths(schema: &Value, path: &str, out: &mut Vec<String>) {
    let node = schema
        .get("items")
        .filter(|i| i.get("properties").is_some());
    let (node, path) = match node {
        Some(items) => (items, format!("{path}[]")),
        None => (schema, path.to_owned()),
    };
    for (name, prop) in node
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let here = format!("{path}.{name}");
        out.push(here.clone());
        paths(prop, &here, out);
    }
}

#[test]
fn every_field_has_a_row_with_its_bounds() {
    let docs = reference::markdown();
    let mut all = Vec::new();
    for crd in crdgen::crds() {
        let schema = crd.spec.versions[0].schema.clone().unwrap();
        let schema = serde_json::to_value(schema.open_api_v3_schema.unwrap()).unwrap();
        for top in ["spec", "status"] {
            paths(&schema["properties"][top], top, &mut all);
        }
    }
    assert!(all.len() > 150, "{}", all.len());
    for path in &all {
        assert!(docs.contains(&format!("| `{path}` |")), "no row for {path}");
    }
    // Spot checks that the columns carry what the schema says.
    let row = |path: &str| {
        docs.lines()
            .find(|l| l.starts_with(&format!("| `{path}` |")))
            .unwrap()
            .to_owned()
    };
    let weight = row("spec.variants[].weight");
    assert!(weight.contains("| integer (int32) | yes |"), "{weight}");
    assert!(weight.contains("0–100"), "{weight}");
    let variants = row("spec.variants");
    assert!(variants.contains("items 1–4"), "{variants}");
    let policy = row("spec.update.policy");
    assert!(policy.contains("`\"Disabled\"`"), "{policy}");
    let steps = row("spec.rollout.steps");
    assert!(steps.contains("each item: "), "{steps}");
    // Both kinds have a `spec` row; the LlmDeployment's carries the weight rule.
    assert!(
        docs.lines()
            .any(|l| l.starts_with("| `spec` |")
                && l.contains("CEL: variant weights must sum to 100"))
    );
}
