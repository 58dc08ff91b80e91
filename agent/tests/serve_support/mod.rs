//! Shared by the serve test binaries: the real model (or a skip), one engine per binary,
//! states built around it, and small HTTP helpers.
#![allow(dead_code)]

pub mod process;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response};
use llamafleet_agent::serve::engine::{Engine, EngineConfig};
use llamafleet_agent::serve::metrics::ServeMetrics;
use llamafleet_agent::serve::presets::Preset;
use llamafleet_agent::serve::state::{AppState, Phase, ServeOptions};
use serde_json::Value;

/// Tests share one engine with these settings (small, so CI stays fast).
pub const SLOTS: u32 = 4;
pub const CTX: u32 = 1024;
pub const MODEL: &str = "gemma-3-270m-q4_k_m";

/// The model path, or `None` (with a note) when it is not configured; fails under CI.
pub fn model_path() -> Option<PathBuf> {
    match std::env::var_os("LLAMAFLEET_TEST_MODEL") {
        Some(p) => Some(p.into()),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "LLAMAFLEET_TEST_MODEL is not set: run `export LLAMAFLEET_TEST_MODEL=$(scripts/fetch-test-model.sh)`"
            );
            eprintln!(
                "skipped: LLAMAFLEET_TEST_MODEL is not set (run scripts/fetch-test-model.sh)"
            );
            None
        }
    }
}

static METRICS: OnceLock<ServeMetrics> = OnceLock::new();
static ENGINE: OnceLock<Engine> = OnceLock::new();
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// How long a finished test waits for generations it cancelled (dropped streams) to leave the
/// engine: one decode step of four slots, with room for a loaded machine.
const SETTLE: Duration = Duration::from_secs(30);

/// One test's turn at the shared engine; see [`serial`].
pub struct Serial(#[allow(dead_code)] tokio::sync::MutexGuard<'static, ()>);

impl Drop for Serial {
    /// Waits until the engine holds no generation (the test's streams are dropped by now:
    /// `_g` is its first local), so the next test starts on an idle engine and the last one
    /// does not let the process exit under a decode, where llama.cpp's static destructors
    /// crashed the test binary once (SIGSEGV after every test had passed).
    fn drop(&mut self) {
        let Some(engine) = ENGINE.get() else { return };
        let started = Instant::now();
        while engine.stats().busy_slots.load(Ordering::Relaxed) != 0 && started.elapsed() < SETTLE {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Tests that read slot counts must not overlap; the others are slow on 2 cores anyway.
pub async fn serial() -> Serial {
    Serial(SERIAL.lock().await)
}

pub fn metrics() -> ServeMetrics {
    METRICS
        .get_or_init(|| ServeMetrics::new().expect("metrics"))
        .clone()
}

/// The engine of this test binary (loaded on first use).
pub fn engine() -> Option<Engine> {
    model_path()?;
    Some(
        ENGINE
            .get_or_init(|| engine_configured(|_| {}).expect("the model path is set"))
            .clone(),
    )
}

/// An engine of its own with `chat_template` overriding the model's (one slot).
pub fn engine_with_template(chat_template: &str) -> Option<Engine> {
    engine_configured(|c| {
        c.parallel = 1;
        c.chat_template = Some(chat_template.to_owned());
    })
}

/// An engine of its own: the shared engine's settings changed by `adjust`.
pub fn engine_configured(adjust: impl FnOnce(&mut EngineConfig)) -> Option<Engine> {
    let mut config = EngineConfig {
        ctx: CTX,
        parallel: SLOTS,
        threads: 2,
        ..EngineConfig::new(model_path()?)
    };
    adjust(&mut config);
    Some(Engine::load(config, metrics().engine).expect("load the test model"))
}

/// A ready state around the shared engine; `adjust` changes options before it is built.
pub fn ready_state(
    adjust: impl FnOnce(&mut ServeOptions),
    presets: Vec<Preset>,
    api_key: Option<&str>,
) -> Option<AppState> {
    Some(ready_state_for(engine()?, adjust, presets, api_key))
}

/// A ready state around `engine`.
pub fn ready_state_for(
    engine: Engine,
    adjust: impl FnOnce(&mut ServeOptions),
    presets: Vec<Preset>,
    api_key: Option<&str>,
) -> AppState {
    let slots = engine.info().slots as usize;
    let mut options = ServeOptions::new(MODEL, slots);
    adjust(&mut options);
    let state = AppState::new(
        options,
        slots,
        metrics(),
        presets,
        api_key.map(str::to_owned),
    );
    state.engine.set(engine).expect("fresh state");
    state.update(|s| {
        s.phase = Phase::Ready;
        s.sha256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818".into();
    });
    state
}

pub fn post(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

pub async fn json_body(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Serves the app on a loopback port (for streaming tests).
pub async fn listen(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = llamafleet_agent::serve::app(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Serves `state` on a loopback port, POSTs `body` to `uri` and returns the SSE chunks
/// (every `data:` line but `[DONE]`) parsed.
pub async fn sse_chunks(state: &AppState, uri: &str, body: &Value) -> Vec<Value> {
    let addr = listen(state.clone()).await;
    let sse = reqwest::Client::new()
        .post(format!("http://{addr}{uri}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("body");
    sse_data(&sse)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("chunk {d:?}: {e}")))
        .collect()
}

/// The named events of an SSE answer (Anthropic's and the Responses API's): `(event, data)`,
/// each data's `type` checked to be the event's name.
pub async fn sse_events(state: &AppState, uri: &str, body: &Value) -> Vec<(String, Value)> {
    use tower::ServiceExt;
    let response = llamafleet_agent::serve::app(state.clone())
        .oneshot(post(uri, body))
        .await
        .expect("infallible");
    assert_eq!(response.status(), axum::http::StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    text.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let field = |name: &str| frame.lines().find_map(|l| l.strip_prefix(name));
            let event = field("event: ").expect("event name").to_owned();
            let data: Value = serde_json::from_str(field("data: ").expect("data")).expect("JSON");
            assert_eq!(data["type"], event.as_str(), "{frame}");
            (event, data)
        })
        .collect()
}

/// Lines of an SSE body's `data:` fields.
pub fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

/// Runs tests/clients/compat.py and fields.py (the official openai and ollama clients)
/// against `base`;
/// `false` when those clients are not installed (which fails under CI).
pub async fn python_clients(base: &str, model: &str, key: &str) -> bool {
    if !python_clients_installed() {
        return false;
    }
    // The crate dir at run time: a reused test binary may come from another checkout.
    let clients =
        std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo test"))
            .join("tests/clients");
    // compat.py: the clients' calls work; fields.py: every field of their request types is
    // honoured or refused by name.
    for (script, done) in [("compat.py", "compat ok"), ("fields.py", "fields ok")] {
        let args = [
            clients.join(script).display().to_string(),
            base.to_owned(),
            model.to_owned(),
            key.to_owned(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("python3").args(args).output()
        })
        .await
        .expect("join")
        .expect("python3");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(done),
            "{script}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    true
}

/// Whether `python3` can import the official `openai` and `ollama` clients; a missing client
/// fails under CI and is a noted skip elsewhere.
pub fn python_clients_installed() -> bool {
    process::tool_available(
        std::process::Command::new("python3").args(["-c", "import openai, ollama"]),
        "python openai/ollama",
        "bash scripts/setup.sh test",
    )
}

/// `llamafleet-agent` as a child process: logs (RUST_LOG, default warn) to the test's stderr.
pub fn agent_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_llamafleet-agent"));
    command
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    command
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One request through the whole app in process: status and JSON body.
pub async fn call(state: &AppState, request: Request<Body>) -> (axum::http::StatusCode, Value) {
    use tower::ServiceExt;
    let response = llamafleet_agent::serve::app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    (status, json_body(response).await)
}

/// A greedy `/v1/completions` body.
pub fn greedy_completion(prompt: &str, max_tokens: u32) -> Value {
    serde_json::json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
}
