//! Ollama's model management routes (`pull`, `push`, `create`, `copy`, `delete`, blobs): one
//! pod serves the one model its LlmModel names, so these answer 501 with where models are
//! managed instead of a bare 404 that reads like a broken server.

use super::{ApiError, Flavor};

/// What every management route answers.
pub(crate) async fn managed_by_llm_model() -> ApiError {
    ApiError::not_implemented(
        Flavor::Ollama,
        "models are managed by LlmModel objects in Kubernetes, not through this API: \
         this server serves the one model it was started with (kubectl apply an LlmModel \
         and point an LlmDeployment variant at it)",
    )
}
