//! Where everything lives in the cache directory.
//!
//! ```text
//! <cache>/sha256/<hex>.gguf      verified model (content-addressed)
//! <cache>/sha256/<hex>.json      its metadata (url, size, etag, revision)
//! <cache>/sha256/<key>.partial   download in progress (<key> = hex, or url-<hash of url+etag>)
//! <cache>/sha256/<key>.resume    what the partial was fetched from (url, etag, size)
//! <cache>/by-url/<key>.json      url+etag -> hex, for sources without a known hash
//! <cache>/locks/<key>.download   exclusive while downloading
//! <cache>/locks/<hex>.use        shared while a server uses or keeps the model (gc and
//!                                eviction skip it); its mtime: last use
//! <cache>/crash/<hex>/           crash markers
//! ```

use std::path::{Path, PathBuf};

/// Paths inside one cache directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of models and partials.
    pub fn models_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    /// A verified model.
    pub fn model(&self, hex: &str) -> PathBuf {
        self.models_dir().join(format!("{hex}.gguf"))
    }

    /// A verified model's metadata.
    pub fn meta(&self, hex: &str) -> PathBuf {
        self.models_dir().join(format!("{hex}.json"))
    }

    /// A download in progress.
    pub fn partial(&self, key: &str) -> PathBuf {
        self.models_dir().join(format!("{key}.partial"))
    }

    /// What a partial was fetched from.
    pub fn resume_info(&self, key: &str) -> PathBuf {
        self.models_dir().join(format!("{key}.resume"))
    }

    /// url+etag -> hex record.
    pub fn by_url(&self, key: &str) -> PathBuf {
        self.root.join("by-url").join(format!("{key}.json"))
    }

    /// Lock held while downloading `key`.
    pub fn download_lock(&self, key: &str) -> PathBuf {
        self.root.join("locks").join(format!("{key}.download"))
    }

    /// Lock held (shared) while a model is in use.
    pub fn use_lock(&self, hex: &str) -> PathBuf {
        self.root.join("locks").join(format!("{hex}.use"))
    }

    /// Crash markers for a model.
    pub fn crash_dir(&self, hex: &str) -> PathBuf {
        self.root.join("crash").join(hex)
    }

    /// Creates the directories.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        for dir in ["sha256", "by-url", "locks", "crash"] {
            std::fs::create_dir_all(self.root.join(dir))?;
        }
        Ok(())
    }
}
