//! What every reconcile shares: the client, the watch caches, the event recorder, metrics,
//! options, the clock and per-object backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::agent_status::AgentProbe;
use crate::build::gpu::AgentImages;
use crate::deployment::dereference::LiveChildren;
use crate::metrics::Metrics;
use crate::model::fetch::Fetcher;
use crate::names::{CACHE_DIR, FIELD_MANAGER};
use crate::rollout::RouterStatsClient;
use crate::sizing::DEFAULT_GPU_MEMORY_BYTES;
use crate::stores::Stores;

/// First retry delay after a transient error; doubles per consecutive failure.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest retry delay: five minutes keeps a broken object visible without load.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How the model controller reaches sources and plans memory.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Client for sources; `None` turns remote resolution off (models are `Ready` from their
    /// spec, as with `--no-resolve`).
    pub fetcher: Option<Fetcher>,
    /// Memory of each GPU for the layer split.
    pub gpu_memory_bytes: u64,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            fetcher: None,
            gpu_memory_bytes: DEFAULT_GPU_MEMORY_BYTES,
        }
    }
}

/// Clock of status conditions (fixed in tests).
pub type Clock = Arc<dyn Fn() -> Time + Send + Sync>;

/// Wall clock truncated to seconds, the precision the API server keeps, so a condition read
/// back compares equal to the one written.
pub fn system_clock() -> Clock {
    Arc::new(|| Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default()))
}

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder (reporting controller: the field manager).
    pub recorder: Recorder,
    /// Metrics served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Agent images of the pods, per backend.
    pub images: AgentImages,
    /// Where agent status comes from.
    pub agents: Arc<dyn AgentProbe>,
    /// Time of condition transitions.
    pub clock: Clock,
    /// Source resolution and memory planning.
    pub models: ModelOptions,
    /// Where progressive rollouts read router figures; `None` leaves every due step waiting.
    pub routers: Option<RouterStatsClient>,
    /// The watch caches the reconciles read.
    pub stores: Stores,
    /// Node directory of the node cache (the model cache of deployments whose `spec.cache`
    /// names none): the path of its PersistentVolumes.
    pub cache_path: String,
    failures: Mutex<HashMap<String, u32>>,
    /// Per object, the warnings already published for a state that persists (a skipped
    /// update): said once when it starts, not on every reconcile while it lasts.
    announced: Mutex<HashMap<String, Vec<String>>>,
}

/// What every reconcile starts with: the object's namespace and name, and a timer that records
/// the reconcile's duration when dropped.
pub struct ReconcileStart {
    /// Namespace of the object.
    pub ns: String,
    /// Name of the object.
    pub name: String,
    /// Observes the duration histogram on drop.
    pub timer: prometheus::HistogramTimer,
}

impl Context {
    /// Counts and times a reconcile of `controller`, and logs one debug line per reconcile (so a
    /// test, or someone chasing a hot loop, can count the reconciles of one object).
    pub fn begin_reconcile(
        &self,
        controller: &str,
        meta: &kube::core::ObjectMeta,
    ) -> Result<ReconcileStart, crate::error::Error> {
        use crate::error::Error;
        self.metrics
            .reconciles
            .with_label_values(&[controller])
            .inc();
        let timer = self
            .metrics
            .duration
            .with_label_values(&[controller])
            .start_timer();
        let name = meta.name.clone().ok_or(Error::MissingMetadata("name"))?;
        let ns = meta
            .namespace
            .clone()
            .ok_or(Error::MissingMetadata("namespace"))?;
        tracing::debug!(controller, %ns, %name, "reconcile started");
        Ok(ReconcileStart { ns, name, timer })
    }

    /// A context; `instance` names this operator replica in Events (its pod name). The GPU
    /// images are derived from `agent_image` ([`AgentImages::derived`]); where it has no tag to
    /// derive them from, every backend runs `agent_image` until [`Context::with_agent_images`]
    /// says otherwise (the binary always does: it refuses to start without them).
    pub fn new(
        client: Client,
        instance: Option<String>,
        metrics: Arc<Metrics>,
        agent_image: String,
        agents: Arc<dyn AgentProbe>,
        clock: Clock,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            images: AgentImages::derived(&agent_image).unwrap_or_else(|_| AgentImages {
                cpu: agent_image.clone(),
                cuda: agent_image.clone(),
                vulkan: agent_image,
            }),
            agents,
            clock,
            models: ModelOptions::default(),
            routers: None,
            stores: Stores::holding(Vec::new(), LiveChildren::default()),
            cache_path: CACHE_DIR.into(),
            failures: Mutex::default(),
            announced: Mutex::default(),
        }
    }

    /// The same context with these agent images.
    pub fn with_agent_images(mut self, images: AgentImages) -> Self {
        self.images = images;
        self
    }

    /// The same context reading these watch caches (until then: empty ones, an empty
    /// cluster).
    pub fn with_stores(mut self, stores: Stores) -> Self {
        self.stores = stores;
        self
    }

    /// The same context with this default node cache directory.
    pub fn with_cache_path(mut self, cache_path: String) -> Self {
        self.cache_path = cache_path;
        self
    }

    /// The same context with these model options.
    pub fn with_model_options(mut self, models: ModelOptions) -> Self {
        self.models = models;
        self
    }

    /// The same context reading router figures with `routers`.
    pub fn with_routers(mut self, routers: RouterStatsClient) -> Self {
        self.routers = Some(routers);
        self
    }

    /// Publishes a Normal Event; a failure to publish is logged, never fatal.
    pub async fn notify(&self, regarding: &ObjectReference, reason: &str, note: String) {
        let event = Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Publishes a Warning Event; a failure to publish is logged, never fatal.
    pub async fn warn(&self, regarding: &ObjectReference, reason: &str, note: String) {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Delay before the next retry of `key`, growing with each consecutive failure.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = BACKOFF_BASE
            .saturating_mul(1 << (*n).min(16))
            .min(BACKOFF_MAX);
        *n = n.saturating_add(1);
        delay
    }

    /// Of `current` (what holds for `key` now), those not announced by the last call; the
    /// rest were said already. An empty `current` forgets `key`.
    pub fn newly_announced(&self, key: &str, current: &[String]) -> Vec<String> {
        let mut announced = self.announced.lock().unwrap_or_else(|p| p.into_inner());
        let before = if current.is_empty() {
            announced.remove(key).unwrap_or_default()
        } else {
            announced
                .insert(key.to_string(), current.to_vec())
                .unwrap_or_default()
        };
        current
            .iter()
            .filter(|c| !before.contains(c))
            .cloned()
            .collect()
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}
