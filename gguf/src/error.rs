//! One error variant per rule, each naming the field and the byte offset where it was found.

use thiserror::Error;

/// Why a GGUF header was rejected (or, for [`GgufError::NeedMoreBytes`], why parsing paused).
///
/// `offset` is always the byte offset from the start of the file of the item that broke the
/// rule (the start of the length field for lengths, of the value for values).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GgufError {
    /// The buffer is a prefix of the file and parsing needs the first `needed` bytes.
    /// Not a verdict on the file: fetch more and parse again.
    #[error("need more bytes: the header continues past byte {have}; read at least {needed} bytes")]
    NeedMoreBytes {
        /// Bytes available now.
        have: u64,
        /// Prefix length that the next attempt needs at least.
        needed: u64,
    },
    /// Reading the underlying source failed.
    #[error("I/O error at offset {offset}: {message}")]
    Io {
        /// Offset the read started at.
        offset: u64,
        /// The I/O error, as text (keeps the enum `Clone + Eq`).
        message: String,
    },
    /// The file does not start with `GGUF`.
    #[error("bad magic at offset 0: expected \"GGUF\", found {found:02x?}")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Only GGUF versions 2 and 3 are accepted (1 used 32-bit counts and is long gone).
    #[error("unsupported GGUF version {version} at offset 4 (supported: 2, 3)")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The file ends inside a fixed-size field.
    #[error(
        "file truncated in {field} at offset {offset}: needs {needed} bytes, {remaining} remain"
    )]
    Truncated {
        /// The field being read.
        field: String,
        /// Where it starts.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file.
        remaining: u64,
    },
    /// The header would be larger than the configured budget.
    #[error("header exceeds the {limit}-byte budget while reading {field} at offset {offset}")]
    HeaderTooLarge {
        /// The field being read.
        field: String,
        /// Where it starts.
        offset: u64,
        /// The budget ([`crate::Limits::max_header_bytes`]).
        limit: u64,
    },
    /// `n_tensors` cannot fit in the bytes that remain (each tensor info needs ≥ 24 bytes).
    #[error("tensor count {count} at offset 8 cannot fit in the {remaining} bytes that remain")]
    TensorCountTooLarge {
        /// The declared count.
        count: u64,
        /// Bytes after the counts.
        remaining: u64,
    },
    /// `n_kv` cannot fit in the bytes that remain (each entry needs ≥ 13 bytes).
    #[error("metadata count {count} at offset 16 cannot fit in the {remaining} bytes that remain")]
    MetadataCountTooLarge {
        /// The declared count.
        count: u64,
        /// Bytes after the counts.
        remaining: u64,
    },
    /// A string's length prefix points past the end of the file.
    #[error(
        "{field}: string length {length} at offset {offset} exceeds the {remaining} bytes that remain"
    )]
    StringLengthTooLarge {
        /// The string being read.
        field: String,
        /// Offset of the length prefix.
        offset: u64,
        /// The declared length.
        length: u64,
        /// Bytes left after the prefix.
        remaining: u64,
    },
    /// An array's element count cannot fit in the bytes that remain.
    #[error(
        "{field}: array of {count} x {element_type} at offset {offset} cannot fit in the {remaining} bytes that remain"
    )]
    ArrayLengthTooLarge {
        /// The array being read.
        field: String,
        /// Offset of the count.
        offset: u64,
        /// The declared count.
        count: u64,
        /// Element type name.
        element_type: &'static str,
        /// Bytes left after the count.
        remaining: u64,
    },
    /// A key or string value is not valid UTF-8.
    #[error("{field}: invalid UTF-8 at offset {offset}")]
    InvalidUtf8 {
        /// The string being read.
        field: String,
        /// Offset of the string bytes.
        offset: u64,
    },
    /// A metadata value type id outside 0..=12.
    #[error("{field}: unknown metadata value type {type_id} at offset {offset}")]
    UnknownValueType {
        /// The value being read.
        field: String,
        /// Offset of the type id.
        offset: u64,
        /// The type id found.
        type_id: u32,
    },
    /// A boolean byte other than 0 or 1.
    #[error("{field}: boolean byte {value} at offset {offset} is neither 0 nor 1")]
    InvalidBool {
        /// The value being read.
        field: String,
        /// Offset of the byte.
        offset: u64,
        /// The byte found.
        value: u8,
    },
    /// Arrays nested deeper than [`crate::Limits::max_array_depth`].
    #[error("{field}: arrays nested {depth} deep at offset {offset} (at most {max})")]
    ArrayTooDeep {
        /// The value being read.
        field: String,
        /// Offset of the inner array's type id.
        offset: u64,
        /// Depth reached.
        depth: u32,
        /// Allowed depth.
        max: u32,
    },
    /// The same metadata key twice.
    #[error("duplicate metadata key {key:?} at offset {offset}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Offset of the second occurrence.
        offset: u64,
    },
    /// The same tensor name twice.
    #[error("duplicate tensor name {name:?} at offset {offset}")]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Offset of the second occurrence.
        offset: u64,
    },
    /// Tensor names are limited to 63 bytes (ggml's `GGML_MAX_NAME` includes the NUL).
    #[error("tensor name {name:?} at offset {offset} is {length} bytes (at most {max})")]
    TensorNameTooLong {
        /// The name.
        name: String,
        /// Offset of the name.
        offset: u64,
        /// Its length.
        length: u64,
        /// The maximum.
        max: u64,
    },
    /// More than four dimensions.
    #[error("tensor {tensor:?}: {n_dims} dimensions at offset {offset} (at most 4)")]
    TooManyDims {
        /// The tensor.
        tensor: String,
        /// Offset of `n_dims`.
        offset: u64,
        /// Dimensions declared.
        n_dims: u32,
    },
    /// A dimension that does not fit ggml's signed 64-bit `ne`.
    #[error("tensor {tensor:?}: dimension {index} = {value} at offset {offset} exceeds i64::MAX")]
    DimensionTooLarge {
        /// The tensor.
        tensor: String,
        /// Offset of the dimension.
        offset: u64,
        /// Which dimension.
        index: usize,
        /// The value found.
        value: u64,
    },
    /// The product of the dimensions overflows i64 (CVE-2025-53630 / CVE-2026-33298 shape).
    #[error("tensor {tensor:?}: element count {dims:?} at offset {offset} overflows i64")]
    ElementCountOverflow {
        /// The tensor.
        tensor: String,
        /// Offset of the dimensions.
        offset: u64,
        /// The dimensions.
        dims: Vec<u64>,
    },
    /// A ggml tensor type id this reader does not know (or one llama.cpp removed).
    #[error("tensor {tensor:?}: unknown ggml type {type_id} at offset {offset}")]
    UnknownTensorType {
        /// The tensor.
        tensor: String,
        /// Offset of the type id.
        offset: u64,
        /// The type id found.
        type_id: u32,
    },
    /// The first dimension is not a whole number of quantisation blocks.
    #[error(
        "tensor {tensor:?}: row length {ne0} at offset {offset} is not a multiple of the {ggml_type} block size {block_size}"
    )]
    RowNotBlockAligned {
        /// The tensor.
        tensor: String,
        /// Offset of the type id.
        offset: u64,
        /// First dimension.
        ne0: u64,
        /// Type name.
        ggml_type: &'static str,
        /// Its block size.
        block_size: u64,
    },
    /// The tensor's byte size overflows u64 (CVE-2026-27940 shape).
    #[error(
        "tensor {tensor:?}: byte size of {elements} x {ggml_type} at offset {offset} overflows"
    )]
    TensorSizeOverflow {
        /// The tensor.
        tensor: String,
        /// Offset of the type id.
        offset: u64,
        /// Element count.
        elements: u64,
        /// Type name.
        ggml_type: &'static str,
    },
    /// A data offset that is not a multiple of the alignment.
    #[error(
        "tensor {tensor:?}: data offset {data_offset} at offset {offset} is not a multiple of the alignment {alignment}"
    )]
    TensorMisaligned {
        /// The tensor.
        tensor: String,
        /// Offset of the offset field.
        offset: u64,
        /// The data offset (relative to the data section).
        data_offset: u64,
        /// The alignment.
        alignment: u64,
    },
    /// A tensor starts before the previous one ends (out of order or overlapping).
    #[error(
        "tensor {tensor:?}: data offset {data_offset} at offset {offset} overlaps or precedes the previous tensor (expected {expected})"
    )]
    TensorOverlap {
        /// The tensor.
        tensor: String,
        /// Offset of the offset field.
        offset: u64,
        /// The data offset found.
        data_offset: u64,
        /// Where it should start.
        expected: u64,
    },
    /// A tensor starts after a gap (llama.cpp requires the packed layout).
    #[error(
        "tensor {tensor:?}: data offset {data_offset} at offset {offset} leaves a gap (expected {expected})"
    )]
    TensorGap {
        /// The tensor.
        tensor: String,
        /// Offset of the offset field.
        offset: u64,
        /// The data offset found.
        data_offset: u64,
        /// Where it should start.
        expected: u64,
    },
    /// Data offset plus size overflows u64.
    #[error(
        "tensor {tensor:?}: data offset {data_offset} + {size} bytes at offset {offset} overflows"
    )]
    TensorOffsetOverflow {
        /// The tensor.
        tensor: String,
        /// Offset of the offset field.
        offset: u64,
        /// The data offset.
        data_offset: u64,
        /// The byte size.
        size: u64,
    },
    /// Tensor data ends past the end of the file.
    #[error(
        "tensor {tensor:?}: data ends at byte {end}, past the end of the {file_size}-byte file (offset field at {offset})"
    )]
    TensorOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Offset of the offset field.
        offset: u64,
        /// Absolute end of the data.
        end: u64,
        /// File size.
        file_size: u64,
    },
    /// `general.alignment` is not a u32.
    #[error("general.alignment at offset {offset} is {found}, expected u32")]
    AlignmentWrongType {
        /// Offset of the value.
        offset: u64,
        /// Type found.
        found: &'static str,
    },
    /// `general.alignment` is zero or not a power of two.
    #[error("general.alignment = {value} at offset {offset} is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// Offset of the value.
        offset: u64,
        /// Value found.
        value: u32,
    },
    /// A tokenizer array of the wrong type (tokens: string, scores: f32, token_type: i32).
    #[error("{key} at offset {offset} is {found}, expected {expected}")]
    TokenizerWrongType {
        /// The key.
        key: String,
        /// Offset of the value.
        offset: u64,
        /// Type expected.
        expected: &'static str,
        /// Type found.
        found: String,
    },
    /// A tokenizer array whose length differs from `tokenizer.ggml.tokens`.
    #[error("{key} at offset {offset} has {found} entries, tokenizer.ggml.tokens has {expected}")]
    TokenizerLengthMismatch {
        /// The key.
        key: String,
        /// Offset of the value.
        offset: u64,
        /// Token count.
        expected: u64,
        /// This array's length.
        found: u64,
    },
    /// One token string longer than [`crate::Limits::max_token_bytes`] (CVE-2025-49847 shape).
    #[error("tokenizer.ggml.tokens[{index}] at offset {offset} is {length} bytes (at most {max})")]
    TokenTooLong {
        /// Offset of the array.
        offset: u64,
        /// Token index.
        index: u64,
        /// Its length.
        length: u64,
        /// The maximum.
        max: u64,
    },
    /// A special token id (`tokenizer.ggml.*_token_id`) outside the vocabulary.
    #[error("{key} = {id} at offset {offset} is outside the {vocab}-token vocabulary")]
    TokenIdOutOfRange {
        /// The key.
        key: String,
        /// Offset of the value.
        offset: u64,
        /// The id.
        id: i128,
        /// Vocabulary size.
        vocab: u64,
    },
    /// `*.block_count` is not an integer.
    #[error("{key} at offset {offset} is {found}, expected an integer")]
    BlockCountWrongType {
        /// The key.
        key: String,
        /// Offset of the value.
        offset: u64,
        /// Type found.
        found: String,
    },
    /// `*.block_count` is 0 or above [`crate::Limits::max_block_count`].
    #[error("{key} = {value} at offset {offset} is outside 1..={max}")]
    BlockCountOutOfRange {
        /// The key.
        key: String,
        /// Offset of the value.
        offset: u64,
        /// Value found.
        value: i128,
        /// The maximum.
        max: u64,
    },
    /// `<arch>.block_count` disagrees with the `blk.N.*` tensors.
    #[error("{key} = {declared} at offset {offset}, but the blk.N tensors describe {found} blocks")]
    BlockCountMismatch {
        /// The key.
        key: String,
        /// Offset of the value.
        offset: u64,
        /// Declared count.
        declared: u64,
        /// Highest block index + 1.
        found: u64,
    },
}

impl GgufError {
    /// True when the input was only a prefix and more bytes may let parsing finish.
    pub fn is_need_more_bytes(&self) -> bool {
        matches!(self, GgufError::NeedMoreBytes { .. })
    }

    /// A short, stable label (for metrics and test assertions).
    pub fn kind(&self) -> &'static str {
        use GgufError::*;
        match self {
            NeedMoreBytes { .. } => "need_more_bytes",
            Io { .. } => "io",
            BadMagic { .. } => "bad_magic",
            UnsupportedVersion { .. } => "unsupported_version",
            Truncated { .. } => "truncated",
            HeaderTooLarge { .. } => "header_too_large",
            TensorCountTooLarge { .. } => "tensor_count_too_large",
            MetadataCountTooLarge { .. } => "metadata_count_too_large",
            StringLengthTooLarge { .. } => "string_length_too_large",
            ArrayLengthTooLarge { .. } => "array_length_too_large",
            InvalidUtf8 { .. } => "invalid_utf8",
            UnknownValueType { .. } => "unknown_value_type",
            InvalidBool { .. } => "invalid_bool",
            ArrayTooDeep { .. } => "array_too_deep",
            DuplicateKey { .. } => "duplicate_key",
            DuplicateTensor { .. } => "duplicate_tensor",
            TensorNameTooLong { .. } => "tensor_name_too_long",
            TooManyDims { .. } => "too_many_dims",
            DimensionTooLarge { .. } => "dimension_too_large",
            ElementCountOverflow { .. } => "element_count_overflow",
            UnknownTensorType { .. } => "unknown_tensor_type",
            RowNotBlockAligned { .. } => "row_not_block_aligned",
            TensorSizeOverflow { .. } => "tensor_size_overflow",
            TensorMisaligned { .. } => "tensor_misaligned",
            TensorOverlap { .. } => "tensor_overlap",
            TensorGap { .. } => "tensor_gap",
            TensorOffsetOverflow { .. } => "tensor_offset_overflow",
            TensorOutOfBounds { .. } => "tensor_out_of_bounds",
            AlignmentWrongType { .. } => "alignment_wrong_type",
            AlignmentNotPowerOfTwo { .. } => "alignment_not_power_of_two",
            TokenizerWrongType { .. } => "tokenizer_wrong_type",
            TokenizerLengthMismatch { .. } => "tokenizer_length_mismatch",
            TokenTooLong { .. } => "token_too_long",
            TokenIdOutOfRange { .. } => "token_id_out_of_range",
            BlockCountWrongType { .. } => "block_count_wrong_type",
            BlockCountOutOfRange { .. } => "block_count_out_of_range",
            BlockCountMismatch { .. } => "block_count_mismatch",
        }
    }
}
