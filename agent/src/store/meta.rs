//! Small JSON records next to models, written atomically (temp file, fsync, rename).

use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::StoreError;

/// Metadata of a verified model (`<hex>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// Content hash.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it was fetched from.
    pub url: String,
    /// The server's ETag, if any.
    pub etag: Option<String>,
    /// The source revision (Hugging Face `X-Repo-Commit`), if any.
    pub revision: Option<String>,
    /// How the hash was established.
    pub verification: Verification,
    /// Seconds since the epoch when it was stored.
    pub fetched_at: u64,
}

/// How a model's hash was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    /// Matched the hash the user pinned.
    Pinned,
    /// Matched the server's `X-Linked-Etag` (Hugging Face LFS sha256).
    LinkedEtag,
    /// No expected hash: the computed one was recorded (trust on first use).
    TrustOnFirstUse,
}

/// What a partial download was fetched from, to decide whether resuming is safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeInfo {
    /// The URL.
    pub url: String,
    /// Validator sent in `If-Range` (ETag or Last-Modified).
    pub validator: Option<String>,
    /// Total size, when known.
    pub size: Option<u64>,
}

/// `by-url/<key>.json`: which hash a url+etag resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlRecord {
    /// The hash.
    pub sha256: String,
}

/// Reads a JSON record; a missing or unreadable record is `None` (it is only a hint).
pub fn read<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Writes a JSON record atomically.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Io {
        action: "serializing",
        path: path.to_owned(),
        source: e.into(),
    })?;
    let mut file = std::fs::File::create(&tmp).map_err(StoreError::io("creating", &tmp))?;
    std::io::Write::write_all(&mut file, &bytes).map_err(StoreError::io("writing", &tmp))?;
    file.sync_all().map_err(StoreError::io("syncing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(StoreError::io("renaming", path))
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
