//! The data routes of the A/B page (the pages themselves are [`crate::console`]):
//! `GET /console/variants`, `POST /console/votes`, `GET /console/votes` (counts) and
//! `GET /console/votes.jsonl` (the kept votes). With API keys configured they need a known key,
//! like the client API, but spend no tier budget.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use super::keys;
use super::state::{Live, RouterState};
use super::votes::VoteRequest;
use crate::serve::http::{ApiError, ApiJson, Flavor};

const FLAVOR: Flavor = Flavor::OpenAi;

/// The routes, on the router's state.
pub fn routes() -> Router<RouterState> {
    Router::new()
        .route("/console/variants", get(variants))
        .route("/console/votes", get(summary).post(vote))
        .route("/console/votes.jsonl", get(download))
}

/// The live table when the caller may see it.
fn admitted(state: &RouterState, headers: &HeaderMap) -> Result<std::sync::Arc<Live>, ApiError> {
    let live = state
        .live()
        .ok_or_else(|| ApiError::not_ready(FLAVOR, "no routing table loaded"))?;
    if live.table.api_keys_dir.is_some() {
        let keys = state.keys();
        if keys::presented(headers)
            .and_then(|k| keys.client(k))
            .is_none()
        {
            state.metrics.unauthorized.inc();
            return Err(ApiError::unauthorized(FLAVOR));
        }
    }
    Ok(live)
}

#[derive(Serialize)]
struct Variant<'a> {
    name: &'a str,
    model: &'a str,
    weight: i32,
}

async fn variants(State(state): State<RouterState>, headers: HeaderMap) -> Response {
    match admitted(&state, &headers) {
        Ok(live) => {
            let variants: Vec<Variant<'_>> = live
                .table
                .variants
                .iter()
                .map(|v| Variant {
                    name: &v.name,
                    model: &v.model,
                    weight: v.weight,
                })
                .collect();
            axum::Json(serde_json::json!({ "variants": variants })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn vote(
    State(state): State<RouterState>,
    headers: HeaderMap,
    ApiJson(vote): ApiJson<VoteRequest>,
) -> Response {
    let live = match admitted(&state, &headers) {
        Ok(live) => live,
        Err(e) => return e.into_response(),
    };
    let known: Vec<&str> = live
        .table
        .variants
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    match state.votes.take(vote, &known, &state.metrics) {
        Ok(record) => (StatusCode::CREATED, axum::Json(record)).into_response(),
        Err(e) => ApiError::bad_request(FLAVOR, e.0).into_response(),
    }
}

async fn summary(State(state): State<RouterState>, headers: HeaderMap) -> Response {
    match admitted(&state, &headers) {
        Ok(_) => axum::Json(state.votes.summary()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn download(State(state): State<RouterState>, headers: HeaderMap) -> Response {
    match admitted(&state, &headers) {
        Ok(_) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"llamafleet-votes.jsonl\"",
                ),
            ],
            state.votes.json_lines(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
