//! The chat page at `GET /` in headless Chromium against a real `serve` with the test model:
//! a streamed answer with its figures, a preset and a system prompt that change the request
//! (read back from the server's own log), history, Stop freeing the slot, and model output
//! containing HTML shown as text. Screenshots at desktop and phone widths are kept as test
//! artefacts (`target/tmp/console-screenshots/`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod console_support;
mod route_support;
mod serve_support;

use std::time::Duration;

use console_support::{Browser, chromium_available};
use route_support::eventually;
use serde_json::Value;
use serve_support::MODEL;
use serve_support::process::{KEY, Server, spawn_logged_server};

const PRESET: &str = "lawyer";
const PRESET_SYSTEM: &str = "You are a careful contract lawyer.";
const PAGE_SYSTEM: &str = "Answer in one word.";
/// How long one answer of a few tokens may take (debug build, 2 shared cores, Chromium).
const ANSWER: Duration = Duration::from_secs(120);

/// The request lines of the server's log, newest last.
fn requests(server: &Server) -> Vec<Value> {
    server
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == "request" && v["route"] == "/v1/chat/completions")
        .collect()
}

/// Waits for the `n`th (from 1) answer of the page to finish; returns (text, figures).
async fn answer(browser: &Browser, n: usize) -> (String, Value) {
    let state = browser
        .wait_for(
            &format!("answer {n}"),
            ANSWER,
            &format!(
                "const a = document.querySelectorAll('#log .assistant')[{}];
                 return a && a.dataset.done === 'true'
                   ? [a.textContent, a.nextElementSibling.dataset.figures || null] : null;",
                n - 1
            ),
        )
        .await;
    let text = state[0].as_str().unwrap().to_owned();
    assert!(!text.starts_with("error:"), "answer {n}: {text}");
    let figures = state[1]
        .as_str()
        .map_or(Value::Null, |f| serde_json::from_str(f).unwrap());
    (text, figures)
}

async fn ask(browser: &Browser, question: &str) {
    browser.set_value("#q", question).await;
    browser.click("#send").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_streams_answers_with_figures_presets_history_stop_and_safe_markdown() {
    if !chromium_available() {
        return;
    }
    let presets = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        presets.path(),
        format!("- name: {PRESET}\n  system: {PRESET_SYSTEM}\n  parameters:\n    temperature: 0\n"),
    )
    .unwrap();
    let preset_arg = presets.path().to_str().unwrap();
    let Some(server) =
        spawn_logged_server(Some(KEY), &["--preset", preset_arg, "--log-text"]).await
    else {
        return;
    };
    let browser = Browser::start().await;
    browser.open(&format!("{}/", server.base)).await;
    assert_eq!(
        browser.call("GET", "/title", Value::Null).await,
        "llamafleet chat"
    );
    // The server requires a key: the model list appears only once the page sends it.
    browser.set_value("#key", KEY).await;
    browser
        .wait_for(
            "the model list with the preset",
            Duration::from_secs(10),
            &format!("return [...document.querySelectorAll('#model option')].map(o => o.value).includes('{PRESET}');"),
        )
        .await;
    assert_eq!(
        browser
            .script("return document.getElementById('ab-link').hidden;")
            .await,
        true,
        "serve has no A/B page"
    );

    // 1. The model itself: a streamed answer and its figures.
    browser.set_value("#model", MODEL).await;
    browser.set_value("#max-tokens", "8").await;
    ask(&browser, "What is the capital of France?").await;
    let (text, figures) = answer(&browser, 1).await;
    assert!(!text.trim().is_empty(), "empty answer");
    assert!(figures["ttft_ms"].as_f64().unwrap() > 0.0, "{figures}");
    assert!(figures["prompt_tokens"].as_u64().unwrap() > 0, "{figures}");
    let completion = figures["completion_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&completion), "max tokens 8: {figures}");
    if completion > 1 {
        assert!(
            figures["tokens_per_second"].as_f64().unwrap() > 0.0,
            "{figures}"
        );
    }
    let shown = browser
        .script("return document.querySelector('#log .figures').textContent;")
        .await;
    assert!(shown.as_str().unwrap().contains("TTFT"), "{shown}");
    let logged = requests(&server);
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["completion_tokens"], completion, "{logged:?}");

    // 2. The preset: its system prompt is put first by the server, the history goes along.
    browser.set_value("#model", PRESET).await;
    ask(&browser, "Is a handshake a contract?").await;
    answer(&browser, 2).await;
    let logged = requests(&server);
    let prompt = logged[1]["prompt"].as_str().unwrap();
    assert_eq!(logged[1]["model"], PRESET, "{:?}", logged[1]);
    assert!(
        prompt.starts_with(&format!("system: {PRESET_SYSTEM}")),
        "{prompt}"
    );
    assert!(
        prompt.contains("user: What is the capital of France?"),
        "no history: {prompt}"
    );
    assert!(
        prompt.contains("user: Is a handshake a contract?"),
        "{prompt}"
    );

    // 3. The page's system prompt replaces the preset's (the conversation brings its own).
    browser.set_value("#system", PAGE_SYSTEM).await;
    ask(&browser, "And a signature?").await;
    answer(&browser, 3).await;
    let prompt = requests(&server)[2]["prompt"].as_str().unwrap().to_owned();
    assert!(
        prompt.starts_with(&format!("system: {PAGE_SYSTEM}")),
        "{prompt}"
    );
    assert!(!prompt.contains(PRESET_SYSTEM), "{prompt}");
    browser.screenshot("chat-desktop", 1280, 900).await;
    browser.screenshot("chat-phone", 390, 844).await;

    // 4. Stop: the request is cancelled and the slot freed long before 400 tokens.
    browser.click("#clear").await;
    browser.set_value("#system", "").await;
    browser.set_value("#model", MODEL).await;
    browser.set_value("#max-tokens", "400").await;
    ask(
        &browser,
        "Write a long story about a dragon and a lighthouse.",
    )
    .await;
    browser
        .wait_for(
            "the first tokens",
            ANSWER,
            "const a = document.querySelector('#log .assistant'); return a && a.textContent.length > 0;",
        )
        .await;
    browser.click("#stop").await;
    let (_, figures) = answer(&browser, 1).await;
    assert_eq!(figures["stopped"], true, "{figures}");
    let stopped = eventually(
        "the stopped request's log line",
        Duration::from_secs(30),
        || async { requests(&server).get(3).cloned() },
    )
    .await;
    assert_eq!(stopped["category"], "cancelled", "{stopped}");
    assert!(
        stopped["completion_tokens"].as_u64().unwrap() < 400,
        "{stopped}"
    );
    eventually("a free slot", Duration::from_secs(30), || async {
        server
            .text("/metrics")
            .await
            .lines()
            .any(|l| l == "llamafleet_agent_slots_busy 0")
            .then_some(())
    })
    .await;

    // 5. Model output containing HTML is shown as text; Markdown still renders.
    let html = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2> **bold**";
    let schema = serde_json::json!({"type": "json_schema",
        "json_schema": {"name": "html", "schema": {"const": html}}});
    browser.click("#clear").await;
    browser.set_value("#max-tokens", "64").await;
    browser
        .set_value(
            "#extra",
            &serde_json::json!({ "response_format": schema }).to_string(),
        )
        .await;
    ask(&browser, "Say something.").await;
    let (text, _) = answer(&browser, 1).await;
    assert!(
        text.contains("<script>window.pwned=1</script><img src=x"),
        "{text}"
    );
    let dom = browser
        .script(
            "return [typeof window.pwned, document.querySelectorAll('#log script, #log img').length,
                     (document.querySelector('#log .assistant strong') || {}).textContent || null];",
        )
        .await;
    assert_eq!(dom, serde_json::json!(["undefined", 0, "bold"]));
}
