//! The real `llamafleet-agent serve` binary on a free loopback port, and the skip-or-fail rule
//! for the external tools (promtool, Python clients, Chromium, schemathesis) tests drive.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{MODEL, agent_command, model_path};

pub use super::free_port;

/// An API key tests can hand to [`spawn_server`].
pub const KEY: &str = "test-key-123";

/// A running `serve` process, killed on drop.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with the test model (named [`MODEL`]; 2 slots and ctx 1024 unless `extra`
/// sets them) and waits for `/readyz`; `api_key` turns authentication on. `None` when the
/// test model is not configured.
pub async fn spawn_server(api_key: Option<&str>, extra: &[&str]) -> Option<Server> {
    let model = model_path()?;
    let server = launch(model.as_os_str(), api_key, extra);
    server.wait_ready().await;
    Some(server)
}

/// [`spawn_server`], with the server's log (stderr: one JSON object per line) written to a
/// file that [`Server::log`] reads, for tests that assert what the server saw.
pub async fn spawn_logged_server(api_key: Option<&str>, extra: &[&str]) -> Option<Server> {
    let model = model_path()?;
    let server = start(model.as_os_str(), api_key, extra, true);
    server.wait_ready().await;
    Some(server)
}

/// Starts `serve --model MODEL` (a path or URL) without waiting for it.
pub fn launch(model: &OsStr, api_key: Option<&str>, extra: &[&str]) -> Server {
    start(model, api_key, extra, false)
}

fn start(model: &OsStr, api_key: Option<&str>, extra: &[&str], logged: bool) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut command = agent_command();
    command
        .args(["serve", "--model"])
        .arg(model)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args([
            "--model-name",
            MODEL,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--threads",
            "2",
        ])
        .args(defaults_unless_given(
            extra,
            &[("--ctx", "1024"), ("--parallel", "2")],
        ));
    if let Some(key) = api_key {
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, key).expect("key");
        command.arg("--api-key-file").arg(&key_file);
    }
    if logged {
        let log = std::fs::File::create(dir.path().join(LOG_FILE)).expect("log file");
        // Request lines are logged at info.
        command
            .stderr(log)
            .env("RUST_LOG", "warn,llamafleet::request=info");
    }
    let child = command.args(extra).spawn().expect("spawn the agent");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// `--flag value` pairs `extra` does not set itself (clap refuses a flag given twice).
fn defaults_unless_given<'a>(extra: &[&str], defaults: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    defaults
        .iter()
        .filter(|(flag, _)| !extra.contains(flag))
        .flat_map(|&(flag, value)| [flag, value])
        .collect()
}

/// Where [`spawn_logged_server`]'s server logs, in its temp dir.
const LOG_FILE: &str = "serve.log";

impl Server {
    /// The server's log so far (empty unless started by [`spawn_logged_server`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// The server's model cache (`--cache-dir`).
    pub fn cache_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("cache")
    }

    /// The body of `GET path` (an open route such as `/metrics`).
    pub async fn text(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .expect("get")
            .text()
            .await
            .expect("body")
    }

    /// Waits (up to 2 minutes) for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.base)).await
                && r.status() == 200
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "not ready in 2 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Whether an external tool is usable (`probe` exits 0). When it is not, the test skips with
/// a note, except under CI, where `scripts/setup.sh test` installs it and its absence is a
/// failure.
pub fn tool_available(probe: &mut Command, what: &str, install: &str) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is missing ({install})"
        );
        eprintln!("skipped {what}: not installed ({install})");
    }
    ok
}

/// GPUs the driver's own tool lists (0 when it is absent), independent of NVML-in-Rust.
pub fn gpus_listed_by_nvidia_smi() -> usize {
    Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or(0, |o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("GPU "))
                .count()
        })
}
