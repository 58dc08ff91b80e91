//! A GGUF writer for tests (feature `testing`): valid files, and malformed ones on purpose.
//!
//! Entries are stored encoded, so a test can put any bytes anywhere: a lying count, an unknown
//! type id, invalid UTF-8, a misplaced offset. [`GgufWriter::tiny_llama`] is a small valid
//! model to start from; each malformed test changes exactly one thing.

use crate::ggml_type::GgmlType;
use crate::value::{Array, Value};

/// One tensor info to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name bytes (need not be UTF-8).
    pub name: Vec<u8>,
    /// Dimensions as written.
    pub dims: Vec<u64>,
    /// ggml type id as written.
    pub type_id: u32,
    /// Data offset as written; `None` = the packed position.
    pub offset: Option<u64>,
}

/// Builds GGUF bytes.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    /// The four magic bytes.
    pub magic: [u8; 4],
    /// The version field.
    pub version: u32,
    /// Written instead of the real tensor count.
    pub tensor_count: Option<u64>,
    /// Written instead of the real metadata count.
    pub kv_count: Option<u64>,
    /// Alignment used to lay out data (write `general.alignment` separately to declare it).
    pub alignment: u64,
    /// Cut the output to this many bytes.
    pub truncate_to: Option<usize>,
    /// Extra bytes of tensor data appended after the last tensor.
    pub trailing_bytes: usize,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    tensors: Vec<TensorSpec>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            magic: *b"GGUF",
            version: 3,
            tensor_count: None,
            kv_count: None,
            alignment: 32,
            truncate_to: None,
            trailing_bytes: 0,
            entries: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

/// Appends a GGUF string (u64 length + bytes).
pub fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// Appends a value's payload (without its type id).
pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => encode_string(out, s.as_bytes()),
        Value::Array(a) => encode_array(out, a),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn encode_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| encode_string(out, s.as_bytes())),
        Array::Array(v) => v.iter().for_each(|inner| encode_array(out, inner)),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
    }
}

/// A deterministic, non-constant byte pattern for tensor data (so hashes mean something).
pub fn data_byte(i: usize) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

impl GgufWriter {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// A small valid llama-style model: 2 blocks, 4 tokens, F32 tensors, and `extra_rows`
    /// more rows of 8 floats in `token_embd.weight` to make the file as large as a test needs.
    pub fn tiny_llama(extra_rows: u64) -> Self {
        let tokens = ["<unk>", "<s>", "</s>", "hello"];
        Self::new()
            .kv("general.architecture", Value::String("llama".into()))
            .kv("general.name", Value::String("tiny".into()))
            .kv("general.file_type", Value::U32(0))
            .kv("llama.block_count", Value::U32(2))
            .kv("llama.context_length", Value::U32(128))
            .kv("llama.embedding_length", Value::U32(8))
            .kv("llama.attention.head_count", Value::U32(2))
            .kv("llama.attention.head_count_kv", Value::U32(1))
            .kv("tokenizer.ggml.model", Value::String("llama".into()))
            .kv(
                "tokenizer.ggml.tokens",
                Value::Array(Array::String(
                    tokens.iter().map(|t| t.to_string()).collect(),
                )),
            )
            .kv(
                "tokenizer.ggml.scores",
                Value::Array(Array::F32(vec![0.0; 4])),
            )
            .kv(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![1; 4])),
            )
            .kv("tokenizer.ggml.bos_token_id", Value::U32(1))
            .tensor("token_embd.weight", &[8, 4 + extra_rows], 0)
            .tensor("blk.0.attn_q.weight", &[8, 8], 0)
            .tensor("blk.1.attn_q.weight", &[8, 8], 0)
            .tensor("output_norm.weight", &[8], 0)
    }

    /// Sets a metadata entry (replacing one with the same key).
    pub fn kv(self, key: &str, value: Value) -> Self {
        let mut payload = value.value_type().id().to_le_bytes().to_vec();
        encode_value(&mut payload, &value);
        self.without_kv(key).kv_raw(key.as_bytes(), payload)
    }

    /// Appends an entry as raw bytes: `payload` is everything after the key (type id + value).
    /// Never replaces, so it can write duplicates.
    pub fn kv_raw(mut self, key: &[u8], payload: Vec<u8>) -> Self {
        self.entries.push((key.to_vec(), payload));
        self
    }

    /// Removes the entry with this key.
    pub fn without_kv(mut self, key: &str) -> Self {
        self.entries.retain(|(k, _)| k != key.as_bytes());
        self
    }

    /// Appends a tensor at its packed position.
    pub fn tensor(self, name: &str, dims: &[u64], type_id: u32) -> Self {
        self.tensor_spec(TensorSpec {
            name: name.as_bytes().to_vec(),
            dims: dims.to_vec(),
            type_id,
            offset: None,
        })
    }

    /// Appends a tensor as specified.
    pub fn tensor_spec(mut self, spec: TensorSpec) -> Self {
        self.tensors.push(spec);
        self
    }

    /// Changes the tensor with this name.
    pub fn edit_tensor(mut self, name: &str, edit: impl FnOnce(&mut TensorSpec)) -> Self {
        if let Some(t) = self.tensors.iter_mut().find(|t| t.name == name.as_bytes()) {
            edit(t);
        }
        self
    }

    fn byte_size(t: &TensorSpec) -> u64 {
        let elements = t.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        match (GgmlType::from_id(t.type_id), elements) {
            (Some(ty), Some(n)) => ty.byte_size(n).unwrap_or(0),
            _ => 0,
        }
    }

    /// The file's bytes. Tensor data is [`data_byte`]`(i)` for its absolute offset `i`; data
    /// is only written for files under 1 GiB (overflow tests declare absurd sizes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        let n_tensors = self.tensor_count.unwrap_or(self.tensors.len() as u64);
        let n_kv = self.kv_count.unwrap_or(self.entries.len() as u64);
        out.extend_from_slice(&n_tensors.to_le_bytes());
        out.extend_from_slice(&n_kv.to_le_bytes());
        for (key, payload) in &self.entries {
            encode_string(&mut out, key);
            out.extend_from_slice(payload);
        }
        let align = self.alignment.max(1);
        let mut next = 0u64;
        let mut data_end = 0u64;
        for t in &self.tensors {
            encode_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.type_id.to_le_bytes());
            let size = Self::byte_size(t);
            let offset = t.offset.unwrap_or(next);
            out.extend_from_slice(&offset.to_le_bytes());
            let end = offset.saturating_add(size);
            data_end = data_end.max(end);
            next = end.div_ceil(align).saturating_mul(align);
        }
        let data_start = (out.len() as u64).div_ceil(align) * align;
        let total = data_start.saturating_add(data_end) + self.trailing_bytes as u64;
        if total < (1 << 30) {
            out.resize(data_start as usize, 0);
            let start = out.len();
            out.extend((start..total as usize).map(data_byte));
        }
        if let Some(n) = self.truncate_to {
            out.truncate(n);
        }
        out
    }
}
