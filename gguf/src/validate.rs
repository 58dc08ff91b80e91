//! Rules that need the whole header: alignment, tensor data layout, tokenizer arrays,
//! special token ids and block counts.

use crate::reader::{GgufHeader, offset_field_position};
use crate::value::{Array, Value};
use crate::{GgufError, Limits};

pub(crate) fn alignment(h: &GgufHeader) -> Result<u64, GgufError> {
    let Some(entry) = h.entry("general.alignment") else {
        return Ok(crate::reader::DEFAULT_ALIGNMENT);
    };
    match entry.value {
        Value::U32(v) if v.is_power_of_two() => Ok(u64::from(v)),
        Value::U32(v) => Err(GgufError::AlignmentNotPowerOfTwo {
            offset: entry.offset,
            value: v,
        }),
        ref other => Err(GgufError::AlignmentWrongType {
            offset: entry.offset,
            found: other.value_type().name(),
        }),
    }
}

/// llama.cpp requires the packed layout: each tensor starts where the previous one ends,
/// rounded up to the alignment, and every byte lies inside the file. As in llama.cpp, the
/// running offsets are computed for all tensors first (where CVE-2025-53630 overflowed),
/// then checked against the file.
pub(crate) fn tensor_layout(h: &GgufHeader) -> Result<(), GgufError> {
    let mut expected = 0u64;
    let mut ends = Vec::with_capacity(h.tensors.len());
    for t in &h.tensors {
        let offset = offset_field_position(t);
        if !t.data_offset.is_multiple_of(h.alignment) {
            return Err(GgufError::TensorMisaligned {
                tensor: t.name.clone(),
                offset,
                data_offset: t.data_offset,
                alignment: h.alignment,
            });
        }
        if t.data_offset < expected {
            return Err(GgufError::TensorOverlap {
                tensor: t.name.clone(),
                offset,
                data_offset: t.data_offset,
                expected,
            });
        }
        if t.data_offset > expected {
            return Err(GgufError::TensorGap {
                tensor: t.name.clone(),
                offset,
                data_offset: t.data_offset,
                expected,
            });
        }
        let overflow = || GgufError::TensorOffsetOverflow {
            tensor: t.name.clone(),
            offset,
            data_offset: t.data_offset,
            size: t.n_bytes,
        };
        let end = h
            .data_offset
            .checked_add(t.data_offset)
            .and_then(|start| start.checked_add(t.n_bytes))
            .ok_or_else(overflow)?;
        expected = t
            .data_offset
            .checked_add(t.n_bytes.div_ceil(h.alignment) * h.alignment)
            .ok_or_else(overflow)?;
        ends.push((t, offset, end));
    }
    for (t, offset, end) in ends {
        if end > h.file_size {
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                offset,
                end,
                file_size: h.file_size,
            });
        }
    }
    Ok(())
}

const TOKENS: &str = "tokenizer.ggml.tokens";
/// Arrays indexed by token id, with the element type llama.cpp reads them as.
const PER_TOKEN_ARRAYS: &[(&str, &str)] = &[
    ("tokenizer.ggml.scores", "array of f32"),
    ("tokenizer.ggml.token_type", "array of i32"),
];

pub(crate) fn tokenizer(h: &GgufHeader, limits: &Limits) -> Result<(), GgufError> {
    let vocab = match h.entry(TOKENS) {
        None => None,
        Some(entry) => match &entry.value {
            Value::Array(Array::String(tokens)) => {
                if let Some((index, token)) = tokens
                    .iter()
                    .enumerate()
                    .find(|(_, t)| t.len() as u64 > limits.max_token_bytes)
                {
                    return Err(GgufError::TokenTooLong {
                        offset: entry.offset,
                        index: index as u64,
                        length: token.len() as u64,
                        max: limits.max_token_bytes,
                    });
                }
                Some(tokens.len() as u64)
            }
            other => {
                return Err(GgufError::TokenizerWrongType {
                    key: TOKENS.into(),
                    offset: entry.offset,
                    expected: "array of string",
                    found: other.type_description(),
                });
            }
        },
    };
    for &(key, expected) in PER_TOKEN_ARRAYS {
        let Some(entry) = h.entry(key) else { continue };
        let len = match (&entry.value, expected) {
            (Value::Array(Array::F32(v)), "array of f32") => v.len(),
            (Value::Array(Array::I32(v)), "array of i32") => v.len(),
            (other, _) => {
                return Err(GgufError::TokenizerWrongType {
                    key: key.into(),
                    offset: entry.offset,
                    expected,
                    found: other.type_description(),
                });
            }
        } as u64;
        if let Some(vocab) = vocab.filter(|&v| v != len) {
            return Err(GgufError::TokenizerLengthMismatch {
                key: key.into(),
                offset: entry.offset,
                expected: vocab,
                found: len,
            });
        }
    }
    if let Some(entry) = h.entry("tokenizer.ggml.merges")
        && !matches!(entry.value, Value::Array(Array::String(_)))
    {
        return Err(GgufError::TokenizerWrongType {
            key: entry.key.clone(),
            offset: entry.offset,
            expected: "array of string",
            found: entry.value.type_description(),
        });
    }
    // A special token id outside the vocabulary is an out-of-bounds index in llama.cpp.
    // Negative ids are left alone: some converters write -1 for "none".
    if let Some(vocab) = vocab {
        for entry in &h.metadata {
            if !(entry.key.starts_with("tokenizer.ggml.") && entry.key.ends_with("_token_id")) {
                continue;
            }
            if let Some(id) = entry.value.as_integer()
                && id >= i128::from(vocab)
            {
                return Err(GgufError::TokenIdOutOfRange {
                    key: entry.key.clone(),
                    offset: entry.offset,
                    id,
                    vocab,
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn block_count(h: &GgufHeader, limits: &Limits) -> Result<(), GgufError> {
    let arch_key = h.architecture().map(|a| format!("{a}.block_count"));
    for entry in h
        .metadata
        .iter()
        .filter(|e| e.key.ends_with(".block_count"))
    {
        let Some(value) = entry.value.as_integer() else {
            return Err(GgufError::BlockCountWrongType {
                key: entry.key.clone(),
                offset: entry.offset,
                found: entry.value.type_description(),
            });
        };
        if value < 1 || value > i128::from(limits.max_block_count) {
            return Err(GgufError::BlockCountOutOfRange {
                key: entry.key.clone(),
                offset: entry.offset,
                value,
                max: limits.max_block_count,
            });
        }
        if arch_key.as_deref() != Some(entry.key.as_str()) {
            continue;
        }
        // Only the main model's blocks are named `blk.N.*` (vision towers use `v.blk.N.*`).
        let found = h
            .tensors
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix("blk.")?
                    .split('.')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .map(|max_index| max_index + 1);
        if let Some(found) = found
            && i128::from(found) != value
        {
            return Err(GgufError::BlockCountMismatch {
                key: entry.key.clone(),
                offset: entry.offset,
                declared: value as u64,
                found,
            });
        }
    }
    Ok(())
}
