//! The router over real loopback HTTP: small variant servers behind an in-process router.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod route_support;

use std::time::Duration;

use futures_util::StreamExt;
use llamafleet_crds::routing::{PIN_HEADER, RoutedReplicas, RoutedShadow, RoutedTier};
use route_support::{
    Behaviour, Router, answered_by, blue_green, eventually, free_address, json_of, table, upstream,
    upstream_on, variant,
};
use serde_json::{Value, json};

const TEN_SECONDS: Duration = Duration::from_secs(10);

fn tier(name: &str, requests: u32, tokens: Option<i64>) -> RoutedTier {
    RoutedTier {
        name: name.into(),
        requests_per_hour: requests,
        tokens_per_hour: tokens,
    }
}

#[tokio::test]
async fn pins_stickiness_and_unknown_pins_in_the_routes_flavor() {
    let (_blue, _green, mut t) = blue_green(50, 50).await;
    t.sticky_header = Some("x-user".into());
    let router = Router::start(&t).await;
    let pinned = router
        .chat(json!({}))
        .header(PIN_HEADER, "green")
        .send()
        .await
        .unwrap();
    assert_eq!(answered_by(&pinned), "green");
    let body: Value = json_of(pinned).await;
    assert_eq!(body["choices"][0]["message"]["content"], "hello from green");
    // One user stays on one variant; many users reach both.
    let mut seen = std::collections::HashSet::new();
    for user in 0..20 {
        let mut first = None;
        for _ in 0..3 {
            let r = router
                .chat(json!({}))
                .header("x-user", user.to_string())
                .send()
                .await
                .unwrap();
            let by = answered_by(&r);
            assert_eq!(first.get_or_insert(by.clone()), &by, "user {user} moved");
        }
        seen.insert(first.unwrap());
    }
    assert_eq!(seen.len(), 2, "20 users all on one variant");
    let unknown = router
        .chat(json!({}))
        .header(PIN_HEADER, "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let body: Value = json_of(unknown).await;
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    let ollama = router
        .client
        .post(format!("{}/api/chat", router.base))
        .header(PIN_HEADER, "nope")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(ollama.status(), 400);
    assert!(json_of(ollama).await["error"].is_string());
    let models = router
        .client
        .get(format!("{}/v1/models", router.base))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(models).await["data"][0]["id"], "m");
}

#[tokio::test]
async fn weights_reload_while_a_stream_is_in_flight() {
    let (_blue, _green, mut t) = blue_green(100, 0).await;
    let router = Router::start(&t).await;
    let stream = router
        .chat(json!({"stream": true, "max_tokens": 20, "delay_ms": 50}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered_by(&stream), "blue");
    let mut body = stream.bytes_stream();
    let mut text = String::from_utf8(body.next().await.unwrap().unwrap().to_vec()).unwrap();
    // Move all traffic to green while blue is still streaming.
    t.variants[0].weight = 0;
    t.variants[1].weight = 100;
    router.write(&t);
    router.wait_for_revision("blue=0,green=100").await;
    for _ in 0..5 {
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!(answered_by(&r), "green");
    }
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert_eq!(text.matches("\"blue \"").count(), 20, "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // The new revision counts afresh: only green's five answers.
    let stats = router.stats().await;
    assert_eq!(stats.variant("green").unwrap().requests, 5);
    assert_eq!(stats.variant("blue").unwrap().requests, 0);
}

#[tokio::test]
async fn keys_are_required_and_spent_budgets_answer_429() {
    let blue = upstream("blue", Behaviour::Answer).await;
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("alice"), "free:key-a").unwrap();
    std::fs::write(keys.path().join("bob"), "metered:key-b").unwrap();
    let mut t = table(
        vec![variant("blue", &blue.url, 100)],
        vec![tier("free", 6, None), tier("metered", 1000, Some(20))],
    );
    t.router_replicas = 2; // each replica allows 3 requests of `free` per hour
    t.api_keys_dir = Some(keys.path().display().to_string());
    let router = Router::start(&t).await;
    let missing = router.chat(json!({})).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let body: Value = json_of(missing).await;
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let wrong = router
        .chat(json!({}))
        .bearer_auth("key-z")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    for left in ["2", "1", "0"] {
        let r = router
            .chat(json!({}))
            .header("x-api-key", "key-a")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit-requests"], "3");
        assert_eq!(r.headers()["x-ratelimit-remaining-requests"], left);
    }
    let refused = router
        .chat(json!({}))
        .bearer_auth("key-a")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 1200, "retry-after {retry}");
    assert_eq!(refused.headers()["x-ratelimit-remaining-requests"], "0");
    // Tokens are debited after the answer: 5 prompt + 8 generated spend bob's 10 (20 over two
    // replicas), and a spent token budget refuses the next request.
    let first = router
        .chat(json!({"max_tokens": 8}))
        .bearer_auth("key-b")
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["x-ratelimit-limit-tokens"], "10");
    assert_eq!(json_of(first).await["usage"]["total_tokens"], 13);
    let second = router
        .chat(json!({"max_tokens": 8}))
        .bearer_auth("key-b")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["x-ratelimit-remaining-tokens"], "0");
    let metrics = router.metrics().await;
    assert!(
        metrics.contains("llamafleet_router_unauthorized_total 2"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"llamafleet_router_rate_limited_total{budget="requests",tier="free"} 1"#)
    );
    assert!(
        metrics
            .contains(r#"llamafleet_router_rate_limited_total{budget="tokens",tier="metered"} 1"#)
    );
    // Keys reload: a new client file is accepted without a restart.
    std::fs::write(keys.path().join("carol"), "free:key-c").unwrap();
    let router = &router;
    eventually("new key loaded", TEN_SECONDS, || async move {
        let r = router.chat(json!({})).bearer_auth("key-c").send().await;
        (r.unwrap().status() == 200).then_some(())
    })
    .await;
    let seen = blue.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|h| !h.contains_key("authorization") && !h.contains_key("x-api-key"))
    );
}

#[tokio::test]
async fn failing_upstreams_count_as_errors() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let broken = upstream("broken", Behaviour::Fail).await;
    let cut = upstream("cut", Behaviour::Cut).await;
    let ok = upstream("ok", Behaviour::Answer).await;
    let t = table(
        vec![
            variant("ok", &ok.url, 100),
            variant("down", &refused, 0),
            variant("broken", &broken.url, 0),
            variant("cut", &cut.url, 0),
        ],
        vec![],
    );
    let router = Router::start(&t).await;
    // Pinned, so retried once on the same variant (another replica behind its Service).
    let down = router
        .chat(json!({}))
        .header(PIN_HEADER, "down")
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 502);
    assert_eq!(json_of(down).await["error"]["code"], "upstream_unavailable");
    let failed = router
        .chat(json!({}))
        .header(PIN_HEADER, "broken")
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let _ = failed.bytes().await;
    let streamed = router
        .chat(json!({"stream": true, "max_tokens": 5}))
        .header(PIN_HEADER, "cut")
        .send()
        .await
        .unwrap();
    assert!(
        streamed.bytes().await.is_err(),
        "a cut stream read as complete"
    );
    let fine = router.chat(json!({"stream": true})).send().await.unwrap();
    let _ = fine.bytes().await.unwrap();
    let stats = router.stats().await;
    // Every attempt counts (the rollout analysis sees each failure); a 500 or a cut stream
    // has begun answering, so it is not sent again.
    for (name, requests, errors) in [
        ("down", 2, 2),
        ("broken", 1, 1),
        ("cut", 1, 1),
        ("ok", 1, 0),
    ] {
        let v = stats.variant(name).unwrap();
        assert_eq!(
            (v.requests, v.errors),
            (requests, errors),
            "{name}: {stats:?}"
        );
    }
    let ok_stats = stats.variant("ok").unwrap();
    assert_eq!(ok_stats.tokens, 3);
    assert_eq!(*ok_stats.ttft_buckets.last().unwrap(), 1);
}

/// The value of a metric line that starts with `series` (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_dead_variant_costs_clients_nothing_and_is_ejected_until_it_answers_again() {
    // The trial that found it: two variants at 50/50, one of them dead.
    let dead_addr = free_address();
    let alive = upstream("alive", Behaviour::Answer).await;
    let t = table(
        vec![
            variant("alive", &alive.url, 50),
            variant("dead", &format!("http://{dead_addr}"), 50),
        ],
        vec![],
    );
    // Long enough that the checks below all run while it is ejected, short for the test.
    let router = Router::start_with(&t, |c| {
        c.outliers.base_ejection = Duration::from_secs(5);
    })
    .await;
    let ejected = "llamafleet_router_variant_ejected{variant=\"dead\"}";
    let mut sent = 0;
    while metric(&router.metrics().await, ejected) == 0.0 {
        assert!(sent < 100, "dead never ejected after {sent} requests");
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "request {sent} reached the client as a failure"
        );
        assert_eq!(answered_by(&r), "alive");
        sent += 1;
    }
    // Ejected after three failed attempts in a row; its share goes to the other variant.
    for _ in 0..10 {
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!(
            (r.status().as_u16(), answered_by(&r)),
            (200, "alive".into())
        );
    }
    let metrics = router.metrics().await;
    let series = |name: &str| metric(&metrics, name);
    assert_eq!(
        series("llamafleet_router_retries_total{reason=\"connect\",variant=\"dead\"}"),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        series("llamafleet_router_ejections_total{variant=\"dead\"}"),
        1.0
    );
    // The rollout analysis still sees every failure.
    let stats = router.stats().await;
    let dead = stats.variant("dead").unwrap();
    assert_eq!((dead.requests, dead.errors), (3, 3), "{stats:?}");
    let alive_stats = stats.variant("alive").unwrap();
    assert_eq!(alive_stats.requests, sent + 10);
    assert_eq!(alive_stats.errors, 0);

    // It comes back: after its ejection it is tried again and, answering, gets its share.
    let listener = tokio::net::TcpListener::bind(dead_addr).await.unwrap();
    let _revived = upstream_on(listener, "dead", Behaviour::Answer);
    eventually("the revived variant answers", TEN_SECONDS, || async {
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        (answered_by(&r) == "dead").then_some(())
    })
    .await;
    assert_eq!(metric(&router.metrics().await, ejected), 0.0);
}

#[tokio::test]
async fn a_busy_variant_passes_requests_on_without_being_ejected() {
    let busy = upstream("busy", Behaviour::Busy).await;
    let ok = upstream("ok", Behaviour::Answer).await;
    let t = table(
        vec![variant("busy", &busy.url, 50), variant("ok", &ok.url, 50)],
        vec![],
    );
    let router = Router::start(&t).await;
    for _ in 0..40 {
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!((r.status().as_u16(), answered_by(&r)), (200, "ok".into()));
    }
    let metrics = router.metrics().await;
    let retried = metric(
        &metrics,
        "llamafleet_router_retries_total{reason=\"busy\",variant=\"busy\"}",
    );
    assert!(
        retried >= 3.0,
        "a full variant says when to come back: {metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "llamafleet_router_ejections_total{variant=\"busy\"}"
        ),
        0.0,
        "busy is not broken"
    );
    // Pinned: one more try on the same variant, then its 503 (with Retry-After) as it is.
    let pinned = router
        .chat(json!({}))
        .header(PIN_HEADER, "busy")
        .send()
        .await
        .unwrap();
    assert_eq!(pinned.status(), 503);
    assert!(pinned.headers().contains_key("retry-after"));
    assert_eq!(busy.seen.lock().unwrap().len() as f64, retried + 2.0);
}

/// A router over one variant whose replicas are `replicas`, its first replica standing for
/// the variant's Service URL.
async fn router_over_replicas(replicas: Vec<String>) -> Router {
    let mut v = variant("main", &replicas[0], 100);
    v.replicas = Some(RoutedReplicas::Urls(replicas));
    Router::start(&table(vec![v], vec![])).await
}

/// Sends requests until `done` holds for the router's metrics (at most 100), each answered
/// 200 by `ok`; how many were sent.
async fn until(router: &Router, done: impl Fn(&str) -> bool) -> u64 {
    let mut sent = 0;
    loop {
        let metrics = router.metrics().await;
        if done(&metrics) {
            return sent;
        }
        assert!(sent < 100, "after {sent} requests: {metrics}");
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!(
            r.status(),
            200,
            "request {sent} reached the client as a failure"
        );
        let body = json_of(r).await;
        assert_eq!(body["choices"][0]["message"]["content"], "hello from ok");
        sent += 1;
    }
}

#[tokio::test]
async fn a_dead_replica_is_set_aside_and_its_request_answered_by_another_replica() {
    let dead = format!("http://{}", free_address());
    let ok = upstream("ok", Behaviour::Answer).await;
    let router = router_over_replicas(vec![dead, ok.url.clone()]).await;
    let set_aside = "llamafleet_router_replica_ejections_total{variant=\"main\"}";
    let sent = until(&router, |m| metric(m, set_aside) == 1.0).await;
    // Set aside for 30 s: every later request goes to the other replica at once.
    for _ in 0..10 {
        let r = router.chat(json!({})).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = router.metrics().await;
    assert_eq!(metric(&metrics, set_aside), 1.0, "{metrics}");
    let connect = "llamafleet_router_retries_total{reason=\"connect\",variant=\"main\"}";
    assert_eq!(metric(&metrics, connect), 1.0);
    assert_eq!(
        metric(&metrics, "llamafleet_router_replicas{variant=\"main\"}"),
        2.0
    );
    // The only variant: the retry went to its other replica; both attempts count.
    let stats = router.stats().await;
    assert_eq!(stats.variant("main").unwrap().requests, sent + 10 + 1);
    assert_eq!(stats.variant("main").unwrap().errors, 1);
}

#[tokio::test]
async fn a_busy_replica_passes_its_request_to_a_replica_with_a_free_slot() {
    let busy = upstream("busy", Behaviour::Busy).await;
    let ok = upstream("ok", Behaviour::Answer).await;
    let router = router_over_replicas(vec![busy.url.clone(), ok.url.clone()]).await;
    let retried = "llamafleet_router_retries_total{reason=\"busy\",variant=\"main\"}";
    until(&router, |m| metric(m, retried) >= 3.0).await;
    let metrics = router.metrics().await;
    // Busy is not broken: never set aside.
    assert_eq!(
        metric(
            &metrics,
            "llamafleet_router_replica_ejections_total{variant=\"main\"}"
        ),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        busy.seen.lock().unwrap().len() as f64,
        metric(&metrics, retried)
    );
}

#[tokio::test]
async fn a_bad_table_keeps_the_last_good_one() {
    let blue = upstream("blue", Behaviour::Answer).await;
    let t = table(vec![variant("blue", &blue.url, 100)], vec![]);
    let router = Router::start(&t).await;
    router.write_text("variants: [this is not a table");
    let router = &router;
    let error = r#"llamafleet_router_config_loads_total{result="error",what="table"} 1"#;
    eventually("bad table noticed", TEN_SECONDS, || async move {
        router.metrics().await.contains(error).then_some(())
    })
    .await;
    let r = router.chat(json!({})).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), answered_by(&r)),
        (200, "blue".to_string())
    );
    assert_eq!(router.stats().await.revision, "blue=100");
}

#[tokio::test]
async fn shadow_copies_are_compared_without_touching_the_answer() {
    let (_blue, green, mut t) = blue_green(100, 0).await;
    t.shadow = Some(RoutedShadow {
        variant: "green".into(),
        percent: 100,
    });
    let router = Router::start(&t).await;
    let r = router.chat(json!({"stream": true})).send().await.unwrap();
    assert_eq!(answered_by(&r), "blue");
    let text = r.text().await.unwrap();
    assert_eq!(text.matches("\"blue \"").count(), 3, "{text}");
    assert!(!text.contains("green"));
    let router = &router;
    let shadow = eventually("shadow compared", TEN_SECONDS, || async move {
        let stats = router.stats().await;
        stats
            .variant("green")?
            .shadow
            .clone()
            .filter(|s| s.compared == 1)
    })
    .await;
    assert_eq!(
        (shadow.requests, shadow.errors, shadow.exact_matches),
        (1, 0, 0)
    );
    // "blue blue blue " against "green green green ": some letters in common.
    assert!(
        shadow.similarity_sum > 0.0 && shadow.similarity_sum < 1.0,
        "{shadow:?}"
    );
    assert_eq!(green.seen.lock().unwrap().len(), 1);
    assert_eq!(router.stats().await.variant("green").unwrap().requests, 0);
}
