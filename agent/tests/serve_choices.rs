//! Several choices in one answer (`n`, a list of prompts, streamed or whole) and prefixes
//! shared between slots, with the real model.

mod serve_support;

use std::time::Duration;

use axum::http::StatusCode;
use llamafleet_agent::serve::engine::{
    Chat, ChatMessage, Engine, Event, Prompt, SamplingParams, TokenLogprob,
};
use serde_json::{Value, json};
use serve_support::{
    call, engine, engine_configured, greedy_completion, metrics, post, ready_state, serial,
    sse_chunks,
};

fn shared_so_far() -> u64 {
    metrics().engine.prompt_tokens_shared.get()
}

#[tokio::test]
async fn n_copies_start_from_one_prefill_and_count_the_prompt_once() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let messages = json!([{"role": "user", "content": "List four rivers of Europe, please."}]);
    let one = json!({"messages": messages, "max_tokens": 8, "temperature": 0,
        "logprobs": true});
    let (status, single) = call(&state, post("/v1/chat/completions", &one)).await;
    assert_eq!(status, StatusCode::OK, "{single}");

    let before = shared_so_far();
    let mut three = one.clone();
    three["n"] = json!(3);
    let (status, v) = call(&state, post("/v1/chat/completions", &three)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let choices = v["choices"].as_array().expect("choices");
    assert_eq!(choices.len(), 3, "{v}");
    let first_token = |c: &Value| c["logprobs"]["content"][0].clone();
    let mut generated = 0;
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v}");
        // The very logits of the first copy: same token, bit for bit the same log probability.
        assert_eq!(first_token(c), first_token(&choices[0]), "{v}");
        generated += c["logprobs"]["content"].as_array().expect("content").len() as u64;
    }
    let count = |v: &Value, key: &str| v["usage"][key].as_u64().expect("usage");
    let prompt = count(&single, "prompt_tokens");
    assert_eq!(count(&v, "prompt_tokens"), prompt, "{v}");
    assert_eq!(count(&v, "completion_tokens"), generated, "{v}");
    // The second and third copies took the whole prompt from the first.
    let shared = shared_so_far() - before;
    assert_eq!(
        shared,
        2 * prompt,
        "{shared} tokens shared for 3 copies of {prompt}"
    );
}

#[tokio::test]
async fn n_and_a_list_of_prompts_stream_each_choice_to_its_end() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let mut body = greedy_completion("", 6);
    body["prompt"] = json!(["The sky is", "Two plus two is"]);
    body["n"] = json!(2);
    body["logprobs"] = json!(0);
    let (status, whole) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(
        whole["choices"].as_array().map(Vec::len),
        Some(4),
        "{whole}"
    );
    // Prompt-major, as OpenAI orders them: 0 and 1 answer the first prompt, and being its
    // copies they begin with the same first token.
    let first = |v: &Value, i: usize| v["choices"][i]["logprobs"]["tokens"][0].clone();
    assert_eq!(first(&whole, 0), first(&whole, 1), "{whole}");
    assert_eq!(first(&whole, 2), first(&whole, 3), "{whole}");
    assert_ne!(first(&whole, 0), Value::Null, "{whole}");

    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let chunks = sse_chunks(&state, "/v1/completions", &body).await;
    let mut tokens = [0u64; 4];
    let mut finished = [false; 4];
    for chunk in &chunks {
        for c in chunk["choices"].as_array().expect("choices") {
            let i = c["index"].as_u64().expect("index") as usize;
            assert!(!finished[i], "text after choice {i} finished: {chunks:?}");
            if let Some(t) = c["logprobs"]["tokens"].as_array() {
                tokens[i] += t.len() as u64;
            }
            finished[i] = !c["finish_reason"].is_null();
        }
    }
    assert_eq!(finished, [true; 4], "{chunks:?}");
    let last = chunks.last().expect("chunks");
    assert_eq!(last["choices"], json!([]), "{last}");
    let usage = &last["usage"];
    assert_eq!(
        usage["completion_tokens"],
        tokens.iter().sum::<u64>(),
        "{last}"
    );
    // Each prompt once: the same count as the whole answer's.
    assert_eq!(
        usage["prompt_tokens"], whole["usage"]["prompt_tokens"],
        "{last}"
    );
}

#[tokio::test]
async fn n_outside_one_to_the_slots_is_refused_by_name() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let slots = serve_support::SLOTS;
    for n in [0, slots + 1] {
        let mut body = greedy_completion("Hi", 2);
        body["n"] = json!(n);
        let (status, v) = call(&state, post("/v1/completions", &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("n: ") && message.contains(&slots.to_string()),
            "{v}"
        );
    }
}

/// Greedy tokens of `prompt` (up to `max_tokens`) with their two likeliest alternatives,
/// and the prompt tokens that came from a cache.
async fn greedy(engine: &Engine, prompt: Prompt, max_tokens: u32) -> (Vec<TokenLogprob>, u32) {
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        logprobs: Some(2),
        ..SamplingParams::default()
    };
    let mut rx = engine.generate(prompt, params).expect("engine");
    let mut tokens = Vec::new();
    loop {
        match rx.recv().await.expect("event") {
            Event::Logprob(lp) => tokens.push(*lp),
            Event::Done { usage, .. } => return (tokens, usage.cached_tokens),
            Event::Error(e) => panic!("{e}"),
            _ => {}
        }
    }
}

/// How far apart two computations of one distribution may be: llama.cpp's CPU attention
/// accumulates in half precision, so the order of a sequence's cache cells (which sharing
/// changes) moves log probabilities by up to about a tenth (measured: 0.13).
const ROUNDING: f32 = 0.5;

/// Two greedy answers agree up to rounding: the same tokens with log probabilities within
/// [`ROUNDING`], until perhaps a near tie that each side broke the other way (each chose the
/// other's choice's runner-up within [`ROUNDING`]). A wrong cache gives other distributions.
fn agree_up_to_rounding(a: &[TokenLogprob], b: &[TokenLogprob]) {
    assert!(!a.is_empty() && !b.is_empty());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        if x.chosen.id == y.chosen.id {
            let gap = (x.chosen.logprob - y.chosen.logprob).abs();
            assert!(gap < ROUNDING, "token {k}: {x:?} vs {y:?}");
            continue;
        }
        let close = |p: &TokenLogprob, other: i32| {
            p.top
                .iter()
                .any(|alt| alt.id == other && p.chosen.logprob - alt.logprob < ROUNDING)
        };
        assert!(
            close(x, y.chosen.id) && close(y, x.chosen.id),
            "token {k} differs beyond a near tie: {x:?} vs {y:?}"
        );
        return;
    }
}

#[tokio::test]
async fn a_prefix_copied_from_a_busy_slot_gives_the_answer_computed_alone() {
    let _g = serial().await;
    let Some(sharing) = engine() else {
        return;
    };
    let document = "The lighthouse keeper wrote in his log every evening: the weather, the ships \
                    that passed, the colour of the sea and the birds on the rocks. "
        .repeat(8);
    let busy = format!("{document}Question: what did he write about first? Answer:");
    let asked = format!("{document}Question: which birds did he see? Answer:");

    // A long generation holds one slot with the document in its cache...
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(200),
        ignore_eos: true,
        ..SamplingParams::default()
    };
    let mut first = sharing
        .generate(Prompt::Text(busy), params)
        .expect("engine");
    loop {
        match tokio::time::timeout(Duration::from_secs(120), first.recv()).await {
            Ok(Some(Event::Token(_))) => break,
            Ok(Some(Event::Error(e))) => panic!("{e}"),
            Ok(Some(_)) => {}
            other => panic!("no first token: {other:?}"),
        }
    }
    // ...so the second request lands in another slot and copies the document from it.
    let before = shared_so_far();
    let (with_sharing, cached) = greedy(&sharing, Prompt::Text(asked.clone()), 24).await;
    let shared = shared_so_far() - before;
    drop(first);
    assert!(shared > 100, "only {shared} tokens shared");
    assert_eq!(u64::from(cached), shared);

    let Some(alone) = engine_configured(|c| {
        c.parallel = 1;
        c.share_prefixes = false;
    }) else {
        return;
    };
    let (computed_alone, cached) = greedy(&alone, Prompt::Text(asked), 24).await;
    assert_eq!(cached, 0);
    agree_up_to_rounding(&with_sharing, &computed_alone);
}

#[tokio::test]
async fn a_presets_system_prompt_is_pinned_from_startup_and_never_evicted() {
    let _g = serial().await;
    let system = "You are the archivist of a lighthouse. You answer questions about the keeper's \
                  log: the weather, the ships that passed and the birds on the rocks. Be brief.";
    let Some(pinned) = engine_configured(|c| {
        c.parallel = 2;
        c.pinned = vec![system.into(), system.into()];
    }) else {
        return;
    };
    // Once, however many presets share it.
    let kept = pinned.info().pinned_prefix_tokens.clone();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let prefix = u64::from(kept[0]);
    assert!(prefix > 30, "{kept:?}");
    // Both slots serve other prompts first: nothing of the system prompt is left in them.
    for other in ["The sky is", "Two plus two is"] {
        let _ = greedy(&pinned, Prompt::Text(other.repeat(20)), 4).await;
    }
    let chat = || {
        Prompt::Chat(Chat {
            messages: vec![
                ChatMessage::new("system", system),
                ChatMessage::new("user", "Which birds did the keeper see?"),
            ],
            tools: Vec::new(),
        })
    };
    let before = shared_so_far();
    let (with_pin, cached) = greedy(&pinned, chat(), 16).await;
    assert_eq!(u64::from(cached), prefix);
    assert_eq!(shared_so_far() - before, prefix);

    let Some(alone) = engine_configured(|c| {
        c.parallel = 1;
        c.share_prefixes = false;
    }) else {
        return;
    };
    let (computed_alone, _) = greedy(&alone, chat(), 16).await;
    agree_up_to_rounding(&with_pin, &computed_alone);
}
