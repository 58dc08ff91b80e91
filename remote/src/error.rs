//! Why a source could not be read. Cloneable and comparable (the operator keeps the last
//! error in its reconcile state), so causes are kept as text with their whole chain.

use llamafleet_gguf::GgufError;
use reqwest::{Method, StatusCode};
use url::Url;

/// Why a remote source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// No answer, or the answer broke off (DNS, connection, TLS, timeout, body).
    #[error("{method} {url}: {message}")]
    Unreachable {
        /// HEAD or GET.
        method: &'static str,
        /// The URL contacted.
        url: String,
        /// The cause, with its chain ("connection refused" is only in the chain).
        message: String,
        /// A connection, timeout or body failure: worth another attempt.
        retryable: bool,
    },
    /// An HTTP error status.
    #[error("{method} {url}: HTTP {status}{}", reason_of(*status))]
    Status {
        /// HEAD or GET.
        method: &'static str,
        /// The URL asked (the first, before redirects).
        url: String,
        /// The status code.
        status: u16,
    },
    /// A redirect whose `Location` does not parse.
    #[error("{url}: bad redirect to {location:?}: {reason}")]
    BadRedirect {
        /// The URL that answered.
        url: String,
        /// The header value.
        location: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A redirect to plain http (without the allow flag) or to a scheme that is not http(s).
    #[error("refusing redirect from {from} to {to}")]
    RedirectRefused {
        /// Where the redirect came from.
        from: String,
        /// Where it pointed.
        to: String,
    },
    /// A redirect loop or a chain too long.
    #[error("more than {max} redirects starting at {url}", max = crate::MAX_REDIRECTS)]
    TooManyRedirects {
        /// The first URL.
        url: String,
    },
    /// A 206 whose `Content-Range` is malformed or does not start where we asked.
    #[error("{url}: Content-Range {value:?} does not start at byte {expected_start}")]
    BadContentRange {
        /// The URL.
        url: String,
        /// The header value.
        value: String,
        /// Where it should start.
        expected_start: u64,
    },
    /// Neither HEAD nor the ranged answer said how large the file is.
    #[error("{url}: the server announced no size (needed to bound the header)")]
    UnknownSize {
        /// The URL.
        url: String,
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

fn reason_of(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

/// The method, for messages (sources are only ever read with HEAD and GET).
pub(crate) fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::HEAD => "HEAD",
        Method::GET => "GET",
        _ => "request",
    }
}

/// Error text with its causes (reqwest's own text hides "connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

impl RemoteError {
    pub(crate) fn transport(method: &Method, url: &Url, e: &reqwest::Error) -> Self {
        Self::Unreachable {
            method: method_name(method),
            url: url.to_string(),
            message: error_chain(e),
            retryable: e.is_connect() || e.is_timeout() || e.is_body(),
        }
    }

    /// An error status `status` answered to `method` on `url`.
    pub fn status(method: &Method, url: &Url, status: StatusCode) -> Self {
        Self::Status {
            method: method_name(method),
            url: url.to_string(),
            status: status.as_u16(),
        }
    }

    /// Errors worth another attempt later: no answer, or a status that says "not now".
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { retryable, .. } => *retryable,
            Self::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_read_with_their_reason() {
        let url = Url::parse("https://h/m.gguf").unwrap();
        let e = RemoteError::status(&Method::HEAD, &url, StatusCode::NOT_FOUND);
        assert_eq!(e.to_string(), "HEAD https://h/m.gguf: HTTP 404 Not Found");
        assert!(!e.is_retryable());
        let e = RemoteError::status(&Method::GET, &url, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.is_retryable());
        let odd = RemoteError::status(&Method::GET, &url, StatusCode::from_u16(599).unwrap());
        assert_eq!(odd.to_string(), "GET https://h/m.gguf: HTTP 599");
    }
}
