//! A generation inside the engine: admission (templating, tokenizing, the context check) and
//! the per-request state the decode loop advances.

use std::time::Instant;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc as tmpsc;

use super::load::{EngineConfig, RequestLimits};
use super::stop::TextStream;
use super::template::{ChatFormat, render};
use super::{Copy, DEFAULT_MAX_TOKENS, EngineError, Event, Generation, Sampler};

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

/// Templating, tokenizing, the context check and the server's limits happen before the
/// request queues, so a request that cannot fit is refused at once (the client gets a 400,
/// not a stream). Sends `Accepted` or `Error` on each copy's channel; returns the copies that
/// were accepted, in order. `eog`: the model's end-of-generation tokens (banned for
/// `ignore_eos`).
pub(super) fn admit(
    model: &LlamaModel,
    template: &ChatFormat,
    config: &EngineConfig,
    job: Generation,
    eog: &[LlamaToken],
) -> Vec<Job> {
    let Generation {
        prompt,
        copies,
        enqueued,
    } = job;
    let tokens = match prompt_tokens(model, template, prompt) {
        Ok(tokens) => tokens,
        Err(e) => {
            for copy in copies {
                let _ = copy.events.send(Event::Error(e.clone()));
            }
            return Vec::new();
        }
    };
    copies
        .into_iter()
        .filter_map(|Copy { params, events }| {
            let job = one(model, config, tokens.clone(), params, eog);
            match job {
                Ok(job) => {
                    let prompt_tokens = tokens.len() as u32;
                    let _ = events.send(Event::Accepted { prompt_tokens });
                    Some(job.started(events, enqueued))
                }
                Err(e) => {
                    let _ = events.send(Event::Error(e));
                    None
                }
            }
        })
        .collect()
}

/// What a job needs besides its channel and times.
struct Ready {
    tokens: Vec<LlamaToken>,
    max_tokens: u32,
    sampler: Sampler,
    logprobs: Option<u32>,
    preserved: Vec<LlamaToken>,
    text: TextStream,
}

impl Ready {
    fn started(self, events: tmpsc::UnboundedSender<Event>, enqueued: Instant) -> Job {
        Job {
            id: 0,
            twin_of: None,
            tokens: self.tokens,
            fed: 0,
            max_tokens: self.max_tokens,
            sampler: self.sampler,
            logprobs: self.logprobs,
            preserved: self.preserved,
            text: self.text,
            next: None,
            generated: 0,
            cached: 0,
            events,
            enqueued,
            assigned: None,
            first_token: None,
            last_token: None,
        }
    }
}

/// One copy's checks and sampler.
fn one(
    model: &LlamaModel,
    config: &EngineConfig,
    tokens: Vec<LlamaToken>,
    params: super::SamplingParams,
    eog: &[LlamaToken],
) -> Result<Ready, EngineError> {
    let vocab = model.vocab();
    let prompt_tokens = tokens.len() as u32;
    within_limits(&config.limits, prompt_tokens, params.max_tokens)?;
    let context = config.ctx;
    let room = context.saturating_sub(prompt_tokens);
    let default = DEFAULT_MAX_TOKENS.min(config.limits.max_tokens.unwrap_or(u32::MAX));
    let max_tokens = match params.max_tokens {
        Some(n) if params.fit_max_tokens => n.min(room),
        Some(n) => n,
        None => default.min(room),
    };
    if tokens.is_empty() || prompt_tokens.saturating_add(max_tokens.max(1)) > context {
        return Err(EngineError::ContextOverflow {
            prompt_tokens,
            max_tokens: max_tokens.max(1),
            context,
        });
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
                return Err(EngineError::Invalid(format!(
                    "llama.cpp could not build the grammar for this output format ({e}); \
                     the usual cause is too many repetitions (maxLength, maxItems) in nested \
                     rules for its limit of 2000"
                )));
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
    Ok(Ready {
        tokens,
        max_tokens,
        sampler,
        logprobs: params.logprobs,
        preserved,
        text: TextStream::new(params.stop),
    })
}
