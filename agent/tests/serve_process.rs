//! The real `llamafleet-agent serve` binary: startup through the store, SIGTERM with a stream
//! in flight, `promtool check metrics`, and the official Python clients.

mod serve_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use serve_support::process::{KEY, spawn_server};

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
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
    assert_eq!(
        status["sha256"],
        "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    );
    assert_eq!(status["layers_total"], 18);
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
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_the_official_python_clients_work() {
    let Some(server) = spawn_server(Some(KEY), &[]).await else {
        return;
    };
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("process_resident_memory_bytes"));
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
                "promtool is missing (apt-get install prometheus)"
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
