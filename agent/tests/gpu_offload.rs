//! GPU offload with the real model, on whatever this build and machine have: on a GPU build
//! with a GPU (`scripts/cuda-build.sh --tests`, run by bench/gpu.sh on a GPU machine) `auto`
//! puts every layer on the GPU, the status names the device and the memory taken, and greedy
//! answers agree with the CPU's; on a CPU build or without a GPU, everything stays on the CPU
//! and says so. In-process engines, so the test binary runs wherever it is copied.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod serve_support;

use llamafleet_agent::serve::engine::{
    Engine, EngineConfig, Event, GpuLayers, Prompt, SamplingParams, gpu_devices,
};
use llamafleet_agent::serve::state::{AppState, Phase, ServeOptions};
use serde_json::Value;
use serve_support::{MODEL, call, get, metrics, model_path};

/// Tokens compared between the GPU's and the CPU's greedy answers.
const AGREEMENT_TOKENS: u32 = 32;
const PROMPT: &str = "The capital of France is";

fn load(gpu_layers: GpuLayers) -> Option<Engine> {
    let config = EngineConfig {
        ctx: 1024,
        parallel: 2,
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
    let gpus = gpu_devices();
    let Some(engine) = load(GpuLayers::Auto) else {
        return;
    };
    let info = engine.info().clone();
    let status = get_json(&engine, "/status").await;
    let ps = get_json(&engine, "/api/ps").await;
    let size_vram = ps["models"][0]["size_vram"].as_u64().expect("size_vram");
    eprintln!(
        "GPUs: {gpus:?}\nauto: device {:?}, {}/{} layers, {} bytes of GPU memory",
        info.device, info.layers_offloaded, info.layers_total, info.gpu_memory_bytes
    );
    if gpus.is_empty() {
        assert_eq!(info.device, "cpu");
        assert_eq!(info.layers_offloaded, 0);
        assert!(info.gpus.is_empty());
        assert_eq!(info.gpu_memory_bytes, 0);
        assert_eq!(status["device"], "cpu");
        assert_eq!(size_vram, 0);
    } else {
        // The test model fits any GPU: every block goes there, on the first device.
        assert_eq!(info.layers_offloaded, info.layers_total);
        assert_eq!(info.device, gpus[0].description);
        assert_eq!(info.gpus[0].name, gpus[0].name);
        // Weights, KV cache and compute buffers now sit in device memory.
        assert!(
            info.gpu_memory_bytes >= info.size_bytes,
            "{} bytes taken on the GPU for {} bytes of weights",
            info.gpu_memory_bytes,
            info.size_bytes
        );
        assert_eq!(status["device"], gpus[0].description.as_str());
        assert_eq!(status["gpus"][0]["backend"], gpus[0].backend.as_str());
        assert_eq!(size_vram, info.gpu_memory_bytes);
    }
    assert_eq!(status["layers_offloaded"], info.layers_offloaded);
    assert_eq!(status["layers_total"], info.layers_total);
    assert_eq!(status["gpu_memory_bytes"], info.gpu_memory_bytes);
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
    assert_eq!(info.gpu_memory_bytes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_count_offloads_that_many_blocks() {
    let gpus = gpu_devices();
    let Some(engine) = load(GpuLayers::Count(4)) else {
        return;
    };
    let info = engine.info();
    let expected = if gpus.is_empty() { 0 } else { 4 };
    assert_eq!(info.layers_offloaded, expected, "{info:?}");
    assert_eq!(info.gpus.len(), usize::from(!gpus.is_empty()));
}

/// Greedy answers from the GPU and from the CPU (same binary, `--gpu-layers 0`): the kernels
/// differ in rounding, so a near-tie can flip late in a generation; the first tokens must
/// agree, and the agreement over [`AGREEMENT_TOKENS`] is printed for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_and_cpu_greedy_answers_agree() {
    if gpu_devices().is_empty() {
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
