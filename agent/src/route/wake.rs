//! Sleeping variants (`spec.autoscaling.minReplicas: 0`): the router counts how long each
//! variant has gone without a request ([`Activity`], read by the operator, which scales an
//! idle variant to zero) and wakes a sleeping one when a request comes ([`Wakers`]).
//!
//! A variant sleeps when its Service has no ready endpoint: a connection to it is refused. A
//! request that meets that, for a variant the table marks as able to sleep, is held (up to
//! `maxHeld` per variant; past it, or past `timeoutSeconds`, a 503 with `Retry-After`) while
//! one task per variant wakes it: it scales the variant's Deployment from 0 to 1 replica
//! through the `scale` subresource (the router's ServiceAccount may do exactly that, see the
//! operator's `build/wake.rs`), repeats that while it waits (the operator may have put it back
//! to sleep just before the request counted), and asks the variant's `/readyz` every
//! [`PROBE_INTERVAL`]. As soon as it answers, every held request is sent on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use llamafleet_crds::routing::{RoutedVariant, RoutedWake};
use tokio::sync::{OnceCell, watch};

use super::metrics::RouterMetrics;

/// How often a waking variant's `/readyz` is asked.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How often the scale-up is repeated while the variant is not ready.
pub const RESCALE_INTERVAL: Duration = Duration::from_secs(5);
/// Field manager of the router's scale patches.
const FIELD_MANAGER: &str = "llamafleet-router";

/// Time of the last request per variant.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    last: Mutex<HashMap<String, Instant>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            started: Instant::now(),
            last: Mutex::default(),
        }
    }
}

impl Activity {
    /// A request for `variant` arrived (held, answered or mirrored).
    pub fn touch(&self, variant: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(variant.to_string(), Instant::now());
    }

    /// Seconds without a request for each of `variants` (since the router started when none
    /// came).
    pub fn idle_seconds<'a>(
        &self,
        variants: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, f64> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        variants
            .into_iter()
            .map(|v| {
                let since = last.get(v).copied().unwrap_or(self.started);
                (v.to_string(), since.elapsed().as_secs_f64())
            })
            .collect()
    }
}

/// Why a held request was not sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `maxHeld` requests already wait for this variant.
    Full,
    /// The variant was not ready within `timeoutSeconds`.
    TimedOut,
}

/// One variant being woken: requests waiting and the news that it is ready.
#[derive(Debug)]
struct Waking {
    held: AtomicUsize,
    ready: watch::Sender<bool>,
}

/// The wakes in progress, per variant.
#[derive(Clone)]
pub struct Wakers {
    waking: Arc<Mutex<HashMap<String, Arc<Waking>>>>,
    /// Asks the variants' `/readyz`.
    client: reqwest::Client,
    metrics: RouterMetrics,
    /// Made on the first wake: in-cluster from the pod's ServiceAccount, else `KUBECONFIG`.
    kube: Arc<OnceCell<Client>>,
}

impl std::fmt::Debug for Wakers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakers")
            .field("waking", &self.waking)
            .finish_non_exhaustive()
    }
}

/// Takes a held place back when the request stops waiting, however it ends (a client that
/// goes away drops the request's future mid-wait: the gauge must not keep it).
struct Held {
    waking: Arc<Waking>,
    gauge: Option<prometheus::IntGauge>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.waking.held.fetch_sub(1, Ordering::SeqCst);
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

impl Wakers {
    /// No wake in progress yet; `client` asks the variants' `/readyz`.
    pub fn new(client: reqwest::Client, metrics: RouterMetrics) -> Self {
        Wakers {
            waking: Arc::default(),
            client,
            metrics,
            kube: Arc::default(),
        }
    }

    /// Holds a request for the sleeping `variant` until it is ready (then `Ok`: send it
    /// again), the table's timeout passes, or its held places are taken.
    pub async fn hold(
        &self,
        wake: &RoutedWake,
        variant: &RoutedVariant,
        deadline: Instant,
    ) -> Result<(), Refusal> {
        let waking = self.waking_of(wake, variant, deadline);
        let metrics = &self.metrics;
        let taken = waking.held.fetch_add(1, Ordering::SeqCst);
        let mut held = Held {
            waking: waking.clone(),
            gauge: None,
        };
        if taken >= wake.max_held as usize {
            return Err(Refusal::Full);
        }
        let gauge = metrics.held.with_label_values(&[&variant.name]);
        gauge.inc();
        held.gauge = Some(gauge);
        let mut ready = waking.ready.subscribe();
        let waited = tokio::time::timeout_at(deadline.into(), ready.wait_for(|r| *r)).await;
        drop(held);
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Refusal::TimedOut),
        }
    }

    /// Starts waking `variant` unless that is under way, holding nothing (a shadow copy that
    /// failed). A variant that is awake is only asked for `/readyz` once.
    pub fn wake(&self, wake: &RoutedWake, variant: &RoutedVariant) {
        let deadline = Instant::now() + Duration::from_secs(wake.timeout_seconds);
        self.waking_of(wake, variant, deadline);
    }

    /// The wake of `variant` in progress, or a new one with its task started.
    fn waking_of(
        &self,
        wake: &RoutedWake,
        variant: &RoutedVariant,
        deadline: Instant,
    ) -> Arc<Waking> {
        let mut waking = self.waking.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = waking.get(&variant.name) {
            return w.clone();
        }
        let (ready, _) = watch::channel(false);
        let w = Arc::new(Waking {
            held: AtomicUsize::new(0),
            ready,
        });
        waking.insert(variant.name.clone(), w.clone());
        let task = WakeTask {
            wakers: self.clone(),
            waking: w.clone(),
            namespace: wake.namespace.clone(),
            variant: variant.clone(),
            deadline,
        };
        tokio::spawn(task.run());
        w
    }

    async fn kube(&self) -> Result<Client, kube::Error> {
        self.kube
            .get_or_try_init(Client::try_default)
            .await
            .cloned()
    }
}

/// Wakes one variant: scale up, then wait for `/readyz`.
struct WakeTask {
    wakers: Wakers,
    waking: Arc<Waking>,
    namespace: String,
    variant: RoutedVariant,
    deadline: Instant,
}

impl WakeTask {
    async fn run(self) {
        let started = Instant::now();
        let name = &self.variant.name;
        tracing::info!(variant = %name, "variant asleep: waking it");
        let mut scaled_at: Option<Instant> = None;
        let result = loop {
            if scaled_at.is_none_or(|t| t.elapsed() >= RESCALE_INTERVAL) {
                scaled_at = Some(Instant::now());
                if let Err(error) = self.scale_up().await {
                    tracing::warn!(variant = %name, %error, "could not scale the variant up");
                }
            }
            if self.ready().await {
                break "ok";
            }
            // Requests arriving later hold their own deadline; the task lives as long as
            // someone still waits.
            let waiting = self.waking.held.load(Ordering::SeqCst) > 0;
            if Instant::now() >= self.deadline && !waiting {
                break "timeout";
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        };
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(variant = %name, result, seconds, "wake ended");
        self.wakers
            .metrics
            .wakes
            .with_label_values(&[name.as_str(), result])
            .inc();
        // Later requests that find it asleep again start a new wake.
        self.wakers
            .waking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        self.waking.ready.send_replace(result == "ok");
    }

    /// Scales the Deployment to one replica if it has none (an autoscaler's count is left
    /// alone).
    async fn scale_up(&self) -> Result<(), kube::Error> {
        let Some(deployment) = self.variant.deployment.as_deref() else {
            return Ok(());
        };
        let kube = self.wakers.kube().await?;
        let api: Api<Deployment> = Api::namespaced(kube, &self.namespace);
        let scale = api.get_scale(deployment).await?;
        let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
        if replicas > 0 {
            return Ok(());
        }
        let patch = serde_json::json!({ "spec": { "replicas": 1 } });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        api.patch_scale(deployment, &params, &Patch::Merge(&patch))
            .await?;
        tracing::info!(variant = %self.variant.name, %deployment, "scaled to 1 replica");
        Ok(())
    }

    async fn ready(&self) -> bool {
        let url = format!("{}/readyz", self.variant.url.trim_end_matches('/'));
        let asked = self
            .wakers
            .client
            .get(url)
            .timeout(PROBE_INTERVAL * 4)
            .send()
            .await;
        asked.is_ok_and(|r| r.status().is_success())
    }
}
