//! The router's replica choice against two real `serve` processes with the test model: a
//! conversation's turns go back to the replica that holds its prefix (which then reports the
//! reused prompt tokens), a turn whose replica has no free slot goes to the other one, and a
//! replica that died is set aside while its requests are answered by the other one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod route_support;
mod serve_support;

use std::process::Child;
use std::time::Duration;

use futures_util::StreamExt;
use llamafleet_crds::routing::{LOAD_HEADER, RoutedReplicas};
use route_support::{Router, eventually, json_of, table, variant};
use serde_json::{Value, json};
use serve_support::{MODEL, agent_command, free_port, model_path};

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A replica: one slot, so that a single stream fills it.
fn replica(model: &str, cache: &std::path::Path) -> (Proc, String) {
    let port = free_port();
    let child = agent_command()
        .args(["serve", "--model", model, "--cache-dir"])
        .arg(cache)
        .args(["--model-name", MODEL, "--ctx", "2048", "--parallel", "1"])
        .args(["--threads", "1", "--listen", &format!("127.0.0.1:{port}")])
        .spawn()
        .expect("spawn the agent");
    (Proc(child), format!("http://127.0.0.1:{port}"))
}

async fn wait_ready(base: &str) {
    eventually(base, Duration::from_secs(120), || async move {
        let r = reqwest::get(format!("{base}/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

/// The sum of every series of the metric `name` in a Prometheus text exposition.
fn sum(text: &str, name: &str, having: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
                && l.contains(having)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Requests each replica has generated for so far.
async fn served(replicas: &[String]) -> Vec<f64> {
    let mut counts = Vec::new();
    for base in replicas {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        counts.push(sum(
            &text,
            "llamafleet_agent_time_to_first_token_seconds_count",
            "",
        ));
    }
    counts
}

/// Which replica served one more request since `before`.
async fn which(replicas: &[String], before: &[f64]) -> usize {
    let after = served(replicas).await;
    let grown: Vec<usize> = (0..after.len()).filter(|&i| after[i] > before[i]).collect();
    assert_eq!(grown.len(), 1, "before {before:?}, after {after:?}");
    grown[0]
}

fn chat(messages: &[Value], max_tokens: u32, stream: bool) -> Value {
    json!({"model": MODEL, "messages": messages, "max_tokens": max_tokens,
           "temperature": 0, "stream": stream})
}

async fn choices(router: &Router, choice: &str) -> f64 {
    let text = router.metrics().await;
    sum(
        &text,
        "llamafleet_router_replica_choices_total",
        &format!("choice=\"{choice}\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_sends_each_turn_to_the_replica_holding_its_prefix() {
    let Some(model) = model_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = model.to_str().unwrap();
    let (a, a_url) = replica(model, &dir.path().join("a"));
    let (b, b_url) = replica(model, &dir.path().join("b"));
    wait_ready(&a_url).await;
    wait_ready(&b_url).await;
    // Every client API answer reports the replica's load; this one freed its slot first.
    let direct = reqwest::Client::new()
        .post(format!("{a_url}/v1/chat/completions"))
        .body(chat(&[json!({"role": "user", "content": "Hi"})], 1, false).to_string())
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200);
    let load = direct
        .headers()
        .get(LOAD_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(load.as_deref(), Some("busy=0;slots=1;queued=0"));
    let urls = vec![a_url.clone(), b_url.clone()];
    let mut v = variant("main", &a_url, 100);
    v.replicas = Some(RoutedReplicas::Urls(urls.clone()));
    let router = Router::start(&table(vec![v], vec![])).await;
    router.wait_for_revision("main=100").await;

    // A conversation with a long system prompt, three turns: all on one replica, which finds
    // the earlier turns in its cache.
    let system = "You are a careful consultant on tenancy law. Answer briefly and cite the \
                  statute you rely on. "
        .repeat(12);
    let mut messages = vec![json!({"role": "system", "content": system})];
    let mut home = None;
    for (turn, question) in ["What is a lease?", "And a sublease?", "Who pays repairs?"]
        .into_iter()
        .enumerate()
    {
        messages.push(json!({"role": "user", "content": question}));
        let before = served(&urls).await;
        let response = router.chat(chat(&messages, 8, false)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers().get(LOAD_HEADER).is_none(),
            "load header leaked"
        );
        let body = json_of(response).await;
        let served_by = which(&urls, &before).await;
        let cached = body["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0);
        match home {
            None => home = Some(served_by),
            Some(home) => {
                assert_eq!(served_by, home, "turn {turn} left its replica");
                assert!(cached > 100, "turn {turn} reused {cached} prompt tokens");
            }
        }
        let answer = body["choices"][0]["message"]["content"].clone();
        messages.push(json!({"role": "assistant", "content": answer}));
    }
    let home = home.unwrap();
    assert_eq!(choices(&router, "prefix").await, 2.0);

    // While a stream fills the home replica's one slot, the next turn goes to the other.
    messages.push(json!({"role": "user", "content": "Write the whole statute out."}));
    let streaming = router
        .chat(chat(&messages, 400, true))
        .send()
        .await
        .unwrap();
    assert_eq!(streaming.status(), 200);
    let mut frames = streaming.bytes_stream();
    frames.next().await.unwrap().unwrap();
    messages.pop();
    messages.push(json!({"role": "user", "content": "Can a landlord keep the deposit?"}));
    let before = served(&urls).await;
    let response = router.chat(chat(&messages, 8, false)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let other = which(&urls, &before).await;
    assert_ne!(other, home, "a full replica got the turn");
    assert_eq!(choices(&router, "load").await, 1.0);
    drop(frames);

    // The other replica dies: the conversation that went there last is answered by the
    // home replica, and the dead one is set aside.
    let (dead, _alive) = if other == 0 { (a, b) } else { (b, a) };
    drop(dead);
    let before = served(&urls[home..=home]).await[0];
    messages.push(json!({"role": "assistant", "content": "It depends."}));
    messages.push(json!({"role": "user", "content": "On what?"}));
    let response = router.chat(chat(&messages, 8, false)).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let text = router.metrics().await;
    assert_eq!(
        sum(&text, "llamafleet_router_replica_ejections_total", ""),
        1.0
    );
    assert_eq!(served(&urls[home..=home]).await[0], before + 1.0);
}
