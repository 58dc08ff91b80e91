//! Streaming paths on a real loopback port: SSE and NDJSON, concurrency, disconnects and
//! prefix reuse.

mod serve_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use llamafleet_agent::serve::engine::{Event, Prompt, SamplingParams};
use serde_json::{Value, json};
use serve_support::{listen, ready_state, serial, sse_data};

async fn post_text(url: String, body: Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn openai_chat_and_completions_stream_sse_with_usage() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let addr = listen(state).await;
    let body = json!({"messages": [{"role": "user", "content": "Tell me a joke."}], "stream": true,
        "max_tokens": 12, "temperature": 0});
    let (status, text) = post_text(format!("http://{addr}/v1/chat/completions"), body).await;
    assert_eq!(status, 200, "{text}");
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!content.is_empty());
    let last = chunks.last().expect("final chunk");
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 12);

    let body = json!({"prompt": "One, two,", "stream": true, "max_tokens": 4, "stream_options": {"include_usage": true}});
    let (status, text) = post_text(format!("http://{addr}/v1/completions"), body).await;
    assert_eq!(status, 200, "{text}");
    let data = sse_data(&text);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).expect("usage chunk");
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn ollama_streams_ndjson_by_default() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let addr = listen(state).await;
    for (route, body) in [
        (
            "generate",
            json!({"prompt": "The sky is", "options": {"num_predict": 6}}),
        ),
        (
            "chat",
            json!({"messages": [{"role": "user", "content": "Hi!"}], "options": {"num_predict": 6}}),
        ),
    ] {
        let (status, text) = post_text(format!("http://{addr}/api/{route}"), body).await;
        assert_eq!(status, 200, "{text}");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("ndjson"))
            .collect();
        assert!(lines.len() >= 2, "{text}");
        assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));
        let last = lines.last().expect("last");
        assert_eq!(last["done"], true);
        assert!(last["eval_count"].as_u64().expect("eval_count") <= 6);
        assert!(last["total_duration"].as_u64().expect("duration") > 0);
    }
}

#[tokio::test]
async fn four_concurrent_streams_all_complete() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let addr = listen(state).await;
    let prompts = [
        "Once upon a time",
        "The capital of Italy",
        "def fibonacci(n):",
        "Dear diary,",
    ];
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let body = json!({"prompt": p, "stream": true, "max_tokens": 16, "temperature": 0.7, "seed": 3});
            tokio::spawn(post_text(format!("http://{addr}/v1/completions"), body))
        })
        .collect();
    for task in tasks {
        let (status, text) = task.await.expect("join");
        assert_eq!(status, 200, "{text}");
        let data = sse_data(&text);
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
        let last: Value = serde_json::from_str(&data[data.len() - 2]).expect("json");
        assert_eq!(
            last["usage"]["completion_tokens"].as_u64().map(|n| n <= 16),
            Some(true)
        );
    }
}

#[tokio::test]
async fn a_disconnected_client_frees_its_slot() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let engine = state.engine.get().expect("engine").clone();
    let addr = listen(state).await;
    let body =
        json!({"prompt": "Write a long story about a dragon.", "stream": true, "max_tokens": 900});
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/completions"))
        .body(body.to_string())
        .send()
        .await
        .expect("send");
    let mut stream = response.bytes_stream();
    let _first = stream.next().await.expect("a chunk").expect("bytes");
    let busy = Instant::now();
    while engine.stats().busy_slots.load(Ordering::Relaxed) != 1 {
        assert!(
            busy.elapsed() < Duration::from_secs(2),
            "the stream never held a slot"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(stream);
    let dropped = Instant::now();
    while engine.stats().busy_slots.load(Ordering::Relaxed) != 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "slot still busy"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_conversation_that_extends_the_last_prompt_reuses_the_cache() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let addr = listen(state).await;
    let url = format!("http://{addr}/v1/chat/completions");
    let mut messages =
        vec![json!({"role": "user", "content": "My name is Ada and I like chess. Remember it."})];
    let (_, first) = post_text(
        url.clone(),
        json!({"messages": messages, "max_tokens": 8, "temperature": 0}),
    )
    .await;
    let first: Value = serde_json::from_str(&first).expect("json");
    messages
        .push(json!({"role": "assistant", "content": first["choices"][0]["message"]["content"]}));
    messages.push(json!({"role": "user", "content": "What is my name?"}));
    let (_, second) = post_text(
        url,
        json!({"messages": messages, "max_tokens": 8, "temperature": 0}),
    )
    .await;
    let second: Value = serde_json::from_str(&second).expect("json");
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .expect("cached");
    let first_prompt = first["usage"]["prompt_tokens"].as_u64().expect("prompt");
    assert!(
        cached >= first_prompt - 1,
        "cached {cached} of a {first_prompt}-token first turn: {second}"
    );
}

#[tokio::test]
async fn a_large_embedding_request_lets_running_streams_go_on() {
    let _g = serial().await;
    let Some(engine) = serve_support::engine() else {
        return;
    };
    let params = SamplingParams {
        max_tokens: Some(600),
        ignore_eos: true,
        ..SamplingParams::default()
    };
    let mut stream = engine
        .generate(Prompt::Text("Once upon a time".into()), params)
        .expect("engine");
    while !matches!(stream.recv().await, Some(Event::Token(_))) {}
    let inputs: Vec<String> = (0..256).map(|i| format!("input number {i}")).collect();
    let embedder = engine.clone();
    let mut embedding = tokio::spawn(async move { embedder.embed(inputs).await });
    // Tokens the stream gets while the embedding request runs: one input is embedded per
    // engine loop turn, between decode steps (all 256 at once would leave it none).
    let mut during = 0;
    let embeddings = loop {
        tokio::select! {
            done = &mut embedding => break done.expect("task").expect("embeddings"),
            event = stream.recv() => match event {
                Some(Event::Token(_)) => during += 1,
                Some(Event::Done { .. }) | None => panic!("the stream ended first"),
                Some(_) => {}
            },
        }
    };
    assert_eq!(embeddings.vectors.len(), 256);
    assert!(
        during >= 16,
        "only {during} tokens while 256 inputs were embedded"
    );
}
