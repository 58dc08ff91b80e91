//! HTTP: redirects followed by hand (to keep Hugging Face's `X-Linked-*` headers from the
//! redirect and to drop the bearer token on any other origin), HEAD to learn size and hash,
//! and one ranged GET attempt streamed into a [`Sink`].

use std::path::Path;

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, Method, Response, StatusCode};
use url::Url;

use super::StoreError;
use super::hash::{Sink, Written};
use super::metrics::StoreMetrics;
use super::progress::Progress;
use super::source::{normalize_sha256, same_origin};

/// Enough for Hugging Face (resolve → CDN) with room to spare; loops end here.
const MAX_REDIRECTS: usize = 10;

/// Who may be contacted and with which credentials.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The client (built without automatic redirects).
    pub client: &'a Client,
    /// Bearer token, sent only to the origin of the first URL.
    pub bearer: Option<&'a str>,
    /// Whether plain http is permitted (also for redirect targets).
    pub allow_http: bool,
}

/// Headers a Hugging Face redirect carries about the LFS object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    /// `X-Linked-Etag` when it is a sha256 (LFS objects).
    pub sha256: Option<String>,
    /// `X-Linked-Size`.
    pub size: Option<u64>,
    /// `X-Repo-Commit`.
    pub revision: Option<String>,
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

impl Linked {
    fn absorb(&mut self, headers: &HeaderMap) {
        if self.sha256.is_none() {
            self.sha256 = header_str(headers, "x-linked-etag")
                .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
                .and_then(|v| normalize_sha256(v).ok());
        }
        if self.size.is_none() {
            self.size = header_u64(headers, "x-linked-size");
        }
        if self.revision.is_none() {
            self.revision = header_str(headers, "x-repo-commit").map(str::to_owned);
        }
    }
}

/// Sends a request, following redirects by hand.
pub async fn send(
    access: Access<'_>,
    method: Method,
    url: &Url,
    headers: HeaderMap,
) -> Result<(Response, Linked), StoreError> {
    let mut current = url.clone();
    let mut linked = Linked::default();
    for _ in 0..=MAX_REDIRECTS {
        let mut request = access
            .client
            .request(method.clone(), current.clone())
            .headers(headers.clone());
        if let Some(token) = access.bearer
            && same_origin(url, &current)
        {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|source| StoreError::Http {
            url: current.to_string(),
            source,
        })?;
        linked.absorb(response.headers());
        if !response.status().is_redirection() {
            return Ok((response, linked));
        }
        let Some(location) = header_str(response.headers(), "location") else {
            return Ok((response, linked));
        };
        let next = current
            .join(location)
            .map_err(|e| StoreError::InvalidSource {
                source_text: location.to_owned(),
                reason: format!("bad redirect from {current}: {e}"),
            })?;
        match next.scheme() {
            "https" => {}
            "http" if access.allow_http => {}
            _ => {
                return Err(StoreError::RedirectDowngrade {
                    from: current.to_string(),
                    to: next.to_string(),
                });
            }
        }
        tracing::debug!(from = %current, to = %next, "following redirect");
        current = next;
    }
    Err(StoreError::TooManyRedirects {
        url: url.to_string(),
    })
}

/// What a HEAD request says about a remote file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    /// Total size, when announced.
    pub size: Option<u64>,
    /// Strong ETag (usable in `If-Range`).
    pub etag: Option<String>,
    /// Last-Modified.
    pub last_modified: Option<String>,
    /// Hugging Face LFS facts.
    pub linked: Linked,
}

impl Remote {
    /// The `If-Range` validator: a strong ETag, else Last-Modified.
    pub fn validator(&self) -> Option<&str> {
        self.etag
            .as_deref()
            .filter(|e| !e.starts_with("W/"))
            .or(self.last_modified.as_deref())
    }
}

/// HEAD (following redirects). Servers that refuse HEAD yield an empty [`Remote`].
pub async fn head(access: Access<'_>, url: &Url) -> Result<Remote, StoreError> {
    let (response, linked) = send(access, Method::HEAD, url, HeaderMap::new()).await?;
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_IMPLEMENTED {
        return Ok(Remote {
            linked,
            ..Remote::default()
        });
    }
    if !status.is_success() {
        return Err(StoreError::HttpStatus {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let h = response.headers();
    Ok(Remote {
        // A HEAD body is empty: read the header, not the body's length.
        size: header_u64(h, "content-length").or(linked.size),
        etag: header_str(h, "etag").map(str::to_owned),
        last_modified: header_str(h, "last-modified").map(str::to_owned),
        linked,
    })
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

/// One download attempt.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The source URL.
    pub url: &'a Url,
    /// Size announced by HEAD (or a previous attempt).
    pub size: Option<u64>,
    /// Bytes already in the partial file to resume after (0 = from scratch).
    pub resume_from: u64,
    /// `If-Range` value (ETag or Last-Modified); resuming without it is only done when the
    /// expected hash is known.
    pub validator: Option<&'a str>,
    /// The partial file.
    pub partial: &'a Path,
    /// Whether to draw progress.
    pub show_progress: bool,
}

/// Runs one GET (ranged when resuming) into the partial file.
///
/// A 206 appends; a 200 (Range ignored, or the validator changed) restarts from byte 0; a
/// 416, a size change or more bytes than announced are errors that also delete the partial
/// file (it cannot be trusted). A dropped connection is [`StoreError::Interrupted`] and
/// keeps the partial file for the next attempt.
pub async fn fetch(
    access: Access<'_>,
    attempt: Attempt<'_>,
    metrics: &StoreMetrics,
) -> Result<Written, StoreError> {
    let url = attempt.url.to_string();
    let mut headers = HeaderMap::new();
    if attempt.resume_from > 0 {
        let range = format!("bytes={}-", attempt.resume_from);
        headers.insert(
            header::RANGE,
            HeaderValue::from_str(&range).map_err(|e| StoreError::Task(e.to_string()))?,
        );
        if let Some(v) = attempt
            .validator
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(header::IF_RANGE, v);
        }
    }
    let (response, _) = send(access, Method::GET, attempt.url, headers).await?;
    let discard = |e: StoreError| {
        let _ = std::fs::remove_file(attempt.partial);
        e
    };
    let status = response.status();
    let (start, size) = match status {
        StatusCode::PARTIAL_CONTENT if attempt.resume_from > 0 => {
            let value = header_str(response.headers(), "content-range")
                .unwrap_or_default()
                .to_owned();
            let bad = || StoreError::BadContentRange {
                url: url.clone(),
                value: value.clone(),
                expected_start: attempt.resume_from,
            };
            let (start, total) = content_range(&value).ok_or_else(bad)?;
            if start != attempt.resume_from {
                return Err(discard(bad()));
            }
            (
                start,
                check_size(&url, attempt.size, total).map_err(discard)?,
            )
        }
        StatusCode::OK => {
            if attempt.resume_from > 0 {
                tracing::info!(%url, "server answered 200 to a range request: restarting from byte 0");
            }
            let length = header_u64(response.headers(), "content-length");
            (0, check_size(&url, attempt.size, length).map_err(discard)?)
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(discard(StoreError::RangeNotSatisfiable {
                url,
                start: attempt.resume_from,
            }));
        }
        other => {
            return Err(StoreError::HttpStatus {
                url,
                status: other.as_u16(),
            });
        }
    };

    // What `serve` shows on /status while the pull runs (bytes of total).
    metrics.download_size.set(gauge_value(size.unwrap_or(0)));
    metrics.download_received.set(gauge_value(start));
    let mut progress = Progress::new(attempt.show_progress, &url, size, start);
    let sink = Sink::spawn(attempt.partial.to_owned(), start);
    let mut stream = response.bytes_stream();
    let mut received = start;
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if let Some(announced) = size.filter(|&s| received > s) {
                    failure = Some(StoreError::LargerThanAnnounced {
                        url: url.clone(),
                        announced,
                    });
                    break;
                }
                metrics.bytes_downloaded.inc_by(chunk.len() as u64);
                metrics.download_received.set(gauge_value(received));
                progress.advance(chunk.len() as u64);
                if !sink.send(chunk).await {
                    break;
                }
            }
            Err(e) => {
                failure = Some(StoreError::Interrupted {
                    url: url.clone(),
                    received,
                    reason: e.to_string(),
                });
                break;
            }
        }
    }
    progress.finish();
    let written = sink.finish().await?;
    match failure {
        Some(e @ StoreError::LargerThanAnnounced { .. }) => Err(discard(e)),
        Some(StoreError::Interrupted { url, reason, .. }) => Err(StoreError::Interrupted {
            url,
            received: written.size,
            reason,
        }),
        Some(e) => Err(e),
        None => match size {
            Some(s) if written.size < s => Err(StoreError::Interrupted {
                url,
                received: written.size,
                reason: format!("connection closed before byte {s}"),
            }),
            _ => Ok(written),
        },
    }
}

fn gauge_value(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn check_size(
    url: &str,
    announced: Option<u64>,
    now: Option<u64>,
) -> Result<Option<u64>, StoreError> {
    match (announced, now) {
        (Some(a), Some(n)) if a != n => Err(StoreError::SizeChanged {
            url: url.to_owned(),
            announced: a,
            now: n,
        }),
        (a, n) => Ok(a.or(n)),
    }
}

/// Reads `[start, start + len)` of a remote file; returns the bytes and the file's total size.
/// A server that ignores Range is read only as far as needed, then the connection is dropped.
pub async fn read_range(
    access: Access<'_>,
    url: &Url,
    start: u64,
    len: u64,
) -> Result<(Vec<u8>, Option<u64>), StoreError> {
    let mut headers = HeaderMap::new();
    let range = format!("bytes={}-{}", start, start + len.max(1) - 1);
    headers.insert(
        header::RANGE,
        HeaderValue::from_str(&range).map_err(|e| StoreError::Task(e.to_string()))?,
    );
    let (response, _) = send(access, Method::GET, url, headers).await?;
    let (skip, total) = match response.status() {
        StatusCode::PARTIAL_CONTENT => {
            let value = header_str(response.headers(), "content-range").unwrap_or_default();
            let (got_start, total) =
                content_range(value).ok_or_else(|| StoreError::BadContentRange {
                    url: url.to_string(),
                    value: value.to_owned(),
                    expected_start: start,
                })?;
            if got_start != start {
                return Err(StoreError::BadContentRange {
                    url: url.to_string(),
                    value: value.to_owned(),
                    expected_start: start,
                });
            }
            (0, total)
        }
        StatusCode::OK => (start, header_u64(response.headers(), "content-length")),
        other => {
            return Err(StoreError::HttpStatus {
                url: url.to_string(),
                status: other.as_u16(),
            });
        }
    };
    let mut out = Vec::new();
    let mut skipped = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| StoreError::Http {
            url: url.to_string(),
            source,
        })?;
        let mut data = &chunk[..];
        if skipped < skip {
            let n = (skip - skipped).min(data.len() as u64) as usize;
            skipped += n as u64;
            data = &data[n..];
        }
        let want = (len - out.len() as u64) as usize;
        out.extend_from_slice(&data[..data.len().min(want)]);
        if out.len() as u64 >= len {
            break;
        }
    }
    Ok((out, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        assert_eq!(content_range("bytes 10-19/100"), Some((10, Some(100))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
