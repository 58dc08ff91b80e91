//! Per-client rate limits of each tier, with `governor`'s GCRA buckets.
//!
//! A tier's hourly budgets are per deployment; every router replica enforces
//! `ceil(budget / router_replicas)` of them on its own (the Service spreads a client's requests
//! over the replicas). A bucket holds the replica's whole hourly budget and refills evenly over
//! the hour. Token budgets can only be debited once the answer is known: admission takes one
//! token (so a spent budget refuses new requests) and the answer's remaining tokens are taken
//! afterwards, as many as the bucket still holds (an answer larger than what is left empties it).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use llamafleet_crds::routing::{RoutedTier, RoutingTable};

use super::keys::Client;

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One hourly budget of one tier, kept per client.
#[derive(Debug)]
struct Budget {
    per_replica: NonZeroU32,
    limiter: Limiter,
}

impl Budget {
    fn new(per_deployment: i64, replicas: i32) -> Budget {
        let replicas = i64::from(replicas.max(1));
        let share = (per_deployment.max(1) + replicas - 1) / replicas;
        let per_replica = NonZeroU32::new(u32::try_from(share).unwrap_or(u32::MAX).max(1))
            .unwrap_or(NonZeroU32::MIN);
        Budget {
            per_replica,
            limiter: RateLimiter::keyed(Quota::per_hour(per_replica))
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    /// Takes one cell: the cells left, or the whole seconds until one is back.
    fn take(&self, client: &String) -> Result<u32, u64> {
        match self.limiter.check_key(client) {
            Ok(snapshot) => Ok(snapshot.remaining_burst_capacity()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            }
        }
    }

    /// Takes up to `n` cells, as many as the bucket holds.
    fn drain(&self, client: &String, n: u64) {
        let n = u32::try_from(n)
            .unwrap_or(u32::MAX)
            .min(self.per_replica.get());
        let Some(cells) = NonZeroU32::new(n) else {
            return;
        };
        if matches!(self.limiter.check_key_n(client, cells), Ok(Ok(_))) {
            return;
        }
        // Fewer cells are left than the answer used: take what remains, one by one (at most
        // `n` cheap steps, off the request path).
        for _ in 0..n {
            if self.limiter.check_key(client).is_err() {
                break;
            }
        }
    }
}

/// A tier's budgets on this replica.
#[derive(Debug)]
struct TierLimits {
    spec: (RoutedTier, i32),
    requests: Budget,
    tokens: Option<Budget>,
}

/// The rate limits of every tier.
#[derive(Debug, Default)]
pub struct Limits {
    tiers: HashMap<String, Arc<TierLimits>>,
}

/// Headers stating a client's limits (as OpenAI sends them).
pub type LimitHeaders = Vec<(&'static str, String)>;

/// A refused request: which budget, when to retry, and the limit headers.
#[derive(Debug)]
pub struct Refusal {
    /// `requests` or `tokens`.
    pub budget: &'static str,
    /// Tier name.
    pub tier: String,
    /// Seconds until the budget allows one more.
    pub retry_after: u64,
    /// Limit headers for the 429.
    pub headers: LimitHeaders,
}

/// An admitted request, to debit its tokens from once answered.
#[derive(Debug, Clone)]
pub struct Admission {
    tier: Arc<TierLimits>,
    client: String,
    /// Limit headers for the answer.
    pub headers: LimitHeaders,
}

impl Admission {
    /// Debits an answer's tokens (one was taken at admission).
    pub fn debit_tokens(&self, tokens: u64) {
        if let Some(budget) = &self.tier.tokens {
            budget.drain(&self.client, tokens.saturating_sub(1));
        }
    }
}

impl Limits {
    /// The limits for `table`, keeping the buckets (and what clients have spent) of every tier
    /// whose budgets did not change since `previous`.
    pub fn build(table: &RoutingTable, previous: &Limits) -> Limits {
        let replicas = table.router_replicas;
        let tiers = table
            .tiers
            .iter()
            .map(|tier| {
                let spec = (tier.clone(), replicas);
                let limits = match previous.tiers.get(&tier.name) {
                    Some(kept) if kept.spec == spec => kept.clone(),
                    _ => Arc::new(TierLimits {
                        requests: Budget::new(i64::from(tier.requests_per_hour), replicas),
                        tokens: tier.tokens_per_hour.map(|t| Budget::new(t, replicas)),
                        spec,
                    }),
                };
                (tier.name.clone(), limits)
            })
            .collect();
        Limits { tiers }
    }

    /// Admits one request of `client`, or says why not. A client whose tier is not in the
    /// table is refused (the keys loader rejects such entries, so this is a race with a reload).
    pub fn admit(&self, client: &Client) -> Result<Admission, Refusal> {
        let refuse = |budget, retry_after, headers| Refusal {
            budget,
            tier: client.tier.clone(),
            retry_after,
            headers,
        };
        let Some(tier) = self.tiers.get(&client.tier) else {
            return Err(refuse("requests", 3600, Vec::new()));
        };
        let mut headers = Vec::new();
        if let Some(tokens) = &tier.tokens {
            let limit = tokens.per_replica.to_string();
            headers.push(("x-ratelimit-limit-tokens", limit));
            match tokens.take(&client.name) {
                Ok(left) => headers.push(("x-ratelimit-remaining-tokens", left.to_string())),
                Err(wait) => {
                    headers.push(("x-ratelimit-remaining-tokens", "0".into()));
                    return Err(refuse("tokens", wait, headers));
                }
            }
        }
        let limit = tier.requests.per_replica.to_string();
        headers.push(("x-ratelimit-limit-requests", limit));
        match tier.requests.take(&client.name) {
            Ok(left) => headers.push(("x-ratelimit-remaining-requests", left.to_string())),
            Err(wait) => {
                headers.push(("x-ratelimit-remaining-requests", "0".into()));
                return Err(refuse("requests", wait, headers));
            }
        }
        Ok(Admission {
            tier: tier.clone(),
            client: client.name.clone(),
            headers,
        })
    }
}
