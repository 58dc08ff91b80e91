//! Operational routes: liveness, readiness, status for the operator, metrics.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::serve::state::{AppState, Phase};

/// Liveness: fails only when the engine has work and made no progress for `stuck_after`
/// (a wedged llama.cpp call); a slow start or a full queue is not a reason to restart.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive (503 when the engine is stuck)")))]
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let stalled = state.engine.get().and_then(|e| e.stalled_for());
    match stalled {
        Some(d) if d > state.options.stuck_after => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stuck", "seconds_without_progress": d.as_secs()})),
        )
            .into_response(),
        _ => Json(json!({"status": "ok"})).into_response(),
    }
}

/// Readiness: 200 once verified, loaded and warmed; 503 with the phase (and download
/// progress) before that and while draining.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, description = "Ready (503 with the phase before that)")))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let snap = state.snapshot();
    if snap.phase == Phase::Ready && !state.draining() {
        return Json(json!({"status": "ready"})).into_response();
    }
    let mut body = json!({"status": "not ready", "phase": snap.phase});
    if snap.phase == Phase::Downloading && snap.download.total > 0 {
        let percent = snap.download.bytes as f64 * 100.0 / snap.download.total as f64;
        body["download_percent"] = json!((percent * 10.0).round() / 10.0);
    }
    if state.draining() {
        body["status"] = json!("draining");
    }
    if let Some(e) = snap.error {
        body["error"] = json!(e);
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        Json(body),
    )
        .into_response()
}

/// What the operator reads: phase, download, sha256, device, layers, slots, GGUF metadata.
#[utoipa::path(get, path = "/status", tag = "ops", responses((status = 200, description = "Status JSON for the operator")))]
pub(crate) async fn status(State(state): State<AppState>) -> Json<Value> {
    let snap = state.snapshot();
    let engine = state.engine.get();
    let info = engine.map(|e| e.info());
    let layers_total = info
        .map(|i| u64::from(i.layers_total))
        .or_else(|| snap.gguf["layers"].as_u64())
        .unwrap_or(0);
    let slots_busy = engine.map_or(0, |e| e.stats().busy_slots.load(Ordering::Relaxed));
    let queued = engine.map_or(0, |e| e.stats().queued.load(Ordering::Relaxed));
    Json(json!({
        "phase": snap.phase,
        "download": snap.download,
        "sha256": snap.sha256,
        "device": info.map_or("cpu", |i| i.device.as_str()),
        "layers_offloaded": info.map_or(0, |i| i.layers_offloaded),
        "gpus": info.map_or_else(Vec::new, |i| i.gpus.clone()),
        // null: the GPU does not report its memory use.
        "gpu_memory_bytes": info.map_or(Some(0), |i| i.gpu_memory_bytes),
        "layers_total": layers_total,
        "slots_busy": slots_busy,
        "slots_total": info.map_or(0, |i| i.slots),
        "queue_depth": queued,
        "model": state.options.model_name,
        "presets": state.presets.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "pinned_prefix_tokens": info.map_or_else(Vec::new, |i| i.pinned_prefix_tokens.clone()),
        "ctx_per_slot": info.map(|i| i.ctx_per_slot),
        "chat_template": info.map(|i| i.chat_template.clone()),
        "tool_syntax": info.map(|i| i.tool_syntax),
        "load_seconds": info.map(|i| i.load_seconds),
        "phase_seconds": snap.phase_seconds,
        "gguf": snap.gguf,
        "error": snap.error,
    }))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
