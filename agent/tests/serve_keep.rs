//! `serve --keep-file` in the real binary with the real model: a cached model the keep file
//! lists survives `cache gc` (the real CLI) while the server runs, and is collected once it
//! leaves the list; a missing or invalid keep file keeps nothing and never stops the server.

mod serve_support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use llamafleet_agent::store::{PullRequest, Store, StoreConfig, StoreMetrics};
use llamafleet_gguf::writer::GgufWriter;
use serde_json::Value;
use serve_support::agent_command;
use serve_support::process::spawn_server;

const SERVED: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
/// Longer than a few keep-file polls.
const PICKED_UP_WITHIN: Duration = Duration::from_secs(30);

/// Stores a tiny model in `cache` (as another agent on the node would) and returns its sha256.
async fn store_tiny(cache: &Path, rows: u64) -> String {
    let src = cache.with_file_name(format!("tiny-{rows}.gguf"));
    std::fs::write(&src, GgufWriter::tiny_llama(rows).to_bytes()).expect("write");
    let mut config = StoreConfig::new(cache);
    config.show_progress = false;
    let store = Store::open(config, StoreMetrics::unregistered().expect("metrics")).expect("open");
    store
        .pull(&PullRequest {
            source: src.display().to_string(),
            ..PullRequest::default()
        })
        .await
        .expect("pull")
        .sha256
}

/// Replaces the keep file in one rename, as the kubelet swaps a ConfigMap volume.
fn write_keep(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn list(hexes: &[&str]) -> String {
    hexes.iter().map(|h| format!("- {h}\n")).collect()
}

/// `llamafleet-agent cache gc` on `cache`: its JSON report.
fn gc(cache: &Path, dry_run: bool) -> Value {
    let mut command = agent_command();
    command.args(["cache", "gc", "--cache-dir"]).arg(cache);
    if dry_run {
        command.arg("--dry-run");
    }
    let out = command.stdout(Stdio::piped()).output().expect("run gc");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).expect("gc report")
}

fn names(report: &Value, field: &str) -> Vec<String> {
    let mut names: Vec<String> = report[field]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_str().expect("sha256").to_owned())
        .collect();
    names.sort();
    names
}

fn sorted(hexes: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = hexes.iter().map(|h| (*h).to_owned()).collect();
    v.sort();
    v
}

/// Waits until a dry-run collection would spare exactly `in_use` (the server polls its file).
async fn wait_in_use(cache: &Path, in_use: &[&str]) {
    let started = Instant::now();
    loop {
        let report = gc(cache, true);
        if names(&report, "in_use") == sorted(in_use) {
            return;
        }
        assert!(
            started.elapsed() < PICKED_UP_WITHIN,
            "in use never became {in_use:?}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_model_survives_cache_gc_until_it_leaves_the_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Missing at start: logged, keeps nothing, the server starts anyway.
    let keep_file = dir.path().join("keep.yaml");
    let keep_arg = keep_file.to_str().expect("utf-8 path");
    let Some(mut server) = spawn_server(None, &["--keep-file", keep_arg]).await else {
        return;
    };
    let cache = server.cache_dir();
    let kept = store_tiny(&cache, 10).await;
    let other = store_tiny(&cache, 20).await;
    let spare = store_tiny(&cache, 30).await;

    write_keep(&keep_file, &list(&[&kept, &other, "0".repeat(64).as_str()]));
    wait_in_use(&cache, &[SERVED, &kept, &other]).await;
    let report = gc(&cache, false);
    assert_eq!(names(&report, "removed"), [spare.as_str()], "{report}");
    assert_eq!(names(&report, "in_use"), sorted(&[SERVED, &kept, &other]));

    // `kept` leaves the list: the next collection takes it, `other` stays.
    write_keep(&keep_file, &list(&[&other]));
    wait_in_use(&cache, &[SERVED, &other]).await;
    let report = gc(&cache, false);
    assert_eq!(names(&report, "removed"), [kept.as_str()], "{report}");
    assert!(cache.join(format!("sha256/{other}.gguf")).exists());

    // An invalid file keeps nothing, and the server serves on.
    write_keep(&keep_file, "- [not a list of sha256s");
    wait_in_use(&cache, &[SERVED]).await;
    let report = gc(&cache, false);
    assert_eq!(names(&report, "removed"), [other.as_str()], "{report}");
    assert_eq!(names(&report, "in_use"), [SERVED]);
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "still running"
    );
    let ready = reqwest::get(format!("{}/readyz", server.base))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}
