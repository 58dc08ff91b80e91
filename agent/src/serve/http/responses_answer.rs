//! The Responses API's answer ([`wire::responses`]): a `response` object whose `output` holds a
//! `message` item (`output_text`) and `function_call` items, or the event stream the official
//! client accumulates (`response.created`, `response.output_item.added`, `...delta`, `...done`,
//! `response.completed` or `response.incomplete`, each with a `sequence_number`).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::ApiError;
use super::generate::{Live, Step, unix_now};
use crate::serve::engine::{FinishReason, ToolCall, Usage};
use crate::wire::responses::{self as wire, Event, OutputContent, OutputItem, StreamEvent};

fn usage(u: &Usage) -> wire::Usage {
    wire::Usage {
        input_tokens: u64::from(u.prompt_tokens),
        input_tokens_details: wire::InputTokensDetails {
            cached_tokens: u64::from(u.cached_tokens),
        },
        output_tokens: u64::from(u.completion_tokens),
        output_tokens_details: wire::OutputTokensDetails::default(),
        total_tokens: u64::from(u.prompt_tokens) + u64::from(u.completion_tokens),
    }
}

fn message_item(id: &str, content: Vec<OutputContent>, status: &str) -> OutputItem {
    OutputItem::Message {
        id: id.into(),
        status: status.into(),
        role: "assistant".into(),
        content,
    }
}

fn call_item(id: &str, call: &ToolCall, arguments: &str, status: &str) -> OutputItem {
    OutputItem::FunctionCall {
        id: id.into(),
        call_id: call.id.clone(),
        name: call.name.clone(),
        arguments: arguments.into(),
        status: status.into(),
    }
}

/// The response object: the request's settings with the answer's state.
struct Shape {
    settings: wire::Response,
}

impl Shape {
    fn response(
        &self,
        status: &str,
        output: Vec<OutputItem>,
        finish: Option<(FinishReason, &Usage)>,
    ) -> wire::Response {
        let incomplete = matches!(finish, Some((FinishReason::Length, _)));
        wire::Response {
            status: status.into(),
            output,
            incomplete_details: incomplete.then(|| wire::IncompleteDetails {
                reason: "max_output_tokens".into(),
            }),
            usage: finish.map(|(_, u)| usage(u)),
            ..self.settings.clone()
        }
    }
}

fn status_of(finish: FinishReason) -> &'static str {
    if finish == FinishReason::Length {
        "incomplete"
    } else {
        "completed"
    }
}

/// The answer to `POST /v1/responses`; `settings` holds the request's settings as applied.
pub(crate) async fn respond(
    live: Live,
    settings: wire::Response,
    stream: bool,
) -> Result<Response, ApiError> {
    let request_id = live.log.id().to_owned();
    let shape = Shape {
        settings: wire::Response {
            id: format!("resp_{request_id}"),
            object: wire::RESPONSE.into(),
            created_at: unix_now(),
            ..settings
        },
    };
    let message_id = format!("msg_{request_id}");
    let call_id = move |i: usize| format!("fc_{request_id}_{i}");
    if !stream {
        let done = live.collect().await?;
        let status = status_of(done.finish);
        let mut output = Vec::new();
        if !done.text.is_empty() || done.tool_calls.is_empty() {
            let text = vec![OutputContent::output_text(done.text)];
            output.push(message_item(&message_id, text, status));
        }
        for (i, call) in done.tool_calls.iter().enumerate() {
            output.push(call_item(&call_id(i), call, &call.arguments, "completed"));
        }
        let body = shape.response(status, output, Some((done.finish, &done.usage)));
        return Ok(Json(body).into_response());
    }
    live.log.streaming();
    let mut events = Events {
        shape,
        message_id,
        call_id: Box::new(call_id),
        sequence: 0,
        text: None,
        output: Vec::new(),
    };
    let opening = vec![
        events.event(Event::Created {
            response: events.shape.response("in_progress", vec![], None),
        }),
        events.event(Event::InProgress {
            response: events.shape.response("in_progress", vec![], None),
        }),
    ];
    let rest = futures_util::stream::unfold(
        (live, events, false),
        |(mut live, mut events, done)| async move {
            if done {
                return None;
            }
            let (out, done) = match live.next().await? {
                Step::Text(t, _) => (events.text(&t), false),
                Step::ToolCalls(calls) => (events.calls(&calls), false),
                Step::Done(finish, u) => (events.end(finish, &u), true),
                Step::Failed(e) => (vec![events.event(error_event(&e))], true),
            };
            Some((futures_util::stream::iter(out), (live, events, done)))
        },
    )
    .flatten();
    let all = futures_util::stream::iter(opening)
        .chain(rest)
        .map(Ok::<_, Infallible>);
    Ok(Sse::new(all).into_response())
}

/// A failure midway: the error's code (its kind, as in OpenAI's error body) and message as
/// the stream's `error` event.
fn error_event(e: &ApiError) -> Event {
    Event::Error {
        code: Some(e.kind.into()),
        message: e.message.clone(),
        param: None,
    }
}

/// The state of a streamed response: the output items so far and the open message's text.
struct Events {
    shape: Shape,
    message_id: String,
    call_id: Box<dyn Fn(usize) -> String + Send>,
    sequence: u64,
    /// The message item's text while it is open.
    text: Option<String>,
    /// Finished items.
    output: Vec<OutputItem>,
}

impl Events {
    /// One event, numbered.
    fn event(&mut self, event: Event) -> SseEvent {
        let name = event.name();
        let numbered = StreamEvent {
            event,
            sequence_number: self.sequence,
        };
        self.sequence += 1;
        SseEvent::default()
            .event(name)
            .data(serde_json::to_string(&numbered).unwrap_or_default())
    }

    fn text(&mut self, delta: &str) -> Vec<SseEvent> {
        if delta.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let output_index = self.output.len();
        let item_id = self.message_id.clone();
        if self.text.is_none() {
            self.text = Some(String::new());
            out.push(self.event(Event::OutputItemAdded {
                output_index,
                item: message_item(&item_id, Vec::new(), "in_progress"),
            }));
            out.push(self.event(Event::ContentPartAdded {
                item_id: item_id.clone(),
                output_index,
                content_index: 0,
                part: OutputContent::output_text(""),
            }));
        }
        if let Some(text) = &mut self.text {
            text.push_str(delta);
        }
        out.push(self.event(Event::OutputTextDelta {
            item_id,
            output_index,
            content_index: 0,
            delta: delta.into(),
            logprobs: Vec::new(),
        }));
        out
    }

    /// Closes the message item, if one is open.
    fn close_text(&mut self, status: &str) -> Vec<SseEvent> {
        let Some(text) = self.text.take() else {
            return Vec::new();
        };
        let output_index = self.output.len();
        let item_id = self.message_id.clone();
        let part = OutputContent::output_text(text.clone());
        let item = message_item(&item_id, vec![part.clone()], status);
        let out = vec![
            self.event(Event::OutputTextDone {
                item_id: item_id.clone(),
                output_index,
                content_index: 0,
                text,
                logprobs: Vec::new(),
            }),
            self.event(Event::ContentPartDone {
                item_id,
                output_index,
                content_index: 0,
                part,
            }),
            self.event(Event::OutputItemDone {
                output_index,
                item: item.clone(),
            }),
        ];
        self.output.push(item);
        out
    }

    fn calls(&mut self, calls: &[ToolCall]) -> Vec<SseEvent> {
        let mut out = self.close_text("completed");
        for (i, call) in calls.iter().enumerate() {
            let output_index = self.output.len();
            let id = (self.call_id)(i);
            let done = call_item(&id, call, &call.arguments, "completed");
            out.push(self.event(Event::OutputItemAdded {
                output_index,
                item: call_item(&id, call, "", "in_progress"),
            }));
            out.push(self.event(Event::FunctionCallArgumentsDelta {
                item_id: id.clone(),
                output_index,
                delta: call.arguments.clone(),
            }));
            out.push(self.event(Event::FunctionCallArgumentsDone {
                item_id: id,
                output_index,
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            }));
            out.push(self.event(Event::OutputItemDone {
                output_index,
                item: done.clone(),
            }));
            self.output.push(done);
        }
        out
    }

    fn end(&mut self, finish: FinishReason, u: &Usage) -> Vec<SseEvent> {
        let status = status_of(finish);
        let mut out = self.close_text(status);
        let output = std::mem::take(&mut self.output);
        let response = self.shape.response(status, output, Some((finish, u)));
        out.push(self.event(if status == "completed" {
            Event::Completed { response }
        } else {
            Event::Incomplete { response }
        }));
        out
    }
}
