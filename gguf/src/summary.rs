//! The facts the agent and the operator need about a model, computed from a parsed header.

use serde::Serialize;

use crate::ggml_type::file_type_name;
use crate::reader::GgufHeader;
use crate::value::Value;

/// What `inspect` prints and the operator records in `LlmModel.status.gguf`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// Sum of all tensors' element counts.
    pub parameters: u64,
    /// `general.file_type`.
    pub file_type: Option<u32>,
    /// The quantisation name for `file_type` (`Q4_K_M`), else the type that holds the most
    /// bytes of tensor data.
    pub quantization: Option<String>,
    /// `<arch>.context_length`.
    pub context_length: Option<u64>,
    /// `<arch>.block_count` (transformer layers).
    pub layers: Option<u64>,
    /// `<arch>.embedding_length`.
    pub embedding_length: Option<u64>,
    /// `<arch>.attention.head_count` (the largest, when given per layer).
    pub heads: Option<u64>,
    /// `<arch>.attention.head_count_kv` (the largest, when given per layer).
    pub kv_heads: Option<u64>,
    /// Length of `tokenizer.ggml.tokens`, else `<arch>.vocab_size`.
    pub vocab_size: Option<u64>,
    /// Whether `tokenizer.chat_template` is present.
    pub chat_template_present: bool,
    /// Bytes of tensor data (without alignment padding).
    pub tensor_data_bytes: u64,
    /// Format version.
    pub version: u32,
    /// Data alignment.
    pub alignment: u64,
    /// Absolute offset of the tensor data (the header's size, padded).
    pub data_offset: u64,
    /// File size.
    pub file_size: u64,
    /// Number of metadata entries.
    pub metadata_count: usize,
    /// Per-tensor facts.
    pub tensors: Vec<TensorSummary>,
}

/// One tensor in a [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorSummary {
    /// Name.
    pub name: String,
    /// ggml type name.
    pub ggml_type: &'static str,
    /// Dimensions, innermost first.
    pub shape: Vec<u64>,
    /// Elements.
    pub elements: u64,
    /// Bytes.
    pub bytes: u64,
    /// Absolute offset of the data in the file.
    pub offset: u64,
}

fn integer(h: &GgufHeader, key: &str) -> Option<u64> {
    let value = match h.get(key)? {
        Value::Array(a) => a.max_integer()?,
        v => v.as_integer()?,
    };
    u64::try_from(value).ok()
}

impl Summary {
    /// Summarises a parsed header.
    pub fn from_header(h: &GgufHeader) -> Summary {
        let arch = h.architecture().map(str::to_owned);
        let arch_key = |suffix: &str| {
            arch.as_ref()
                .and_then(|a| integer(h, &format!("{a}.{suffix}")))
        };
        let file_type = integer(h, "general.file_type").and_then(|v| u32::try_from(v).ok());
        let quantization = file_type
            .and_then(file_type_name)
            .or_else(|| dominant_type(h))
            .map(str::to_owned);
        let vocab_size = match h.get("tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => Some(a.len() as u64),
            _ => arch_key("vocab_size"),
        };
        Summary {
            name: h
                .get("general.name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: h
                .tensors
                .iter()
                .fold(0u64, |acc, t| acc.saturating_add(t.n_elements)),
            file_type,
            quantization,
            context_length: arch_key("context_length"),
            layers: arch_key("block_count"),
            embedding_length: arch_key("embedding_length"),
            heads: arch_key("attention.head_count"),
            kv_heads: arch_key("attention.head_count_kv"),
            vocab_size,
            chat_template_present: h.get("tokenizer.chat_template").is_some(),
            tensor_data_bytes: h
                .tensors
                .iter()
                .fold(0u64, |acc, t| acc.saturating_add(t.n_bytes)),
            version: h.version,
            alignment: h.alignment,
            data_offset: h.data_offset,
            file_size: h.file_size,
            metadata_count: h.metadata.len(),
            tensors: h
                .tensors
                .iter()
                .map(|t| TensorSummary {
                    name: t.name.clone(),
                    ggml_type: t.ggml_type.name,
                    shape: t.dims.clone(),
                    elements: t.n_elements,
                    bytes: t.n_bytes,
                    offset: h.data_offset + t.data_offset,
                })
                .collect(),
            architecture: arch,
        }
    }
}

fn dominant_type(h: &GgufHeader) -> Option<&'static str> {
    let mut by_type: Vec<(&'static str, u64)> = Vec::new();
    for t in &h.tensors {
        match by_type
            .iter_mut()
            .find(|(name, _)| *name == t.ggml_type.name)
        {
            Some((_, bytes)) => *bytes += t.n_bytes,
            None => by_type.push((t.ggml_type.name, t.n_bytes)),
        }
    }
    by_type
        .into_iter()
        .max_by_key(|&(_, bytes)| bytes)
        .map(|(name, _)| name)
}
