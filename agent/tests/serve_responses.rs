//! OpenAI's Responses API with the real model: a response whole and as events (the same text
//! greedy, the events the official client accumulates, in order, numbered), function calls
//! as `function_call` items that validate and go back as input items, `text.format`, and what
//! a stateless server refuses.

mod serve_support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use serve_support::{MODEL, call, post, ready_state, serial, sse_events};

fn body(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "max_output_tokens": 24, "temperature": 0,
        "instructions": "You are terse.", "input": "Name a colour."});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

/// The events, numbered from 0 in order.
async fn events(state: &llamafleet_agent::serve::state::AppState, body: &Value) -> Vec<Value> {
    let events = sse_events(state, "/v1/responses", body).await;
    events
        .into_iter()
        .enumerate()
        .map(|(i, (_, data))| {
            assert_eq!(data["sequence_number"], i, "{data}");
            data
        })
        .collect()
}

fn weather() -> (Value, Value) {
    let schema = json!({"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 20},
            "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": false});
    let tool = json!({"type": "function", "name": "get_weather",
        "description": "Weather in a city", "parameters": schema, "strict": true});
    (tool, schema)
}

#[tokio::test]
async fn a_response_whole_and_as_events_agree() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let (status, whole) = call(&state, post("/v1/responses", &body(json!({})))).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["object"], "response");
    assert!(whole["id"].as_str().expect("id").starts_with("resp_"));
    let item = &whole["output"][0];
    assert_eq!(item["type"], "message", "{whole}");
    let text = item["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(!text.is_empty());
    let status = whole["status"].as_str().expect("status");
    assert!(["completed", "incomplete"].contains(&status), "{whole}");
    if status == "incomplete" {
        assert_eq!(whole["incomplete_details"]["reason"], "max_output_tokens");
    }
    assert_eq!(whole["instructions"], "You are terse.");
    assert!(whole["usage"]["output_tokens"].as_u64().expect("usage") <= 24);

    let streamed = events(&state, &body(json!({"stream": true}))).await;
    let kinds: Vec<&str> = streamed
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ],
        "{kinds:?}"
    );
    let deltas: String = streamed
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().expect("delta").to_owned())
        .collect();
    assert_eq!(deltas, text, "greedy: the same text streamed and whole");
    let last = streamed.last().expect("events");
    assert_eq!(last["type"], format!("response.{status}"));
    assert_eq!(
        last["response"]["output"][0]["content"][0]["text"],
        text.as_str()
    );
}

#[tokio::test]
async fn function_calls_validate_and_go_back_as_input_items() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let (tool, schema) = weather();
    let validator = jsonschema::validator_for(&schema).expect("schema");
    let asked = body(
        json!({"max_output_tokens": 80, "input": "Weather in Paris?",
        "tools": [tool], "tool_choice": "required", "parallel_tool_calls": false}),
    );
    let (status, answer) = call(&state, post("/v1/responses", &asked)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let calls: Vec<&Value> = answer["output"]
        .as_array()
        .expect("output")
        .iter()
        .filter(|i| i["type"] == "function_call")
        .collect();
    assert_eq!(calls.len(), 1, "{answer}");
    let arguments: Value =
        serde_json::from_str(calls[0]["arguments"].as_str().expect("arguments")).expect("JSON");
    assert!(validator.is_valid(&arguments), "{arguments}");

    // Named, streamed: the arguments arrive as deltas of a function_call item.
    let named = json!({"type": "function", "name": "get_weather"});
    let mut streamed_body = asked.clone();
    streamed_body["tool_choice"] = named;
    streamed_body["stream"] = json!(true);
    let streamed = events(&state, &streamed_body).await;
    let done = streamed
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .expect("a function call");
    let arguments: Value =
        serde_json::from_str(done["arguments"].as_str().expect("arguments")).expect("JSON");
    assert!(validator.is_valid(&arguments), "{arguments}");
    assert_eq!(
        streamed.last().expect("events")["type"],
        "response.completed"
    );

    // The output items go back as input, with the function's output; the answer is text.
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    input.extend(answer["output"].as_array().expect("output").iter().cloned());
    input.push(
        json!({"type": "function_call_output", "call_id": calls[0]["call_id"],
        "output": "21 degrees"}),
    );
    let round = body(json!({"input": input, "tools": [weather().0]}));
    let (status, answer) = call(&state, post("/v1/responses", &round)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // text.format: JSON that follows the schema.
    let format = json!({"format": {"type": "json_schema", "name": "weather", "schema": schema}});
    let (status, answer) = call(
        &state,
        post(
            "/v1/responses",
            &body(json!({"max_output_tokens": 80, "text": format})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let text = answer["output"][0]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(
        validator.is_valid(&serde_json::from_str::<Value>(text).expect("JSON")),
        "{text}"
    );
}

#[tokio::test]
async fn a_stateless_server_refuses_what_needs_state_by_name() {
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    for (extra, needle) in [
        (json!({"store": true}), "store"),
        (
            json!({"previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"conversation": "conv_1"}), "conversation"),
        (json!({"reasoning": {"effort": "low"}}), "reasoning"),
        (json!({"tools": [{"type": "web_search"}]}), "function"),
        (
            json!({"input": [{"type": "reasoning", "summary": []}]}),
            "reasoning",
        ),
        (
            json!({"input": [{"role": "user", "content": "x", "phase": "final"}]}),
            "input[0].phase",
        ),
        (json!({"text": {"verbosity": "low"}}), "verbosity"),
    ] {
        let (status, answer) = call(&state, post("/v1/responses", &body(extra.clone()))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}
