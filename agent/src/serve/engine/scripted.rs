//! A scripted engine: every generation answers with the script's tokens, so the HTTP layer's
//! cases (stream framing, several choices, finish reasons, log probabilities, a failure midway)
//! can be tested without a model and exactly. What it honours of a request: `max_tokens` (cut
//! with `length`), `stop` (a token containing a stop string ends the answer before it, with
//! that stop string), `logprobs` (made-up but consistent values) and the context bound.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::backend::Backend;
use super::{
    Embeddings, EngineError, Event, FinishReason, ModelInfo, Prompt, SamplingParams, TokenChoice,
    TokenLogprob, TokenPiece, ToolSyntax, Usage,
};

/// What a scripted engine answers.
#[derive(Debug, Clone, Default)]
pub struct Scripted {
    /// Tokens every prompt counts.
    pub prompt_tokens: u32,
    /// The tokens of every answer, in order; the answer ends after the last (`stop`).
    pub tokens: Vec<String>,
    /// Fail with this error after this many tokens, instead of finishing.
    pub fail_after: Option<(usize, EngineError)>,
    /// Context tokens per slot (the engine's `ctx_per_slot`).
    context: u32,
}

impl Scripted {
    /// Answers `tokens` to prompts of `prompt_tokens` tokens.
    pub fn answering(prompt_tokens: u32, tokens: &[&str]) -> Self {
        Scripted {
            prompt_tokens,
            tokens: tokens.iter().map(|t| (*t).to_owned()).collect(),
            ..Scripted::default()
        }
    }

    /// Fails with `error` after `tokens` tokens.
    pub fn failing_after(mut self, tokens: usize, error: EngineError) -> Self {
        self.fail_after = Some((tokens, error));
        self
    }

    pub(super) fn with_context(mut self, context: u32) -> Self {
        self.context = context;
        self
    }

    /// The facts of a model that has `slots` slots of `ctx_per_slot` tokens, on the CPU.
    pub fn info(slots: u32, ctx_per_slot: u32) -> ModelInfo {
        ModelInfo {
            architecture: "scripted".into(),
            ctx_per_slot,
            ctx_train: ctx_per_slot,
            slots,
            layers_total: 1,
            layers_offloaded: 0,
            device: "cpu".into(),
            gpus: Vec::new(),
            gpu_memory_bytes: Some(0),
            embedding_length: 0,
            parameters: 0,
            size_bytes: 0,
            chat_template: "scripted".into(),
            tool_syntax: ToolSyntax::Generic,
            pinned_prefix_tokens: Vec::new(),
            load_seconds: 0.0,
        }
    }

    /// Sends one generation's events, all at once (the receiver reads them in order).
    fn play(&self, params: &SamplingParams, events: &UnboundedSender<Event>) {
        let send = |e: Event| {
            let _ = events.send(e);
        };
        let limit = params.max_tokens.map_or(usize::MAX, |n| n as usize);
        // As the real engine: the prompt and the tokens asked for must fit a slot.
        if let Some(max_tokens) = params.max_tokens
            && self.prompt_tokens + max_tokens > self.context
        {
            send(Event::Error(EngineError::ContextOverflow {
                prompt_tokens: self.prompt_tokens,
                max_tokens,
                context: self.context,
            }));
            return;
        }
        send(Event::Accepted {
            prompt_tokens: self.prompt_tokens,
        });
        let mut finish = FinishReason::Stop;
        let mut generated = 0u32;
        for (i, token) in self.tokens.iter().enumerate() {
            if let Some((after, error)) = &self.fail_after
                && i == *after
            {
                send(Event::Error(error.clone()));
                return;
            }
            if i == limit {
                finish = FinishReason::Length;
                break;
            }
            if let Some(s) = params.stop.iter().position(|s| token.contains(s.as_str())) {
                finish = FinishReason::StopSequence(u16::try_from(s).unwrap_or(u16::MAX));
                break;
            }
            if let Some(top) = params.logprobs {
                send(Event::Logprob(Box::new(logprob(i, token, top))));
            }
            send(Event::Token(token.clone()));
            generated += 1;
        }
        send(Event::Done {
            finish,
            usage: Usage {
                prompt_tokens: self.prompt_tokens,
                completion_tokens: generated,
                ttft: Duration::ZERO,
                ..Usage::default()
            },
        });
    }
}

/// Token `i` of the script at log probability -(i+1)/10, and `top` alternatives below it.
fn logprob(i: usize, token: &str, top: u32) -> TokenLogprob {
    let chosen = TokenChoice {
        id: i32::try_from(i).unwrap_or(i32::MAX),
        bytes: token.as_bytes().to_vec(),
        logprob: -((i + 1) as f32) / 10.0,
    };
    let alternatives = (0..top).map(|k| {
        if k == 0 {
            chosen.clone()
        } else {
            TokenChoice {
                id: -i32::try_from(k).unwrap_or(i32::MAX),
                bytes: format!("alt{k}").into_bytes(),
                logprob: chosen.logprob - k as f32,
            }
        }
    });
    TokenLogprob {
        top: alternatives.collect(),
        chosen,
    }
}

impl Backend for Scripted {
    fn generate_copies(
        &self,
        _prompt: Prompt,
        params: Vec<SamplingParams>,
    ) -> Result<Vec<UnboundedReceiver<Event>>, EngineError> {
        Ok(params
            .iter()
            .map(|p| {
                let (events, rx) = unbounded_channel();
                self.play(p, &events);
                rx
            })
            .collect())
    }

    fn embed(&self, _inputs: Vec<String>) -> BoxFuture<'static, Result<Embeddings, EngineError>> {
        futures_util::future::ready(Err(EngineError::Invalid(
            "the scripted engine has no embeddings".into(),
        )))
        .boxed()
    }

    /// Words as tokens, numbered in order.
    fn tokenize(
        &self,
        text: String,
        _add_special: bool,
    ) -> BoxFuture<'static, Result<Vec<TokenPiece>, EngineError>> {
        let pieces = text
            .split_whitespace()
            .enumerate()
            .map(|(id, piece)| TokenPiece {
                id: i32::try_from(id).unwrap_or(i32::MAX),
                piece: piece.to_owned(),
            })
            .collect();
        futures_util::future::ready(Ok(pieces)).boxed()
    }

    fn count_tokens(&self, _prompt: Prompt) -> BoxFuture<'static, Result<u32, EngineError>> {
        futures_util::future::ready(Ok(self.prompt_tokens)).boxed()
    }

    /// The script's tokens by position.
    fn detokenize(&self, ids: Vec<i32>) -> BoxFuture<'static, Result<String, EngineError>> {
        let text = ids
            .iter()
            .map(|&id| {
                usize::try_from(id)
                    .ok()
                    .and_then(|i| self.tokens.get(i).cloned())
                    .ok_or_else(|| {
                        EngineError::Invalid(format!("token id {id}: not in the script"))
                    })
            })
            .collect();
        futures_util::future::ready(text).boxed()
    }
}
