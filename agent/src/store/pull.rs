//! `pull`: cache lookup → lock → download (resume, streaming sha256) → verify → GGUF check
//! → fsync + atomic rename.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use url::Url;

use super::hash::{self, Written};
use super::http::{self, Access, Attempt, Head};
use super::lock::{self, FileLock};
use super::meta::{self, EntryMeta, ResumeInfo, UrlRecord, Verification};
use super::source::{Source, normalize_sha256};
use super::{Store, StoreError};

/// What to pull.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    /// URL or path.
    pub source: String,
    /// Expected sha256 (pinned).
    pub sha256: Option<String>,
    /// Bearer token for the source's origin.
    pub bearer_token: Option<String>,
}

/// A model in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pulled {
    /// The verified file.
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// Answered from the cache without fetching.
    pub cache_hit: bool,
    /// How the hash was established (for a hit: as recorded when stored).
    pub verification: Verification,
}

/// A model held in use: `cache gc` will not delete it while this lives.
#[derive(Debug)]
pub struct ModelLease {
    /// The model file.
    pub path: PathBuf,
    _lock: FileLock,
}

/// Where the download of one target goes and what it is checked against.
struct Target {
    key: String,
    expected: Option<String>,
    verification: Verification,
}

impl Store {
    /// Makes sure the model is in the cache and returns its path.
    pub async fn pull(&self, request: &PullRequest) -> Result<Pulled, StoreError> {
        let source = Source::parse(&request.source, self.config.allow_http)?;
        let pinned = request
            .sha256
            .as_deref()
            .map(normalize_sha256)
            .transpose()?;
        if let Some(hit) = pinned.as_deref().and_then(|hex| self.cached(hex)) {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        match source {
            Source::Http(url) => {
                self.pull_http(&url, pinned, request.bearer_token.as_deref())
                    .await
            }
            Source::File(path) => self.pull_file(&path, pinned).await,
        }
    }

    /// Holds a model in use (shared lock) until the lease is dropped.
    pub async fn lease(&self, hex: &str) -> Result<ModelLease, StoreError> {
        let hex = normalize_sha256(hex)?;
        let lock = lock::shared(self.layout.use_lock(&hex)).await?;
        let path = self.layout.model(&hex);
        if !path.is_file() {
            return Err(StoreError::io("leasing", &path)(
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        // Eviction deletes the least recently used first; a failed touch only makes this
        // model look older.
        let _ = lock.touch();
        Ok(ModelLease { path, _lock: lock })
    }

    fn cached(&self, hex: &str) -> Option<Pulled> {
        let path = self.layout.model(hex);
        let size = std::fs::metadata(&path).ok()?.len();
        let verification = meta::read::<EntryMeta>(&self.layout.meta(hex))
            .map_or(Verification::Pinned, |m| m.verification);
        Some(Pulled {
            path,
            sha256: hex.to_owned(),
            size,
            cache_hit: true,
            verification,
        })
    }

    /// After waiting for the lock: did another agent finish this target meanwhile?
    fn finished_by_other(&self, target: &Target) -> Option<Pulled> {
        let hex = match &target.expected {
            Some(hex) => hex.clone(),
            None => meta::read::<UrlRecord>(&self.layout.by_url(&target.key))?.sha256,
        };
        self.cached(&hex)
    }

    async fn pull_http(
        &self,
        url: &Url,
        pinned: Option<String>,
        bearer: Option<&str>,
    ) -> Result<Pulled, StoreError> {
        let access = Access {
            client: &self.client,
            bearer,
            allow_http: self.config.allow_http,
        };
        let remote = self.head(access, url).await?;
        let target = match (pinned, remote.linked.sha256.clone()) {
            (Some(p), linked) => {
                if linked.as_ref().is_some_and(|l| *l != p) {
                    tracing::warn!(%url, "X-Linked-Etag differs from the pinned sha256; the pin wins");
                }
                Target {
                    key: p.clone(),
                    expected: Some(p),
                    verification: Verification::Pinned,
                }
            }
            (None, Some(linked)) => Target {
                key: linked.clone(),
                expected: Some(linked),
                verification: Verification::LinkedEtag,
            },
            (None, None) => {
                let validator = remote
                    .validator()
                    .map_or_else(|| format!("size:{:?}", remote.size), str::to_owned);
                Target {
                    key: format!(
                        "url-{}",
                        &hash::sha256_hex(&format!("{url}\n{validator}"))[..40]
                    ),
                    expected: None,
                    verification: Verification::TrustOnFirstUse,
                }
            }
        };
        if let Some(hit) = self.finished_by_other(&target) {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        let _lock = lock::exclusive(self.layout.download_lock(&target.key)).await?;
        if let Some(hit) = self.finished_by_other(&target) {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        self.metrics.cache_misses.inc();
        let started = Instant::now();
        let written = self.download(access, url, &remote, &target).await?;
        let entry = EntryMeta {
            sha256: written.sha256.clone(),
            size: written.size,
            url: url.to_string(),
            etag: remote.etag.clone(),
            revision: remote.linked.revision.clone(),
            verification: target.verification,
            fetched_at: meta::now_secs(),
        };
        let pulled = self.promote(&target, url.as_str(), written, entry).await?;
        self.metrics
            .download_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(pulled)
    }

    /// HEAD with the download's retry policy: a source that answers 503 or drops the
    /// connection once (a CDN hiccup, a rate limit) is asked again, not given up on.
    async fn head(&self, access: Access<'_>, url: &Url) -> Result<Head, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = http::head(access, url).await;
            if result.is_err() {
                self.metrics.download_errors.inc();
            }
            match result {
                Ok(head) => return Ok(head),
                Err(e) if e.is_retryable() && attempt < self.config.max_attempts => {
                    tracing::warn!(%url, attempt, error = %e, "HEAD failed; asking again");
                    tokio::time::sleep(self.config.retry_backoff * attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn download(
        &self,
        access: Access<'_>,
        url: &Url,
        remote: &Head,
        target: &Target,
    ) -> Result<Written, StoreError> {
        let partial = self.layout.partial(&target.key);
        let resume_path = self.layout.resume_info(&target.key);
        let info = ResumeInfo {
            url: url.to_string(),
            validator: remote.validator().map(str::to_owned),
            size: remote.size,
        };
        // Resume only what was fetched from the same URL and version, and only when a
        // validator (If-Range) or the expected hash guards against mixing two versions.
        let resumable = meta::read::<ResumeInfo>(&resume_path).is_some_and(|old| old == info)
            && (info.validator.is_some() || target.expected.is_some());
        if !resumable {
            let _ = std::fs::remove_file(&partial);
        }
        meta::write(&resume_path, &info)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let have = std::fs::metadata(&partial).map_or(0, |m| m.len());
            let resume_from = match remote.size {
                Some(size) if have > size => 0,
                _ => have,
            };
            if let Some(size) = remote.size
                && resume_from == size
                && size > 0
            {
                tracing::info!(%url, "partial file already complete");
                return tokio::task::spawn_blocking(move || hash::hash_file(&partial)).await?;
            }
            let remaining = remote.size.map_or(0, |s| s - resume_from);
            self.ensure_space(remaining)?;
            let result = http::fetch(
                access,
                Attempt {
                    url,
                    size: remote.size,
                    resume_from,
                    validator: info.validator.as_deref(),
                    partial: &partial,
                    show_progress: self.config.show_progress,
                },
                &self.metrics,
            )
            .await;
            if result.is_err() {
                self.metrics.download_errors.inc();
            }
            match result {
                Ok(written) => break Ok(written),
                Err(e) if e.is_retryable() && attempt < self.config.max_attempts => {
                    tracing::warn!(%url, attempt, error = %e, "download attempt failed; resuming");
                    tokio::time::sleep(self.config.retry_backoff * attempt).await;
                }
                Err(e) => break Err(e),
            }
        }
    }

    async fn pull_file(&self, path: &Path, pinned: Option<String>) -> Result<Pulled, StoreError> {
        let source_meta = std::fs::metadata(path).map_err(StoreError::io("reading", path))?;
        let canonical = std::fs::canonicalize(path).map_err(StoreError::io("resolving", path))?;
        let target = match pinned {
            Some(p) => Target {
                key: p.clone(),
                expected: Some(p),
                verification: Verification::Pinned,
            },
            None => {
                let modified = source_meta
                    .modified()
                    .ok()
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_default();
                let identity =
                    format!("{}\n{}\n{modified}", canonical.display(), source_meta.len());
                Target {
                    key: format!("file-{}", &hash::sha256_hex(&identity)[..40]),
                    expected: None,
                    verification: Verification::TrustOnFirstUse,
                }
            }
        };
        let _lock = lock::exclusive(self.layout.download_lock(&target.key)).await?;
        if let Some(hit) = self.finished_by_other(&target) {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        self.metrics.cache_misses.inc();
        let partial = self.layout.partial(&target.key);
        let _ = std::fs::remove_file(&partial);
        // A hard link costs no space and no copy; across file systems, copy while hashing.
        let written = match std::fs::hard_link(&canonical, &partial) {
            Ok(()) => {
                let p = partial.clone();
                tokio::task::spawn_blocking(move || hash::hash_file(&p)).await??
            }
            Err(_) => {
                self.ensure_space(source_meta.len())?;
                let (from, to) = (canonical.clone(), partial.clone());
                tokio::task::spawn_blocking(move || hash::copy_and_hash(&from, &to)).await??
            }
        };
        let entry = EntryMeta {
            sha256: written.sha256.clone(),
            size: written.size,
            url: Url::from_file_path(&canonical)
                .map_or_else(|()| canonical.display().to_string(), |u| u.to_string()),
            etag: None,
            revision: None,
            verification: target.verification,
            fetched_at: meta::now_secs(),
        };
        self.promote(&target, &canonical.display().to_string(), written, entry)
            .await
    }

    /// Verifies the hash and the GGUF header, then moves the partial file into place.
    async fn promote(
        &self,
        target: &Target,
        source: &str,
        written: Written,
        entry: EntryMeta,
    ) -> Result<Pulled, StoreError> {
        let partial = self.layout.partial(&target.key);
        let discard = |e: StoreError| {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_file(self.layout.resume_info(&target.key));
            e
        };
        if let Some(expected) = &target.expected
            && *expected != written.sha256
        {
            self.metrics.verify_failures.inc();
            return Err(discard(StoreError::HashMismatch {
                source_text: source.to_owned(),
                expected: expected.clone(),
                actual: written.sha256,
            }));
        }
        if target.expected.is_none() {
            tracing::warn!(source, sha256 = %written.sha256, "no expected sha256: recording the computed one (trust on first use)");
        }
        if self.config.validate_gguf {
            let (p, limits) = (partial.clone(), self.config.gguf_limits.clone());
            let checked =
                tokio::task::spawn_blocking(move || llamafleet_gguf::read_file(&p, &limits))
                    .await?;
            if let Err(source) = checked {
                return Err(discard(StoreError::InvalidGguf {
                    path: PathBuf::from(entry.url.clone()),
                    source,
                }));
            }
        }
        let hex = written.sha256.clone();
        let final_path = self.layout.model(&hex);
        meta::write(&self.layout.meta(&hex), &entry)?;
        // The data was fsynced by the sink; the rename is atomic within the directory.
        std::fs::rename(&partial, &final_path).map_err(StoreError::io("promoting", &final_path))?;
        sync_dir(&self.layout.models_dir())?;
        let _ = std::fs::remove_file(self.layout.resume_info(&target.key));
        if target.expected.is_none() {
            meta::write(
                &self.layout.by_url(&target.key),
                &UrlRecord {
                    sha256: hex.clone(),
                },
            )?;
        }
        tracing::info!(path = %final_path.display(), sha256 = %hex, "model stored");
        Ok(Pulled {
            path: final_path,
            sha256: hex,
            size: written.size,
            cache_hit: false,
            verification: target.verification,
        })
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("syncing", dir))
}
