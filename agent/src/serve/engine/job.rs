//! A generation inside the engine: admission (templating, tokenizing, the context check) and
//! the per-request state the decode loop advances.

use std::time::Instant;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc as tmpsc;

use super::stop::TextStream;
use super::template::{ChatFormat, render};
use super::{DEFAULT_MAX_TOKENS, EngineError, Event, Generation, Sampler};

pub(super) struct Job {
    pub tokens: Vec<LlamaToken>,
    pub fed: usize,
    pub max_tokens: u32,
    pub sampler: Sampler,
    /// Alternatives per token when the request wants log probabilities.
    pub logprobs: Option<u32>,
    /// Special tokens whose text is part of the answer.
    pub preserved: Vec<LlamaToken>,
    pub text: TextStream,
    pub next: Option<LlamaToken>,
    pub generated: u32,
    pub cached: u32,
    pub events: tmpsc::UnboundedSender<Event>,
    pub enqueued: Instant,
    pub assigned: Option<Instant>,
    pub first_token: Option<Instant>,
    pub last_token: Option<Instant>,
}

/// The prompt's tokens as the model sees them: templated, with BOS.
pub(super) fn prompt_tokens(
    model: &LlamaModel,
    template: &ChatFormat,
    prompt: super::Prompt,
) -> Result<Vec<LlamaToken>, EngineError> {
    let text = render(model, template, prompt)?;
    let vocab = model.vocab();
    let mut tokens = vocab.tokenize(text.as_bytes(), true, true);
    // A template that writes its own BOS plus the tokenizer's would give two.
    if tokens.len() >= 2 && tokens[0] == tokens[1] && tokens[0] == vocab.bos() {
        tokens.remove(0);
    }
    Ok(tokens)
}

/// Templating, tokenizing and the context check happen before the request queues, so a
/// request that cannot fit is refused at once (the client gets a 400, not a stream).
/// Sends `Accepted` or `Error` on the job's channel. `eog`: the model's end-of-generation
/// tokens (banned for `ignore_eos`).
pub(super) fn admit(
    model: &LlamaModel,
    template: &ChatFormat,
    context: u32,
    job: Generation,
    eog: &[LlamaToken],
) -> Option<Job> {
    let Generation {
        prompt,
        params,
        events,
        enqueued,
    } = job;
    let tokens = match prompt_tokens(model, template, prompt) {
        Ok(tokens) => tokens,
        Err(e) => {
            let _ = events.send(Event::Error(e));
            return None;
        }
    };
    let vocab = model.vocab();
    let prompt_tokens = tokens.len() as u32;
    let room = context.saturating_sub(prompt_tokens);
    let max_tokens = match params.max_tokens {
        Some(n) if params.fit_max_tokens => n.min(room),
        Some(n) => n,
        None => DEFAULT_MAX_TOKENS.min(room),
    };
    if tokens.is_empty() || prompt_tokens.saturating_add(max_tokens.max(1)) > context {
        let _ = events.send(Event::Error(EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens: max_tokens.max(1),
            context,
        }));
        return None;
    }
    let mut sampler = Sampler::new(&params, model.n_vocab());
    if params.ignore_eos {
        sampler = sampler.banning(eog.to_vec());
    }
    if let Some(grammar) = &params.grammar {
        let built = if !params.grammar_trigger_patterns.is_empty() {
            let patterns = &params.grammar_trigger_patterns;
            LlamaSampler::grammar_lazy_patterns(model, grammar, "root", patterns, &[])
        } else if !params.grammar_triggers.is_empty() {
            LlamaSampler::grammar_lazy(model, grammar, "root", &params.grammar_triggers, &[])
        } else {
            LlamaSampler::grammar(model, grammar, "root")
        };
        match built {
            Ok(g) => sampler = sampler.constrained(g),
            Err(e) => {
                // A null grammar: llama.cpp's parser threw, most often because repetitions
                // times rules exceed its limit of 2000.
                let _ = events.send(Event::Error(EngineError::Invalid(format!(
                    "llama.cpp could not build the grammar for this output format ({e}); \
                     the usual cause is too many repetitions (maxLength, maxItems) in nested \
                     rules for its limit of 2000"
                ))));
                return None;
            }
        }
    }
    // A text that is one special token in this vocabulary; others are plain text anyway.
    let preserved = params
        .preserved
        .iter()
        .filter_map(
            |text| match vocab.tokenize(text.as_bytes(), false, true)[..] {
                [token] => Some(token),
                _ => None,
            },
        )
        .collect();
    let _ = events.send(Event::Accepted { prompt_tokens });
    Some(Job {
        tokens,
        fed: 0,
        max_tokens,
        sampler,
        logprobs: params.logprobs,
        preserved,
        text: TextStream::new(params.stop),
        next: None,
        generated: 0,
        cached: 0,
        events,
        enqueued,
        assigned: None,
        first_token: None,
        last_token: None,
    })
}
