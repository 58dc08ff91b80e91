//! The real test model (Gemma 3 270M Q4_K_M) passes the reader with the expected facts.
//!
//! Needs `LLAMAFLEET_TEST_MODEL` (from `scripts/fetch-test-model.sh`). Without it the test
//! fails under CI (`CI` set) and is skipped with a message elsewhere.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use llamafleet_gguf::{Limits, Summary, read_file};

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
fn gemma_3_270m_q4_k_m_passes() {
    let Some(path) = test_model() else { return };
    let header = read_file(&path, &Limits::default()).unwrap();
    let s = Summary::from_header(&header);
    assert_eq!(s.architecture.as_deref(), Some("gemma3"));
    assert_eq!(s.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(s.file_size, 253_113_024, "{s:#?}");
    assert_eq!(s.layers, Some(18));
    assert_eq!(s.embedding_length, Some(640));
    assert_eq!(s.vocab_size, Some(262_144));
    assert!(!s.chat_template_present);
    // 270M parameters, give or take the embedding accounting.
    assert!(
        (260_000_000..=275_000_000).contains(&s.parameters),
        "{}",
        s.parameters
    );
    assert!(s.tensor_data_bytes <= s.file_size - s.data_offset);
    println!(
        "{}",
        serde_json::to_string_pretty(&Summary {
            tensors: vec![],
            ..s
        })
        .unwrap()
    );
}
