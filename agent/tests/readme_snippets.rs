//! The docs' local examples, run as written against the real `llamafleet-agent serve`.
//!
//! Every block marked `<!-- checked: sh -->` or `<!-- checked: python -->` in `README.md` and
//! `docs/*.md` (see `tests/e2e/snippets.rs`) runs in document order from the repository root,
//! with `bash -euo pipefail` or `python3`; only the address `127.0.0.1:8080` is replaced by a
//! free port of the test's, and the docs' `cargo run --release -p llamafleet-agent --` by the
//! test's own build of that binary (first on `PATH`), which saves a release build of minutes.
//! A block that runs `llamafleet-agent serve` starts the server the blocks after it call: it is left
//! running in the background (stopping the one before, which holds the port) until `/readyz`
//! answers. Every other block must exit 0 and print something (the curl examples use `-f`, so
//! an HTTP error fails them; the SDKs raise on one), and what [`SHOWS`] lists for it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;
// The marker parser the cluster suite's doc test shares; see its module docs.
#[path = "../../tests/e2e/snippets.rs"]
mod snippets;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::python_clients_installed;
use serve_support::{free_port, model_path};
use snippets::{Runner, Snippet, checked_snippets, doc_files, runs};

/// The address the docs' examples call.
const DOCS_ADDRESS: &str = "127.0.0.1:8080";
/// How the docs run the agent; the test runs its own build of it instead.
const DOCS_AGENT: &str = "cargo run --release -p llamafleet-agent --";
/// Generous "does not hang" bound for one block (a few short generations on 2 shared cores).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a `serve` block may take to answer `/readyz` (loading the model, and copying it
/// into the cache on a first run).
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// What a block must print besides something: the block containing `.0` prints each of `.1`.
const SHOWS: &[(&str, &[&str])] = &[
    ("cache gc --dry-run", &["\"removed\"", "\"in_use\""]),
    (
        "-X OPTIONS",
        &["access-control-allow-origin: https://app.example"],
    ),
];

/// A `llamafleet-agent serve` block: a server left running for the blocks after it.
fn starts_server(code: &str) -> bool {
    code.lines()
        .any(|l| l.trim_start().starts_with("llamafleet-agent serve "))
}

/// The repository root, read at run time (see `llamafleet_crds::testing::repo_root`).
fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("..")
}

/// `PATH` with the test build's `llamafleet-agent` first.
fn path_with_agent() -> std::ffi::OsString {
    let agent = Path::new(env!("CARGO_BIN_EXE_llamafleet-agent"));
    let mut dirs = vec![agent.parent().expect("target dir").to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("PATH")
}

/// The interpreter of a block and its arguments before the code: `bash -euo pipefail -c` or
/// `python3 -c`.
fn interpreter(snippet: &Snippet) -> &'static [&'static str] {
    match snippet.lang.as_str() {
        "sh" => &["bash", "-euo", "pipefail", "-c"],
        "python" => &["python3", "-c"],
        other => panic!("{}: no runner for {other:?}", snippet.place),
    }
}

/// `program args...` as the docs' blocks run: from the repository root, with the test build
/// first on `PATH` and no API key in the environment.
fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(repo_root())
        .env("PATH", path_with_agent())
        .env_remove("LLAMAFLEET_API_KEY");
    c
}

/// A `serve` block running in the background, in its own process group (bash, and the agent
/// it starts), killed as a whole on drop.
struct Background {
    child: Child,
    log: tempfile::NamedTempFile,
    place: String,
}

impl Background {
    fn start(snippet: &Snippet, code: &str, address: &str) -> Background {
        use std::os::unix::process::CommandExt;
        let log = tempfile::NamedTempFile::new().expect("log file");
        let (program, args) = interpreter(snippet).split_first().expect("a program");
        let child = command(program, args)
            .arg(code)
            .env("RUST_LOG", "warn")
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .process_group(0)
            .spawn()
            .expect("spawn bash");
        let mut server = Background {
            child,
            log,
            place: snippet.place.clone(),
        };
        server.wait_ready(address);
        server
    }

    fn wait_ready(&mut self, address: &str) {
        let started = Instant::now();
        let url = format!("http://{address}/readyz");
        loop {
            let ready = Command::new("curl")
                .args(["-fsS", "-o", "/dev/null", "--max-time", "2", &url])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            let log = || std::fs::read_to_string(self.log.path()).unwrap_or_default();
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{}: the server exited ({status}):\n{}", self.place, log());
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "{}: {url} not ready after {READY_TIMEOUT:?}:\n{}",
                self.place,
                log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // The group's id is bash's pid (`process_group(0)`).
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Runs one block to its end; returns its stdout, or panics with its output.
fn run(snippet: &Snippet, code: &str) -> String {
    let out = command("timeout", &[&BLOCK_TIMEOUT.as_secs().to_string()])
        .args(interpreter(snippet))
        .arg(code)
        .output()
        .expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !stdout.trim().is_empty(),
        "{} ({}) failed: {:?} (124: still running after {BLOCK_TIMEOUT:?})\n{stdout}\n{}",
        snippet.place,
        snippet.lang,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn docs_local_examples_run_against_the_real_agent() {
    let root = repo_root();
    let snippets: Vec<Snippet> = doc_files(&root)
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(root.join(file)).expect("doc readable");
            checked_snippets(file, &text)
        })
        .filter(|s| s.runner == Runner::Agent)
        .collect();
    let count = |lang: &str| snippets.iter().filter(|s| s.lang == lang).count();
    // The serve blocks, the curl blocks (quick try, Calling the API, CORS), `cache gc`, and
    // the OpenAI and Ollama SDK blocks.
    assert!(count("sh") >= 6 && count("python") >= 2, "{snippets:#?}");
    let as_run = |s: &Snippet| s.code.replace(DOCS_AGENT, "llamafleet-agent");
    assert!(
        snippets.first().is_some_and(|s| starts_server(&as_run(s))),
        "the first local block must start the server the others call"
    );
    for s in &snippets {
        assert!(
            runs(Runner::Agent, &s.lang),
            "{}: no runner for {}",
            s.place,
            s.lang
        );
        let calls_other_address = s
            .code
            .match_indices("127.0.0.1:")
            .any(|(i, _)| !s.code[i..].starts_with(DOCS_ADDRESS));
        assert!(
            !calls_other_address,
            "{}: a checked example must use {DOCS_ADDRESS}",
            s.place
        );
    }
    for (block, _) in SHOWS {
        let n = snippets.iter().filter(|s| s.code.contains(block)).count();
        assert_eq!(n, 1, "{n} checked blocks contain {block:?}");
    }
    if model_path().is_none() {
        return;
    }
    let python = python_clients_installed();
    let address = format!("127.0.0.1:{}", free_port());
    let mut server: Option<Background> = None;
    for s in &snippets {
        let started = Instant::now();
        let code = s
            .code
            .replace(DOCS_ADDRESS, &address)
            .replace(DOCS_AGENT, "llamafleet-agent");
        if starts_server(&code) {
            drop(server.take());
            server = Some(Background::start(s, &code, &address));
            eprintln!("{}: ready in {:.1?}", s.place, started.elapsed());
            continue;
        }
        if s.lang == "python" && !python {
            continue;
        }
        let out = run(s, &code);
        eprintln!("{}: {:.1?}", s.place, started.elapsed());
        let wanted = SHOWS.iter().find(|(block, _)| s.code.contains(block));
        for text in wanted.map_or(&[][..], |(_, texts)| texts) {
            assert!(
                out.contains(text),
                "{}: the output lacks {text:?}:\n{out}",
                s.place
            );
        }
    }
}
