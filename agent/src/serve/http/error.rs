//! The one error type of the HTTP surface: OpenAI's error object on `/v1`, Anthropic's on
//! `/v1/messages`, Ollama's `{"error": ...}` elsewhere; also usable as an in-stream error
//! frame.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::serve::engine::EngineError;
use crate::wire::openai as wire;
use crate::wire::{anthropic, ollama};

/// Which API's error format a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `/v1/...`
    OpenAi,
    /// `/api/...` and everything else.
    Ollama,
    /// `/v1/messages...`
    Anthropic,
}

impl Flavor {
    /// The flavor of a request path.
    pub fn for_path(path: &str) -> Flavor {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            Flavor::Anthropic
        } else if path.starts_with("/v1/") || path == "/v1" {
            Flavor::OpenAi
        } else {
            Flavor::Ollama
        }
    }
}

/// An error answer. Internal details are logged, never sent.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Response format.
    pub flavor: Flavor,
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-readable kind (OpenAI `type`/`code`; also the log category).
    pub kind: &'static str,
    /// Client-facing message.
    pub message: String,
    /// Seconds for `Retry-After` (503s).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(flavor: Flavor, status: StatusCode, kind: &'static str, message: String) -> Self {
        ApiError {
            flavor,
            status,
            kind,
            message,
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(flavor: Flavor, message: impl Into<String>) -> Self {
        Self::new(
            flavor,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            message.into(),
        )
    }

    /// 404 for an unknown model name.
    pub fn unknown_model(flavor: Flavor, name: &str) -> Self {
        Self::new(
            flavor,
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("model {name:?} not found"),
        )
    }

    /// 401.
    pub fn unauthorized(flavor: Flavor) -> Self {
        Self::new(
            flavor,
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "missing or invalid API key".into(),
        )
    }

    /// 413.
    pub fn too_large(flavor: Flavor, limit: usize) -> Self {
        Self::new(
            flavor,
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }

    /// 503 with Retry-After: every slot and queue place is taken.
    pub fn busy(flavor: Flavor) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                flavor,
                StatusCode::SERVICE_UNAVAILABLE,
                "server_busy",
                "all slots and queue places are busy; retry later".into(),
            )
        }
    }

    /// 503 with Retry-After: still starting (or shutting down).
    pub fn not_ready(flavor: Flavor, phase: &str) -> Self {
        ApiError {
            retry_after: Some(5),
            ..Self::new(
                flavor,
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                format!("the model is not ready ({phase})"),
            )
        }
    }

    /// 503 with Retry-After: the server stopped (its shutdown's grace period ended) before
    /// the answer was complete; another replica can answer it again.
    pub fn shut_down(flavor: Flavor) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                flavor,
                StatusCode::SERVICE_UNAVAILABLE,
                "shut_down",
                "the server shut down before the answer was complete (its grace period \
                 ended); retry"
                    .into(),
            )
        }
    }

    /// 408: the request ran past the configured timeout.
    pub fn timeout(flavor: Flavor) -> Self {
        Self::new(
            flavor,
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "request timed out".into(),
        )
    }

    /// 429 with Retry-After: a rate-limit budget is spent (`route`).
    pub fn rate_limited(flavor: Flavor, what: &str, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                flavor,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!(
                    "rate limit reached for {what}; retry in {} s",
                    retry_after.max(1)
                ),
            )
        }
    }

    /// 502: the upstream variant could not be reached or failed before answering (`route`).
    pub fn bad_gateway(flavor: Flavor, variant: &str) -> Self {
        Self::new(
            flavor,
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            format!("variant {variant:?} is unavailable"),
        )
    }

    /// 404 for unknown routes.
    pub fn not_found(flavor: Flavor) -> Self {
        Self::new(
            flavor,
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route".into(),
        )
    }

    /// 501 for a route this server answers only to say why it does not implement it.
    pub fn not_implemented(flavor: Flavor, message: impl Into<String>) -> Self {
        Self::new(
            flavor,
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            message.into(),
        )
    }

    /// 500 with a generic message; the detail goes to the log only.
    pub fn internal(flavor: Flavor, detail: &str) -> Self {
        tracing::error!(error = detail, "internal error");
        Self::new(
            flavor,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error".into(),
        )
    }

    /// Maps an engine failure: client errors are 400s with the engine's message.
    pub fn engine(flavor: Flavor, e: EngineError) -> Self {
        match &e {
            EngineError::ContextOverflow { .. } => Self::new(
                flavor,
                StatusCode::BAD_REQUEST,
                "context_length_exceeded",
                e.to_string(),
            ),
            _ if e.is_client_error() => Self::bad_request(flavor, e.to_string()),
            _ => Self::internal(flavor, &e.to_string()),
        }
    }

    /// The JSON body (also sent as a stream's last frame when a stream fails midway).
    pub fn body(&self) -> Value {
        match self.flavor {
            Flavor::OpenAi => json!(wire::ErrorBody {
                error: wire::ErrorDetail {
                    message: self.message.clone(),
                    kind: self.kind.to_owned(),
                    param: None,
                    code: Some(json!(self.kind)),
                },
            }),
            Flavor::Ollama => json!(ollama::ErrorBody {
                error: self.message.clone(),
            }),
            Flavor::Anthropic => json!(anthropic::ErrorBody {
                kind: "error".into(),
                error: anthropic::ErrorDetail {
                    kind: self.anthropic_type().into(),
                    message: self.message.clone(),
                },
            }),
        }
    }

    /// Anthropic's error types go by status.
    fn anthropic_type(&self) -> &'static str {
        match self.status.as_u16() {
            400 | 422 => "invalid_request_error",
            408 => "timeout_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            _ => "api_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorKind(self.kind));
        response
    }
}

/// Carried on error responses so the request log can name the category.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);
