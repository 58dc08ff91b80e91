//! Anthropic's answer shapes ([`wire::anthropic`]): a `message` with text and `tool_use`
//! blocks, or the event stream the official client reads (`message_start`,
//! `content_block_start`/`_delta`/`_stop` per block, `message_delta` with the stop reason,
//! `message_stop`).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::json;

use super::ApiError;
use super::generate::{Live, Step};
use crate::serve::engine::{FinishReason, ToolCall, Usage};
use crate::wire::anthropic::{
    self as wire, BlockDelta, ContentBlock, Message, MessageDelta, StreamEvent,
};

/// `stop_reason` and `stop_sequence`.
fn stop_reason(finish: FinishReason, stops: &[String]) -> MessageDelta {
    let (reason, sequence) = match finish {
        FinishReason::Stop => ("end_turn", None),
        FinishReason::StopSequence(i) => ("stop_sequence", stops.get(usize::from(i)).cloned()),
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolCalls => ("tool_use", None),
    };
    MessageDelta {
        stop_reason: Some(reason.to_owned()),
        stop_sequence: sequence,
    }
}

/// Anthropic counts cache reads apart from the other input tokens.
fn usage(u: &Usage) -> wire::Usage {
    wire::Usage {
        input_tokens: u64::from(u.prompt_tokens.saturating_sub(u.cached_tokens)),
        cache_read_input_tokens: Some(u64::from(u.cached_tokens)),
        output_tokens: u64::from(u.completion_tokens),
    }
}

/// Anthropic's `toolu_` prefix on the call ids this server makes.
fn tool_use(call: &ToolCall, input: serde_json::Value) -> ContentBlock {
    let id = call
        .id
        .strip_prefix("call_")
        .map_or_else(|| call.id.clone(), |rest| format!("toolu_{rest}"));
    ContentBlock::ToolUse {
        id,
        name: call.name.clone(),
        input,
    }
}

fn event(e: &StreamEvent) -> SseEvent {
    SseEvent::default()
        .event(e.name())
        .data(serde_json::to_string(e).unwrap_or_default())
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
            content.push(ContentBlock::Text { text: done.text });
        }
        content.extend(
            done.tool_calls
                .iter()
                .map(|c| tool_use(c, c.arguments_json())),
        );
        let end = stop_reason(done.finish, &stops);
        return Ok(Json(Message {
            content,
            stop_reason: end.stop_reason,
            stop_sequence: end.stop_sequence,
            usage: usage(&done.usage),
            ..message_head(id, model)
        })
        .into_response());
    }
    live.log.streaming();
    let start = event(&StreamEvent::MessageStart {
        message: Message {
            usage: wire::Usage {
                input_tokens: u64::from(live.prompt_tokens),
                ..wire::Usage::default()
            },
            ..message_head(id, model)
        },
    });
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
                    Step::Failed(e) => (vec![error_event(&e)], true),
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
            out.push(event(&StreamEvent::ContentBlockStart {
                index: self.next,
                content_block: ContentBlock::Text {
                    text: String::new(),
                },
            }));
        }
        out.push(event(&StreamEvent::ContentBlockDelta {
            index: self.next,
            delta: BlockDelta::TextDelta { text: text.into() },
        }));
        out
    }

    fn close_text(&mut self) -> Option<SseEvent> {
        if !self.text_open {
            return None;
        }
        self.text_open = false;
        let stop = event(&StreamEvent::ContentBlockStop { index: self.next });
        self.next += 1;
        Some(stop)
    }

    /// Each call as a block: opened with empty input, its arguments as one JSON delta (the
    /// client concatenates `partial_json` and parses at the block's end).
    fn calls(&mut self, calls: &[ToolCall]) -> Vec<SseEvent> {
        let mut out: Vec<SseEvent> = self.close_text().into_iter().collect();
        for call in calls {
            let index = self.next;
            out.push(event(&StreamEvent::ContentBlockStart {
                index,
                content_block: tool_use(call, json!({})),
            }));
            out.push(event(&StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJsonDelta {
                    partial_json: call.arguments.clone(),
                },
            }));
            out.push(event(&StreamEvent::ContentBlockStop { index }));
            self.next += 1;
        }
        out
    }

    fn end(&mut self, finish: FinishReason, u: &Usage, stops: &[String]) -> Vec<SseEvent> {
        let mut out: Vec<SseEvent> = self.close_text().into_iter().collect();
        out.push(event(&StreamEvent::MessageDelta {
            delta: stop_reason(finish, stops),
            usage: usage(u),
        }));
        out.push(event(&StreamEvent::MessageStop));
        out
    }
}

/// A message without content or stop reason: what `message_start` announces.
fn message_head(id: String, model: String) -> Message {
    Message {
        id,
        kind: wire::MESSAGE.into(),
        role: "assistant".into(),
        model,
        ..Message::default()
    }
}

/// A failure midway, as the stream's last event (the error answer's body, by its name).
fn error_event(e: &ApiError) -> SseEvent {
    SseEvent::default()
        .event("error")
        .data(e.body().to_string())
}
