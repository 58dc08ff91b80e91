//! The real thing: `llamafleet-agent serve` with the test model behind `llamafleet-agent
//! route` (both as processes), shadow traffic at temperature 0, and the official Python
//! clients through the router.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod route_support;
mod serve_support;

use std::process::Child;
use std::time::Duration;

use llamafleet_crds::routing::{RoutedShadow, RoutedTier, RouterStats};
use route_support::{answered_by, eventually, json_of, table, variant};
use serde_json::json;
use serve_support::{MODEL, agent_command, free_port, model_path};

const KEY: &str = "router-key-123";

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn agent(args: &[&str]) -> Proc {
    Proc(agent_command().args(args).spawn().expect("spawn the agent"))
}

async fn wait_ready(base: &str) {
    eventually(base, Duration::from_secs(120), || async move {
        let r = reqwest::get(format!("{base}/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_agent_behind_the_router_with_shadow_and_python_clients() {
    let Some(model) = model_path() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Two slots: the clients' `n: 2` needs them. Both variants are this one agent, so the
    // live request and its shadow copy decode side by side; without prefix sharing each
    // computes its own prompt and greedy answers are identical token for token (sharing would
    // order their cache cells differently, and llama.cpp's half-precision attention can then
    // break a near tie differently, which two real variants never share).
    let serve_port = free_port();
    let _serve = agent(&[
        "serve",
        "--model",
        model.to_str().unwrap(),
        "--cache-dir",
        dir.path().join("cache").to_str().unwrap(),
        "--model-name",
        MODEL,
        "--listen",
        &format!("127.0.0.1:{serve_port}"),
        "--ctx",
        "1024",
        "--parallel",
        "2",
        "--no-prefix-sharing",
        "--threads",
        "2",
    ]);
    let upstream = format!("http://127.0.0.1:{serve_port}");
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(keys.join("tester"), format!("premium:{KEY}")).unwrap();
    let mut t = table(
        vec![
            variant("blue", &upstream, 100),
            variant("green", &upstream, 0),
        ],
        vec![RoutedTier {
            name: "premium".into(),
            requests_per_hour: 1000,
            tokens_per_hour: None,
        }],
    );
    t.api_keys_dir = Some(keys.display().to_string());
    t.shadow = Some(RoutedShadow {
        variant: "green".into(),
        percent: 100,
    });
    let config = dir.path().join("routing.yaml");
    std::fs::write(&config, serde_norway::to_string(&t).unwrap()).unwrap();
    let router_base = format!("http://127.0.0.1:{}", free_port());
    let _router = agent(&[
        "route",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        router_base.trim_start_matches("http://"),
    ]);
    wait_ready(&upstream).await;
    wait_ready(&router_base).await;

    let client = reqwest::Client::new();
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 12,
        "temperature": 0,
    });
    let post = |base: &str| {
        client
            .post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .bearer_auth(KEY)
            .body(body.to_string())
    };
    let routed = post(&router_base).send().await.unwrap();
    assert_eq!(routed.status(), 200);
    assert_eq!(answered_by(&routed), "blue");
    let routed = json_of(routed).await;
    let direct = json_of(post(&upstream).send().await.unwrap()).await;
    let text = &routed["choices"][0]["message"]["content"];
    assert!(text.as_str().is_some_and(|t| !t.is_empty()), "{routed}");
    assert_eq!(text, &direct["choices"][0]["message"]["content"]);

    let stats_url = format!("{router_base}{}", llamafleet_crds::routing::STATS_PATH);
    let (client, stats_url) = (&client, &stats_url);
    let stats = eventually("shadow compared", Duration::from_secs(60), || async move {
        let stats: RouterStats =
            serde_json::from_value(json_of(client.get(stats_url).send().await.unwrap()).await)
                .unwrap();
        let compared = stats.variant("green")?.shadow.as_ref()?.compared;
        (compared >= 1).then_some(stats)
    })
    .await;
    let blue = stats.variant("blue").unwrap();
    assert_eq!((blue.requests, blue.errors), (1, 0));
    let generated = routed["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(blue.tokens, generated);
    let shadow = stats.variant("green").unwrap().shadow.clone().unwrap();
    assert_eq!(
        (shadow.compared, shadow.exact_matches, shadow.errors),
        (1, 1, 0)
    );
    assert!((shadow.similarity_sum - 1.0).abs() < 1e-9);

    // The clients' requests need no shadow copies (they would queue behind on one slot).
    t.variants.truncate(1);
    t.shadow = None;
    std::fs::write(&config, serde_norway::to_string(&t).unwrap()).unwrap();
    eventually("table reloaded", Duration::from_secs(30), || async move {
        let stats = json_of(client.get(stats_url).send().await.unwrap()).await;
        (stats["revision"] == "blue=100").then_some(())
    })
    .await;
    if serve_support::python_clients(&router_base, MODEL, KEY).await {
        // Every SSE and NDJSON stream of the clients was read to its proper end.
        let stats: RouterStats =
            serde_json::from_value(json_of(client.get(stats_url).send().await.unwrap()).await)
                .unwrap();
        let blue = stats.variant("blue").unwrap();
        assert!(
            blue.requests >= 9 && blue.errors == 0 && blue.tokens > 0,
            "{blue:?}"
        );
    }
}
