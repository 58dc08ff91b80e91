//! The CRDs against a real API server: they install, `kubectl explain` shows the field docs,
//! every good example is accepted and every invalid one is rejected with its own reason.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_crds::rules::CEL_MESSAGES;
use llamafleet_crds::testing::yaml_files;
use llamafleet_e2e::{cluster, repo_root};

#[test]
fn crds_install_and_explain_prints_field_docs() {
    let Some(c) = cluster() else { return };
    c.install_crds();
    let explain = c.kubectl_eventually(&["explain", "llmd.spec.rollout"]);
    assert!(explain.contains("Progressive"), "{explain}");
    for field in [
        "strategy", "steps", "interval", "analysis", "shadow", "paused",
    ] {
        assert!(explain.contains(field), "explain lacks {field}:\n{explain}");
    }
    let variants = c.kubectl_eventually(&["explain", "llmd.spec.variants"]);
    assert!(variants.contains("DNS-1123"), "{variants}");
    let short = c.kubectl_ok(&["api-resources", "--api-group=llamafleet.dev", "-o", "name"]);
    assert!(
        short.contains("llmmodels.llamafleet.dev")
            && short.contains("llmdeployments.llamafleet.dev")
    );
}

#[test]
fn good_examples_are_accepted_and_invalid_ones_rejected_for_their_own_reason() {
    let Some(c) = cluster() else { return };
    c.install_crds();
    let ns = c.namespace("e2e-crds");
    let examples = repo_root().join("manifests/examples");
    for file in yaml_files(&examples) {
        let path = file.to_str().unwrap();
        // Server-side dry run: the API server runs the schema and every CEL rule, stores nothing.
        let out = c.kubectl(&["apply", "-n", &ns.name, "--dry-run=server", "-f", path]);
        let invalid = file.components().any(|p| p.as_os_str() == "invalid");
        if !invalid {
            assert!(out.ok, "{path} rejected:\n{}", out.stderr);
            continue;
        }
        assert!(!out.ok, "{path} was accepted");
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
        let expect = doc["metadata"]["annotations"]["llamafleet.dev/expect-invalid"]
            .as_str()
            .unwrap();
        for line in expect.lines() {
            let (field, reason) = line.trim().split_once(": ").unwrap();
            assert!(
                out.stderr.contains(field),
                "{path}: no {field} in\n{}",
                out.stderr
            );
            // CEL rules carry our words; OpenAPI keyword errors carry the API server's.
            if CEL_MESSAGES.iter().any(|m| m.contains(reason)) {
                assert!(
                    out.stderr.contains(reason),
                    "{path}: no {reason:?} in\n{}",
                    out.stderr
                );
            }
        }
    }
}
