//! Fuzzes the strict GGUF reader: it must never panic, hang or allocate from an unchecked
//! count, whatever the bytes. Each input is parsed whole and as every prefix length the
//! "need more bytes" loop would use, with the declared file size both exact and larger.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llamafleet_gguf::{GgufError, Limits, Summary, parse};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_header_bytes: 1 << 20,
        ..Limits::default()
    };
    let size = data.len() as u64;
    if let Ok(header) = parse(data, size, &limits) {
        let summary = Summary::from_header(&header);
        assert!(summary.tensor_data_bytes <= size);
    }
    // As a prefix of a larger file: the size may come from a lying Content-Range.
    let claimed = size.saturating_mul(3).saturating_add(1 << 16);
    let mut have = data.len().min(64);
    loop {
        match parse(&data[..have], claimed, &limits) {
            Err(GgufError::NeedMoreBytes { needed, .. }) => {
                assert!(needed > have as u64);
                if needed as usize > data.len() {
                    break;
                }
                have = needed as usize;
            }
            _ => break,
        }
    }
});
