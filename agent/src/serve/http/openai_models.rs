//! OpenAI's model routes: the model and its presets, listed or by name.

use axum::Json;
use axum::extract::{Path, State};

use super::generate;
use super::{ApiError, Flavor};
use crate::serve::state::AppState;
use crate::wire::openai::{Model, ModelList};

const FLAVOR: Flavor = Flavor::OpenAi;

/// `GET /v1/models`: the model and its presets.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "openai",
    responses(
        (status = 200, description = "The model and its presets", body = ModelList),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn models(State(state): State<AppState>) -> Json<ModelList> {
    let created = generate::unix_now();
    let names = std::iter::once(state.options.model_name.clone())
        .chain(state.presets.iter().map(|p| p.name.clone()));
    Json(ModelList {
        object: "list".to_owned(),
        data: names.map(|id| entry(id, created)).collect(),
    })
}

/// A model or preset as listed.
fn entry(id: String, created: u64) -> Model {
    Model {
        id,
        object: "model".to_owned(),
        created,
        owned_by: "llamafleet".to_owned(),
    }
}

/// `GET /v1/models/{id}`: the model or a preset by name; 404 for any other name.
#[utoipa::path(
    get,
    path = "/v1/models/{id}",
    tag = "openai",
    params(("id" = String, Path, description = "The model's or a preset's name")),
    responses(
        (status = 200, description = "The model", body = Model),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    generate::resolve(&state, FLAVOR, Some(&id))?;
    Ok(Json(entry(id, generate::unix_now())))
}
