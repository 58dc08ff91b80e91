//! Log probabilities with the real model: OpenAI chat (whole and streamed), legacy
//! completions and Ollama report one entry per generated token, from the model's own
//! distribution: greedy picks the most likely token, alternatives are sorted and their
//! probabilities sum to at most 1, and the tokens spell the text.

mod serve_support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use serve_support::{MODEL, call, post, ready_state, serial, sse_chunks};

const TOKENS: u32 = 12;

/// Checks one token entry (OpenAI chat / Ollama shape) and returns its text.
fn check_entry(entry: &Value, top: usize, greedy: bool) -> String {
    let logprob = entry["logprob"].as_f64().expect("logprob");
    assert!(logprob <= 0.0, "{entry}");
    let bytes: Vec<u8> = serde_json::from_value(entry["bytes"].clone()).expect("bytes");
    let alternatives = entry["top_logprobs"].as_array().expect("top_logprobs");
    assert_eq!(alternatives.len(), top, "{entry}");
    let lps: Vec<f64> = alternatives
        .iter()
        .map(|a| a["logprob"].as_f64().expect("logprob"))
        .collect();
    assert!(lps.windows(2).all(|w| w[0] >= w[1]), "sorted: {entry}");
    assert!(
        lps.iter().map(|l| l.exp()).sum::<f64>() <= 1.0 + 1e-4,
        "{entry}"
    );
    if greedy && top > 0 {
        assert_eq!(
            alternatives[0]["token"], entry["token"],
            "greedy takes the likeliest: {entry}"
        );
        assert!((lps[0] - logprob).abs() < 1e-5, "{entry}");
    }
    String::from_utf8(bytes).expect("this prompt's tokens are whole characters")
}

#[tokio::test]
async fn openai_chat_logprobs_whole_and_streamed_agree() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let body = json!({"model": MODEL, "max_tokens": TOKENS, "temperature": 0,
        "messages": [{"role": "user", "content": "Count from one to ten in words."}],
        "logprobs": true, "top_logprobs": 3});
    let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let entries = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("content")
        .clone();
    assert_eq!(
        entries.len() as u64,
        v["usage"]["completion_tokens"].as_u64().expect("usage")
    );
    let spelled: String = entries.iter().map(|e| check_entry(e, 3, true)).collect();
    assert_eq!(
        spelled,
        v["choices"][0]["message"]["content"]
            .as_str()
            .expect("text")
    );

    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let mut streamed = Vec::new();
    for chunk in sse_chunks(&state, "/v1/chat/completions", &streamed_body).await {
        if let Some(content) = chunk["choices"][0]["logprobs"]["content"].as_array() {
            streamed.extend(content.iter().cloned());
        }
    }
    let tokens = |list: &[Value]| list.iter().map(|e| e["token"].clone()).collect::<Vec<_>>();
    assert_eq!(tokens(&streamed), tokens(&entries));

    // logprobs alone: the chosen tokens, no alternatives.
    let mut alone = body.clone();
    alone
        .as_object_mut()
        .expect("object")
        .remove("top_logprobs");
    let (status, v) = call(&state, post("/v1/chat/completions", &alone)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let alone = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .expect("content");
    assert_eq!(tokens(alone), tokens(&entries));
    alone.iter().for_each(|e| {
        check_entry(e, 0, true);
    });

    // Without logprobs there are none; top_logprobs alone or above 20 is refused by name.
    let mut plain = body.clone();
    plain.as_object_mut().expect("object").remove("logprobs");
    plain
        .as_object_mut()
        .expect("object")
        .remove("top_logprobs");
    let (_, v) = call(&state, post("/v1/chat/completions", &plain)).await;
    assert_eq!(v["choices"][0]["logprobs"], Value::Null, "{v}");
    for (logprobs, top) in [(json!(null), 2), (json!(true), 21)] {
        let mut bad = body.clone();
        bad["logprobs"] = logprobs;
        bad["top_logprobs"] = json!(top);
        let (status, v) = call(&state, post("/v1/chat/completions", &bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("top_logprobs"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn legacy_completions_and_ollama_report_logprobs_per_token() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let body = json!({"prompt": "The numbers from one to twenty: one, two,", "max_tokens": TOKENS,
        "temperature": 0, "logprobs": 2});
    let (status, v) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let lp = &v["choices"][0]["logprobs"];
    let tokens: Vec<String> = serde_json::from_value(lp["tokens"].clone()).expect("tokens");
    assert_eq!(tokens.len(), TOKENS as usize, "{v}");
    assert_eq!(
        tokens.concat(),
        v["choices"][0]["text"].as_str().expect("text")
    );
    let offsets: Vec<usize> = serde_json::from_value(lp["text_offset"].clone()).expect("offsets");
    let mut at = 0;
    for (token, offset) in tokens.iter().zip(&offsets) {
        assert_eq!(*offset, at, "{v}");
        at += token.len();
    }
    let top = lp["top_logprobs"].as_array().expect("top");
    assert!(
        top.iter()
            .all(|t| t.as_object().is_some_and(|m| (1..=2).contains(&m.len()))),
        "{v}"
    );

    for (route, extra) in [
        ("/api/generate", json!({"prompt": "The sky is"})),
        (
            "/api/chat",
            json!({"messages": [{"role": "user", "content": "Hi"}]}),
        ),
    ] {
        let mut body = json!({"model": MODEL, "stream": false, "logprobs": true, "top_logprobs": 2,
            "options": {"temperature": 0, "num_predict": TOKENS}});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, v) = call(&state, post(route, &body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let entries = v["logprobs"].as_array().expect("logprobs");
        assert_eq!(
            entries.len() as u64,
            v["eval_count"].as_u64().expect("eval_count"),
            "{v}"
        );
        let spelled: String = entries.iter().map(|e| check_entry(e, 2, true)).collect();
        let text = v["response"]
            .as_str()
            .or(v["message"]["content"].as_str())
            .expect("text");
        assert_eq!(spelled, text);
    }
}
