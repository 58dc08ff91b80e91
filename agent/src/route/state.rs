//! What every request handler shares: the live table (with its counters and limits), the
//! keys, the metrics and the upstream HTTP client.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use llamafleet_crds::routing::RoutingTable;
use tokio::sync::Semaphore;

use super::endpoints::Discovery;
use super::keys::KeySet;
use super::limits::Limits;
use super::metrics::RouterMetrics;
use super::outliers::{OutlierPolicy, Outliers};
use super::replicas::{ReplicaChoice, Replicas};
use super::stats::RevisionStats;
use super::votes::Votes;
use super::wake::{Activity, Wakers};
use crate::serve::state::DEFAULT_MAX_BODY_BYTES;

/// Upstreams that do not accept a connection within this are reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A variant that may sleep and accepts no connection within this is taken for asleep (its
/// request is held while it wakes, so a slow connect costs a `/readyz` probe, not an error).
/// Where a Service without endpoints drops connections instead of refusing them, this is
/// what the first request of a wake waits before the scale-up starts.
const SLEEPY_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Shadow copies in flight at once; more are skipped rather than queued.
const MAX_SHADOWS_IN_FLIGHT: usize = 64;

/// One loaded routing table and what belongs to it.
#[derive(Debug)]
pub struct Live {
    /// The table.
    pub table: RoutingTable,
    /// Counters of the table's revision.
    pub stats: Arc<RevisionStats>,
    /// Rate limits of its tiers.
    pub limits: Limits,
    /// Request body limit.
    pub max_body_bytes: usize,
}

/// Shared router state (cheap to clone).
#[derive(Debug, Clone)]
pub struct RouterState {
    live: Arc<RwLock<Option<Arc<Live>>>>,
    keys: Arc<RwLock<Arc<KeySet>>>,
    /// Prometheus metrics.
    pub metrics: RouterMetrics,
    /// Client for the upstream variants.
    pub client: reqwest::Client,
    /// Client for variants that may sleep: a shorter connect timeout.
    pub sleepy_client: reqwest::Client,
    /// Room for shadow copies.
    pub shadows: Arc<Semaphore>,
    /// When each variant last had a request (the operator's measure of idleness).
    pub activity: Arc<Activity>,
    /// Wakes of sleeping variants in progress.
    pub wakers: Wakers,
    /// Votes of the A/B page.
    pub votes: Arc<Votes>,
    /// Variants that keep failing, out of the weighted choice for a while.
    pub outliers: Arc<Outliers>,
    /// The variants' replicas, their load and where prompt prefixes went.
    pub replicas: Replicas,
    discovery: Discovery,
}

impl RouterState {
    /// A state with no table yet (not ready).
    pub fn new(
        metrics: RouterMetrics,
        outliers: OutlierPolicy,
        replica_choice: ReplicaChoice,
    ) -> Result<Self, reqwest::Error> {
        let client_with = |connect_timeout| {
            reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .no_proxy()
                .build()
        };
        let client = client_with(CONNECT_TIMEOUT)?;
        let sleepy_client = client_with(SLEEPY_CONNECT_TIMEOUT)?;
        let wakers = Wakers::new(client.clone(), metrics.clone());
        let outliers = Arc::new(Outliers::new(outliers, metrics.clone()));
        let replicas = Replicas::new(replica_choice, metrics.clone());
        Ok(RouterState {
            live: Arc::default(),
            keys: Arc::default(),
            metrics,
            client,
            sleepy_client,
            shadows: Arc::new(Semaphore::new(MAX_SHADOWS_IN_FLIGHT)),
            activity: Arc::default(),
            wakers,
            votes: Arc::default(),
            outliers,
            replicas,
            discovery: Discovery::default(),
        })
    }

    /// The current table; requests keep the one they started with.
    pub fn live(&self) -> Option<Arc<Live>> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Switches to `table`. Counters carry over while the revision (the weights) is the same;
    /// rate-limit buckets carry over for tiers whose budgets did not change.
    pub fn install(&self, table: RoutingTable) {
        self.discovery.sync(&table, &self.replicas);
        let mut slot = self.live.write().unwrap_or_else(|e| e.into_inner());
        let previous = slot.as_ref();
        let stats = match previous {
            Some(p) if p.stats.revision() == table.revision() => p.stats.clone(),
            _ => Arc::new(RevisionStats::new(&table)),
        };
        let empty = Limits::default();
        let limits = Limits::build(&table, previous.map_or(&empty, |p| &p.limits));
        let max_body_bytes = table
            .limits
            .as_ref()
            .and_then(|l| l.max_body_bytes)
            .and_then(|b| usize::try_from(b).ok())
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        *slot = Some(Arc::new(Live {
            table,
            stats,
            limits,
            max_body_bytes,
        }));
    }

    /// The API keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the API keys.
    pub fn set_keys(&self, keys: KeySet) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}
