//! When to look for a new revision: the next tick of `spec.update.schedule` (cron, UTC),
//! computed with `croner`, so the controller requeues exactly then instead of polling.

use std::str::FromStr;
use std::time::Duration;

use croner::Cron;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use llamafleet_crds::{UpdatePolicy, UpdateSpec};

/// A parsed update schedule of a policy that checks (`Notify` or `Rollout`).
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    /// The policy.
    pub policy: UpdatePolicy,
}

impl Schedule {
    /// The schedule of `update`: `Ok(None)` when nothing is checked (no update spec, policy
    /// `Disabled`), `Err` with the parser's message for an expression croner refuses.
    pub fn of(update: Option<&UpdateSpec>) -> Result<Option<Self>, String> {
        let Some(u) = update.filter(|u| u.policy != UpdatePolicy::Disabled) else {
            return Ok(None);
        };
        let Some(text) = u.schedule.as_deref() else {
            return Ok(None);
        };
        let cron = Cron::from_str(text).map_err(|e| format!("schedule {text:?}: {e}"))?;
        Ok(Some(Self {
            cron,
            policy: u.policy,
        }))
    }

    /// The first tick strictly after `after` (UTC).
    pub fn next_after(&self, after: &Time) -> Option<Time> {
        let civil = TimeZone::UTC.to_datetime(after.0);
        let next = self.cron.find_next_occurrence(&civil, false).ok()?;
        TimeZone::UTC.to_timestamp(next).ok().map(Time)
    }

    /// Whether a check is due at `now`, given the last check (`None`: never checked).
    pub fn due(&self, last_check: Option<&Time>, now: &Time) -> bool {
        match last_check {
            None => true,
            Some(last) => self.next_after(last).is_some_and(|next| next.0 <= now.0),
        }
    }

    /// How long from `now` until the tick after `last_check` (at least one second, so a
    /// tick in the past cannot spin the controller).
    pub fn wait(&self, last_check: &Time, now: &Time) -> Option<Duration> {
        let next = self.next_after(last_check)?;
        let secs = next.0.as_second().saturating_sub(now.0.as_second()).max(1);
        Some(Duration::from_secs(u64::try_from(secs).unwrap_or(1)))
    }
}

/// `Time` from RFC 3339 text (tests and fixtures).
pub fn time(text: &str) -> Option<Time> {
    Timestamp::from_str(text).ok().map(Time)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn weekly(policy: UpdatePolicy, schedule: &str) -> Option<Schedule> {
        Schedule::of(Some(&UpdateSpec {
            schedule: Some(schedule.into()),
            policy,
        }))
        .unwrap()
    }

    #[test]
    fn disabled_checks_nothing() {
        assert!(weekly(UpdatePolicy::Disabled, "@weekly").is_none());
        assert!(Schedule::of(None).unwrap().is_none());
    }

    #[test]
    fn next_tick_is_in_utc() {
        let s = weekly(UpdatePolicy::Notify, "30 3 * * MON").unwrap();
        // 2026-01-02 is a Friday.
        let now = time("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(s.next_after(&now), time("2026-01-05T03:30:00Z"));
        assert_eq!(s.wait(&now, &now), Some(Duration::from_secs(260_755)));
        let weekly = weekly(UpdatePolicy::Rollout, "@weekly").unwrap();
        assert_eq!(weekly.next_after(&now), time("2026-01-04T00:00:00Z"));
    }

    #[test]
    fn due_only_once_the_tick_passed() {
        let s = weekly(UpdatePolicy::Notify, "0 * * * *").unwrap();
        let last = time("2026-01-02T03:04:05Z").unwrap();
        assert!(!s.due(Some(&last), &time("2026-01-02T03:59:59Z").unwrap()));
        assert!(s.due(Some(&last), &time("2026-01-02T04:00:00Z").unwrap()));
        assert!(s.due(None, &last));
    }

    #[test]
    fn refused_expressions_are_explained() {
        let err = Schedule::of(Some(&UpdateSpec {
            schedule: Some("61 * * * *".into()),
            policy: UpdatePolicy::Notify,
        }))
        .unwrap_err();
        assert!(err.contains("61 * * * *"), "{err}");
    }
}
