//! The per-node model store: verified, resumable, content-addressed GGUF downloads.
//!
//! `pull` (and later `serve`) go through [`Store::pull`], which evicts unused models when a
//! download does not fit ([`evict`]); `cache gc` through [`gc::collect`]; `serve --keep-file`
//! holds listed models through [`keep::Keeper`]; `serve` wraps llama.cpp loads in
//! [`crash::begin_load`].

pub mod crash;
mod error;
pub mod evict;
pub mod gc;
pub mod hash;
pub mod http;
pub mod keep;
pub mod layout;
pub mod lock;
pub mod meta;
pub mod metrics;
pub mod progress;
mod pull;
pub mod source;
pub mod space;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::StoreError;
pub use layout::Layout;
pub use meta::{EntryMeta, Verification};
pub use metrics::StoreMetrics;
pub use pull::{ModelLease, PullRequest, Pulled};
pub use source::Source;
pub use space::{DiskSpace, FsSpace};

/// Attempts per pull: a flaky link gets a few resumes, a dead one fails in reasonable time.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// First pause between attempts (grows linearly).
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// A stalled server is given up on after this long without a byte.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Connecting takes at most this long.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`Store`] behaves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Permit plain http sources and redirects.
    pub allow_http: bool,
    /// Bytes that must stay free after a download.
    pub margin_bytes: u64,
    /// Where free space is read from (injectable for tests).
    pub disk_space: Arc<dyn DiskSpace>,
    /// Attempts per pull.
    pub max_attempts: u32,
    /// First pause between attempts.
    pub retry_backoff: Duration,
    /// Check the GGUF header before promoting a file.
    pub validate_gguf: bool,
    /// Limits for that check.
    pub gguf_limits: llamafleet_gguf::Limits,
    /// Draw progress (bar or log lines).
    pub show_progress: bool,
    /// When a download does not fit, evict cached models nobody uses or keeps ([`evict`]).
    pub evict: bool,
}

impl StoreConfig {
    /// Defaults for a cache directory.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            cache_dir: cache_dir.into(),
            allow_http: false,
            margin_bytes: space::DEFAULT_MARGIN_BYTES,
            disk_space: Arc::new(FsSpace),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            validate_gguf: true,
            gguf_limits: llamafleet_gguf::Limits::default(),
            show_progress: true,
            evict: true,
        }
    }
}

/// A model store over one cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Layout,
    client: reqwest::Client,
    config: StoreConfig,
    metrics: StoreMetrics,
}

impl Store {
    /// Opens (and creates) the cache directory.
    pub fn open(config: StoreConfig, metrics: StoreMetrics) -> Result<Store, StoreError> {
        let layout = Layout::new(&config.cache_dir);
        layout.create_dirs().map_err(StoreError::io(
            "creating cache directories in",
            &config.cache_dir,
        ))?;
        Ok(Store {
            layout,
            client: http_client()?,
            config,
            metrics,
        })
    }

    /// The cache layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The metrics.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The HTTP client (no automatic redirects).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

/// The client every store request uses: rustls, no automatic redirects (see [`http::send`]).
pub fn http_client() -> Result<reqwest::Client, StoreError> {
    llamafleet_remote::client_builder(concat!("llamafleet-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|source| StoreError::Client { source })
}
