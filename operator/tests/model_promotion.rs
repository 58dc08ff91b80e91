//! Policy `Rollout` on the model's side against the scripted mock API (every request
//! asserted): the model follows its candidate through the deployments' rollouts, makes it the
//! resolved revision once they all promoted it, or marks it rolled back, with an Event each;
//! a rolled-back revision found again by the next check is not rolled out again.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod model_support;
mod source_server;
mod support;

use std::time::Duration;

use kube::runtime::controller::Action;
use llamafleet_crds::{LlmModel, UpdatePolicy};
use llamafleet_gguf::writer::GgufWriter;
use llamafleet_operator::model::promotion::RECHECK;
use model_support::*;
use serde_json::{Value, json};
use source_server::{LAST_MODIFIED, SourceServer};
use support::{Call, Reply};

const DEPLOYMENTS: &str = "/apis/llamafleet.dev/v1alpha1/namespaces/default/llmdeployments?";
/// Between the hourly ticks: no check is due, only the rollout is followed.
const BETWEEN_TICKS: &str = "2026-01-02T04:10:00Z";

/// A model resolved to version 1 whose source now serves version 2, recorded as the
/// candidate rolling out to `chat`; the status and the candidate's tag.
async fn rolling() -> (SourceServer, LlmModel, Value, String) {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let server = SourceServer::start(bytes.clone()).await;
    let m = model(&server.hf_url(), UpdatePolicy::Rollout, None);
    let mut status = first_status(&server, bytes.len());
    server.replace(GgufWriter::tiny_llama(2).to_bytes());
    let new = server.content();
    status["status"]["lastUpdateCheck"] = json!("2026-01-02T04:00:00Z");
    status["status"]["candidate"] = candidate(&server, "2026-01-02T04:00:00Z", 2);
    status["status"]["candidate"]["rolloutTo"] = json!(["chat"]);
    status["status"]["conditions"][3] = cond(
        "UpdateAvailable",
        "True",
        "NewRevision",
        &format!("source changed: {}", new.sha256()),
        "2026-01-02T04:00:00Z",
    );
    let tag = new.sha256()[..8].to_string();
    (server, with_status(&m, &status), status, tag)
}

/// The LlmDeployment list with `chat` (variant `a` on `m`) at this status.
fn deployments(status: Value) -> Call {
    let chat = json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "metadata": {"name": "chat", "namespace": "default"},
        "spec": {"variants": [{"name": "a", "model": "m", "weight": 100}],
                 "rollout": {"strategy": "Progressive"}},
        "status": status});
    let list = json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeploymentList",
        "metadata": {"resourceVersion": "1"}, "items": [chat]});
    Call::get(DEPLOYMENTS, Reply::Json(list))
}

/// A check with policy `Rollout` lists the deployments (here: none any more).
fn empty_list() -> Call {
    let list = json!({"apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeploymentList",
        "metadata": {"resourceVersion": "1"}, "items": []});
    Call::get(DEPLOYMENTS, Reply::Json(list))
}

fn event(type_: &str, reason: &str, note: &str) -> Call {
    Call::event(
        "default",
        json!({"type": type_, "reason": reason, "note": note,
               "regarding": {"kind": "LlmModel", "name": "m", "uid": "uid-m"}}),
    )
}

#[tokio::test]
async fn a_candidate_still_rolling_out_is_looked_at_again_soon_without_a_write() {
    let (_server, m, _, tag) = rolling().await;
    let clock = FakeClock::at(BETWEEN_TICKS);
    let midway = json!({"variants": [{"name": "a", "weight": 75}, {"name": format!("a-{tag}"), "weight": 25}],
                        "rollout": {"phase": "Progressing", "candidate": format!("a-{tag}")}});
    let action = reconcile(&m, &clock, vec![deployments(midway)]).await;
    assert_eq!(action, Action::requeue(RECHECK));
}

#[tokio::test]
async fn promoted_in_every_deployment_the_candidate_becomes_the_resolved_revision() {
    let (server, m, status, tag) = rolling().await;
    let clock = FakeClock::at(BETWEEN_TICKS);
    let promoted = json!({"variants": [{"name": "a", "weight": 0}, {"name": format!("a-{tag}"), "weight": 100}],
                          "rollout": {"phase": "Promoted", "candidate": format!("a-{tag}")}});
    let new = server.content();
    let c = &status["status"]["candidate"];
    let mut adopted = status.clone();
    let s = &mut adopted["status"];
    s["resolved"] = json!({"sha256": c["sha256"], "sizeBytes": c["sizeBytes"], "size": c["size"],
                           "etag": c["etag"], "revision": c["revision"], "url": c["url"],
                           // Still resolved from the spec's URL: a later spec edit keeps it.
                           "sourceUrl": server.hf_url(), "lastModified": LAST_MODIFIED});
    s["gguf"] = c["gguf"].clone();
    s["memory"] = c["memory"].clone();
    s.as_object_mut().unwrap().remove("candidate");
    let note = format!("revision {tag} promoted in chat; it is now the resolved revision");
    s["conditions"][3] = cond("UpdateAvailable", "False", "Promoted", &note, BETWEEN_TICKS);
    assert_eq!(adopted["status"]["resolved"]["sha256"], json!(new.sha256()));
    let calls = vec![
        deployments(promoted),
        Call::status(STATUS, adopted.clone(), &m),
        event("Normal", "UpdatePromoted", &note),
    ];
    // Back to the schedule: the next hourly tick.
    let action = reconcile(&m, &clock, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(50 * 60)));

    // The next check finds the promoted revision: up to date, nothing rolls out.
    let m = with_status(&m, &adopted);
    clock.set("2026-01-02T05:00:00Z");
    let mut checked = checked_at(&adopted, "2026-01-02T05:00:00Z", "update check succeeded");
    // Still no update available since the promotion: the transition time stays.
    checked["status"]["conditions"][3] =
        cond("UpdateAvailable", "False", "UpToDate", "", BETWEEN_TICKS);
    let calls = vec![empty_list(), Call::status(STATUS, checked, &m)];
    let action = reconcile(&m, &clock, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
}

#[tokio::test]
async fn rolled_back_in_a_deployment_the_candidate_is_marked_and_not_tried_again() {
    let (_server, m, status, tag) = rolling().await;
    let clock = FakeClock::at(BETWEEN_TICKS);
    let why = format!("a-{tag} failed analysis at 10%: error rate 0.5000 (5 of 10) > 0.05");
    let rolled_back = json!({"variants": [{"name": "a", "weight": 100}, {"name": format!("a-{tag}"), "weight": 0}],
                             "rollout": {"phase": "RolledBack", "candidate": format!("a-{tag}"), "reason": why}});
    let mut marked = status.clone();
    let s = &mut marked["status"];
    s["candidate"]["rolledBack"] = json!(format!("rolled back in chat: {why}"));
    let note = format!(
        "rolled back in chat: {why}; the next check that finds another revision replaces it"
    );
    // Still an update available (since the check at 04:00), now rolled back.
    s["conditions"][3] = cond(
        "UpdateAvailable",
        "True",
        "RolledBack",
        &note,
        "2026-01-02T04:00:00Z",
    );
    let calls = vec![
        deployments(rolled_back),
        Call::status(STATUS, marked.clone(), &m),
        event("Warning", "UpdateRolledBack", &note),
    ];
    let action = reconcile(&m, &clock, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(50 * 60)));

    // Rolled back: no more looking at the deployments between ticks.
    let m = with_status(&m, &marked);
    assert_eq!(
        reconcile(&m, &clock, vec![]).await,
        Action::requeue(Duration::from_secs(50 * 60))
    );

    // The next check finds the same revision: it stays rolled back (the deployments get no
    // update variant for it), and nothing is announced again.
    clock.set("2026-01-02T05:00:00Z");
    let mut kept = checked_at(&marked, "2026-01-02T05:00:00Z", "update check succeeded");
    // No deployment uses the model any more: the list is recomputed (empty, so omitted).
    kept["status"]["candidate"]
        .as_object_mut()
        .unwrap()
        .remove("rolloutTo");
    let calls = vec![empty_list(), Call::status(STATUS, kept, &m)];
    let action = reconcile(&m, &clock, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
}

#[tokio::test]
async fn a_newer_revision_waits_while_the_candidate_is_still_rolling_out() {
    let (server, m, status, tag) = rolling().await;
    server.replace(GgufWriter::tiny_llama(3).to_bytes());
    let clock = FakeClock::at("2026-01-02T05:00:00Z");
    let midway = json!({"variants": [{"name": "a", "weight": 75}, {"name": format!("a-{tag}"), "weight": 25}],
                        "rollout": {"phase": "Progressing", "candidate": format!("a-{tag}")}});
    // The check runs, but the candidate (and the update variants carrying traffic) stay.
    let kept = checked_at(
        &status,
        "2026-01-02T05:00:00Z",
        "update check succeeded; the candidate is still rolling out",
    );
    // After the check the rollout is followed as between ticks: looked at again soon.
    let calls = vec![
        deployments(midway.clone()),
        Call::status(STATUS, kept, &m),
        deployments(midway),
    ];
    let action = reconcile(&m, &clock, calls).await;
    assert_eq!(action, Action::requeue(RECHECK));
}

/// With a short schedule every reconcile can land on a check (each requeues at the next
/// tick): the check must not keep a rollback from being recorded (CI saw the model wait for
/// it forever once deployment events stopped waking the model between ticks).
#[tokio::test]
async fn a_check_that_lands_after_a_rollback_records_it() {
    let (_server, m, status, tag) = rolling().await;
    let clock = FakeClock::at("2026-01-02T05:00:00Z");
    let why = format!("a-{tag} failed analysis at 10%: error rate 0.5000 (5 of 10) > 0.05");
    let rolled_back = json!({"variants": [{"name": "a", "weight": 100}, {"name": format!("a-{tag}"), "weight": 0}],
                             "rollout": {"phase": "RolledBack", "candidate": format!("a-{tag}"), "reason": why}});
    let checked = checked_at(&status, "2026-01-02T05:00:00Z", "update check succeeded");
    let mut marked = checked.clone();
    let s = &mut marked["status"];
    s["candidate"]["rolledBack"] = json!(format!("rolled back in chat: {why}"));
    let note = format!(
        "rolled back in chat: {why}; the next check that finds another revision replaces it"
    );
    s["conditions"][3] = cond(
        "UpdateAvailable",
        "True",
        "RolledBack",
        &note,
        "2026-01-02T04:00:00Z",
    );
    let checked_model = with_status(&m, &checked);
    let calls = vec![
        deployments(rolled_back.clone()),
        Call::status(STATUS, checked, &m),
        deployments(rolled_back),
        Call::status(STATUS, marked, &checked_model),
        event("Warning", "UpdateRolledBack", &note),
    ];
    let action = reconcile(&m, &clock, calls).await;
    assert_eq!(action, Action::requeue(Duration::from_secs(3600)));
}
