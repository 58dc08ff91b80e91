//! Anthropic's answer shapes: a `message` with text and `tool_use` blocks, or the event stream
//! the official client reads (`message_start`, `content_block_start`/`_delta`/`_stop` per
//! block, `message_delta` with the stop reason, `message_stop`).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::ApiError;
use super::generate::{Live, Step};
use crate::serve::engine::{FinishReason, ToolCall, Usage};

/// `stop_reason` and `stop_sequence`.
fn stop_reason(finish: FinishReason, stops: &[String]) -> (&'static str, Value) {
    match finish {
        FinishReason::Stop => ("end_turn", Value::Null),
        FinishReason::StopSequence(i) => (
            "stop_sequence",
            stops.get(usize::from(i)).map_or(Value::Null, |s| json!(s)),
        ),
        FinishReason::Length => ("max_tokens", Value::Null),
        FinishReason::ToolCalls => ("tool_use", Value::Null),
    }
}

/// Anthropic counts cache reads apart from the other input tokens.
fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_tokens),
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    })
}

/// Anthropic's `toolu_` prefix on the call ids this server makes.
fn tool_use(call: &ToolCall, input: Value) -> Value {
    let id = call
        .id
        .strip_prefix("call_")
        .map_or_else(|| call.id.clone(), |rest| format!("toolu_{rest}"));
    json!({"type": "tool_use", "id": id, "name": call.name, "input": input})
}

fn event(name: &str, data: Value) -> SseEvent {
    SseEvent::default().event(name).data(data.to_string())
}

/// The answer to `POST /v1/messages`.
pub(crate) async fn respond(
    live: Live,
    model: String,
    stops: Vec<String>,
    stream: bool,
) -> Result<Response, ApiError> {
    let id = format!("msg_{}", live.log.id());
    if !stream {
        let done = live.collect().await?;
        let mut content = Vec::new();
        if !done.text.is_empty() || done.tool_calls.is_empty() {
            content.push(json!({"type": "text", "text": done.text}));
        }
        content.extend(
            done.tool_calls
                .iter()
                .map(|c| tool_use(c, c.arguments_json())),
        );
        let (reason, sequence) = stop_reason(done.finish, &stops);
        return Ok(Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": reason, "stop_sequence": sequence,
            "usage": usage(&done.usage),
        }))
        .into_response());
    }
    live.log.streaming();
    let start = event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": live.prompt_tokens, "output_tokens": 0},
        }}),
    );
    let blocks = futures_util::stream::unfold(
        (live, Blocks::default(), false),
        move |(mut live, mut blocks, done)| {
            let stops = stops.clone();
            async move {
                if done {
                    return None;
                }
                let (events, done) = match live.next().await? {
                    Step::Text(t, _) => (blocks.text(&t), false),
                    Step::ToolCalls(calls) => (blocks.calls(&calls), false),
                    Step::Done(finish, u) => (blocks.end(finish, &u, &stops), true),
                    Step::Failed(e) => (vec![event("error", e.body())], true),
                };
                Some((futures_util::stream::iter(events), (live, blocks, done)))
            }
        },
    )
    .flatten();
    let events = futures_util::stream::iter([start])
        .chain(blocks)
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(events).into_response())
}

/// The content blocks of a streamed message: their indexes, and whether a text block is open.
#[derive(Default)]
struct Blocks {
    next: usize,
    text_open: bool,
}

impl Blocks {
    fn text(&mut self, text: &str) -> Vec<SseEvent> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.text_open {
            self.text_open = true;
            out.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": self.next,
                    "content_block": {"type": "text", "text": ""}}),
            ));
        }
        out.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.next,
                "delta": {"type": "text_delta", "text": text}}),
        ));
        out
    }

    fn close_text(&mut self) -> Option<SseEvent> {
        if !self.text_open {
            return None;
        }
        self.text_open = false;
        let stop = event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": self.next}),
        );
        self.next += 1;
        Some(stop)
    }

    /// Each call as a block: opened with empty input, its arguments as one JSON delta (the
    /// client concatenates `partial_json` and parses at the block's end).
    fn calls(&mut self, calls: &[ToolCall]) -> Vec<SseEvent> {
        let mut out: Vec<SseEvent> = self.close_text().into_iter().collect();
        for call in calls {
            let index = self.next;
            out.push(event(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                    "content_block": tool_use(call, json!({}))}),
            ));
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": call.arguments}}),
            ));
            out.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            self.next += 1;
        }
        out
    }

    fn end(&mut self, finish: FinishReason, u: &Usage, stops: &[String]) -> Vec<SseEvent> {
        let mut out: Vec<SseEvent> = self.close_text().into_iter().collect();
        let (reason, sequence) = stop_reason(finish, stops);
        out.push(event(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                "usage": usage(u)}),
        ));
        out.push(event("message_stop", json!({"type": "message_stop"})));
        out
    }
}
