//! Valid files: the summary, prefix parsing ("need more bytes") and reading from `Read`.
#![allow(clippy::unwrap_used)]

use std::io::Read;

use llamafleet_gguf::writer::GgufWriter;
use llamafleet_gguf::{GgufError, Limits, Summary, Value, parse, read_header};

#[test]
fn summary_of_the_tiny_model() {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let header = parse(&bytes, bytes.len() as u64, &Limits::default()).unwrap();
    let s = Summary::from_header(&header);
    assert_eq!(s.architecture.as_deref(), Some("llama"));
    assert_eq!(s.parameters, 8 * 4 + 64 + 64 + 8);
    assert_eq!(s.quantization.as_deref(), Some("F32"));
    assert_eq!(s.layers, Some(2));
    assert_eq!(s.context_length, Some(128));
    assert_eq!(s.embedding_length, Some(8));
    assert_eq!(s.heads, Some(2));
    assert_eq!(s.kv_heads, Some(1));
    assert_eq!(s.vocab_size, Some(4));
    assert!(!s.chat_template_present);
    assert_eq!(s.tensor_data_bytes, (8 * 4 + 64 + 64 + 8) * 4);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["quantization"], "F32");
    assert_eq!(json["tensors"][1]["name"], "blk.0.attn_q.weight");
}

#[test]
fn chat_template_and_version_2_are_accepted() {
    let mut w =
        GgufWriter::tiny_llama(0).kv("tokenizer.chat_template", Value::String("{{x}}".into()));
    w.version = 2;
    let bytes = w.to_bytes();
    let header = parse(&bytes, bytes.len() as u64, &Limits::default()).unwrap();
    assert!(Summary::from_header(&header).chat_template_present);
}

#[test]
fn a_prefix_asks_for_more_bytes_then_succeeds() {
    let bytes = GgufWriter::tiny_llama(1000).to_bytes();
    let size = bytes.len() as u64;
    let mut have = 16usize;
    let mut attempts = 0;
    let header = loop {
        attempts += 1;
        match parse(&bytes[..have], size, &Limits::default()) {
            Err(GgufError::NeedMoreBytes { needed, .. }) => {
                assert!(needed as usize > have);
                have = needed as usize;
            }
            other => break other.unwrap(),
        }
    };
    assert!(attempts > 3);
    // Only the header was needed, not the 32 KB of tensor data.
    assert!((have as u64) < header.data_offset + 32, "{have}");
}

/// Counts the bytes a reader hands out.
struct Counting<R> {
    inner: R,
    read: usize,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n;
        Ok(n)
    }
}

#[test]
fn read_header_reads_the_header_not_the_data() {
    // 8 MB of tensor data behind a small header.
    let bytes = GgufWriter::tiny_llama(250_000).to_bytes();
    let mut reader = Counting {
        inner: &bytes[..],
        read: 0,
    };
    let header = read_header(&mut reader, bytes.len() as u64, &Limits::default()).unwrap();
    assert_eq!(header.tensors.len(), 4);
    assert!(reader.read <= 1 << 20, "read {} bytes", reader.read);
}

#[test]
fn a_source_shorter_than_announced_is_judged_on_what_exists() {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let e = read_header(
        &bytes[..bytes.len() - 4],
        bytes.len() as u64,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "tensor_out_of_bounds", "{e}");
}
