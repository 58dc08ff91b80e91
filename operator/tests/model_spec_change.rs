//! A new generation of an LlmModel whose source stays the same (a schedule, a template, the
//! declared quantization changed) keeps the resolved file: a spec edit must not swap what the
//! deployments serve behind a rollout's back. A new source URL is resolved afresh. Scripted
//! mock API (every status patch and Event asserted) against a real loopback source.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod model_support;
mod source_server;
mod support;

use std::time::Duration;

use kube::runtime::controller::Action;
use llamafleet_crds::{LlmModel, UpdatePolicy};
use llamafleet_gguf::writer::GgufWriter;
use model_support::*;
use serde_json::{Value, json};
use source_server::SourceServer;
use support::{Call, NOW};

/// `m` resolved from `server` at NOW, then edited: generation 2 with `edit` applied.
async fn edited(
    policy: UpdatePolicy,
    edit: impl FnOnce(&mut LlmModel),
) -> (SourceServer, LlmModel, Value) {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let server = SourceServer::start(bytes.clone()).await;
    let first = first_status(&server, bytes.len());
    let mut m = with_status(&model(&server.hf_url(), policy, None), &first);
    m.metadata.generation = Some(2);
    edit(&mut m);
    (server, m, first)
}

fn cond2(type_: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
    let mut c = cond(type_, status, reason, message, at);
    c["observedGeneration"] = json!(2);
    c
}

#[tokio::test]
async fn a_spec_edit_keeps_the_resolved_file_and_a_changed_source_becomes_the_candidate() {
    let (server, m, first) = edited(UpdatePolicy::Notify, |m| {
        m.spec.update.as_mut().unwrap().schedule = Some("30 * * * *".into());
    })
    .await;
    let old = server.content();
    server.replace(GgufWriter::tiny_llama(1).to_bytes());
    let new = server.content();
    let at = "2026-01-02T03:10:00Z";
    let changed = format!("source changed: {}", new.sha256());
    let pinned = first["status"]["resolved"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = format!("resolved {pinned} (kept across the spec change)");
    let calls = vec![
        status_has(
            &m,
            json!({
                "phase": "Ready",
                "observedGeneration": 2,
                "lastUpdateCheck": at,
                "resolved": {"sha256": old.sha256(), "sourceUrl": server.hf_url()},
                "candidate": {"sha256": new.sha256(), "detectedAt": at},
                "conditions": [
                    cond2("Ready", "True", "Resolved", &kept, NOW),
                    cond2("SourceReachable", "True", "Checked", "update check succeeded", NOW),
                    cond2("Degraded", "False", "AsExpected", "", NOW),
                    cond2("UpdateAvailable", "True", "NewRevision", &changed, at),
                ],
            }),
        ),
        Call::event(
            "default",
            json!({"type": "Normal", "reason": "UpdateAvailable", "note": changed}),
        ),
    ];
    // The next tick of the new schedule is 03:30.
    assert_eq!(
        reconcile(&m, &FakeClock::at(at), calls).await,
        Action::requeue(Duration::from_secs(20 * 60))
    );
}

#[tokio::test]
async fn without_a_policy_a_changed_source_is_reported_and_the_resolved_file_stays() {
    let (server, m, _) = edited(UpdatePolicy::Disabled, |m| {
        m.spec.chat_template = Some("{{ messages }}".into());
    })
    .await;
    let old = server.content();
    server.replace(GgufWriter::tiny_llama(2).to_bytes());
    let note = format!(
        "the source now serves another file ({}); the resolved one stays: pin \
         spec.source.sha256 or set an update policy to take it",
        server.content().sha256()
    );
    let calls = vec![status_has(
        &m,
        json!({
            "phase": "Ready",
            "observedGeneration": 2,
            "resolved": {"sha256": old.sha256()},
            // No checking policy: no check time, no candidate, no UpdateAvailable.
            "conditions": [
                {"type": "Ready", "status": "True", "observedGeneration": 2},
                cond2("SourceReachable", "True", "Resolved", &note, NOW),
                {"type": "Degraded", "status": "False"},
            ],
        }),
    )];
    let action = reconcile(&m, &FakeClock::at("2026-01-02T03:10:00Z"), calls).await;
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_new_source_url_is_resolved_afresh() {
    let (server, m, _) = edited(UpdatePolicy::Disabled, |_| {}).await;
    let mut m = m;
    m.spec.source.url = server.plain_url();
    // The plain URL sends no Hugging Face facts: no sha256 or revision to pin.
    let calls = vec![status_has(
        &m,
        json!({
            "phase": "Ready",
            "observedGeneration": 2,
            "resolved": {"url": server.plain_url(), "sourceUrl": server.plain_url(),
                         "etag": server.content().etag()},
        }),
    )];
    let action = reconcile(&m, &FakeClock::at(NOW), calls).await;
    assert_eq!(action, Action::await_change());
    let seen = server.seen();
    assert!(seen.iter().any(|s| s.path == "/plain/m.gguf"), "{seen:?}");
}

/// The source goes away: a scheduled check, or a spec edit over the same source, keeps the
/// model Ready on its resolved file, says why in `SourceReachable`, and retries with backoff
/// (the check time and the observed generation stay, so the next reconcile tries again).
#[tokio::test]
async fn an_unreachable_source_keeps_the_resolved_file_and_retries() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/m.gguf", l.local_addr().unwrap())
    };
    let (_server, m, _) = edited(UpdatePolicy::Notify, |_| {}).await;
    let mut m = m;
    m.spec.source.url = closed.clone();
    let status = m.status.as_mut().unwrap();
    status.resolved.as_mut().unwrap().source_url = Some(closed.clone());
    let resolved = serde_json::to_value(&status.resolved).unwrap();

    let unreachable = |m: &LlmModel| {
        vec![
            status_has(
                m,
                json!({
                    "phase": "Ready",
                    "observedGeneration": 1,
                    "lastUpdateCheck": NOW,
                    "resolved": resolved,
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "SourceReachable", "status": "False",
                         "reason": "SourceUnreachable"},
                        {}, {},
                    ],
                }),
            ),
            Call::event(
                "default",
                json!({"type": "Warning", "reason": "SourceUnreachable"}),
            ),
        ]
    };
    // A spec edit (generation 2) over the same, now unreachable, source.
    let action = reconcile(&m, &FakeClock::at(NOW), unreachable(&m)).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));

    // A scheduled check at the tick (generation observed): the same.
    m.metadata.generation = Some(1);
    let action = reconcile(&m, &FakeClock::at("2026-01-02T04:00:00Z"), unreachable(&m)).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
}
