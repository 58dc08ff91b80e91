//! The prompts file: plain text (one prompt per line) or JSONL (one object per line).
//!
//! The format is chosen by the first non-blank line: when it starts with `{`, the whole file is
//! JSONL and every non-blank line must be `{"prompt": "..."}` or `{"messages": [...]}` (OpenAI
//! chat messages, read as the agent reads them: a message key it does not implement is refused
//! here, by name, rather than by every request; other keys of the line are ignored, so lines
//! may carry an id). Otherwise every non-blank line is one user prompt. Blank lines are
//! skipped in both.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::wire::openai_request::{Content, Message};
use crate::wire::request_fields::read_strict;

/// One prompt, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// What the report shows: the prompt text, or the last user message's text.
    pub label: String,
    /// The chat messages sent.
    pub messages: Vec<Message>,
}

/// Why the prompts file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PromptsError {
    /// The file cannot be read (or is not UTF-8).
    #[error("reading the prompts file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Only blank lines.
    #[error("the prompts file {} has no prompts (blank lines are skipped)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A JSONL line that is not a JSON object.
    #[error("{}:{line}: not a JSON object: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A JSON object without a usable prompt.
    #[error("{}:{line}: {reason}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A message the agent would refuse.
    #[error("{}:{line}: messages[{index}]: {reason}", path.display())]
    Message {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 0-based position in `messages`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct JsonLine {
    prompt: Option<String>,
    messages: Option<Vec<Value>>,
}

/// Reads and checks the prompts file.
pub fn load(path: &Path) -> Result<Vec<Prompt>, PromptsError> {
    let text = std::fs::read_to_string(path).map_err(|source| PromptsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses prompts file contents; `path` only names the file in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Prompt>, PromptsError> {
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let jsonl = lines
        .clone()
        .next()
        .is_some_and(|(_, l)| l.starts_with('{'));
    let prompts = lines
        .map(|(line, l)| {
            if jsonl {
                json_prompt(path, line, l)
            } else {
                Ok(text_prompt(l))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if prompts.is_empty() {
        return Err(PromptsError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(prompts)
}

fn text_prompt(text: &str) -> Prompt {
    Prompt {
        label: text.to_owned(),
        messages: vec![Message {
            role: "user".to_owned(),
            content: Some(Content::Text(text.to_owned())),
            tool_calls: None,
            tool_call_id: None,
        }],
    }
}

fn json_prompt(path: &Path, line: usize, text: &str) -> Result<Prompt, PromptsError> {
    let shape = |reason| PromptsError::Shape {
        path: path.to_owned(),
        line,
        reason,
    };
    let parsed: JsonLine = serde_json::from_str(text).map_err(|source| PromptsError::Json {
        path: path.to_owned(),
        line,
        source,
    })?;
    match (parsed.prompt, parsed.messages) {
        (Some(_), Some(_)) => Err(shape("give \"prompt\" or \"messages\", not both")),
        (None, None) => Err(shape(
            "expected {\"prompt\": \"...\"} or {\"messages\": [...]}",
        )),
        (Some(p), None) if p.trim().is_empty() => Err(shape("\"prompt\" is empty")),
        (Some(p), None) => Ok(text_prompt(&p)),
        (None, Some(messages)) => {
            if messages.is_empty() {
                return Err(shape("\"messages\" is empty"));
            }
            if !messages.iter().all(|m| m["role"].is_string()) {
                return Err(shape("every message needs a \"role\" string"));
            }
            let label = label_of(&messages);
            let messages = messages
                .into_iter()
                .enumerate()
                .map(|(index, m)| {
                    typed_message(m).map_err(|reason| PromptsError::Message {
                        path: path.to_owned(),
                        line,
                        index,
                        reason,
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(Prompt { label, messages })
        }
    }
}

/// A message as the agent reads it; a key it does not implement is an error that names it.
fn typed_message(message: Value) -> Result<Message, String> {
    read_strict(message).map_err(|e| e.to_string())
}

/// The last user message's text, else the messages as compact JSON.
fn label_of(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .map_or_else(|| Value::from(messages.to_vec()).to_string(), str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<Prompt>, PromptsError> {
        parse(Path::new("p.txt"), text)
    }

    #[test]
    fn plain_text_is_one_prompt_per_line() {
        let p = parse_str("Say hi.\n\n  Count to three.  \n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].label, "Count to three.");
        assert_eq!(
            serde_json::to_value(&p[1].messages).unwrap(),
            serde_json::json!([{"role": "user", "content": "Count to three."}])
        );
    }

    #[test]
    fn jsonl_takes_prompt_or_messages() {
        let text = concat!(
            "{\"prompt\": \"Say hi.\", \"id\": 7}\n",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},",
            " {\"role\": \"user\", \"content\": \"Name a colour.\"}]}\n"
        );
        let p = parse_str(text).unwrap();
        assert_eq!(p[0].label, "Say hi.");
        assert_eq!(p[1].label, "Name a colour.");
        assert_eq!(p[1].messages.len(), 2);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse_str("\n{\"prompt\": \"ok\"}\n{\"prompt\": oops}\n").unwrap_err();
        assert!(matches!(err, PromptsError::Json { line: 3, .. }), "{err}");
        assert!(
            err.to_string().starts_with("p.txt:3: not a JSON object"),
            "{err}"
        );
        let err = parse_str("{\"prompt\": \"ok\"}\n{\"text\": \"x\"}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.txt:2: expected {\"prompt\": \"...\"} or {\"messages\": [...]}"
        );
        let err = parse_str("{\"messages\": [{\"content\": \"x\"}]}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.txt:1: every message needs a \"role\" string"
        );
        let err = parse_str("{\"messages\": [{\"role\": \"user\", \"name\": \"x\"}]}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "p.txt:1: messages[0]: unsupported field \"name\": this server does not implement it"
        );
        let err = parse_str(" \n\n").unwrap_err();
        assert!(matches!(err, PromptsError::Empty { .. }), "{err}");
    }
}
