//! Parsing of the GGUF header: counts, metadata, tensor infos and the tensor data layout.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::cursor::Cursor;
use crate::ggml_type::GgmlType;
use crate::value::{Array, Value, ValueType};
use crate::{GgufError, Limits, validate};

const MAGIC: [u8; 4] = *b"GGUF";
/// ggml's default when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_NAME` is 64 including the terminating NUL.
pub const MAX_TENSOR_NAME_BYTES: u64 = 63;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;
/// Smallest tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 24;
/// Smallest metadata entry: key length (8) + type (4) + a one-byte value.
const MIN_KV_BYTES: u64 = 13;
/// Arrays are pre-allocated up to this many elements, then grow as bytes are really read.
const MAX_PREALLOCATED_ELEMENTS: u64 = 1 << 16;

/// One metadata entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Byte offset of the value (after the key and the type id).
    pub offset: u64,
}

/// One tensor's description (its data is not read).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Dimensions, innermost first (ggml's `ne`).
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the data, relative to the start of the data section.
    pub data_offset: u64,
    /// Number of elements.
    pub n_elements: u64,
    /// Number of bytes of data.
    pub n_bytes: u64,
    /// Byte offset of this tensor info in the file.
    pub info_offset: u64,
}

/// A parsed and validated GGUF header.
#[derive(Debug, Clone, Serialize)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata, in file order.
    pub metadata: Vec<MetadataEntry>,
    /// Tensor infos, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment (`general.alignment` or 32).
    pub alignment: u64,
    /// Absolute offset of the tensor data section.
    pub data_offset: u64,
    /// Size of the whole file, as given to the parser.
    pub file_size: u64,
    #[serde(skip)]
    index: HashMap<String, usize>,
}

impl GgufHeader {
    /// The entry for a key.
    pub fn entry(&self, key: &str) -> Option<&MetadataEntry> {
        self.index.get(key).map(|&i| &self.metadata[i])
    }

    /// The value for a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entry(key).map(|e| &e.value)
    }

    /// `general.architecture`, if it is a string.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }
}

/// Parses a header from `buf`, the first bytes of a file of `file_size` bytes.
///
/// When `buf` is shorter than the header, returns [`GgufError::NeedMoreBytes`] with the prefix
/// length the next attempt needs; every other error is a verdict on the file.
pub fn parse(buf: &[u8], file_size: u64, limits: &Limits) -> Result<GgufHeader, GgufError> {
    let mut c = Cursor::new(buf, file_size, limits.max_header_bytes);

    let magic = c.array::<4>(|| "magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.u32(|| "version".into())?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion { version });
    }
    let n_tensors = c.u64(|| "n_tensors".into())?;
    let n_kv = c.u64(|| "n_kv".into())?;
    let remaining = c.remaining();
    if n_tensors
        .checked_mul(MIN_TENSOR_INFO_BYTES)
        .is_none_or(|n| n > remaining)
    {
        return Err(GgufError::TensorCountTooLarge {
            count: n_tensors,
            remaining,
        });
    }
    if n_kv.checked_mul(MIN_KV_BYTES).is_none_or(|n| n > remaining) {
        return Err(GgufError::MetadataCountTooLarge {
            count: n_kv,
            remaining,
        });
    }

    // No capacity is reserved from the counts: entries are pushed as their bytes are read.
    let mut metadata = Vec::new();
    let mut index = HashMap::new();
    for i in 0..n_kv {
        let key_offset = c.offset();
        let key = c.string(|| format!("metadata[{i}].key"))?;
        if index.contains_key(&key) {
            return Err(GgufError::DuplicateKey {
                key,
                offset: key_offset,
            });
        }
        let value_type = read_value_type(&mut c, &key)?;
        let offset = c.offset();
        let value = read_value(&mut c, value_type, &key, 0, limits)?;
        index.insert(key.clone(), metadata.len());
        metadata.push(MetadataEntry { key, value, offset });
    }

    let mut tensors = Vec::new();
    let mut names = HashSet::new();
    for i in 0..n_tensors {
        let tensor = read_tensor_info(&mut c, i)?;
        if !names.insert(tensor.name.clone()) {
            return Err(GgufError::DuplicateTensor {
                name: tensor.name,
                offset: tensor.info_offset,
            });
        }
        tensors.push(tensor);
    }

    let mut header = GgufHeader {
        version,
        metadata,
        tensors,
        alignment: DEFAULT_ALIGNMENT,
        data_offset: 0,
        file_size,
        index,
    };
    header.alignment = validate::alignment(&header)?;
    // The header end is within the budget, so rounding it up cannot overflow.
    header.data_offset = c.offset().div_ceil(header.alignment) * header.alignment;
    validate::tensor_layout(&header)?;
    validate::tokenizer(&header, limits)?;
    validate::block_count(&header, limits)?;
    Ok(header)
}

fn read_value_type(c: &mut Cursor<'_>, field: &str) -> Result<ValueType, GgufError> {
    let offset = c.offset();
    let type_id = c.u32(|| format!("{field}: type"))?;
    ValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
        field: field.to_owned(),
        offset,
        type_id,
    })
}

fn read_value(
    c: &mut Cursor<'_>,
    value_type: ValueType,
    field: &str,
    depth: u32,
    limits: &Limits,
) -> Result<Value, GgufError> {
    let f = || field.to_owned();
    Ok(match value_type {
        ValueType::U8 => Value::U8(c.u8(f)?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array(f)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(f)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(f)?)),
        ValueType::U32 => Value::U32(c.u32(f)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(f)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(f)?)),
        ValueType::U64 => Value::U64(c.u64(f)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(f)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(f)?)),
        ValueType::Bool => Value::Bool(read_bool(c, field)?),
        ValueType::String => Value::String(c.string(f)?),
        ValueType::Array => Value::Array(read_array(c, field, depth + 1, limits)?),
    })
}

fn read_bool(c: &mut Cursor<'_>, field: &str) -> Result<bool, GgufError> {
    let offset = c.offset();
    match c.u8(|| field.to_owned())? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool {
            field: field.to_owned(),
            offset,
            value,
        }),
    }
}

fn read_array(
    c: &mut Cursor<'_>,
    field: &str,
    depth: u32,
    limits: &Limits,
) -> Result<Array, GgufError> {
    let type_offset = c.offset();
    if depth > limits.max_array_depth {
        return Err(GgufError::ArrayTooDeep {
            field: field.to_owned(),
            offset: type_offset,
            depth,
            max: limits.max_array_depth,
        });
    }
    let element_type = read_value_type(c, field)?;
    if element_type == ValueType::Array && depth + 1 > limits.max_array_depth {
        return Err(GgufError::ArrayTooDeep {
            field: field.to_owned(),
            offset: type_offset,
            depth: depth + 1,
            max: limits.max_array_depth,
        });
    }
    let count_offset = c.offset();
    let count = c.u64(|| format!("{field}: array length"))?;
    let remaining = c.remaining();
    let min_bytes = count.checked_mul(element_type.min_encoded_size());
    if min_bytes.is_none_or(|n| n > remaining) {
        return Err(GgufError::ArrayLengthTooLarge {
            field: field.to_owned(),
            offset: count_offset,
            count,
            element_type: element_type.name(),
            remaining,
        });
    }
    if min_bytes.is_some_and(|n| n > c.budget_remaining()) {
        return Err(GgufError::HeaderTooLarge {
            field: field.to_owned(),
            offset: count_offset,
            limit: c.max_header(),
        });
    }
    // `count` now fits in the header budget, so it fits in usize on every supported target.
    let capacity = count.min(MAX_PREALLOCATED_ELEMENTS) as usize;

    macro_rules! fixed {
        ($variant:ident, $ty:ty) => {{
            const SIZE: usize = std::mem::size_of::<$ty>();
            let bytes = c.take(count * SIZE as u64, || field.to_owned())?;
            Array::$variant(
                bytes
                    .chunks_exact(SIZE)
                    .map(|chunk| {
                        let mut raw = [0u8; SIZE];
                        raw.copy_from_slice(chunk);
                        <$ty>::from_le_bytes(raw)
                    })
                    .collect(),
            )
        }};
    }

    Ok(match element_type {
        ValueType::U8 => fixed!(U8, u8),
        ValueType::I8 => fixed!(I8, i8),
        ValueType::U16 => fixed!(U16, u16),
        ValueType::I16 => fixed!(I16, i16),
        ValueType::U32 => fixed!(U32, u32),
        ValueType::I32 => fixed!(I32, i32),
        ValueType::F32 => fixed!(F32, f32),
        ValueType::U64 => fixed!(U64, u64),
        ValueType::I64 => fixed!(I64, i64),
        ValueType::F64 => fixed!(F64, f64),
        ValueType::Bool => {
            let mut out = Vec::with_capacity(capacity);
            for _ in 0..count {
                out.push(read_bool(c, field)?);
            }
            Array::Bool(out)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(capacity);
            for j in 0..count {
                out.push(c.string(|| format!("{field}[{j}]"))?);
            }
            Array::String(out)
        }
        ValueType::Array => {
            let mut out = Vec::with_capacity(capacity);
            for _ in 0..count {
                out.push(read_array(c, field, depth + 1, limits)?);
            }
            Array::Array(out)
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>, i: u64) -> Result<TensorInfo, GgufError> {
    let info_offset = c.offset();
    let name = c.string(|| format!("tensor[{i}].name"))?;
    if name.len() as u64 > MAX_TENSOR_NAME_BYTES {
        return Err(GgufError::TensorNameTooLong {
            length: name.len() as u64,
            name,
            offset: info_offset,
            max: MAX_TENSOR_NAME_BYTES,
        });
    }
    let dims_offset = c.offset();
    let n_dims = c.u32(|| format!("tensor {name:?}: n_dims"))?;
    if n_dims > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name,
            offset: dims_offset,
            n_dims,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for index in 0..n_dims as usize {
        let offset = c.offset();
        let value = c.u64(|| format!("tensor {name:?}: ne[{index}]"))?;
        if value > i64::MAX as u64 {
            return Err(GgufError::DimensionTooLarge {
                tensor: name,
                offset,
                index,
                value,
            });
        }
        dims.push(value);
    }
    // ggml keeps `ne` and `nelements` in i64: the product must fit there.
    let n_elements = dims.iter().try_fold(1u64, |acc, &d| {
        acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
    });
    let Some(n_elements) = n_elements else {
        return Err(GgufError::ElementCountOverflow {
            tensor: name,
            offset: dims_offset,
            dims,
        });
    };
    let type_offset = c.offset();
    let type_id = c.u32(|| format!("tensor {name:?}: type"))?;
    let Some(ggml_type) = GgmlType::from_id(type_id) else {
        return Err(GgufError::UnknownTensorType {
            tensor: name,
            offset: type_offset,
            type_id,
        });
    };
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ggml_type.block_size) {
        return Err(GgufError::RowNotBlockAligned {
            tensor: name,
            offset: type_offset,
            ne0,
            ggml_type: ggml_type.name,
            block_size: ggml_type.block_size,
        });
    }
    // ggml sizes tensors in size_t and seeks in off_t: keep the byte size within i64.
    let n_bytes = ggml_type
        .byte_size(n_elements)
        .filter(|&n| n <= i64::MAX as u64);
    let Some(n_bytes) = n_bytes else {
        return Err(GgufError::TensorSizeOverflow {
            tensor: name,
            offset: type_offset,
            elements: n_elements,
            ggml_type: ggml_type.name,
        });
    };
    let data_offset = c.u64(|| format!("tensor {name:?}: offset"))?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        data_offset,
        n_elements,
        n_bytes,
        info_offset,
    })
}

/// Offset of the `offset` field inside a tensor info (for errors about the data layout).
pub(crate) fn offset_field_position(t: &TensorInfo) -> u64 {
    // name length + name + n_dims + dims + type
    t.info_offset + 8 + t.name.len() as u64 + 4 + 8 * t.dims.len() as u64 + 4
}
