//! OpenAI completion answers, whole or streamed, with one choice per generation: `n` copies of
//! a prompt, a list of prompts, or both (prompt-major, as OpenAI orders them).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};

use super::generate::{self, Live, Step};
use super::tool_wire;
use super::{ApiError, logprobs};
use crate::serve::engine::{FinishReason, TokenLogprob, ToolCall, Usage};
use crate::serve::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Chat,
    Text,
}

/// The generations behind one answer, in choice order.
pub(crate) struct Choices {
    pub lives: Vec<Live>,
    /// How many choices share each prompt (`n`): the prompt counts once in `usage`.
    pub per_prompt: usize,
}

/// What the answer needs besides its generations.
pub(crate) struct Answer {
    pub model: String,
    pub kind: Kind,
    pub stream: bool,
    pub include_usage: bool,
    pub logprobs: bool,
}

pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

/// The usage of all choices: completions add up, a prompt counts once however many choices
/// it has (it was computed once: the copies share its KV cache).
fn total(usages: &[Usage], per_prompt: usize) -> Usage {
    usages
        .iter()
        .enumerate()
        .map(|(i, u)| {
            if i % per_prompt.max(1) == 0 {
                *u
            } else {
                Usage {
                    prompt_tokens: 0,
                    cached_tokens: 0,
                    ..*u
                }
            }
        })
        .reduce(Usage::plus)
        .unwrap_or_default()
}

fn choice(
    kind: Kind,
    index: usize,
    text: &str,
    finish: Option<FinishReason>,
    first: bool,
    stream: bool,
    logprobs: Option<Value>,
) -> Value {
    let finish = finish.map(FinishReason::as_str);
    let logprobs = logprobs.unwrap_or(Value::Null);
    match (kind, stream) {
        (Kind::Chat, false) => json!({"index": index, "finish_reason": finish,
            "logprobs": logprobs, "message": {"role": "assistant", "content": text}}),
        (Kind::Chat, true) => {
            let delta = if first {
                json!({"role": "assistant", "content": text})
            } else if finish.is_some() {
                json!({})
            } else {
                json!({"content": text})
            };
            json!({"index": index, "finish_reason": finish, "logprobs": logprobs, "delta": delta})
        }
        (Kind::Text, _) => {
            json!({"index": index, "finish_reason": finish, "logprobs": logprobs, "text": text})
        }
    }
}

/// Chat: one entry per token; legacy completions: parallel arrays with text offsets.
fn render_logprobs(kind: Kind, lps: &[TokenLogprob], offset: usize) -> Value {
    match kind {
        Kind::Chat => json!({"content": logprobs::entries(lps), "refusal": null}),
        Kind::Text => logprobs::legacy(lps, offset),
    }
}

pub(crate) async fn respond(
    state: &AppState,
    choices: Choices,
    answer: Answer,
) -> Result<Response, ApiError> {
    let Choices { lives, per_prompt } = choices;
    let Some(first) = lives.first() else {
        return Err(ApiError::internal(super::Flavor::OpenAi, "no choices"));
    };
    let (prefix, object) = match (answer.kind, answer.stream) {
        (Kind::Chat, false) => ("chatcmpl", "chat.completion"),
        (Kind::Chat, true) => ("chatcmpl", "chat.completion.chunk"),
        (Kind::Text, _) => ("cmpl", "text_completion"),
    };
    let id = format!("{prefix}-{}", first.log.id());
    let template = state
        .engine
        .get()
        .map(|e| e.info().chat_template.clone())
        .unwrap_or_default();
    let header = [("x-llamafleet-chat-template", template)];
    let head = json!({"id": id, "object": object, "created": generate::unix_now(),
        "model": answer.model});
    if !answer.stream {
        let done = futures_util::future::try_join_all(lives.into_iter().map(Live::collect)).await?;
        let kind = answer.kind;
        let out: Vec<Value> = done
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let logprobs = answer
                    .logprobs
                    .then(|| render_logprobs(kind, &d.logprobs, 0));
                let mut choice = choice(kind, i, &d.text, Some(d.finish), false, false, logprobs);
                if !d.tool_calls.is_empty() {
                    let calls: Vec<Value> = d
                        .tool_calls
                        .iter()
                        .map(|c| tool_wire::openai_call(c, None))
                        .collect();
                    choice["message"]["tool_calls"] = calls.into();
                    if d.text.is_empty() {
                        choice["message"]["content"] = Value::Null;
                    }
                }
                choice
            })
            .collect();
        let usages: Vec<Usage> = done.iter().map(|d| d.usage).collect();
        let mut body = head;
        body["choices"] = out.into();
        body["usage"] = usage_json(&total(&usages, per_prompt));
        return Ok((header, Json(body)).into_response());
    }
    for live in &lives {
        live.log.streaming();
    }
    let stream = Stream::new(lives, per_prompt, answer, head);
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let events = s.advance().await?;
        Some((futures_util::stream::iter(events), s))
    })
    .flatten()
    .map(Ok::<_, Infallible>);
    Ok((header, Sse::new(events)).into_response())
}

/// The SSE answer: the choices' steps as they come, each chunk naming its choice; the usage
/// and `[DONE]` after the last choice ends; an error ends the whole answer (the other
/// generations are dropped, which frees their slots).
struct Stream {
    steps: futures_util::stream::SelectAll<BoxStream<'static, (usize, Step)>>,
    /// Per choice: no chunk sent yet.
    first: Vec<bool>,
    /// Per choice: text bytes sent (legacy logprobs' offsets).
    offset: Vec<usize>,
    usages: Vec<Option<Usage>>,
    per_prompt: usize,
    answer: Answer,
    head: Value,
    ended: bool,
}

impl Stream {
    fn new(lives: Vec<Live>, per_prompt: usize, answer: Answer, head: Value) -> Self {
        let n = lives.len();
        let steps =
            futures_util::stream::select_all(lives.into_iter().enumerate().map(|(i, live)| {
                futures_util::stream::unfold(live, move |mut live| async move {
                    let step = live.next().await?;
                    Some(((i, step), live))
                })
                .boxed()
            }));
        Stream {
            steps,
            first: vec![true; n],
            offset: vec![0; n],
            usages: vec![None; n],
            per_prompt,
            answer,
            head,
            ended: false,
        }
    }

    fn frame(&self, choices: Value, usage: Option<Value>) -> SseEvent {
        let mut v = self.head.clone();
        v["choices"] = choices;
        if let Some(u) = usage {
            v["usage"] = u;
        }
        SseEvent::default().data(v.to_string())
    }

    /// The events of the next step; `None` once the answer is over.
    async fn advance(&mut self) -> Option<Vec<SseEvent>> {
        if self.ended {
            return None;
        }
        let Some((i, step)) = self.steps.next().await else {
            // Every generation ended without `Done`: the engine went away.
            self.ended = true;
            return None;
        };
        let kind = self.answer.kind;
        let events = match step {
            Step::Text(t, _) if t.is_empty() && !self.first[i] => vec![],
            Step::Text(t, lps) => {
                let logprobs = self
                    .answer
                    .logprobs
                    .then(|| render_logprobs(kind, &lps, self.offset[i]));
                self.offset[i] += t.len();
                let choice = choice(kind, i, &t, None, self.first[i], true, logprobs);
                vec![self.frame(json!([choice]), None)]
            }
            Step::ToolCalls(calls) => {
                vec![self.frame(json!([calls_delta(i, &calls, self.first[i])]), None)]
            }
            Step::Done(finish, usage) => {
                self.usages[i] = Some(usage);
                let choice = json!([choice(kind, i, "", Some(finish), false, true, None)]);
                if self.usages.iter().any(Option::is_none) {
                    vec![self.frame(choice, None)]
                } else {
                    self.ended = true;
                    let usages: Vec<Usage> = self.usages.iter().flatten().copied().collect();
                    let usage = usage_json(&total(&usages, self.per_prompt));
                    let mut out = Vec::new();
                    if self.answer.include_usage {
                        out.push(self.frame(choice, None));
                        out.push(self.frame(json!([]), Some(usage)));
                    } else {
                        // Not asked for, but harmless to clients and handy with curl.
                        out.push(self.frame(choice, Some(usage)));
                    }
                    out.push(SseEvent::default().data("[DONE]"));
                    out
                }
            }
            Step::Failed(e) => {
                self.ended = true;
                vec![SseEvent::default().data(e.body().to_string())]
            }
        };
        if !events.is_empty() {
            self.first[i] = false;
        }
        Some(events)
    }
}

/// The chunk that carries an answer's calls, whole (the official client concatenates the
/// `function.arguments` of deltas with the same `index`; one delta per call is the simplest
/// case of that).
fn calls_delta(index: usize, calls: &[ToolCall], first: bool) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| tool_wire::openai_call(c, Some(i)))
        .collect();
    let mut delta = json!({"tool_calls": calls});
    if first {
        delta["role"] = json!("assistant");
        delta["content"] = Value::Null;
    }
    json!({"index": index, "finish_reason": null, "logprobs": null, "delta": delta})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u32, cached: u32, completion: u32) -> Usage {
        Usage {
            prompt_tokens: prompt,
            cached_tokens: cached,
            completion_tokens: completion,
            ..Usage::default()
        }
    }

    #[test]
    fn copies_of_a_prompt_count_it_once_and_a_list_counts_each() {
        let two_copies = [usage(10, 0, 3), usage(10, 9, 4)];
        assert_eq!(total(&two_copies, 2), usage(10, 0, 7));
        assert_eq!(total(&two_copies, 1), usage(20, 9, 7));
        let two_prompts_twice = [
            usage(10, 0, 1),
            usage(10, 9, 1),
            usage(5, 0, 1),
            usage(5, 4, 1),
        ];
        assert_eq!(total(&two_prompts_twice, 2), usage(15, 0, 4));
    }
}
