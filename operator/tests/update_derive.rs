//! Model updates through deployments (pure): the update variants a deployment gets while its
//! model rolls a candidate out, the hand-back after the model promoted or rolled it back, and
//! the model's judgement of the deployments' rollouts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use llamafleet_crds::{LlmDeployment, LlmDeploymentStatus, LlmModel};
use llamafleet_operator::deployment::plan::ResolvedModel;
use llamafleet_operator::model::promotion;
use llamafleet_operator::model::schedule::time;
use llamafleet_operator::update::adopt::{Verdict, judge};
use llamafleet_operator::update::derive::effective;
use llamafleet_operator::update::{self, candidate_tag, resolved_tag};
use serde_json::{Value, json};

const OLD_SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_SHA: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn resolved(sha: &str, rev: &str) -> Value {
    json!({"sha256": sha, "revision": rev, "etag": format!("\"{rev}\""),
           "url": format!("https://hub.example/o/r/resolve/{rev}/m.gguf"), "size": "1.0 GiB",
           "sizeBytes": 1_073_741_824})
}

fn gguf(ctx: i64, quant: &str) -> Value {
    json!({"architecture": "llama", "quantization": quant, "contextLength": ctx, "layers": 32,
           "vocabSize": 32000})
}

fn memory(weights: i64) -> Value {
    json!({"weightsBytes": weights, "kvBytesPerToken": 131072, "layerWeightsBytes": weights - 1000})
}

/// Model `m` with policy `policy`, resolved to the old file, with `candidate` (the new file).
fn model(policy: &str, candidate: Option<Value>) -> LlmModel {
    let mut status = json!({
        "phase": "Ready", "resolved": resolved(OLD_SHA, "r1"),
        "gguf": gguf(4096, "Q4_K_M"), "memory": memory(4_000_000_000_i64),
        "observedGeneration": 1,
    });
    if let Some(c) = candidate {
        status["candidate"] = c;
    }
    serde_json::from_value(json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmModel",
        "metadata": {"name": "m", "namespace": "default", "generation": 1},
        "spec": {"source": {"url": "https://hub.example/o/r/resolve/main/m.gguf"},
                 "update": {"schedule": "0 3 * * 1", "policy": policy}},
        "status": status,
    }))
    .unwrap()
}

fn new_candidate(rollout_to: &[&str]) -> Value {
    let mut c = resolved(NEW_SHA, "r2");
    c["gguf"] = gguf(8192, "Q5_K_M");
    c["memory"] = memory(5_000_000_000_i64);
    c["rolloutTo"] = json!(rollout_to);
    c
}

fn deployment(name: &str, strategy: &str, status: Option<Value>) -> LlmDeployment {
    let mut d = json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "metadata": {"name": name, "namespace": "default", "generation": 3},
        "spec": {"variants": [{"name": "main", "model": "m", "weight": 90},
                              {"name": "other", "model": "x", "weight": 10}],
                 "rollout": {"strategy": strategy}},
    });
    if let Some(s) = status {
        d["status"] = s;
    }
    serde_json::from_value(d).unwrap()
}

fn models(m: LlmModel) -> BTreeMap<String, Option<LlmModel>> {
    BTreeMap::from([("m".to_string(), Some(m)), ("x".to_string(), None)])
}

fn weights(d: &llamafleet_crds::LlmDeploymentSpec) -> Vec<(String, String, i32)> {
    d.variants
        .iter()
        .map(|v| (v.name.clone(), v.model.clone(), v.weight))
        .collect()
}

fn status(variants: Value, rollout: Value) -> LlmDeploymentStatus {
    serde_json::from_value(json!({"variants": variants, "rollout": rollout})).unwrap()
}

#[test]
fn tags_name_revisions_briefly_and_stably() {
    let c: llamafleet_crds::Candidate = serde_json::from_value(new_candidate(&[])).unwrap();
    assert_eq!(candidate_tag(&c), "22222222");
    let r: llamafleet_crds::ResolvedSource =
        serde_json::from_value(resolved(NEW_SHA, "r2")).unwrap();
    assert_eq!(
        resolved_tag(&r),
        "22222222",
        "promoted revision keeps its tag"
    );
    // Without a sha256, what names the revision decides: stable, and different per ETag.
    let a = update::tag(None, None, Some("\"v1\""), Some("http://h/m.gguf"));
    let b = update::tag(None, None, Some("\"v2\""), Some("http://h/m.gguf"));
    assert_eq!(a.len(), update::TAG_LEN);
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        a,
        update::tag(None, None, Some("\"v1\""), Some("http://h/m.gguf"))
    );
    assert_ne!(a, b);
}

#[test]
fn a_rolling_candidate_becomes_an_update_variant_with_the_variants_weight() {
    let m = model("Rollout", Some(new_candidate(&["chat"])));
    let d = deployment("chat", "Progressive", None);
    let e = effective("chat", &d.spec, None, &models(m.clone()));
    assert_eq!(
        weights(&e.spec),
        vec![
            ("main".into(), "m".into(), 0),
            ("main-22222222".into(), "m@22222222".into(), 90),
            ("other".into(), "x".into(), 10),
        ]
    );
    assert!(e.skipped.is_empty());
    assert_eq!(e.updates.len(), 1);
    assert!(!e.updates[0].handing_back);
    assert_eq!(e.spec.rollout.as_ref().unwrap().promote, None);
    let served = &e.models["m@22222222"];
    assert_eq!(served.name, "m", "status names the model, not the key");
    assert_eq!(
        served.url, "https://hub.example/o/r/resolve/r2/m.gguf",
        "the candidate's pinned file"
    );
    assert_eq!(served.sha256.as_deref(), Some(NEW_SHA));
    assert_eq!(served.context_length, Some(8192));
    assert_eq!(served.memory.as_ref().unwrap().weights_bytes, 5_000_000_000);
    // The variant itself still serves the old file.
    assert_eq!(
        ResolvedModel::from_spec_and_status(&m).sha256.as_deref(),
        Some(OLD_SHA)
    );
}

#[test]
fn no_update_variant_without_policy_rollout_a_progressive_rollout_or_a_live_candidate() {
    let cases = [
        ("Notify", new_candidate(&["chat"]), "Progressive"),
        (
            "Rollout",
            new_candidate(&["other-deployment"]),
            "Progressive",
        ),
        ("Rollout", new_candidate(&["chat"]), "Manual"),
        (
            "Rollout",
            {
                let mut c = new_candidate(&["chat"]);
                c["rolledBack"] = json!("rolled back in chat: error rate 0.5");
                c
            },
            "Progressive",
        ),
    ];
    for (policy, candidate, strategy) in cases {
        let m = model(policy, Some(candidate));
        let d = deployment("chat", strategy, None);
        let e = effective("chat", &d.spec, None, &models(m));
        assert_eq!(e.spec, d.spec, "{policy} {strategy}");
        assert!(e.updates.is_empty());
    }
}

#[test]
fn after_promotion_the_variant_takes_its_weight_back_from_the_same_file() {
    // Before: the candidate rolling, the update variant serving it.
    let rolling = model("Rollout", Some(new_candidate(&["chat"])));
    let d = deployment("chat", "Progressive", None);
    let before = effective("chat", &d.spec, None, &models(rolling.clone()));

    // The model promoted it: resolved = the candidate, no candidate.
    let m = promotion::promoted(
        &rolling,
        &time("2026-01-05T03:00:00Z").unwrap(),
        &["chat".into()],
    );
    let mut adopted = rolling.clone();
    adopted.status = Some(m);
    let s = status(
        json!([{"name": "main", "weight": 0, "replicas": 0},
               {"name": "main-22222222", "weight": 90, "replicas": 1},
               {"name": "other", "weight": 10, "replicas": 1}]),
        json!({"phase": "Promoted", "candidate": "main-22222222"}),
    );
    let e = effective("chat", &d.spec, Some(&s), &models(adopted.clone()));
    assert_eq!(
        weights(&e.spec),
        vec![
            ("main".into(), "m".into(), 90),
            ("main-22222222".into(), "m@22222222".into(), 0),
            ("other".into(), "x".into(), 10),
        ]
    );
    assert!(e.updates[0].handing_back);
    assert_eq!(
        e.spec.rollout.as_ref().unwrap().promote.as_deref(),
        Some("main"),
        "the variant is promoted back as soon as it is ready, without a second analysis"
    );
    // The update variant's file does not change (no restart of the pods carrying the
    // traffic), and the variant now serves that same file.
    assert_eq!(e.models["m@22222222"], before.models["m@22222222"]);
    let main = ResolvedModel::from_spec_and_status(&adopted);
    assert_eq!(main.url, before.models["m@22222222"].url);
    assert_eq!(main.sha256.as_deref(), Some(NEW_SHA));

    // Once it has neither weight nor replicas, the update variant is gone.
    let done = status(
        json!([{"name": "main", "weight": 90, "replicas": 1},
               {"name": "main-22222222", "weight": 0, "replicas": 0}]),
        json!({"phase": "Promoted", "candidate": "main"}),
    );
    let e = effective("chat", &d.spec, Some(&done), &models(adopted));
    assert_eq!(e.spec, d.spec);
    // Still with replicas (the routers have not dropped it yet): kept, at weight 0.
    let draining = status(
        json!([{"name": "main", "weight": 90, "replicas": 1},
               {"name": "main-22222222", "weight": 0, "replicas": 1}]),
        json!({"phase": "Promoted", "candidate": "main"}),
    );
    let m = model("Rollout", None);
    let mut adopted2 = m.clone();
    adopted2.status.as_mut().unwrap().resolved =
        Some(serde_json::from_value(resolved(NEW_SHA, "r2")).unwrap());
    let e = effective("chat", &d.spec, Some(&draining), &models(adopted2));
    assert_eq!(e.spec.variants.len(), 3);
    assert_eq!(e.spec.variants[1].weight, 0);
}

#[test]
fn after_a_rollback_elsewhere_a_promoted_update_hands_back_to_the_old_file() {
    let mut c = new_candidate(&["chat", "batch"]);
    c["rolledBack"] = json!("rolled back in batch: error rate 0.4 > 0.05");
    let m = model("Rollout", Some(c));
    let d = deployment("chat", "Progressive", None);
    let s = status(
        json!([{"name": "main", "weight": 0, "replicas": 0},
               {"name": "main-22222222", "weight": 90, "replicas": 1}]),
        json!({"phase": "Promoted", "candidate": "main-22222222"}),
    );
    let e = effective("chat", &d.spec, Some(&s), &models(m));
    assert_eq!(e.spec.variants[0].weight, 90);
    assert_eq!(e.spec.variants[1].weight, 0);
    assert_eq!(e.models["m@22222222"].sha256.as_deref(), Some(NEW_SHA));
    assert_eq!(e.spec.rollout.unwrap().promote.as_deref(), Some("main"));
}

#[test]
fn an_update_variant_that_cannot_be_named_or_has_no_room_is_skipped_with_the_reason() {
    let m = model("Rollout", Some(new_candidate(&["chat"])));
    let mut d = deployment("chat", "Progressive", None);
    d.spec.variants[0].name = "a".repeat(50);
    let long = effective("chat", &d.spec, None, &models(m.clone()));
    assert_eq!(long.spec, d.spec);
    assert!(
        long.skipped[0].contains("longer than 63"),
        "{:?}",
        long.skipped
    );

    let mut d = deployment("chat", "Progressive", None);
    for name in ["c", "d"] {
        let mut v = d.spec.variants[1].clone();
        v.name = name.into();
        v.weight = 0;
        d.spec.variants.push(v);
    }
    let full = effective("chat", &d.spec, None, &models(m));
    assert_eq!(full.spec, d.spec);
    assert!(
        full.skipped[0].contains("already has 4 variants"),
        "{:?}",
        full.skipped
    );
}

#[test]
fn the_model_waits_for_every_deployment_and_stops_at_the_first_rollback() {
    let c: llamafleet_crds::Candidate =
        serde_json::from_value(new_candidate(&["chat", "batch", "gone"])).unwrap();
    let promoted = || {
        Some(json!({"variants": [{"name": "main", "weight": 0},
                                 {"name": "main-22222222", "weight": 90}],
                    "rollout": {"phase": "Promoted", "candidate": "main-22222222"}}))
    };
    let midway = Some(json!({"variants": [{"name": "main", "weight": 45},
                                          {"name": "main-22222222", "weight": 45}],
                             "rollout": {"phase": "Progressing", "candidate": "main-22222222"}}));
    let rolled_back = Some(json!({"variants": [{"name": "main", "weight": 90},
                                               {"name": "main-22222222", "weight": 0}],
                                  "rollout": {"phase": "RolledBack", "candidate": "main-22222222",
                                              "reason": "main-22222222 failed analysis at 10%: error rate 0.4"}}));
    let chat = deployment("chat", "Progressive", promoted());
    assert_eq!(
        judge(
            "m",
            &c,
            &[chat.clone(), deployment("batch", "Progressive", midway)]
        ),
        Verdict::Pending {
            promoted_in: vec!["chat".into()],
            waiting: vec!["batch".into()],
        }
    );
    assert_eq!(
        judge(
            "m",
            &c,
            &[chat.clone(), deployment("batch", "Progressive", promoted())]
        ),
        Verdict::Promoted {
            promoted_in: vec!["chat".into(), "batch".into()]
        },
        "`gone` no longer exists: not waited for"
    );
    // A deployment that switched to Manual is not waited for either.
    assert_eq!(
        judge(
            "m",
            &c,
            &[chat.clone(), deployment("batch", "Manual", None)]
        ),
        Verdict::Promoted {
            promoted_in: vec!["chat".into()]
        }
    );
    // A deployment with no room for its update variant (it raised UpdateSkipped) is not
    // waited for.
    let long = "l".repeat(50);
    let mut to_long = c.clone();
    to_long.rollout_to = vec!["chat".into(), long.clone()];
    assert_eq!(
        judge(
            "m",
            &to_long,
            &[chat.clone(), deployment(&long, "Progressive", None)]
        ),
        Verdict::Promoted {
            promoted_in: vec!["chat".into()]
        }
    );
    assert_eq!(
        judge(
            "m",
            &c,
            &[chat, deployment("batch", "Progressive", rolled_back)]
        ),
        Verdict::RolledBack(
            "rolled back in batch: main-22222222 failed analysis at 10%: error rate 0.4".into()
        )
    );
    assert_eq!(
        judge("m", &c, &[]),
        Verdict::Pending {
            promoted_in: vec![],
            waiting: vec![],
        },
        "nobody rolls it out: it waits, like Notify"
    );
}

#[test]
fn promotion_makes_the_candidate_the_resolved_revision_with_its_own_header() {
    let now: Time = time("2026-01-05T03:00:00Z").unwrap();
    let mut m = model("Rollout", Some(new_candidate(&["chat"])));
    m.spec.quantization = Some("Q4_K_M".into());
    let s = promotion::promoted(&m, &now, &["chat".into()]);
    assert!(s.candidate.is_none());
    let r = s.resolved.as_ref().unwrap();
    assert_eq!(r.sha256.as_deref(), Some(NEW_SHA));
    assert_eq!(
        r.url.as_deref(),
        Some("https://hub.example/o/r/resolve/r2/m.gguf")
    );
    assert_eq!(r.size_bytes, Some(1_073_741_824));
    let g = s.gguf.as_ref().unwrap();
    assert_eq!(
        (g.context_length, g.quantization.as_deref()),
        (Some(8192), Some("Q5_K_M"))
    );
    assert_eq!(
        s.memory.as_ref().unwrap().weights_bytes,
        Some(5_000_000_000)
    );
    let cond = |t: &str| s.conditions.iter().find(|c| c.type_ == t).unwrap().clone();
    let update = cond("UpdateAvailable");
    assert_eq!(
        (update.status.as_str(), update.reason.as_str()),
        ("False", "Promoted")
    );
    assert_eq!(
        update.message,
        "revision 22222222 promoted in chat; it is now the resolved revision"
    );
    // The new file's quantization differs from the declared one: said, as for any file.
    let degraded = cond("Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "QuantizationMismatch")
    );

    let s = promotion::rolled_back(&m, &now, "rolled back in chat: error rate 0.4".into());
    assert_eq!(
        s.resolved.as_ref().unwrap().sha256.as_deref(),
        Some(OLD_SHA)
    );
    assert_eq!(
        s.candidate.as_ref().unwrap().rolled_back.as_deref(),
        Some("rolled back in chat: error rate 0.4")
    );
    let update = s
        .conditions
        .iter()
        .find(|c| c.type_ == "UpdateAvailable")
        .unwrap();
    assert_eq!(
        (update.status.as_str(), update.reason.as_str()),
        ("True", "RolledBack")
    );
}
