//! `route`: the router in front of an LlmDeployment's variants.
//!
//! It serves the same client API as `serve` (OpenAI `/v1/...`, Ollama `/api/...`) and forwards
//! each request, body unchanged, to one variant chosen from the routing table the operator
//! writes ([`llamafleet_crds::routing::RoutingTable`]); answers stream back as they arrive.
//!
//! - Choice: weighted rendezvous hashing ([`choose`]) of the client (its API key's client name,
//!   else the `sticky_header` value), so a client stays on one variant while the weights stay
//!   put; anonymous requests draw at random. `x-llamafleet-variant: NAME` pins a variant, and
//!   every answer names the variant in that header.
//! - Replicas ([`replicas`]): where the table says where a variant's replicas are (its
//!   Service's EndpointSlices, [`endpoints`]), the router picks the replica: the one that
//!   received the longest run of the request's prompt prefix ([`prefix`]) unless it is full,
//!   else the least loaded (replicas report their load in a response header).
//! - Keys and limits: with `api_keys_dir`, a known key is required (401 otherwise). Tier budgets
//!   are per deployment per hour; each of the `router_replicas` replicas enforces
//!   `ceil(budget / router_replicas)` per client on its own ([`limits`]), answering 429 with
//!   `Retry-After` and `x-ratelimit-*` headers when spent.
//! - Hot reload ([`reload`]): the table and keys are polled every second; a bad file leaves the
//!   last good one in place; in-flight requests keep the table (and upstream) they started with.
//! - Faults ([`outliers`]): a request that fails before any byte of its answer (no
//!   connection, a reset, a 503 with `Retry-After`) is sent once more, to another variant
//!   unless the client pinned one; a variant that keeps failing is ejected from the weighted
//!   choice for a while (30 s, doubling while it keeps failing), and every failed attempt is
//!   still counted against its variant for the rollout analysis.
//! - Shadow ([`shadow`]): a share of generation requests is copied to the shadow variant and
//!   the answers compared, in the background.
//! - Observability: `/metrics` (Prometheus, per variant) and [`STATS_PATH`](llamafleet_crds::routing::STATS_PATH) (this replica's
//!   [`RouterStats`](llamafleet_crds::routing::RouterStats) for the current revision, reset when
//!   the weights change), `/healthz`, `/readyz` (ready once a table is loaded).

pub mod answer;
pub mod body;
pub mod choose;
pub mod console;
pub mod endpoints;
pub mod http;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod outliers;
pub mod prefix;
pub mod proxy;
pub mod reload;
pub mod replicas;
pub mod shadow;
pub mod state;
pub mod stats;
pub mod table;
pub mod votes;
pub mod wake;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
pub use http::app;
use tokio::net::TcpListener;

use self::metrics::RouterMetrics;
use self::outliers::OutlierPolicy;
use self::replicas::ReplicaChoice;
use self::state::RouterState;

/// How often the table and keys are re-read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Settings of `llamafleet-agent route`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The routing table file.
    pub config: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Reload poll interval.
    pub poll_interval: Duration,
    /// Time in-flight streams may take to finish after SIGTERM.
    pub grace: Duration,
    /// When a variant that keeps failing is ejected.
    pub outliers: OutlierPolicy,
    /// How a variant's replica is picked.
    pub replica_choice: ReplicaChoice,
}

impl RouteConfig {
    /// Defaults for `config` on `listen`.
    pub fn new(config: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        RouteConfig {
            config: config.into(),
            listen,
            poll_interval: DEFAULT_POLL_INTERVAL,
            grace: Duration::from_secs(110),
            outliers: OutlierPolicy::default(),
            replica_choice: ReplicaChoice::default(),
        }
    }
}

/// A state with the table (and keys) at `config` loaded if they can be, and the reload loop
/// running in the background.
pub fn start(config: &RouteConfig) -> anyhow::Result<RouterState> {
    let state = RouterState::new(
        RouterMetrics::new()?,
        config.outliers,
        config.replica_choice,
    )?;
    let mut watcher = reload::Watcher::default();
    watcher.poll(&state, &config.config);
    let (bg_state, path, interval) = (state.clone(), config.config.clone(), config.poll_interval);
    tokio::spawn(async move {
        tokio::time::sleep(interval).await;
        loop {
            watcher.poll(&bg_state, &path);
            tokio::time::sleep(interval).await;
        }
    });
    Ok(state)
}

/// Runs the router until SIGTERM, then lets in-flight streams finish (up to the grace time).
pub async fn run(config: RouteConfig) -> anyhow::Result<()> {
    let state = start(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %listener.local_addr()?, config = %config.config.display(), "routing");
    // Small SSE frames must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let (signalled_tx, mut signalled) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        crate::serve::shutdown_signal().await;
        tracing::info!("shutdown requested: draining in-flight requests");
        let _ = signalled_tx.send(true);
    });
    tokio::select! {
        result = server => result?,
        _ = async {
            let _ = signalled.wait_for(|s| *s).await;
            tokio::time::sleep(config.grace).await;
        } => tracing::warn!("grace period over; exiting with streams still open"),
    }
    Ok(())
}
