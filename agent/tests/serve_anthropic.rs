//! Anthropic's Messages API with the real model: a message whole and as events (the same text
//! greedy), stop reasons (`end_turn`/`max_tokens`, `stop_sequence` naming the string),
//! `tool_use` blocks that validate, structured output, `count_tokens` agreeing with the
//! usage, and Anthropic's error shape for what is refused.

mod serve_support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use serve_support::{MODEL, call, post, ready_state, serial, sse_events};

fn message(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "max_tokens": 24, "temperature": 0,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Name a colour."}]}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn events(
    state: &llamafleet_agent::serve::state::AppState,
    body: &Value,
) -> Vec<(String, Value)> {
    sse_events(state, "/v1/messages", body).await
}

#[tokio::test]
async fn messages_whole_and_streamed_agree_and_stop_reasons_are_anthropics() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let (status, whole) = call(&state, post("/v1/messages", &message(json!({})))).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["type"], "message");
    assert_eq!(whole["role"], "assistant");
    assert!(whole["id"].as_str().expect("id").starts_with("msg_"));
    let text = whole["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(!text.is_empty(), "{whole}");
    let reason = whole["stop_reason"].as_str().expect("stop_reason");
    assert!(["end_turn", "max_tokens"].contains(&reason), "{whole}");
    let usage = &whole["usage"];
    assert!(
        usage["output_tokens"].as_u64().expect("output") <= 24,
        "{whole}"
    );

    let streamed = events(&state, &message(json!({"stream": true}))).await;
    let names: Vec<&str> = streamed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert_eq!(names[1], "content_block_start");
    let deltas: String = streamed
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().expect("text_delta").to_owned())
        .collect();
    assert_eq!(deltas, text, "greedy: the same text streamed and whole");
    let delta = &streamed[streamed.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], reason);

    // A piece of that text as a stop sequence: the answer stops before it and names it.
    let stop: String = text
        .chars()
        .skip(text.chars().count() / 2)
        .take(3)
        .collect();
    let body = message(json!({"stop_sequences": ["<never>", stop]}));
    let (_, stopped) = call(&state, post("/v1/messages", &body)).await;
    assert_eq!(stopped["stop_reason"], "stop_sequence", "{stopped}");
    assert_eq!(stopped["stop_sequence"], stop.as_str(), "{stopped}");

    // A limit larger than the context, as Anthropic's clients send, is cut to the room left.
    // (The stop sequence ends it where the answer above stopped.)
    let body = message(json!({"max_tokens": 1_000_000, "stop_sequences": [stop]}));
    let (status, long) = call(&state, post("/v1/messages", &body)).await;
    assert_eq!(status, StatusCode::OK, "{long}");
    assert_eq!(long["stop_reason"], "stop_sequence", "{long}");

    // count_tokens counts what the model sees: the same prompt tokens as the answer's usage.
    let count_body = json!({"model": MODEL, "system": "You are terse.",
        "messages": message(json!({}))["messages"]});
    let (status, count) = call(&state, post("/v1/messages/count_tokens", &count_body)).await;
    assert_eq!(status, StatusCode::OK, "{count}");
    let prompt = usage["input_tokens"].as_u64().expect("input")
        + usage["cache_read_input_tokens"]
            .as_u64()
            .expect("cache read");
    assert_eq!(
        count["input_tokens"].as_u64(),
        Some(prompt),
        "{count} vs {usage}"
    );
}

#[tokio::test]
async fn tool_use_and_structured_output_follow_their_schemas() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let schema = json!({"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 20},
            "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": false});
    let tools = json!([{"name": "get_weather", "description": "Weather in a city",
        "input_schema": schema}]);
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let choice = json!({"type": "any", "disable_parallel_tool_use": true});
    let body = message(json!({"max_tokens": 80, "tools": tools, "tool_choice": choice}));
    let (status, answer) = call(&state, post("/v1/messages", &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stop_reason"], "tool_use", "{answer}");
    let uses: Vec<&Value> = answer["content"]
        .as_array()
        .expect("content")
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), 1, "{answer}");
    assert!(uses[0]["id"].as_str().expect("id").starts_with("toolu_"));
    assert!(validator.is_valid(&uses[0]["input"]), "{answer}");

    // Streamed: a tool_use block whose input_json_delta parses into valid input.
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let streamed = events(&state, &streamed_body).await;
    let started = streamed
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    let index = &started.1["index"];
    let partial: String = streamed
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["index"] == *index)
        .map(|(_, d)| {
            d["delta"]["partial_json"]
                .as_str()
                .expect("input_json_delta")
                .to_owned()
        })
        .collect();
    let input: Value = serde_json::from_str(&partial).expect("input parses");
    assert!(validator.is_valid(&input), "{input}");

    // The result goes back as a tool_result block; the answer is text.
    let round = message(json!({"tools": tools, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [uses[0].clone()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0]["id"],
            "content": "21 degrees"}]}]}));
    let (status, answer) = call(&state, post("/v1/messages", &round)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // Structured output through output_config.format.
    let format = json!({"format": {"type": "json_schema", "schema": schema}});
    let body = message(json!({"max_tokens": 80, "output_config": format}));
    let (status, answer) = call(&state, post("/v1/messages", &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let text = answer["content"][0]["text"].as_str().expect("text");
    let value: Value = serde_json::from_str(text).expect("JSON");
    assert!(validator.is_valid(&value), "{text}");
}

#[tokio::test]
async fn refusals_use_anthropics_error_shape_and_name_the_field() {
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let cases = [
        (message(json!({"container": "c"})), "container"),
        (
            message(json!({"messages": [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "The colour is"}]})),
            "prefill",
        ),
        (
            message(json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})),
            "thinking",
        ),
        (
            message(
                json!({"messages": [{"role": "user", "content": [{"type": "image",
                "source": {"type": "url", "url": "http://x"}}]}]}),
            ),
            "image",
        ),
        (
            message(json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]})),
            "input_schema",
        ),
        (
            message(json!({"output_config": {"format": {"type": "json_schema",
                "schema": {"type": "number", "multipleOf": 2}}}})),
            "multipleOf",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = call(&state, post("/v1/messages", &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    let (status, answer) = call(
        &state,
        post(
            "/v1/messages",
            &json!({"model": "nope",
        "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["type"], "not_found_error", "{answer}");
}
