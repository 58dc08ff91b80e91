//! Which chat template a model's chat requests use, and rendering messages with it.
//!
//! llama.cpp's `llama_chat_apply_template` recognises the common formats by name or by
//! markers in the template text. A GGUF whose Jinja template it does not recognise is
//! rendered with minijinja instead ([`super::jinja`]), as `transformers` would.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::jinja::{JinjaTemplate, looks_like_jinja};
use super::{ChatMessage, EngineError, Prompt};

/// How chat messages become a prompt.
#[derive(Debug)]
pub(crate) enum ChatFormat {
    /// A format llama.cpp implements natively.
    Llama(LlamaChatTemplate),
    /// A Jinja template llama.cpp does not recognise.
    Jinja(Box<JinjaTemplate>),
}

/// The fallback when the GGUF has no template: Gemma's turn markers for Gemma models (what
/// they were trained on), ChatML otherwise (the most common convention).
fn builtin_template(architecture: &str) -> &'static str {
    if architecture.starts_with("gemma") {
        "gemma"
    } else {
        "chatml"
    }
}

fn nul_error(e: std::ffi::NulError) -> EngineError {
    EngineError::Internal(format!("chat template: {e}"))
}

/// Whether llama.cpp can render with `template` (a known name or recognised markers).
fn llama_recognises(model: &LlamaModel, template: &LlamaChatTemplate) -> bool {
    LlamaChatMessage::new("user".into(), "hi".into())
        .is_ok_and(|probe| model.apply_chat_template(template, &[probe], true).is_ok())
}

/// The text of a special token, or "" when the vocabulary has none (id -1).
fn token_text(model: &LlamaModel, token: LlamaToken) -> String {
    if token.0 < 0 || token.0 >= model.n_vocab() {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}

/// llama.cpp's own format when it recognises `text`, else `text` as Jinja; `None` when it is
/// neither (an unknown template name).
fn from_text(model: &LlamaModel, text: &str) -> Result<Option<ChatFormat>, EngineError> {
    let llama = LlamaChatTemplate::new(text).map_err(nul_error)?;
    if llama_recognises(model, &llama) {
        return Ok(Some(ChatFormat::Llama(llama)));
    }
    if !looks_like_jinja(text) {
        return Ok(None);
    }
    let vocab = model.vocab();
    let jinja = JinjaTemplate::new(
        text,
        &token_text(model, vocab.bos()),
        &token_text(model, vocab.eos()),
    )
    .map_err(|e| EngineError::Template(format!("compiling the Jinja chat template: {e:#}")))?;
    Ok(Some(ChatFormat::Jinja(Box::new(jinja))))
}

/// The override, else the GGUF's template, else a built-in one; with its name for
/// `/status` (`override`, `gguf`, `gguf:jinja`, `builtin:gemma`, ...). A bad override is an
/// error (the operator asked for it); a GGUF template that cannot be used is logged and
/// replaced by the built-in one (the model still serves).
pub(crate) fn choose_template(
    model: &LlamaModel,
    architecture: &str,
    override_template: Option<&str>,
) -> Result<(ChatFormat, String), EngineError> {
    if let Some(text) = override_template {
        return match from_text(model, text)? {
            Some(f @ ChatFormat::Llama(_)) => Ok((f, "override".into())),
            Some(f @ ChatFormat::Jinja(_)) => Ok((f, "override:jinja".into())),
            None => Err(EngineError::Template(format!(
                "unknown chat template {text:?}: neither a llama.cpp template name nor Jinja"
            ))),
        };
    }
    if let Ok(gguf) = model.chat_template(None)
        && let Ok(text) = gguf.to_str()
    {
        match from_text(model, text) {
            Ok(Some(f @ ChatFormat::Llama(_))) => return Ok((f, "gguf".into())),
            Ok(Some(f @ ChatFormat::Jinja(_))) => return Ok((f, "gguf:jinja".into())),
            Ok(None) => {
                tracing::warn!("the GGUF's chat template is not usable; using a built-in one")
            }
            Err(e) => {
                tracing::warn!(error = %e, "the GGUF's chat template is not usable; using a built-in one")
            }
        }
    }
    let name = builtin_template(architecture);
    Ok((
        ChatFormat::Llama(LlamaChatTemplate::new(name).map_err(nul_error)?),
        format!("builtin:{name}"),
    ))
}

/// The prompt text: raw text as is, chat messages through the chat format.
pub(crate) fn render(
    model: &LlamaModel,
    format: &ChatFormat,
    prompt: Prompt,
) -> Result<String, EngineError> {
    let messages = match prompt {
        Prompt::Text(text) => return Ok(text),
        Prompt::Chat(messages) => messages,
    };
    match format {
        ChatFormat::Llama(template) => {
            let messages = messages
                .into_iter()
                .map(|m| LlamaChatMessage::new(m.role, m.content))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EngineError::Template(e.to_string()))?;
            model
                .apply_chat_template(template, &messages, true)
                .map_err(|e| EngineError::Template(e.to_string()))
        }
        ChatFormat::Jinja(template) => render_jinja(template, &messages),
    }
}

fn render_jinja(template: &JinjaTemplate, messages: &[ChatMessage]) -> Result<String, EngineError> {
    template
        .render(messages, true)
        .map_err(|e| EngineError::Template(format!("{e:#}")))
}
