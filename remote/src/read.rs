//! Ranged reads, and the GGUF header read by growing ranged reads (parsed by the strict
//! reader as bytes arrive, so only the header is ever fetched).

use futures_util::StreamExt;
use llamafleet_gguf::{GgufError, GgufHeader, INITIAL_READ_BYTES, Limits, next_read_len, parse};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::{Access, RemoteError, content_range, header_str, header_u64, send};

/// Reads `[start, start + len)`; returns the bytes and the file's total size from
/// `Content-Range`. A server that ignores Range is read only as far as needed, then the
/// connection is dropped.
pub async fn read_range(
    access: Access<'_>,
    url: &Url,
    start: u64,
    len: u64,
) -> Result<(Vec<u8>, Option<u64>), RemoteError> {
    let mut headers = HeaderMap::new();
    let range = format!("bytes={}-{}", start, start + len.max(1) - 1);
    if let Ok(v) = HeaderValue::from_str(&range) {
        headers.insert(header::RANGE, v);
    }
    let (response, _) = send(access, Method::GET, url, headers).await?;
    let bad_range = |value: &str| RemoteError::BadContentRange {
        url: url.to_string(),
        value: value.to_owned(),
        expected_start: start,
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
        other => return Err(RemoteError::status(&Method::GET, url, other)),
    };
    let mut out = Vec::new();
    let mut skipped = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RemoteError::transport(&Method::GET, url, &e))?;
        let mut data = &chunk[..];
        if skipped < skip {
            let n = usize::try_from((skip - skipped).min(data.len() as u64)).unwrap_or(0);
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

/// Fetches and parses the GGUF header with growing ranged GETs; `size` is the file size when
/// a HEAD announced it (else the first answer's `Content-Range` must). Returns the header and
/// the bytes fetched.
pub async fn read_gguf_header(
    access: Access<'_>,
    url: &Url,
    size: Option<u64>,
    limits: &Limits,
) -> Result<(GgufHeader, u64), RemoteError> {
    let first = INITIAL_READ_BYTES
        .min(limits.max_header_bytes)
        .min(size.unwrap_or(u64::MAX));
    let (mut buf, total) = read_range(access, url, 0, first).await?;
    let file_size = size.or(total).ok_or_else(|| RemoteError::UnknownSize {
        url: url.to_string(),
    })?;
    let gguf = |error| RemoteError::Gguf {
        url: url.to_string(),
        error,
    };
    loop {
        match parse(&buf, file_size, limits) {
            Err(GgufError::NeedMoreBytes { have, needed }) => {
                let want = next_read_len(have, needed, file_size, limits);
                let (more, _) = read_range(access, url, have, want - have).await?;
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
