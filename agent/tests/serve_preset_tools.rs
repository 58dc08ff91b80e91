//! A preset carries tools (LlmDeployment `spec.presets[].tools`, `serve --preset`): every
//! chat route offers them when the request brings none, with the preset's `toolChoice`; the
//! request's own `tool_choice` and `tools` win; the completion routes refuse such a preset
//! rather than drop its tools. With the real model: a `required` preset makes even the base
//! model call, once, on the Ollama route too (which has no `tool_choice` of its own).

mod serve_support;

use axum::http::StatusCode;
use llamafleet_agent::serve::presets;
use serde_json::{Value, json};
use serve_support::{MODEL, call, post, ready_state, serial};

const PRESET: &str = "weather-bot";

fn weather_schema() -> Value {
    json!({"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20},
            "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": false})
}

fn preset_file() -> String {
    // The CRD's form (JSON is YAML): no {"type": "function"} wrapper.
    format!(
        "- name: {PRESET}\n  system: Answer with a tool call.\n  toolChoice: required\n  parallelToolCalls: false\n  \
         tools:\n  - name: get_weather\n    description: The weather in a city\n    \
         parameters: {}\n",
        weather_schema()
    )
}

fn valid_weather(arguments: &Value) -> bool {
    jsonschema::validator_for(&weather_schema())
        .expect("schema")
        .is_valid(arguments)
}

fn chat(extra: Value) -> Value {
    let mut body = json!({"model": PRESET, "max_tokens": 96, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

async fn ok(state: &llamafleet_agent::serve::state::AppState, uri: &str, body: &Value) -> Value {
    let (status, answer) = call(state, post(uri, body)).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {answer}");
    answer
}

#[tokio::test]
async fn a_preset_carries_its_tools_to_every_chat_route() {
    let _serial = serial().await;
    let presets = presets::parse(&preset_file(), MODEL).expect("presets");
    let Some(state) = ready_state(|_| {}, presets, None) else {
        return;
    };

    // OpenAI chat, no tools in the request: the preset's, with its `required` and one call
    // per answer.
    let answer = ok(&state, "/v1/chat/completions", &chat(json!({}))).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    let call0 = &choice["message"]["tool_calls"][0]["function"];
    assert_eq!(call0["name"], "get_weather", "{answer}");
    let arguments: Value =
        serde_json::from_str(call0["arguments"].as_str().expect("arguments")).expect("JSON");
    assert!(valid_weather(&arguments), "{arguments}");

    // The request's tool_choice wins over the preset's: `none` answers in text.
    let answer = ok(
        &state,
        "/v1/chat/completions",
        &chat(json!({"tool_choice": "none", "max_tokens": 8})),
    )
    .await;
    let message = &answer["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "{answer}");
    assert!(message["content"].is_string(), "{answer}");

    // The request's own tools replace the preset's (and its settings: the defaults apply).
    let time = json!({"type": "function", "function": {"name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 10}},
            "required": ["zone"], "additionalProperties": false}}});
    let answer = ok(
        &state,
        "/v1/chat/completions",
        &chat(json!({"tools": [time], "tool_choice": "required", "parallel_tool_calls": false})),
    )
    .await;
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_time",
        "{answer}"
    );

    // Ollama chat: no tool_choice nor parallel_tool_calls there, so the preset's settings are
    // what make it call, once.
    let ollama = json!({"model": PRESET, "stream": false,
        "options": {"temperature": 0, "num_predict": 96},
        "messages": [{"role": "user", "content": "Weather in Rome?"}]});
    let answer = ok(&state, "/api/chat", &ollama).await;
    let calls = answer["message"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("tool_calls: {answer}"));
    assert_eq!(calls[0]["function"]["name"], "get_weather", "{answer}");
    assert!(
        valid_weather(&calls[0]["function"]["arguments"]),
        "{answer}"
    );

    // Anthropic messages: a tool_use block.
    let anthropic = json!({"model": PRESET, "max_tokens": 96, "temperature": 0,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}]});
    let answer = ok(&state, "/v1/messages", &anthropic).await;
    assert_eq!(answer["stop_reason"], "tool_use", "{answer}");
    let block = answer["content"]
        .as_array()
        .expect("content")
        .iter()
        .find(|b| b["type"] == "tool_use")
        .expect("a tool_use block");
    assert!(valid_weather(&block["input"]), "{answer}");

    // Responses: a function_call item.
    let responses = json!({"model": PRESET, "max_output_tokens": 96, "temperature": 0,
        "input": "Weather in Lima?"});
    let answer = ok(&state, "/v1/responses", &responses).await;
    let item = answer["output"]
        .as_array()
        .expect("output")
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("a function_call item: {answer}"));
    let arguments: Value =
        serde_json::from_str(item["arguments"].as_str().expect("arguments")).expect("JSON");
    assert!(valid_weather(&arguments), "{arguments}");
    // The response names the preset's tools, which the request did not bring.
    assert_eq!(answer["tools"][0]["name"], "get_weather", "{answer}");
    assert_eq!(answer["tools"][0]["type"], "function", "{answer}");
    assert_eq!(
        answer["tools"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );

    // The completion routes have no tools: the preset is refused by name, not its tools dropped.
    for (uri, body) in [
        (
            "/v1/completions",
            json!({"model": PRESET, "prompt": "Weather?", "max_tokens": 4}),
        ),
        (
            "/api/generate",
            json!({"model": PRESET, "prompt": "Weather?", "stream": false}),
        ),
    ] {
        let (status, answer) = call(&state, post(uri, &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert!(
            answer.to_string().contains("is a preset with tools"),
            "{uri}: {answer}"
        );
    }
}
