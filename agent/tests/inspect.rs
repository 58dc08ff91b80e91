//! `inspect` of URLs reads only the header, with ranged GETs.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use llamafleet_agent::inspect::{self, read_url};
use llamafleet_agent::store::http::Access;
use llamafleet_agent::store::{Source, http_client};
use llamafleet_gguf::writer::GgufWriter;
use llamafleet_gguf::{Array, Limits, Summary, Value};
use support::{Behaviour, TestServer};

fn access(client: &reqwest::Client) -> Access<'_> {
    Access {
        client,
        bearer: None,
        allow_http: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_a_url_fetches_only_the_header() {
    let body = GgufWriter::tiny_llama(300_000).to_bytes(); // ~9.6 MB of tensor data
    for ignore_range in [false, true] {
        let srv = TestServer::start(Behaviour {
            body: Arc::new(body.clone()),
            ignore_range,
            ..Behaviour::default()
        })
        .await;
        let client = http_client().unwrap();
        let url = url::Url::parse(&srv.url("/m.gguf")).unwrap();
        let (header, fetched) = read_url(access(&client), &url, &Limits::default())
            .await
            .unwrap();
        let s = Summary::from_header(&header);
        assert_eq!(s.architecture.as_deref(), Some("llama"));
        assert_eq!(s.file_size, body.len() as u64);
        assert!(fetched <= 1 << 20, "fetched {fetched}");
        assert_eq!(srv.gets().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_header_is_fetched_in_growing_ranges() {
    let n = 120_000;
    let tokens: Vec<String> = (0..n).map(|i| format!("token-{i:08}")).collect();
    let body = GgufWriter::tiny_llama(1000)
        .kv("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.0; n])),
        )
        .kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1; n])),
        )
        .to_bytes();
    let srv = TestServer::start(Behaviour {
        body: Arc::new(body.clone()),
        ..Behaviour::default()
    })
    .await;
    let client = http_client().unwrap();
    let source = Source::parse(&srv.url("/m.gguf"), true).unwrap();
    let summary = inspect::inspect(&source, access(&client), &Limits::default())
        .await
        .unwrap();
    assert_eq!(summary.vocab_size, Some(n as u64));
    let ranges: Vec<_> = srv.gets().into_iter().map(|g| g.range.unwrap()).collect();
    assert!(ranges.len() >= 2, "{ranges:?}");
    assert_eq!(ranges[0], "bytes=0-1048575");
    assert!(ranges[1].starts_with("bytes=1048576-"), "{ranges:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_rejects_a_malformed_remote_header() {
    let mut w = GgufWriter::tiny_llama(10);
    w.tensor_count = Some(u64::MAX);
    let srv = TestServer::start(Behaviour {
        body: Arc::new(w.to_bytes()),
        ..Behaviour::default()
    })
    .await;
    let client = http_client().unwrap();
    let source = Source::parse(&srv.url("/m.gguf"), true).unwrap();
    let err = inspect::inspect(&source, access(&client), &Limits::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tensor count"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_the_real_test_model_by_path() {
    let Some(path) = std::env::var_os("LLAMAFLEET_TEST_MODEL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "LLAMAFLEET_TEST_MODEL is not set: run `export LLAMAFLEET_TEST_MODEL=$(scripts/fetch-test-model.sh)`"
        );
        eprintln!("skipped: LLAMAFLEET_TEST_MODEL is not set (run scripts/fetch-test-model.sh)");
        return;
    };
    let client = http_client().unwrap();
    let source = Source::File(path.into());
    let s = inspect::inspect(&source, access(&client), &Limits::default())
        .await
        .unwrap();
    assert_eq!(s.architecture.as_deref(), Some("gemma3"));
    assert_eq!(s.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(s.layers, Some(18));
}
