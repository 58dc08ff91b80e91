//! HTTP side of resolving a model: HEAD for size and revision facts, then ranged GETs of just
//! the GGUF header — `llamafleet_remote`, the same code the agent's store and `inspect` use —
//! with the operator's client and Hugging Face revision pinning.

use std::time::Duration;

use llamafleet_remote::{Access, client_builder};
use reqwest::Client;
use url::Url;

/// A source that does not accept a connection in this long is reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request (a HEAD or one header chunk of a few MiB) finishes well within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The operator's HTTP client for sources.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Client,
}

impl Fetcher {
    /// A client that follows no redirect on its own (`llamafleet_remote::send` does, by hand).
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = client_builder(concat!("llamafleet-operator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self { client })
    }

    /// Access with this client: `bearer` goes only to the source's origin; `allow_http`
    /// permits plain http, also for redirect targets.
    pub fn access<'a>(&'a self, bearer: Option<&'a str>, allow_http: bool) -> Access<'a> {
        Access {
            client: &self.client,
            bearer,
            allow_http,
        }
    }
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
}
