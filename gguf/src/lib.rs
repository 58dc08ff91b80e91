//! A small, strict GGUF header reader, shared by the llamafleet agent and operator.
//!
//! llama.cpp `abort()`s or worse on malformed GGUF files (CVE-2025-49847, CVE-2025-53630,
//! CVE-2026-27940, CVE-2026-33298 all came from its loader), so the agent checks a file with
//! this reader before llama.cpp sees it, and the operator reads a remote header with it
//! through ranged GETs.
//!
//! Why hand-written: the crates.io readers checked for this (`gguf` 0.1, `gguf-rs` 0.1,
//! `ggus` 0.5, `gguf-rs-lib` 0.3) either reserve memory from untrusted counts before checking
//! them against the bytes that remain (`ggus` sizes its maps from `n_kv`/`n_tensors`,
//! `gguf-rs` its shape vectors from `n_dims`), report errors as strings rather than a typed
//! rule + offset, or leave out the tokenizer, block-count and packed-layout rules. None can
//! parse a prefix and say how many more bytes it needs.
//!
//! The reader never touches tensor data, never allocates from a count before checking the
//! count against the bytes that remain, and keeps every intermediate in checked arithmetic.
//! It has no I/O dependencies beyond `std::io::Read`.
#![forbid(unsafe_code)]

mod cursor;
mod error;
mod ggml_type;
pub mod memory;
mod reader;
mod summary;
mod validate;
mod value;
#[cfg(feature = "testing")]
pub mod writer;

use std::io::Read;
use std::path::Path;

pub use error::GgufError;
pub use ggml_type::{GGML_TYPES, GgmlType, file_type_name};
pub use memory::{GpuLayers, MemoryError, MemoryPlan, ModelMemory, PlanInput};
pub use reader::{
    DEFAULT_ALIGNMENT, GgufHeader, MAX_DIMS, MAX_TENSOR_NAME_BYTES, MetadataEntry, TensorInfo,
    parse,
};
pub use summary::{Summary, TensorSummary};
pub use value::{Array, Value, ValueType};

/// The first read of a header; most headers (without a large vocabulary) fit in it.
pub const INITIAL_READ_BYTES: u64 = 1 << 20;

/// Bounds that make the reader refuse absurd (hostile) headers early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest header (metadata + tensor infos) accepted. Real headers are a few MiB, mostly
    /// the vocabulary (about 6 MiB for a 262k-token vocabulary with merges).
    pub max_header_bytes: u64,
    /// Deepest array nesting. 1 (arrays of scalars or strings) is what llama.cpp's loader
    /// accepts: it rejects arrays of arrays.
    pub max_array_depth: u32,
    /// Largest `*.block_count`. The largest released models have ~128 layers.
    pub max_block_count: u64,
    /// Longest single token string. Real vocabularies stay below a few hundred bytes;
    /// llama.cpp keeps token lengths in `int32`.
    pub max_token_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 << 20,
            max_array_depth: 1,
            max_block_count: 4096,
            max_token_bytes: 64 << 10,
        }
    }
}

/// How many bytes of prefix to have for the next attempt after [`GgufError::NeedMoreBytes`]:
/// at least `needed`, at least double what we have, never past the file or the budget.
pub fn next_read_len(have: u64, needed: u64, file_size: u64, limits: &Limits) -> u64 {
    needed
        .max(have.saturating_mul(2))
        .min(file_size)
        .min(limits.max_header_bytes)
        .max(needed)
}

/// Reads and validates the header of a `file_size`-byte file from `reader`, reading only as
/// much as the header needs (in growing chunks).
pub fn read_header<R: Read>(
    mut reader: R,
    file_size: u64,
    limits: &Limits,
) -> Result<GgufHeader, GgufError> {
    let mut buf: Vec<u8> = Vec::new();
    let mut want = INITIAL_READ_BYTES
        .min(file_size)
        .min(limits.max_header_bytes);
    loop {
        let have = buf.len() as u64;
        if want > have {
            let got = (&mut reader)
                .take(want - have)
                .read_to_end(&mut buf)
                .map_err(|e| GgufError::Io {
                    offset: have,
                    message: e.to_string(),
                })?;
            if (got as u64) < want - have {
                // The source is shorter than announced: judge the bytes that exist.
                let actual = buf.len() as u64;
                return parse(&buf, actual, limits);
            }
        }
        match parse(&buf, file_size, limits) {
            Err(GgufError::NeedMoreBytes { have, needed }) => {
                want = next_read_len(have, needed, file_size, limits);
            }
            result => return result,
        }
    }
}

/// Reads and validates the header of a file on disk.
pub fn read_file(path: &Path, limits: &Limits) -> Result<GgufHeader, GgufError> {
    let io = |e: std::io::Error| GgufError::Io {
        offset: 0,
        message: format!("{}: {e}", path.display()),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    read_header(std::io::BufReader::new(file), size, limits)
}
