//! `llamafleet-operator render` output is accepted by a real API server: every object of every
//! good example passes a server-side dry run (schemas, defaulting, admission), nothing stored.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use llamafleet_e2e::{cluster, repo_root};
use llamafleet_operator::render;

#[test]
fn rendered_examples_pass_a_server_side_dry_run() {
    let Some(c) = cluster() else { return };
    let ns = c.namespace("e2e-render");
    let examples = repo_root().join("manifests/examples");
    let cases: [&[&str]; 4] = [
        &["quickstart.yaml"],
        &["migration/02-green-10.yaml"],
        &["migration/02-green-10.yaml", "progressive.yaml"],
        &["gpu-vendors.yaml"],
    ];
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        let files: Vec<PathBuf> = case.iter().map(|f| examples.join(f)).collect();
        let yaml = render::render(
            &render::read_inputs(&files, &ns.name).unwrap(),
            "agent:test",
            llamafleet_operator::names::CACHE_DIR,
        )
        .unwrap();
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let out = c.kubectl_ok(&[
            "apply",
            "-n",
            &ns.name,
            "--dry-run=server",
            "-f",
            file.to_str().unwrap(),
        ]);
        let applied = out
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        let objects = serde_norway::Deserializer::from_str(&yaml)
            .map(|d| <serde_json::Value as serde::Deserialize>::deserialize(d).unwrap())
            .filter(|v| !v.is_null())
            .count();
        assert!(objects >= 6, "{case:?}: quickstart alone is six objects");
        assert_eq!(applied, objects, "{case:?}: {out}");
    }
}
