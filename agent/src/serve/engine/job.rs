//! A generation inside the engine: admission (templating, tokenizing, the context check) and
//! the per-request state the decode loop advances.

use std::time::Instant;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc as tmpsc;

use super::load::{EngineConfig, RequestLimits, Shared};
use super::stop::TextStream;
use super::template::{ChatFormat, render};
use super::{Copy, DEFAULT_MAX_TOKENS, EngineError, Event, Generation, Sampler, SamplingParams};

pub(super) struct Job {
    /// Unique within the engine (set when queued).
    pub id: u64,
    /// A copy of job `id`'s prompt that waits for that job's prompt to be decoded, then takes
    /// its cache and its first logits (see [`super::Engine::generate_copies`]).
    pub twin_of: Option<u64>,
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

/// Refuses a prompt or a token budget beyond the server's limits, naming the limit.
fn within_limits(
    limits: &RequestLimits,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
) -> Result<(), EngineError> {
    if let Some(limit) = limits.prompt_tokens
        && prompt_tokens > limit
    {
        return Err(EngineError::Invalid(format!(
            "the prompt is {prompt_tokens} tokens; this server accepts at most {limit} \
             (its limit on prompt tokens)"
        )));
    }
    if let (Some(limit), Some(asked)) = (limits.max_tokens, max_tokens)
        && asked > limit
    {
        return Err(EngineError::Invalid(format!(
            "max_tokens: {asked} asked; this server generates at most {limit} tokens per request"
        )));
    }
    Ok(())
}

/// A generation's prompt, tokenized and checked off the engine thread, with the copies that
/// passed the checks.
pub(crate) struct Prepared {
    tokens: Vec<LlamaToken>,
    copies: Vec<Checked>,
    enqueued: Instant,
}

/// One copy that fits the context and the limits.
struct Checked {
    params: SamplingParams,
    events: tmpsc::UnboundedSender<Event>,
    max_tokens: u32,
    preserved: Vec<LlamaToken>,
}

/// Templating, tokenizing, the context check and the server's limits, on the caller's
/// (blocking-pool) thread before the request queues, so a request that cannot fit is refused
/// at once (the client gets a 400, not a stream) and the engine thread only decodes. A copy
/// that fails gets `Error` on its channel; `None` when none is left.
pub(crate) fn prepare(shared: &Shared, job: Generation) -> Option<Prepared> {
    let Generation {
        prompt,
        copies,
        enqueued,
    } = job;
    let model = &shared.model;
    let tokens = match prompt_tokens(model, &shared.template, prompt) {
        Ok(tokens) => tokens,
        Err(e) => {
            for copy in copies {
                let _ = copy.events.send(Event::Error(e.clone()));
            }
            return None;
        }
    };
    let copies: Vec<Checked> = copies
        .into_iter()
        .filter_map(|Copy { params, events }| {
            match check(model, &shared.config, tokens.len() as u32, &params) {
                Ok((max_tokens, preserved)) => Some(Checked {
                    params,
                    events,
                    max_tokens,
                    preserved,
                }),
                Err(e) => {
                    let _ = events.send(Event::Error(e));
                    None
                }
            }
        })
        .collect();
    (!copies.is_empty()).then_some(Prepared {
        tokens,
        copies,
        enqueued,
    })
}

/// On the engine thread (llama.cpp's samplers stay on the thread that uses them): each copy's
/// sampler, then `Accepted`; returns the copies that got one, in order. `eog`: the model's
/// end-of-generation tokens (banned for `ignore_eos`).
pub(super) fn admit(model: &LlamaModel, prepared: Prepared, eog: &[LlamaToken]) -> Vec<Job> {
    let Prepared {
        tokens,
        copies,
        enqueued,
    } = prepared;
    let prompt_tokens = tokens.len() as u32;
    copies
        .into_iter()
        .filter_map(|copy| match sampler(model, &copy.params, eog) {
            Ok(sampler) => {
                let _ = copy.events.send(Event::Accepted { prompt_tokens });
                Some(Job {
                    id: 0,
                    twin_of: None,
                    tokens: tokens.clone(),
                    fed: 0,
                    max_tokens: copy.max_tokens,
                    sampler,
                    logprobs: copy.params.logprobs,
                    preserved: copy.preserved,
                    text: TextStream::new(copy.params.stop),
                    next: None,
                    generated: 0,
                    cached: 0,
                    events: copy.events,
                    enqueued,
                    assigned: None,
                    first_token: None,
                    last_token: None,
                })
            }
            Err(e) => {
                let _ = copy.events.send(Event::Error(e));
                None
            }
        })
        .collect()
}

/// The limits and the context: the generation's token budget and the special tokens whose
/// text is part of the answer.
fn check(
    model: &LlamaModel,
    config: &EngineConfig,
    prompt_tokens: u32,
    params: &SamplingParams,
) -> Result<(u32, Vec<LlamaToken>), EngineError> {
    // A budget that is fitted to the room (Anthropic's required max_tokens) is fitted to the
    // limit as well, not refused.
    let asked = params.max_tokens.filter(|_| !params.fit_max_tokens);
    within_limits(&config.limits, prompt_tokens, asked)?;
    let context = config.ctx;
    let limit = config.limits.max_tokens.unwrap_or(u32::MAX);
    let room = context.saturating_sub(prompt_tokens);
    let default = DEFAULT_MAX_TOKENS.min(limit);
    let max_tokens = match params.max_tokens {
        Some(n) if params.fit_max_tokens => n.min(room).min(limit),
        Some(n) => n,
        None => default.min(room),
    };
    if prompt_tokens == 0 || prompt_tokens.saturating_add(max_tokens.max(1)) > context {
        return Err(EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens: max_tokens.max(1),
            context,
        });
    }
    // A text that is one special token in this vocabulary; others are plain text anyway.
    let vocab = model.vocab();
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
    Ok((max_tokens, preserved))
}

/// A copy's sampler: its parameters, `ignore_eos`, its grammar.
fn sampler(
    model: &LlamaModel,
    params: &SamplingParams,
    eog: &[LlamaToken],
) -> Result<Sampler, EngineError> {
    let mut sampler = Sampler::new(params, model.n_vocab());
    if params.ignore_eos {
        sampler = sampler.banning(eog.to_vec());
    }
    let Some(grammar) = &params.grammar else {
        return Ok(sampler);
    };
    let built = if !params.grammar_trigger_patterns.is_empty() {
        let patterns = &params.grammar_trigger_patterns;
        LlamaSampler::grammar_lazy_patterns(model, grammar, "root", patterns, &[])
    } else if !params.grammar_triggers.is_empty() {
        LlamaSampler::grammar_lazy(model, grammar, "root", &params.grammar_triggers, &[])
    } else {
        LlamaSampler::grammar(model, grammar, "root")
    };
    match built {
        Ok(g) => Ok(sampler.constrained(g)),
        // A null grammar: llama.cpp's parser threw, most often because repetitions times
        // rules exceed its limit of 2000.
        Err(e) => Err(EngineError::Invalid(format!(
            "llama.cpp could not build the grammar for this output format ({e}); the usual \
             cause is too many repetitions (maxLength, maxItems) in nested rules for its limit \
             of 2000"
        ))),
    }
}
