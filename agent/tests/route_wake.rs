//! Sleeping variants through a real router on loopback: a variant whose address refuses
//! connections (nothing listens: no ready replica) and that the table marks as able to sleep
//! has its requests held until it answers `/readyz`, then served; past the wake timeout or
//! the bound of held requests the client gets a 503 with `Retry-After`. The routers report
//! each variant's idle time to the operator.
//!
//! No API server here: the router's scale-up fails and is retried, while the "replica" (a
//! variant server started on the sleeping address) comes up by itself. The scale-up itself
//! runs against a real API server in tests/e2e/real_pods.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod route_support;

use std::time::Duration;

use llamafleet_crds::routing::{RoutedWake, RoutingTable};
use route_support::*;
use serde_json::json;

fn sleepy_table(url: &str, timeout_seconds: u64, max_held: u32) -> RoutingTable {
    let mut main = variant("main", url, 100);
    main.deployment = Some("chat-main".into());
    RoutingTable {
        wake: Some(RoutedWake {
            namespace: "default".into(),
            timeout_seconds,
            max_held,
        }),
        ..RoutingTable::open(vec![main])
    }
}

fn hello() -> serde_json::Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
}

#[tokio::test]
async fn a_request_for_a_sleeping_variant_is_held_until_it_wakes() {
    let addr = free_address();
    let router = Router::start(&sleepy_table(&format!("http://{addr}"), 60, 10)).await;
    let held = tokio::spawn(router.chat(hello()).send());
    eventually("the request held", Duration::from_secs(10), || async {
        let metrics = router.metrics().await;
        metrics
            .contains(r#"llamafleet_router_held_requests{variant="main"} 1"#)
            .then_some(())
    })
    .await;
    // The replica comes up on the variant's address.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _main = upstream_on(listener, "main", Behaviour::Answer);
    let response = held.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(answered_by(&response), "main");
    let body = json_of(response).await;
    assert_eq!(body["choices"][0]["message"]["content"], "hello from main");
    let metrics = router.metrics().await;
    assert!(
        metrics.contains(r#"llamafleet_router_wakes_total{result="ok",variant="main"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"llamafleet_router_held_requests{variant="main"} 0"#),
        "{metrics}"
    );
    // Awake now: the next request goes straight through.
    let again = router.chat(hello()).send().await.unwrap();
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn a_variant_that_does_not_wake_in_time_gets_a_503_with_retry_after() {
    let addr = free_address();
    let router = Router::start(&sleepy_table(&format!("http://{addr}"), 1, 10)).await;
    let response = router.chat(hello()).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body = json_of(response).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("variant main did not wake within 1 s"),
        "{message}"
    );
    let stats = router.stats().await;
    let main = stats.variant("main").unwrap();
    assert_eq!((main.requests, main.errors), (1, 1));
}

#[tokio::test]
async fn requests_past_the_held_bound_are_refused_at_once() {
    let addr = free_address();
    let router = Router::start(&sleepy_table(&format!("http://{addr}"), 30, 1)).await;
    let first = tokio::spawn(router.chat(hello()).send());
    eventually(
        "the first request held",
        Duration::from_secs(10),
        || async {
            let metrics = router.metrics().await;
            metrics
                .contains(r#"llamafleet_router_held_requests{variant="main"} 1"#)
                .then_some(())
        },
    )
    .await;
    let second = router.chat(hello()).send().await.unwrap();
    assert_eq!(second.status(), 503);
    let body = json_of(second).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("already holds 1 requests"), "{message}");
    // The first one is still served once the variant is up.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _main = upstream_on(listener, "main", Behaviour::Answer);
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
}

#[tokio::test]
async fn a_variant_that_cannot_sleep_is_a_502_at_once() {
    let addr = free_address();
    let table = RoutingTable::open(vec![variant("main", &format!("http://{addr}"), 100)]);
    let router = Router::start(&table).await;
    let response = router.chat(hello()).send().await.unwrap();
    assert_eq!(response.status(), 502);
}

#[tokio::test]
async fn routers_report_how_long_each_variant_they_can_wake_went_without_a_request() {
    let (blue, green, mut table) = blue_green(100, 0).await;
    let _keep = (&blue, &green);
    table.wake = Some(RoutedWake {
        namespace: "default".into(),
        timeout_seconds: 30,
        max_held: 10,
    });
    for v in &mut table.variants {
        v.deployment = Some(format!("chat-{}", v.name));
    }
    let router = Router::start(&table).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = router.chat(hello()).send().await.unwrap();
    assert_eq!(answered_by(&sent), "blue");
    let idle = router.stats().await.idle_seconds;
    assert_eq!(idle.keys().collect::<Vec<_>>(), ["blue", "green"]);
    // Green has had none since the router started, before blue's request.
    assert!(idle["blue"] < idle["green"], "{idle:?}");

    // A table without wake settings: nothing to report, so the operator never puts its
    // variants to sleep on this replica's word.
    let (blue, green, plain) = blue_green(100, 0).await;
    let _keep = (&blue, &green);
    let router = Router::start(&plain).await;
    assert!(router.stats().await.idle_seconds.is_empty());
}

#[tokio::test]
async fn a_client_that_leaves_while_held_gives_its_place_back() {
    let addr = free_address();
    let router = Router::start(&sleepy_table(&format!("http://{addr}"), 60, 10)).await;
    let gone = router
        .chat(hello())
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up while held");
    eventually(
        "the held place given back",
        Duration::from_secs(10),
        || async {
            let metrics = router.metrics().await;
            metrics
                .contains(r#"llamafleet_router_held_requests{variant="main"} 0"#)
                .then_some(())
        },
    )
    .await;
}
