//! Helpers the test suites of every crate share (feature `testing`): the example files, YAML
//! documents, and the `kubernetes-validate` tool. Panics are the point here: they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Root of this repository, from the running test's crate directory (every crate sits one
/// level below the root). Read at run time, not compiled in: Cargo reuses test binaries when a
/// checkout moves (its fingerprints are relative to the workspace), and a compiled-in path
/// would point at the old checkout's files.
pub fn repo_root() -> PathBuf {
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    crate_dir.join("..")
}

/// `manifests/examples/` of this repository.
pub fn examples_dir() -> PathBuf {
    repo_root().join("manifests/examples")
}

/// Every `*.yaml` below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The non-empty documents of a multi-document YAML text, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let yaml: serde_norway::Value = serde::Deserialize::deserialize(doc).unwrap();
            serde_json::to_value(yaml).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Runs `kubernetes-validate --strict EXTRA... FILES...` and returns its report after
/// asserting it passed; `None` (after saying so) when the tool is not installed, which fails
/// instead under CI so the check can never pass by not running.
pub fn kubernetes_validate(extra: &[&str], files: &[PathBuf]) -> Option<String> {
    const TOOL: &str = "kubernetes-validate";
    const INSTALL: &str = "pip install -r scripts/requirements-test.txt";
    if Command::new(TOOL).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{TOOL} is missing: {INSTALL}"
        );
        eprintln!("skipped: {TOOL} not installed ({INSTALL})");
        return None;
    }
    let out = Command::new(TOOL)
        .arg("--strict")
        .args(extra)
        .args(files)
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{TOOL} failed:\n{report}");
    Some(report)
}
