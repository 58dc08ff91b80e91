//! Shared by the route test binaries: small variant servers on loopback, routing tables, and
//! an in-process router whose table file the tests rewrite.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream;
use llamafleet_agent::route::{self, RouteConfig};
use llamafleet_crds::routing::{RoutedTier, RoutedVariant, RouterStats, RoutingTable};
use serde_json::{Value, json};

/// How a test variant answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `hello from NAME`, streamed when asked (one `NAME ` chunk per `max_tokens`).
    Answer,
    /// 500 to everything.
    Fail,
    /// Streams two chunks, then drops the connection.
    Cut,
    /// 503 with `Retry-After` to everything (all slots and queue places taken).
    Busy,
}

/// A variant server and the request headers it received.
pub struct Upstream {
    pub url: String,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
}

/// Starts a variant server named `name` on a loopback port.
pub async fn upstream(name: &'static str, behaviour: Behaviour) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    upstream_on(listener, name, behaviour)
}

/// A loopback address nothing listens on (yet): a variant that sleeps.
pub fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Starts a variant server named `name` on `listener`; it is ready (`/readyz`) at once.
pub fn upstream_on(
    listener: tokio::net::TcpListener,
    name: &'static str,
    behaviour: Behaviour,
) -> Upstream {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = seen.clone();
    let chat = move |headers: HeaderMap, Json(body): Json<Value>| {
        recorder.lock().unwrap().push(headers);
        async move { answer(name, behaviour, &body) }
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route(
            "/v1/models",
            get(|| async { Json(json!({"object": "list", "data": [{"id": "m"}]})) }),
        )
        .route("/readyz", get(|| async { "ready" }));
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream {
        url: format!("http://{addr}"),
        seen,
    }
}

fn answer(name: &'static str, behaviour: Behaviour, body: &Value) -> Response {
    if behaviour == Behaviour::Busy {
        let error = json!({"error": {"message": "busy", "type": "server_error"}});
        let retry = [(header::RETRY_AFTER, "1")];
        return (StatusCode::SERVICE_UNAVAILABLE, retry, Json(error)).into_response();
    }
    if behaviour == Behaviour::Fail {
        let error = json!({"error": {"message": "boom", "type": "internal_error"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(error)).into_response();
    }
    let n = body["max_tokens"].as_u64().unwrap_or(3);
    if body["stream"] != json!(true) {
        let usage = json!({"prompt_tokens": 5, "completion_tokens": n, "total_tokens": 5 + n});
        let message = json!({"role": "assistant", "content": format!("hello from {name}")});
        let doc = json!({"object": "chat.completion", "choices": [{"index": 0, "message": message}], "usage": usage});
        return Json(doc).into_response();
    }
    let delay = Duration::from_millis(body["delay_ms"].as_u64().unwrap_or(0));
    let frames = stream::unfold(0u64, move |i| async move {
        if i > n {
            return None;
        }
        if i == 2 && behaviour == Behaviour::Cut {
            return Some((Err(std::io::Error::other("cut")), n + 1));
        }
        tokio::time::sleep(delay).await;
        let frame = if i == n {
            "data: [DONE]\n\n".to_string()
        } else {
            let chunk =
                json!({"choices": [{"index": 0, "delta": {"content": format!("{name} ")}}]});
            format!("data: {chunk}\n\n")
        };
        Some((Ok::<_, std::io::Error>(Bytes::from(frame)), i + 1))
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(frames),
    )
        .into_response()
}

/// A variant entry.
pub fn variant(name: &str, url: &str, weight: i32) -> RoutedVariant {
    RoutedVariant {
        name: name.into(),
        url: url.into(),
        weight,
        model: "m".into(),
        deployment: None,
        replicas: None,
    }
}

/// A one-replica table over `variants` with the given tiers.
pub fn table(variants: Vec<RoutedVariant>, tiers: Vec<RoutedTier>) -> RoutingTable {
    RoutingTable {
        tiers,
        ..RoutingTable::open(variants)
    }
}

/// Variant servers `blue` and `green` and an open table over them with these weights.
pub async fn blue_green(blue_weight: i32, green_weight: i32) -> (Upstream, Upstream, RoutingTable) {
    let blue = upstream("blue", Behaviour::Answer).await;
    let green = upstream("green", Behaviour::Answer).await;
    let t = RoutingTable::open(vec![
        variant("blue", &blue.url, blue_weight),
        variant("green", &green.url, green_weight),
    ]);
    (blue, green, t)
}

/// Polls `probe` every 20 ms until it yields a value; fails after `limit` (a "does not hang"
/// bound, not a timing check).
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An in-process router on a loopback port, reading its table from a temp dir.
pub struct Router {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl Router {
    /// Writes `table` and starts routing it (reloads are polled every 50 ms).
    pub async fn start(table: &RoutingTable) -> Router {
        Router::start_with(table, |_| {}).await
    }

    /// [`Router::start`] with the router's settings adjusted.
    pub async fn start_with(table: &RoutingTable, adjust: impl FnOnce(&mut RouteConfig)) -> Router {
        let dir = tempfile::tempdir().unwrap();
        let router = Router {
            base: String::new(),
            dir,
            client: reqwest::Client::new(),
        };
        router.write(table);
        let mut config = RouteConfig::new(router.config_path(), "127.0.0.1:0".parse().unwrap());
        config.poll_interval = Duration::from_millis(50);
        adjust(&mut config);
        let state = route::start(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, route::app(state)).await });
        Router {
            base: format!("http://{addr}"),
            ..router
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("routing.yaml")
    }

    /// Replaces the table file atomically (as a ConfigMap volume update does).
    pub fn write(&self, table: &RoutingTable) {
        self.write_text(&serde_norway::to_string(table).unwrap());
    }

    pub fn write_text(&self, text: &str) {
        let tmp = self.dir.path().join("routing.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    /// Waits until the router serves `revision` (it polls every 50 ms).
    pub async fn wait_for_revision(&self, revision: &str) {
        eventually("table reloaded", Duration::from_secs(10), || async move {
            (self.stats().await.revision == revision).then_some(())
        })
        .await;
    }

    /// The body of `GET path`.
    pub async fn get_text(&self, path: &str) -> String {
        let url = format!("{}{path}", self.base);
        let response = self.client.get(url).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub async fn stats(&self) -> RouterStats {
        let text = self.get_text(llamafleet_crds::routing::STATS_PATH).await;
        serde_json::from_str(&text).unwrap()
    }

    pub async fn metrics(&self) -> String {
        self.get_text("/metrics").await
    }

    /// A chat request (not sent).
    pub fn chat(&self, body: Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/chat/completions", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// The variant that answered.
pub fn answered_by(response: &reqwest::Response) -> String {
    response.headers()[llamafleet_crds::routing::PIN_HEADER]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A response body as JSON (reqwest is built without its `json` feature).
pub async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
