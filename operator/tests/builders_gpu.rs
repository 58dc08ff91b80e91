//! Variants on GPUs of each vendor (`manifests/examples/gpu-vendors.yaml`): the device plugin
//! resource they request, the agent image they run, and the layer split `gpu.memoryGiB` gives
//! them. Pure validate + build, asserted field by field.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Capabilities, Container, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use llamafleet_crds::{GgufSummary, GpuSpec, LlmDeployment, LlmModel, MemoryEstimate};
use llamafleet_operator::build::gpu::{AgentImages, Backend, ImageError};
use llamafleet_operator::build::{self, BuildOptions, Children};
use llamafleet_operator::deployment::plan::{self, Plan, ResolvedModel};
use llamafleet_operator::names::CACHE_DIR;
use llamafleet_operator::render::{self, DEFAULT_NAMESPACE};
use llamafleet_operator::sizing;

#[path = "support/pods.rs"]
mod pods;

const IMAGE: &str = "ghcr.io/llamafleet/agent:test";
const GIB: u64 = 1 << 30;

/// The example's model and deployment, the model with memory figures shaped like a 24B
/// Q4_K_M file: 40 layers of 340 MiB, 400 MiB of other weights, 160 KiB of f16 KV per token.
/// At the example's 8192 tokens that is 1280 MiB of KV, so 372 MiB per offloaded layer.
fn example() -> (LlmModel, LlmDeployment) {
    let path = llamafleet_crds::testing::examples_dir().join("gpu-vendors.yaml");
    let mut inputs = render::read_inputs(&[path], DEFAULT_NAMESPACE).unwrap();
    let mut model = inputs.models.pop_first().unwrap().1;
    let status = model.status.get_or_insert_with(Default::default);
    status.memory = Some(MemoryEstimate {
        weights_bytes: Some(14_000 << 20),
        layer_weights_bytes: Some(40 * (340 << 20)),
        kv_bytes_per_token: Some(160 << 10),
    });
    status.gguf = Some(GgufSummary {
        layers: Some(40),
        vocab_size: Some(131_072),
        ..GgufSummary::default()
    });
    (model, inputs.deployments.pop().unwrap())
}

fn plan_of(llmd: &LlmDeployment, model: &LlmModel, operator_gpu_memory: u64) -> Plan {
    let models = BTreeMap::from([(
        model.metadata.name.clone().unwrap(),
        Ok(ResolvedModel::from_spec_and_status(model)),
    )]);
    plan::make_with_gpu_memory(
        "assistant-gpus",
        DEFAULT_NAMESPACE,
        &llmd.spec,
        &models,
        operator_gpu_memory,
    )
    .unwrap()
}

fn build(plan: &Plan) -> Children {
    build::build(
        plan,
        &BuildOptions {
            images: AgentImages::derived(IMAGE).unwrap(),
            owner: None,
            cache_path: CACHE_DIR.into(),
        },
    )
}

fn container(children: &Children, variant: usize) -> Container {
    pods::pod_spec(children, variant).containers[0].clone()
}

fn gpu_layers_arg(c: &Container) -> String {
    let args = c.args.clone().unwrap();
    let at = args.iter().position(|a| a == "--gpu-layers").unwrap();
    args[at + 1].clone()
}

#[test]
fn each_vendor_requests_its_device_plugin_resource_and_runs_its_agent_build() {
    let (model, llmd) = example();
    let children = build(&plan_of(&llmd, &model, 16 * GIB));
    for (i, (name, image, resource)) in [
        (
            "nvidia",
            "ghcr.io/llamafleet/agent:test-cuda13",
            "nvidia.com/gpu",
        ),
        ("amd", "ghcr.io/llamafleet/agent:test-vulkan", "amd.com/gpu"),
        (
            "intel",
            "ghcr.io/llamafleet/agent:test-vulkan",
            "gpu.intel.com/i915",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(children.variants[i].name, name);
        let c = container(&children, i);
        assert_eq!(c.image.as_deref(), Some(image), "{name}");
        // The plan's memory limit, and one GPU of the vendor's resource.
        let limits = c.resources.clone().unwrap().limits.unwrap();
        let memory = limits["memory"].clone();
        assert_eq!(
            limits,
            BTreeMap::from([
                ("memory".to_string(), memory),
                (resource.to_string(), Quantity("1".into()))
            ]),
            "{name}"
        );
        // The image's user and group by number: a runtime with
        // device_ownership_from_security_context hands Vulkan pods the render node through
        // the container's effective user, which the kubelet takes from the pod's.
        let pod = pods::pod_spec(&children, i).security_context.unwrap();
        assert_eq!(
            (pod.run_as_user, pod.run_as_group),
            (Some(65532), Some(65532)),
            "{name}"
        );
        assert_eq!(c.security_context, agent_security(), "{name}");
    }
    let router = children.router.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        router.containers[0].image.as_deref(),
        Some(IMAGE),
        "routers run the CPU build"
    );
}

#[test]
fn memory_gib_sizes_the_layer_split_of_its_own_variant() {
    let (model, llmd) = example();
    // Per offloaded layer 340 MiB of weights + 32 MiB of KV = 372 MiB; each GPU keeps 512 MiB
    // back. nvidia (operator default, 16 GiB): 15872 / 372 = 42 → all 40 layers; amd
    // (memoryGiB 12): 11776 / 372 = 31; intel (memoryGiB 8): 7680 / 372 = 20.
    let plan = plan_of(&llmd, &model, 16 * GIB);
    let split = |plan: &Plan| -> Vec<(String, u64, String, Option<String>)> {
        plan.variants
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    v.memory_plan.clone().unwrap().gpu_layers,
                    v.serving.gpu_layers.clone(),
                    sizing::gpu_memory(&v.serving),
                )
            })
            .collect()
    };
    let row = |name: &str, layers: u64, gib: &str| {
        (
            name.to_string(),
            layers,
            layers.to_string(),
            Some(gib.to_string()),
        )
    };
    assert_eq!(
        split(&plan),
        [
            row("nvidia", 40, "16Gi"),
            row("amd", 31, "12Gi"),
            row("intel", 20, "8Gi")
        ]
    );
    let children = build(&plan);
    let args: Vec<String> = (0..3)
        .map(|i| gpu_layers_arg(&container(&children, i)))
        .collect();
    assert_eq!(args, ["40", "31", "20"]);

    // The operator-wide default moves only the variant that names no memory.
    let plan = plan_of(&llmd, &model, 8 * GIB);
    assert_eq!(
        split(&plan),
        [
            row("nvidia", 20, "8Gi"),
            row("amd", 31, "12Gi"),
            row("intel", 20, "8Gi")
        ]
    );
}

#[test]
fn a_variant_without_gpus_runs_the_cpu_build_whatever_the_deployment_says() {
    let (model, mut llmd) = example();
    llmd.spec.variants[2].serving.as_mut().unwrap().gpu = Some(GpuSpec::default());
    let plan = plan_of(&llmd, &model, 16 * GIB);
    let serving = &plan.variants[2].serving;
    assert_eq!(
        Backend::of(serving.gpu_count, serving.gpu_vendor),
        Backend::Cpu
    );
    assert_eq!(sizing::gpu_memory(&plan.variants[2].serving), None);
    let c = container(&build(&plan), 2);
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(gpu_layers_arg(&c), "0");
    let limits = c.resources.unwrap().limits.unwrap();
    assert_eq!(limits.keys().collect::<Vec<_>>(), ["memory"]);
    assert_eq!(c.security_context, agent_security());
}

#[test]
fn gpu_images_default_to_the_agent_image_with_a_tag_suffix() {
    let images = AgentImages::derived("ghcr.io/llamafleet/agent:0.1.0").unwrap();
    assert_eq!(
        images,
        AgentImages {
            cpu: "ghcr.io/llamafleet/agent:0.1.0".into(),
            cuda: "ghcr.io/llamafleet/agent:0.1.0-cuda13".into(),
            vulkan: "ghcr.io/llamafleet/agent:0.1.0-vulkan".into(),
        }
    );
    // A registry port is not a tag.
    let images = AgentImages::derived("registry.local:5000/agent:dev").unwrap();
    assert_eq!(images.cuda, "registry.local:5000/agent:dev-cuda13");
    // Given images win, one at a time.
    let images = AgentImages::new("agent:1", None, Some("mirror/vk:7")).unwrap();
    assert_eq!(
        (images.cuda.as_str(), images.vulkan.as_str()),
        ("agent:1-cuda13", "mirror/vk:7")
    );
}

#[test]
fn an_agent_image_without_a_tag_needs_the_gpu_images_given() {
    let untagged = AgentImages::derived("registry.local:5000/agent").unwrap_err();
    assert_eq!(
        untagged.to_string(),
        "cannot derive the CUDA agent image from \"registry.local:5000/agent\": it has no tag \
         to append \"-cuda13\" to; set --agent-image-cuda (LLAMAFLEET_AGENT_IMAGE_CUDA)"
    );
    let digest = format!("ghcr.io/llamafleet/agent@sha256:{}", "a".repeat(64));
    let err: ImageError = AgentImages::new(&digest, Some("agent:1-cuda13"), None).unwrap_err();
    assert_eq!(
        (err.build, err.flag, err.env),
        (
            "Vulkan",
            "--agent-image-vulkan",
            "LLAMAFLEET_AGENT_IMAGE_VULKAN"
        )
    );
    assert!(
        err.to_string().contains("(a digest names one image)"),
        "{err}"
    );
    let images = AgentImages::new(&digest, Some("a:cuda"), Some("a:vulkan")).unwrap();
    assert_eq!(images.cpu, digest);
}

/// The container security context of every agent container, GPU or not: nothing added for
/// devices (the pod names the user).
fn agent_security() -> Option<SecurityContext> {
    Some(SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    })
}
