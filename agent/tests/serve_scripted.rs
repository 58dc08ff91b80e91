//! The HTTP layer over a scripted engine (no model): cases the real model cannot produce on
//! demand, asserted exactly — a generation that fails midway ends each API's stream with that
//! API's error frame (never a normal end), several choices stream with their own indices and
//! one usage, finish reasons, log probabilities and the context bound follow the engine. Every
//! OpenAI frame reads into the wire types `route` and `compare` use.

mod serve_support;

use axum::http::StatusCode;
use llamafleet_agent::serve::engine::{Engine, EngineError, Scripted};
use llamafleet_agent::serve::state::AppState;
use llamafleet_agent::wire::openai::{
    ChatCompletion, ChatCompletionChunk, ErrorBody, TextCompletion,
};
use serde_json::{Value, json};
use serve_support::{MODEL, call, post, ready_state_for, sse_data};
use tower::ServiceExt;

const PROMPT_TOKENS: u32 = 5;
const TOKENS: [&str; 4] = ["Rh", "ine", " and", " Po"];

fn state(script: Scripted) -> AppState {
    let engine = Engine::scripted(script, Scripted::info(4, 64));
    ready_state_for(engine, |_| {}, vec![], None)
}

fn answering() -> AppState {
    state(Scripted::answering(PROMPT_TOKENS, &TOKENS))
}

/// The whole body of an answer, as text.
async fn body_text(state: &AppState, uri: &str, body: &Value) -> (StatusCode, String) {
    let response = llamafleet_agent::serve::app(state.clone())
        .oneshot(post(uri, body))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
}

fn chat(extra: Value) -> Value {
    let mut body = json!({"messages": [{"role": "user", "content": "Two rivers?"}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn a_generation_that_fails_midway_ends_each_stream_with_its_error_frame() {
    let state = state(
        Scripted::answering(PROMPT_TOKENS, &TOKENS)
            .failing_after(2, EngineError::Internal("the decode failed".into())),
    );
    // OpenAI: the text so far, then the error object; no `[DONE]`, which would say it ended.
    let (status, sse) = body_text(
        &state,
        "/v1/chat/completions",
        &chat(json!({"stream": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&sse);
    assert!(!data.iter().any(|d| d == "[DONE]"), "{sse}");
    let (last, chunks) = data.split_last().expect("frames");
    let text: String = chunks
        .iter()
        .map(|d| serde_json::from_str::<ChatCompletionChunk>(d).expect("a chunk"))
        .filter_map(|c| {
            c.choices
                .first()
                .and_then(|c| c.delta.text().map(str::to_owned))
        })
        .collect();
    assert_eq!(text, "Rhine", "{sse}");
    let error: ErrorBody = serde_json::from_str(last).expect("an error frame");
    assert_eq!(error.error.kind, "internal_error", "{sse}");
    // Whole: a 500 with the error object (the internal detail stays in the server's log).
    let (status, v) = call(&state, post("/v1/chat/completions", &chat(json!({})))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    serde_json::from_value::<ErrorBody>(v).expect("an error object");

    // Ollama: the last NDJSON line is the error, and no line says `done: true`.
    let (status, ndjson) = body_text(&state, "/api/chat", &chat(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(lines.iter().all(|l| l["done"] != true), "{ndjson}");
    assert!(
        lines.last().expect("lines")["error"].is_string(),
        "{ndjson}"
    );

    // Anthropic: an `error` event ends it, without `message_stop`.
    let body = json!({"model": MODEL, "max_tokens": 16, "stream": true,
        "messages": [{"role": "user", "content": "Two rivers?"}]});
    let (status, sse) = body_text(&state, "/v1/messages", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(sse.contains("event: error"), "{sse}");
    assert!(!sse.contains("message_stop"), "{sse}");
}

#[tokio::test]
async fn choices_stream_with_their_indices_and_one_usage() {
    let state = answering();
    let body = json!({"prompt": ["a", "b"], "n": 2, "stream": true,
        "stream_options": {"include_usage": true}});
    let (status, sse) = body_text(&state, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{sse}");
    let data = sse_data(&sse);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{sse}");
    let chunks: Vec<TextCompletion> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("a text completion chunk"))
        .collect();
    let mut texts = vec![String::new(); 4];
    let mut finished = vec![None; 4];
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c.choices.len(), 1, "{c:?}");
        assert!(c.usage.is_none(), "usage before the end: {c:?}");
        let choice = &c.choices[0];
        texts[choice.index as usize].push_str(&choice.text);
        if let Some(f) = &choice.finish_reason {
            finished[choice.index as usize] = Some(f.clone());
        }
    }
    assert_eq!(texts, vec![TOKENS.concat(); 4], "{sse}");
    assert_eq!(finished, vec![Some("stop".to_owned()); 4], "{sse}");
    // The usage chunk: no choices; each prompt counted once for its two copies.
    let usage = chunks.last().expect("the usage chunk");
    assert!(usage.choices.is_empty(), "{usage:?}");
    let usage = usage.usage.as_ref().expect("usage");
    assert_eq!(usage.prompt_tokens, 2 * u64::from(PROMPT_TOKENS));
    assert_eq!(usage.completion_tokens, 4 * TOKENS.len() as u64);
}

#[tokio::test]
async fn finish_reasons_logprobs_and_the_context_bound_follow_the_engine() {
    let state = answering();
    let answer = |v: Value| serde_json::from_value::<ChatCompletion>(v).expect("a completion");
    let (status, v) = call(
        &state,
        post("/v1/chat/completions", &chat(json!({"max_tokens": 2}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let cut = answer(v);
    assert_eq!(cut.choices[0].message.content.as_deref(), Some("Rhine"));
    assert_eq!(cut.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(cut.usage.as_ref().map(|u| u.completion_tokens), Some(2));

    let (status, v) = call(
        &state,
        post("/v1/chat/completions", &chat(json!({"stop": [" P"]}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let stopped = answer(v);
    assert_eq!(
        stopped.choices[0].message.content.as_deref(),
        Some("Rhine and")
    );
    assert_eq!(stopped.choices[0].finish_reason.as_deref(), Some("stop"));

    let body = chat(json!({"max_tokens": 2, "logprobs": true, "top_logprobs": 2}));
    let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let lps = answer(v).choices[0]
        .logprobs
        .clone()
        .expect("logprobs")
        .content;
    let tokens: Vec<(&str, f32, usize)> = lps
        .iter()
        .map(|t| (t.token.as_str(), t.logprob, t.top_logprobs.len()))
        .collect();
    assert_eq!(tokens, [("Rh", -0.1, 2), ("ine", -0.2, 2)]);

    // 5 prompt tokens and 60 asked for: more than the 64 of a slot.
    let body = chat(json!({"max_tokens": 60}));
    let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let error: ErrorBody = serde_json::from_value(v).expect("an error object");
    assert_eq!(error.error.kind, "context_length_exceeded");
}
