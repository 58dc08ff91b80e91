//! Which replica of the chosen variant answers a request.
//!
//! With [`ReplicaChoice::Prefix`] (the default) a request goes to the replica that received
//! the longest leading run of its prompt blocks ([`super::prefix`]), whose cache most likely
//! still holds them. A request whose prefix this router has not sent anywhere goes to the
//! replica that a hash of its first block picks (rendezvous hashing), so that every router
//! replica, each with its own memory of prefixes, sends the same preset or conversation to the
//! same replica. Either way, a replica with no free slot while another has fewer requests is
//! passed over for the least loaded; a prompt shorter than a block goes to the least loaded.
//! A replica's load is the larger of the requests this router has in flight there and
//! what the replica last reported in its [`LOAD_HEADER`] (busy slots plus its queue; a report
//! counts for [`REPORT_FRESH`]). Until a replica has reported its slots it is taken to have
//! one, so a first burst spreads over the replicas instead of queueing on one.
//!
//! A replica that failed before answering (no connection, a reset) is set aside for a while;
//! with no usable replica known, the request goes to the variant's Service URL as before.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use llamafleet_crds::routing::{LOAD_HEADER, ReplicaLoad};

use super::metrics::RouterMetrics;
use super::prefix::PrefixIndex;

/// How long a replica's reported load is believed.
pub const REPORT_FRESH: Duration = Duration::from_secs(5);

/// How the router picks among a variant's replicas (`route --replica-choice`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplicaChoice {
    /// The replica holding the request's prompt prefix, unless it is full; else the least
    /// loaded.
    #[default]
    Prefix,
    /// The least loaded replica.
    LeastLoaded,
    /// Any ready replica at random (what a Service does; for comparisons).
    Random,
}

/// Why a replica was chosen (the `choice` label of `llamafleet_router_replica_choices_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// It holds the request's longest prompt prefix.
    Prefix,
    /// This router sent no prefix of the request anywhere yet: the replica its first block
    /// hashes to.
    Hash,
    /// The replica holding the prefix (or hashed to) was full: the least loaded one.
    Load,
    /// A prompt shorter than a block: the least loaded replica.
    LeastLoaded,
    /// At random.
    Random,
}

impl Choice {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Choice::Prefix => "prefix",
            Choice::Hash => "hash",
            Choice::Load => "load",
            Choice::LeastLoaded => "least_loaded",
            Choice::Random => "random",
        }
    }
}

/// One replica: its base URL and what the router knows of its load.
#[derive(Debug)]
pub struct Replica {
    /// Base URL (`http://10.1.2.3:8080`).
    pub url: Arc<str>,
    in_flight: AtomicU32,
    reported: Mutex<Option<(ReplicaLoad, Instant)>>,
    set_aside_until: Mutex<Option<Instant>>,
}

impl Replica {
    fn new(url: &str) -> Self {
        Replica {
            url: url.into(),
            in_flight: AtomicU32::new(0),
            reported: Mutex::default(),
            set_aside_until: Mutex::default(),
        }
    }

    /// Requests in flight, or as many as the replica last said it holds if that is more.
    pub fn load(&self, now: Instant) -> u32 {
        let own = self.in_flight.load(Ordering::Relaxed);
        match *self.reported.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((load, at)) if now.duration_since(at) < REPORT_FRESH => {
                own.max(load.busy.saturating_add(load.queued))
            }
            _ => own,
        }
    }

    /// Slots, as last reported (one until then).
    pub fn slots(&self) -> u32 {
        let reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        reported.map_or(1, |(load, _)| load.slots.max(1))
    }

    /// Whether every slot is taken.
    pub fn full(&self, now: Instant) -> bool {
        self.load(now) >= self.slots()
    }

    /// Reads the load an answer's headers report.
    pub fn observe(&self, headers: &reqwest::header::HeaderMap) {
        let load = headers
            .get(LOAD_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(ReplicaLoad::parse);
        if let Some(load) = load {
            *self.reported.lock().unwrap_or_else(|e| e.into_inner()) = Some((load, Instant::now()));
        }
    }

    /// Sets the replica aside for `period` (it failed before answering).
    pub fn set_aside(&self, period: Duration) {
        *self
            .set_aside_until
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + period);
    }

    fn usable(&self, now: Instant) -> bool {
        self.set_aside_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|until| now >= until)
    }

    /// Counts a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request in flight on a replica (counted until dropped).
#[derive(Debug)]
pub struct InFlight(Arc<Replica>);

impl InFlight {
    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The ready replicas of one variant and where prompt prefixes went.
#[derive(Debug, Default)]
pub struct VariantReplicas {
    ready: RwLock<Vec<Arc<Replica>>>,
    index: PrefixIndex,
}

impl VariantReplicas {
    /// Replaces the ready replicas with `urls`; replicas still listed keep their counts.
    pub fn set(&self, urls: &[String]) {
        let mut ready = self.ready.write().unwrap_or_else(|e| e.into_inner());
        let mut old: HashMap<Arc<str>, Arc<Replica>> =
            ready.drain(..).map(|r| (r.url.clone(), r)).collect();
        for url in urls {
            let trimmed = url.trim_end_matches('/');
            if ready.iter().any(|r| &*r.url == trimmed) {
                continue;
            }
            let replica = old
                .remove(trimmed)
                .unwrap_or_else(|| Arc::new(Replica::new(trimmed)));
            ready.push(replica);
        }
    }

    /// How many replicas are ready.
    pub fn len(&self) -> usize {
        self.ready.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no replica is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The usable replicas but `avoid`.
    fn usable(&self, now: Instant, avoid: Option<&str>) -> Vec<Arc<Replica>> {
        self.ready
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.usable(now) && avoid != Some(&*r.url))
            .cloned()
            .collect()
    }

    /// Whether a replica other than `avoid` is usable.
    pub fn has_usable(&self, avoid: Option<&str>) -> bool {
        !self.usable(Instant::now(), avoid).is_empty()
    }

    /// Whether a replica other than `avoid` is usable and has a free slot.
    pub fn has_free(&self, avoid: Option<&str>) -> bool {
        let now = Instant::now();
        self.usable(now, avoid).iter().any(|r| !r.full(now))
    }

    /// The replica for a request with prompt `blocks` (other than `avoid`, which just failed
    /// it), or `None` when no replica is usable.
    pub fn choose(
        &self,
        how: ReplicaChoice,
        blocks: &[u64],
        avoid: Option<&str>,
    ) -> Option<(Arc<Replica>, Choice)> {
        let now = Instant::now();
        let usable = self.usable(now, avoid);
        if usable.is_empty() {
            return None;
        }
        if how == ReplicaChoice::Random {
            let i = rand::random_range(0..usable.len());
            return Some((usable[i].clone(), Choice::Random));
        }
        let least = least_loaded(&usable, now);
        if how == ReplicaChoice::LeastLoaded {
            return Some((least, Choice::LeastLoaded));
        }
        let holder = self
            .index
            .longest(blocks, |url| usable.iter().any(|r| &*r.url == url))
            .and_then(|(url, _)| usable.iter().find(|r| r.url == url).cloned());
        let preferred = match (holder, blocks.first()) {
            (Some(holder), _) => Some((holder, Choice::Prefix)),
            (None, Some(first)) => Some((hashed(&usable, *first), Choice::Hash)),
            (None, None) => None,
        };
        let (chosen, choice) = match preferred {
            Some((r, _)) if r.full(now) && least.load(now) < r.load(now) => (least, Choice::Load),
            Some(preferred) => preferred,
            None => (least, Choice::LeastLoaded),
        };
        self.index.record(blocks, &chosen.url);
        Some((chosen, choice))
    }
}

/// The replica `block` hashes to: the highest hash of (block, replica URL), so that a replica
/// coming or going moves only the blocks that must move.
fn hashed(replicas: &[Arc<Replica>], block: u64) -> Arc<Replica> {
    let score = |r: &&Arc<Replica>| {
        let mut hasher = DefaultHasher::new();
        (block, &*r.url).hash(&mut hasher);
        hasher.finish()
    };
    // `replicas` is never empty here (checked by the caller).
    replicas
        .iter()
        .max_by_key(score)
        .unwrap_or(&replicas[0])
        .clone()
}

/// The replica with the fewest requests; ties drawn at random, so that equal replicas share.
fn least_loaded(replicas: &[Arc<Replica>], now: Instant) -> Arc<Replica> {
    let loads: Vec<u32> = replicas.iter().map(|r| r.load(now)).collect();
    let min = loads.iter().copied().min().unwrap_or(0);
    let tied: Vec<usize> = (0..replicas.len()).filter(|&i| loads[i] == min).collect();
    replicas[tied[rand::random_range(0..tied.len())]].clone()
}

/// The replicas of every variant that lists them, by variant name.
#[derive(Debug, Clone)]
pub struct Replicas {
    /// How a replica is picked.
    pub choice: ReplicaChoice,
    by_variant: Arc<Mutex<HashMap<String, Arc<VariantReplicas>>>>,
    metrics: RouterMetrics,
}

impl Replicas {
    /// No variant's replicas known yet.
    pub fn new(choice: ReplicaChoice, metrics: RouterMetrics) -> Self {
        Replicas {
            choice,
            by_variant: Arc::default(),
            metrics,
        }
    }

    /// The replicas of `variant`, created empty when first asked for.
    pub fn of(&self, variant: &str) -> Arc<VariantReplicas> {
        let mut all = self.by_variant.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(variant.to_string()).or_default().clone()
    }

    /// The replicas of `variant` if any is known.
    pub fn known(&self, variant: &str) -> Option<Arc<VariantReplicas>> {
        let all = self.by_variant.lock().unwrap_or_else(|e| e.into_inner());
        all.get(variant).filter(|r| !r.is_empty()).cloned()
    }

    /// Sets the ready replicas of `variant`.
    pub fn set(&self, variant: &str, urls: &[String]) {
        let replicas = self.of(variant);
        self.install(variant, &replicas, urls);
    }

    /// Sets the ready replicas of `variant` unless it has been forgotten meanwhile (a watch
    /// that was stopped while it read a change).
    pub fn set_if_known(&self, variant: &str, urls: &[String]) {
        let replicas = {
            let all = self.by_variant.lock().unwrap_or_else(|e| e.into_inner());
            all.get(variant).cloned()
        };
        if let Some(replicas) = replicas {
            self.install(variant, &replicas, urls);
        }
    }

    fn install(&self, variant: &str, replicas: &VariantReplicas, urls: &[String]) {
        replicas.set(urls);
        self.metrics
            .replicas
            .with_label_values(&[variant])
            .set(replicas.len() as i64);
    }

    /// Forgets every variant but `keep`.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut all = self.by_variant.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|name, _| {
            let kept = keep(name);
            if !kept {
                let _ = self.metrics.replicas.remove_label_values(&[name]);
            }
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn variant(urls: &[&str]) -> VariantReplicas {
        let replicas = VariantReplicas::default();
        replicas.set(&urls.iter().map(|u| u.to_string()).collect::<Vec<_>>());
        replicas
    }

    fn report(replica: &Replica, busy: u32, slots: u32) {
        let mut headers = reqwest::header::HeaderMap::new();
        let load = ReplicaLoad {
            busy,
            slots,
            queued: 0,
        };
        headers.insert(LOAD_HEADER, load.header().parse().unwrap());
        replica.observe(&headers);
    }

    #[test]
    fn a_shared_prefix_goes_back_to_its_replica_until_it_is_full() {
        let replicas = variant(&["http://a", "http://b"]);
        let (first, choice) = replicas
            .choose(ReplicaChoice::Prefix, &[1, 2], None)
            .unwrap();
        assert_eq!(choice, Choice::Hash);
        report(&first, 0, 2);
        let guard = first.start();
        let (second, choice) = replicas
            .choose(ReplicaChoice::Prefix, &[1, 2, 3], None)
            .unwrap();
        assert_eq!(
            (second.url.clone(), choice),
            (first.url.clone(), Choice::Prefix)
        );
        let _second_guard = second.start();
        // Both of its slots are taken and the other replica is idle.
        let (third, choice) = replicas
            .choose(ReplicaChoice::Prefix, &[1, 2, 4], None)
            .unwrap();
        assert_eq!(choice, Choice::Load);
        assert_ne!(third.url, first.url);
        // Blocks 1 and 2 went to the other replica with the third request.
        drop(guard);
        let (fourth, choice) = replicas
            .choose(ReplicaChoice::Prefix, &[1, 2, 3], None)
            .unwrap();
        assert_eq!(
            (fourth.url.clone(), choice),
            (first.url.clone(), Choice::Prefix)
        );
    }

    #[test]
    fn routers_that_never_saw_a_prefix_agree_on_its_replica() {
        let urls = ["http://a", "http://b", "http://c"];
        let mut seen = std::collections::HashSet::new();
        for first in 0..32u64 {
            let picks: Vec<Arc<str>> = (0..2)
                .map(|_| {
                    let router = variant(&urls);
                    let (r, choice) = router
                        .choose(ReplicaChoice::Prefix, &[first], None)
                        .unwrap();
                    assert_eq!(choice, Choice::Hash);
                    r.url.clone()
                })
                .collect();
            assert_eq!(picks[0], picks[1]);
            seen.insert(picks[0].clone());
        }
        assert_eq!(seen.len(), 3, "32 prefixes spread over the replicas");
        // Short prompts have no block: the least loaded.
        let router = variant(&urls);
        let (_, choice) = router.choose(ReplicaChoice::Prefix, &[], None).unwrap();
        assert_eq!(choice, Choice::LeastLoaded);
    }

    #[test]
    fn a_replica_that_has_not_reported_counts_as_one_slot() {
        let replicas = variant(&["http://a", "http://b"]);
        let (first, _) = replicas.choose(ReplicaChoice::Prefix, &[7], None).unwrap();
        let _busy = first.start();
        let (second, choice) = replicas.choose(ReplicaChoice::Prefix, &[7], None).unwrap();
        assert_eq!(choice, Choice::Load);
        assert_ne!(second.url, first.url);
    }

    #[test]
    fn a_set_aside_replica_is_skipped_and_none_usable_means_the_service() {
        let replicas = variant(&["http://a", "http://b"]);
        let (a, _) = replicas
            .choose(ReplicaChoice::LeastLoaded, &[], None)
            .unwrap();
        a.set_aside(Duration::from_secs(60));
        for _ in 0..10 {
            let (r, _) = replicas.choose(ReplicaChoice::Random, &[], None).unwrap();
            assert_ne!(r.url, a.url);
        }
        let (b, _) = replicas.choose(ReplicaChoice::Prefix, &[], None).unwrap();
        b.set_aside(Duration::from_secs(60));
        assert!(replicas.choose(ReplicaChoice::Prefix, &[], None).is_none());
    }

    #[test]
    fn a_new_list_keeps_the_counts_of_replicas_still_listed() {
        let replicas = variant(&["http://a/", "http://b"]);
        let (a, _) = replicas
            .choose(ReplicaChoice::LeastLoaded, &[], None)
            .unwrap();
        let _guard = a.start();
        replicas.set(&[a.url.to_string(), "http://c".into()]);
        assert_eq!(replicas.len(), 2);
        let now = Instant::now();
        let kept = replicas.ready.read().unwrap().clone();
        assert_eq!(kept.iter().map(|r| r.load(now)).sum::<u32>(), 1);
    }
}
