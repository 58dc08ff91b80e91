//! The real `llamafleet-agent serve` binary: startup through the store, SIGTERM with a stream
//! in flight (finished within the grace period, or ended with an error event after it),
//! `promtool check metrics`, and the official Python clients.

mod serve_support;
mod support;

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::model_path;
use serve_support::process::{KEY, gpus_listed_by_nvidia_smi, launch, spawn_server};
use support::{Behaviour, TestServer};

const SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits (30 s at most) for the agent to exit after `what`, and checks it exited zero.
async fn exits_zero(child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_stream_in_flight_finish_and_exits_zero() {
    let Some(mut server) = spawn_server(Some(KEY), &["--grace", "60"]).await else {
        return;
    };
    let status: Value = reqwest::get(format!("{}/status", server.base))
        .await
        .expect("status")
        .json_value()
        .await;
    assert_eq!(status["phase"], "ready");
    assert_eq!(status["sha256"], SHA256);
    assert_eq!(status["layers_total"], 18);
    // The startup broken down by phase: every phase before `ready` took some time.
    let phases = status["phase_seconds"].as_object().expect("phase_seconds");
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["downloading", "verifying", "loading", "warming"],
        "{status}"
    );
    assert!(
        phases.values().all(|s| s.as_f64().is_some_and(|s| s > 0.0)),
        "{status}"
    );
    let body =
        json!({"prompt": "Write a story.", "options": {"num_predict": 48, "temperature": 0}});
    let mut response = reqwest::Client::new()
        .post(format!("{}/api/generate", server.base))
        .bearer_auth(KEY)
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let mut text = String::from_utf8(
        response
            .chunk()
            .await
            .expect("read")
            .expect("chunk")
            .to_vec(),
    )
    .expect("utf8");
    sigterm(&server.child);
    while let Some(chunk) = response.chunk().await.expect("stream survives SIGTERM") {
        text.push_str(std::str::from_utf8(&chunk).expect("utf8"));
    }
    let last: Value = serde_json::from_str(text.lines().last().expect("a line")).expect("json");
    assert_eq!(last["done"], true, "{text}");
    assert_eq!(last["eval_count"], 48);
    exits_zero(&mut server.child, "SIGTERM").await;
}

/// A stream still running when the drain's grace period ends is not cut: it ends with the
/// API's error event (`shut_down`), and the process exits zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_running_past_the_grace_period_ends_with_an_error_event() {
    let Some(mut server) = spawn_server(Some(KEY), &["--grace", "0"]).await else {
        return;
    };
    let body = json!({"prompt": "Write a long story.", "max_tokens": 400, "temperature": 0, "stream": true});
    let mut response = reqwest::Client::new()
        .post(format!("{}/v1/completions", server.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let first = response
        .chunk()
        .await
        .expect("read")
        .expect("a first chunk");
    let mut text = String::from_utf8(first.to_vec()).expect("utf8");
    sigterm(&server.child);
    while let Some(chunk) = response.chunk().await.expect("the stream ends, not cut") {
        text.push_str(std::str::from_utf8(&chunk).expect("utf8"));
    }
    let last = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .expect("an event");
    let last: Value = serde_json::from_str(last).expect("the last event is JSON");
    assert_eq!(last["error"]["type"], "shut_down", "{text}");
    exits_zero(&mut server.child, "the grace period").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_the_official_python_clients_work() {
    let Some(server) = spawn_server(Some(KEY), &[]).await else {
        return;
    };
    let metrics = server.text("/metrics").await;
    assert!(metrics.contains("process_resident_memory_bytes"));
    assert!(metrics.contains("llamafleet_agent_download_size_bytes"));
    // GPU series exactly when the driver lists GPUs; promtool below checks them too.
    assert_eq!(
        metrics.contains("llamafleet_agent_gpu_memory_total_bytes{"),
        gpus_listed_by_nvidia_smi() > 0,
        "{metrics}"
    );
    match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(metrics.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("promtool");
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing (bash scripts/setup.sh test)"
            );
            eprintln!("skipped promtool: not installed");
        }
    }
    serve_support::python_clients(&server.base, "gemma-3-270m-q4_k_m", KEY).await;
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_str(&self.text().await.expect("text")).expect("json")
    }
}

async fn get_json(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.expect("get");
    (response.status().as_u16(), response.json_value().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_download_bytes_of_total_while_pulling() {
    let Some(model) = model_path() else {
        return;
    };
    let body = Arc::new(std::fs::read(&model).expect("read the model"));
    let total = body.len() as u64;
    let paused_at = 3 << 20;
    let resume = Arc::new(tokio::sync::Notify::new());
    let origin = TestServer::start(Behaviour {
        body,
        pause_at: Some(paused_at),
        resume: resume.clone(),
        ..Behaviour::default()
    })
    .await;
    let url = origin.url("/gemma-3-270m-q4_k_m.gguf");
    let mut server = launch(
        OsStr::new(&url),
        Some(KEY),
        &["--sha256", SHA256, "--allow-http"],
    );

    // The origin holds the body at `paused_at`, so the agent must settle on exactly that.
    let started = Instant::now();
    let status = loop {
        if let Ok(r) = reqwest::get(format!("{}/status", server.base)).await {
            let status = r.json_value().await;
            if status["download"]["bytes"] == paused_at {
                break status;
            }
        }
        if let Some(exit) = server.child.try_wait().expect("wait") {
            panic!("serve exited during the download: {exit:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "download never reached the pause"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["phase"], "downloading", "{status}");
    assert_eq!(status["download"]["total"], total, "{status}");
    let (code, ready) = get_json(format!("{}/readyz", server.base)).await;
    assert_eq!(code, 503);
    assert_eq!(ready["phase"], "downloading");
    let percent = (paused_at as f64 * 1000.0 / total as f64).round() / 10.0;
    assert_eq!(ready["download_percent"], percent, "{ready}");
    let metrics = server.text("/metrics").await;
    assert!(
        metrics.contains(&format!("llamafleet_agent_download_size_bytes {total}")),
        "{metrics}"
    );

    resume.notify_one();
    server.wait_ready().await;
    let (_, status) = get_json(format!("{}/status", server.base)).await;
    assert_eq!(status["phase"], "ready");
    assert_eq!(status["download"]["bytes"], total);
    assert_eq!(status["download"]["total"], total);
    assert_eq!(status["sha256"], SHA256);
}

/// `/status` once it says `failed` (within 30 s of `started`).
async fn failed_status(base: &str, started: Instant) -> Value {
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/status")).await {
            let status = r.json_value().await;
            if status["phase"] == "failed" {
                return status;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A source that answers 404 fails the startup at once; the agent still answers `/metrics` and
/// `/status` for `--failure-linger` (so Prometheus scrapes the failed attempt that
/// `LlamafleetDownloadFailing` watches, and the operator reads why), then exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_is_scraped_before_the_agent_exits() {
    let origin = TestServer::start(Behaviour::default()).await;
    origin.with(|b| b.fail_next = [("HEAD", 404)].into_iter().collect());
    let url = origin.url("/missing.gguf");
    let mut server = launch(
        OsStr::new(&url),
        None,
        // Held failures are only those a restart would repeat: a 404 may heal, so it exits.
        &[
            "--allow-http",
            "--failure-linger",
            "5",
            "--hold-permanent-failure",
        ],
    );
    let started = Instant::now();
    let status = failed_status(&server.base, started).await;
    assert!(
        status["error"].as_str().unwrap_or("").contains("404"),
        "{status}"
    );
    let metrics = server.text("/metrics").await;
    assert!(
        metrics.contains("\nllamafleet_agent_download_errors_total 1\n"),
        "{metrics}"
    );
    let (code, _) = get_json(format!("{}/readyz", server.base)).await;
    assert_eq!(code, 503);
    let exit = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "no exit after the linger"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!exit.success(), "{exit:?}");
}

/// A wrong sha256 would fail every restart the same way, after downloading the whole file
/// again: with `--hold-permanent-failure` (what the operator passes) the agent stays up in
/// the failed phase, alive for its liveness probe and saying why, until it is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sha256_holds_the_failed_phase_instead_of_restarting() {
    let origin = TestServer::start(Behaviour {
        body: Arc::new(b"not the expected model".to_vec()),
        ..Behaviour::default()
    })
    .await;
    let url = origin.url("/m.gguf");
    let mut server = launch(
        OsStr::new(&url),
        None,
        &[
            "--sha256",
            SHA256,
            "--allow-http",
            "--failure-linger",
            "1",
            "--hold-permanent-failure",
        ],
    );
    let started = Instant::now();
    let status = failed_status(&server.base, started).await;
    let error = status["error"].as_str().unwrap_or("");
    assert!(error.contains("sha256 mismatch"), "{status}");
    // Well past the one-second linger: still up, live, not ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        server.child.try_wait().expect("wait").is_none(),
        "exited: a pod would restart and download again"
    );
    let (live, _) = get_json(format!("{}/healthz", server.base)).await;
    assert_eq!(live, 200);
    let (ready, _) = get_json(format!("{}/readyz", server.base)).await;
    assert_eq!(ready, 503);
    sigterm(&server.child);
    let exit = server.child.wait().expect("wait");
    assert!(
        !exit.success(),
        "a failed start still exits non-zero: {exit:?}"
    );
}
