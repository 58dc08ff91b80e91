//! OpenAI completion answers, whole or streamed, with one choice per generation: `n` copies of
//! a prompt, a list of prompts, or both (prompt-major, as OpenAI orders them).

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::generate::{self, Collected, Live};
use super::{ApiError, logprobs, openai_stream};
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
pub(super) fn total(usages: &[Usage], per_prompt: usize) -> Usage {
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

pub(super) fn finish_reason(finish: Option<FinishReason>) -> Option<String> {
    finish.map(|f| f.as_str().to_owned())
}

/// A call in OpenAI's form (`index` for streamed deltas).
pub(super) fn wire_call(call: &ToolCall, index: Option<usize>) -> wire::ToolCall {
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

pub(super) fn chat_logprobs(lps: &[TokenLogprob]) -> wire::ChatLogprobs {
    wire::ChatLogprobs {
        content: logprobs::entries(lps),
        refusal: None,
    }
}

pub(super) fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The fields every answer and chunk of one request share.
pub(super) struct Head {
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

    pub(super) fn chunk(
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

    pub(super) fn text(
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
    let events = openai_stream::events(lives, per_prompt, answer, head);
    Ok((header, events).into_response())
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
