//! Errors of the model store. Each names what failed and where, and none hides a cause.

use std::path::PathBuf;

use thiserror::Error;

/// What went wrong while pulling, inspecting or collecting models.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Plain http without the explicit allow flag.
    #[error("refusing plain http for {url}: pass --allow-http (or allowInsecureHttp) to permit it")]
    InsecureHttp {
        /// The URL.
        url: String,
    },
    /// A scheme other than https, http, file.
    #[error("unsupported source {source_text:?}: {reason}")]
    InvalidSource {
        /// The source as given.
        source_text: String,
        /// Why.
        reason: String,
    },
    /// A `--sha256` that is not 64 hex characters.
    #[error("invalid sha256 {value:?}: expected 64 hex characters")]
    InvalidSha256 {
        /// The value given.
        value: String,
    },
    /// Reaching the source failed (no answer, an error status, a bad redirect or
    /// Content-Range).
    #[error(transparent)]
    Remote(#[from] llamafleet_remote::RemoteError),
    /// The HTTP client could not be built (TLS roots, for one).
    #[error("building the HTTP client: {source}")]
    Client {
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered 416 to a resume request.
    #[error("{url} answered 416 Range Not Satisfiable to a request for bytes {start}-")]
    RangeNotSatisfiable {
        /// The URL.
        url: String,
        /// The first byte asked for.
        start: u64,
    },
    /// The server sent more bytes than it announced.
    #[error("{url} sent more than the {announced} bytes it announced")]
    LargerThanAnnounced {
        /// The URL.
        url: String,
        /// The announced size.
        announced: u64,
    },
    /// The server's Content-Length / Content-Range disagrees with the size it announced first.
    #[error("{url}: size changed from {announced} to {now} between requests")]
    SizeChanged {
        /// The URL.
        url: String,
        /// Size announced first.
        announced: u64,
        /// Size announced now.
        now: u64,
    },
    /// The connection ended early; the partial file is kept for a resume.
    #[error("download of {url} interrupted after {received} bytes: {reason}")]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes in the partial file.
        received: u64,
        /// What happened.
        reason: String,
    },
    /// The content's sha256 is not the expected one; nothing was promoted.
    #[error(
        "sha256 mismatch for {source_text}: expected {expected}, got {actual}; the partial file was deleted"
    )]
    HashMismatch {
        /// Where it came from.
        source_text: String,
        /// Expected hash.
        expected: String,
        /// Computed hash.
        actual: String,
    },
    /// The file is not a GGUF llama.cpp can safely load.
    #[error("{path} is not a valid GGUF file: {source}")]
    InvalidGguf {
        /// The file.
        path: PathBuf,
        /// The rule it broke.
        #[source]
        source: llamafleet_gguf::GgufError,
    },
    /// Not enough free space for the download plus the margin, even after evicting every
    /// cached model nobody uses or keeps.
    #[error(
        "not enough disk space in {dir}: need {needed} bytes ({remaining} to download + {margin} margin), {available} available{}",
        held_note(.held)
    )]
    InsufficientSpace {
        /// The cache directory.
        dir: PathBuf,
        /// Bytes needed in all.
        needed: u64,
        /// Bytes still to download.
        remaining: u64,
        /// The safety margin.
        margin: u64,
        /// Bytes available.
        available: u64,
        /// Cached models that could not be evicted because a server uses or keeps them.
        held: Vec<String>,
    },
    /// The model crashed llama.cpp too often.
    #[error(
        "refusing to load sha256 {sha256}: it crashed the server {crashes} times; remove {markers} to try again"
    )]
    CrashLoop {
        /// The model.
        sha256: String,
        /// Crashes recorded.
        crashes: u32,
        /// Where the crash markers live.
        markers: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Errors worth another attempt (the partial file is kept and resumed).
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Interrupted { .. } => true,
            StoreError::Remote(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// Errors the same start would meet again: the file's content is wrong (sha256, not a
    /// GGUF), it crashed the server too often, or the source itself is refused. Another
    /// download cannot help; the spec has to change.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::HashMismatch { .. }
                | StoreError::InvalidGguf { .. }
                | StoreError::CrashLoop { .. }
                | StoreError::InvalidSha256 { .. }
                | StoreError::InvalidSource { .. }
                | StoreError::InsecureHttp { .. }
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

fn held_note(held: &[String]) -> String {
    if held.is_empty() {
        String::new()
    } else {
        format!("; not evicted because in use or kept: {}", held.join(", "))
    }
}

impl From<tokio::task::JoinError> for StoreError {
    fn from(e: tokio::task::JoinError) -> Self {
        StoreError::Task(e.to_string())
    }
}
