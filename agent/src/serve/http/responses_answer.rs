//! The Responses API's answer: a `response` object whose `output` holds a `message` item
//! (`output_text`) and `function_call` items, or the event stream the official client
//! accumulates (`response.created`, `response.output_item.added`, `...delta`, `...done`,
//! `response.completed` or `response.incomplete`, each with a `sequence_number`).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::ApiError;
use super::generate::{Live, Step, unix_now};
use crate::serve::engine::{FinishReason, ToolCall, Usage};

fn usage(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(id: &str, call: &ToolCall, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call.id, "name": call.name,
        "arguments": arguments, "status": status})
}

/// The response object: `echo` (the request's settings) with the answer's state.
struct Shape {
    id: String,
    created_at: u64,
    echo: Value,
}

impl Shape {
    fn response(
        &self,
        status: &str,
        output: Vec<Value>,
        finish: Option<(FinishReason, &Usage)>,
    ) -> Value {
        let mut v = self.echo.clone();
        v["id"] = json!(self.id);
        v["object"] = json!("response");
        v["created_at"] = json!(self.created_at);
        v["status"] = json!(status);
        v["error"] = Value::Null;
        v["output"] = Value::Array(output);
        v["incomplete_details"] = match finish {
            Some((FinishReason::Length, _)) => json!({"reason": "max_output_tokens"}),
            _ => Value::Null,
        };
        v["usage"] = finish.map_or(Value::Null, |(_, u)| usage(u));
        v
    }
}

fn status_of(finish: FinishReason) -> &'static str {
    if finish == FinishReason::Length {
        "incomplete"
    } else {
        "completed"
    }
}

/// The answer to `POST /v1/responses`.
pub(crate) async fn respond(live: Live, echo: Value, stream: bool) -> Result<Response, ApiError> {
    let request_id = live.log.id().to_owned();
    let shape = Shape {
        id: format!("resp_{request_id}"),
        created_at: unix_now(),
        echo,
    };
    let message_id = format!("msg_{request_id}");
    let call_id = move |i: usize| format!("fc_{request_id}_{i}");
    if !stream {
        let done = live.collect().await?;
        let status = status_of(done.finish);
        let mut output = Vec::new();
        if !done.text.is_empty() || done.tool_calls.is_empty() {
            output.push(message_item(&message_id, &done.text, status));
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
        events.event(
            "response.created",
            |s| json!({"response": s.shape.response("in_progress", vec![], None)}),
        ),
        events.event(
            "response.in_progress",
            |s| json!({"response": s.shape.response("in_progress", vec![], None)}),
        ),
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
                Step::Failed(e) => {
                    let error = e.body()["error"].clone();
                    let frame = events.event("error", |_| {
                        json!({"code": error["code"], "message": error["message"], "param": null})
                    });
                    (vec![frame], true)
                }
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

/// The state of a streamed response: the output items so far and the open message's text.
struct Events {
    shape: Shape,
    message_id: String,
    call_id: Box<dyn Fn(usize) -> String + Send>,
    sequence: u64,
    /// The message item's text while it is open.
    text: Option<String>,
    /// Finished items.
    output: Vec<Value>,
}

impl Events {
    /// One event: `data` gets its `type` and `sequence_number`.
    fn event(&mut self, kind: &str, data: impl FnOnce(&Self) -> Value) -> SseEvent {
        let mut v = data(self);
        v["type"] = json!(kind);
        v["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        SseEvent::default().event(kind).data(v.to_string())
    }

    fn text(&mut self, delta: &str) -> Vec<SseEvent> {
        if delta.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let index = self.output.len();
        if self.text.is_none() {
            self.text = Some(String::new());
            let item = json!({"type": "message", "id": self.message_id, "status": "in_progress",
                "role": "assistant", "content": []});
            out.push(self.event(
                "response.output_item.added",
                |_| json!({"output_index": index, "item": item}),
            ));
            out.push(self.event("response.content_part.added", |s| {
                json!({"item_id": s.message_id, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": []}})
            }));
        }
        if let Some(text) = &mut self.text {
            text.push_str(delta);
        }
        out.push(self.event("response.output_text.delta", |s| {
            json!({"item_id": s.message_id, "output_index": index, "content_index": 0,
                "delta": delta, "logprobs": []})
        }));
        out
    }

    /// Closes the message item, if one is open.
    fn close_text(&mut self, status: &str) -> Vec<SseEvent> {
        let Some(text) = self.text.take() else {
            return Vec::new();
        };
        let index = self.output.len();
        let part = json!({"type": "output_text", "text": text, "annotations": []});
        let item = message_item(&self.message_id, &text, status);
        let out = vec![
            self.event("response.output_text.done", |s| {
                json!({"item_id": s.message_id, "output_index": index, "content_index": 0,
                    "text": text, "logprobs": []})
            }),
            self.event("response.content_part.done", |s| {
                json!({"item_id": s.message_id, "output_index": index, "content_index": 0,
                    "part": part})
            }),
            self.event(
                "response.output_item.done",
                |_| json!({"output_index": index, "item": item}),
            ),
        ];
        self.output.push(item);
        out
    }

    fn calls(&mut self, calls: &[ToolCall]) -> Vec<SseEvent> {
        let mut out = self.close_text("completed");
        for (i, call) in calls.iter().enumerate() {
            let index = self.output.len();
            let id = (self.call_id)(i);
            let added = call_item(&id, call, "", "in_progress");
            let done = call_item(&id, call, &call.arguments, "completed");
            out.push(self.event(
                "response.output_item.added",
                |_| json!({"output_index": index, "item": added}),
            ));
            out.push(self.event(
                "response.function_call_arguments.delta",
                |_| json!({"item_id": id, "output_index": index, "delta": call.arguments}),
            ));
            out.push(self.event("response.function_call_arguments.done", |_| {
                json!({"item_id": id, "output_index": index, "name": call.name,
                    "arguments": call.arguments})
            }));
            out.push(self.event(
                "response.output_item.done",
                |_| json!({"output_index": index, "item": done}),
            ));
            self.output.push(done);
        }
        out
    }

    fn end(&mut self, finish: FinishReason, u: &Usage) -> Vec<SseEvent> {
        let status = status_of(finish);
        let mut out = self.close_text(status);
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let output = std::mem::take(&mut self.output);
        out.push(self.event(
            kind,
            |s| json!({"response": s.shape.response(status, output, Some((finish, u)))}),
        ));
        out
    }
}
