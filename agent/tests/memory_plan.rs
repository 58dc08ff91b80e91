//! Cross-check of the operator's memory plan (`llamafleet_gguf::memory`, pure header
//! arithmetic) against what llama.cpp itself reports for the real test model:
//! - weights: `llama_model_size` (bytes of all tensors) and `llama_model_n_params`;
//! - KV cache: the growth of sequence 0's saved state per decoded token (the state holds the
//!   f16 K and V rows of each cached token, plus a few bytes of cell metadata per token).
//!
//! Tolerance: 1% on each figure (the plan counts tensor data exactly; the state adds ~16 bytes
//! of cell metadata per token to 18,432 bytes of K/V).
//!
//! Needs `LLAMAFLEET_TEST_MODEL` (from `scripts/fetch-test-model.sh`): fails under CI without
//! it, skipped elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::num::NonZeroU32;
use std::path::PathBuf;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use llamafleet_gguf::{Limits, ModelMemory, Summary, read_file};

/// Allowed relative difference between the plan and llama.cpp.
const TOLERANCE: f64 = 0.01;
/// Tokens per decoded chunk; the KV growth is measured over one chunk.
const CHUNK: i32 = 32;

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
