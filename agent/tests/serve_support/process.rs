//! The real `llamafleet-agent serve` binary on a free loopback port.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{MODEL, model_path};

/// The API key the spawned server requires.
pub const KEY: &str = "test-key-123";

/// A running `serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts `serve` (2 slots, API key [`KEY`]) on a free port and waits for `/readyz`; `None`
/// when the test model is not configured.
pub async fn spawn_server(extra: &[&str]) -> Option<Server> {
    let model = model_path()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, KEY).expect("key");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_llamafleet-agent"))
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
        ])
        .arg("--api-key-file")
        .arg(&key_file)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the agent");
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
