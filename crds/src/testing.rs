//! Helpers the test suites of every crate share (feature `testing`): the example files, YAML
//! documents, and the `kubernetes-validate` tool. Panics are the point here: they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
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

/// The OpenAPI schema of a CRD's (only) version, as JSON.
pub fn open_api_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    serde_json::to_value(schema).unwrap()
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
    const INSTALL: &str = "bash scripts/setup.sh test";
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

/// Chart files whose queries name metrics: the Grafana dashboard and the alert rules.
pub const CHART_QUERY_FILES: [&str; 2] = [
    "charts/llamafleet/files/dashboard.json",
    "charts/llamafleet/templates/prometheusrule.yaml",
];

/// Every `llamafleet_*` metric name in `text`, histogram suffixes (`_bucket`, `_sum`,
/// `_count`) stripped to the family name.
pub fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("llamafleet_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(family_name(&tail[..end]).to_string());
        rest = &tail[end..];
    }
    names
}

/// Every metric the chart's dashboard and alerts query ([`CHART_QUERY_FILES`]).
pub fn chart_metric_names() -> BTreeSet<String> {
    CHART_QUERY_FILES
        .iter()
        .flat_map(|f| metric_names(&std::fs::read_to_string(repo_root().join(f)).unwrap()))
        .collect()
}

fn family_name(series: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| series.strip_suffix(s))
        .unwrap_or(series)
}

/// The families of a Prometheus text exposition with the label names their series carry
/// (`le` of histogram buckets left out). Label values must not contain `,` or `=` (enough for
/// test fixtures).
pub fn exposition_labels(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut families: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = families
            .entry(family_name(&line[..end]).to_string())
            .or_default();
        if let Some(inner) = line[end..]
            .strip_prefix('{')
            .and_then(|r| r.split('}').next())
        {
            let names = inner.split(',').filter_map(|pair| pair.split('=').next());
            labels.extend(
                names
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && *n != "le")
                    .map(String::from),
            );
        }
    }
    families
}
