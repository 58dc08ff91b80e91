//! Shadow traffic: a share of live generation requests is copied to the shadow variant in the
//! background. Its whole answer is read and compared with the live one (exact match, and a
//! 0..1 similarity); the client's answer is never delayed or altered.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::oneshot;

use llamafleet_crds::routing::{RoutedVariant, RoutedWake};

use super::answer::{Answer, Api, Framing};
use super::state::{Live, RouterState};
use super::stats::RevisionStats;

/// Texts up to this many characters are compared by edit distance; longer ones by word sets
/// (edit distance is quadratic).
const MAX_EDIT_DISTANCE_CHARS: usize = 4096;

/// A copy to send: where, and what.
pub struct Mirror {
    /// Shadow variant name.
    pub variant: String,
    /// Full upstream URL.
    pub url: String,
    /// How to wake the target when it sleeps (copies are never held: a failed one wakes it
    /// for the next).
    pub wake: Option<(RoutedWake, RoutedVariant)>,
}

/// Whether this request is copied, and where (never to the variant answering it).
pub fn decide(live: &Live, chosen: &str, path_and_query: &str) -> Option<Mirror> {
    let shadow = live.table.shadow.as_ref()?;
    if shadow.variant == chosen || shadow.percent == 0 {
        return None;
    }
    if rand::random_range(0..100u32) >= shadow.percent {
        return None;
    }
    let target = live
        .table
        .variants
        .iter()
        .find(|v| v.name == shadow.variant)?;
    let wake = live
        .table
        .wake
        .clone()
        .filter(|_| target.deployment.is_some());
    Some(Mirror {
        variant: target.name.clone(),
        url: format!("{}{path_and_query}", target.url.trim_end_matches('/')),
        wake: wake.map(|w| (w, target.clone())),
    })
}

/// Sends the copy in the background; the returned sender takes the live answer's text once
/// the client has it (dropping it, for a failed live answer, skips the comparison).
pub fn spawn(
    state: &RouterState,
    stats: Arc<RevisionStats>,
    mirror: Mirror,
    api: Api,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Option<oneshot::Sender<String>> {
    let permit = state.shadows.clone().try_acquire_owned().ok()?;
    let (tx, rx) = oneshot::channel::<String>();
    let client = state.client.clone();
    let metrics = state.metrics.clone();
    let wakers = state.wakers.clone();
    // Copies keep their target awake as answered requests do.
    state.activity.touch(&mirror.variant);
    tokio::spawn(async move {
        let _permit = permit;
        let name = mirror.variant.as_str();
        stats.record_shadow(name, |s| s.requests += 1);
        let answer = fetch(&client, api, method, &mirror.url, headers, body).await;
        let result = if answer.is_some() { "ok" } else { "error" };
        metrics
            .shadow_requests
            .with_label_values(&[name, result])
            .inc();
        let Some(answer) = answer else {
            stats.record_shadow(name, |s| s.errors += 1);
            if let Some((wake, target)) = &mirror.wake {
                wakers.wake(wake, target);
            }
            return;
        };
        let Ok(live_text) = rx.await else { return };
        let exact = answer.text == live_text;
        let score = similarity(&answer.text, &live_text);
        if exact {
            metrics.shadow_exact.with_label_values(&[name]).inc();
        }
        metrics
            .shadow_similarity
            .with_label_values(&[name])
            .observe(score);
        stats.record_shadow(name, |s| {
            s.compared += 1;
            s.exact_matches += u64::from(exact);
            s.similarity_sum += score;
        });
    });
    Some(tx)
}

/// The shadow's whole answer, or `None` if it failed.
async fn fetch(
    client: &reqwest::Client,
    api: Api,
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Option<Answer> {
    let response = client
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let mut answer = Answer::new(api, Framing::of(content_type), true);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        answer.feed(&chunk.ok()?);
    }
    answer.finish();
    (answer.complete && !answer.error).then_some(answer)
}

/// 1 for equal texts, 0 for nothing in common: normalised edit distance for short texts,
/// the Jaccard index of their word sets for long ones.
pub fn similarity(a: &str, b: &str) -> f64 {
    if a.chars().count().max(b.chars().count()) <= MAX_EDIT_DISTANCE_CHARS {
        return strsim::normalized_levenshtein(a, b);
    }
    let (wa, wb): (HashSet<&str>, HashSet<&str>) = (
        a.split_whitespace().collect(),
        b.split_whitespace().collect(),
    );
    let union = wa.union(&wb).count();
    if union == 0 {
        return 1.0;
    }
    wa.intersection(&wb).count() as f64 / union as f64
}
