//! Pinned prefixes: the presets' system prompts, templated and decoded at startup into
//! sequences of their own that no request evicts, so the first request of a preset, and every
//! one after, copies its system prompt instead of prefilling it.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::job::prompt_tokens;
use super::template::ChatFormat;
use super::{Chat, ChatMessage, Prompt};

/// The tokens every conversation that starts with `system` begins with, as the model's
/// template writes them: what two renderings with different user messages share. `None` when
/// the template cannot render a system message or the prefix is too short to be worth a
/// sequence (`min`) or too long for a slot (`max`).
pub(super) fn prefix(
    model: &LlamaModel,
    template: &ChatFormat,
    system: &str,
    min: usize,
    max: usize,
) -> Option<Vec<LlamaToken>> {
    let render = |user: &str| {
        let chat = Chat {
            messages: vec![
                ChatMessage::new("system", system),
                ChatMessage::new("user", user),
            ],
            tools: Vec::new(),
        };
        prompt_tokens(model, template, Prompt::Chat(chat))
    };
    let (one, other) = match (render("a"), render("b")) {
        (Ok(one), Ok(other)) => (one, other),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "a preset's system prompt cannot be rendered: not pinned");
            return None;
        }
    };
    let shared = one.iter().zip(&other).take_while(|(a, b)| a == b).count();
    let mut tokens = one;
    tokens.truncate(shared);
    (min..=max).contains(&tokens.len()).then_some(tokens)
}
