//! GPU offload with the real model, on whatever this build and machine have: on a GPU build
//! with a GPU (`scripts/cuda-build.sh --tests`, run by bench/gpu.sh on a GPU machine) `auto`
//! puts every layer on the GPU, the status names the device and the memory taken, and greedy
//! answers agree with the CPU's; on a CPU build or without a GPU, everything stays on the CPU
//! and says so. In-process engines, so the test binary runs wherever it is copied.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use llamafleet_agent::serve::engine::{
    Engine, EngineConfig, Event, GpuDevice, GpuLayers, Prompt, SamplingParams, gpu_devices,
};
use llamafleet_agent::serve::state::{AppState, Phase, ServeOptions};
use llamafleet_gguf::memory::{GPU_RESERVE_BYTES, plan};
use llamafleet_gguf::{GpuLayers as PlanLayers, Limits, ModelMemory, PlanInput, read_file};
use serde_json::Value;
use serve_support::{MODEL, call, get, metrics, model_path};

/// Context per slot and slots of every engine here.
const CTX: u32 = 1024;
const SLOTS: u32 = 2;
/// Tokens compared between the GPU's and the CPU's greedy answers.
const AGREEMENT_TOKENS: u32 = 32;
const PROMPT: &str = "The capital of France is";

/// The GPUs ggml lists. With `LLAMAFLEET_TEST_EXPECT_GPU=<backend>` (CI's GPU step on
/// lavapipe, bench/gpu.sh with CUDA) at least one is of that backend: a build or machine that
/// lost its GPU fails here instead of passing on the CPU path.
fn gpus() -> Vec<GpuDevice> {
    let gpus = gpu_devices();
    if let Ok(backend) = std::env::var("LLAMAFLEET_TEST_EXPECT_GPU") {
        assert!(
            gpus.iter().any(|g| g.backend == backend),
            "LLAMAFLEET_TEST_EXPECT_GPU={backend}, but ggml lists {gpus:?}"
        );
    }
    gpus
}

fn load(gpu_layers: GpuLayers) -> Option<Engine> {
    let config = EngineConfig {
        ctx: CTX,
        parallel: SLOTS,
        threads: 2,
        gpu_layers,
        chat_template: None,
        ..EngineConfig::new(model_path()?)
    };
    Some(Engine::load(config, metrics().engine).expect("load the test model"))
}

/// The token texts of a greedy generation.
async fn greedy_tokens(engine: &Engine, max_tokens: u32) -> Vec<String> {
    let params = SamplingParams {
        temperature: 0.0,
        max_tokens: Some(max_tokens),
        ..SamplingParams::default()
    };
    let mut rx = engine
        .generate(Prompt::Text(PROMPT.into()), params)
        .expect("queue");
    let mut tokens = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Accepted { .. } | Event::Logprob(_) => {}
            Event::Token(t) => tokens.push(t),
            Event::Done { .. } => return tokens,
            Event::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("no Done event");
}

/// `GET path` on a ready state around `engine`.
async fn get_json(engine: &Engine, path: &str) -> Value {
    let state = AppState::new(ServeOptions::new(MODEL, 2), 2, metrics(), Vec::new(), None);
    state.engine.set(engine.clone()).expect("fresh state");
    state.update(|s| s.phase = Phase::Ready);
    let (status, body) = call(&state, get(path)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_offloads_every_layer_to_a_gpu_or_says_it_stayed_on_the_cpu() {
    let gpus = gpus();
    let Some(engine) = load(GpuLayers::Auto) else {
        return;
    };
    let info = engine.info().clone();
    let status = get_json(&engine, "/status").await;
    let ps = get_json(&engine, "/api/ps").await;
    let size_vram = ps["models"][0]["size_vram"].as_u64().expect("size_vram");
    eprintln!(
        "GPUs: {gpus:?}\nauto: device {:?}, {}/{} layers, {:?} bytes of GPU memory",
        info.device, info.layers_offloaded, info.layers_total, info.gpu_memory_bytes
    );
    if gpus.is_empty() {
        assert_eq!(info.device, "cpu");
        assert_eq!(info.layers_offloaded, 0);
        assert!(info.gpus.is_empty());
        assert_eq!(info.gpu_memory_bytes, Some(0));
        assert_eq!(status["device"], "cpu");
        assert_eq!(size_vram, 0);
    } else {
        // The test model fits any GPU: every block goes there, on the first device.
        assert_eq!(info.layers_offloaded, info.layers_total);
        assert_eq!(info.device, gpus[0].description);
        assert_eq!(info.gpus[0].name, gpus[0].name);
        assert_eq!(status["device"], gpus[0].description.as_str());
        assert_eq!(status["gpus"][0]["backend"], gpus[0].backend.as_str());
        let size = ps["models"][0]["size"].as_u64().expect("size");
        if gpus[0].reports_memory_use() {
            // Weights, KV cache and compute buffers now sit in device memory.
            let taken = info.gpu_memory_bytes.expect("read from the device");
            assert!(
                taken >= info.size_bytes,
                "{taken} bytes taken on the GPU for {} bytes of weights",
                info.size_bytes
            );
            assert_eq!(size_vram, taken);
        } else {
            // Nothing to read (lavapipe): unknown, not 0; Ollama's `size_vram` says which share
            // of the model is on the GPU, here all of it.
            assert_eq!(info.gpu_memory_bytes, None);
            assert_eq!(size_vram, size);
        }
    }
    assert_eq!(status["layers_offloaded"], info.layers_offloaded);
    assert_eq!(status["layers_total"], info.layers_total);
    assert_eq!(
        status["gpu_memory_bytes"],
        serde_json::json!(info.gpu_memory_bytes)
    );
    let tokens = greedy_tokens(&engine, 8).await;
    assert_eq!(tokens.len(), 8, "{tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_layers_zero_keeps_the_model_on_the_cpu() {
    let Some(engine) = load(GpuLayers::Count(0)) else {
        return;
    };
    let info = engine.info();
    assert_eq!(info.device, "cpu");
    assert_eq!(info.layers_offloaded, 0);
    assert!(info.gpus.is_empty());
    assert_eq!(info.gpu_memory_bytes, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_count_offloads_that_many_blocks() {
    let gpus = gpus();
    let Some(engine) = load(GpuLayers::Count(4)) else {
        return;
    };
    let info = engine.info();
    let expected = if gpus.is_empty() { 0 } else { 4 };
    assert_eq!(info.layers_offloaded, expected, "{info:?}");
    assert_eq!(info.gpus.len(), usize::from(!gpus.is_empty()));
}

/// A device too small for the model, as the operator plans it (`gpu.memoryGiB`): the plan
/// offloads the blocks that fit beside its per-GPU reserve and passes their count as
/// `--gpu-layers`; the engine puts exactly those blocks on the device, and the device memory
/// they take (weights, their share of the KV cache, compute buffers, read from the device)
/// stays inside the memory the plan was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_too_small_for_the_model_gets_the_layers_the_plan_fits() {
    let gpus = gpus();
    let Some(path) = model_path() else { return };
    if gpus.is_empty() {
        eprintln!("skipped: no GPU in this build or machine");
        return;
    }
    let header = read_file(&path, &Limits::default()).expect("the test model's header");
    let memory = ModelMemory::from_header(&header).expect("memory figures");
    // A device with the plan's reserve and room for about half of the blocks.
    let device_bytes = GPU_RESERVE_BYTES + memory.layer_weights_bytes / 2;
    let input = PlanInput {
        context_length: u64::from(CTX),
        parallel: u64::from(SLOTS),
        gpu_count: 1,
        gpu_memory_bytes: device_bytes,
        gpu_layers: PlanLayers::Auto,
    };
    let plan = plan(&memory, &input);
    assert!(
        0 < plan.gpu_layers && plan.gpu_layers < plan.layers,
        "a device of {device_bytes} bytes should take part of the model: {plan:?}"
    );
    let layers = u32::try_from(plan.gpu_layers).expect("a layer count");
    let engine = load(GpuLayers::Count(layers)).expect("model");
    let info = engine.info().clone();
    eprintln!(
        "plan for a {device_bytes}-byte device: {}/{} layers, {} bytes; the engine: {}/{} layers, {:?} bytes taken on {}",
        plan.gpu_layers,
        plan.layers,
        plan.gpu_bytes,
        info.layers_offloaded,
        info.layers_total,
        info.gpu_memory_bytes,
        info.device
    );
    assert_eq!(info.layers_offloaded, layers);
    assert_eq!(u64::from(info.layers_total), plan.layers);
    assert_eq!(info.device, gpus[0].description);
    if gpus[0].reports_memory_use() {
        let taken = info.gpu_memory_bytes.expect("read from the device");
        assert!(
            taken <= device_bytes,
            "{taken} bytes taken on a device the plan gave {device_bytes}"
        );
    }
    let tokens = greedy_tokens(&engine, 4).await;
    assert_eq!(tokens.len(), 4, "{tokens:?}");
}

/// Greedy answers from the GPU and from the CPU (same binary, `--gpu-layers 0`): the kernels
/// differ in rounding, so a near-tie can flip late in a generation; the first tokens must
/// agree, and the agreement over [`AGREEMENT_TOKENS`] is printed for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_and_cpu_greedy_answers_agree() {
    if gpus().is_empty() {
        eprintln!("skipped: no GPU in this build or machine");
        return;
    }
    let Some(gpu) = load(GpuLayers::Auto) else {
        return;
    };
    let on_gpu = greedy_tokens(&gpu, AGREEMENT_TOKENS).await;
    drop(gpu);
    let cpu = load(GpuLayers::Count(0)).expect("model");
    let on_cpu = greedy_tokens(&cpu, AGREEMENT_TOKENS).await;
    let same = on_gpu
        .iter()
        .zip(&on_cpu)
        .take_while(|(a, b)| a == b)
        .count();
    eprintln!(
        "agreement: the first {same} of {AGREEMENT_TOKENS} greedy tokens are identical\nGPU: {:?}\nCPU: {:?}",
        on_gpu.concat(),
        on_cpu.concat()
    );
    assert!(same >= 4, "GPU {on_gpu:?} vs CPU {on_cpu:?}");
}
