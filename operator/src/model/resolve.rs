//! Resolve step: from a model's source to the pinned file facts and its GGUF header, without
//! downloading the file. `https`/`http` sources go through [`Fetcher`]; `file://` sources
//! are read when the operator can see the path, else left to the node.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use llamafleet_crds::{LlmModel, ModelSource, ResolvedSource};
use llamafleet_gguf::{GgufError, GgufHeader, Limits, ModelMemory, Summary};
use url::Url;

use llamafleet_remote::RemoteError;

use super::fetch::{Fetcher, pin_revision};

/// Key of the token in the auth Secret when `authSecretRef.key` is not set.
pub const DEFAULT_TOKEN_KEY: &str = "token";

/// Why a source could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResolveError {
    /// The source could not be read over HTTP (or its header is invalid).
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The URL does not parse.
    #[error("source URL {url:?}: {message}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The auth Secret or its key is missing or unreadable.
    #[error("auth Secret {name:?}: {message}")]
    AuthSecret {
        /// Secret name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A local file's header is invalid (or the file unreadable).
    #[error("{path}: {error}")]
    LocalGguf {
        /// The path.
        path: String,
        /// The rule it broke.
        error: GgufError,
    },
}

impl ResolveError {
    /// Condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Remote(RemoteError::Gguf { .. }) | Self::LocalGguf { .. } => "InvalidGguf",
            Self::Remote(_) => "SourceUnreachable",
            Self::BadUrl { .. } => "InvalidSource",
            Self::AuthSecret { .. } => "AuthSecretUnavailable",
        }
    }
}

/// The file as resolved now.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// Pinned facts of the file.
    pub resolved: ResolvedSource,
    /// The header's summary.
    pub summary: Summary,
    /// Memory figures, when the header has what they need.
    pub memory: Option<ModelMemory>,
    /// The sha256 the source announces (Hugging Face `X-Linked-Etag`), whatever the spec pins.
    pub remote_sha256: Option<String>,
}

/// What resolving a source found.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Read over HTTP, or from a local file the operator can see.
    Read(Box<Resolution>),
    /// A `file://` path the operator cannot see: the agent verifies it on the node.
    VerifyOnNode(PathBuf),
}

/// `1.5 GiB`-style size for people (binary units, one decimal).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn to_i64(v: u64) -> Option<i64> {
    i64::try_from(v).ok()
}

fn read(header: &GgufHeader, resolved: ResolvedSource, remote_sha256: Option<String>) -> Outcome {
    Outcome::Read(Box::new(Resolution {
        resolved,
        remote_sha256,
        summary: Summary::from_header(header),
        memory: ModelMemory::from_header(header).ok(),
    }))
}

/// Reads the bearer token of `spec.source.authSecretRef` (none when not set).
pub async fn bearer_token(
    client: &Client,
    model: &LlmModel,
) -> Result<Option<String>, ResolveError> {
    let Some(r) = &model.spec.source.auth_secret_ref else {
        return Ok(None);
    };
    let ns = model.metadata.namespace.clone().unwrap_or_default();
    let err = |message: String| ResolveError::AuthSecret {
        name: r.name.clone(),
        message,
    };
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get_opt(&r.name)
        .await
        .map_err(|e| err(e.to_string()))?
        .ok_or_else(|| err("not found".into()))?;
    let key = r.key.as_deref().unwrap_or(DEFAULT_TOKEN_KEY);
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| err(format!("has no key {key:?}")))?;
    let token =
        String::from_utf8(bytes.0.clone()).map_err(|_| err(format!("key {key:?} is not UTF-8")))?;
    Ok(Some(token.trim().to_owned()))
}

/// Resolves the model's source.
pub async fn resolve(
    fetcher: &Fetcher,
    model: &LlmModel,
    bearer: Option<&str>,
) -> Result<Outcome, ResolveError> {
    let source = &model.spec.source;
    let url = Url::parse(&source.url).map_err(|e| ResolveError::BadUrl {
        url: source.url.clone(),
        message: e.to_string(),
    })?;
    let outcome = if url.scheme() == "file" {
        resolve_file(&url, source.sha256.clone()).await
    } else {
        resolve_remote(fetcher, source, &url, bearer).await
    };
    outcome.map(|o| match o {
        Outcome::Read(mut r) => {
            r.resolved.source_url = Some(source.url.clone());
            Outcome::Read(r)
        }
        other => other,
    })
}

async fn resolve_remote(
    fetcher: &Fetcher,
    source: &ModelSource,
    url: &Url,
    bearer: Option<&str>,
) -> Result<Outcome, ResolveError> {
    let access = fetcher.access(bearer, source.allow_insecure_http.unwrap_or(false));
    let head = llamafleet_remote::head(access, url).await?;
    let pinned = head
        .linked
        .revision
        .as_deref()
        .and_then(|commit| pin_revision(url, commit))
        .unwrap_or_else(|| url.clone());
    let (header, _fetched) =
        llamafleet_remote::read_gguf_header(access, &pinned, head.size, &Limits::default()).await?;
    let size = head.size.unwrap_or(header.file_size);
    let resolved = ResolvedSource {
        // The spec's pin wins; the agent checks the download against it either way.
        sha256: source.sha256.clone().or(head.linked.sha256.clone()),
        size_bytes: to_i64(size),
        size: Some(human_size(size)),
        etag: head.etag,
        revision: head.linked.revision,
        url: Some(pinned.to_string()),
        // Set by `resolve` for every kind of source.
        source_url: None,
        last_modified: head.last_modified,
    };
    Ok(read(&header, resolved, head.linked.sha256))
}

async fn resolve_file(url: &Url, sha256: Option<String>) -> Result<Outcome, ResolveError> {
    let path = url.to_file_path().map_err(|()| ResolveError::BadUrl {
        url: url.to_string(),
        message: "not a local file URL".into(),
    })?;
    if !path.exists() {
        return Ok(Outcome::VerifyOnNode(path));
    }
    let p = path.clone();
    let header =
        tokio::task::spawn_blocking(move || llamafleet_gguf::read_file(&p, &Limits::default()))
            .await
            .map_err(|e| ResolveError::LocalGguf {
                path: path.display().to_string(),
                error: GgufError::Io {
                    offset: 0,
                    message: e.to_string(),
                },
            })?
            .map_err(|error| ResolveError::LocalGguf {
                path: path.display().to_string(),
                error,
            })?;
    let size = header.file_size;
    let resolved = ResolvedSource {
        sha256,
        size_bytes: to_i64(size),
        size: Some(human_size(size)),
        url: Some(url.to_string()),
        ..ResolvedSource::default()
    };
    Ok(read(&header, resolved, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(253_113_024), "241.4 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }
}
