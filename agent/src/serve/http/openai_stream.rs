//! OpenAI completion answers as server-sent events: the choices' steps as they come, each
//! chunk naming its choice (see `openai_answer.rs` for the whole answer and what both share).

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::generate::{Live, Step};
use super::logprobs;
use super::openai_answer::{
    Answer, Head, Kind, chat_logprobs, finish_reason, index, total, wire_call, wire_usage,
};
use crate::serve::engine::{FinishReason, TokenLogprob, ToolCall, Usage};
use crate::wire::openai as wire;

/// The SSE body of an answer.
pub(super) fn events(
    lives: Vec<Live>,
    per_prompt: usize,
    answer: Answer,
    head: Head,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = Stream::new(lives, per_prompt, answer, head);
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let events = s.advance().await?;
        Some((futures_util::stream::iter(events), s))
    })
    .flatten()
    .map(Ok::<_, Infallible>);
    Sse::new(events)
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
