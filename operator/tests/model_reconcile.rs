//! LlmModel reconcile scenarios: a scripted mock API (every status patch and Event asserted)
//! against a real source on 127.0.0.1 whose content changes between checks, with a clock the
//! test moves to drive the update schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod model_support;
mod source_server;
mod support;

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use kube::client::Body;
use kube::runtime::controller::Action;
use llamafleet_crds::UpdatePolicy;
use llamafleet_gguf::writer::GgufWriter;
use llamafleet_operator::model::{self, fetch::Fetcher, schedule::time};
use model_support::*;
use serde_json::json;
use source_server::SourceServer;
use support::{Call, NOW, Reply};

#[tokio::test]
async fn notify_resolves_then_checks_on_the_cron_tick_and_records_a_candidate() {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let server = SourceServer::start(bytes.clone()).await;
    let clock = FakeClock::at(NOW);
    let m = model(&server.hf_url(), UpdatePolicy::Notify, Some("F32"));

    // First reconcile: resolve, pin, and requeue at the next hourly tick (04:00:00).
    let first = first_status(&server, bytes.len());
    let call = Call::status(STATUS, first.clone(), &m);
    assert_eq!(
        reconcile(&m, &clock, vec![call]).await,
        Action::requeue(Duration::from_secs(55 * 60 + 55))
    );
    let m = with_status(&m, &first);

    // Same time again (a restart, a relist): no request to the source, no write.
    let before = server.seen().len();
    assert_eq!(
        reconcile(&m, &clock, vec![]).await,
        Action::requeue(Duration::from_secs(55 * 60 + 55))
    );
    assert_eq!(server.seen().len(), before, "source contacted off schedule");

    // The upstream file changes; at the tick the check finds it.
    let old = server.content();
    server.replace(GgufWriter::tiny_llama(1).to_bytes());
    let new = server.content();
    clock.set("2026-01-02T04:00:01Z");
    let mut checked = checked_at(&first, "2026-01-02T04:00:01Z", "update check succeeded");
    let s = &mut checked["status"];
    // The candidate carries its own header's figures (one more vocabulary row here).
    s["candidate"] = candidate(&server, "2026-01-02T04:00:01Z", 1);
    let changed = format!("source changed: {}", new.sha256());
    s["conditions"][3] = cond(
        "UpdateAvailable",
        "True",
        "NewRevision",
        &changed,
        "2026-01-02T04:00:01Z",
    );
    // Nothing deployments use changes.
    assert_eq!(s["resolved"]["sha256"], json!(old.sha256()));
    let calls = vec![
        Call::status(STATUS, checked.clone(), &m),
        Call::event(
            "default",
            json!({"type": "Normal", "reason": "UpdateAvailable", "note": changed,
                   "regarding": {"kind": "LlmModel", "name": "m", "uid": "uid-m"}}),
        ),
    ];
    assert_eq!(
        reconcile(&m, &clock, calls).await,
        Action::requeue(Duration::from_secs(3599))
    );
    let m = with_status(&m, &checked);

    // Half an hour later: not due, silent.
    clock.set("2026-01-02T04:30:00Z");
    assert_eq!(
        reconcile(&m, &clock, vec![]).await,
        Action::requeue(Duration::from_secs(30 * 60))
    );

    // Next tick, same candidate: only lastUpdateCheck moves; no second Event.
    clock.set("2026-01-02T05:00:00Z");
    let mut again = checked.clone();
    again["status"]["lastUpdateCheck"] = json!("2026-01-02T05:00:00Z");
    assert_eq!(
        reconcile(&m, &clock, vec![Call::status(STATUS, again, &m)]).await,
        Action::requeue(Duration::from_secs(3600))
    );
}

#[tokio::test]
async fn unreachable_source_fails_with_the_error_and_backs_off() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{closed}/m.gguf");
    let m = model(&url, UpdatePolicy::Disabled, None);
    let clock = FakeClock::at(NOW);
    let (ctx, handle) = context(&clock);
    let calls = vec![
        status_has(
            &m,
            json!({"phase": "Failed", "observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "False", "reason": "SourceUnreachable"},
                {"type": "SourceReachable", "status": "False", "reason": "SourceUnreachable"},
            ]}),
        ),
        Call::event(
            "default",
            json!({"type": "Warning", "reason": "SourceUnreachable"}),
        ),
    ];
    let action = reconcile_with(&m, &ctx, handle, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));

    // Read back what was written; the next failure writes nothing and waits longer.
    let now = time(NOW).unwrap();
    let err = model::resolve::resolve(&Fetcher::new().unwrap(), &m, None)
        .await
        .unwrap_err();
    let failed = model::desired::failed(&m, &now, &err);
    let message = &failed.conditions[0].message;
    assert!(message.starts_with(&format!("HEAD {url}: ")), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    let mut m = m;
    m.status = Some(failed);
    let (_, handle) = context(&clock);
    let action = reconcile_with(&m, &ctx, handle, vec![]).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
}

#[tokio::test]
async fn declared_quantization_is_checked_against_the_file() {
    let server = SourceServer::start(GgufWriter::tiny_llama(0).to_bytes()).await;
    let m = model(&server.plain_url(), UpdatePolicy::Disabled, Some("Q4_K_M"));
    let degraded = cond(
        "Degraded",
        "True",
        "QuantizationMismatch",
        "spec declares quantization Q4_K_M but the file is F32",
        NOW,
    );
    let calls = vec![
        status_has(
            &m,
            json!({"phase": "Ready", "conditions": [{"type": "Ready"}, {}, degraded]}),
        ),
        Call::event(
            "default",
            json!({"type": "Warning", "reason": "QuantizationMismatch",
                   "note": "spec declares quantization Q4_K_M but the file is F32"}),
        ),
    ];
    // Policy Disabled: no lastUpdateCheck, no schedule, wait for a change.
    let action = reconcile(&m, &FakeClock::at(NOW), calls).await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn rollout_policy_names_the_progressive_deployments_using_the_model() {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let server = SourceServer::start(bytes.clone()).await;
    let m = model(&server.hf_url(), UpdatePolicy::Rollout, None);
    let m = with_status(&m, &first_status(&server, bytes.len()));
    server.replace(GgufWriter::tiny_llama(2).to_bytes());
    let clock = FakeClock::at("2026-01-02T04:00:00Z");
    let deployment = |name: &str, model: &str, strategy: &str| {
        json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
               "metadata": {"name": name, "namespace": "default"},
               "spec": {"variants": [{"name": "a", "model": model, "weight": 100}],
                        "rollout": {"strategy": strategy}}})
    };
    let list = json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeploymentList",
        "metadata": {"resourceVersion": "1"},
        "items": [deployment("chat", "m", "Progressive"), deployment("manual", "m", "Manual"),
                  deployment("other", "x", "Progressive")]});
    let list = || {
        Call::get(
            "/apis/llamafleet.dev/v1alpha1/namespaces/default/llmdeployments?",
            Reply::Json(list.clone()),
        )
    };
    let calls = vec![
        list(),
        status_has(&m, json!({"candidate": {"rolloutTo": ["chat"]}})),
        Call::event(
            "default",
            json!({"type": "Normal", "reason": "UpdateAvailable"}),
        ),
        // The new candidate's rollout is followed at once: not started yet, looked at soon.
        list(),
    ];
    assert_eq!(
        reconcile(&m, &clock, calls).await,
        Action::requeue(llamafleet_operator::model::promotion::RECHECK)
    );
}

#[tokio::test]
async fn file_on_the_node_only_is_ready_with_an_explanation() {
    let m = model(
        "file:///var/lib/llamafleet/models/absent.gguf",
        UpdatePolicy::Disabled,
        None,
    );
    let body = patch(json!({
        "phase": "Ready",
        "resolved": {"url": "file:///var/lib/llamafleet/models/absent.gguf"},
        "conditions": [cond("Ready", "True", "VerifyOnNode",
            "/var/lib/llamafleet/models/absent.gguf is not on the operator's filesystem; the agent verifies it on the node", NOW)],
        "observedGeneration": 1,
    }));
    let call = Call::status(STATUS, body.clone(), &m);
    assert_eq!(
        reconcile(&m, &FakeClock::at(NOW), vec![call]).await,
        Action::await_change()
    );
    let m = with_status(&m, &body);
    assert_eq!(
        reconcile(&m, &FakeClock::at(NOW), vec![]).await,
        Action::await_change()
    );
}

/// The auth Secret is read (a GET the chart's ClusterRole must grant: `get secrets`) and its
/// token goes to the source's origin only. Answered by hand rather than by `support::serve`,
/// which would also check the request against the chart's RBAC.
#[tokio::test]
async fn auth_secret_token_goes_to_the_source_origin_only() {
    use llamafleet_crds::SecretKeyRef;

    let server = SourceServer::start(GgufWriter::tiny_llama(0).to_bytes()).await;
    let mut m = model(&server.hf_url(), UpdatePolicy::Disabled, None);
    m.spec.source.auth_secret_ref = Some(SecretKeyRef {
        name: "hf".into(),
        key: None,
    });
    let answer = serde_json::to_vec(&m).unwrap();
    let (ctx, mut handle) = context(&FakeClock::at(NOW));
    let api = tokio::spawn(async move {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(
            (req.method().as_str(), req.uri().to_string().as_str()),
            ("GET", "/api/v1/namespaces/default/secrets/hf")
        );
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "hf", "namespace": "default"},
            "data": {"token": "aGZfc2VjcmV0"}});
        send.send_response(Response::new(Body::from(
            serde_json::to_vec(&secret).unwrap(),
        )));
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.uri().path(), STATUS);
        send.send_response(Response::new(Body::from(answer)));
    });
    let action = model::reconcile(Arc::new(m), ctx).await.unwrap();
    api.await.unwrap();
    assert_eq!(action, Action::await_change());
    let seen = server.seen();
    assert!(seen.iter().any(|s| s.port == server.cdn.port()));
    for s in seen {
        let expected = (s.port == server.hub.port()).then(|| "Bearer hf_secret".to_string());
        assert_eq!(s.authorization, expected, "{s:?}");
    }
}
