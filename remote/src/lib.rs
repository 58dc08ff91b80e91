//! Reading model sources over HTTP, shared by the agent's store and `inspect` and the
//! operator's resolve step (a crate of its own so the operator does not link the agent, and
//! through it llama.cpp).
//!
//! Redirects are followed by hand rather than by reqwest's policy: Hugging Face answers a
//! `resolve` URL with a redirect to its CDN that carries the facts we want
//! (`X-Linked-Etag` = the LFS sha256, `X-Linked-Size`, `X-Repo-Commit`), which the final
//! answer does not repeat, and the bearer token must never follow a redirect to another
//! origin.

mod error;
mod headers;
mod read;

pub use error::{RemoteError, error_chain};
pub use headers::{content_range, header_str, header_u64, parse_sha256};
pub use read::{read_gguf_header, read_range};

use reqwest::header::HeaderMap;
use reqwest::{Client, ClientBuilder, Method, Response, StatusCode};
use url::Url;

/// Enough for Hugging Face (resolve → CDN) with room to spare; loops end here.
pub const MAX_REDIRECTS: usize = 10;

/// A client that follows no redirect on its own (see [`send`]); callers add their timeouts.
pub fn client_builder(user_agent: &str) -> ClientBuilder {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
}

/// Who may be contacted and with which credentials.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// A client from [`client_builder`] (no automatic redirects).
    pub client: &'a Client,
    /// Bearer token, sent only to the origin of the first URL.
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

/// Headers a Hugging Face redirect carries about the LFS object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    /// `X-Linked-Etag` when it is a sha256 (LFS objects), lower-case.
    pub sha256: Option<String>,
    /// `X-Linked-Size`.
    pub size: Option<u64>,
    /// `X-Repo-Commit`.
    pub revision: Option<String>,
}

impl Linked {
    /// Takes what these headers add; the first answer that says something wins.
    fn absorb(&mut self, headers: &HeaderMap) {
        if self.sha256.is_none() {
            self.sha256 = header_str(headers, "x-linked-etag")
                .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
                .and_then(parse_sha256);
        }
        if self.size.is_none() {
            self.size = header_u64(headers, "x-linked-size");
        }
        if self.revision.is_none() {
            self.revision = header_str(headers, "x-repo-commit").map(str::to_owned);
        }
    }
}

/// Sends a request, following redirects by hand; also returns what the redirects said.
pub async fn send(
    access: Access<'_>,
    method: Method,
    url: &Url,
    headers: HeaderMap,
) -> Result<(Response, Linked), RemoteError> {
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
        let response = request
            .send()
            .await
            .map_err(|e| RemoteError::transport(&method, &current, &e))?;
        linked.absorb(response.headers());
        if !response.status().is_redirection() {
            return Ok((response, linked));
        }
        let Some(location) = header_str(response.headers(), "location") else {
            return Ok((response, linked));
        };
        let next = current
            .join(location)
            .map_err(|e| RemoteError::BadRedirect {
                url: current.to_string(),
                location: location.to_owned(),
                reason: e.to_string(),
            })?;
        match next.scheme() {
            "https" => {}
            "http" if access.allow_http => {}
            _ => {
                return Err(RemoteError::RedirectRefused {
                    from: current.to_string(),
                    to: next.to_string(),
                });
            }
        }
        tracing::debug!(from = %current, to = %next, "following redirect");
        current = next;
    }
    Err(RemoteError::TooManyRedirects {
        url: url.to_string(),
    })
}

/// What a HEAD request (and its redirects) says about a remote file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Size: `Content-Length` of the final answer, else `X-Linked-Size`.
    pub size: Option<u64>,
    /// `ETag` of the final answer.
    pub etag: Option<String>,
    /// `Last-Modified` of the final answer.
    pub last_modified: Option<String>,
    /// Hugging Face LFS facts.
    pub linked: Linked,
}

impl Head {
    /// The `If-Range` validator: a strong ETag, else Last-Modified.
    pub fn validator(&self) -> Option<&str> {
        self.etag
            .as_deref()
            .filter(|e| !e.starts_with("W/"))
            .or(self.last_modified.as_deref())
    }
}

/// HEAD, following redirects. A server that refuses HEAD (405, 501) yields what the
/// redirects said.
pub async fn head(access: Access<'_>, url: &Url) -> Result<Head, RemoteError> {
    let (response, linked) = send(access, Method::HEAD, url, HeaderMap::new()).await?;
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_IMPLEMENTED {
        return Ok(Head {
            size: linked.size,
            linked,
            ..Head::default()
        });
    }
    if !status.is_success() {
        return Err(RemoteError::status(&Method::HEAD, url, status));
    }
    let h = response.headers();
    Ok(Head {
        // A HEAD body is empty: read the header, not the body's length.
        size: header_u64(h, "content-length").or(linked.size),
        etag: header_str(h, "etag").map(str::to_owned),
        last_modified: header_str(h, "last-modified").map(str::to_owned),
        linked,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(&u("https://h/a"), &u("https://h:443/b")));
        assert!(!same_origin(&u("https://h/a"), &u("http://h/a")));
        assert!(!same_origin(&u("http://h:1/a"), &u("http://h:2/a")));
        assert!(!same_origin(&u("https://h/a"), &u("https://cdn.h/a")));
        assert!(!same_origin(
            &u("http://127.0.0.1:1/a"),
            &u("http://localhost:1/a")
        ));
    }

    #[test]
    fn linked_facts_come_from_the_first_answer_that_has_them() {
        let sha = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
        let headers = |pairs: &[(&'static str, String)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, value.parse().unwrap());
            }
            h
        };
        let mut linked = Linked::default();
        linked.absorb(&headers(&[
            ("x-linked-etag", format!("W/\"{}\"", sha.to_uppercase())),
            ("x-repo-commit", "abc123".into()),
        ]));
        linked.absorb(&headers(&[
            ("x-linked-etag", format!("\"{}\"", "0".repeat(64))),
            ("x-linked-size", "253113024".into()),
            ("x-repo-commit", "later".into()),
        ]));
        assert_eq!(
            linked,
            Linked {
                sha256: Some(sha.into()),
                size: Some(253_113_024),
                revision: Some("abc123".into()),
            }
        );
        let mut not_a_hash = Linked::default();
        not_a_hash.absorb(&headers(&[("x-linked-etag", "\"abc-123\"".into())]));
        assert_eq!(not_a_hash.sha256, None);
    }

    #[test]
    fn the_validator_is_a_strong_etag_else_last_modified() {
        let mut head = Head {
            etag: Some("W/\"weak\"".into()),
            last_modified: Some("Tue, 01 Sep 2026 00:00:00 GMT".into()),
            ..Head::default()
        };
        assert_eq!(head.validator(), Some("Tue, 01 Sep 2026 00:00:00 GMT"));
        head.etag = Some("\"strong\"".into());
        assert_eq!(head.validator(), Some("\"strong\""));
    }
}
