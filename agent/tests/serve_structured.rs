//! Structured outputs with the real model: OpenAI `response_format` and Ollama `format` give
//! output that parses and validates against the schema, greedy and sampled, streamed and
//! whole; a schema the grammar cannot enforce, and any field the server does not implement,
//! is a 400 that names it.

mod serve_support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use serve_support::{MODEL, call, post, ready_state, serial, sse_chunks};

/// Bounded everywhere (enums, integer ranges, short strings, few items), so a complete
/// answer always fits in `MAX_TOKENS` and `finish_reason` must be `stop`.
fn person_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "colour": {"enum": ["red", "green", "blue"]},
            "pets": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
            "alive": {"type": "boolean"},
            "nick": {"anyOf": [{"type": "string", "maxLength": 6}, {"type": "null"}]}
        },
        "required": ["name", "age", "colour", "pets", "alive", "nick"],
        "additionalProperties": false
    })
}

const MAX_TOKENS: u32 = 160;

/// A conversation that shows a short object first: with `json_object` (any object) the base
/// model would otherwise write one string for ever. Unconstrained it answers the object and
/// then rambles on, which does not parse.
fn few_shot() -> Value {
    json!([
        {"role": "user", "content": "The colour of the sky, as JSON."},
        {"role": "assistant", "content": "{\"colour\": \"blue\"}"},
        {"role": "user", "content": "The colour of grass, as JSON."}
    ])
}

fn valid(schema: &Value, text: &str) -> Value {
    let value: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    let validator = jsonschema::validator_for(schema).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{text}: {errors:?}");
    value
}

fn chat_body(format: Value, sampling: Value) -> Value {
    let mut body = json!({"model": MODEL, "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "Describe a person as JSON."}],
        "response_format": format});
    for (k, v) in sampling.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn openai_json_schema_output_validates_greedy_and_sampled() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let schema = person_schema();
    let format = json!({"type": "json_schema",
        "json_schema": {"name": "person", "strict": true, "schema": schema}});
    let samplings = [
        json!({"temperature": 0}),
        json!({"temperature": 1.0, "seed": 7}),
        json!({"temperature": 1.5, "top_k": 0, "top_p": 1.0, "min_p": 0, "seed": 3}),
        json!({"temperature": 0.8, "repeat_penalty": 1.3, "seed": 11}),
    ];
    for sampling in samplings {
        let (status, v) = call(
            &state,
            post(
                "/v1/chat/completions",
                &chat_body(format.clone(), sampling.clone()),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{sampling}: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{sampling}: {v}");
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .expect("content");
        valid(&schema, text);
    }
}

#[tokio::test]
async fn openai_json_object_and_a_streamed_schema_parse() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    for sampling in [
        json!({"temperature": 0}),
        json!({"temperature": 0.8, "seed": 4}),
    ] {
        let mut body = chat_body(json!({"type": "json_object"}), sampling);
        body["messages"] = few_shot();
        let (status, v) = call(&state, post("/v1/chat/completions", &body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .expect("content");
        assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
        valid(&json!({"type": "object"}), text);
    }

    let schema = person_schema();
    let format =
        json!({"type": "json_schema", "json_schema": {"name": "person", "schema": schema}});
    let mut body = chat_body(format, json!({"temperature": 0.7, "seed": 5}));
    body["stream"] = json!(true);
    let mut text = String::new();
    for chunk in sse_chunks(&state, "/v1/chat/completions", &body).await {
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
    }
    valid(&schema, &text);
}

#[tokio::test]
async fn ollama_format_json_and_schema_parse_on_chat_and_generate() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let schema = person_schema();
    let person = json!([{"role": "user", "content": "A person, as JSON."}]);
    let sky = "sky: {\"colour\": \"blue\"}\ngrass:";
    for (format, check, messages, prompt) in [
        (json!("json"), json!({"type": "object"}), few_shot(), sky),
        (schema.clone(), schema, person, "A person:"),
    ] {
        let chat = json!({"model": MODEL, "stream": false, "format": format,
            "messages": messages, "options": {"temperature": 0, "num_predict": MAX_TOKENS}});
        let (status, v) = call(&state, post("/api/chat", &chat)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["done_reason"], "stop", "{v}");
        valid(&check, v["message"]["content"].as_str().expect("content"));
        let generate = json!({"model": MODEL, "stream": false, "format": format,
            "prompt": prompt, "options": {"temperature": 0.9, "seed": 2, "num_predict": MAX_TOKENS}});
        let (status, v) = call(&state, post("/api/generate", &generate)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["done_reason"], "stop", "{v}");
        valid(&check, v["response"].as_str().expect("response"));
    }
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn schemas_the_grammar_cannot_enforce_are_refused_by_name() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let schema =
        json!({"type": "object", "properties": {"price": {"type": "number", "minimum": 0}}});
    let format = json!({"type": "json_schema", "json_schema": {"name": "p", "schema": schema}});
    let (status, v) = call(
        &state,
        post("/v1/chat/completions", &chat_body(format, json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let text = message(&v);
    assert!(
        text.contains("#/properties/price") && text.contains("minimum"),
        "{text}"
    );

    let pattern = json!({"type": "string", "pattern": "^\\w+$"});
    let body = json!({"model": MODEL, "prompt": "x", "stream": false, "format": pattern});
    let (status, v) = call(&state, post("/api/generate", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("\\w"), "{v}");

    let body = json!({"model": MODEL, "prompt": "x", "stream": false, "format": "yaml"});
    let (status, v) = call(&state, post("/api/generate", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("format"), "{v}");
}

#[tokio::test]
async fn fields_the_server_does_not_implement_are_refused_by_name() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            "/v1/chat/completions",
            json!({"messages": user, "prediction": {"type": "content"}}),
            "prediction",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi", "name": "bob"}]}),
            "messages.0.name",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user, "stream": true, "stream_options": {"include_usage": true, "x": 1}}),
            "x",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user, "top_logprobs": 2}),
            "top_logprobs",
        ),
        (
            "/v1/completions",
            json!({"prompt": "hi", "suffix": "!"}),
            "suffix",
        ),
        (
            "/api/generate",
            json!({"prompt": "hi", "images": []}),
            "images",
        ),
        (
            "/api/generate",
            json!({"prompt": "hi", "options": {"num_thread": 4}}),
            "options.num_thread",
        ),
        (
            "/api/chat",
            json!({"messages": user, "think": true}),
            "think: ",
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user, "response_format": {"type": "json_object", "schema": {}}}),
            "schema",
        ),
        (
            "/api/chat",
            json!({"messages": [{"role": "user", "content": "hi", "images": ["x"]}]}),
            "messages.0.images",
        ),
        (
            "/api/embed",
            json!({"input": "hi", "truncate": false}),
            "truncate",
        ),
    ];
    for (route, body, named) in cases {
        let (status, v) = call(&state, post(route, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{route} {body}: {v}");
        assert!(message(&v).contains(named), "{route} {body}: {v}");
    }
    // Accepted and served: keep_alive (the model stays loaded), think false, user, store false.
    let accepted = [
        (
            "/api/chat",
            json!({"messages": user, "stream": false, "keep_alive": "5m", "think": false, "options": {"num_predict": 2}}),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": user, "max_tokens": 2, "user": "u-1", "store": false, "response_format": {"type": "text"}}),
        ),
    ];
    for (route, body) in accepted {
        let (status, v) = call(&state, post(route, &body)).await;
        assert_eq!(status, StatusCode::OK, "{route} {body}: {v}");
    }
}
