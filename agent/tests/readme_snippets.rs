//! The docs' local examples, run as written against the real `llamafleet-agent serve`, and
//! the README's two commands checked against what the scripts and CI run.
//!
//! Every block marked `<!-- checked: sh -->` or `<!-- checked: python -->` in `README.md` and
//! `docs/*.md` (see `tests/e2e/snippets.rs`) runs in document order from the repository root,
//! with `bash -euo pipefail` or `python3`; only the address `127.0.0.1:8080` is replaced by a
//! free port of the test's (passed to `scripts/serve-local.sh` as `--listen`, in place of its
//! default), and the agent is the test's own build of that binary: first on `PATH` for the
//! docs' `cargo run --release -p llamafleet-agent --`, and in `LLAMAFLEET_AGENT_BIN` for
//! `scripts/serve-local.sh`, which then runs it instead of `cargo run --release` (a release
//! build, llama.cpp included, would add many minutes to every CI run). So CI, from its clean
//! clone, runs the README's first command as written (set-up, model, serve) and calls the
//! agent it starts. A block that runs `scripts/serve-local.sh` or `llamafleet-agent serve`
//! starts the server the blocks after it call: it is left running in the background (stopping
//! the one before, which holds the port) until `/readyz` answers. Every other block must exit
//! 0 and print something (the curl examples use `-f`, so an HTTP error fails them; the SDKs
//! raise on one), and what [`SHOWS`] lists for it.
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
use snippets::{Block, Mark, Runner, Snippet, checked_snippets, doc_files, fenced_blocks, runs};

/// The address the docs' examples call.
const DOCS_ADDRESS: &str = "127.0.0.1:8080";
/// How the docs run the agent; the test runs its own build of it instead.
const DOCS_AGENT: &str = "cargo run --release -p llamafleet-agent --";
/// The README's first command: serves the test model on [`DOCS_ADDRESS`].
const SERVE_COMMAND: &str = "bash scripts/serve-local.sh";
/// The README's second command, the one CI runs (`.ci/run`).
const TEST_COMMAND: &str = "bash scripts/test.sh";
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

/// A block (as run) that starts a server left running for the blocks after it:
/// `scripts/serve-local.sh` or `llamafleet-agent serve`.
fn starts_server(code: &str) -> bool {
    code.lines().map(str::trim_start).any(|l| {
        l.starts_with("llamafleet-agent serve ")
            || l.strip_prefix(SERVE_COMMAND)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

/// A block as the test runs it: `address` for the docs' [`DOCS_ADDRESS`] (given to
/// `scripts/serve-local.sh` as `--listen` when the block names no address), and the test's
/// build for the docs' `cargo run`.
fn as_run(code: &str, address: &str) -> String {
    let code = if code.contains(DOCS_ADDRESS) {
        code.to_owned()
    } else {
        code.replace(
            SERVE_COMMAND,
            &format!("{SERVE_COMMAND} --listen {DOCS_ADDRESS}"),
        )
    };
    code.replace(DOCS_ADDRESS, address)
        .replace(DOCS_AGENT, "llamafleet-agent")
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
/// first on `PATH` and named by `LLAMAFLEET_AGENT_BIN` (see the module docs), and neither an
/// API key nor another cache directory (the docs' `cache gc` block names its own) in the
/// environment.
fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .current_dir(repo_root())
        .env("PATH", path_with_agent())
        .env(
            "LLAMAFLEET_AGENT_BIN",
            env!("CARGO_BIN_EXE_llamafleet-agent"),
        )
        .env_remove("LLAMAFLEET_API_KEY")
        .env_remove("LLAMAFLEET_CACHE_DIR");
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
    assert!(
        snippets
            .first()
            .is_some_and(|s| starts_server(&as_run(&s.code, DOCS_ADDRESS))),
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
        let code = as_run(&s.code, &address);
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

/// The `sh` blocks of the README's "Two commands" section, in order.
fn two_commands_blocks(readme: &str) -> Vec<Block> {
    let start = readme
        .find("\n## Two commands\n")
        .expect("README.md has a \"## Two commands\" section");
    let end = readme[start + 1..]
        .find("\n## ")
        .map_or(readme.len(), |i| start + 1 + i);
    // The 1-based lines from the section's heading to its last.
    let line_at = |byte: usize| readme[..byte].matches('\n').count() + 1;
    let lines = line_at(start + 1)..=line_at(end);
    fenced_blocks("README.md", readme)
        .into_iter()
        .filter(|b| {
            let line = b
                .place
                .rsplit_once(':')
                .and_then(|(_, n)| n.parse::<usize>().ok());
            line.is_some_and(|n| lines.contains(&n)) && b.lang == "sh"
        })
        .collect()
}

/// The commands of a script: its lines less blank ones, comments and the opening every script
/// here shares (`set -euo pipefail`, `cd` to the root, `export`s of settings).
fn script_commands(path: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !["set -", "cd ", "export "].iter().any(|p| l.starts_with(p)))
        .map(str::to_owned)
        .collect()
}

/// The README promises two commands: one serves the test model, one runs the tests, each
/// setting up what it needs. They must be the commands the scripts, the docs' runner above and
/// CI actually run.
#[test]
fn the_readme_two_commands_are_what_the_scripts_and_ci_run() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let blocks = two_commands_blocks(&readme);
    let (Some(serve), Some(test)) = (blocks.first(), blocks.last()) else {
        panic!("no sh blocks under \"## Two commands\"");
    };

    // The first: `scripts/serve-local.sh`, as written, is the first block the runner runs,
    // and the server it starts is the one the README's examples call.
    assert_eq!(serve.code, SERVE_COMMAND, "{}", serve.place);
    assert_eq!(
        serve.mark,
        Some(Mark::Checked(Runner::Agent, "sh".into())),
        "{}: the serve command must be run by the docs' runner",
        serve.place
    );
    let first_run = checked_snippets("README.md", &readme)
        .into_iter()
        .find(|s| s.runner == Runner::Agent)
        .expect("checked blocks in README.md");
    assert_eq!(
        (first_run.code.as_str(), first_run.place.as_str()),
        (SERVE_COMMAND, serve.place.as_str()),
        "the docs' runner must start with the README's serve command"
    );
    let serve_local = std::fs::read_to_string(repo_root().join("scripts/serve-local.sh"))
        .expect("scripts/serve-local.sh");
    let builds_and_serves = format!("{DOCS_AGENT} serve");
    for part in [
        "bash scripts/setup.sh serve",
        "bash scripts/fetch-test-model.sh",
        DOCS_ADDRESS,
        "LLAMAFLEET_AGENT_BIN",
        builds_and_serves.as_str(),
    ] {
        assert!(
            serve_local.contains(part),
            "scripts/serve-local.sh lacks {part:?}"
        );
    }

    // The second: exactly what CI runs, and it sets up the suite's tools first.
    assert_eq!(test.code, TEST_COMMAND, "{}", test.place);
    assert_eq!(
        script_commands(".ci/run"),
        [format!("exec {TEST_COMMAND}")],
        ".ci/run must run the README's test command and nothing else"
    );
    assert_eq!(
        script_commands("scripts/test.sh")
            .first()
            .map(String::as_str),
        Some("bash scripts/setup.sh test"),
        "scripts/test.sh must set up what the suite needs before anything else"
    );
}

/// Flags given to `scripts/serve-local.sh` reach `serve` in place of its defaults: clap
/// refuses a flag given twice, so a default must not be passed beside the caller's.
#[test]
fn serve_local_passes_flags_in_place_of_its_defaults() {
    let out = command(
        "bash",
        &[
            "scripts/serve-local.sh",
            "--model",
            "some.gguf",
            "--listen=127.0.0.1:9000",
            "--ctx",
            "512",
        ],
    )
    // `echo` in place of the agent prints the arguments it would get (and needs no model).
    .env("LLAMAFLEET_AGENT_BIN", "echo")
    .output()
    .expect("run scripts/serve-local.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let home = std::env::var("HOME").expect("HOME");
    assert_eq!(
        stdout.trim(),
        format!(
            "serve --cache-dir {home}/.cache/llamafleet/agent --parallel 2 \
             --model some.gguf --listen=127.0.0.1:9000 --ctx 512"
        )
    );
}
