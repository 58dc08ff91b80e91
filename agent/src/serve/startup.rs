//! The `serve` lifecycle: bind first (so probes answer while downloading), pull, verify,
//! load under a crash marker, warm up, serve; on SIGTERM drain within a grace period. A failed
//! startup stays observable for [`FAILURE_LINGER`] before it exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use super::engine::{Engine, EngineConfig, Prompt, SamplingParams};
use super::metrics::ServeMetrics;
use super::state::{AppState, Download, Phase, ServeOptions};
use crate::store::{
    Layout, ModelLease, PullRequest, Pulled, Store, StoreConfig, StoreError, crash,
};

/// How often `/status` copies the download counter while a model downloads.
const DOWNLOAD_POLL: Duration = Duration::from_millis(500);
/// After the grace period: how long the error events of the generations still running may
/// take to reach their clients before the process exits anyway.
const CLOSE_AFTER_GRACE: Duration = Duration::from_secs(3);
/// How long a failed startup (pull, verification, load) keeps answering `/metrics` and
/// `/status` before it exits, unless `--failure-linger` says otherwise. At once by default:
/// someone at a terminal wants the error, not a wait. In pods the operator asks for a minute,
/// since a pod that died at once would never be scraped.
pub const FAILURE_LINGER: Duration = Duration::ZERO;

/// Everything `serve` needs, as parsed from the command line.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// URL or path of the GGUF.
    pub source: String,
    /// Expected sha256.
    pub sha256: Option<String>,
    /// Bearer token for the source.
    pub bearer_token: Option<String>,
    /// Store settings (cache dir, http, margins).
    pub store: StoreConfig,
    /// Listen address.
    pub listen: SocketAddr,
    /// Engine settings (the model path is filled in after the pull).
    pub engine: EngineConfig,
    /// HTTP limits and names.
    pub options: ServeOptions,
    /// API key (None: open).
    pub api_key: Option<String>,
    /// Presets file.
    pub preset_file: Option<PathBuf>,
    /// How long in-flight streams may run after SIGTERM.
    pub grace: Duration,
    /// Cached models to keep besides the served one (see [`super::keep`]).
    pub keep_file: Option<PathBuf>,
    /// How long a failed startup keeps `/metrics` and `/status` up before exiting.
    pub failure_linger: Duration,
    /// After a failure a restart would repeat ([`StoreError::is_permanent`]), stay up in the
    /// failed phase until stopped instead of exiting: in a pod a restart would download the
    /// whole file again, forever, while the status says what to fix.
    pub hold_permanent_failure: bool,
}

impl ServeConfig {
    /// Defaults for a source and listen address (ctx 2048, 1 slot, all cores).
    pub fn new(
        source: impl Into<String>,
        cache_dir: impl Into<PathBuf>,
        listen: SocketAddr,
    ) -> Self {
        let source = source.into();
        ServeConfig {
            options: ServeOptions::new(model_name(&source), 1),
            source,
            sha256: None,
            bearer_token: None,
            store: StoreConfig::new(cache_dir),
            listen,
            engine: EngineConfig::new(PathBuf::new()),
            api_key: None,
            preset_file: None,
            grace: Duration::from_secs(30),
            keep_file: None,
            failure_linger: FAILURE_LINGER,
            hold_permanent_failure: false,
        }
    }
}

/// Whether a startup error is one the same start would meet again.
fn is_permanent(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_permanent)
    })
}

/// The model name clients use by default: the file name without `.gguf`, lowercased.
pub fn model_name(source: &str) -> String {
    let last = source
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(source);
    let last = last.split(['?', '#']).next().unwrap_or(last);
    last.strip_suffix(".gguf").unwrap_or(last).to_lowercase()
}

/// Runs `serve` until SIGTERM/SIGINT (then `Ok`) or a startup failure (`Err`).
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let metrics = ServeMetrics::new().context("registering metrics")?;
    let presets = match &config.preset_file {
        Some(path) => super::presets::load(path, &config.options.model_name)?,
        None => Vec::new(),
    };
    if let Some(path) = &config.keep_file {
        let layout = Layout::new(&config.store.cache_dir);
        super::keep::start(path.clone(), layout).context("starting the keep-file thread")?;
    }
    let slots = config.engine.parallel as usize;
    let state = AppState::new(
        config.options.clone(),
        slots,
        metrics,
        presets,
        config.api_key.clone(),
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "listening");
    let (signalled_tx, mut signalled) = tokio::sync::watch::channel(false);
    let drain_state = state.clone();
    let server =
        axum::serve(listener, super::app(state.clone())).with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: draining in-flight requests");
            drain_state.start_draining();
            let _ = signalled_tx.send(true);
        });
    let mut server = tokio::spawn(async move { server.await });
    tokio::select! {
        result = start(&state, config.clone()) => {
            if let Err(e) = result {
                state.update(|s| { s.enter(Phase::Failed); s.error = Some(format!("{e:#}")); });
                if config.hold_permanent_failure && is_permanent(&e) {
                    tracing::error!(error = %format!("{e:#}"), "startup failed in a way a restart would repeat; staying up in the failed phase until stopped (fix the spec)");
                    let _ = signalled.changed().await;
                    return Err(e);
                }
                tracing::error!(error = %format!("{e:#}"), linger_seconds = config.failure_linger.as_secs(), "startup failed; exiting after the linger");
                tokio::select! {
                    () = tokio::time::sleep(config.failure_linger) => {}
                    _ = signalled.changed() => {}
                }
                return Err(e);
            }
        }
        _ = signalled.changed() => {}
    }
    tokio::select! {
        result = &mut server => { result??; }
        _ = async {
            let _ = signalled.wait_for(|s| *s).await;
            tokio::time::sleep(config.grace).await;
        } => {
            // The generations still running end with an error event (or an error answer),
            // which the server sends before the connections close; a connection that does
            // not close in time after that is cut.
            tracing::warn!(grace_seconds = config.grace.as_secs(), "grace period over; ending the generations still running with an error");
            state.end_grace();
            if tokio::time::timeout(CLOSE_AFTER_GRACE, &mut server).await.is_err() {
                tracing::warn!("connections still open after the grace period; exiting");
            }
        }
    }
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Pull → verify → load → warm → ready.
async fn start(state: &AppState, mut config: ServeConfig) -> anyhow::Result<()> {
    let store = Store::open(config.store.clone(), state.metrics.store.clone())?;
    let received = state.metrics.store.download_received.clone();
    let size = state.metrics.store.download_size.clone();
    let poll_state = state.clone();
    let poller = tokio::spawn(async move {
        loop {
            poll_state.update(|s| {
                s.download.bytes = u64::try_from(received.get()).unwrap_or(0);
                s.download.total = u64::try_from(size.get()).unwrap_or(0);
            });
            tokio::time::sleep(DOWNLOAD_POLL).await;
        }
    });
    let leased = pull_and_lease(
        &store,
        &PullRequest {
            source: config.source.clone(),
            sha256: config.sha256.clone(),
            bearer_token: config.bearer_token.clone(),
        },
    )
    .await;
    poller.abort();
    // The lease is held for the life of the process: `cache gc` and eviction must not
    // delete a model being served.
    let (pulled, lease) = leased?;
    state.update(|s| {
        s.enter(Phase::Verifying);
        s.download = Download {
            bytes: pulled.size,
            total: pulled.size,
        };
        s.sha256 = pulled.sha256.clone();
    });
    let path = lease.path.clone();
    let limits = config.store.gguf_limits.clone();
    let header = tokio::task::spawn_blocking(move || llamafleet_gguf::read_file(&path, &limits))
        .await?
        .context("validating the GGUF header")?;
    let mut summary = llamafleet_gguf::Summary::from_header(&header);
    summary.tensors.clear();
    state.update(|s| {
        s.enter(Phase::Loading);
        s.gguf = serde_json::to_value(&summary).unwrap_or_default();
    });
    config.engine.model_path = lease.path.clone();
    let guard = crash::begin_load(store.layout(), &pulled.sha256, crash::MAX_CRASHES)?;
    let engine_metrics = state.metrics.engine.clone();
    // The presets' system prompts are kept warm (pinned) from the start.
    config.engine.pinned = state
        .presets
        .iter()
        .filter_map(|p| p.system.clone())
        .collect();
    let engine_config = config.engine.clone();
    let engine =
        tokio::task::spawn_blocking(move || Engine::load(engine_config, engine_metrics)).await??;
    guard.loaded()?;
    tracing::info!(
        load_seconds = engine.info().load_seconds,
        chat_template = %engine.info().chat_template,
        device = %engine.info().device,
        "model loaded"
    );
    let _ = state.engine.set(engine.clone());
    state.update(|s| s.enter(Phase::Warming));
    warm_up(&engine).await?;
    state.update(|s| s.enter(Phase::Ready));
    tracing::info!("ready");
    std::mem::forget(lease);
    Ok(())
}

/// Pulls the model and holds it in use. Until the lease, a cache hit is not held, so another
/// agent's eviction may delete it in between: a model gone by then is pulled once more.
async fn pull_and_lease(
    store: &Store,
    request: &PullRequest,
) -> Result<(Pulled, ModelLease), StoreError> {
    let pulled = store.pull(request).await?;
    match store.lease(&pulled.sha256).await {
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(sha256 = %pulled.sha256, "the model was evicted before it was leased; pulling it again");
            let pulled = store.pull(request).await?;
            let lease = store.lease(&pulled.sha256).await?;
            Ok((pulled, lease))
        }
        leased => Ok((pulled, leased?)),
    }
}

/// One short greedy generation: pages the weights in and builds llama.cpp's compute graphs,
/// so the first client does not pay for it.
pub(crate) async fn warm_up(engine: &Engine) -> anyhow::Result<()> {
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(2),
        ..Default::default()
    };
    let mut rx = engine.generate(Prompt::Text("Hello".into()), params)?;
    while let Some(event) = rx.recv().await {
        match event {
            super::engine::Event::Done { .. } => return Ok(()),
            super::engine::Event::Error(e) => anyhow::bail!("warm-up failed: {e}"),
            _ => {}
        }
    }
    anyhow::bail!("warm-up: the engine stopped")
}
