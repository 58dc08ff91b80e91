//! Shared state of the HTTP surface: options, startup phase, the engine once loaded, the
//! admission semaphore, metrics and presets.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{Semaphore, watch};

use super::engine::Engine;
use super::metrics::ServeMetrics;
use super::presets::Preset;

/// Requests that may wait for a slot, per slot: enough to absorb a burst, few enough that a
/// queued request still starts within a few generations.
pub const DEFAULT_QUEUE_PER_SLOT: usize = 4;
/// Request bodies above this are refused (413): a full 128k-token prompt is ~512 KiB of text.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Longest a request may run, streaming included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// `/healthz` fails when requests are in flight and no decode step finished for this long.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(120);

/// Startup phases, as `/status` and `/readyz` report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Fetching the GGUF.
    Downloading,
    /// Hashing / validating the header.
    Verifying,
    /// llama.cpp load.
    Loading,
    /// First generation.
    Warming,
    /// Serving.
    Ready,
    /// Startup failed; the process exits soon.
    Failed,
}

/// What `/status` reports besides live engine numbers.
#[derive(Debug, Clone, Serialize)]
pub struct StartupStatus {
    /// Current phase.
    pub phase: Phase,
    /// Bytes downloaded so far and the file size (0 while unknown).
    pub download: Download,
    /// sha256 of the model (empty until known).
    pub sha256: String,
    /// The GGUF summary (null until validated).
    pub gguf: serde_json::Value,
    /// Why startup failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds spent in each phase that has ended (`downloading` includes the cache lookup:
    /// near zero for a cached, verified file), so a cold start or a wake can be broken down.
    pub phase_seconds: BTreeMap<Phase, f64>,
    /// When the current phase began.
    #[serde(skip)]
    phase_started: Instant,
}

impl StartupStatus {
    /// Ends the current phase (recording its time) and begins `next`.
    pub fn enter(&mut self, next: Phase) {
        let now = Instant::now();
        let spent = now.duration_since(self.phase_started).as_secs_f64();
        *self.phase_seconds.entry(self.phase).or_default() += spent;
        self.phase = next;
        self.phase_started = now;
    }
}

/// Download progress.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Download {
    /// Bytes received.
    pub bytes: u64,
    /// Total bytes (0 while unknown).
    pub total: u64,
}

/// Limits and switches of the HTTP surface.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The name clients use for the model.
    pub model_name: String,
    /// Requests waiting for a slot at most (beyond the slots themselves).
    pub queue: usize,
    /// Body size limit.
    pub max_body_bytes: usize,
    /// Per-request limit.
    pub request_timeout: Duration,
    /// `/healthz` threshold.
    pub stuck_after: Duration,
    /// CORS origins (empty: no CORS headers).
    pub cors_origins: Vec<String>,
    /// Include prompt and answer text in request logs.
    pub log_text: bool,
}

impl ServeOptions {
    /// Defaults for a model name and slot count.
    pub fn new(model_name: impl Into<String>, slots: usize) -> Self {
        ServeOptions {
            model_name: model_name.into(),
            queue: slots * DEFAULT_QUEUE_PER_SLOT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            stuck_after: DEFAULT_STUCK_AFTER,
            cors_origins: Vec::new(),
            log_text: false,
        }
    }
}

/// The state every handler shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
#[doc(hidden)]
pub struct Inner {
    pub options: ServeOptions,
    pub status: Mutex<StartupStatus>,
    pub engine: OnceLock<Engine>,
    pub admission: Arc<Semaphore>,
    pub metrics: ServeMetrics,
    pub presets: Vec<Preset>,
    draining: AtomicBool,
    /// Set when the drain's grace period is over: the generations still running end with an
    /// error (a stream's last event) instead of being cut when the process exits.
    grace_over: watch::Sender<bool>,
    api_key_digest: Option<[u8; 32]>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// State before the model is loaded; `slots` sizes the admission semaphore.
    pub fn new(
        options: ServeOptions,
        slots: usize,
        metrics: ServeMetrics,
        presets: Vec<Preset>,
        api_key: Option<String>,
    ) -> Self {
        let permits = slots + options.queue;
        AppState(Arc::new(Inner {
            options,
            status: Mutex::new(StartupStatus {
                phase: Phase::Downloading,
                download: Download::default(),
                sha256: String::new(),
                gguf: serde_json::Value::Null,
                error: None,
                phase_seconds: BTreeMap::new(),
                phase_started: Instant::now(),
            }),
            engine: OnceLock::new(),
            admission: Arc::new(Semaphore::new(permits)),
            metrics,
            presets,
            draining: AtomicBool::new(false),
            grace_over: watch::Sender::new(false),
            api_key_digest: api_key.map(|k| Sha256::digest(k.trim().as_bytes()).into()),
        }))
    }

    /// Updates the startup status.
    pub fn update(&self, f: impl FnOnce(&mut StartupStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// A copy of the startup status.
    pub fn snapshot(&self) -> StartupStatus {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The engine once the phase is `ready`.
    pub fn ready_engine(&self) -> Option<&Engine> {
        (self.snapshot().phase == Phase::Ready)
            .then(|| self.engine.get())
            .flatten()
    }

    /// SIGTERM arrived: new requests get 503 and `/readyz` fails while streams finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The drain's grace period is over: every generation still running ends with an error.
    pub fn end_grace(&self) {
        self.grace_over.send_replace(true);
    }

    /// Watches for [`AppState::end_grace`] (a generation holds one).
    pub fn grace_watch(&self) -> watch::Receiver<bool> {
        self.grace_over.subscribe()
    }

    /// Whether a key is configured.
    pub fn requires_key(&self) -> bool {
        self.api_key_digest.is_some()
    }

    /// Compares digests in constant time, so timing reveals neither the key nor its length.
    pub fn key_matches(&self, presented: &str) -> bool {
        match &self.api_key_digest {
            None => true,
            Some(expected) => {
                let got: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                bool::from(expected.ct_eq(&got))
            }
        }
    }
}
