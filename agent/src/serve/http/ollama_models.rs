//! Ollama's model routes: tags, ps, show and version. One pod serves one model and its
//! presets, so these describe that model.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::generate::{self, rfc3339_now};
use super::{ApiError, ApiJson, Flavor};
use crate::serve::engine::ModelInfo;
use crate::serve::state::AppState;
use crate::wire::ollama_request::ShowRequest;

const FLAVOR: Flavor = Flavor::Ollama;

fn details(state: &AppState) -> Value {
    let snap = state.snapshot();
    let g = &snap.gguf;
    let params = g["parameters"].as_u64().unwrap_or(0);
    json!({
        "format": "gguf",
        "family": g["architecture"],
        "families": [g["architecture"]],
        "parameter_size": format!("{:.0}M", params as f64 / 1e6),
        "quantization_level": g["quantization"],
    })
}

fn entries(state: &AppState, running: bool) -> Vec<Value> {
    let snap = state.snapshot();
    let size = snap.gguf["fileSize"].as_u64().unwrap_or(0);
    let names = std::iter::once(state.options.model_name.clone())
        .chain(state.presets.iter().map(|p| p.name.clone()));
    names
        .map(|name| {
            let mut v = json!({"name": name, "model": name, "size": size,
                "digest": snap.sha256, "details": details(state)});
            if running {
                v["expires_at"] = json!("9999-12-31T23:59:59Z");
                v["size_vram"] = json!(state.engine.get().map_or(0, |e| size_vram(e.info(), size)));
            } else {
                v["modified_at"] = json!(rfc3339_now());
            }
            v
        })
        .collect()
}

/// What the engine took on its GPUs (0 on the CPU), as Ollama reports it. On a GPU that does
/// not report its memory use, the offloaded blocks' share of the model's `size`: `ollama ps`
/// shows the GPU share as `size_vram / size`.
fn size_vram(info: &ModelInfo, size: u64) -> u64 {
    info.gpu_memory_bytes.unwrap_or_else(|| {
        let share = u128::from(size) * u128::from(info.layers_offloaded)
            / u128::from(info.layers_total.max(1));
        u64::try_from(share).unwrap_or(u64::MAX)
    })
}

/// `GET /api/tags`.
#[utoipa::path(
    get,
    path = "/api/tags",
    tag = "ollama",
    responses(
        (status = 200, description = "The model and its presets"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn tags(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"models": entries(&state, false)}))
}

/// `GET /api/ps`: the model is resident while the server is ready.
#[utoipa::path(
    get,
    path = "/api/ps",
    tag = "ollama",
    responses(
        (status = 200, description = "Loaded models"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn ps(State(state): State<AppState>) -> Json<Value> {
    let models = if state.ready_engine().is_some() {
        entries(&state, true)
    } else {
        vec![]
    };
    Json(json!({"models": models}))
}

/// Model details, including which chat template is used.
#[utoipa::path(
    post,
    path = "/api/show",
    tag = "ollama",
    request_body = ShowRequest,
    responses(
        (status = 200, description = "Model details"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ShowRequest>,
) -> Result<Json<Value>, ApiError> {
    let name = req.model.or(req.name);
    let preset = generate::resolve(&state, FLAVOR, name.as_deref())?;
    let info = state.engine.get().map(|e| e.info().clone());
    let parameters = preset
        .map(|p| format!("{:?}", p.parameters))
        .unwrap_or_default();
    Ok(Json(json!({
        "modelfile": "",
        "parameters": parameters,
        "system": preset.and_then(|p| p.system.clone()),
        "template": info.as_ref().map(|i| i.chat_template.clone()),
        "details": details(&state),
        "model_info": state.snapshot().gguf,
        "capabilities": ["completion", "embedding"],
    })))
}

/// `GET /api/version`.
#[utoipa::path(
    get,
    path = "/api/version",
    tag = "ollama",
    responses(
        (status = 200, description = "Server version"),
        generate::GenerationErrors,
    )
)]
pub(crate) async fn version() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION")}))
}
