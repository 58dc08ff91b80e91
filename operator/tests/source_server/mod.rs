//! A model source on 127.0.0.1 for tests: a "hub" port that answers Hugging Face style
//! (`/o/r/resolve/<rev>/<file>` → 302 with `X-Linked-Etag`, `X-Linked-Size`,
//! `X-Repo-Commit`) and a "cdn" port (another origin) that serves the bytes with HEAD and
//! Range support. `/plain/<file>` on the hub serves the bytes directly, without HF headers.
//! The content can be replaced between checks; every request is recorded with its
//! `Authorization` header.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Response, StatusCode, Uri, header};
use llamafleet_crds::{LlmModel, LlmModelSpec, ModelSource};

/// The file the source serves now.
#[derive(Clone)]
pub struct Content {
    pub bytes: Arc<Vec<u8>>,
    /// Version number: drives the ETag and commit the server announces.
    pub version: u32,
}

impl Content {
    /// The real sha256 of the bytes (update variants are named by its first digits).
    pub fn sha256(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.bytes.as_slice()))
    }
    pub fn etag(&self) -> String {
        format!("\"etag-v{}\"", self.version)
    }
    pub fn commit(&self) -> String {
        format!("{:040x}", 0xc0_0000u64 + u64::from(self.version))
    }
}

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub port: u16,
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
}

#[derive(Clone)]
struct Shared {
    content: Arc<Mutex<Content>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    cdn: SocketAddr,
}

/// A running source.
pub struct SourceServer {
    pub hub: SocketAddr,
    pub cdn: SocketAddr,
    content: Arc<Mutex<Content>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub const LAST_MODIFIED: &str = "Fri, 02 Jan 2026 00:00:00 GMT";

impl SourceServer {
    pub async fn start(bytes: Vec<u8>) -> Self {
        Self::start_on("127.0.0.1", bytes).await
    }

    /// The same on another local address (the real test node's, where pods reach it).
    pub async fn start_on(ip: &str, bytes: Vec<u8>) -> Self {
        let hub_listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let cdn_listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let (hub, cdn) = (
            hub_listener.local_addr().unwrap(),
            cdn_listener.local_addr().unwrap(),
        );
        let content = Arc::new(Mutex::new(Content {
            bytes: Arc::new(bytes),
            version: 1,
        }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            content: content.clone(),
            seen: seen.clone(),
            cdn,
        };
        for listener in [hub_listener, cdn_listener] {
            let app = Router::new().fallback(handle).with_state(shared.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Self {
            hub,
            cdn,
            content,
            seen,
        }
    }

    /// Hugging Face style URL on the hub.
    pub fn hf_url(&self) -> String {
        format!("http://{}/o/r/resolve/main/m.gguf", self.hub)
    }

    /// Plain URL on the hub (no redirect, no HF headers).
    pub fn plain_url(&self) -> String {
        format!("http://{}/plain/m.gguf", self.hub)
    }

    pub fn content(&self) -> Content {
        self.content.lock().unwrap().clone()
    }

    /// Publishes a new file (a new version: new sha256, ETag and commit).
    pub fn replace(&self, bytes: Vec<u8>) {
        let mut c = self.content.lock().unwrap();
        c.bytes = Arc::new(bytes);
        c.version += 1;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Bytes of file data asked for by ranged GETs where bytes are served (redirects repeat
    /// the Range header but send nothing).
    pub fn ranged_bytes(&self) -> u64 {
        self.seen()
            .iter()
            .filter(|s| s.path.starts_with("/blob/") || s.path.starts_with("/plain/"))
            .filter_map(|s| s.range.as_deref())
            .filter_map(parse_range)
            .map(|(a, b)| b.map_or(0, |b| b + 1 - a))
            .sum()
    }
}

fn parse_range(v: &str) -> Option<(u64, Option<u64>)> {
    let (a, b) = v.strip_prefix("bytes=")?.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()))
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let port = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let get = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    s.seen.lock().unwrap().push(Seen {
        port,
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: get(header::AUTHORIZATION),
        range: get(header::RANGE),
    });
    let content = s.content.lock().unwrap().clone();
    let path = uri.path();
    if path.starts_with("/o/r/resolve/") && path.ends_with("/m.gguf") {
        let location = format!("http://{}/blob/{}", s.cdn, content.sha256());
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, location)
            .header("x-linked-etag", format!("\"{}\"", content.sha256()))
            .header("x-linked-size", content.bytes.len().to_string())
            .header("x-repo-commit", content.commit())
            .body(Body::empty())
            .unwrap();
    }
    if path.starts_with("/blob/") || path == "/plain/m.gguf" {
        return serve_bytes(&method, &headers, &content);
    }
    Response::builder()
        .status(StatusCode::NOT_FOUND)
        .body(Body::empty())
        .unwrap()
}

fn serve_bytes(method: &Method, headers: &HeaderMap, content: &Content) -> Response<Body> {
    let total = content.bytes.len() as u64;
    let base = || {
        Response::builder()
            .header(header::ETAG, content.etag())
            .header(header::LAST_MODIFIED, LAST_MODIFIED)
            .header(header::ACCEPT_RANGES, "bytes")
    };
    if *method == Method::HEAD {
        return base()
            .header(header::CONTENT_LENGTH, total)
            .body(Body::empty())
            .unwrap();
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    match range {
        Some((start, end)) if start < total => {
            let end = end.unwrap_or(total - 1).min(total - 1);
            let slice = content.bytes[start as usize..=end as usize].to_vec();
            base()
                .status(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {start}-{end}/{total}"),
                )
                .body(Body::from(slice))
                .unwrap()
        }
        Some(_) => Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{total}"))
            .body(Body::empty())
            .unwrap(),
        None => base().body(Body::from(content.bytes.to_vec())).unwrap(),
    }
}

/// An LlmModel in `default` whose source is `url` (plain http allowed), nothing else set.
pub fn model_at(url: &str) -> LlmModel {
    let mut m = LlmModel::new(
        "m",
        LlmModelSpec {
            source: ModelSource {
                url: url.into(),
                sha256: None,
                auth_secret_ref: None,
                allow_insecure_http: Some(true),
            },
            quantization: None,
            context_length: None,
            chat_template: None,
            update: None,
        },
    );
    m.metadata.namespace = Some("default".into());
    m
}
