//! The real `llamafleet-agent serve` binary as a child process on a free loopback port.

use std::process::Child;
use std::time::{Duration, Instant};

use super::{MODEL, agent_command, free_port, model_path};

/// An API key tests can hand to [`spawn_server`].
pub const KEY: &str = "test-key-123";

/// A running agent; killed when dropped.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` with the test model (named [`MODEL`]) and waits for `/readyz`; `api_key`
/// turns authentication on. `None` when the model is not configured.
pub async fn spawn_server(api_key: Option<&str>, extra: &[&str]) -> Option<Server> {
    let model = model_path()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut command = agent_command();
    command
        .args(["serve", "--model"])
        .arg(&model)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args([
            "--model-name",
            MODEL,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ctx",
            "1024",
            "--parallel",
            "2",
            "--threads",
            "2",
        ]);
    if let Some(key) = api_key {
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, key).expect("key");
        command.arg("--api-key-file").arg(&key_file);
    }
    let child = command.args(extra).spawn().expect("spawn the agent");
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", server.base)).await
            && r.status() == 200
        {
            return Some(server);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready in 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
