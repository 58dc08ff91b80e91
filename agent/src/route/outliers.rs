//! Passive health checks, as Envoy's outlier detection: a variant whose requests keep failing
//! (no connection, a reset before the answer, a 5xx other than a busy 503, a stream cut
//! short) is ejected from the weighted choice for a while, so its share goes to the others;
//! it comes back when the time is up, and is ejected again for twice as long if it keeps
//! failing. Pinned requests still reach an ejected variant (the client asked for it), and a
//! request whose every weighted variant is ejected is still sent (a fleet that fails
//! everywhere keeps being tried). Each router replica judges on its own traffic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::metrics::RouterMetrics;

/// When a variant is ejected, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// Failures in a row that eject a variant (0 never ejects).
    pub consecutive_failures: u32,
    /// The first ejection; each further one in a row doubles it.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
}

impl Default for OutlierPolicy {
    /// Three failures in a row: retries hide single failures from clients, so a dead variant
    /// costs three failed attempts, not three failed requests. 30 s (Envoy's base), at most
    /// 10 times that (`route --eject-after-failures`, `--ejection-seconds`).
    fn default() -> Self {
        OutlierPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        }
    }
}

impl OutlierPolicy {
    /// How long the ejection after `earlier` ones in a row lasts.
    fn ejection(&self, earlier: u32) -> Duration {
        let factor = 1u32.checked_shl(earlier).unwrap_or(u32::MAX);
        self.base_ejection
            .saturating_mul(factor)
            .min(self.max_ejection)
    }
}

#[derive(Debug, Default)]
struct Health {
    /// Failures since the last success.
    consecutive: u32,
    /// Ejections since the last success (the back-off's exponent).
    ejections: u32,
    /// Ejected until then.
    until: Option<Instant>,
}

/// The health of every variant as this router has seen it.
#[derive(Debug)]
pub struct Outliers {
    policy: OutlierPolicy,
    variants: Mutex<HashMap<String, Health>>,
    metrics: RouterMetrics,
}

impl Outliers {
    /// No variant ejected yet.
    pub fn new(policy: OutlierPolicy, metrics: RouterMetrics) -> Self {
        Outliers {
            policy,
            variants: Mutex::default(),
            metrics,
        }
    }

    /// The policy.
    pub fn policy(&self) -> OutlierPolicy {
        self.policy
    }

    /// Whether `variant` is out of the weighted choice now. An ejection that has run out ends
    /// here (and its gauge drops), at the first request that looks.
    pub fn is_ejected(&self, variant: &str) -> bool {
        let mut variants = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        let Some(health) = variants.get_mut(variant) else {
            return false;
        };
        self.still_ejected(variant, health)
    }

    /// Whether `health` is ejected now; ends an ejection that has run out.
    fn still_ejected(&self, variant: &str, health: &mut Health) -> bool {
        match health.until {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                health.until = None;
                health.consecutive = 0;
                self.metrics.ejected.with_label_values(&[variant]).set(0);
                tracing::info!(variant, "variant returns from ejection");
                false
            }
            None => false,
        }
    }

    /// An answer that was not the variant's fault.
    pub fn success(&self, variant: &str) {
        let mut variants = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(health) = variants.get_mut(variant)
            && !self.still_ejected(variant, health)
        {
            health.consecutive = 0;
            health.ejections = 0;
        }
    }

    /// A failure of `variant`; ejects it when it is the policy's count in a row.
    pub fn failure(&self, variant: &str) {
        if self.policy.consecutive_failures == 0 {
            return;
        }
        let mut variants = self.variants.lock().unwrap_or_else(|e| e.into_inner());
        let health = variants.entry(variant.to_owned()).or_default();
        if self.still_ejected(variant, health) {
            // Pinned requests to an ejected variant do not extend its ejection.
            return;
        }
        health.consecutive += 1;
        if health.consecutive < self.policy.consecutive_failures {
            return;
        }
        let period = self.policy.ejection(health.ejections);
        health.until = Some(Instant::now() + period);
        health.ejections = health.ejections.saturating_add(1);
        self.metrics.ejections.with_label_values(&[variant]).inc();
        self.metrics.ejected.with_label_values(&[variant]).set(1);
        tracing::warn!(
            variant,
            failures = health.consecutive,
            seconds = period.as_secs_f64(),
            "variant ejected: its share goes to the others until then"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outliers(base: Duration) -> Outliers {
        let policy = OutlierPolicy {
            consecutive_failures: 2,
            base_ejection: base,
            max_ejection: base * 3,
        };
        Outliers::new(policy, RouterMetrics::new().expect("metrics"))
    }

    fn ejected_gauge(o: &Outliers, variant: &str) -> i64 {
        o.metrics.ejected.with_label_values(&[variant]).get()
    }

    #[test]
    fn failures_in_a_row_eject_and_a_success_between_them_does_not() {
        let o = outliers(Duration::from_secs(60));
        o.failure("a");
        o.success("a");
        o.failure("a");
        assert!(!o.is_ejected("a"), "a success resets the count");
        o.failure("a");
        assert!(o.is_ejected("a"));
        assert!(!o.is_ejected("b"));
        assert_eq!(ejected_gauge(&o, "a"), 1);
        assert_eq!(o.metrics.ejections.with_label_values(&["a"]).get(), 1);
        o.success("a");
        assert!(
            o.is_ejected("a"),
            "a pinned success does not end the ejection"
        );
    }

    #[test]
    fn a_repeat_ejection_lasts_twice_as_long_up_to_the_cap() {
        let policy = OutlierPolicy::default();
        let seconds: Vec<u64> = (0..6).map(|n| policy.ejection(n).as_secs()).collect();
        assert_eq!(seconds, [30, 60, 120, 240, 300, 300]);
        assert_eq!(policy.ejection(40).as_secs(), 300, "no overflow");
    }

    #[test]
    fn an_ejection_ends_and_a_success_after_it_resets_the_back_off() {
        let o = outliers(Duration::from_millis(5));
        let earlier = |o: &Outliers| o.variants.lock().expect("lock")["a"].ejections;
        for round in 1..=2 {
            o.failure("a");
            o.failure("a");
            assert!(o.is_ejected("a"));
            assert_eq!(earlier(&o), round);
            // Longer than any ejection of this policy (15 ms): over by then, whatever the load.
            std::thread::sleep(Duration::from_millis(20));
            assert!(!o.is_ejected("a"), "back after round {round}");
            assert_eq!(ejected_gauge(&o, "a"), 0);
        }
        o.success("a");
        assert_eq!(
            earlier(&o),
            0,
            "a success after the return resets the back-off"
        );
    }

    #[test]
    fn a_variant_reached_only_by_pinned_requests_returns_too() {
        // No unpinned request looks at it (weight 0): its failures end the ejection.
        let o = outliers(Duration::from_millis(5));
        o.failure("pinned");
        o.failure("pinned");
        std::thread::sleep(Duration::from_millis(20));
        o.failure("pinned");
        assert_eq!(
            ejected_gauge(&o, "pinned"),
            0,
            "returned, one failure counted"
        );
        o.failure("pinned");
        assert!(o.is_ejected("pinned"), "ejected again");
    }
}
