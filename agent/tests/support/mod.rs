//! A deliberately misbehaving HTTP/1.1 server on 127.0.0.1 for store tests.
//!
//! Written on raw TCP rather than axum/hyper because its job is to break HTTP on purpose:
//! cut a body mid-way after announcing its length, ignore Range, announce one size and send
//! another. A conforming server library refuses to do most of that.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub authorization: Option<String>,
}

/// How the server behaves; change it between requests through [`TestServer::with`].
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// What GET serves.
    pub body: Arc<Vec<u8>>,
    /// For successive GETs: cut the connection once this absolute offset is reached.
    pub drop_at: VecDeque<u64>,
    /// Answer 200 with the whole body even to Range requests.
    pub ignore_range: bool,
    /// Size announced by HEAD (instead of the body's length).
    pub head_size: Option<u64>,
    /// Send GET bodies without Content-Length (EOF-delimited).
    pub no_content_length: bool,
    /// `ETag` header.
    pub etag: Option<String>,
    /// `X-Linked-Etag` header (Hugging Face LFS sha256).
    pub linked_etag: Option<String>,
    /// Answer every request with 302 to this base URL (path appended).
    pub redirect_to: Option<String>,
    /// (method, status): the next requests of that method, one entry each, are answered with
    /// the status and an empty body (a CDN that is briefly unavailable, a rate limit).
    pub fail_next: VecDeque<(&'static str, u16)>,
    /// Answer ranged GETs with 416.
    pub range_416: bool,
    /// Send GET bodies up to this absolute offset, then wait for `resume` before the rest
    /// (a download caught in progress).
    pub pause_at: Option<u64>,
    /// Releases a GET paused at `pause_at`.
    pub resume: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct State {
    behaviour: Behaviour,
    seen: Vec<Seen>,
}

/// A running server; stops when dropped (the runtime ends).
#[derive(Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub async fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            behaviour,
            seen: Vec::new(),
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, state).await;
                });
            }
        });
        TestServer { addr, state }
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Same server, other host name: `http://localhost:<port><path>`.
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    pub fn with(&self, change: impl FnOnce(&mut Behaviour)) {
        change(&mut self.state.lock().unwrap().behaviour);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn gets(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "GET")
            .collect()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn parse_range(value: &str, len: u64) -> Option<(u64, u64)> {
    let spec = value.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: u64 = start.parse().ok()?;
    let end = if end.is_empty() {
        len.saturating_sub(1)
    } else {
        end.parse::<u64>().ok()?.min(len - 1)
    };
    Some((start, end))
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut first = head.lines().next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let seen = Seen {
        method: method.clone(),
        path: path.clone(),
        range: header(&head, "range").map(str::to_owned),
        if_range: header(&head, "if-range").map(str::to_owned),
        authorization: header(&head, "authorization").map(str::to_owned),
    };
    let (b, drop_at, fail) = {
        let mut s = state.lock().unwrap();
        s.seen.push(seen.clone());
        let fail = s
            .behaviour
            .fail_next
            .iter()
            .position(|(m, _)| *m == method)
            .and_then(|at| s.behaviour.fail_next.remove(at))
            .map(|(_, status)| status);
        let drop_at = if method == "GET" {
            s.behaviour.drop_at.pop_front()
        } else {
            None
        };
        (s.behaviour.clone(), drop_at, fail)
    };
    if let Some(status) = fail {
        let resp =
            format!("HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return socket.write_all(resp.as_bytes()).await;
    }

    let mut extra = String::new();
    if let Some(etag) = &b.etag {
        extra += &format!("ETag: {etag}\r\n");
    }
    if let Some(linked) = &b.linked_etag {
        extra += &format!("X-Linked-Etag: \"{linked}\"\r\n");
    }
    if let Some(base) = &b.redirect_to {
        let resp = format!(
            "HTTP/1.1 302 Found\r\nLocation: {base}{path}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return socket.write_all(resp.as_bytes()).await;
    }
    let len = b.body.len() as u64;
    if method == "HEAD" {
        let size = b.head_size.unwrap_or(len);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n"
        );
        return socket.write_all(resp.as_bytes()).await;
    }
    let range = seen.range.as_deref().and_then(|r| parse_range(r, len));
    if range.is_some() && b.range_416 {
        let resp = format!(
            "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return socket.write_all(resp.as_bytes()).await;
    }
    let (status, start, end) = match range {
        Some((start, end)) if !b.ignore_range && start < len => {
            ("206 Partial Content", start, end + 1)
        }
        _ => ("200 OK", 0, len),
    };
    let mut resp = format!("HTTP/1.1 {status}\r\n{extra}Connection: close\r\n");
    if status.starts_with("206") {
        resp += &format!("Content-Range: bytes {start}-{}/{len}\r\n", end - 1);
    }
    if !b.no_content_length {
        resp += &format!("Content-Length: {}\r\n", end - start);
    }
    resp += "\r\n";
    socket.write_all(resp.as_bytes()).await?;
    let stop = drop_at.map_or(end, |d| d.clamp(start, end));
    let pause = b.pause_at.map_or(stop, |p| p.clamp(start, stop));
    write_body(&mut socket, &b.body[start as usize..pause as usize]).await?;
    if pause < stop {
        b.resume.notified().await;
        write_body(&mut socket, &b.body[pause as usize..stop as usize]).await?;
    }
    // Dropping the socket here cuts the body short when `stop < end`.
    Ok(())
}

async fn write_body(socket: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    for piece in body.chunks(64 << 10) {
        socket.write_all(piece).await?;
    }
    socket.flush().await
}
