//! The client API handler: authenticate, rate-limit, choose a variant, forward the request and
//! pass the answer back as it streams, counting what happened once it ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llamafleet_crds::routing::{LOAD_HEADER, PIN_HEADER, RoutedVariant, RoutedWake};

use super::answer::{Answer, Api, Framing};
use super::body::{End, Watched};
use super::limits::{Admission, LimitHeaders};
use super::replicas::{InFlight, ReplicaChoice};
use super::state::{Live, RouterState};
use super::stats::Outcome;
use super::wake::Refusal;
use super::{choose, keys, prefix, shadow};
use crate::serve::http::{ApiError, Flavor};

/// Routes open without a key (as in `serve`).
const OPEN_PATHS: [&str; 1] = ["/api/version"];
/// Request headers not passed upstream: hop-by-hop ones, credentials meant for the router,
/// and encodings the router would have to undo to read the answer.
const DROPPED_REQUEST_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "host",
    "content-length",
    "accept-encoding",
    "connection",
    PIN_HEADER,
];
/// Response headers not passed back: hop-by-hop ones, the length, so that the body is sent
/// chunked and the server polls it to its end (the answer is accounted for before the client
/// sees the last chunk), and the replica's load report (meant for the router).
const DROPPED_RESPONSE_HEADERS: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "trailer",
    "content-length",
    LOAD_HEADER,
];

/// Forwards one client request to a variant.
pub async fn proxy(State(state): State<RouterState>, request: Request) -> Response {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let flavor = Flavor::for_path(path);
    let Some(live) = state.live() else {
        return ApiError::not_ready(flavor, "no routing table loaded").into_response();
    };
    let (admission, sticky) = match admit(&state, &live, &parts.headers, path, flavor) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let variants = &live.table.variants;
    let pinned = parts
        .headers
        .get(PIN_HEADER)
        .map(|v| v.to_str().unwrap_or(""));
    let key = sticky.unwrap_or_else(choose::random_key);
    let healthy = |v: &RoutedVariant| !state.outliers.is_ejected(&v.name);
    let index = match pinned {
        Some(name) => choose::by_name(variants, name),
        None => choose::pick(variants, &key, healthy),
    };
    let Some((mut index, first)) = index.and_then(|i| Some((i, variants.get(i)?))) else {
        let name = pinned.unwrap_or_default();
        return ApiError::bad_request(flavor, format!("unknown variant {name:?}")).into_response();
    };
    let body = match axum::body::to_bytes(body, live.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::too_large(flavor, live.max_body_bytes).into_response(),
    };
    let path_and_query = parts.uri.path_and_query().map_or(path, |p| p.as_str());
    // Routes whose answers carry generated text: read for tokens, TTFT and shadow comparison.
    let api = Api::of_path(path);
    let generation = api.is_some();
    let upstream_headers = forwarded(&parts.headers);
    let mut mirror = generation
        .then(|| shadow::decide(&live, &first.name, path_and_query))
        .flatten()
        .and_then(|mirror| {
            let (method, headers) = (parts.method.clone(), upstream_headers.clone());
            shadow::spawn(
                &state,
                live.stats.clone(),
                mirror,
                api?,
                method,
                headers,
                body.clone(),
            )
        });
    let mut variant = first;
    // The router's own time is observed once, up to the first attempt's send.
    let mut observed = false;
    let mut retried = false;
    // The prompt's blocks, read from the body once a variant with known replicas needs them.
    let mut blocks: Option<Vec<u64>> = None;
    // The replica that just failed the request, not to be tried again for it.
    let mut avoid: Option<Arc<str>> = None;
    let (upstream, mut finish) = loop {
        state.activity.touch(&variant.name);
        let replica = state.replicas.known(&variant.name).and_then(|replicas| {
            let blocks = blocks.get_or_insert_with(|| {
                // With one replica there is nothing to choose: the prompt is not read.
                let by_prefix = generation
                    && state.replicas.choice == ReplicaChoice::Prefix
                    && replicas.len() > 1;
                if by_prefix {
                    prefix::blocks(&body)
                } else {
                    Vec::new()
                }
            });
            replicas.choose(state.replicas.choice, blocks, avoid.as_deref())
        });
        let choice = replica.as_ref().map_or("service", |(_, c)| c.label());
        state
            .metrics
            .replica_choices
            .with_label_values(&[&variant.name, choice])
            .inc();
        let in_flight = replica.map(|(r, _)| r.start());
        let base = in_flight
            .as_ref()
            .map_or(variant.url.as_str(), |f| &f.replica().url)
            .to_string();
        let mut finish = Finish {
            state: state.clone(),
            live: live.clone(),
            variant: variant.name.clone(),
            arrived,
            admission: admission.clone(),
            mirror: None,
            busy: false,
            in_flight,
        };
        // A variant that may sleep and refuses the connection is asleep: hold the request
        // while it wakes, then send it again.
        let wake = live
            .table
            .wake
            .as_ref()
            .filter(|_| variant.deployment.is_some());
        let client = if wake.is_some() {
            &state.sleepy_client
        } else {
            &state.client
        };
        let url = format!("{}{path_and_query}", base.trim_end_matches('/'));
        if !observed {
            observed = true;
            state
                .metrics
                .overhead
                .observe(arrived.elapsed().as_secs_f64());
        }
        let sent = client
            .request(parts.method.clone(), &url)
            .headers(upstream_headers.clone())
            .body(body.clone())
            .send()
            .await;
        if let (Ok(upstream), Some(f)) = (&sent, &finish.in_flight) {
            f.replica().observe(upstream.headers());
        }
        avoid = finish.in_flight.as_ref().map(|f| f.replica().url.clone());
        // Nothing of the answer has reached the client yet: a request that failed here is
        // sent once more (to another variant unless pinned), every attempt counted.
        let reason = match sent {
            Ok(upstream) if !retried && busy(&upstream) => {
                finish.busy = true;
                finish.done(upstream.status(), None, End::Finished);
                "busy"
            }
            Ok(upstream) => break (upstream, finish),
            Err(error) => {
                // A replica that failed is set aside; only the Service refusing means asleep.
                if let Some(f) = &finish.in_flight {
                    f.replica().set_aside(state.outliers.policy().base_ejection);
                    state
                        .metrics
                        .replica_ejections
                        .with_label_values(&[&variant.name])
                        .inc();
                    tracing::warn!(variant = %variant.name, replica = %f.replica().url, %error, "replica set aside");
                }
                // A variant that may sleep whose known replicas all failed (a list gone stale
                // while it went to sleep): its Service decides, and wakes it if it must.
                let stale = wake.is_some()
                    && error.is_connect()
                    && finish.in_flight.is_some()
                    && !state
                        .replicas
                        .known(&variant.name)
                        .is_some_and(|r| r.has_usable(None));
                if stale {
                    finish.done(StatusCode::BAD_GATEWAY, None, End::Cut);
                    continue;
                }
                let asleep = finish.in_flight.is_none() && error.is_connect();
                if let Some(wake) = wake.filter(|_| asleep) {
                    let deadline = arrived + Duration::from_secs(wake.timeout_seconds);
                    if let Err(refusal) = state.wakers.hold(wake, variant, deadline).await {
                        // Counted as an error, not as a fault: asleep is not broken.
                        finish.busy = true;
                        finish.done(StatusCode::SERVICE_UNAVAILABLE, None, End::Finished);
                        return waking_refused(flavor, &variant.name, refusal, wake)
                            .into_response();
                    }
                    continue;
                }
                tracing::warn!(variant = %variant.name, %error, retried, "upstream unreachable");
                finish.done(StatusCode::BAD_GATEWAY, None, End::Cut);
                if retried {
                    return ApiError::bad_gateway(flavor, &variant.name).into_response();
                }
                "connect"
            }
        };
        state
            .metrics
            .retries
            .with_label_values(&[&variant.name, reason])
            .inc();
        retried = true;
        // Another replica of the same variant comes first, so the client's variant stays:
        // after a failure any usable one, after a busy answer one with a free slot.
        let other_replica = avoid.as_ref().is_some_and(|failed| {
            state.replicas.known(&variant.name).is_some_and(|r| {
                if reason == "busy" {
                    r.has_free(Some(failed))
                } else {
                    r.has_usable(Some(failed))
                }
            })
        });
        if pinned.is_none()
            && !other_replica
            && let Some(next) = choose::pick_other(variants, &key, index, healthy)
        {
            index = next;
            variant = &variants[next];
        }
    };
    // Shadow answers are compared with the variant they shadow, not a stand-in.
    if variant.name == first.name {
        finish.mirror = mirror.take();
    }
    finish.busy = busy(&upstream);
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    for name in DROPPED_RESPONSE_HEADERS {
        headers.remove(name);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let answer = api
        .filter(|_| status.is_success())
        .map(|api| Answer::new(api, Framing::of(content_type), finish.mirror.is_some()));
    let stream = Watched::new(upstream.bytes_stream(), answer, move |answer, end| {
        finish.done(status, answer, end);
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    stamp(
        response.headers_mut(),
        &variant.name,
        admission.as_ref().map(|a| &a.headers),
    );
    response
}

/// A 503 with `Retry-After`: the variant is full or starting, and says when to come back.
fn busy(upstream: &reqwest::Response) -> bool {
    upstream.status() == StatusCode::SERVICE_UNAVAILABLE
        && upstream.headers().contains_key(header::RETRY_AFTER)
}

/// The 503 (with `Retry-After`) for a request its sleeping variant could not take in time.
fn waking_refused(flavor: Flavor, variant: &str, refusal: Refusal, wake: &RoutedWake) -> ApiError {
    let why = match refusal {
        Refusal::Full => format!(
            "variant {variant} is waking up and already holds {} requests",
            wake.max_held
        ),
        Refusal::TimedOut => format!(
            "variant {variant} did not wake within {} s",
            wake.timeout_seconds
        ),
    };
    ApiError::not_ready(flavor, &why)
}

type Admitted = (Option<Admission>, Option<Vec<u8>>);

/// Checks the key and the client's budgets; yields the admission and the sticky key.
fn admit(
    state: &RouterState,
    live: &Live,
    headers: &HeaderMap,
    path: &str,
    flavor: Flavor,
) -> Result<Admitted, Box<Response>> {
    let presented = keys::presented(headers);
    if live.table.api_keys_dir.is_none() || OPEN_PATHS.contains(&path) {
        let by_header = live
            .table
            .sticky_header
            .as_deref()
            .and_then(|h| headers.get(h));
        let sticky = presented
            .map(|k| k.as_bytes().to_vec())
            .or_else(|| by_header.map(|v| v.as_bytes().to_vec()));
        return Ok((None, sticky));
    }
    let keys = state.keys();
    let Some(client) = presented.and_then(|k| keys.client(k)) else {
        state.metrics.unauthorized.inc();
        return Err(Box::new(ApiError::unauthorized(flavor).into_response()));
    };
    match live.limits.admit(client) {
        Ok(admission) => Ok((Some(admission), Some(client.name.as_bytes().to_vec()))),
        Err(refusal) => {
            state
                .metrics
                .rate_limited
                .with_label_values(&[&refusal.tier, refusal.budget])
                .inc();
            let what = format!("{} per hour (tier {})", refusal.budget, refusal.tier);
            let mut response =
                ApiError::rate_limited(flavor, &what, refusal.retry_after).into_response();
            add_limit_headers(response.headers_mut(), &refusal.headers);
            Err(Box::new(response))
        }
    }
}

/// Request headers for the upstream.
fn forwarded(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = incoming.clone();
    for name in DROPPED_REQUEST_HEADERS {
        headers.remove(name);
    }
    headers
}

fn stamp(headers: &mut HeaderMap, variant: &str, limits: Option<&LimitHeaders>) {
    if let Ok(value) = HeaderValue::from_str(variant) {
        headers.insert(PIN_HEADER, value);
    }
    if let Some(limits) = limits {
        add_limit_headers(headers, limits);
    }
}

fn add_limit_headers(headers: &mut HeaderMap, limits: &LimitHeaders) {
    for (name, value) in limits {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// Everything needed to account for a request once its answer has ended.
struct Finish {
    state: RouterState,
    live: Arc<Live>,
    variant: String,
    arrived: Instant,
    admission: Option<Admission>,
    mirror: Option<tokio::sync::oneshot::Sender<String>>,
    /// A 503 that says when to come back (busy, starting, waking): not the variant's fault.
    busy: bool,
    /// The replica it went to, counted until the answer ends.
    in_flight: Option<InFlight>,
}

impl Finish {
    fn done(self, status: StatusCode, answer: Option<Answer>, end: End) {
        let now = Instant::now();
        let streamed = answer
            .as_ref()
            .is_some_and(|a| a.framing() != Framing::Document);
        let broken = answer
            .as_ref()
            .is_some_and(|a| a.error || (end == End::Finished && streamed && !a.complete));
        let error = status.is_server_error() || end == End::Cut || broken;
        let fault = (status.is_server_error() && !self.busy) || end == End::Cut || broken;
        if fault {
            self.state.outliers.failure(&self.variant);
        } else if end == End::Finished && !status.is_server_error() {
            self.state.outliers.success(&self.variant);
        }
        let mut outcome = Outcome {
            error,
            duration: now - self.arrived,
            ..Outcome::default()
        };
        if let Some(a) = &answer {
            outcome.ttft = a.first_token.map(|t| t - self.arrived);
            outcome.tokens = a.generated_tokens();
            outcome.generation = match (streamed, a.first_token, a.last_token) {
                (true, Some(first), Some(last)) => last - first,
                _ => outcome.duration,
            };
            if let Some(admission) = &self.admission {
                admission.debit_tokens(a.billed_tokens());
            }
        }
        self.live.stats.record(&self.variant, &outcome);
        self.state.metrics.record(&self.variant, &outcome);
        if let (Some(mirror), Some(a)) = (self.mirror, answer)
            && !error
            && end == End::Finished
        {
            let _ = mirror.send(a.text);
        }
    }
}
