//! Tool calling with the real model: `required` and named calls always parse and validate
//! against the tool's schema (streamed and whole, OpenAI and Ollama), a tool-result round trip
//! answers, and tools that cannot be served are a 400 that names the field. The test model's
//! GGUF has no chat template, so the default engine uses the generic JSON form; engines with a
//! Hermes (`<tool_call>`) or Llama 3 style template given as an override prove those syntaxes.

mod serve_support;

use axum::http::StatusCode;
use llamafleet_agent::serve::state::AppState;
use serde_json::{Value, json};
use serve_support::{
    MODEL, call, engine_with_template, post, ready_state, ready_state_for, serial, sse_chunks,
};

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 20},
                "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"], "additionalProperties": false}}})
}

fn time_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_time",
        "parameters": {"type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 10}},
            "required": ["zone"], "additionalProperties": false}}})
}

fn body(tool_choice: Value, extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "max_tokens": 96, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [weather_tool(), time_tool()], "tool_choice": tool_choice});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body
}

/// The arguments validate against the named tool's parameters.
fn check_call(name: &str, arguments: &Value) {
    let tool = [weather_tool(), time_tool()]
        .into_iter()
        .find(|t| t["function"]["name"] == name)
        .unwrap_or_else(|| panic!("a call of an unknown tool {name:?}"));
    let validator = jsonschema::validator_for(&tool["function"]["parameters"]).expect("schema");
    let errors: Vec<String> = validator
        .iter_errors(arguments)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{name}({arguments}): {errors:?}");
}

/// The calls of an OpenAI answer, checked for shape, ids and arguments.
fn openai_calls(message: &Value) -> Vec<(String, Value)> {
    let calls = message["tool_calls"].as_array().expect("tool_calls");
    assert!(!calls.is_empty(), "{message}");
    calls
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function", "{c}");
            assert!(c["id"].as_str().expect("id").starts_with("call_"), "{c}");
            let name = c["function"]["name"].as_str().expect("name").to_owned();
            let arguments: Value = serde_json::from_str(
                c["function"]["arguments"]
                    .as_str()
                    .expect("arguments are JSON text"),
            )
            .expect("arguments parse");
            check_call(&name, &arguments);
            (name, arguments)
        })
        .collect()
}

async fn whole(state: &AppState, body: &Value) -> Value {
    let (status, answer) = call(state, post("/v1/chat/completions", body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

const ONE_CALL: fn() -> Value = || json!({"parallel_tool_calls": false});

/// Required and named calls, whole and streamed, through `state`'s engine.
async fn required_and_named_calls_parse(state: &AppState) {
    let answer = whole(state, &body(json!("required"), ONE_CALL())).await;
    let choice = &answer["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{answer}");
    assert!(choice["message"]["content"].is_null(), "{answer}");
    assert_eq!(openai_calls(&choice["message"]).len(), 1, "{answer}");

    // Several calls allowed: the small model may go on calling until max_tokens. Every call
    // returned is whole and valid; a cut answer says `length` (in the generic form the cut JSON
    // holds no complete call).
    let answer = whole(state, &body(json!("required"), json!({}))).await;
    let choice = &answer["choices"][0];
    if choice["message"].get("tool_calls").is_some() {
        openai_calls(&choice["message"]);
    }
    if choice["finish_reason"] != "tool_calls" {
        assert_eq!(choice["finish_reason"], "length", "{answer}");
    }

    let named = json!({"type": "function", "function": {"name": "get_time"}});
    let answer = whole(state, &body(named.clone(), ONE_CALL())).await;
    let calls = openai_calls(&answer["choices"][0]["message"]);
    assert_eq!(calls.len(), 1, "{answer}");
    assert_eq!(calls[0].0, "get_time");

    // Streamed: the deltas assemble (as the official client does) into the same kind of call.
    let streamed = body(named, json!({"stream": true, "parallel_tool_calls": false}));
    let chunks = sse_chunks(state, "/v1/chat/completions", &streamed).await;
    let mut assembled: Vec<Value> = Vec::new();
    let mut finish = Value::Null;
    for chunk in &chunks {
        let choice = &chunk["choices"][0];
        for delta in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = delta["index"].as_u64().expect("index") as usize;
            if assembled.len() <= i {
                assembled.push(json!({"id": delta["id"], "type": delta["type"],
                    "function": {"name": delta["function"]["name"], "arguments": ""}}));
            }
            let args = format!(
                "{}{}",
                assembled[i]["function"]["arguments"].as_str().unwrap_or(""),
                delta["function"]["arguments"].as_str().unwrap_or("")
            );
            assembled[i]["function"]["arguments"] = args.into();
        }
        if !choice["finish_reason"].is_null() {
            finish = choice["finish_reason"].clone();
        }
    }
    assert_eq!(finish, "tool_calls", "{chunks:?}");
    let calls = openai_calls(&json!({"tool_calls": assembled}));
    assert_eq!(calls[0].0, "get_time");
}

#[tokio::test]
async fn generic_form_required_named_streamed_and_round_trip() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    required_and_named_calls_parse(&state).await;

    // A round trip: the call and its result in the history, then an answer in text.
    let mut round = body(json!("none"), json!({}));
    round["messages"] = json!([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21 degrees and sunny"}
    ]);
    let answer = whole(&state, &round).await;
    let message = &answer["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "{answer}");
    assert!(
        !message["content"].as_str().expect("content").is_empty(),
        "{answer}"
    );

    // `auto`: either an answer or valid calls, never a broken call.
    let answer = whole(&state, &body(json!("auto"), json!({}))).await;
    let choice = &answer["choices"][0];
    if choice["finish_reason"] == "tool_calls" {
        openai_calls(&choice["message"]);
    } else {
        assert!(choice["message"]["content"].is_string(), "{answer}");
    }
}

#[tokio::test]
async fn ollama_tools_come_back_as_message_tool_calls_with_object_arguments() {
    let _serial = serial().await;
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    // Ollama has no tool_choice: the model decides. The conversation shows it a call first,
    // so that even the small base model answers with one.
    let body = json!({"model": MODEL, "stream": false, "options": {"temperature": 0, "num_predict": 96},
    "tools": [weather_tool()],
    "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather",
            "arguments": {"city": "Oslo", "unit": "celsius"}}}]},
        {"role": "tool", "tool_name": "get_weather", "content": "3 degrees"},
        {"role": "user", "content": "Weather in Rome?"}
    ]});
    let (status, answer) = call(&state, post("/api/chat", &body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["done"], true);
    match answer["message"]["tool_calls"].as_array() {
        Some(calls) => {
            for c in calls {
                let f = &c["function"];
                assert!(f["arguments"].is_object(), "{answer}");
                check_call(f["name"].as_str().expect("name"), &f["arguments"]);
            }
        }
        None => assert!(answer["message"]["content"].is_string(), "{answer}"),
    }
}

#[tokio::test]
async fn tools_that_cannot_be_served_are_refused_by_name() {
    let Some(state) = ready_state(|_| {}, vec![], None) else {
        return;
    };
    let mut bad_schema = weather_tool();
    bad_schema["function"]["parameters"]["properties"]["city"]["multipleOf"] = json!(2);
    let cases = [
        (
            body(json!("required"), json!({"tools": [bad_schema]})),
            "tools[0].function.parameters",
        ),
        (
            body(
                json!({"type": "function", "function": {"name": "nope"}}),
                json!({}),
            ),
            "\"nope\"",
        ),
        (
            body(
                json!("required"),
                json!({"response_format": {"type": "json_object"}}),
            ),
            "tools with a structured output format",
        ),
        (body(json!("required"), json!({"tools": []})), "needs tools"),
        (body(json!("sometimes"), json!({})), "tool_choice"),
        (
            body(
                json!("auto"),
                json!({"tools": [{"type": "code_interpreter"}]}),
            ),
            "function",
        ),
        (
            body(
                json!("auto"),
                json!({"tools": [weather_tool(), weather_tool()]}),
            ),
            "given twice",
        ),
    ];
    for (body, needle) in cases {
        let (status, answer) = call(&state, post("/v1/chat/completions", &body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

/// A template in the Hermes/Qwen style: tools listed in the system turn, calls written as
/// `<tool_call>` blocks, results in `<tool_response>` blocks.
const HERMES: &str = r#"{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}# Tools

You are provided with function signatures within <tools></tools> XML tags:
<tools>{% for tool in tools %}
{{ tool | tojson }}{% endfor %}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' %}{% continue %}{% endif %}
{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{% for call in message.tool_calls %}<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{% endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;

/// A template in the Llama 3.1/3.2 style: calls are a bare JSON object with `parameters`.
const LLAMA3: &str = r#"{{- bos_token }}{%- if tools %}<|start_header_id|>system<|end_header_id|>

Given the following functions, respond with a JSON for a function call with its proper arguments. Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.
{% for t in tools %}{{ t | tojson }}
{% endfor %}<|eot_id|>{% endif %}
{%- for message in messages %}<|start_header_id|>{{ message.role }}<|end_header_id|>

{% if message.tool_calls %}{{ {"name": message.tool_calls[0].function.name, "parameters": message.tool_calls[0].function.arguments} | tojson }}{% else %}{{ message.content }}{% endif %}<|eot_id|>
{%- endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"#;

/// A template in the Mistral style: calls after `[TOOL_CALLS]`, and call ids that must be 9
/// letters and digits (Mistral's templates raise otherwise).
const MISTRAL: &str = r#"{%- if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}
{%- for message in messages %}
{%- if message.role == 'user' %}[INST]{{ message.content }}[/INST]
{%- elif message.tool_calls %}[TOOL_CALLS][{% for c in message.tool_calls %}{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}, "id": "{{ c.id }}"}{% if not loop.last %}, {% endif %}{% endfor %}]</s>
{%- elif message.role == 'tool' %}{% if message.tool_call_id | length != 9 %}{{ raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}{% endif %}[TOOL_RESULTS]{"content": {{ message.content | tojson }}, "call_id": "{{ message.tool_call_id }}"}[/TOOL_RESULTS]
{%- else %}{{ message.content }}</s>{% endif %}
{%- endfor %}"#;

#[tokio::test]
async fn hermes_llama3_and_mistral_templates_get_their_own_syntax() {
    let _serial = serial().await;
    let templates = [(HERMES, "hermes"), (LLAMA3, "llama3"), (MISTRAL, "mistral")];
    for (template, syntax) in templates {
        let Some(engine) = engine_with_template(template) else {
            return;
        };
        assert_eq!(
            serde_json::to_value(engine.info().tool_syntax).expect("json"),
            syntax
        );
        let state = ready_state_for(engine, |_| {}, vec![], None);
        if syntax == "llama3" {
            // Llama 3 writes one call per answer.
            let answer = whole(&state, &body(json!("required"), ONE_CALL())).await;
            assert_eq!(
                answer["choices"][0]["finish_reason"], "tool_calls",
                "{answer}"
            );
            assert_eq!(openai_calls(&answer["choices"][0]["message"]).len(), 1);
        } else {
            required_and_named_calls_parse(&state).await;
        }
        // The history with a call and its result renders through the template.
        let mut round = body(json!("auto"), json!({}));
        round["messages"] = json!([
            {"role": "user", "content": "Time in Tokyo?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "get_time", "arguments": "{\"zone\": \"JST\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "09:00"}
        ]);
        whole(&state, &round).await;
    }
}
