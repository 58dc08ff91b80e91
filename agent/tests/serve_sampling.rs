//! The engine's sampler picks, from the real model's logits, exactly the tokens llama.cpp's own
//! sampler chain picks: greedy, and top-k followed by top-p, min-p, temperature and the seeded
//! draw, over a whole generation (the draw's random state advancing in step), for many seeds
//! and settings; with penalties it is llama.cpp's chain itself.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llamafleet_agent::serve::engine::{Sampler, SamplingParams, schema_grammar};
use std::num::NonZeroU32;
use std::sync::OnceLock;

const STEPS: usize = 24;

/// llama.cpp's backend, initialised once per process (a second init is an error).
fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        let mut backend = LlamaBackend::init().unwrap();
        backend.void_logs();
        backend
    })
}

/// The test model, `None` when it is not configured.
fn model() -> Option<LlamaModel> {
    let path = serve_support::model_path()?;
    Some(LlamaModel::load_from_file(backend(), &path, &LlamaModelParams::default()).unwrap())
}

/// A small context on 2 threads.
fn context(model: &LlamaModel) -> LlamaContext<'_> {
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(512))
        .with_n_threads(2)
        .with_n_threads_batch(2);
    model.new_context(backend(), params).unwrap()
}

/// Generates `STEPS` tokens after `prompt`, sampling each step with both samplers (same
/// settings, same seed) from the same logits, and returns both sequences. The reference's
/// token is the one fed back.
fn both(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    prompt: &str,
    params: &SamplingParams,
) -> (Vec<i32>, Vec<i32>) {
    let n_vocab = model.n_vocab();
    let fast = Sampler::new(params, n_vocab);
    let reference = Sampler::llama_chain(params, n_vocab);
    run(model, ctx, prompt, fast, reference)
}

/// Generates with `fast` and `reference` from the same logits (the reference's token fed back).
fn run(
    model: &LlamaModel,
    ctx: &mut LlamaContext<'_>,
    prompt: &str,
    mut fast: Sampler,
    mut reference: Sampler,
) -> (Vec<i32>, Vec<i32>) {
    ctx.clear_kv_cache();
    let tokens = model.vocab().tokenize(prompt.as_bytes(), true, false);
    let mut batch = LlamaBatch::new(512, 1);
    for (i, t) in tokens.iter().enumerate() {
        batch
            .add(*t, i as i32, &[0], i + 1 == tokens.len())
            .unwrap();
    }
    ctx.decode(&mut batch).unwrap();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let mut idx = batch.n_tokens() - 1;
    for step in 0..STEPS {
        let a = fast.sample(ctx, idx).expect("a token");
        let b = reference.sample(ctx, idx).expect("a token");
        got.push(a.0);
        want.push(b.0);
        batch.clear();
        batch
            .add(b, (tokens.len() + step) as i32, &[0], true)
            .unwrap();
        ctx.decode(&mut batch).unwrap();
        idx = 0;
    }
    (got, want)
}

#[test]
fn the_fast_sampler_picks_what_llama_cpps_chain_picks() {
    let Some(model) = model() else {
        return;
    };
    let mut ctx = context(&model);

    let base = SamplingParams::default();
    let mut settings = vec![
        SamplingParams {
            temperature: 0.0,
            ..base.clone()
        },
        SamplingParams {
            top_k: 1,
            ..base.clone()
        },
        SamplingParams {
            temperature: 1.5,
            top_k: 200,
            top_p: 1.0,
            min_p: 0.0,
            ..base.clone()
        },
        SamplingParams {
            repeat_penalty: 1.3,
            ..base.clone()
        },
    ];
    settings.extend((0..12).map(|seed| SamplingParams {
        seed: Some(seed),
        ..base.clone()
    }));
    let mut differing_runs = 0;
    for (n, mut p) in settings.into_iter().enumerate() {
        p.seed = p.seed.or(Some(1000 + n as u32));
        let prompt = [
            "Once upon a time",
            "The capital of France is",
            "def main():",
        ][n % 3];
        let (got, want) = both(&model, &mut ctx, prompt, &p);
        assert_eq!(got, want, "settings {p:?}, prompt {prompt:?}");
        if want.windows(2).any(|w| w[0] != w[1]) {
            differing_runs += 1;
        }
    }
    // The comparison means something: the draws actually vary.
    assert!(
        differing_runs > 10,
        "only {differing_runs} runs produced varied tokens"
    );
}

#[test]
fn constrained_greedy_picks_what_llama_cpps_chain_picks_with_the_grammar_first() {
    let Some(model) = model() else {
        return;
    };
    let mut ctx = context(&model);
    // Enums, bounded integers and short strings: the model's first choice is refused often,
    // so both the window of best tokens and the whole-vocabulary mask are exercised.
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "colour": {"enum": ["red", "green", "blue"]},
            "age": {"type": "integer", "minimum": 3, "maximum": 97},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3}
        },
        "required": ["colour", "age", "tags"],
        "additionalProperties": false
    });
    let grammar = schema_grammar(&schema).unwrap();
    let n_vocab = model.n_vocab();
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    for prompt in ["Once upon a time", "A person:", "{\"colour\": \"purple\""] {
        let fast = Sampler::new(&greedy, n_vocab)
            .constrained(LlamaSampler::grammar(&model, &grammar, "root").unwrap());
        let reference = Sampler::llama_chain_with_grammar(
            &greedy,
            n_vocab,
            LlamaSampler::grammar(&model, &grammar, "root").unwrap(),
        );
        let (got, want) = run(&model, &mut ctx, prompt, fast, reference);
        assert_eq!(got, want, "prompt {prompt:?}");
    }
}
