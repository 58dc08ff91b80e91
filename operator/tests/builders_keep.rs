//! The keep list (pure, no client): while a model update is under way the routing ConfigMap
//! lists both revisions of the model for the serving agents to keep in their node caches, and
//! nothing once the candidate is promoted or rolled back; no pod template changes with it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMapVolumeSource, KeyToPath, Volume, VolumeMount};
use llamafleet_crds::{LlmDeployment, LlmModel};
use llamafleet_operator::build::gpu::AgentImages;
use llamafleet_operator::build::{self, BuildOptions, Children};
use llamafleet_operator::deployment::plan;
use llamafleet_operator::deployment::resolve_models;
use llamafleet_operator::names::CACHE_DIR;
use llamafleet_operator::update::derive::effective;
use llamafleet_operator::update::retain;
use serde_json::{Value, json};

const OLD_SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_SHA: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const KEEP_FILE: &str = "/etc/llamafleet/keep/keep.yaml";

fn resolved(sha: &str, rev: &str) -> Value {
    json!({"sha256": sha, "revision": rev,
           "url": format!("https://hub.example/o/r/resolve/{rev}/m.gguf"),
           "sizeBytes": 1_073_741_824})
}

/// Model `m` (policy Rollout) resolved to `resolved_sha`, with `candidate` when given.
fn model(resolved_sha: &str, candidate: Option<Value>) -> BTreeMap<String, Option<LlmModel>> {
    let mut status = json!({"phase": "Ready", "resolved": resolved(resolved_sha, "r1")});
    if let Some(c) = candidate {
        status["candidate"] = c;
    }
    let m = serde_json::from_value(json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmModel",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {"source": {"url": "https://hub.example/o/r/resolve/main/m.gguf"},
                 "update": {"schedule": "0 3 * * 1", "policy": "Rollout"}},
        "status": status,
    }))
    .unwrap();
    BTreeMap::from([("m".to_string(), Some(m))])
}

fn rolling() -> Value {
    let mut c = resolved(NEW_SHA, "r2");
    c["rolloutTo"] = json!(["chat"]);
    c
}

/// A progressive deployment `chat` of model `m`, with presets (so its pods carry the presets
/// hash annotation).
fn chat() -> LlmDeployment {
    serde_json::from_value(json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "metadata": {"name": "chat", "namespace": "default"},
        "spec": {"variants": [{"name": "main", "model": "m", "weight": 100}],
                 "presets": [{"name": "chat-terse", "system": "Be brief."}],
                 "rollout": {"strategy": "Progressive"}},
    }))
    .unwrap()
}

/// The plan one reconcile makes for `chat` given the model (as `deployment::reconcile`
/// composes the pure steps).
fn plan(models: &BTreeMap<String, Option<LlmModel>>) -> plan::Plan {
    let d = chat();
    let e = effective("chat", &d.spec, d.status.as_ref(), models);
    let mut resolved = resolve_models(models);
    resolved.extend(e.models.iter().map(|(k, m)| (k.clone(), Ok(m.clone()))));
    let mut plan = plan::make("chat", "default", &e.spec, &resolved).unwrap();
    plan.keep = retain::keep(models);
    plan
}

fn build_plan(plan: &plan::Plan) -> Children {
    let opts = BuildOptions {
        images: AgentImages::derived("agent:test").unwrap(),
        owner: None,
        cache_path: CACHE_DIR.into(),
    };
    build::build(plan, &opts)
}

fn children(models: &BTreeMap<String, Option<LlmModel>>) -> Children {
    build_plan(&plan(models))
}

/// The keep list of the routing ConfigMap, as the agents parse it.
fn keep_list(c: &Children) -> Vec<String> {
    serde_norway::from_str(&c.routing.data.as_ref().unwrap()["keep.yaml"]).unwrap()
}

#[test]
fn the_config_map_lists_both_revisions_only_while_the_candidate_is_live() {
    let before = children(&model(OLD_SHA, None));
    assert_eq!(before.routing.data.as_ref().unwrap()["keep.yaml"], "[]\n");
    let during = children(&model(OLD_SHA, Some(rolling())));
    assert_eq!(keep_list(&during), [OLD_SHA, NEW_SHA]);
    // Promoted: the candidate is gone and the new file is the resolved one.
    assert!(keep_list(&children(&model(NEW_SHA, None))).is_empty());
    // Rolled back: the candidate stays in the status, marked, and is kept no longer.
    let mut back = rolling();
    back["rolledBack"] = json!("rolled back in chat: error rate 0.2");
    assert!(keep_list(&children(&model(OLD_SHA, Some(back)))).is_empty());
}

#[test]
fn a_candidate_changes_no_pod_template_of_the_variants_already_running() {
    let before = children(&model(OLD_SHA, None));
    let during = children(&model(OLD_SHA, Some(rolling())));
    assert_eq!(
        during
            .variants
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["main", "main-22222222"]
    );
    let template = |c: &Children, i: usize| c.variants[i].deployment.spec.clone().unwrap().template;
    // Same template, presets hash annotation included: the running pods do not restart.
    assert_eq!(template(&during, 0), template(&before, 0));
    let annotations = template(&before, 0).metadata.unwrap().annotations.unwrap();
    assert!(annotations.contains_key("llamafleet.dev/presets-sha256"));
    assert_eq!(during.router, before.router);
    assert_eq!(during.service, before.service);

    // The same plan with and without its keep list differs in the ConfigMap only.
    let mut p = plan(&model(OLD_SHA, Some(rolling())));
    assert_eq!(p.keep, [OLD_SHA, NEW_SHA]);
    let with = build_plan(&p);
    p.keep.clear();
    let without = build_plan(&p);
    assert_eq!(without.variants, with.variants);
    assert_eq!(without.router, with.router);
    assert_eq!(without.service, with.service);
    assert_ne!(without.routing, with.routing);
}

#[test]
fn every_variant_pod_mounts_the_keep_list_and_passes_it_to_the_agent() {
    let during = children(&model(OLD_SHA, Some(rolling())));
    for v in &during.variants {
        let pod = v.deployment.spec.clone().unwrap().template.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|vol| vol.name == "keep")
            .unwrap();
        assert_eq!(
            volume,
            Volume {
                name: "keep".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "chat-routing".into(),
                    items: Some(vec![KeyToPath {
                        key: "keep.yaml".into(),
                        path: "keep.yaml".into(),
                        mode: None,
                    }]),
                    optional: Some(true),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }
        );
        let container = &pod.containers[0];
        let mount = container
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "keep")
            .unwrap();
        assert_eq!(
            mount,
            VolumeMount {
                name: "keep".into(),
                mount_path: "/etc/llamafleet/keep".into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }
        );
        let args = container.args.clone().unwrap();
        let at = args.iter().position(|a| a == "--keep-file").unwrap();
        assert_eq!(args[at + 1], KEEP_FILE, "{}", v.name);
    }
}
