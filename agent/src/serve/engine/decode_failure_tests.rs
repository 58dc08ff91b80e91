//! A decode step llama.cpp refuses fails only the request whose tokens it refused: the other
//! slots' streams go on to their last token, and the failed slot serves the next request.
//! With the real test model (`LLAMAFLEET_TEST_MODEL`).
#![allow(clippy::unwrap_used)]

use tokio::sync::mpsc::UnboundedReceiver;

use super::{Engine, EngineConfig, EngineError, Event, Prompt, SamplingParams, Usage};
use crate::serve::metrics::ServeMetrics;

const PROMPTS: [&str; 3] = [
    "The capital of France is",
    "Water boils at a temperature of",
    "The three primary colors are",
];
/// Enough that every stream is still generating when the fault comes.
const TOKENS: u32 = 64;

fn load() -> Option<(Engine, ServeMetrics)> {
    let Some(path) = std::env::var_os("LLAMAFLEET_TEST_MODEL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "LLAMAFLEET_TEST_MODEL is not set: run scripts/fetch-test-model.sh"
        );
        eprintln!("skipped: LLAMAFLEET_TEST_MODEL is not set");
        return None;
    };
    let config = EngineConfig {
        ctx: 256,
        parallel: 3,
        threads: 2,
        ..EngineConfig::new(path)
    };
    let metrics = ServeMetrics::new().unwrap();
    Some((
        Engine::load(config, metrics.engine.clone()).unwrap(),
        metrics,
    ))
}

fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        max_tokens: Some(TOKENS),
        ignore_eos: true,
        ..SamplingParams::default()
    }
}

fn start(engine: &Engine, prompt: &str) -> UnboundedReceiver<Event> {
    engine
        .generate(Prompt::Text(prompt.into()), greedy())
        .unwrap()
}

/// Reads events until the first token; returns its text.
async fn first_token(rx: &mut UnboundedReceiver<Event>) -> String {
    loop {
        match rx.recv().await.unwrap() {
            Event::Token(text) => return text,
            Event::Accepted { .. } | Event::Logprob(_) => {}
            other => panic!("before the first token: {other:?}"),
        }
    }
}

/// The rest of a stream: its text and usage, or the error that ended it.
async fn rest(rx: &mut UnboundedReceiver<Event>) -> Result<(String, Usage), EngineError> {
    let mut text = String::new();
    loop {
        match rx.recv().await.unwrap() {
            Event::Token(t) => text.push_str(&t),
            Event::Done { usage, .. } => return Ok((text, usage)),
            Event::Error(e) => return Err(e),
            Event::Accepted { .. } | Event::Logprob(_) => {}
        }
    }
}

/// Runs the three prompts side by side; `fault` desyncs the second one's slot once all three
/// stream. Returns each answer (first token included) and usage, or its error.
async fn run(engine: &Engine, fault: bool) -> Vec<Result<(String, Usage), EngineError>> {
    let mut streams = Vec::new();
    // One after another, so job ids follow the prompts (1, 2, 3 on a fresh engine's count).
    for prompt in PROMPTS {
        let mut rx = start(engine, prompt);
        let first = first_token(&mut rx).await;
        streams.push((rx, first));
    }
    if fault {
        engine.desync(2);
    }
    let mut answers = Vec::new();
    for (mut rx, first) in streams {
        answers.push(rest(&mut rx).await.map(|(r, usage)| (first + &r, usage)));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_slot_fails_alone_and_the_others_finish() {
    let Some((engine, metrics)) = load() else {
        return;
    };
    let faulty = run(&engine, true).await;
    let m = &metrics.engine;
    assert_eq!(m.decode_failures.get(), 1, "{faulty:?}");
    assert!(m.decode_retries.get() >= 1, "the step was split");
    let Err(EngineError::Internal(message)) = &faulty[1] else {
        panic!("the desynced slot's request must fail: {:?}", faulty[1]);
    };
    assert!(message.contains("decode"), "{message}");
    // The others generated every token they asked for: their slots' caches stayed whole (a
    // cache out of step with the KV cache would have been refused too).
    for answer in [&faulty[0], &faulty[2]] {
        let (text, usage) = answer.as_ref().unwrap();
        assert_eq!(usage.completion_tokens, TOKENS, "{text}");
    }
    // The failed slot serves again: the same prompts once more, no failure. (Their text may
    // differ from the first round's: greedy answers depend on each step's batch composition,
    // which the retried step and cache reuse change.)
    let again = run(&engine, false).await;
    assert_eq!(m.decode_failures.get(), 1, "{again:?}");
    for answer in &again {
        let (text, usage) = answer.as_ref().unwrap();
        assert_eq!(usage.completion_tokens, TOKENS, "{text}");
    }
}
