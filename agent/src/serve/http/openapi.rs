//! `GET /openapi.json`: the client APIs and ops routes, generated from the handlers' request
//! types and the answers' wire types (`crate::wire`, utoipa), so the document cannot drift from
//! what the handlers accept and write.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    anthropic, embeddings, ollama, ollama_models, openai, openai_models, ops, responses, tokens,
};

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llamafleet agent",
        description = "OpenAI-, Anthropic- and Ollama-compatible inference over llama.cpp. When \
            the server has an API key, /v1 and /api routes need `Authorization: Bearer KEY` \
            (or `x-api-key: KEY`)."
    ),
    paths(
        openai::chat,
        openai::completions,
        openai_models::models,
        openai_models::model,
        embeddings::openai,
        responses::responses,
        anthropic::messages,
        anthropic::count_tokens,
        ollama::generate,
        ollama::chat,
        ollama_models::tags,
        ollama_models::show,
        ollama_models::ps,
        ollama_models::version,
        embeddings::ollama_embed,
        embeddings::ollama_embeddings,
        tokens::tokenize,
        tokens::detokenize,
        ops::healthz,
        ops::readyz,
        ops::status,
        ops::metrics,
    ),
    modifiers(&BearerKey)
)]
struct ApiDoc;

/// The OpenAPI 3.1 document.
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
