//! Embeddings on both APIs: OpenAI `/v1/embeddings`, Ollama `/api/embed` and the older
//! `/api/embeddings`. They share the admission semaphore with generation.

use axum::Json;
use axum::extract::{Extension, State};
use base64::Engine as _;
use serde_json::{Value, json};

use super::generate;
use super::{ApiError, ApiJson, Flavor, RequestLog};
use crate::serve::engine::{Embeddings, Usage};
use crate::serve::state::AppState;
use crate::wire::ollama_request::{EmbedRequest, EmbeddingsRequest};
use crate::wire::openai_request::EmbeddingRequest;

async fn run(
    state: &AppState,
    flavor: Flavor,
    log: &RequestLog,
    model: Option<&str>,
    inputs: Vec<String>,
) -> Result<Embeddings, ApiError> {
    log.model(model.unwrap_or(&state.options.model_name));
    generate::resolve(state, flavor, model)?;
    let engine = generate::engine(state, flavor)?;
    let _permit = state
        .admission
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::busy(flavor))?;
    let out = engine
        .embed(inputs)
        .await
        .map_err(|e| ApiError::engine(flavor, e))?;
    log.finished(Usage {
        prompt_tokens: out.prompt_tokens,
        ..Usage::default()
    });
    Ok(out)
}

/// Pooled embeddings; `encoding_format: base64` (the official client's default) is
/// little-endian f32 bytes.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "Embeddings"),
        super::generate::GenerationErrors,
    )
)]
pub(crate) async fn openai(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<EmbeddingRequest>,
) -> Result<Json<Value>, ApiError> {
    let flavor = Flavor::OpenAi;
    if let Some(user) = &req.user {
        log.user(user);
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                flavor,
                format!("unsupported encoding_format {other:?}"),
            ));
        }
    };
    let out = run(
        &state,
        flavor,
        &log,
        req.model.as_deref(),
        req.input.into_vec(),
    )
    .await?;
    let data: Vec<Value> = out
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let model = req
        .model
        .unwrap_or_else(|| state.options.model_name.clone());
    Ok(Json(json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": out.prompt_tokens, "total_tokens": out.prompt_tokens},
    })))
}

/// Ollama: embeddings of one or more inputs.
#[utoipa::path(
    post,
    path = "/api/embed",
    tag = "ollama",
    request_body = EmbedRequest,
    responses(
        (status = 200, description = "Embeddings"),
        super::generate::GenerationErrors,
    )
)]
pub(crate) async fn ollama_embed(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<Json<Value>, ApiError> {
    let inputs = req.input.into_vec();
    let out = run(&state, Flavor::Ollama, &log, req.model.as_deref(), inputs).await?;
    let model = req
        .model
        .unwrap_or_else(|| state.options.model_name.clone());
    Ok(Json(json!({"model": model, "embeddings": out.vectors,
        "prompt_eval_count": out.prompt_tokens})))
}

/// Ollama: the embedding of one prompt.
#[utoipa::path(
    post,
    path = "/api/embeddings",
    tag = "ollama",
    request_body = EmbeddingsRequest,
    responses(
        (status = 200, description = "Embedding"),
        super::generate::GenerationErrors,
    )
)]
pub(crate) async fn ollama_embeddings(
    State(state): State<AppState>,
    Extension(log): Extension<RequestLog>,
    ApiJson(req): ApiJson<EmbeddingsRequest>,
) -> Result<Json<Value>, ApiError> {
    let inputs = vec![req.prompt];
    let mut out = run(&state, Flavor::Ollama, &log, req.model.as_deref(), inputs).await?;
    Ok(Json(
        json!({"embedding": out.vectors.pop().unwrap_or_default()}),
    ))
}
