//! OpenAI's model routes: the model and its presets, listed or by name.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::generate;
use super::{ApiError, Flavor};
use crate::serve::state::AppState;

const FLAVOR: Flavor = Flavor::OpenAi;

/// `GET /v1/models`: the model and its presets.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    responses(
        (status = 200, description = "The model and its presets"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = generate::unix_now();
    let names = std::iter::once(state.options.model_name.clone())
        .chain(state.presets.iter().map(|p| p.name.clone()));
    let data: Vec<Value> = names
        .map(
            |id| json!({"id": id, "object": "model", "created": created, "owned_by": "llamafleet"}),
        )
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`: the model or a preset by name; 404 for any other name.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "openai",
    params(("id" = String, Path, description = "The model's or a preset's name")),
    responses(
        (status = 200, description = "The model"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    generate::resolve(&state, FLAVOR, Some(&id))?;
    Ok(Json(
        json!({"id": id, "object": "model", "created": generate::unix_now(),
        "owned_by": "llamafleet"}),
    ))
}
