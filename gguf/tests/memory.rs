//! The memory plan against hand-made headers (every figure worked out by hand in the
//! comments) and against the real test model.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use llamafleet_gguf::memory::{GPU_RESERVE_BYTES, OVERHEAD_BASE_BYTES};
use llamafleet_gguf::writer::GgufWriter;
use llamafleet_gguf::{
    Array, GpuLayers, Limits, MemoryError, ModelMemory, PlanInput, Value, parse, read_file,
};

fn memory_of(w: &GgufWriter) -> Result<ModelMemory, MemoryError> {
    let bytes = w.to_bytes();
    let header = parse(&bytes, bytes.len() as u64, &Limits::default()).unwrap();
    ModelMemory::from_header(&header)
}

fn cpu(context_length: u64) -> PlanInput {
    PlanInput {
        context_length,
        parallel: 1,
        gpu_count: 0,
        gpu_memory_bytes: 0,
        gpu_layers: GpuLayers::Auto,
    }
}

#[test]
fn tiny_llama_figures() {
    // token_embd 8x4 f32 = 128 B, two blk.N.attn_q 8x8 f32 = 2 x 256 B, output_norm 8 f32 = 32 B.
    // 2 layers x 1 KV head x (4 + 4) dims (8 / 2 heads) x 2 B = 32 B per token.
    let m = memory_of(&GgufWriter::tiny_llama(0)).unwrap();
    assert_eq!(
        m,
        ModelMemory {
            weights_bytes: 672,
            layer_weights_bytes: 512,
            layers: 2,
            kv_bytes_per_token: 32,
            vocab_size: 4,
        }
    );
}

#[test]
fn cpu_plan_adds_kv_overhead_and_headroom() {
    let m = memory_of(&GgufWriter::tiny_llama(0)).unwrap();
    let p = llamafleet_gguf::memory::plan(&m, &cpu(256));
    assert_eq!(p.kv_bytes, 32 * 256);
    // 256 MiB + 4 logits x 4 B x 1 slot + 10% of (672 + 8192) rounded down per 100 B.
    assert_eq!(p.overhead_bytes, OVERHEAD_BASE_BYTES + 16 + 880);
    assert_eq!(p.host_bytes, 672 + 8192 + OVERHEAD_BASE_BYTES + 16 + 880);
    assert_eq!(p.memory_request_bytes, 257 << 20);
    // 257 MiB + 25% = 321.25 MiB, rounded up.
    assert_eq!(p.memory_limit_bytes, 322 << 20);
    assert_eq!((p.gpu_layers, p.gpu_bytes, p.layers), (0, 0, 2));
}

#[test]
fn each_slot_has_its_own_padded_context() {
    let m = memory_of(&GgufWriter::tiny_llama(0)).unwrap();
    let slots = |context_length, parallel| {
        llamafleet_gguf::memory::kv_bytes(
            &m,
            &PlanInput {
                parallel,
                ..cpu(context_length)
            },
        )
    };
    // llama.cpp gives each slot its own cells, padded to 256: 3 x 256 x 32 B.
    assert_eq!(slots(256, 3), 3 * 256 * 32);
    // 300 tokens take 512 cells per slot.
    assert_eq!(slots(300, 1), 512 * 32);
    assert_eq!(slots(300, 2), 2 * 512 * 32);
}

#[test]
fn gpu_auto_offloads_what_fits() {
    let m = memory_of(&GgufWriter::tiny_llama(0)).unwrap();
    // Per layer: 512 / 2 weights + 8192 / 2 KV = 4352 B.
    let with = |spare: u64, count: u64| PlanInput {
        gpu_count: count,
        gpu_memory_bytes: GPU_RESERVE_BYTES + spare,
        ..cpu(256)
    };
    let all = llamafleet_gguf::memory::plan(&m, &with(9000, 1));
    assert_eq!((all.gpu_layers, all.gpu_bytes), (2, 8704));
    assert_eq!(all.host_bytes, 672 + 8192 - 8704 + all.overhead_bytes);
    let one = llamafleet_gguf::memory::plan(&m, &with(5000, 1));
    assert_eq!(one.gpu_layers, 1);
    let none = llamafleet_gguf::memory::plan(&m, &with(4000, 1));
    assert_eq!(none.gpu_layers, 0);
    // Two GPUs pool their budgets (llama.cpp splits layers across them).
    assert_eq!(
        llamafleet_gguf::memory::plan(&m, &with(4352, 2)).gpu_layers,
        2
    );
    let fixed = PlanInput {
        gpu_layers: GpuLayers::Fixed(9),
        ..with(0, 1)
    };
    assert_eq!(llamafleet_gguf::memory::plan(&m, &fixed).gpu_layers, 2);
}

#[test]
fn explicit_head_dims_and_per_layer_kv_heads() {
    let w = GgufWriter::tiny_llama(0)
        .kv("llama.attention.key_length", Value::U32(16))
        .kv("llama.attention.value_length", Value::U32(8));
    // 2 layers x 1 KV head x (16 + 8) x 2 B.
    assert_eq!(memory_of(&w).unwrap().kv_bytes_per_token, 96);
    let w = GgufWriter::tiny_llama(0).kv(
        "llama.attention.head_count_kv",
        Value::Array(Array::U32(vec![1, 0])),
    );
    // Layer 1 keeps no KV (a recurrent layer in a hybrid model): 1 x 8 x 2 B.
    assert_eq!(memory_of(&w).unwrap().kv_bytes_per_token, 16);
    let w = GgufWriter::tiny_llama(0).without_kv("llama.attention.head_count_kv");
    // No GQA: 2 KV heads per layer.
    assert_eq!(memory_of(&w).unwrap().kv_bytes_per_token, 64);
}

#[test]
fn missing_keys_are_named() {
    let w = GgufWriter::tiny_llama(0).without_kv("llama.block_count");
    assert_eq!(
        memory_of(&w),
        Err(MemoryError::Missing("llama.block_count".into()))
    );
}

fn test_model() -> Option<PathBuf> {
    match std::env::var_os("LLAMAFLEET_TEST_MODEL") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "LLAMAFLEET_TEST_MODEL is not set: run `export LLAMAFLEET_TEST_MODEL=$(scripts/fetch-test-model.sh)`"
            )
        }
        None => {
            eprintln!(
                "skipped: LLAMAFLEET_TEST_MODEL is not set (run scripts/fetch-test-model.sh)"
            );
            None
        }
    }
}

#[test]
fn gemma_3_270m_plan() {
    let Some(path) = test_model() else { return };
    let header = read_file(&path, &Limits::default()).unwrap();
    let m = ModelMemory::from_header(&header).unwrap();
    println!("{m:?}");
    // Gemma 3 270M: 18 layers, 1 KV head of 256 + 256 dims each: 18 x 512 x 2 B per token.
    assert_eq!(m.layers, 18);
    assert_eq!(m.kv_bytes_per_token, 18 * 512 * 2);
    assert_eq!(m.vocab_size, 262_144);
    // Sum of the tensor sizes in this header (235.2 MiB; the 262k x 640 embedding is most of it).
    assert_eq!(m.weights_bytes, 246_587_904);
    assert_eq!(m.layer_weights_bytes, 68_327_424);
    // All tensor data is in the file after the header.
    assert!(m.weights_bytes <= header.file_size - header.data_offset);
    assert!(m.weights_bytes + (1 << 20) > header.file_size - header.data_offset);
    assert!(m.layer_weights_bytes < m.weights_bytes);
    let p = llamafleet_gguf::memory::plan(&m, &cpu(4096));
    println!("{p:?}");
    assert_eq!(p.kv_bytes, 4096 * 18_432);
}
