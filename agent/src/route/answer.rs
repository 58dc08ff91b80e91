//! Reading an upstream answer as it passes through: generated text, token counts, error
//! frames and whether it ended properly. Each generation API's answer is read as its wire
//! type ([`crate::wire`]), known from the request's path ([`Api`]): OpenAI chat and text
//! completion streams are SSE of chunks ending with `data: [DONE]`, Anthropic's and the
//! Responses API's are SSE of typed events (ending with `message_stop`, `response.completed`
//! or `response.incomplete`), Ollama streams are NDJSON (ending with `"done": true`), answers
//! not streamed are one JSON document.

use std::time::Instant;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::wire::{anthropic, ollama, openai, responses};

/// Larger single-document answers are passed on without being read.
const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// The generation API a request speaks, known from its path; the router reads only these
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/responses`.
    Responses,
    /// `/v1/messages` (Anthropic).
    Messages,
    /// `/api/generate` (Ollama).
    OllamaGenerate,
    /// `/api/chat` (Ollama).
    OllamaChat,
}

impl Api {
    /// The generation API of a request path; `None` for every other route.
    pub fn of_path(path: &str) -> Option<Api> {
        Some(match path {
            "/v1/chat/completions" => Api::Chat,
            "/v1/completions" => Api::Completions,
            "/v1/responses" => Api::Responses,
            "/v1/messages" => Api::Messages,
            "/api/generate" => Api::OllamaGenerate,
            "/api/chat" => Api::OllamaChat,
            _ => return None,
        })
    }
}

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
    api: Api,
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

/// What one frame (or the whole document) says.
#[derive(Debug, Default)]
struct Frame {
    text: Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    error: bool,
    last: bool,
}

impl Answer {
    /// A reader of `api`'s answer in `framing`; `keep_text` gathers the generated text.
    pub fn new(api: Api, framing: Framing, keep_text: bool) -> Self {
        Answer {
            api,
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
                if let Ok(frame) = document(self.api, &rest) {
                    self.take(frame);
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
        match streamed(self.api, payload) {
            Ok(frame) => self.take(frame),
            Err(_) => self.error = true,
        }
    }

    fn take(&mut self, frame: Frame) {
        self.error |= frame.error;
        self.complete |= frame.last;
        if let Some(piece) = frame.text.filter(|t| !t.is_empty()) {
            let now = Instant::now();
            self.first_token.get_or_insert(now);
            self.last_token = Some(now);
            self.chunks += 1;
            if self.keep_text {
                self.text.push_str(&piece);
            }
        }
        self.prompt_tokens = frame.prompt_tokens.or(self.prompt_tokens);
        self.completion_tokens = frame.completion_tokens.or(self.completion_tokens);
    }
}

/// An error body in any API's shape: `error` holds an object (OpenAI, Anthropic) or a
/// message (Ollama); a null `error` (a whole response that did not fail) is no error.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code, reason = "read for its shape: which bodies are errors")]
enum Failure {
    Object { error: Map<String, Value> },
    Message { error: String },
}

/// A frame, unless it is an error body.
#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code, reason = "read for its shape: which bodies are errors")]
enum OrFailure<T> {
    Failed(Failure),
    Frame(T),
}

fn parse<T: DeserializeOwned>(payload: &[u8]) -> serde_json::Result<Option<T>> {
    Ok(match serde_json::from_slice(payload)? {
        OrFailure::Failed(_) => None,
        OrFailure::Frame(frame) => Some(frame),
    })
}

/// Reads `payload` as `T`; an error body is a failed frame.
fn read<T: DeserializeOwned>(
    payload: &[u8],
    f: impl FnOnce(T) -> Frame,
) -> serde_json::Result<Frame> {
    Ok(parse(payload)?.map_or_else(
        || Frame {
            error: true,
            ..Frame::default()
        },
        f,
    ))
}

/// One frame of a stream.
fn streamed(api: Api, payload: &[u8]) -> serde_json::Result<Frame> {
    match api {
        Api::Chat => read(payload, |c: openai::ChatCompletionChunk| {
            let text = c
                .choices
                .first()
                .and_then(|c| c.delta.text())
                .map(str::to_owned);
            with_openai_usage(text, c.usage.as_ref())
        }),
        Api::Completions => read(payload, text_completion),
        Api::Responses => read(payload, |e: responses::StreamEvent| response_event(e.event)),
        Api::Messages => read(payload, message_event),
        Api::OllamaGenerate => read(payload, |g: ollama::GenerateResponse| {
            ollama_frame(g.response, g.done, &g.stats)
        }),
        Api::OllamaChat => read(payload, |c: ollama::ChatResponse| {
            ollama_frame(c.message.content, c.done, &c.stats)
        }),
    }
}

/// A whole answer.
fn document(api: Api, payload: &[u8]) -> serde_json::Result<Frame> {
    match api {
        Api::Chat => read(payload, |c: openai::ChatCompletion| {
            let text = c.choices.first().and_then(|c| c.message.content.clone());
            with_openai_usage(text, c.usage.as_ref())
        }),
        Api::Completions => read(payload, text_completion),
        Api::Responses => read(payload, |r: responses::Response| whole_response(&r)),
        Api::Messages => read(payload, |m: anthropic::Message| Frame {
            text: Some(
                m.content
                    .iter()
                    .filter_map(anthropic::ContentBlock::text)
                    .collect(),
            ),
            ..anthropic_usage(&m.usage)
        }),
        // Ollama's whole answers are its stream's last line.
        Api::OllamaGenerate | Api::OllamaChat => streamed(api, payload),
    }
}

fn with_openai_usage(text: Option<String>, usage: Option<&openai::Usage>) -> Frame {
    Frame {
        text,
        prompt_tokens: usage.map(|u| u.prompt_tokens),
        completion_tokens: usage.map(|u| u.completion_tokens),
        ..Frame::default()
    }
}

fn text_completion(c: openai::TextCompletion) -> Frame {
    let text = c.choices.first().map(|c| c.text.clone());
    with_openai_usage(text, c.usage.as_ref())
}

fn response_event(event: responses::Event) -> Frame {
    use responses::Event;
    match event {
        Event::OutputTextDelta { delta, .. } => Frame {
            text: Some(delta),
            ..Frame::default()
        },
        Event::Created { response } | Event::InProgress { response } => response_usage(&response),
        Event::Completed { response } | Event::Incomplete { response } => Frame {
            last: true,
            ..response_usage(&response)
        },
        Event::Failed { .. } | Event::Error { .. } => Frame {
            error: true,
            ..Frame::default()
        },
        _ => Frame::default(),
    }
}

fn response_usage(r: &responses::Response) -> Frame {
    Frame {
        prompt_tokens: r.usage.as_ref().map(|u| u.input_tokens),
        completion_tokens: r.usage.as_ref().map(|u| u.output_tokens),
        ..Frame::default()
    }
}

fn whole_response(r: &responses::Response) -> Frame {
    Frame {
        text: Some(r.output_text()),
        ..response_usage(r)
    }
}

fn message_event(event: anthropic::StreamEvent) -> Frame {
    use anthropic::{BlockDelta, StreamEvent};
    match event {
        StreamEvent::ContentBlockDelta {
            delta: BlockDelta::TextDelta { text },
            ..
        } => Frame {
            text: Some(text),
            ..Frame::default()
        },
        StreamEvent::MessageStart { message } => anthropic_usage(&message.usage),
        StreamEvent::MessageDelta { usage, .. } => anthropic_usage(&usage),
        StreamEvent::MessageStop => Frame {
            last: true,
            ..Frame::default()
        },
        StreamEvent::Error { .. } => Frame {
            error: true,
            ..Frame::default()
        },
        _ => Frame::default(),
    }
}

/// Anthropic counts cache reads apart from `input_tokens`; the prompt is both.
fn anthropic_usage(u: &anthropic::Usage) -> Frame {
    Frame {
        prompt_tokens: Some(u.prompt_tokens()),
        completion_tokens: Some(u.output_tokens),
        ..Frame::default()
    }
}

fn ollama_frame(text: String, done: bool, stats: &ollama::DoneStats) -> Frame {
    Frame {
        text: Some(text),
        prompt_tokens: stats.prompt_eval_count,
        completion_tokens: stats.eval_count,
        last: done,
        ..Frame::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(api: Api, framing: Framing, body: &str) -> Answer {
        let mut answer = Answer::new(api, framing, true);
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
        let a = read(Api::Messages, Framing::Sse, sse);
        assert_eq!(
            (a.text.as_str(), a.chunks, a.complete, a.error),
            ("Hi", 1, true, false)
        );
        assert_eq!((a.prompt_tokens, a.completion_tokens), (Some(7), Some(3)));
        let whole = r#"{"type":"message","content":[{"type":"text","text":"Hi"},{"type":"tool_use","input":{}}],"usage":{"input_tokens":4,"output_tokens":2}}"#;
        let a = read(Api::Messages, Framing::Document, whole);
        assert_eq!(
            (a.text.as_str(), a.billed_tokens(), a.complete),
            ("Hi", 6, true)
        );
        let failed =
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"}}\n";
        assert!(read(Api::Messages, Framing::Sse, failed).error);
    }

    #[test]
    fn responses_answers_are_read_streamed_and_whole() {
        let sse = "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"usage\":null}}\n\n\
            event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}\n\n\
            event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"lo\"}\n\n\
            event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"text\":\"Hello\"}\n\n\
            event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"response\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":2}}}\n\n";
        let a = read(Api::Responses, Framing::Sse, sse);
        assert_eq!((a.text.as_str(), a.chunks, a.complete), ("Hello", 2, true));
        assert_eq!((a.prompt_tokens, a.completion_tokens), (Some(9), Some(2)));
        let whole = r#"{"object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"Yes"}]},{"type":"function_call","arguments":"{}"}],"usage":{"input_tokens":3,"output_tokens":1}}"#;
        let a = read(Api::Responses, Framing::Document, whole);
        assert_eq!((a.text.as_str(), a.billed_tokens()), ("Yes", 4));
    }

    #[test]
    fn openai_and_ollama_answers_are_read_streamed_and_whole() {
        let sse = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"}}]}\n\n\
            data: {\"choices\":[{\"delta\":{\"content\":null,\"tool_calls\":[]}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1,\"total_tokens\":5}}\n\n\
            data: [DONE]\n\n";
        let a = read(Api::Chat, Framing::Sse, sse);
        assert_eq!((a.text.as_str(), a.chunks, a.complete), ("Hi", 1, true));
        assert_eq!(a.billed_tokens(), 5);
        let failed = "data: {\"choices\":[{\"delta\":{\"content\":\"H\"}}]}\n\ndata: {\"error\":{\"message\":\"gone\"}}\n\n";
        let a = read(Api::Chat, Framing::Sse, failed);
        assert!(a.error && !a.complete);
        let whole = r#"{"choices":[{"text":"ok"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"#;
        let a = read(Api::Completions, Framing::Document, whole);
        assert_eq!(
            (a.text.as_str(), a.billed_tokens(), a.complete),
            ("ok", 3, true)
        );
        let lines = "{\"message\":{\"role\":\"assistant\",\"content\":\"Yo\"},\"done\":false}\n\
            {\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":6,\"eval_count\":2}\n";
        let a = read(Api::OllamaChat, Framing::Ndjson, lines);
        assert_eq!(
            (a.text.as_str(), a.complete, a.billed_tokens()),
            ("Yo", true, 8)
        );
        let a = read(
            Api::OllamaGenerate,
            Framing::Ndjson,
            "{\"error\":\"model gone\"}\n",
        );
        assert!(a.error && !a.complete);
        let a = read(Api::OllamaGenerate, Framing::Ndjson, "not json\n");
        assert!(a.error);
    }
}
