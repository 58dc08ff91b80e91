//! Runs one checked docs block as a reader would: in bash (`sh`) or through `kubectl apply -f -`
//! (`yaml`), with a kubeconfig, a working directory and a `PATH` of the test's choosing. Shared
//! by the cluster runner (`docs.rs`) and the real-pod runner (`real_pods_migration.rs`).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::snippets::Snippet;

/// "Does not hang" bound for one block (the docs' `kubectl wait` allow 30 minutes; on the test
/// cluster readiness takes seconds).
pub const BLOCK_TIMEOUT_SECONDS: u64 = 300;

/// `PATH` with `dir` first.
pub fn path_with(dir: &Path) -> OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("PATH entries without `:`")
}

/// Runs one block as written; panics with its output unless it exits 0 within the bound.
/// Returns what it printed, stdout and stderr interleaved as a terminal shows them (kubectl
/// says some results on stderr). The output goes to a file, not a pipe: a block may leave a
/// command running in the background (`kubectl port-forward ... &`, as in a reader's shell),
/// which would hold a pipe open and hang the read.
pub fn run_block(s: &Snippet, kubeconfig: &Path, work: &Path, path: &OsStr) -> String {
    let mut command = Command::new("timeout");
    command.arg(BLOCK_TIMEOUT_SECONDS.to_string());
    match s.lang.as_str() {
        "sh" => command.args(["bash", "-euo", "pipefail", "-c", &s.code]),
        "yaml" => command.args(["kubectl", "apply", "-f", "-"]),
        other => panic!("{}: no runner for {other}", s.place),
    };
    let mut log = tempfile::tempfile().expect("a temporary file");
    let mut child = command
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .current_dir(work)
        .stdin(Stdio::piped())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log.try_clone().expect("the log file"))
        .spawn()
        .expect("timeout runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    if s.lang == "yaml" {
        stdin
            .write_all(s.code.as_bytes())
            .expect("the block on stdin");
    }
    drop(stdin);
    let status = child.wait().expect("the block ends");
    log.rewind().expect("the log file");
    let mut bytes = Vec::new();
    log.read_to_end(&mut bytes).expect("the log file");
    let printed = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        status.success(),
        "{}: {status:?} (124: still running after {BLOCK_TIMEOUT_SECONDS}s):\n{}\n--- output:\n{printed}",
        s.place,
        s.code
    );
    printed
}
