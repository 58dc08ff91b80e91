//! ggml tensor types (with block sizes, to compute byte sizes) and llama.cpp file types.
//!
//! The table follows ggml's `enum ggml_type` up to `GGML_TYPE_MXFP4 = 39`. Ids that ggml has
//! removed (4, 5, 31–33, 36–38) and ids newer than this table are rejected: a type the reader
//! cannot size is a type whose tensor bounds it cannot check. Add rows when the pinned
//! llama.cpp gains types.

use serde::Serialize;

/// A known ggml tensor type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GgmlType {
    /// The id stored in the file.
    pub id: u32,
    /// ggml's name (`Q4_K`, `F16`, ...).
    pub name: &'static str,
    /// Elements per block.
    pub block_size: u64,
    /// Bytes per block.
    pub type_size: u64,
}

const fn t(id: u32, name: &'static str, block_size: u64, type_size: u64) -> GgmlType {
    GgmlType {
        id,
        name,
        block_size,
        type_size,
    }
}

/// Every type this reader accepts, by id.
pub const GGML_TYPES: &[GgmlType] = &[
    t(0, "F32", 1, 4),
    t(1, "F16", 1, 2),
    t(2, "Q4_0", 32, 18),
    t(3, "Q4_1", 32, 20),
    t(6, "Q5_0", 32, 22),
    t(7, "Q5_1", 32, 24),
    t(8, "Q8_0", 32, 34),
    t(9, "Q8_1", 32, 36),
    t(10, "Q2_K", 256, 84),
    t(11, "Q3_K", 256, 110),
    t(12, "Q4_K", 256, 144),
    t(13, "Q5_K", 256, 176),
    t(14, "Q6_K", 256, 210),
    t(15, "Q8_K", 256, 292),
    t(16, "IQ2_XXS", 256, 66),
    t(17, "IQ2_XS", 256, 74),
    t(18, "IQ3_XXS", 256, 98),
    t(19, "IQ1_S", 256, 50),
    t(20, "IQ4_NL", 32, 18),
    t(21, "IQ3_S", 256, 110),
    t(22, "IQ2_S", 256, 82),
    t(23, "IQ4_XS", 256, 136),
    t(24, "I8", 1, 1),
    t(25, "I16", 1, 2),
    t(26, "I32", 1, 4),
    t(27, "I64", 1, 8),
    t(28, "F64", 1, 8),
    t(29, "IQ1_M", 256, 56),
    t(30, "BF16", 1, 2),
    t(34, "TQ1_0", 256, 54),
    t(35, "TQ2_0", 256, 66),
    t(39, "MXFP4", 32, 17),
];

impl GgmlType {
    /// Looks a type up by its id.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GGML_TYPES.iter().copied().find(|t| t.id == id)
    }

    /// Bytes for `elements` elements, `None` on overflow or a partial block.
    pub fn byte_size(&self, elements: u64) -> Option<u64> {
        if !elements.is_multiple_of(self.block_size) {
            return None;
        }
        (elements / self.block_size).checked_mul(self.type_size)
    }
}

/// llama.cpp's `general.file_type` (`enum llama_ftype`) as the usual quantisation name.
pub fn file_type_name(file_type: u32) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sorted() {
        for pair in GGML_TYPES.windows(2) {
            assert!(pair[0].id < pair[1].id, "{:?}", pair);
        }
    }

    #[test]
    fn removed_ids_are_unknown() {
        for id in [4, 5, 31, 32, 33, 36, 37, 38, 40, u32::MAX] {
            assert!(GgmlType::from_id(id).is_none(), "{id}");
        }
    }

    #[test]
    fn q4_k_block_of_256_is_144_bytes() {
        let q4k = GgmlType::from_id(12).expect("Q4_K");
        assert_eq!(q4k.byte_size(512), Some(288));
        assert_eq!(q4k.byte_size(100), None);
        assert_eq!(file_type_name(15), Some("Q4_K_M"));
    }
}
