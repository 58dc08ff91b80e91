//! Router overhead: the same fixed-rate load of OpenAI chat requests (a ~4 KB system prompt, as
//! a preset's, and a short question) sent straight to an upstream and through `route` to it,
//! side by side, with p50/p99 latency of each. The table lists the upstream as the variant's
//! one replica, so the router does what it does in a cluster: it reads the prompt's blocks and
//! picks the replica by prefix and load.
//!
//! The upstream is an in-process axum server answering a canned completion at once, so the
//! difference is the router's own cost (accept, choose, forward, read the answer back).
//! Upstream, router and load generator each get their own runtime threads.
//!
//! Usage: route-bench [RATE_PER_SECOND (200)] [SECONDS (10)]

use std::time::{Duration, Instant};

use anyhow::Context;
use axum::routing::post;
use llamafleet_agent::route::state::RouterState;
use llamafleet_agent::route::{self, RouteConfig};
use llamafleet_crds::routing::{RoutedReplicas, RoutedVariant, RoutingTable};
use serde_json::json;
use tokio::runtime::{Builder, Runtime};

const WARMUP: Duration = Duration::from_secs(1);

fn runtime(threads: usize) -> anyhow::Result<Runtime> {
    Ok(Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

async fn bind() -> anyhow::Result<(tokio::net::TcpListener, String)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((listener, url))
}

async fn upstream() -> anyhow::Result<String> {
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Blue."}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    });
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    let (listener, url) = bind().await?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn router(upstream: String, dir: &std::path::Path) -> anyhow::Result<(String, RouterState)> {
    let table = RoutingTable::open(vec![RoutedVariant {
        name: "a".into(),
        url: upstream.clone(),
        weight: 100,
        model: "m".into(),
        deployment: None,
        replicas: Some(RoutedReplicas::Urls(vec![upstream])),
    }]);
    let path = dir.join("routing.yaml");
    std::fs::write(&path, serde_norway::to_string(&table)?)?;
    let state = route::start(&RouteConfig::new(path, "127.0.0.1:0".parse()?))?;
    let (listener, url) = bind().await?;
    let app = route::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, state))
}

/// Sends `rate` requests a second for `warmup + seconds`; latencies after the warm-up.
async fn load(base: String, rate: u32, seconds: u64) -> anyhow::Result<Vec<Duration>> {
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let url = format!("{base}/v1/chat/completions");
    let system =
        "You answer questions about the lighthouse keeper's log in two sentences. ".repeat(56);
    let messages = json!([{"role": "system", "content": system},
                          {"role": "user", "content": "Name a colour."}]);
    let body =
        json!({"model": "m", "messages": messages, "max_tokens": 8, "temperature": 0}).to_string();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let started = Instant::now();
    let end = started + WARMUP + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        let counted = started.elapsed() >= WARMUP;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(response.status() == 200, "status {}", response.status());
            response.bytes().await?;
            Ok::<_, anyhow::Error>(counted.then(|| sent.elapsed()))
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        if let Some(latency) = task.await?? {
            latencies.push(latency);
        }
    }
    latencies.sort();
    Ok(latencies)
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rate: u32 = args.next().map_or(Ok(200), |a| a.parse()).context("rate")?;
    let seconds: u64 = args
        .next()
        .map_or(Ok(10), |a| a.parse())
        .context("seconds")?;
    let dir = tempfile::tempdir()?;
    let upstream_rt = runtime(1)?;
    let router_rt = runtime(2)?;
    let load_rt = runtime(2)?;
    let upstream_url = upstream_rt.block_on(upstream())?;
    let (router_url, state) = router_rt.block_on(router(upstream_url.clone(), dir.path()))?;
    let (direct, routed) = load_rt.block_on(async {
        tokio::join!(
            load(upstream_url, rate, seconds),
            load(router_url, rate, seconds)
        )
    });
    let (direct, routed) = (direct?, routed?);
    println!("route bench: {rate} req/s to each target for {seconds} s (after {WARMUP:?} warm-up)");
    for (name, l) in [("direct", &direct), ("routed", &routed)] {
        println!(
            "{name:>7}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
            l.len(),
            quantile(l, 0.5),
            quantile(l, 0.99),
            quantile(l, 1.0)
        );
    }
    println!(
        "  added: p50=+{:.3} ms p99=+{:.3} ms (target: p99 < 2 ms)",
        quantile(&routed, 0.5) - quantile(&direct, 0.5),
        quantile(&routed, 0.99) - quantile(&direct, 0.99)
    );
    let overhead = &state.metrics.overhead;
    println!(
        "  router work before calling the upstream (auth, choice, body, headers): mean {:.1} us",
        overhead.get_sample_sum() / overhead.get_sample_count().max(1) as f64 * 1e6
    );
    Ok(())
}
