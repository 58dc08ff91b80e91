//! `app(state)`: the client API (the same routes as `serve`, all proxied) and the router's own
//! ops routes.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use llamafleet_crds::routing::STATS_PATH;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::proxy::proxy;
use super::state::RouterState;
use crate::serve::http::{ApiError, Flavor};

const GET_ROUTES: [&str; 5] = [
    "/v1/models",
    "/v1/models/{*id}",
    "/api/tags",
    "/api/ps",
    "/api/version",
];
/// Every client route of `serve`; the generation routes among them are also read for the
/// router's figures (tokens, TTFT), token budgets and shadow traffic
/// (`answer::Api::of_path`).
const POST_ROUTES: [&str; 13] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/tokenize",
    "/detokenize",
    "/api/generate",
    "/api/chat",
    "/api/show",
    "/api/embed",
    "/api/embeddings",
];

/// Builds the router's HTTP surface.
pub fn app(state: RouterState) -> Router {
    let mut router = Router::new();
    for path in GET_ROUTES {
        router = router.route(path, get(proxy));
    }
    for path in POST_ROUTES {
        router = router.route(path, post(proxy));
    }
    let cors_state = state.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            allowed_origin(&cors_state, origin)
        }))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(crate::serve::http::CORS_HEADERS);
    router
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(STATS_PATH, get(stats))
        .merge(super::console::routes())
        .merge(crate::console::all_pages())
        .fallback(not_found)
        .layer(cors)
        .with_state(state)
}

/// CORS origins come from the live table, so they reload with it.
fn allowed_origin(state: &RouterState, origin: &HeaderValue) -> bool {
    state.live().is_some_and(|live| {
        live.table
            .cors_origins
            .iter()
            .any(|o| o == "*" || origin.as_bytes() == o.as_bytes())
    })
}

async fn readyz(State(state): State<RouterState>) -> Response {
    match state.live() {
        Some(live) => (StatusCode::OK, live.stats.revision().to_owned()).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no routing table loaded").into_response(),
    }
}

async fn metrics(State(state): State<RouterState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => ApiError::internal(Flavor::Ollama, &e.to_string()).into_response(),
    }
}

async fn stats(State(state): State<RouterState>) -> Response {
    match state.live() {
        Some(live) => {
            let mut stats = live.stats.snapshot();
            // Only variants this replica can wake: the operator lets a variant sleep only
            // when every router replica reports it (one still on an older table would
            // answer its requests with a 502).
            let wakes = live.table.wake.is_some();
            let names = live
                .table
                .variants
                .iter()
                .filter(|v| wakes && v.deployment.is_some())
                .map(|v| v.name.as_str());
            stats.idle_seconds = state.activity.idle_seconds(names);
            axum::Json(stats).into_response()
        }
        None => ApiError::not_ready(Flavor::Ollama, "no routing table loaded").into_response(),
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(Flavor::for_path(request.uri().path()))
}
