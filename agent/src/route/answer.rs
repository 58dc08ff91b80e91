//! Reading an upstream answer as it passes through: generated text, token counts, error
//! frames and whether it ended properly. OpenAI chat streams are SSE (`data: {...}` lines
//! ending with `data: [DONE]`), Anthropic's and the Responses API's are SSE of typed events
//! (ending with `message_stop`, `response.completed` or `response.incomplete`), Ollama streams
//! are NDJSON (ending with `"done": true`), other answers are one JSON document.

use std::borrow::Cow;
use std::time::Instant;

use serde_json::Value;

/// Larger single-document answers are passed on without being read.
const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// How an answer's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/x-ndjson`.
    Ndjson,
    /// One JSON document.
    Document,
}

impl Framing {
    /// The framing announced by a `Content-Type`.
    pub fn of(content_type: Option<&str>) -> Framing {
        match content_type.unwrap_or_default() {
            t if t.starts_with("text/event-stream") => Framing::Sse,
            t if t.starts_with("application/x-ndjson") => Framing::Ndjson,
            _ => Framing::Document,
        }
    }
}

/// What has been learnt from an answer so far.
#[derive(Debug)]
pub struct Answer {
    framing: Framing,
    buf: Vec<u8>,
    keep_text: bool,
    /// Generated text (only gathered when asked for, for shadow comparison).
    pub text: String,
    /// Frames that carried generated text.
    pub chunks: u64,
    /// Generated tokens as the upstream reported them.
    pub completion_tokens: Option<u64>,
    /// Prompt tokens as the upstream reported them.
    pub prompt_tokens: Option<u64>,
    /// An error frame was seen.
    pub error: bool,
    /// The final frame (`[DONE]`, `"done": true`, or the whole document) was seen.
    pub complete: bool,
    /// When the first generated text arrived.
    pub first_token: Option<Instant>,
    /// When the last generated text arrived.
    pub last_token: Option<Instant>,
}

impl Answer {
    /// A reader for `framing`; `keep_text` gathers the generated text.
    pub fn new(framing: Framing, keep_text: bool) -> Self {
        Answer {
            framing,
            buf: Vec::new(),
            keep_text,
            text: String::new(),
            chunks: 0,
            completion_tokens: None,
            prompt_tokens: None,
            error: false,
            complete: false,
            first_token: None,
            last_token: None,
        }
    }

    /// The framing being read.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Reads the next piece of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.framing == Framing::Document {
            if self.buf.len() + bytes.len() <= MAX_DOCUMENT_BYTES {
                self.buf.extend_from_slice(bytes);
            }
            return;
        }
        self.buf.extend_from_slice(bytes);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            self.line(&line);
        }
    }

    /// The body ended cleanly: reads what is left.
    pub fn finish(&mut self) {
        let rest = std::mem::take(&mut self.buf);
        match self.framing {
            Framing::Document => {
                if let Ok(doc) = serde_json::from_slice::<Value>(&rest) {
                    self.frame(&doc);
                    self.complete = true;
                }
            }
            _ => self.line(&rest),
        }
    }

    /// Generated tokens: the upstream's count, else the frames that carried text.
    pub fn generated_tokens(&self) -> u64 {
        self.completion_tokens.unwrap_or(self.chunks)
    }

    /// Tokens billed to a client's budget: prompt plus generated.
    pub fn billed_tokens(&self) -> u64 {
        self.prompt_tokens.unwrap_or(0) + self.generated_tokens()
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.trim_ascii();
        let payload = match self.framing {
            Framing::Sse => match line.strip_prefix(b"data:") {
                Some(data) => data.trim_ascii(),
                None => return,
            },
            _ => line,
        };
        if payload.is_empty() {
            return;
        }
        if payload == b"[DONE]" {
            self.complete = true;
            return;
        }
        match serde_json::from_slice::<Value>(payload) {
            Ok(frame) => self.frame(&frame),
            Err(_) => self.error = true,
        }
    }

    fn frame(&mut self, frame: &Value) {
        let kind = frame.get("type").and_then(Value::as_str);
        if frame.get("error").is_some_and(|e| !e.is_null())
            || matches!(kind, Some("error" | "response.failed"))
        {
            self.error = true;
        }
        if let Some(piece) = text_of(frame).filter(|t| !t.is_empty()) {
            let now = Instant::now();
            self.first_token.get_or_insert(now);
            self.last_token = Some(now);
            self.chunks += 1;
            if self.keep_text {
                self.text.push_str(&piece);
            }
        }
        // Anthropic's message_start and the Responses API's final event carry it inside.
        let usage = frame
            .get("usage")
            .or_else(|| frame.pointer("/message/usage"))
            .or_else(|| frame.pointer("/response/usage"));
        let field = |name: &str| usage.and_then(|u| u.get(name)).and_then(Value::as_u64);
        let top = |name: &str| frame.get(name).and_then(Value::as_u64);
        if let Some(n) = field("completion_tokens")
            .or_else(|| field("output_tokens"))
            .or_else(|| top("eval_count"))
        {
            self.completion_tokens = Some(n);
        }
        // Anthropic counts cache reads apart from `input_tokens`; the prompt is both.
        let input =
            field("input_tokens").map(|n| n + field("cache_read_input_tokens").unwrap_or(0));
        if let Some(n) = field("prompt_tokens")
            .or(input)
            .or_else(|| top("prompt_eval_count"))
        {
            self.prompt_tokens = Some(n);
        }
        if self.framing == Framing::Ndjson && frame.get("done") == Some(&Value::Bool(true)) {
            self.complete = true;
        }
        if matches!(
            kind,
            Some("message_stop" | "response.completed" | "response.incomplete")
        ) {
            self.complete = true;
        }
    }
}

/// The generated text in one frame of any of the generation APIs.
fn text_of(frame: &Value) -> Option<Cow<'_, str>> {
    // Anthropic's and the Responses API's frames say what they are.
    match frame.get("type").and_then(Value::as_str) {
        Some("content_block_delta") => return borrowed(frame.pointer("/delta/text")),
        Some("response.output_text.delta") => return borrowed(frame.get("delta")),
        // A whole Anthropic message: its text blocks.
        Some("message") => return Some(Cow::Owned(texts(frame.get("content")))),
        Some(_) => return None,
        None => {}
    }
    if frame.get("object").and_then(Value::as_str) == Some("response") {
        // A whole response: the text parts of its message items.
        let items = frame.get("output").and_then(Value::as_array);
        let text = items
            .into_iter()
            .flatten()
            .map(|item| texts(item.get("content")))
            .collect();
        return Some(Cow::Owned(text));
    }
    let choice = frame.get("choices").and_then(|c| c.get(0));
    borrowed(
        choice
            .and_then(|c| c.get("delta").or_else(|| c.get("message")))
            .and_then(|m| m.get("content"))
            .or_else(|| choice.and_then(|c| c.get("text")))
            .or_else(|| frame.get("response"))
            .or_else(|| frame.get("message").and_then(|m| m.get("content"))),
    )
}

fn borrowed(v: Option<&Value>) -> Option<Cow<'_, str>> {
    v.and_then(Value::as_str).map(Cow::Borrowed)
}

/// The `text` of each block or part in a content list.
fn texts(content: Option<&Value>) -> String {
    content
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(framing: Framing, body: &str) -> Answer {
        let mut answer = Answer::new(framing, true);
        answer.feed(body.as_bytes());
        answer.finish();
        answer
    }

    #[test]
    fn anthropic_answers_are_read_streamed_and_whole() {
        let sse = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":0}}}\n\n\
            event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
            event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n\
            event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":2,\"cache_read_input_tokens\":5,\"output_tokens\":3}}\n\n\
            event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let a = read(Framing::Sse, sse);
        assert_eq!(
            (a.text.as_str(), a.chunks, a.complete, a.error),
            ("Hi", 1, true, false)
        );
        assert_eq!((a.prompt_tokens, a.completion_tokens), (Some(7), Some(3)));
        let whole = r#"{"type":"message","content":[{"type":"text","text":"Hi"},{"type":"tool_use","input":{}}],"usage":{"input_tokens":4,"output_tokens":2}}"#;
        let a = read(Framing::Document, whole);
        assert_eq!(
            (a.text.as_str(), a.billed_tokens(), a.complete),
            ("Hi", 6, true)
        );
        let failed =
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n";
        assert!(read(Framing::Sse, failed).error);
    }

    #[test]
    fn responses_answers_are_read_streamed_and_whole() {
        let sse = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n\
            event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}\n\n\
            event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"lo\"}\n\n\
            event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"Hello\"}\n\n\
            event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":2}}}\n\n";
        let a = read(Framing::Sse, sse);
        assert_eq!((a.text.as_str(), a.chunks, a.complete), ("Hello", 2, true));
        assert_eq!((a.prompt_tokens, a.completion_tokens), (Some(9), Some(2)));
        let whole = r#"{"object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"Yes"}]},{"type":"function_call","arguments":"{}"}],"usage":{"input_tokens":3,"output_tokens":1}}"#;
        let a = read(Framing::Document, whole);
        assert_eq!((a.text.as_str(), a.billed_tokens()), ("Yes", 4));
    }
}
