//! `POST /tokenize` and `POST /detokenize` in llama-server's shape: what a prompt costs, and
//! what token ids (from a log or `logit_bias`) say.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiJson, Flavor, generate};
use crate::serve::state::AppState;
use crate::wire::openai_request::{DetokenizeRequest, TokenizeRequest};

const FLAVOR: Flavor = Flavor::Ollama;

/// Token ids of a text, or `{id, piece}` pairs with `with_pieces`.
#[utoipa::path(
    post,
    path = "/tokenize",
    tag = "tokens",
    request_body = TokenizeRequest,
    responses(
        (status = 200, description = "{\"tokens\": [ids]} or {\"tokens\": [{\"id\", \"piece\"}]}"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let engine = generate::engine(&state, FLAVOR)?;
    let pieces = engine
        .tokenize(req.content, req.add_special)
        .await
        .map_err(|e| ApiError::engine(FLAVOR, e))?;
    let tokens: Vec<Value> = if req.with_pieces {
        pieces
            .into_iter()
            .map(|p| json!({"id": p.id, "piece": p.piece}))
            .collect()
    } else {
        pieces.into_iter().map(|p| json!(p.id)).collect()
    };
    Ok(Json(json!({"tokens": tokens})))
}

/// The text of token ids; an id outside the vocabulary is a 400.
#[utoipa::path(
    post,
    path = "/detokenize",
    tag = "tokens",
    request_body = DetokenizeRequest,
    responses(
        (status = 200, description = "{\"content\": text}"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn detokenize(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<DetokenizeRequest>,
) -> Result<Json<Value>, ApiError> {
    let engine = generate::engine(&state, FLAVOR)?;
    let content = engine
        .detokenize(req.tokens)
        .await
        .map_err(|e| ApiError::engine(FLAVOR, e))?;
    Ok(Json(json!({"content": content})))
}
