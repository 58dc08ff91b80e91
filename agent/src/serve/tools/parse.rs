//! Tool calls out of the model's text, in the syntax its template taught it, whole or as the
//! text streams: text before a call's opening goes to the client at once, the call itself is
//! held until the end and parsed then.

use serde_json::Value;

use super::grammar::marker;
use crate::serve::engine::ToolSyntax;

/// What Llama 3.1 writes before a call of its built-in tools (and sometimes of others).
const PYTHON_TAG: &str = "<|python_tag|>";

/// A call found in the output (the API layer gives it an id).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FoundCall {
    pub name: String,
    /// JSON text of the arguments object.
    pub arguments: String,
}

/// Splits generated text into what the client sees as content now and what may be a call.
/// Cloned fresh for each choice of an answer.
#[derive(Debug, Clone)]
pub(crate) struct ToolStream {
    syntax: ToolSyntax,
    names: Vec<String>,
    held: String,
    /// A call has started: everything from here on is held.
    holding: bool,
    /// Past the point where a call could start (Llama 3 calls only open the answer).
    free: bool,
}

impl ToolStream {
    /// `names`: the tools of the request; a "call" of any other name is content.
    pub(crate) fn new(syntax: ToolSyntax, names: Vec<String>) -> Self {
        ToolStream {
            syntax,
            names,
            held: String::new(),
            holding: syntax == ToolSyntax::Generic,
            free: false,
        }
    }

    /// The content `text` releases (possibly empty while a call may be starting).
    pub(crate) fn push(&mut self, text: &str) -> String {
        if self.free {
            return text.to_owned();
        }
        self.held.push_str(text);
        if self.holding {
            return String::new();
        }
        if self.syntax == ToolSyntax::Llama3 {
            // A call is the whole answer: one that opens with an object is held to the end.
            let start = self.held.trim_start();
            if start.is_empty() || PYTHON_TAG.starts_with(start) {
                return String::new();
            }
            if start.starts_with('{') || start.starts_with(PYTHON_TAG) {
                self.holding = true;
                return String::new();
            }
            self.free = true;
            return std::mem::take(&mut self.held);
        }
        let Some(marker) = marker(self.syntax) else {
            return String::new();
        };
        if let Some(at) = self.held.find(marker) {
            self.holding = true;
            let content = self.held[..at].to_owned();
            self.held.drain(..at);
            return content;
        }
        // Keep back a tail that could be the start of the marker.
        let keep = (1..marker.len().min(self.held.len() + 1))
            .rev()
            .find(|&n| {
                let at = self.held.len() - n;
                self.held.is_char_boundary(at) && marker.starts_with(&self.held[at..])
            })
            .unwrap_or(0);
        let at = self.held.len() - keep;
        let content = self.held[..at].to_owned();
        self.held.drain(..at);
        content
    }

    /// The rest of the content and the calls, at the end of the generation.
    pub(crate) fn finish(self) -> (String, Vec<FoundCall>) {
        if !self.holding {
            return (self.held, Vec::new());
        }
        parse(self.syntax, &self.held, &self.names)
    }
}

/// Content and calls of a whole output. A block that does not parse as a call of a known tool
/// stays in the content as written.
pub(crate) fn parse(syntax: ToolSyntax, text: &str, names: &[String]) -> (String, Vec<FoundCall>) {
    let known = |call: &FoundCall| names.contains(&call.name);
    match syntax {
        ToolSyntax::Generic => generic(text, &known),
        ToolSyntax::Hermes => hermes(text, &known),
        ToolSyntax::Mistral => mistral(text, &known),
        ToolSyntax::Llama3 => {
            let body = text.trim_start();
            let body = body.strip_prefix(PYTHON_TAG).unwrap_or(body);
            match serde_json::from_str::<Value>(body.trim())
                .ok()
                .and_then(|v| call_of(&v))
            {
                Some(call) if known(&call) => (String::new(), vec![call]),
                _ => (text.to_owned(), Vec::new()),
            }
        }
    }
}

/// `{"name": ..., "arguments"|"parameters": {...}}`.
fn call_of(v: &Value) -> Option<FoundCall> {
    let name = v.get("name")?.as_str()?.to_owned();
    let arguments = v.get("arguments").or_else(|| v.get("parameters"))?;
    // Some models write the arguments as a JSON string.
    let arguments = match arguments {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        other => other.clone(),
    };
    arguments.is_object().then(|| FoundCall {
        name,
        arguments: arguments.to_string(),
    })
}

fn calls_of(list: &Value, known: &impl Fn(&FoundCall) -> bool) -> Option<Vec<FoundCall>> {
    let calls = match list {
        Value::Array(items) => items.iter().map(call_of).collect::<Option<Vec<_>>>()?,
        single => vec![call_of(single)?],
    };
    (!calls.is_empty() && calls.iter().all(known)).then_some(calls)
}

fn generic(text: &str, known: &impl Fn(&FoundCall) -> bool) -> (String, Vec<FoundCall>) {
    let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
        return (text.to_owned(), Vec::new());
    };
    if let Some(calls) = v.get("tool_calls").and_then(|l| calls_of(l, known)) {
        return (String::new(), calls);
    }
    match v.get("response").and_then(Value::as_str) {
        Some(response) => (response.to_owned(), Vec::new()),
        None => (text.to_owned(), Vec::new()),
    }
}

fn hermes(text: &str, known: &impl Fn(&FoundCall) -> bool) -> (String, Vec<FoundCall>) {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        content.push_str(&rest[..at]);
        let body_start = at + OPEN.len();
        let (body, next) = match rest[body_start..].find(CLOSE) {
            Some(end) => (
                &rest[body_start..body_start + end],
                body_start + end + CLOSE.len(),
            ),
            None => (&rest[body_start..], rest.len()),
        };
        match serde_json::from_str::<Value>(body.trim())
            .ok()
            .and_then(|v| call_of(&v))
        {
            Some(call) if known(&call) => calls.push(call),
            _ => content.push_str(&rest[at..next]),
        }
        rest = &rest[next..];
    }
    content.push_str(rest);
    (trim_around_calls(content, &calls), calls)
}

fn mistral(text: &str, known: &impl Fn(&FoundCall) -> bool) -> (String, Vec<FoundCall>) {
    const OPEN: &str = "[TOOL_CALLS]";
    let Some(at) = text.find(OPEN) else {
        return (text.to_owned(), Vec::new());
    };
    let body = &text[at + OPEN.len()..];
    let mut values = serde_json::Deserializer::from_str(body).into_iter::<Value>();
    match values.next().and_then(Result::ok) {
        Some(list) => match calls_of(&list, known) {
            Some(calls) => {
                let after = &body[values.byte_offset()..];
                let content = format!("{}{}", &text[..at], after);
                (trim_around_calls(content, &calls), calls)
            }
            None => (text.to_owned(), Vec::new()),
        },
        None => (text.to_owned(), Vec::new()),
    }
}

/// The whitespace a model puts between its text and its calls is not content.
fn trim_around_calls(content: String, calls: &[FoundCall]) -> String {
    if calls.is_empty() {
        content
    } else {
        content.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names() -> Vec<String> {
        vec!["get_weather".into(), "get_time".into()]
    }

    fn call(name: &str, arguments: &str) -> FoundCall {
        FoundCall {
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// Feeds `text` in pieces of `size` bytes (at char boundaries) and collects what the
    /// client would see.
    fn streamed(syntax: ToolSyntax, text: &str, size: usize) -> (String, Vec<FoundCall>) {
        let mut s = ToolStream::new(syntax, names());
        let mut content = String::new();
        let mut rest = text;
        while !rest.is_empty() {
            let mut n = size.min(rest.len());
            while !rest.is_char_boundary(n) {
                n += 1;
            }
            content.push_str(&s.push(&rest[..n]));
            rest = &rest[n..];
        }
        let (tail, calls) = s.finish();
        content.push_str(&tail);
        (content, calls)
    }

    #[test]
    fn hermes_calls_are_parsed_and_surrounding_text_is_content() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"zone\\\": \\\"CET\\\"}\"}\n</tool_call>";
        let expected = (
            "Let me check.".to_owned(),
            vec![
                call("get_weather", r#"{"city":"Oslo"}"#),
                call("get_time", r#"{"zone":"CET"}"#),
            ],
        );
        assert_eq!(parse(ToolSyntax::Hermes, text, &names()), expected);
        for size in [1, 2, 3, 7, 1000] {
            let (content, calls) = streamed(ToolSyntax::Hermes, text, size);
            assert_eq!(calls, expected.1, "pieces of {size}");
            assert_eq!(content.trim(), expected.0, "pieces of {size}");
        }
    }

    #[test]
    fn text_that_only_looks_like_a_call_is_content() {
        for text in [
            "a <tool call> is not <tool_ but text",
            "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
            "<tool_call>{not json",
        ] {
            let (content, calls) = parse(ToolSyntax::Hermes, text, &names());
            assert!(calls.is_empty(), "{text}");
            assert_eq!(content, text);
            let (content, calls) = streamed(ToolSyntax::Hermes, text, 2);
            assert!(calls.is_empty(), "{text}");
            assert_eq!(content, text);
        }
    }

    #[test]
    fn mistral_llama3_and_generic_forms() {
        let (content, calls) = parse(
            ToolSyntax::Mistral,
            "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}]",
            &names(),
        );
        assert_eq!(
            (content.as_str(), calls),
            ("", vec![call("get_time", "{}")])
        );
        let llama =
            "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}";
        assert_eq!(
            streamed(ToolSyntax::Llama3, llama, 3),
            (
                String::new(),
                vec![call("get_weather", r#"{"city":"Rome"}"#)]
            )
        );
        // A Llama 3 answer that does not open with a call streams as text at once.
        let mut s = ToolStream::new(ToolSyntax::Llama3, names());
        assert_eq!(s.push("  "), "");
        assert_eq!(s.push("The answer"), "  The answer");
        assert_eq!(s.push(" {\"name\""), " {\"name\"");
        let generic = r#"{"tool_calls": [{"name": "get_time", "arguments": {"zone": "UTC"}}]}"#;
        assert_eq!(
            streamed(ToolSyntax::Generic, generic, 4),
            (String::new(), vec![call("get_time", r#"{"zone":"UTC"}"#)])
        );
        assert_eq!(
            streamed(ToolSyntax::Generic, r#"{"response": "Hi!"}"#, 4),
            ("Hi!".to_owned(), vec![])
        );
    }
}
