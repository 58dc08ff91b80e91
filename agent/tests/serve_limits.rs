//! Limits and errors against the real model: context overflow, full queue, body size, API
//! key, bad parameters, request timeout, CORS, and a thousand bad requests in a row.

mod serve_support;

use axum::http::StatusCode;
use std::time::Duration;

use serde_json::json;
use serve_support::{CTX, call, get, greedy_completion, json_body, post, ready_state, serial};
use tower::ServiceExt;

use llamafleet_agent::serve::app;
use llamafleet_agent::serve::engine::RequestLimits;

#[tokio::test]
async fn context_overflow_is_a_400_with_the_counts() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let body = json!({"prompt": "Hello there", "max_tokens": CTX, "stream": true});
    let (status, v) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let msg = v["error"]["message"].as_str().expect("message");
    assert!(
        msg.contains(&format!("max_tokens ({CTX})")) && msg.contains(&format!("({CTX} tokens)")),
        "{msg}"
    );
    let long = "word ".repeat(CTX as usize * 2);
    let (status, v) = call(&state, post("/api/generate", &json!({"prompt": long}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]
            .as_str()
            .expect("ollama error")
            .contains("exceeds the context size"),
        "{v}"
    );
}

#[tokio::test]
async fn full_queue_is_a_503_with_retry_after() {
    let _g = serial().await;
    let Some(state) = ready_state(|o| o.queue = 0, vec![], None) else {
        return;
    };
    // Four streams hold the four permits (slots, no queue) while their bodies are unread.
    let mut held = Vec::new();
    for _ in 0..serve_support::SLOTS {
        let body = json!({"prompt": "Count: one, two,", "max_tokens": 200, "stream": true});
        let r = app(state.clone())
            .oneshot(post("/v1/completions", &body))
            .await
            .expect("ok");
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let r = app(state.clone())
        .oneshot(post("/v1/chat/completions", &body))
        .await
        .expect("ok");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let v = json_body(r).await;
    assert_eq!(v["error"]["code"], "server_busy");
    drop(held);
}

#[tokio::test]
async fn body_limit_key_and_bad_parameters_answer_in_each_api_format() {
    let _g = serial().await;
    let Some(state) = ready_state(|o| o.max_body_bytes = 1024, vec![], Some("s3cret")) else {
        return;
    };
    let big = json!({"prompt": "x".repeat(4096)});
    let authed = |mut r: axum::http::Request<axum::body::Body>| {
        r.headers_mut()
            .insert("authorization", "Bearer s3cret".parse().expect("header"));
        r
    };
    let (status, v) = call(&state, authed(post("/v1/completions", &big))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "request_too_large");
    let (status, v) = call(&state, authed(post("/api/generate", &big))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(v["error"].is_string());
    let (status, v) = call(&state, get("/v1/models")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let mut wrong = get("/api/tags");
    wrong
        .headers_mut()
        .insert("authorization", "Bearer s3cres".parse().expect("header"));
    let (status, v) = call(&state, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(v["error"].is_string());
    let (status, _) = call(&state, authed(get("/v1/models"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK, "ops routes need no key");
    let bad = json!({"prompt": "x", "temperature": 7});
    let (status, v) = call(&state, authed(post("/v1/completions", &bad))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("temperature")
    );
    let bad = json!({"messages": [{"role": "wizard", "content": "x"}], "stream": false});
    let (status, v) = call(&state, authed(post("/api/chat", &bad))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().expect("msg").contains("wizard"));
}

#[tokio::test]
async fn a_thousand_bad_requests_leave_the_server_healthy() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let bodies = [
        "{",
        "[]",
        "{\"prompt\": 5}",
        "{\"messages\": []}",
        "{\"prompt\": \"x\", \"top_p\": 0}",
    ];
    let routes = [
        "/v1/completions",
        "/v1/chat/completions",
        "/api/generate",
        "/api/chat",
        "/v1/embeddings",
    ];
    for i in 0..1000 {
        let request = axum::http::Request::post(routes[i % routes.len()])
            .body(axum::body::Body::from(bodies[i % bodies.len()]))
            .expect("request");
        let response = app(state.clone()).oneshot(request).await.expect("ok");
        assert!(
            response.status().is_client_error(),
            "{} for request {i}",
            response.status()
        );
    }
    let (status, _) = call(&state, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = call(&state, post("/v1/completions", &greedy_completion("Hi", 2))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // The engine publishes slot counts after the step that ended the request: poll briefly.
    let started = std::time::Instant::now();
    loop {
        let (_, status_json) = call(&state, get("/status")).await;
        if status_json["slots_busy"] == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "{status_json}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_request_past_its_timeout_is_a_408_and_frees_the_slot() {
    let _g = serial().await;
    let Some(state) = ready_state(
        |o| o.request_timeout = Duration::from_millis(1),
        vec![],
        None,
    ) else {
        return;
    };
    let body = json!({"prompt": "Tell me a long story.", "max_tokens": 200});
    let (status, v) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{v}");
    assert_eq!(v["error"]["code"], "timeout");
    let engine = state.engine.get().expect("engine");
    let started = std::time::Instant::now();
    while engine
        .stats()
        .busy_slots
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
    {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "slot still busy"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn cors_headers_only_when_origins_are_configured() {
    let _g = serial().await;
    let Some(closed) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let request = || {
        axum::http::Request::get("/v1/models")
            .header("origin", "https://chat.example")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let r = app(closed).oneshot(request()).await.expect("ok");
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let Some(open) = ready_state(
        |o| o.cors_origins = vec!["https://chat.example".into()],
        vec![],
        None,
    ) else {
        return;
    };
    let r = app(open).oneshot(request()).await.expect("ok");
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://chat.example"
    );
}

#[tokio::test]
async fn the_prompt_and_token_limits_hold_in_every_api() {
    let _g = serial().await;
    let Some(engine) = serve_support::engine_configured(|c| {
        c.parallel = 1;
        c.limits = RequestLimits {
            prompt_tokens: Some(16),
            max_tokens: Some(4),
        };
    }) else {
        return;
    };
    let state = serve_support::ready_state_for(engine, |_| {}, vec![], None);
    let long = "word ".repeat(40);
    let refusals = [
        (
            "/v1/completions",
            json!({"prompt": long, "max_tokens": 2}),
            "prompt is",
        ),
        (
            "/v1/completions",
            json!({"prompt": "Hi", "max_tokens": 5}),
            "max_tokens: 5",
        ),
        (
            "/api/generate",
            json!({"prompt": long, "stream": false}),
            "prompt is",
        ),
        (
            "/api/generate",
            json!({"prompt": "Hi", "stream": false, "options": {"num_predict": 9}}),
            "max_tokens: 9",
        ),
    ];
    for (uri, body, says) in refusals {
        let (status, v) = call(&state, post(uri, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {v}");
        assert!(v.to_string().contains(says), "{uri} {body}: {v}");
    }
    // Without max_tokens the limit is the default.
    let body = json!({"prompt": "Hi", "temperature": 0, "ignore_eos": true});
    let (status, v) = call(&state, post("/v1/completions", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 4, "{v}");
    // Anthropic's max_tokens is required and fitted to the room: fitted to the limit too.
    let body = json!({"max_tokens": 64, "temperature": 0,
        "messages": [{"role": "user", "content": "Count: one,"}]});
    let (status, v) = call(&state, post("/v1/messages", &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        v["usage"]["output_tokens"].as_u64().expect("output") <= 4,
        "{v}"
    );
}
