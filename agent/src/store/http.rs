//! The download itself: one (ranged, when resuming) GET attempt streamed into a [`Sink`].
//! Redirects and HEAD are `llamafleet_remote`'s (shared with `inspect` and the operator),
//! re-exported here so the store has one HTTP module.

use std::path::Path;

use futures_util::StreamExt;
pub use llamafleet_remote::{Access, Head, Linked, head, send};
use llamafleet_remote::{RemoteError, content_range, header_str, header_u64};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use super::StoreError;
use super::hash::{Sink, Written};
use super::metrics::StoreMetrics;
use super::progress::Progress;

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
            let bad = || {
                StoreError::Remote(RemoteError::BadContentRange {
                    url: url.clone(),
                    value: value.clone(),
                    expected_start: attempt.resume_from,
                })
            };
            let (start, total) = content_range(&value).ok_or_else(bad).map_err(discard)?;
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
            return Err(RemoteError::status(&Method::GET, attempt.url, other).into());
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
                    reason: llamafleet_remote::error_chain(&e),
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
