//! Reading an upstream answer as it passes through: generated text, token counts, error
//! frames and whether it ended properly. OpenAI streams are SSE (`data: {...}` lines ending
//! with `data: [DONE]`), Ollama streams are NDJSON (ending with `"done": true`), other answers
//! are one JSON document.

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
        if frame.get("error").is_some_and(|e| !e.is_null()) {
            self.error = true;
        }
        if let Some(piece) = text_of(frame).filter(|t| !t.is_empty()) {
            let now = Instant::now();
            self.first_token.get_or_insert(now);
            self.last_token = Some(now);
            self.chunks += 1;
            if self.keep_text {
                self.text.push_str(piece);
            }
        }
        let usage = frame.get("usage");
        let count = |openai: &str, ollama: &str| {
            usage
                .and_then(|u| u.get(openai))
                .or_else(|| frame.get(ollama))
                .and_then(Value::as_u64)
        };
        if let Some(n) = count("completion_tokens", "eval_count") {
            self.completion_tokens = Some(n);
        }
        if let Some(n) = count("prompt_tokens", "prompt_eval_count") {
            self.prompt_tokens = Some(n);
        }
        if self.framing == Framing::Ndjson && frame.get("done") == Some(&Value::Bool(true)) {
            self.complete = true;
        }
    }
}

/// The generated text in one frame of any of the four generation APIs.
fn text_of(frame: &Value) -> Option<&str> {
    let choice = frame.get("choices").and_then(|c| c.get(0));
    choice
        .and_then(|c| c.get("delta").or_else(|| c.get("message")))
        .and_then(|m| m.get("content"))
        .or_else(|| choice.and_then(|c| c.get("text")))
        .or_else(|| frame.get("response"))
        .or_else(|| frame.get("message").and_then(|m| m.get("content")))
        .and_then(Value::as_str)
}
