//! The README's client examples, run as written against the real `llamafleet-agent serve`.
//!
//! A fenced block right after `<!-- checked: sh -->` or `<!-- checked: python -->` is run with
//! `bash -euo pipefail` or `python3`; only the address `127.0.0.1:8080` is replaced by the test
//! server's. Each must exit 0 and print something (the curl examples use `-f`, so an HTTP error
//! fails them; the SDKs raise on one).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use std::process::Stdio;
use std::time::Duration;

use serve_support::process::spawn_server;
use serve_support::python_clients_installed;

/// The address the README's examples call.
const README_ADDRESS: &str = "127.0.0.1:8080";
/// Generous "does not hang" bound for one block (a few short generations on 2 shared cores).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// A checked block: its language and its text.
#[derive(Debug, PartialEq)]
struct Snippet {
    lang: String,
    code: String,
    line: usize,
}

/// The checked blocks of a Markdown text, in order. Panics on a marker not followed by a
/// fence of the same language, or a fence that never closes, so a broken marker cannot
/// silently drop an example from the test.
fn checked_snippets(markdown: &str) -> Vec<Snippet> {
    let mut lines = markdown.lines().enumerate();
    let mut found = Vec::new();
    while let Some((n, line)) = lines.next() {
        let Some(lang) = line
            .trim()
            .strip_prefix("<!-- checked:")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(str::trim)
        else {
            continue;
        };
        let fence = lines.next().map(|(_, l)| l.trim());
        assert_eq!(
            fence,
            Some(format!("```{lang}").as_str()),
            "README.md:{}: a checked marker must be followed by a ```{lang} fence",
            n + 1
        );
        let mut code = Vec::new();
        loop {
            let (_, l) = lines
                .next()
                .unwrap_or_else(|| panic!("README.md:{}: unclosed fence", n + 1));
            if l.trim() == "```" {
                break;
            }
            code.push(l);
        }
        found.push(Snippet {
            lang: lang.to_owned(),
            code: code.join("\n"),
            line: n + 1,
        });
    }
    found
}

#[test]
fn markers_are_parsed_and_broken_ones_are_refused() {
    let md = "x\n<!-- checked: sh -->\n```sh\necho a\necho b\n```\n```sh\nnot checked\n```\n";
    assert_eq!(
        checked_snippets(md),
        vec![Snippet {
            lang: "sh".into(),
            code: "echo a\necho b".into(),
            line: 2
        }]
    );
    let wrong_fence = std::panic::catch_unwind(|| checked_snippets("<!-- checked: sh -->\ntext"));
    assert!(wrong_fence.is_err());
    let unclosed =
        std::panic::catch_unwind(|| checked_snippets("<!-- checked: sh -->\n```sh\necho"));
    assert!(unclosed.is_err());
}

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
        other => panic!("README.md:{}: no runner for {other:?}", snippet.line),
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
        .unwrap_or_else(|_| panic!("README.md:{}: still running after 5 minutes", snippet.line))
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.trim().is_empty(),
        "README.md:{} ({}) failed: {:?}\n{stdout}\n{}",
        snippet.line,
        snippet.lang,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_client_examples_run_against_the_real_agent() {
    let readme = include_str!("../../README.md");
    let snippets = checked_snippets(readme);
    let count = |lang: &str| snippets.iter().filter(|s| s.lang == lang).count();
    // The curl blocks (quick try + Calling the API) and the OpenAI and Ollama SDK blocks.
    assert!(count("sh") >= 2 && count("python") >= 2, "{snippets:#?}");
    for s in &snippets {
        assert!(
            s.code.contains(README_ADDRESS),
            "README.md:{}: a checked example must call {README_ADDRESS}",
            s.line
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
