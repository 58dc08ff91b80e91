//! Default resources and GPU layers from the model's memory plan (pure: validate + build),
//! and what LlmDeployment status says about the plan. Explicit resources always win.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use llamafleet_crds::{
    GgufSummary, GpuSpec, LlmDeployment, LlmModel, MemoryEstimate, MemoryPlanStatus,
};
use llamafleet_operator::build::variant::serve_args;
use llamafleet_operator::deployment::plan::{self, Plan, ResolvedModel};
use llamafleet_operator::sizing;
use serde_json::json;
use support::fixture;

/// The figures the model controller records for the Gemma 3 270M Q4_K_M test file
/// (gguf/tests/memory.rs reads them from the real header).
fn with_gemma_memory(mut m: LlmModel) -> LlmModel {
    let status = m.status.get_or_insert_with(Default::default);
    status.memory = Some(MemoryEstimate {
        weights_bytes: Some(246_587_904),
        kv_bytes_per_token: Some(18_432),
        layer_weights_bytes: Some(68_327_424),
    });
    status.gguf = Some(GgufSummary {
        layers: Some(18),
        vocab_size: Some(262_144),
        ..GgufSummary::default()
    });
    m
}

fn plan_of(llmd: &LlmDeployment, models: &[LlmModel], gpu_memory: u64) -> Plan {
    let resolved = models
        .iter()
        .map(|m| {
            (
                m.metadata.name.clone().unwrap(),
                ResolvedModel::from_ready(m),
            )
        })
        .collect::<BTreeMap<_, _>>();
    plan::make_with_gpu_memory("chat", "default", &llmd.spec, &resolved, gpu_memory).unwrap()
}

fn quickstart_without_resources() -> (Vec<LlmModel>, LlmDeployment) {
    let (models, mut llmd) = fixture("quickstart.yaml");
    llmd.spec.resources = None;
    (models.into_iter().map(with_gemma_memory).collect(), llmd)
}

#[test]
fn cpu_variant_gets_requests_from_the_plan() {
    let (models, llmd) = quickstart_without_resources();
    let plan = plan_of(&llmd, &models, 16 << 30);
    let v = &plan.variants[0];
    // 4 slots of ctx 4096 (the model's), each with its own cells: 4 x 4,096 x 18,432 B/token
    // = 288 MiB of KV.
    let p = v.memory_plan.clone().unwrap();
    assert_eq!(p.kv_bytes, 301_989_888);
    assert_eq!(p.gpu_layers, 0);
    let resources = serde_json::to_value(v.resources.clone().unwrap()).unwrap();
    let request_mib = p.memory_request_bytes >> 20;
    let limit_mib = p.memory_limit_bytes >> 20;
    assert_eq!(
        resources,
        json!({"requests": {"cpu": "2", "memory": format!("{request_mib}Mi")},
               "limits": {"memory": format!("{limit_mib}Mi")}})
    );
    // 246,587,904 weights + 301,989,888 KV + 256 MiB + 4 slots x 1 MiB of logits + 10% of
    // weights and KV = 876,065,322 B → 836 MiB; the limit adds 25% → 1045 MiB.
    assert_eq!((request_mib, limit_mib), (836, 1045));
    assert_eq!(
        sizing::status(&p, None, false),
        MemoryPlanStatus {
            weights_bytes: Some(246_587_904),
            kv_bytes: Some(301_989_888),
            gpu_layers: Some(0),
            gpu_memory: None,
            layers_total: Some(18),
            memory_request: Some(format!("{request_mib}Mi")),
            memory_limit: Some(format!("{limit_mib}Mi")),
            cpu_request: Some("2".into()),
            resources_from: Some("Plan".into()),
        }
    );
}

#[test]
fn explicit_resources_win() {
    let (models, mut llmd) = fixture("quickstart.yaml");
    let models: Vec<LlmModel> = models.into_iter().map(with_gemma_memory).collect();
    let written = llmd.spec.resources.clone();
    let plan = plan_of(&llmd, &models, 16 << 30);
    assert_eq!(plan.variants[0].resources, written);
    assert!(plan.variants[0].resources_from_spec);
    assert!(plan.variants[0].memory_plan.is_some());
    // A variant's own resources win over both.
    llmd.spec.variants[0].resources = Some(Default::default());
    let plan = plan_of(&llmd, &models, 16 << 30);
    assert_eq!(plan.variants[0].resources, Some(Default::default()));
}

#[test]
fn auto_gpu_layers_become_a_number_that_fits() {
    let (models, mut llmd) = quickstart_without_resources();
    let serving = llmd.spec.serving.get_or_insert_with(Default::default);
    serving.gpu = Some(GpuSpec {
        count: 1,
        layers: Some(IntOrString::String("auto".into())),
        ..GpuSpec::default()
    });
    // 16 GiB: all 18 layers fit.
    let plan = plan_of(&llmd, &models, 16 << 30);
    let args = serve_args(&plan, &plan.variants[0]);
    let at = args.iter().position(|a| a == "--gpu-layers").unwrap();
    assert_eq!(args[at + 1], "18");
    // Per layer: 68,327,424 / 18 weights + 301,989,888 / 18 KV = 20,573,184 B. A GPU with
    // 100 MB spare beyond the 512 MiB reserve takes 4 of them.
    let small = (512 << 20) + 100_000_000;
    let plan = plan_of(&llmd, &models, small);
    let v = &plan.variants[0];
    assert_eq!(v.serving.gpu_layers, "4");
    let p = v.memory_plan.clone().unwrap();
    assert_eq!(p.gpu_bytes, 4 * 20_573_184);
    assert_eq!(
        p.host_bytes,
        246_587_904 + 301_989_888 - 4 * 20_573_184 + p.overhead_bytes
    );
}

#[test]
fn models_without_a_plan_keep_the_old_behaviour() {
    let (models, mut llmd) = fixture("quickstart.yaml");
    llmd.spec.resources = None;
    let plan = plan_of(&llmd, &models, 16 << 30);
    assert_eq!(plan.variants[0].resources, None);
    assert_eq!(plan.variants[0].memory_plan, None);
}

#[tokio::test]
async fn deployment_status_explains_the_plan() {
    use kube::runtime::controller::Action;
    use llamafleet_operator::deployment::{self, RESYNC_READY};
    use support::*;

    let (models, llmd) = quickstart_without_resources();
    let stores = cluster(&models, &[]);
    let mut calls = Vec::new();
    let children = built_children(&llmd, &models);
    let deployment_body = &children
        .iter()
        .find(|(p, _)| p.ends_with("/deployments/chat-main"))
        .unwrap()
        .1;
    assert_eq!(
        deployment_body["spec"]["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "2", "memory": "836Mi"}, "limits": {"memory": "1045Mi"}})
    );
    calls.push(node_cache_bound("default"));
    for (path, body) in &children {
        calls.push(Call::apply(path.clone(), body.clone()));
    }
    let counts = "0/1 variant replicas and 0/2 router replicas ready";
    let body = json!({
        "apiVersion": "llamafleet.dev/v1alpha1", "kind": "LlmDeployment",
        "status": {
            "variants": [{"name": "main", "model": "gemma3-270m",
                "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
                "weight": 100, "replicas": 1, "readyReplicas": 0,
                "plan": {"weightsBytes": 246_587_904, "kvBytes": 301_989_888, "gpuLayers": 0,
                         "layersTotal": 18, "memoryRequest": "836Mi", "memoryLimit": "1045Mi",
                         "cpuRequest": "2", "resourcesFrom": "Plan"}}],
            "weights": "main=100", "ready": "0/1", "endpoint": "http://chat.default.svc",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ReplicasNotReady", "message": counts,
                 "observedGeneration": 1, "lastTransitionTime": NOW},
                {"type": "Progressing", "status": "True", "reason": "ReplicasStarting", "message": counts,
                 "observedGeneration": 1, "lastTransitionTime": NOW},
                {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
                 "observedGeneration": 1, "lastTransitionTime": NOW},
            ],
            "observedGeneration": 1,
        }
    });
    calls.push(Call::status(status_path("default", "chat"), body, &llmd));
    let (ctx, handle) = context_with(stores);
    let server = tokio::spawn(serve(handle, calls));
    let result = deployment::reconcile(std::sync::Arc::new(llmd), ctx.clone()).await;
    drop(ctx);
    server.await.unwrap();
    assert_eq!(result.unwrap(), Action::requeue(RESYNC_READY));
}
