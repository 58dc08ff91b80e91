//! HTTP side of resolving a model: HEAD for size and revision facts, then ranged GETs of just
//! the GGUF header, parsed by the strict reader as bytes arrive.
//!
//! The same approach as the agent's `inspect` (which cannot be shared without the operator
//! linking the agent, and through it llama.cpp): redirects are followed by hand, so Hugging
//! Face's `X-Linked-*` headers on the redirect are kept and the bearer token never leaves the
//! source's origin.

use std::time::Duration;

use futures_util::StreamExt;
use llamafleet_gguf::{GgufError, GgufHeader, INITIAL_READ_BYTES, Limits, next_read_len, parse};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, Method, Response, StatusCode};
use url::Url;

/// Enough for Hugging Face (resolve → CDN) with room to spare; loops end here.
const MAX_REDIRECTS: usize = 10;
/// A source that does not accept a connection in this long is reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request (a HEAD or one header chunk of a few MiB) finishes well within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No answer (DNS, connection, TLS, timeout).
    #[error("{method} {url}: {message}")]
    Unreachable {
        /// HEAD or GET.
        method: &'static str,
        /// The URL contacted.
        url: String,
        /// The cause, with its chain.
        message: String,
    },
    /// An HTTP error status.
    #[error("{method} {url}: HTTP {status}")]
    Status {
        /// HEAD or GET.
        method: &'static str,
        /// The URL that answered.
        url: String,
        /// Status code and reason.
        status: String,
    },
    /// A redirect loop, a redirect to plain http, or a malformed Location/Content-Range.
    #[error("{url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The header is not valid GGUF.
    #[error("{url}: invalid GGUF header: {error}")]
    Gguf {
        /// The URL.
        url: String,
        /// The rule it broke.
        error: GgufError,
    },
}

/// What the HEAD (and its redirects) said about the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Size: `Content-Length` of the final answer, else `X-Linked-Size`.
    pub size: Option<u64>,
    /// `ETag` of the final answer.
    pub etag: Option<String>,
    /// `Last-Modified` of the final answer.
    pub last_modified: Option<String>,
    /// `X-Linked-Etag` when it is a sha256 (Hugging Face LFS objects).
    pub sha256: Option<String>,
    /// `X-Repo-Commit` (Hugging Face).
    pub revision: Option<String>,
}

/// Who may be contacted and with which credentials.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Bearer token, sent only to the origin of the source URL.
    pub bearer: Option<&'a str>,
    /// Whether plain http is permitted (also for redirect targets).
    pub allow_http: bool,
}

/// Same scheme, host and port: the only place a bearer token may be sent.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A Hugging Face `.../resolve/<revision>/...` URL with the revision replaced by `commit`.
pub fn pin_revision(url: &Url, commit: &str) -> Option<Url> {
    let segments: Vec<&str> = url.path_segments()?.collect();
    let at = segments.iter().position(|s| *s == "resolve")?;
    if at + 2 >= segments.len() || segments[at + 1] == commit {
        return (at + 2 < segments.len()).then(|| url.clone());
    }
    let mut pinned = url.clone();
    let mut path: Vec<&str> = segments.clone();
    path[at + 1] = commit;
    pinned.set_path(&path.join("/"));
    Some(pinned)
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

fn sha256_of_linked_etag(value: &str) -> Option<String> {
    let v = value
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase();
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then_some(v)
}

/// Error text with its causes (reqwest's own text hides "connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn method_name(m: &Method) -> &'static str {
    if *m == Method::HEAD { "HEAD" } else { "GET" }
}

/// The operator's HTTP client for sources.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Client,
    limits: Limits,
}

impl Fetcher {
    /// A client that follows no redirect on its own.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("llamafleet-operator/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            limits: Limits::default(),
        })
    }

    /// Sends a request, following redirects by hand; also returns the facts the redirects
    /// carried.
    async fn send(
        &self,
        access: Access<'_>,
        method: Method,
        url: &Url,
        headers: HeaderMap,
    ) -> Result<(Response, Head), FetchError> {
        let mut current = url.clone();
        let mut linked = Head::default();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self
                .client
                .request(method.clone(), current.clone())
                .headers(headers.clone());
            if let Some(token) = access.bearer
                && same_origin(url, &current)
            {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.map_err(|e| FetchError::Unreachable {
                method: method_name(&method),
                url: current.to_string(),
                message: chain(&e),
            })?;
            let h = response.headers();
            if linked.sha256.is_none() {
                linked.sha256 = header_str(h, "x-linked-etag").and_then(sha256_of_linked_etag);
            }
            if linked.size.is_none() {
                linked.size = header_u64(h, "x-linked-size");
            }
            if linked.revision.is_none() {
                linked.revision = header_str(h, "x-repo-commit").map(str::to_owned);
            }
            if !response.status().is_redirection() {
                return Ok((response, linked));
            }
            let Some(location) = header_str(h, "location") else {
                return Ok((response, linked));
            };
            let next = current.join(location).map_err(|e| FetchError::Protocol {
                url: current.to_string(),
                message: format!("bad redirect to {location:?}: {e}"),
            })?;
            match next.scheme() {
                "https" => {}
                "http" if access.allow_http => {}
                _ => {
                    return Err(FetchError::Protocol {
                        url: current.to_string(),
                        message: format!("refusing redirect to {next}"),
                    });
                }
            }
            current = next;
        }
        Err(FetchError::Protocol {
            url: url.to_string(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// HEAD, following redirects. A server that refuses HEAD yields what the redirects said.
    pub async fn head(&self, access: Access<'_>, url: &Url) -> Result<Head, FetchError> {
        let (response, linked) = self
            .send(access, Method::HEAD, url, HeaderMap::new())
            .await?;
        let status = response.status();
        if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_IMPLEMENTED {
            return Ok(linked);
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                method: "HEAD",
                url: url.to_string(),
                status: status.to_string(),
            });
        }
        let h = response.headers();
        Ok(Head {
            size: header_u64(h, "content-length").or(linked.size),
            etag: header_str(h, "etag").map(str::to_owned),
            last_modified: header_str(h, "last-modified").map(str::to_owned),
            ..linked
        })
    }

    /// Reads `[start, start + len)`; returns the bytes and the file size from
    /// `Content-Range`. A server that ignores Range is read only as far as needed.
    async fn read_range(
        &self,
        access: Access<'_>,
        url: &Url,
        start: u64,
        len: u64,
    ) -> Result<(Vec<u8>, Option<u64>), FetchError> {
        let mut headers = HeaderMap::new();
        let range = format!("bytes={}-{}", start, start + len.max(1) - 1);
        if let Ok(v) = HeaderValue::from_str(&range) {
            headers.insert(header::RANGE, v);
        }
        let (response, _) = self.send(access, Method::GET, url, headers).await?;
        let bad_range = |value: &str| FetchError::Protocol {
            url: url.to_string(),
            message: format!("bad Content-Range {value:?} for a read from byte {start}"),
        };
        let (skip, total) = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let value = header_str(response.headers(), "content-range").unwrap_or_default();
                let (got, total) = content_range(value).ok_or_else(|| bad_range(value))?;
                if got != start {
                    return Err(bad_range(value));
                }
                (0, total)
            }
            StatusCode::OK => (start, header_u64(response.headers(), "content-length")),
            other => {
                return Err(FetchError::Status {
                    method: "GET",
                    url: url.to_string(),
                    status: other.to_string(),
                });
            }
        };
        let mut out = Vec::new();
        let mut skipped = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Unreachable {
                method: "GET",
                url: url.to_string(),
                message: chain(&e),
            })?;
            let mut data = &chunk[..];
            if skipped < skip {
                let n = (skip - skipped).min(data.len() as u64) as usize;
                skipped += n as u64;
                data = &data[n..];
            }
            let want = usize::try_from(len - out.len() as u64).unwrap_or(usize::MAX);
            out.extend_from_slice(&data[..data.len().min(want)]);
            if out.len() as u64 >= len {
                break;
            }
        }
        Ok((out, total))
    }

    /// Fetches and parses the header with growing ranged GETs; `size` is the file size when
    /// HEAD announced it. Returns the header and the bytes fetched.
    pub async fn read_header(
        &self,
        access: Access<'_>,
        url: &Url,
        size: Option<u64>,
    ) -> Result<(GgufHeader, u64), FetchError> {
        let first = INITIAL_READ_BYTES
            .min(self.limits.max_header_bytes)
            .min(size.unwrap_or(u64::MAX));
        let (mut buf, total) = self.read_range(access, url, 0, first).await?;
        let file_size = size.or(total).ok_or_else(|| FetchError::Protocol {
            url: url.to_string(),
            message: "the server announced no size (needed to bound the header)".into(),
        })?;
        let gguf = |error| FetchError::Gguf {
            url: url.to_string(),
            error,
        };
        loop {
            match parse(&buf, file_size, &self.limits) {
                Err(GgufError::NeedMoreBytes { have, needed }) => {
                    let want = next_read_len(have, needed, file_size, &self.limits);
                    let (more, _) = self.read_range(access, url, have, want - have).await?;
                    if more.is_empty() {
                        return Err(gguf(GgufError::Truncated {
                            field: "header".into(),
                            offset: have,
                            needed: needed - have,
                            remaining: 0,
                        }));
                    }
                    buf.extend_from_slice(&more);
                }
                Err(error) => return Err(gguf(error)),
                Ok(header) => return Ok((header, buf.len() as u64)),
            }
        }
    }
}

/// Parses `bytes a-b/total` → (a, total); total `*` is `None`.
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((start.parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pins_hugging_face_revisions() {
        let u = Url::parse("https://huggingface.co/o/r/resolve/main/dir/m.gguf").unwrap();
        assert_eq!(
            pin_revision(&u, "abc123").unwrap().as_str(),
            "https://huggingface.co/o/r/resolve/abc123/dir/m.gguf"
        );
        let plain = Url::parse("https://example.com/m.gguf").unwrap();
        assert_eq!(pin_revision(&plain, "abc123"), None);
    }

    #[test]
    fn linked_etag_must_be_a_sha256() {
        let sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        assert_eq!(
            sha256_of_linked_etag(&format!("\"{}\"", sha.to_uppercase())).as_deref(),
            Some(sha)
        );
        assert_eq!(sha256_of_linked_etag("\"abc-123\""), None);
    }

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range("bytes 10-19/100"), Some((10, Some(100))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
