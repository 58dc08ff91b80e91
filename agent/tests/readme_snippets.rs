//! The README's client examples, run as written against the real `llamafleet-agent serve`.
//!
//! A fenced block right after `<!-- checked: sh -->` or `<!-- checked: python -->` is run with
//! `bash -euo pipefail` or `python3` (blocks marked `checked on cluster` are
//! `tests/e2e/docs.rs`'s); only the address `127.0.0.1:8080` is replaced by the test
//! server's. Each must exit 0 and print something (the curl examples use `-f`, so an HTTP error
//! fails them; the SDKs raise on one).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;
// The marker parser the cluster suite's doc test shares; see its module docs.
#[path = "../../tests/e2e/snippets.rs"]
mod snippets;

use std::process::Stdio;
use std::time::Duration;

use serve_support::process::spawn_server;
use serve_support::python_clients_installed;
use snippets::{Runner, Snippet, checked_snippets};

/// The address the README's examples call.
const README_ADDRESS: &str = "127.0.0.1:8080";
/// Generous "does not hang" bound for one block (a few short generations on 2 shared cores).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs one block against `address`; returns its stdout, or panics with its output.
async fn run(snippet: &Snippet, address: &str) -> String {
    let code = snippet.code.replace(README_ADDRESS, address);
    let mut command = match snippet.lang.as_str() {
        "sh" => {
            let mut c = tokio::process::Command::new("bash");
            c.args(["-euo", "pipefail", "-c", &code]);
            c
        }
        "python" => {
            let mut c = tokio::process::Command::new("python3");
            c.args(["-c", &code]);
            c
        }
        other => panic!("{}: no runner for {other:?}", snippet.place),
    };
    let child = command
        .env_remove("LLAMAFLEET_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let out = tokio::time::timeout(BLOCK_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{}: still running after 5 minutes", snippet.place))
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.trim().is_empty(),
        "{} ({}) failed: {:?}\n{stdout}\n{}",
        snippet.place,
        snippet.lang,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_client_examples_run_against_the_real_agent() {
    let readme = include_str!("../../README.md");
    let snippets: Vec<Snippet> = checked_snippets("README.md", readme)
        .into_iter()
        .filter(|s| s.runner == Runner::Agent)
        .collect();
    let count = |lang: &str| snippets.iter().filter(|s| s.lang == lang).count();
    // The curl blocks (quick try + Calling the API) and the OpenAI and Ollama SDK blocks.
    assert!(count("sh") >= 2 && count("python") >= 2, "{snippets:#?}");
    for s in &snippets {
        assert!(
            s.code.contains(README_ADDRESS),
            "{}: a checked example must call {README_ADDRESS}",
            s.place
        );
    }
    let Some(server) = spawn_server(None, &[]).await else {
        return;
    };
    let python = python_clients_installed();
    let address = server.base.trim_start_matches("http://").to_owned();
    for s in snippets.iter().filter(|s| python || s.lang != "python") {
        run(s, &address).await;
    }
}
