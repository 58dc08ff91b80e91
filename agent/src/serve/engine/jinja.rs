//! Chat templates llama.cpp's built-in formats do not cover, rendered as Jinja the way
//! Hugging Face `transformers` does (`apply_chat_template`): `messages`,
//! `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception`, `strftime_now`,
//! blocks trimmed, and Python string methods (`.strip()`, `.startswith()`, ...).

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, Value, context};

use super::{ChatMessage, Tool};

const NAME: &str = "chat";

/// A compiled Jinja chat template with the model's special-token texts.
#[derive(Debug)]
pub struct JinjaTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Whether a template text is Jinja (rather than a llama.cpp template name).
pub fn looks_like_jinja(text: &str) -> bool {
    text.contains("{%") || text.contains("{{")
}

fn raise_exception(message: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// Templates that print today's date (Llama 3.1+ system prompts) call this.
fn strftime_now(format: String) -> String {
    chrono::Local::now().format(&format).to_string()
}

impl JinjaTemplate {
    /// Compiles `source`; a syntax error is reported now, not on the first request.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, Error> {
        let mut env = Environment::new();
        // transformers compiles with trim_blocks and lstrip_blocks; templates rely on it.
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.to_owned())?;
        Ok(JinjaTemplate {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// The prompt for `messages` (and `tools`, when any), ending with the assistant's opening
    /// when `add_generation_prompt` is set. Tool calls and tools take the shapes
    /// `transformers` passes: `{type: function, function: {name, arguments}}` with the
    /// arguments as an object, and tool messages with `tool_call_id` and `name`.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: &[Tool],
        add_generation_prompt: bool,
    ) -> Result<String, Error> {
        let messages: Vec<Value> = messages.iter().map(message_value).collect();
        // `none` rather than an empty list: templates test `tools is not none`.
        let tools: Option<Vec<Value>> = (!tools.is_empty()).then(|| {
            tools
                .iter()
                .map(|t| Value::from(Serde(t.as_json())))
                .collect()
        });
        self.env.get_template(NAME)?.render(context! {
            messages,
            tools,
            add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        })
    }
}

fn message_value(m: &ChatMessage) -> Value {
    let mut v = serde_json::json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        let calls: Vec<serde_json::Value> = m
            .tool_calls
            .iter()
            .map(|c| {
                serde_json::json!({"id": c.id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json()}})
            })
            .collect();
        v["tool_calls"] = calls.into();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = id.as_str().into();
    }
    if let Some(name) = &m.tool_name {
        v["name"] = name.as_str().into();
    }
    Value::from(Serde(v))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    /// The chat template of HuggingFaceTB/SmolLM2-135M-Instruct's tokenizer_config.json, as
    /// published (ChatML with a default system prompt).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_a_published_hugging_face_template() {
        let t = JinjaTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        let out = t.render(&[msg("user", "Hi")], &[], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(&[msg("system", "Be brief."), msg("user", "Hi")], &[], false)
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
    }

    #[test]
    fn python_methods_tokens_blocks_and_raise_exception_behave_like_transformers() {
        let source = "{{ bos_token }}{% for m in messages %}\n  {% if m.role not in ['user', 'assistant'] %}{{ raise_exception('Only user and assistant roles are supported') }}{% endif %}\n  {{ m.role.upper() }}: {{ m.content.strip() }}{{ eos_token }}\n{% endfor %}\n{% if add_generation_prompt %}ASSISTANT:{% endif %}";
        let t = JinjaTemplate::new(source, "<s>", "</s>").unwrap();
        let out = t
            .render(
                &[msg("user", "  Hi there \n"), msg("assistant", "Hello")],
                &[],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<s>  USER: Hi there</s>\n  ASSISTANT: Hello</s>\nASSISTANT:"
        );
        let err = t.render(&[msg("system", "x")], &[], true).unwrap_err();
        assert!(
            err.to_string()
                .contains("Only user and assistant roles are supported"),
            "{err}"
        );
    }

    #[test]
    fn tools_calls_and_results_take_the_shapes_transformers_passes() {
        let source = "{% if tools %}{% for t in tools %}[{{ t.function.name }}:{{ t.function.parameters | tojson }}]{% endfor %}{% endif %}{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}<{{ c.id }} {{ c.type }} {{ c.function.name }} {{ c.function.arguments.city }}>{% endfor %}{% elif m.role == 'tool' %}({{ m.name }}/{{ m.tool_call_id }}: {{ m.content }}){% else %}{{ m.content }}{% endif %}{% endfor %}{{ tools is none }}";
        let t = JinjaTemplate::new(source, "", "").unwrap();
        let tool = Tool {
            name: "weather".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
        };
        let call = ChatMessage {
            role: "assistant".into(),
            tool_calls: vec![super::super::ToolCall {
                id: "c1".into(),
                name: "weather".into(),
                arguments: r#"{"city": "Oslo"}"#.into(),
            }],
            ..ChatMessage::default()
        };
        let result = ChatMessage {
            role: "tool".into(),
            content: "3 C".into(),
            tool_call_id: Some("c1".into()),
            tool_name: Some("weather".into()),
            ..ChatMessage::default()
        };
        let messages = [msg("user", "Hi"), call, result];
        assert_eq!(
            t.render(&messages, std::slice::from_ref(&tool), false)
                .unwrap(),
            r#"[weather:{"type": "object"}]Hi<c1 function weather Oslo>(weather/c1: 3 C)False"#
        );
        // No tools: `none`, as transformers passes it (printed the Python way by pycompat).
        assert!(
            t.render(&messages[..1], &[], false)
                .unwrap()
                .ends_with("HiTrue")
        );
    }

    #[test]
    fn a_syntax_error_is_reported_when_compiling() {
        let err = JinjaTemplate::new("{% for m in messages %}", "", "").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SyntaxError);
    }
}
