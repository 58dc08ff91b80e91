//! Which chat template a model's chat requests use, and rendering messages with it.
//!
//! llama.cpp's `llama_chat_apply_template` recognises the common formats by name or by
//! markers in the template text. A GGUF whose Jinja template it does not recognise is
//! rendered with minijinja instead ([`super::jinja`]), as `transformers` would. A template
//! that renders `tools` in a syntax this server parses ([`native_tool_syntax`]) is also kept
//! as Jinja for conversations with tools, even when llama.cpp renders its plain chats.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use super::jinja::{JinjaTemplate, looks_like_jinja};
use super::{Chat, EngineError, Prompt, ToolSyntax, native_tool_syntax};

/// How chat messages become a prompt: the plain format, and the template for conversations
/// with tools when the model's template has a native tool syntax.
#[derive(Debug)]
pub(crate) struct ChatFormat {
    plain: PlainFormat,
    tools: Option<NativeTools>,
}

#[derive(Debug)]
struct NativeTools {
    template: Box<JinjaTemplate>,
    syntax: ToolSyntax,
}

impl ChatFormat {
    /// How the model writes tool calls: its template's syntax, else the generic JSON form.
    pub(crate) fn tool_syntax(&self) -> ToolSyntax {
        self.tools
            .as_ref()
            .map_or(ToolSyntax::Generic, |t| t.syntax)
    }
}

/// How a chat without tools becomes a prompt.
#[derive(Debug)]
enum PlainFormat {
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

fn compile(model: &LlamaModel, text: &str) -> Result<Box<JinjaTemplate>, EngineError> {
    let vocab = model.vocab();
    JinjaTemplate::new(
        text,
        &token_text(model, vocab.bos()),
        &token_text(model, vocab.eos()),
    )
    .map(Box::new)
    .map_err(|e| EngineError::Template(format!("compiling the Jinja chat template: {e:#}")))
}

/// llama.cpp's own format when it recognises `text`, else `text` as Jinja; `None` when it is
/// neither (an unknown template name). Either way with the native tool template when `text`
/// has one.
fn from_text(model: &LlamaModel, text: &str) -> Result<Option<ChatFormat>, EngineError> {
    let llama = LlamaChatTemplate::new(text).map_err(nul_error)?;
    let plain = if llama_recognises(model, &llama) {
        PlainFormat::Llama(llama)
    } else if looks_like_jinja(text) {
        PlainFormat::Jinja(compile(model, text)?)
    } else {
        return Ok(None);
    };
    let tools = match native_tool_syntax(text) {
        Some(syntax) if looks_like_jinja(text) => match compile(model, text) {
            Ok(template) => Some(NativeTools { template, syntax }),
            // llama.cpp still renders plain chats; tools then take the generic form.
            Err(e) => {
                tracing::warn!(error = %e, "the chat template's tool part is not usable; tools use the generic form");
                None
            }
        },
        _ => None,
    };
    Ok(Some(ChatFormat { plain, tools }))
}

fn named(format: ChatFormat, source: &str) -> (ChatFormat, String) {
    let name = match format.plain {
        PlainFormat::Llama(_) => source.to_owned(),
        PlainFormat::Jinja(_) => format!("{source}:jinja"),
    };
    (format, name)
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
            Some(f) => Ok(named(f, "override")),
            None => Err(EngineError::Template(format!(
                "unknown chat template {text:?}: neither a llama.cpp template name nor Jinja"
            ))),
        };
    }
    if let Ok(gguf) = model.chat_template(None)
        && let Ok(text) = gguf.to_str()
    {
        match from_text(model, text) {
            Ok(Some(f)) => return Ok(named(f, "gguf")),
            Ok(None) => {
                tracing::warn!("the GGUF's chat template is not usable; using a built-in one")
            }
            Err(e) => {
                tracing::warn!(error = %e, "the GGUF's chat template is not usable; using a built-in one")
            }
        }
    }
    let name = builtin_template(architecture);
    let plain = PlainFormat::Llama(LlamaChatTemplate::new(name).map_err(nul_error)?);
    Ok((ChatFormat { plain, tools: None }, format!("builtin:{name}")))
}

/// The prompt text: raw text as is, chat messages through the chat format.
pub(crate) fn render(
    model: &LlamaModel,
    format: &ChatFormat,
    prompt: Prompt,
) -> Result<String, EngineError> {
    let chat = match prompt {
        Prompt::Text(text) => return Ok(text),
        Prompt::Chat(chat) => chat,
    };
    let with_tools = !chat.tools.is_empty() || chat.messages.iter().any(|m| m.is_tool_related());
    if with_tools {
        // The API layer rewrites tool conversations into plain messages for models without a
        // native syntax, so only those reach here.
        let Some(native) = &format.tools else {
            return Err(EngineError::Template(
                "this model's chat template does not render tools".into(),
            ));
        };
        return render_jinja(&native.template, &chat);
    }
    match &format.plain {
        PlainFormat::Llama(template) => {
            let messages = chat
                .messages
                .into_iter()
                .map(|m| LlamaChatMessage::new(m.role, m.content))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| EngineError::Template(e.to_string()))?;
            model
                .apply_chat_template(template, &messages, true)
                .map_err(|e| EngineError::Template(e.to_string()))
        }
        PlainFormat::Jinja(template) => render_jinja(template, &chat),
    }
}

fn render_jinja(template: &JinjaTemplate, chat: &Chat) -> Result<String, EngineError> {
    template
        .render(&chat.messages, &chat.tools, true)
        .map_err(|e| EngineError::Template(format!("{e:#}")))
}
