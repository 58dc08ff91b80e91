//! A Jinja chat template llama.cpp does not recognise is rendered with minijinja, with the
//! real model: the chat prompt equals the hand-rendered text (same prompt tokens, same
//! greedy answer), and llama.cpp's own formats are still used where it knows them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use llamafleet_agent::serve::engine::{
    ChatMessage, Engine, EngineConfig, Event, Prompt, SamplingParams,
};
use serve_support::{metrics, model_path};

/// Custom turn markers: none of the markers llama.cpp's template detection looks for.
const JINJA: &str = "{{ bos_token }}{% for m in messages %}<<{{ m.role }}>> {{ m.content | trim }}\n{% endfor %}{% if add_generation_prompt %}<<assistant>>{% endif %}";

fn load(template: &str) -> Option<Engine> {
    let config = EngineConfig {
        ctx: 512,
        parallel: 1,
        threads: 2,
        chat_template: Some(template.to_owned()),
        ..EngineConfig::new(model_path()?)
    };
    Some(Engine::load(config, metrics().engine).expect("load"))
}

/// (prompt tokens, text) of a greedy 12-token generation.
async fn greedy(engine: &Engine, prompt: Prompt) -> (u32, String) {
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(12),
        ..SamplingParams::default()
    };
    let mut rx = engine.generate(prompt, params).expect("queue");
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Accepted { .. } | Event::Logprob(_) => {}
            Event::Token(t) => text.push_str(&t),
            Event::Done { usage, .. } => return (usage.prompt_tokens, text),
            Event::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("no Done event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecognised_jinja_template_is_rendered_with_minijinja() {
    let Some(engine) = load(JINJA) else {
        return;
    };
    assert_eq!(engine.info().chat_template, "override:jinja");
    let chat = Prompt::Chat(
        vec![
            ChatMessage::new("system", "You answer in one word. "),
            ChatMessage::new("user", "  Name a colour."),
        ]
        .into(),
    );
    // What transformers would render: Gemma's BOS text, trimmed contents, the opening.
    let by_hand = "<bos><<system>> You answer in one word.\n<<user>> Name a colour.\n<<assistant>>";
    let (chat_tokens, chat_text) = greedy(&engine, chat).await;
    let (text_tokens, text_text) = greedy(&engine, Prompt::Text(by_hand.into())).await;
    assert_eq!(chat_tokens, text_tokens);
    assert_eq!(chat_text, text_text);
    assert!(!chat_text.is_empty());

    // A template error (here: `raise_exception`) is the client's, not a crash.
    let strict = load("{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}{% for m in messages %}[{{ m.content }}]{% endfor %}").unwrap();
    let system_first = Prompt::Chat(vec![ChatMessage::new("system", "x")].into());
    let mut rx = strict
        .generate(system_first, SamplingParams::default())
        .unwrap();
    match rx.recv().await {
        Some(Event::Error(e)) => {
            assert!(e.is_client_error(), "{e:?}");
            assert!(
                e.to_string()
                    .contains("first message must be from the user"),
                "{e}"
            );
        }
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_formats_stay_with_llama_cpp_and_unknown_names_are_refused() {
    let Some(engine) = load("chatml") else {
        return;
    };
    assert_eq!(engine.info().chat_template, "override");
    let config = EngineConfig {
        ctx: 256,
        parallel: 1,
        threads: 2,
        chat_template: Some("no-such-template".into()),
        ..EngineConfig::new(model_path().unwrap())
    };
    let Err(err) = Engine::load(config, metrics().engine) else {
        panic!("an unknown template name loaded");
    };
    assert!(err.to_string().contains("no-such-template"), "{err}");
}
