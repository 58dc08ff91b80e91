//! The HTTP surface against the real model through `app(state).oneshot(...)`: both APIs,
//! sampling controls, presets, embeddings, status and metrics (limits: `serve_limits.rs`).

mod serve_support;

use axum::http::StatusCode;
use llamafleet_agent::serve::presets;
use serde_json::{Value, json};
use serve_support::{
    CTX, MODEL, call, get, greedy_completion, json_body, post, ready_state, serial,
};
use tower::ServiceExt;

use llamafleet_agent::serve::app;
use llamafleet_agent::serve::state::AppState;

#[tokio::test]
async fn openai_chat_answers_with_usage_and_names_the_template() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 8, "temperature": 0});
    let response = app(state.clone())
        .oneshot(post("/v1/chat/completions", &body))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-llamafleet-chat-template"],
        "builtin:gemma"
    );
    let v = json_body(response).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    let completion = v["usage"]["completion_tokens"].as_u64().expect("usage");
    assert!((1..=8).contains(&completion), "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().expect("prompt") > 5);
}

#[tokio::test]
async fn max_tokens_ends_with_length_and_temperature_zero_is_deterministic() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let req = greedy_completion("The numbers from one to twenty: one, two, three,", 6);
    let (status, a) = call(&state, post("/v1/completions", &req)).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["choices"][0]["finish_reason"], "length");
    assert_eq!(a["usage"]["completion_tokens"], 6);
    let (_, b) = call(&state, post("/v1/completions", &req)).await;
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    // A fixed seed reproduces sampled output too.
    let seeded =
        json!({"prompt": "Once upon a time", "max_tokens": 8, "temperature": 1.0, "seed": 42});
    let (_, c) = call(&state, post("/v1/completions", &seeded)).await;
    let (_, d) = call(&state, post("/v1/completions", &seeded)).await;
    assert_eq!(c["choices"][0]["text"], d["choices"][0]["text"]);
}

#[tokio::test]
async fn stop_strings_cut_before_the_match_on_both_apis() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let prompt = "The numbers from one to twenty: one, two, three,";
    let (_, free) = call(
        &state,
        post("/v1/completions", &greedy_completion(prompt, 12)),
    )
    .await;
    let text = free["choices"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 6, "{text:?}");
    let stop: String = chars[3..5].iter().collect();
    let expected = &text[..text.find(&stop).expect("stop occurs")];
    let mut req = greedy_completion(prompt, 12);
    req["stop"] = json!([stop]);
    let (_, cut) = call(&state, post("/v1/completions", &req)).await;
    assert_eq!(
        cut["choices"][0]["text"], expected,
        "stop {stop:?} in {text:?}"
    );
    assert_eq!(cut["choices"][0]["finish_reason"], "stop");
    let ollama = json!({"prompt": prompt, "stream": false,
        "options": {"temperature": 0, "num_predict": 12, "stop": [stop]}});
    let (status, o) = call(&state, post("/api/generate", &ollama)).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(o["response"], expected);
    assert_eq!(o["done"], true);
    assert_eq!(o["done_reason"], "stop");
}

#[tokio::test]
async fn ollama_chat_and_generate_without_streaming() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let chat = json!({"model": MODEL, "stream": false, "messages": [{"role": "user", "content": "Say hello."}],
        "options": {"num_predict": 5, "temperature": 0, "seed": 1, "top_p": 0.9, "repeat_penalty": 1.1, "num_ctx": 512}});
    let (status, v) = call(&state, post("/api/chat", &chat)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["done"], true);
    assert_eq!(v["message"]["role"], "assistant");
    assert!(v["eval_count"].as_u64().expect("eval_count") <= 5);
    let prompt = v["prompt_eval_count"].as_u64().expect("prompt count");
    assert!(prompt > 0);
    // Asked again, the prompt comes from the cache, and Ollama's counts say so.
    let (status, again) = call(&state, post("/api/chat", &chat)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["prompt_eval_count"], prompt, "{again}");
    let cached = again["prompt_eval_cached_count"].as_u64().expect("cached");
    assert!(cached >= prompt - 1, "{again}");
    let gen_req = json!({"model": format!("{MODEL}:latest"), "prompt": "Hello", "stream": false, "options": {"num_predict": 3}});
    let (status, v) = call(&state, post("/api/generate", &gen_req)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["response"].is_string());
    let too_big = json!({"prompt": "x", "stream": false, "options": {"num_ctx": CTX * 4}});
    let (status, v) = call(&state, post("/api/generate", &too_big)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .expect("ollama error")
            .contains("num_ctx")
    );
}

#[tokio::test]
async fn presets_are_extra_model_names_on_both_apis() {
    let _g = serial().await;
    let yaml = "- name: terse\n  system: Answer in one word.\n  parameters:\n    temperature: 0\n    maxTokens: 3\n";
    let presets = presets::parse(yaml, MODEL).expect("presets");
    let Some(state) = ready_state(|_| {}, presets, None) else {
        return;
    };
    let (_, models) = call(&state, get("/v1/models")).await;
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [MODEL, "terse"]);
    let (_, tags) = call(&state, get("/api/tags")).await;
    assert_eq!(tags["models"][1]["name"], "terse");
    let body =
        json!({"model": "terse", "messages": [{"role": "user", "content": "Name a colour."}]});
    let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().expect("usage") <= 3);
    let (_, again) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(
        v["choices"][0]["message"], again["choices"][0]["message"],
        "preset temperature 0"
    );
    let ollama = json!({"model": "terse", "stream": false, "messages": [{"role": "user", "content": "Name a colour."}]});
    let (status, o) = call(&state, post("/api/chat", &ollama)).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert!(o["eval_count"].as_u64().expect("eval") <= 3);
    let (status, _) = call(&state, post("/api/show", &json!({"model": "terse"}))).await;
    assert_eq!(status, StatusCode::OK);
    let unknown = json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]});
    let (status, v) = call(&state, post("/v1/chat/completions", &unknown)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn embeddings_have_the_model_width_and_unit_length() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let (status, v) = call(
        &state,
        post(
            "/v1/embeddings",
            &json!({"input": ["red", "a green apple"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    for item in data {
        let e: Vec<f64> = item["embedding"]
            .as_array()
            .expect("floats")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        assert_eq!(e.len(), 640, "gemma 3 270M embedding width");
        let norm: f64 = e.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    let (_, b64) = call(
        &state,
        post(
            "/v1/embeddings",
            &json!({"input": "red", "encoding_format": "base64"}),
        ),
    )
    .await;
    assert_eq!(
        b64["data"][0]["embedding"].as_str().expect("base64").len(),
        4 * (640usize * 4).div_ceil(3)
    );
    let (_, o) = call(
        &state,
        post("/api/embed", &json!({"input": ["red", "blue", "green"]})),
    )
    .await;
    assert_eq!(o["embeddings"].as_array().expect("embeddings").len(), 3);
    let (_, old) = call(&state, post("/api/embeddings", &json!({"prompt": "red"}))).await;
    assert_eq!(old["embedding"].as_array().expect("embedding").len(), 640);
}

#[tokio::test]
async fn status_readiness_and_metrics() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let (status, v) = call(&state, get("/status")).await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "phase",
        "download",
        "sha256",
        "device",
        "layers_offloaded",
        "layers_total",
        "slots_busy",
        "slots_total",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["phase"], "ready");
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["layers_total"], 18);
    assert_eq!(v["slots_total"], serve_support::SLOTS);
    assert_eq!(v["chat_template"], "builtin:gemma");
    let (status, _) = call(&state, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    let response = app(state.clone())
        .oneshot(get("/metrics"))
        .await
        .expect("ok");
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec(),
    )
    .expect("utf8");
    for name in [
        "llamafleet_agent_http_requests_total",
        "llamafleet_agent_time_to_first_token_seconds",
        "llamafleet_agent_slots_busy",
        "llamafleet_agent_kv_cache_cells",
        "llamafleet_agent_decode_failures_total",
        "llamafleet_agent_download_bytes_total",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
    let slots = format!("\nllamafleet_agent_slots {}\n", serve_support::SLOTS);
    assert!(text.contains(&slots), "{text}");
    let (status, doc) = call(&state, get("/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/chat/completions",
        "/api/chat",
        "/v1/embeddings",
        "/api/embed",
        "/status",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing in openapi.json"
        );
    }
    // Request types of the same Rust name in two APIs are published under names of their own
    // (utoipa lets a second schema of one name replace the first), and message content is a
    // string or a list, as clients send it.
    let schemas = &doc["components"]["schemas"];
    for name in [
        "OpenAiContent",
        "AnthropicContent",
        "OpenAiToolDef",
        "AnthropicToolDef",
        "OllamaFunctionCall",
        "OllamaMessageFunctionCall",
    ] {
        assert!(
            schemas.get(name).is_some(),
            "{name} missing in openapi.json"
        );
    }
    let content = schemas["OpenAiContent"].to_string();
    assert!(
        content.contains("\"string\"") && content.contains("\"array\""),
        "{content}"
    );
    let page = app(state.clone()).oneshot(get("/")).await.expect("ok");
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let html = axum::body::to_bytes(page.into_body(), usize::MAX)
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&html).contains("src=\"/console/chat.js\""));
    // Before the model is ready: 503 with the phase, and generation refused the same way.
    let starting = AppState::new(
        llamafleet_agent::serve::state::ServeOptions::new(MODEL, 1),
        1,
        serve_support::metrics(),
        vec![],
        None,
    );
    let (status, v) = call(&starting, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["phase"], "downloading");
    let (status, v) = call(&starting, post("/api/generate", &json!({"prompt": "x"}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["error"].as_str().expect("msg").contains("downloading"));
}

#[tokio::test]
async fn ignore_eos_generates_until_max_tokens() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    // The few-shot answer ends with end-of-turn after a handful of tokens.
    let messages = json!([
        {"role": "user", "content": "The colour of the sky, as JSON."},
        {"role": "assistant", "content": "{\"colour\": \"blue\"}"},
        {"role": "user", "content": "The colour of grass, as JSON."}
    ]);
    let body = json!({"messages": messages, "max_tokens": 40, "temperature": 0,
        "response_format": {"type": "json_object"}});
    let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    let mut body = json!({"messages": messages, "max_tokens": 40, "temperature": 0,
        "ignore_eos": true});
    let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length", "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 40, "{v}");
    body["temperature"] = json!(0.7);
    body["seed"] = json!(1);
    let (_, v) = call(&state, post("/v1/chat/completions", &body)).await;
    assert_eq!(v["usage"]["completion_tokens"], 40, "{v}");
}

#[tokio::test]
async fn models_by_id_tokenize_detokenize_and_ollama_model_management() {
    let _g = serial().await;
    let preset = presets::parse("- name: terse\n  system: Be brief.\n", MODEL).expect("preset");
    let Some(state) = ready_state(|_| {}, preset, None) else {
        return;
    };
    for id in [MODEL, "terse"] {
        let (status, v) = call(&state, get(&format!("/v1/models/{id}"))).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["id"], id);
        assert_eq!(v["object"], "model");
    }
    let (status, v) = call(&state, get("/v1/models/org/other-model")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("org/other-model"),
        "{v}"
    );

    let text = "Hello, wörld! <start_of_turn>";
    let (status, v) = call(
        &state,
        post("/tokenize", &json!({"content": text, "with_pieces": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let pieces = v["tokens"].as_array().expect("tokens");
    assert!(pieces.len() > 3, "{v}");
    assert!(
        pieces.iter().any(|p| p["piece"] == "<start_of_turn>"),
        "a special token is one token: {v}"
    );
    let ids: Vec<Value> = pieces.iter().map(|p| p["id"].clone()).collect();
    let (_, plain) = call(&state, post("/tokenize", &json!({"content": text}))).await;
    assert_eq!(plain["tokens"], json!(ids));
    let (_, with_bos) = call(
        &state,
        post("/tokenize", &json!({"content": text, "add_special": true})),
    )
    .await;
    assert_eq!(
        with_bos["tokens"].as_array().expect("tokens").len(),
        ids.len() + 1
    );
    let (status, v) = call(&state, post("/detokenize", &json!({"tokens": ids}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["content"], text);
    let (_, v) = call(&state, post("/detokenize", &json!({"tokens": []}))).await;
    assert_eq!(v["content"], "");
    let (status, v) = call(
        &state,
        post("/detokenize", &json!({"tokens": [1, 999_999_999]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("999999999"),
        "{v}"
    );

    for (method, uri) in [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("HEAD", "/api/blobs/sha256:00"),
    ] {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .body(axum::body::Body::from("{}"))
            .expect("request");
        let response = app(state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        assert_eq!(
            response.status(),
            StatusCode::NOT_IMPLEMENTED,
            "{method} {uri}"
        );
        if method != "HEAD" {
            let v = json_body(response).await;
            assert!(
                v["error"].as_str().unwrap_or_default().contains("LlmModel"),
                "{v}"
            );
        }
    }
}

#[tokio::test]
async fn a_list_of_prompts_gets_one_choice_each_in_order() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let prompts = ["The sky is", "Two plus two is"];
    let mut singles = Vec::new();
    for prompt in prompts {
        let (status, one) = call(
            &state,
            post("/v1/completions", &greedy_completion(prompt, 8)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{one}");
        singles.push(one);
    }
    let mut body = greedy_completion("", 8);
    body["prompt"] = json!(prompts);
    let (status, list) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let count = |v: &Value, key: &str| v["usage"][key].as_u64().expect("usage");
    for (i, single) in singles.iter().enumerate() {
        assert_eq!(list["choices"][i]["index"], i, "{list}");
        // Greedy, each prompt gets the text it gets alone (CPU decoding is per sequence).
        assert_eq!(
            list["choices"][i]["text"], single["choices"][0]["text"],
            "{list}"
        );
    }
    for key in ["prompt_tokens", "completion_tokens"] {
        let sum: u64 = singles.iter().map(|s| count(s, key)).sum();
        assert_eq!(count(&list, key), sum, "{key}: {list}");
    }
    body["stream"] = json!(false);
    body["prompt"] = json!([]);
    let (status, _) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
