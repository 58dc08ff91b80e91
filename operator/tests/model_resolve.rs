//! Resolving sources against a real HTTP server on 127.0.0.1: HEAD + ranged GETs of the
//! header only, Hugging Face headers on a redirect, the bearer token kept to its origin,
//! errors that say what happened, `file://` paths, and the real Gemma test model.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod source_server;

use std::path::PathBuf;

use llamafleet_crds::LlmModel;
use llamafleet_gguf::writer::GgufWriter;
use llamafleet_operator::model::fetch::Fetcher;
use llamafleet_operator::model::resolve::{Outcome, Resolution, ResolveError, resolve};
use llamafleet_remote::RemoteError;
use source_server::{LAST_MODIFIED, SourceServer};

pub fn model(url: &str) -> LlmModel {
    source_server::model_at(url)
}

fn read(outcome: Outcome) -> Resolution {
    match outcome {
        Outcome::Read(r) => *r,
        other => panic!("not read: {other:?}"),
    }
}

#[tokio::test]
async fn hugging_face_redirect_pins_revision_and_sha256_reading_only_the_header() {
    // 4 MiB of tensor data behind a small header: only the header may be fetched.
    let bytes = GgufWriter::tiny_llama(128 * 1024).to_bytes();
    let server = SourceServer::start(bytes.clone()).await;
    let fetcher = Fetcher::new().unwrap();
    let m = model(&server.hf_url());
    let r = read(resolve(&fetcher, &m, Some("hf_secret")).await.unwrap());
    let c = server.content();
    let resolved = r.resolved;
    assert_eq!(resolved.sha256, Some(c.sha256()));
    assert_eq!(r.remote_sha256, Some(c.sha256()));
    assert_eq!(resolved.size_bytes, Some(bytes.len() as i64));
    assert_eq!(resolved.size.as_deref(), Some("4.0 MiB"));
    assert_eq!(resolved.etag, Some(c.etag()));
    assert_eq!(resolved.revision, Some(c.commit()));
    assert_eq!(resolved.last_modified.as_deref(), Some(LAST_MODIFIED));
    assert_eq!(
        resolved.url,
        Some(format!(
            "http://{}/o/r/resolve/{}/m.gguf",
            server.hub,
            c.commit()
        ))
    );
    assert_eq!(r.summary.architecture.as_deref(), Some("llama"));
    assert_eq!(r.summary.layers, Some(2));
    assert_eq!(r.memory.unwrap().kv_bytes_per_token, 32);
    // The header is tiny; one first read of at most 1 MiB covers it.
    assert!(
        server.ranged_bytes() <= 1 << 20,
        "{}",
        server.ranged_bytes()
    );
    // The token went to the hub (the source's origin) and never to the CDN.
    let seen = server.seen();
    assert!(seen.iter().any(|s| s.port == server.hub.port()));
    for s in &seen {
        let expected = (s.port == server.hub.port()).then(|| "Bearer hf_secret".to_string());
        assert_eq!(s.authorization, expected, "{s:?}");
    }
    // The ranged GETs used the pinned revision.
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.path.contains(&c.commit())),
        "{seen:?}"
    );
}

#[tokio::test]
async fn plain_server_gives_etag_and_size_without_sha256() {
    let bytes = GgufWriter::tiny_llama(0).to_bytes();
    let server = SourceServer::start(bytes.clone()).await;
    let r = read(
        resolve(&Fetcher::new().unwrap(), &model(&server.plain_url()), None)
            .await
            .unwrap(),
    );
    assert_eq!(r.resolved.sha256, None);
    assert_eq!(r.resolved.revision, None);
    assert_eq!(r.resolved.etag, Some(server.content().etag()));
    assert_eq!(r.resolved.url, Some(server.plain_url()));
    assert_eq!(r.resolved.size_bytes, Some(bytes.len() as i64));
}

#[tokio::test]
async fn http_errors_and_refused_connections_are_reported() {
    let server = SourceServer::start(GgufWriter::tiny_llama(0).to_bytes()).await;
    let fetcher = Fetcher::new().unwrap();
    let missing = format!("http://{}/nothing.gguf", server.hub);
    let err = resolve(&fetcher, &model(&missing), None).await.unwrap_err();
    assert_eq!(err.reason(), "SourceUnreachable");
    assert_eq!(
        err.to_string(),
        format!("HEAD {missing}: HTTP 404 Not Found")
    );
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{closed}/m.gguf");
    let err = resolve(&fetcher, &model(&url), None).await.unwrap_err();
    assert!(matches!(
        err,
        ResolveError::Remote(RemoteError::Unreachable { .. })
    ));
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("connection refused"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_gguf_is_a_verdict_on_the_file() {
    let server = SourceServer::start(b"not a gguf file at all, just text".to_vec()).await;
    let err = resolve(&Fetcher::new().unwrap(), &model(&server.plain_url()), None)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "InvalidGguf");
}

#[tokio::test]
async fn plain_http_redirect_needs_allow_insecure_http() {
    let server = SourceServer::start(GgufWriter::tiny_llama(0).to_bytes()).await;
    let mut m = model(&server.hf_url());
    m.spec.source.allow_insecure_http = Some(false);
    // The first URL is http too; the fetcher refuses the http redirect target.
    let err = resolve(&Fetcher::new().unwrap(), &m, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing redirect"), "{err}");
}

#[tokio::test]
async fn file_sources_are_read_when_present_else_left_to_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, GgufWriter::tiny_llama(0).to_bytes()).unwrap();
    let fetcher = Fetcher::new().unwrap();
    let url = format!("file://{}", path.display());
    let r = read(resolve(&fetcher, &model(&url), None).await.unwrap());
    assert_eq!(r.summary.quantization.as_deref(), Some("F32"));
    assert_eq!(r.resolved.url, Some(url));
    let absent = "file:///var/lib/llamafleet/models/absent.gguf";
    assert_eq!(
        resolve(&fetcher, &model(absent), None).await.unwrap(),
        Outcome::VerifyOnNode(PathBuf::from("/var/lib/llamafleet/models/absent.gguf"))
    );
}

fn test_model() -> Option<PathBuf> {
    match std::env::var_os("LLAMAFLEET_TEST_MODEL") {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var_os("CI").is_some() => panic!(
            "LLAMAFLEET_TEST_MODEL is not set: run `export LLAMAFLEET_TEST_MODEL=$(scripts/fetch-test-model.sh)`"
        ),
        None => {
            eprintln!(
                "skipped: LLAMAFLEET_TEST_MODEL is not set (run scripts/fetch-test-model.sh)"
            );
            None
        }
    }
}

#[tokio::test]
async fn real_gemma_header_over_http_fetches_a_few_mib_of_253_mb() {
    let Some(path) = test_model() else { return };
    let bytes = std::fs::read(&path).unwrap();
    let size = bytes.len() as u64;
    let server = SourceServer::start(bytes).await;
    let r = read(
        resolve(&Fetcher::new().unwrap(), &model(&server.hf_url()), None)
            .await
            .unwrap(),
    );
    assert_eq!(r.summary.architecture.as_deref(), Some("gemma3"));
    assert_eq!(r.summary.quantization.as_deref(), Some("Q4_K_M"));
    assert_eq!(r.summary.layers, Some(18));
    assert_eq!(r.resolved.size_bytes, Some(size as i64));
    let m = r.memory.unwrap();
    assert_eq!(m.kv_bytes_per_token, 18_432);
    let fetched = server.ranged_bytes();
    println!("fetched {fetched} of {size} bytes");
    assert!(fetched < 16 << 20, "{fetched}");
}
