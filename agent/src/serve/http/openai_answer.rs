//! OpenAI completion answers, whole or streamed, with one choice per generation: `n` copies of
//! a prompt, a list of prompts, or both (prompt-major, as OpenAI orders them).

use std::convert::Infallible;

use axum::Json;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::generate::{self, Collected, Live, Step};
use super::{ApiError, logprobs};
use crate::serve::engine::{FinishReason, TokenLogprob, ToolCall, Usage};
use crate::serve::state::AppState;
use crate::wire::openai as wire;

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

/// OpenAI's usage object of the engine's counts.
pub(crate) fn wire_usage(u: &Usage) -> wire::Usage {
    let (prompt, completion) = (u64::from(u.prompt_tokens), u64::from(u.completion_tokens));
    wire::Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: Some(wire::PromptTokensDetails {
            cached_tokens: u64::from(u.cached_tokens),
        }),
    }
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

fn finish_reason(finish: Option<FinishReason>) -> Option<String> {
    finish.map(|f| f.as_str().to_owned())
}

/// A call in OpenAI's form (`index` for streamed deltas).
fn wire_call(call: &ToolCall, index: Option<usize>) -> wire::ToolCall {
    wire::ToolCall {
        index: index.and_then(|i| u32::try_from(i).ok()),
        id: call.id.clone(),
        kind: "function".to_owned(),
        function: wire::FunctionCall {
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        },
    }
}

fn chat_logprobs(lps: &[TokenLogprob]) -> wire::ChatLogprobs {
    wire::ChatLogprobs {
        content: logprobs::entries(lps),
        refusal: None,
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The fields every answer and chunk of one request share.
struct Head {
    id: String,
    created: u64,
    model: String,
}

impl Head {
    fn chat(&self, choices: Vec<wire::ChatChoice>, usage: wire::Usage) -> wire::ChatCompletion {
        wire::ChatCompletion {
            id: self.id.clone(),
            object: wire::CHAT_COMPLETION.to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: Some(usage),
        }
    }

    fn chunk(
        &self,
        choices: Vec<wire::ChunkChoice>,
        usage: Option<wire::Usage>,
    ) -> wire::ChatCompletionChunk {
        wire::ChatCompletionChunk {
            id: self.id.clone(),
            object: wire::CHAT_COMPLETION_CHUNK.to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }

    fn text(
        &self,
        choices: Vec<wire::TextChoice>,
        usage: Option<wire::Usage>,
    ) -> wire::TextCompletion {
        wire::TextCompletion {
            id: self.id.clone(),
            object: wire::TEXT_COMPLETION.to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }
}

/// A whole chat choice.
fn chat_choice(i: usize, d: &Collected, logprobs: bool) -> wire::ChatChoice {
    let calls = (!d.tool_calls.is_empty())
        .then(|| d.tool_calls.iter().map(|c| wire_call(c, None)).collect());
    // Only calls: no text (null), as OpenAI answers.
    let content = (calls.is_none() || !d.text.is_empty()).then(|| d.text.clone());
    wire::ChatChoice {
        index: index(i),
        finish_reason: finish_reason(Some(d.finish)),
        logprobs: logprobs.then(|| chat_logprobs(&d.logprobs)),
        message: wire::AssistantMessage {
            role: "assistant".to_owned(),
            content,
            tool_calls: calls,
        },
    }
}

/// A whole text choice.
fn text_choice(i: usize, d: &Collected, logprobs: bool) -> wire::TextChoice {
    wire::TextChoice {
        index: index(i),
        finish_reason: finish_reason(Some(d.finish)),
        logprobs: logprobs.then(|| logprobs::legacy(&d.logprobs, 0)),
        text: d.text.clone(),
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
    let prefix = match answer.kind {
        Kind::Chat => "chatcmpl",
        Kind::Text => "cmpl",
    };
    let head = Head {
        id: format!("{prefix}-{}", first.log.id()),
        created: generate::unix_now(),
        model: answer.model.clone(),
    };
    let template = state
        .engine
        .get()
        .map(|e| e.info().chat_template.clone())
        .unwrap_or_default();
    let header = [("x-llamafleet-chat-template", template)];
    if !answer.stream {
        let done = futures_util::future::try_join_all(lives.into_iter().map(Live::collect)).await?;
        let usages: Vec<Usage> = done.iter().map(|d| d.usage).collect();
        let usage = wire_usage(&total(&usages, per_prompt));
        let choices = done.iter().enumerate();
        let body = match answer.kind {
            Kind::Chat => Json(
                head.chat(
                    choices
                        .map(|(i, d)| chat_choice(i, d, answer.logprobs))
                        .collect(),
                    usage,
                ),
            )
            .into_response(),
            Kind::Text => Json(
                head.text(
                    choices
                        .map(|(i, d)| text_choice(i, d, answer.logprobs))
                        .collect(),
                    Some(usage),
                ),
            )
            .into_response(),
        };
        return Ok((header, body).into_response());
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

/// What one chunk adds to one choice, in the answer's kind.
enum Piece {
    Chat(wire::ChunkChoice),
    Text(wire::TextChoice),
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
    head: Head,
    ended: bool,
}

impl Stream {
    fn new(lives: Vec<Live>, per_prompt: usize, answer: Answer, head: Head) -> Self {
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

    /// Choice `i` advanced by `text` (its tokens' `lps` when asked for), or ended by `finish`.
    fn piece(
        &self,
        i: usize,
        text: &str,
        finish: Option<FinishReason>,
        lps: &[TokenLogprob],
    ) -> Piece {
        let asked = self.answer.logprobs && finish.is_none();
        match self.answer.kind {
            Kind::Chat => {
                let delta = if self.first[i] {
                    wire::Delta {
                        role: Some("assistant".to_owned()),
                        content: Some(Some(text.to_owned())),
                        tool_calls: None,
                    }
                } else if finish.is_some() {
                    wire::Delta::default()
                } else {
                    wire::Delta {
                        content: Some(Some(text.to_owned())),
                        ..wire::Delta::default()
                    }
                };
                Piece::Chat(wire::ChunkChoice {
                    index: index(i),
                    finish_reason: finish_reason(finish),
                    logprobs: asked.then(|| chat_logprobs(lps)),
                    delta,
                })
            }
            Kind::Text => Piece::Text(wire::TextChoice {
                index: index(i),
                finish_reason: finish_reason(finish),
                logprobs: asked.then(|| logprobs::legacy(lps, self.offset[i])),
                text: text.to_owned(),
            }),
        }
    }

    /// One chunk: the piece's own kind, so a piece is never dropped; without a piece (the
    /// usage chunk), the answer's kind with no choices.
    fn frame(&self, piece: Option<Piece>, usage: Option<wire::Usage>) -> SseEvent {
        let data = match (piece, self.answer.kind) {
            (Some(Piece::Chat(c)), _) => serde_json::to_string(&self.head.chunk(vec![c], usage)),
            (Some(Piece::Text(c)), _) => serde_json::to_string(&self.head.text(vec![c], usage)),
            (None, Kind::Chat) => serde_json::to_string(&self.head.chunk(vec![], usage)),
            (None, Kind::Text) => serde_json::to_string(&self.head.text(vec![], usage)),
        };
        SseEvent::default().data(data.unwrap_or_default())
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
        let events = match step {
            Step::Text(t, _) if t.is_empty() && !self.first[i] => vec![],
            Step::Text(t, lps) => {
                let piece = self.piece(i, &t, None, &lps);
                self.offset[i] += t.len();
                vec![self.frame(Some(piece), None)]
            }
            // Chat only: text completions take no tools.
            Step::ToolCalls(calls) => {
                let piece = Piece::Chat(calls_delta(i, &calls, self.first[i]));
                vec![self.frame(Some(piece), None)]
            }
            Step::Done(finish, usage) => {
                self.usages[i] = Some(usage);
                let last = self.piece(i, "", Some(finish), &[]);
                if self.usages.iter().any(Option::is_none) {
                    vec![self.frame(Some(last), None)]
                } else {
                    self.ended = true;
                    let usages: Vec<Usage> = self.usages.iter().flatten().copied().collect();
                    let usage = wire_usage(&total(&usages, self.per_prompt));
                    let mut out = Vec::new();
                    if self.answer.include_usage {
                        out.push(self.frame(Some(last), None));
                        out.push(self.frame(None, Some(usage)));
                    } else {
                        // Not asked for, but harmless to clients and handy with curl.
                        out.push(self.frame(Some(last), Some(usage)));
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
fn calls_delta(i: usize, calls: &[ToolCall], first: bool) -> wire::ChunkChoice {
    let calls = calls
        .iter()
        .enumerate()
        .map(|(i, c)| wire_call(c, Some(i)))
        .collect();
    wire::ChunkChoice {
        index: index(i),
        finish_reason: None,
        logprobs: None,
        delta: wire::Delta {
            role: first.then(|| "assistant".to_owned()),
            content: first.then_some(None),
            tool_calls: Some(calls),
        },
    }
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
