//! `app(state)`: the whole HTTP surface (OpenAI, Ollama, ops) with its middleware.

mod anthropic;
mod anthropic_answer;
mod embeddings;
mod error;
mod generate;
mod log;
mod logprobs;
mod manage;
mod ollama;
mod ollama_models;
mod openai;
mod openai_answer;
mod openai_models;
mod openai_stream;
mod openapi;
mod ops;
mod responses;
mod responses_answer;
mod sampler_fields;
mod structured;
mod tokens;
mod tool_wire;

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Router, body::Bytes};
use llamafleet_crds::routing::{LOAD_HEADER, ReplicaLoad};
use serde::de::DeserializeOwned;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use error::{ApiError, ErrorKind, Flavor};
pub use log::RequestLog;

use super::state::AppState;
use crate::wire::request_fields::{StrictError, read_strict};

/// Builds the router: client APIs behind auth, ops routes open.
pub fn app(state: AppState) -> Router {
    let client_api = Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai_models::models))
        .route("/v1/models/{*id}", get(openai_models::model))
        .route("/v1/embeddings", post(embeddings::openai))
        .route("/v1/responses", post(responses::responses))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/api/generate", post(ollama::generate))
        .route("/api/chat", post(ollama::chat))
        .route("/api/tags", get(ollama_models::tags))
        .route("/api/show", post(ollama_models::show))
        .route("/api/ps", get(ollama_models::ps))
        .route("/api/embed", post(embeddings::ollama_embed))
        .route("/api/embeddings", post(embeddings::ollama_embeddings))
        .route("/tokenize", post(tokens::tokenize))
        .route("/detokenize", post(tokens::detokenize))
        .route("/api/pull", post(manage::managed_by_llm_model))
        .route("/api/push", post(manage::managed_by_llm_model))
        .route("/api/create", post(manage::managed_by_llm_model))
        .route("/api/copy", post(manage::managed_by_llm_model))
        .route("/api/delete", delete(manage::managed_by_llm_model))
        .route(
            "/api/blobs/{digest}",
            post(manage::managed_by_llm_model).head(manage::managed_by_llm_model),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .route_layer(middleware::from_fn_with_state(state.clone(), report_load));
    let mut router = Router::new()
        .merge(client_api)
        .route("/api/version", get(ollama_models::version))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/status", get(ops::status))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .merge(crate::console::chat_pages())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), log::track));
    if let Some(cors) = cors(&state.options.cors_origins) {
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// Request headers a browser may send cross-origin (`serve` and `route`): the key in either
/// form, JSON, and the headers Anthropic's browser client adds.
pub const CORS_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
    HeaderName::from_static("anthropic-dangerous-direct-browser-access"),
];

fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers(CORS_HEADERS),
    )
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(Flavor::for_path(request.uri().path()))
}

/// Accepts `Authorization: Bearer KEY` (OpenAI clients) or `x-api-key: KEY`.
async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.requires_key() {
        let headers = request.headers();
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        if !presented.is_some_and(|k| state.key_matches(k.trim())) {
            return ApiError::unauthorized(Flavor::for_path(request.uri().path())).into_response();
        }
    }
    next.run(request).await
}

/// Adds the engine's load to every client API answer (`x-llamafleet-load`), so that a router
/// in front of several replicas learns their load from the answers it passes on, at no cost.
async fn report_load(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let engine = &state.metrics.engine;
    let figure = |gauge: &prometheus::IntGauge| u32::try_from(gauge.get()).unwrap_or(0);
    let load = ReplicaLoad {
        busy: figure(&engine.busy_slots),
        slots: figure(&engine.slots),
        queued: figure(&engine.queue_depth),
    };
    if let Ok(value) = HeaderValue::from_str(&load.header()) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(LOAD_HEADER), value);
    }
    response
}

/// A JSON body that fails in the route's own error format: 413 over the size limit, 400 for
/// anything malformed or any field the route does not implement (named in the message). No
/// content type is required (several Ollama clients send none).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let flavor = Flavor::for_path(request.uri().path());
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(flavor, limit)
            } else {
                ApiError::bad_request(flavor, "could not read the request body")
            }
        })?;
        let invalid = |e: serde_json::Error| {
            let message = e.to_string();
            if message.starts_with("unsupported field") {
                // A field `Rest` refused: its name matters, serde's position does not.
                let name = message.split(" at line ").next().unwrap_or_default();
                ApiError::bad_request(flavor, name)
            } else {
                ApiError::bad_request(flavor, format!("invalid JSON body: {message}"))
            }
        };
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        let body = read_strict(&mut json).map_err(|e| match e {
            StrictError::Invalid(e) => invalid(e),
            StrictError::Unsupported(message) => ApiError::bad_request(flavor, message),
        })?;
        json.end().map_err(invalid)?;
        Ok(ApiJson(body))
    }
}

/// The body limit, put in request extensions so errors can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);
