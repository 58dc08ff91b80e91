//! One crafted header per rule: each must be rejected with its own error kind.
//!
//! Every case starts from the valid `GgufWriter::tiny_llama(0)` and breaks exactly one rule.
//! Layout of that file's tensor data (alignment 32): token_embd.weight 8x4 F32 at 0 (128 B),
//! blk.0.attn_q.weight 8x8 at 128 (256 B), blk.1.attn_q.weight at 384, output_norm at 640.
#![allow(clippy::unwrap_used)]

use llamafleet_gguf::writer::{GgufWriter, TensorSpec, encode_string};
use llamafleet_gguf::{Array, GgufError, Limits, Value, parse};

fn check(bytes: &[u8]) -> Result<llamafleet_gguf::GgufHeader, GgufError> {
    parse(bytes, bytes.len() as u64, &Limits::default())
}

fn rejected(bytes: Vec<u8>, expected_kind: &str) -> GgufError {
    match check(&bytes) {
        Ok(_) => panic!("accepted a file that breaks {expected_kind}"),
        Err(e) => {
            assert_eq!(e.kind(), expected_kind, "wrong error: {e}");
            // Every message names where it happened.
            let text = e.to_string();
            assert!(
                text.contains("offset") || matches!(e, GgufError::BadMagic { .. }),
                "{text}"
            );
            e
        }
    }
}

fn base() -> GgufWriter {
    GgufWriter::tiny_llama(0)
}

/// Payload bytes after a key: type id then raw value bytes.
fn payload(type_id: u32, value: &[u8]) -> Vec<u8> {
    let mut p = type_id.to_le_bytes().to_vec();
    p.extend_from_slice(value);
    p
}

fn pos(bytes: &[u8], needle: &[u8]) -> u64 {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap() as u64
}

#[test]
fn the_base_file_is_valid() {
    let bytes = base().to_bytes();
    let header = check(&bytes).unwrap();
    assert_eq!(header.tensors.len(), 4);
    assert_eq!(header.tensors[3].data_offset, 640);
}

#[test]
fn bad_magic() {
    let mut w = base();
    w.magic = *b"GGML";
    let e = rejected(w.to_bytes(), "bad_magic");
    assert_eq!(e, GgufError::BadMagic { found: *b"GGML" });
}

#[test]
fn unsupported_versions() {
    for version in [0, 1, 4, 0x0300_0000] {
        let mut w = base();
        w.version = version;
        assert_eq!(
            rejected(w.to_bytes(), "unsupported_version"),
            GgufError::UnsupportedVersion { version }
        );
    }
}

#[test]
fn huge_tensor_count_is_checked_before_allocating() {
    // CVE-2026-27940 / CVE-2025-53630 shape: a tensor count whose bookkeeping overflows.
    let mut w = base();
    w.tensor_count = Some(u64::MAX / 8);
    rejected(w.to_bytes(), "tensor_count_too_large");
}

#[test]
fn huge_metadata_count_is_checked_before_allocating() {
    let mut w = base();
    w.kv_count = Some(1 << 60);
    rejected(w.to_bytes(), "metadata_count_too_large");
}

#[test]
fn string_length_near_u64_max() {
    let mut value = (u64::MAX - 7).to_le_bytes().to_vec();
    value.extend_from_slice(b"tiny");
    let bytes = base()
        .without_kv("general.name")
        .kv_raw(b"general.name", payload(8, &value))
        .to_bytes();
    let e = rejected(bytes.clone(), "string_length_too_large");
    let GgufError::StringLengthTooLarge {
        field,
        offset,
        length,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(field, "general.name");
    assert_eq!(length, u64::MAX - 7);
    assert_eq!(offset, pos(&bytes, b"general.name") + 12 + 4);
}

#[test]
fn vocab_token_length_overflow() {
    // CVE-2025-49847 shape: one token whose length prefix is absurd.
    let mut value = 8u32.to_le_bytes().to_vec(); // element type: string
    value.extend_from_slice(&4u64.to_le_bytes());
    value.extend_from_slice(&(i32::MAX as u64 + 2).to_le_bytes());
    value.extend_from_slice(b"<unk>");
    let bytes = base()
        .without_kv("tokenizer.ggml.tokens")
        .kv_raw(b"tokenizer.ggml.tokens", payload(9, &value))
        .to_bytes();
    let e = rejected(bytes, "string_length_too_large");
    assert!(e.to_string().contains("tokenizer.ggml.tokens[0]"), "{e}");
}

#[test]
fn array_length_beyond_the_file() {
    let mut value = 6u32.to_le_bytes().to_vec(); // f32
    value.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let bytes = base()
        .without_kv("tokenizer.ggml.scores")
        .kv_raw(b"tokenizer.ggml.scores", payload(9, &value))
        .to_bytes();
    rejected(bytes, "array_length_too_large");
}

#[test]
fn invalid_utf8_in_a_key() {
    let bytes = base()
        .kv_raw(b"general.\xffname", payload(4, &1u32.to_le_bytes()))
        .to_bytes();
    let e = rejected(bytes, "invalid_utf8");
    assert!(e.to_string().contains("metadata[13].key"), "{e}");
}

#[test]
fn invalid_utf8_in_a_string_value() {
    let mut value = Vec::new();
    encode_string(&mut value, b"caf\xc3");
    let bytes = base()
        .without_kv("general.name")
        .kv_raw(b"general.name", payload(8, &value))
        .to_bytes();
    rejected(bytes, "invalid_utf8");
}

#[test]
fn unknown_metadata_value_type() {
    let bytes = base()
        .kv_raw(b"general.mystery", payload(13, &[0; 8]))
        .to_bytes();
    let e = rejected(bytes, "unknown_value_type");
    assert!(matches!(e, GgufError::UnknownValueType { type_id: 13, .. }));
}

#[test]
fn bool_that_is_neither_0_nor_1() {
    let bytes = base().kv_raw(b"general.flag", payload(7, &[2])).to_bytes();
    rejected(bytes, "invalid_bool");
}

#[test]
fn nested_arrays_are_bounded() {
    // An array of arrays: llama.cpp's loader rejects them, so the default depth is 1.
    let value = Value::Array(Array::Array(vec![Array::U8(vec![1, 2])]));
    rejected(
        base().kv("general.nested", value.clone()).to_bytes(),
        "array_too_deep",
    );
    // With depth 2 allowed, a third level is still refused.
    let deeper = Value::Array(Array::Array(vec![Array::Array(vec![Array::U8(vec![1])])]));
    let bytes = base().kv("general.nested", deeper).to_bytes();
    let limits = Limits {
        max_array_depth: 2,
        ..Limits::default()
    };
    let e = parse(&bytes, bytes.len() as u64, &limits).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::ArrayTooDeep {
                depth: 3,
                max: 2,
                ..
            }
        ),
        "{e}"
    );
    let ok = base().kv("general.nested", value).to_bytes();
    parse(&ok, ok.len() as u64, &limits).unwrap();
}

#[test]
fn duplicate_metadata_key() {
    let bytes = base()
        .kv_raw(b"general.name", payload(8, &[0; 8]))
        .to_bytes();
    rejected(bytes, "duplicate_key");
}

#[test]
fn duplicate_tensor_name() {
    let bytes = base().tensor("blk.1.attn_q.weight", &[8], 0).to_bytes();
    rejected(bytes, "duplicate_tensor");
}

#[test]
fn tensor_name_longer_than_ggml_allows() {
    let name = format!("blk.0.{}", "x".repeat(58));
    assert_eq!(name.len(), 64);
    rejected(
        base().tensor(&name, &[8], 0).to_bytes(),
        "tensor_name_too_long",
    );
}

#[test]
fn more_than_four_dimensions() {
    let bytes = base().tensor("extra", &[1, 1, 1, 1, 8], 0).to_bytes();
    rejected(bytes, "too_many_dims");
}

#[test]
fn negative_dimension() {
    let bytes = base().tensor("extra", &[8, 1 << 63], 0).to_bytes();
    rejected(bytes, "dimension_too_large");
}

#[test]
fn element_count_overflow() {
    // CVE-2025-53630 shape: ne[0] * ne[1] wraps around.
    let bytes = base().tensor("extra", &[1 << 32, 1 << 32], 0).to_bytes();
    let e = rejected(bytes, "element_count_overflow");
    assert!(
        matches!(e, GgufError::ElementCountOverflow { ref dims, .. } if dims == &[1 << 32, 1 << 32])
    );
}

#[test]
fn unknown_and_removed_tensor_types() {
    for type_id in [4, 31, 40, u32::MAX] {
        let bytes = base()
            .edit_tensor("output_norm.weight", |t| t.type_id = type_id)
            .to_bytes();
        let e = rejected(bytes, "unknown_tensor_type");
        assert!(matches!(e, GgufError::UnknownTensorType { type_id: id, .. } if id == type_id));
    }
}

#[test]
fn row_not_a_whole_number_of_blocks() {
    let bytes = base().tensor("extra", &[100, 2], 12).to_bytes(); // Q4_K, blocks of 256
    rejected(bytes, "row_not_block_aligned");
}

#[test]
fn tensor_byte_size_overflow() {
    // CVE-2026-33298 shape: a representable element count whose byte size is exabytes.
    let bytes = base().tensor("extra", &[1 << 31, 1 << 31], 28).to_bytes(); // F64: 2^65 bytes
    rejected(bytes, "tensor_size_overflow");
}

#[test]
fn misaligned_tensor_offset() {
    let bytes = base()
        .edit_tensor("blk.0.attn_q.weight", |t| t.offset = Some(129))
        .to_bytes();
    rejected(bytes, "tensor_misaligned");
}

#[test]
fn tensors_out_of_order_overlap() {
    let bytes = base()
        .edit_tensor("blk.1.attn_q.weight", |t| t.offset = Some(0))
        .to_bytes();
    rejected(bytes, "tensor_overlap");
}

#[test]
fn gap_between_tensors() {
    let bytes = base()
        .edit_tensor("blk.1.attn_q.weight", |t| t.offset = Some(416))
        .to_bytes();
    rejected(bytes, "tensor_gap");
}

#[test]
fn tensor_offset_plus_size_overflows() {
    // Two tensors of ~2^63 bytes each: the running offset + size wraps around u64.
    let huge = (1u64 << 63) - 32;
    let bytes = GgufWriter::new()
        .tensor("a", &[huge], 24)
        .tensor_spec(TensorSpec {
            name: b"b".to_vec(),
            dims: vec![huge],
            type_id: 24,
            offset: Some(huge),
        })
        .to_bytes();
    rejected(bytes, "tensor_offset_overflow");
}

#[test]
fn tensor_data_past_the_end_of_the_file() {
    let mut w = base();
    let len = w.to_bytes().len();
    w.truncate_to = Some(len - 1);
    let e = rejected(w.to_bytes(), "tensor_out_of_bounds");
    assert!(e.to_string().contains("output_norm.weight"), "{e}");
}

#[test]
fn alignment_of_the_wrong_type() {
    rejected(
        base().kv("general.alignment", Value::U64(32)).to_bytes(),
        "alignment_wrong_type",
    );
}

#[test]
fn alignment_not_a_power_of_two() {
    for value in [0, 48] {
        let bytes = base().kv("general.alignment", Value::U32(value)).to_bytes();
        rejected(bytes, "alignment_not_power_of_two");
    }
}

#[test]
fn tokenizer_arrays_of_the_wrong_type() {
    let cases = [
        (
            "tokenizer.ggml.tokens",
            Value::Array(Array::I32(vec![0; 4])),
        ),
        (
            "tokenizer.ggml.scores",
            Value::Array(Array::F64(vec![0.0; 4])),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(Array::U32(vec![1; 4])),
        ),
        ("tokenizer.ggml.merges", Value::String("a b".into())),
    ];
    for (key, value) in cases {
        let e = rejected(base().kv(key, value).to_bytes(), "tokenizer_wrong_type");
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn tokenizer_arrays_of_different_lengths() {
    let bytes = base()
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1; 3])),
        )
        .to_bytes();
    rejected(bytes, "tokenizer_length_mismatch");
}

#[test]
fn token_longer_than_the_limit() {
    let tokens = vec!["a".into(), "b".into(), "c".repeat(70_000), "d".into()];
    let bytes = base()
        .kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .to_bytes();
    rejected(bytes, "token_too_long");
}

#[test]
fn special_token_id_outside_the_vocabulary() {
    let bytes = base()
        .kv("tokenizer.ggml.eos_token_id", Value::U32(4))
        .to_bytes();
    rejected(bytes, "token_id_out_of_range");
}

#[test]
fn block_count_zero_or_absurd() {
    for value in [0, 1_000_000] {
        let bytes = base().kv("llama.block_count", Value::U32(value)).to_bytes();
        rejected(bytes, "block_count_out_of_range");
    }
}

#[test]
fn block_count_of_the_wrong_type() {
    let bytes = base()
        .kv("llama.block_count", Value::String("2".into()))
        .to_bytes();
    rejected(bytes, "block_count_wrong_type");
}

#[test]
fn block_count_that_disagrees_with_the_tensors() {
    let bytes = base().kv("llama.block_count", Value::U32(3)).to_bytes();
    let e = rejected(bytes, "block_count_mismatch");
    assert!(matches!(
        e,
        GgufError::BlockCountMismatch {
            declared: 3,
            found: 2,
            ..
        }
    ));
}

#[test]
fn truncated_inside_the_metadata() {
    let mut w = base();
    w.truncate_to = Some(200);
    rejected(w.to_bytes(), "truncated");
}

#[test]
fn header_larger_than_the_budget() {
    let bytes = base().to_bytes();
    let limits = Limits {
        max_header_bytes: 64,
        ..Limits::default()
    };
    let e = parse(&bytes, bytes.len() as u64, &limits).unwrap_err();
    assert_eq!(e.kind(), "header_too_large", "{e}");
}

#[test]
fn every_rule_has_its_own_error_kind() {
    // The kinds asserted above, minus the non-verdicts: more than 20 distinct rules.
    let kinds = [
        "bad_magic",
        "unsupported_version",
        "tensor_count_too_large",
        "metadata_count_too_large",
        "string_length_too_large",
        "array_length_too_large",
        "invalid_utf8",
        "unknown_value_type",
        "invalid_bool",
        "array_too_deep",
        "duplicate_key",
        "duplicate_tensor",
        "tensor_name_too_long",
        "too_many_dims",
        "dimension_too_large",
        "element_count_overflow",
        "unknown_tensor_type",
        "row_not_block_aligned",
        "tensor_size_overflow",
        "tensor_misaligned",
        "tensor_overlap",
        "tensor_gap",
        "tensor_offset_overflow",
        "tensor_out_of_bounds",
        "alignment_wrong_type",
        "alignment_not_power_of_two",
        "tokenizer_wrong_type",
        "tokenizer_length_mismatch",
        "token_too_long",
        "token_id_out_of_range",
        "block_count_wrong_type",
        "block_count_out_of_range",
        "block_count_mismatch",
        "truncated",
        "header_too_large",
    ];
    let unique: std::collections::HashSet<_> = kinds.iter().collect();
    assert_eq!(unique.len(), kinds.len());
    assert!(unique.len() >= 20);
}
