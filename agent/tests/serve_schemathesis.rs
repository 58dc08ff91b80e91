//! schemathesis (property-based API testing from `/openapi.json`) against a real `serve`:
//! every documented operation, valid and invalid inputs; no response may be a 5xx, and every
//! answer whose schema is published must validate against it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use std::process::Command;

use serde_json::Value;
use serve_support::process::{KEY, spawn_server, tool_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_in_any_documented_operation() {
    if !tool_available(
        Command::new("schemathesis").arg("--version"),
        "schemathesis",
        "bash scripts/setup.sh test",
    ) {
        return;
    }
    // A tiny context bounds every generation the fuzzer asks for (prompt + max_tokens must
    // fit, or the answer is a 400), which keeps the run short on CPU.
    let Some(server) = spawn_server(Some(KEY), &["--ctx", "32"]).await else {
        return;
    };
    let schema = format!("{}/openapi.json", server.base);
    let document: Value = serde_json::from_str(&server.text("/openapi.json").await).expect("json");
    let operations: usize = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, serde_json::Map::len))
        .sum();
    assert!(operations >= 16, "{document}");
    let report = tempfile::tempdir().expect("tempdir");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .args(["run", &schema, "--checks"])
            .arg("not_a_server_error,response_schema_conformance")
            .args(["--header", &format!("Authorization: Bearer {KEY}")])
            .args(["--phases", "coverage,fuzzing"])
            .args([
                "--max-examples",
                "5",
                "--workers",
                "2",
                "--request-timeout",
                "60",
            ])
            .args(["--generation-database", "none", "--no-color"])
            .arg("--report-dir")
            .arg(report.path())
            // schemathesis keeps a cache folder in its working directory.
            .current_dir(report.path())
            .output()
    })
    .await
    .expect("join")
    .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    // Guard against a vacuous pass: every documented operation was exercised.
    assert!(
        stdout.contains(&format!("Tested: {operations}")),
        "{stdout}"
    );
}
