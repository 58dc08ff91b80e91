//! The seam between the HTTP layer and an engine (as TGI's `Backend`): what the handlers ask of
//! one. The llama.cpp engine ([`super::llama`]) serves; the scripted one ([`super::scripted`])
//! lets the HTTP layer's cases (stream framing, several choices, failures midway) be tested
//! without a model, while the real model still proves each feature end to end.

use futures_util::future::BoxFuture;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Embeddings, EngineError, Event, Prompt, SamplingParams, TokenPiece};

/// What an engine does for the handlers (see [`super::Engine`]'s methods of the same names).
pub(crate) trait Backend: Send + Sync + 'static {
    /// Queues copies of one prompt, one per entry of `params`, with a receiver of each one's
    /// events: `Accepted`, `Logprob`/`Token`*, `Done` (or `Error` at any point).
    fn generate_copies(
        &self,
        prompt: Prompt,
        params: Vec<SamplingParams>,
    ) -> Result<Vec<UnboundedReceiver<Event>>, EngineError>;

    /// Pooled embeddings of each input.
    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'static, Result<Embeddings, EngineError>>;

    /// The tokens of `text` with their pieces.
    fn tokenize(
        &self,
        text: String,
        add_special: bool,
    ) -> BoxFuture<'static, Result<Vec<TokenPiece>, EngineError>>;

    /// The tokens `prompt` takes once templated.
    fn count_tokens(&self, prompt: Prompt) -> BoxFuture<'static, Result<u32, EngineError>>;

    /// The text of token ids.
    fn detokenize(&self, ids: Vec<i32>) -> BoxFuture<'static, Result<String, EngineError>>;

    /// Tests of the llama.cpp engine only: see [`super::Command::Desync`].
    #[cfg(test)]
    fn desync(&self, _job: u64) {}
}
