//! `llamafleet-agent compare` against a real `serve` with the test model (directly, and through
//! a pass-through proxy that records the router pin header).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response};
use llamafleet_crds::routing::PIN_HEADER;
use serde_json::Value;
use serve_support::MODEL;
use serve_support::free_port;
use serve_support::process::{KEY, spawn_server};

type Pins = Arc<Mutex<Vec<String>>>;

/// A pass-through HTTP proxy to `upstream` on loopback that records each request's pin header
/// (the agent itself ignores the header, so this is where it can be seen).
async fn pin_recording_proxy(upstream: String) -> (String, Pins) {
    let pins = Pins::default();
    let seen = pins.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: Request<Body>| {
        let (seen, client, upstream) = (seen.clone(), client.clone(), upstream.clone());
        async move {
            let (parts, body) = request.into_parts();
            let pin = parts
                .headers
                .get(PIN_HEADER)
                .map(|v| v.to_str().unwrap().to_owned());
            seen.lock().unwrap().push(pin.unwrap_or_default());
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let mut forward = client
                .request(parts.method, format!("{upstream}{}", parts.uri.path()))
                .body(body);
            for name in ["authorization", "content-type"] {
                if let Some(value) = parts.headers.get(name) {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.send().await.unwrap();
            Response::builder()
                .status(answer.status())
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), pins)
}

const PROMPTS: &str = "Name a colour.\n\nCount from one to five.\n";

/// Runs `compare` with `args` (after `--prompts` and `--out`) and returns its output.
async fn compare(dir: &Path, prompts: &str, args: &[&str]) -> Output {
    let file = dir.join("prompts.txt");
    std::fs::write(&file, prompts).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_llamafleet-agent"))
        .arg("compare")
        .arg("--prompts")
        .arg(&file)
        .arg("--out")
        .arg(dir.join("report"))
        .args(["--max-tokens", "16"])
        .args(args)
        .output()
        .await
        .expect("run compare")
}

fn read_report(dir: &Path) -> (Value, String) {
    let json = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    (serde_json::from_str(&json).expect("JSON report"), md)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every sample of `variant` succeeded with real figures.
fn assert_measured(report: &Value, variant: usize) {
    for prompt in report["prompts"].as_array().unwrap() {
        for s in prompt["variants"][variant]["samples"].as_array().unwrap() {
            assert_eq!(s["error"], Value::Null, "{s}");
            let text = s["text"].as_str().unwrap();
            assert!(!text.is_empty(), "{s}");
            assert_eq!(s["length"], text.chars().count());
            let (latency, ttft) = (
                s["latency_ms"].as_f64().unwrap(),
                s["ttft_ms"].as_f64().unwrap(),
            );
            assert!(ttft > 0.0 && latency >= ttft, "{s}");
            assert_eq!(s["tokens_from_usage"], true, "the agent reports usage: {s}");
            let tokens = s["tokens"].as_u64().unwrap();
            assert!((1..=16).contains(&tokens), "{s}");
            assert!(s["tokens_per_second"].as_f64().unwrap() > 0.0, "{s}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_model_twice_agrees_exactly_and_is_measured() {
    let Some(server) = spawn_server(Some(KEY), &[]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    let a = format!("a={}", server.base);
    let b = format!("b={}/", server.base);
    let key_file = dir.path().join("key");
    let out = compare(
        dir.path(),
        PROMPTS,
        &[
            "--url",
            &a,
            "--url",
            &b,
            "--api-key-file",
            key_file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let (report, md) = read_report(dir.path());
    assert_eq!(report["baseline"], "a");
    assert_eq!(
        report["variants"][1]["model"], MODEL,
        "discovered from /v1/models"
    );
    assert_eq!(report["prompts"][1]["prompt"], "Count from one to five.");
    assert_measured(&report, 0);
    assert_measured(&report, 1);
    for p in report["prompts"].as_array().unwrap() {
        let (x, y) = (
            &p["variants"][0]["samples"][0]["text"],
            &p["variants"][1]["samples"][0]["text"],
        );
        assert_eq!(x, y, "temperature 0, same model");
        assert_eq!(p["variants"][0]["agreement"], Value::Null);
        assert_eq!(p["variants"][1]["agreement"]["exact_match_rate"], 1.0);
    }
    let summary = &report["summary"];
    for v in 0..2 {
        assert_eq!(summary[v]["requests"], 2);
        assert_eq!(summary[v]["errors"], 0);
        assert!(summary[v]["latency_ms"]["p95"].as_f64().unwrap() > 0.0);
        assert!(summary[v]["tokens_per_second"]["median"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(summary[1]["agreement"]["compared"], 2);
    assert_eq!(summary[1]["agreement"]["exact_match_rate"], 1.0);
    assert_eq!(summary[1]["agreement"]["mean_similarity"], 1.0);
    assert!(md.contains("Baseline: `a`"), "{md}");
    let row_b = md
        .lines()
        .find(|l| l.starts_with("| `b` |"))
        .expect("summary row of b");
    assert!(
        row_b.starts_with("| `b` | 2 | 0 |") && row_b.ends_with("| 100% | 1.000 |"),
        "{row_b}"
    );
    assert!(md.contains("| 2 | Count from one to five. | `a` |"), "{md}");
    assert!(!md.contains("**Errors**"), "{md}");

    // Through a router: every request, model discovery included, carries its variant's pin.
    let (proxy, pins) = pin_recording_proxy(server.base.clone()).await;
    let out = compare(
        dir.path(),
        PROMPTS,
        &[
            "--endpoint",
            &proxy,
            "--variants",
            "blue,green",
            "--api-key",
            KEY,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut pins = pins.lock().unwrap().clone();
    pins.sort();
    assert_eq!(pins, ["blue", "blue", "blue", "green", "green", "green"]);
    let (report, _) = read_report(dir.path());
    assert_eq!(report["variants"][0]["pinned"], true);
    assert_eq!(report["summary"][1]["variant"], "green");
    assert_eq!(report["summary"][1]["agreement"]["exact_match_rate"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_refusing_connections_is_reported_and_fails_the_command() {
    let Some(server) = spawn_server(Some(KEY), &[]).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let a = format!("a={}", server.base);
    let b = format!("b=http://127.0.0.1:{}", free_port());
    let out = compare(
        dir.path(),
        PROMPTS,
        &[
            "--url",
            &a,
            "--url",
            &b,
            "--api-key",
            KEY,
            "--model",
            MODEL,
            "--concurrency",
            "2",
        ],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("every request to \"b\" failed"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    let (report, md) = read_report(dir.path());
    assert_measured(&report, 0);
    let summary = &report["summary"];
    assert_eq!(summary[0]["errors"], 0);
    assert_eq!(
        (&summary[1]["requests"], &summary[1]["errors"]),
        (&2.into(), &2.into())
    );
    assert_eq!(summary[1]["latency_ms"]["median"], Value::Null);
    assert_eq!(summary[1]["agreement"]["compared"], 0);
    assert!(
        md.contains("- `b`: 2 of 2 requests failed; first: "),
        "{md}"
    );
    assert!(md.contains("**error:**"), "{md}");
}

#[tokio::test]
async fn a_bad_prompts_file_is_refused_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (a, b) = (
        format!("a=http://127.0.0.1:{port}"),
        format!("b=http://127.0.0.1:{port}"),
    );
    let urls = ["--url", a.as_str(), "--url", b.as_str()];
    let bad = "{\"prompt\": \"Name a colour.\"}\n\n{\"prompt\": \"unclosed}\n";
    let out = compare(dir.path(), bad, &urls).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("prompts.txt:3: not a JSON object"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("report.json").exists());
    let out = compare(dir.path(), "\n  \n", &urls).await;
    assert!(stderr(&out).contains("has no prompts"), "{}", stderr(&out));
    let out = compare(dir.path(), PROMPTS, &["--url", a.as_str()]).await;
    assert!(
        stderr(&out).contains("at least two variants"),
        "{}",
        stderr(&out)
    );
}
