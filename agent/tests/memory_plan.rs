//! Cross-check of the operator's memory plan (`llamafleet_gguf::memory`, pure header
//! arithmetic) against what llama.cpp itself reports for the real test model:
//! - weights: `llama_model_size` (bytes of all tensors) and `llama_model_n_params`;
//! - KV cache per token: the growth of sequence 0's saved state per decoded token (the state
//!   holds the f16 K and V rows of each cached token, plus a few bytes of cell metadata);
//! - KV cache in all: the buffers llama.cpp says it allocated ("KV buffer size = ... MiB" in
//!   its log, one line per cache) for a context made as the agent makes it: ctx x slots
//!   cells, one sequence per slot, full-size sliding-window caches.
//!
//! Tolerance: 1% on each figure (the plan counts tensor data exactly; the state adds ~16 bytes
//! of cell metadata per token to 18,432 bytes of K/V; the log rounds to 0.01 MiB).
//!
//! Needs `LLAMAFLEET_TEST_MODEL` (from `scripts/fetch-test-model.sh`): fails under CI without
//! it, skipped elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::{LogOptions, send_logs_to_tracing};
use llamafleet_gguf::memory::kv_bytes;
use llamafleet_gguf::{GpuLayers, Limits, ModelMemory, PlanInput, Summary, read_file};

/// Allowed relative difference between the plan and llama.cpp.
const TOLERANCE: f64 = 0.01;
/// Tokens per decoded chunk; the KV growth is measured over one chunk.
const CHUNK: i32 = 32;
/// Context per slot and slots of the whole-cache check: a context well beyond Gemma 3's
/// 512-token window, so a window-sized cache would show.
const SLOT_CONTEXT: u32 = 4096;
const SLOTS: u32 = 2;
/// llama.cpp's backend is process-wide and initialised once at a time: the tests take turns.
static ONE_BACKEND: Mutex<()> = Mutex::new(());

fn test_model() -> Option<PathBuf> {
    match std::env::var_os("LLAMAFLEET_TEST_MODEL") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => panic!(
            "LLAMAFLEET_TEST_MODEL is not set: run `export LLAMAFLEET_TEST_MODEL=$(scripts/fetch-test-model.sh)`"
        ),
        None => {
            eprintln!(
                "skipped: LLAMAFLEET_TEST_MODEL is not set (run scripts/fetch-test-model.sh)"
            );
            None
        }
    }
}

fn close(plan: u64, llama: u64) -> bool {
    (plan as f64 - llama as f64).abs() <= TOLERANCE * llama as f64
}

#[test]
fn plan_agrees_with_llama_cpp_on_weights_params_and_kv_per_token() {
    let Some(path) = test_model() else { return };
    let header = read_file(&path, &Limits::default()).unwrap();
    let plan = ModelMemory::from_header(&header).unwrap();
    let summary = Summary::from_header(&header);

    let _one_backend = ONE_BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    println!(
        "weights: plan {} B, llama.cpp {} B; params: plan {}, llama.cpp {}",
        plan.weights_bytes,
        model.size(),
        summary.parameters,
        model.n_params()
    );
    assert!(close(plan.weights_bytes, model.size()));
    assert!(close(summary.parameters, model.n_params()));
    assert_eq!(u64::from(model.n_layer()), plan.layers);

    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(1024))
        .with_n_batch(CHUNK as u32)
        .with_n_threads(2)
        .with_n_threads_batch(2);
    let mut ctx = model.new_context(&backend, params).unwrap();
    let mut state_after = Vec::new();
    for chunk in 0..2 {
        let mut batch = LlamaBatch::new(CHUNK as usize, 1);
        for i in 0..CHUNK {
            let pos = chunk * CHUNK + i;
            batch
                .add(LlamaToken::new(1000 + pos), pos, &[0], i == CHUNK - 1)
                .unwrap();
        }
        ctx.decode(&mut batch).unwrap();
        state_after.push(ctx.state_seq_get_size_ext(0, LlamaStateSeqFlags::empty()) as u64);
    }
    let per_token = (state_after[1] - state_after[0]) / CHUNK as u64;
    println!(
        "KV per token: plan {} B, llama.cpp state growth {} B",
        plan.kv_bytes_per_token, per_token
    );
    assert!(close(plan.kv_bytes_per_token, per_token));
}

/// Collects what llama.cpp logs on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of the KV buffers llama.cpp reports for a context made with `params` (one line per
/// cache: the full-attention one and, for Gemma 3, the sliding-window one).
fn reported_kv_bytes(
    model: &LlamaModel,
    backend: &LlamaBackend,
    params: LlamaContextParams,
) -> u64 {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        send_logs_to_tracing(LogOptions::default());
        let _ctx = model.new_context(backend, params).unwrap();
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let mib: Vec<f64> = log
        .lines()
        .filter_map(|line| line.split_once("KV buffer size =")?.1.split_once("MiB"))
        .map(|(figure, _)| figure.trim().parse::<f64>().unwrap())
        .collect();
    println!("llama.cpp KV buffers: {mib:?} MiB");
    assert!(
        !mib.is_empty(),
        "llama.cpp logged no KV buffer size:\n{log}"
    );
    (mib.iter().sum::<f64>() * f64::from(1 << 20)).round() as u64
}

#[test]
fn plan_agrees_with_llama_cpp_on_the_whole_kv_cache_of_all_slots() {
    let Some(path) = test_model() else { return };
    let header = read_file(&path, &Limits::default()).unwrap();
    let memory = ModelMemory::from_header(&header).unwrap();
    let input = PlanInput {
        context_length: u64::from(SLOT_CONTEXT),
        parallel: u64::from(SLOTS),
        gpu_count: 0,
        gpu_memory_bytes: 0,
        gpu_layers: GpuLayers::Auto,
    };
    let planned = kv_bytes(&memory, &input);

    let _one_backend = ONE_BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    let mut backend = LlamaBackend::init().unwrap();
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default()).unwrap();
    // As agent/src/serve/engine/worker.rs makes it.
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(SLOT_CONTEXT * SLOTS))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_seq_max(SLOTS)
        .with_n_threads(2)
        .with_n_threads_batch(2)
        .with_swa_full(true);
    let reported = reported_kv_bytes(&model, &backend, params);
    println!("KV of {SLOTS} slots x {SLOT_CONTEXT}: plan {planned} B, llama.cpp {reported} B");
    assert!(close(planned, reported));
    // Read as one context shared by the slots, it would be a half of it: the plan is per slot.
    assert!(!close(planned / u64::from(SLOTS), reported));
}
