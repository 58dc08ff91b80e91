//! Every generation API's answers as the real model gives them: each validates against the
//! schema `/openapi.json` publishes for it (whole answers and every stream chunk or event:
//! OpenAI chat with `n`, log probabilities and tool calls, text completions with legacy log
//! probabilities, models; Anthropic messages, Responses and Ollama chat and generate, with
//! tool calls), and reads into the wire types `route` and `compare` use without losing a field.

mod serve_support;

use axum::http::StatusCode;
use llamafleet_agent::serve::state::AppState;
use llamafleet_agent::wire::openai::{
    ChatCompletion, ChatCompletionChunk, Model, ModelList, TextCompletion,
};
use llamafleet_agent::wire::{anthropic, ollama, responses};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serve_support::{MODEL, call, get, post, ready_state, serial, sse_chunks, sse_events};

/// Validates documents against one of the published component schemas.
struct Published {
    doc: Value,
}

impl Published {
    async fn fetch(state: &AppState) -> Self {
        let (status, doc) = call(state, get("/openapi.json")).await;
        assert_eq!(status, StatusCode::OK);
        Published { doc }
    }

    /// The schema the operation's 200 answer names for `content_type`.
    fn answer_schema(&self, path: &str, method: &str, content_type: &str) -> String {
        let schema = &self.doc["paths"][path][method]["responses"]["200"]["content"][content_type]
            ["schema"]["$ref"];
        let name = schema
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .unwrap_or_else(|| panic!("{method} {path}: no {content_type} schema: {schema}"));
        name.to_owned()
    }

    /// `value` validates against the schema, and reads into `T` and back unchanged.
    fn check<T: Serialize + DeserializeOwned>(&self, name: &str, value: &Value) {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": format!("#/components/schemas/{name}"),
            "components": self.doc["components"],
        });
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}\n{value:#}");
        let typed: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{name}: does not read: {e}\n{value:#}"));
        // Through text, as on the wire (a `Value` would widen the f32 log probabilities).
        let written: Value =
            serde_json::from_str(&serde_json::to_string(&typed).expect("writes")).expect("JSON");
        assert_eq!(&written, value, "{name}");
    }
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "max_tokens": 6, "temperature": 0,
        "messages": [{"role": "user", "content": "Name a river."}]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
            "required": ["city"], "additionalProperties": false}}})
}

#[tokio::test]
async fn openai_answers_match_their_published_schemas_and_wire_types() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let published = Published::fetch(&state).await;
    let chat = "/v1/chat/completions";
    let whole = published.answer_schema(chat, "post", "application/json");
    let chunk = published.answer_schema(chat, "post", "text/event-stream");
    assert_eq!(
        (whole.as_str(), chunk.as_str()),
        ("ChatCompletion", "ChatCompletionChunk")
    );

    let with_logprobs = chat_body(json!({"n": 2, "logprobs": true, "top_logprobs": 2}));
    let (status, v) = call(&state, post(chat, &with_logprobs)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2), "{v}");
    published.check::<ChatCompletion>(&whole, &v);

    let tools = chat_body(json!({"max_tokens": 96, "tools": [weather_tool()],
        "tool_choice": "required", "parallel_tool_calls": false}));
    let (status, v) = call(&state, post(chat, &tools)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["choices"][0]["message"]["tool_calls"].is_array(), "{v}");
    published.check::<ChatCompletion>(&whole, &v);

    let mut streamed = with_logprobs.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let mut streamed_tools = tools.clone();
    streamed_tools["stream"] = json!(true);
    for body in [streamed, streamed_tools] {
        let chunks = sse_chunks(&state, chat, &body).await;
        assert!(chunks.len() > 2, "{chunks:?}");
        for c in &chunks {
            published.check::<ChatCompletionChunk>(&chunk, c);
        }
    }

    let text = "/v1/completions";
    let whole = published.answer_schema(text, "post", "application/json");
    let chunk = published.answer_schema(text, "post", "text/event-stream");
    assert_eq!(
        (whole.as_str(), chunk.as_str()),
        ("TextCompletion", "TextCompletion")
    );
    let body = json!({"model": MODEL, "prompt": ["A river:", "A lake:"], "max_tokens": 4,
        "temperature": 0, "logprobs": 2});
    let (status, v) = call(&state, post(text, &body)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    published.check::<TextCompletion>(&whole, &v);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    for c in sse_chunks(&state, text, &streamed).await {
        published.check::<TextCompletion>(&chunk, &c);
    }

    let (status, v) = call(&state, get("/v1/models")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let list = published.answer_schema("/v1/models", "get", "application/json");
    published.check::<ModelList>(&list, &v);
    let (status, v) = call(&state, get(&format!("/v1/models/{MODEL}"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let one = published.answer_schema("/v1/models/{id}", "get", "application/json");
    published.check::<Model>(&one, &v);
}

/// The lines of an NDJSON answer, parsed.
async fn ndjson_lines(state: &AppState, uri: &str, body: &Value) -> Vec<Value> {
    use tower::ServiceExt;
    let response = llamafleet_agent::serve::app(state.clone())
        .oneshot(post(uri, body))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line {l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn anthropic_responses_and_ollama_answers_match_their_published_schemas_and_wire_types() {
    let _g = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let published = Published::fetch(&state).await;
    let weather = weather_tool();
    let parameters = &weather["function"]["parameters"];

    let messages = "/v1/messages";
    let whole = published.answer_schema(messages, "post", "application/json");
    let event = published.answer_schema(messages, "post", "text/event-stream");
    assert_eq!(
        (whole.as_str(), event.as_str()),
        ("AnthropicResponseMessage", "AnthropicStreamEvent")
    );
    let text = json!({"model": MODEL, "max_tokens": 6, "temperature": 0,
        "messages": [{"role": "user", "content": "Name a river."}]});
    let mut tools = text.clone();
    tools["max_tokens"] = json!(96);
    tools["tools"] = json!([{"name": "get_weather", "input_schema": parameters}]);
    tools["tool_choice"] = json!({"type": "any", "disable_parallel_tool_use": true});
    for body in [&text, &tools] {
        let (status, v) = call(&state, post(messages, body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        published.check::<anthropic::Message>(&whole, &v);
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let events = sse_events(&state, messages, &streamed).await;
        assert_eq!(events.last().map(|(e, _)| e.as_str()), Some("message_stop"));
        for (_, data) in &events {
            published.check::<anthropic::StreamEvent>(&event, data);
        }
    }
    let (status, v) = call(&state, post(messages, &tools)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let count = "/v1/messages/count_tokens";
    let question = json!({"model": MODEL, "messages": text["messages"]});
    let (status, v) = call(&state, post(count, &question)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let name = published.answer_schema(count, "post", "application/json");
    published.check::<anthropic::TokenCount>(&name, &v);

    let path = "/v1/responses";
    let whole = published.answer_schema(path, "post", "application/json");
    let event = published.answer_schema(path, "post", "text/event-stream");
    assert_eq!(
        (whole.as_str(), event.as_str()),
        ("ResponsesResponse", "ResponsesStreamEvent")
    );
    let text = json!({"model": MODEL, "max_output_tokens": 6, "temperature": 0,
        "instructions": "Answer briefly.", "input": "Name a river."});
    let mut tools = text.clone();
    tools["max_output_tokens"] = json!(96);
    tools["tools"] = json!([{"type": "function", "name": "get_weather", "parameters": parameters}]);
    tools["tool_choice"] = json!("required");
    tools["parallel_tool_calls"] = json!(false);
    for body in [&text, &tools] {
        let (status, v) = call(&state, post(path, body)).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        published.check::<responses::Response>(&whole, &v);
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let events = sse_events(&state, path, &streamed).await;
        assert!(events.len() > 3, "{events:?}");
        for (_, data) in &events {
            published.check::<responses::StreamEvent>(&event, data);
        }
    }

    for (path, name) in [
        ("/api/chat", "OllamaChatResponse"),
        ("/api/generate", "OllamaGenerateResponse"),
    ] {
        let whole = published.answer_schema(path, "post", "application/json");
        let line = published.answer_schema(path, "post", "application/x-ndjson");
        assert_eq!((whole.as_str(), line.as_str()), (name, name));
        let mut body = json!({"model": MODEL, "stream": false,
            "options": {"num_predict": 6, "temperature": 0}});
        if path == "/api/chat" {
            body["messages"] = json!([{"role": "user", "content": "Name a river."}]);
        } else {
            body["prompt"] = json!("A river:");
        }
        let mut bodies = vec![body.clone()];
        if path == "/api/chat" {
            let mut tools = body.clone();
            tools["options"]["num_predict"] = json!(96);
            tools["tools"] = json!([weather]);
            bodies.push(tools);
        }
        for body in bodies {
            let (status, v) = call(&state, post(path, &body)).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            let mut streamed = body.clone();
            streamed["stream"] = json!(true);
            let lines = ndjson_lines(&state, path, &streamed).await;
            assert_eq!(lines.last().map(|l| &l["done"]), Some(&json!(true)));
            if path == "/api/chat" {
                published.check::<ollama::ChatResponse>(&whole, &v);
                for l in &lines {
                    published.check::<ollama::ChatResponse>(&line, l);
                }
            } else {
                published.check::<ollama::GenerateResponse>(&whole, &v);
                for l in &lines {
                    published.check::<ollama::GenerateResponse>(&line, l);
                }
            }
        }
    }
}
