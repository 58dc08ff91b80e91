//! `pull` against real HTTP servers on loopback: resume, verification, locking, disk space,
//! redirects, misbehaving servers, local files.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use llamafleet_agent::store::{
    DiskSpace, EntryMeta, PullRequest, Store, StoreConfig, StoreError, StoreMetrics, Verification,
    gc, meta,
};
use llamafleet_gguf::writer::GgufWriter;
use llamafleet_remote::RemoteError;
use sha2::{Digest, Sha256};
use support::{Behaviour, TestServer};

/// A valid GGUF of about `rows * 32` bytes.
fn model(rows: u64) -> Vec<u8> {
    GgufWriter::tiny_llama(rows).to_bytes()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.allow_http = true;
    c.margin_bytes = 0;
    c.retry_backoff = Duration::from_millis(10);
    c.show_progress = false;
    c
}

fn store(dir: &Path) -> Store {
    Store::open(config(dir), StoreMetrics::unregistered().unwrap()).unwrap()
}

fn request(url: &str, sha256: Option<&str>) -> PullRequest {
    PullRequest {
        source: url.to_owned(),
        sha256: sha256.map(str::to_owned),
        bearer_token: None,
    }
}

/// Files under `<cache>/sha256/`, sorted.
fn cache_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

async fn server(body: &[u8]) -> TestServer {
    TestServer::start(Behaviour {
        body: Arc::new(body.to_vec()),
        etag: Some("\"v1\"".into()),
        ..Behaviour::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_verifies_promotes_and_then_hits_the_cache() {
    let body = model(10_000);
    let hex = sha(&body);
    let srv = server(&body).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());

    let pulled = store
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap();
    assert_eq!(pulled.path, tmp.path().join(format!("sha256/{hex}.gguf")));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    assert!(!pulled.cache_hit);
    let entry: EntryMeta = meta::read(&tmp.path().join(format!("sha256/{hex}.json"))).unwrap();
    assert_eq!(entry.url, srv.url("/m.gguf"));
    assert_eq!(entry.size, body.len() as u64);
    assert_eq!(entry.etag.as_deref(), Some("\"v1\""));
    assert_eq!(entry.verification, Verification::Pinned);
    assert_eq!(
        cache_files(tmp.path()),
        [format!("{hex}.gguf"), format!("{hex}.json")]
    );

    let again = store
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(srv.gets().len(), 1);
    assert_eq!(store.metrics().cache_hits.get(), 1);
    assert_eq!(store.metrics().cache_misses.get(), 1);
    assert_eq!(store.metrics().bytes_downloaded.get(), body.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_drops_at_several_offsets() {
    let body = model(100_000); // ~3.2 MB
    let hex = sha(&body);
    let srv = server(&body).await;
    let drops = [1u64, 100_000, 1_048_576, 3_000_000];
    srv.with(|b| b.drop_at = drops.into_iter().collect());
    let tmp = tempfile::tempdir().unwrap();

    let pulled = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap();
    assert_eq!(sha(&std::fs::read(&pulled.path).unwrap()), hex);
    let gets = srv.gets();
    assert_eq!(gets.len(), drops.len() + 1);
    assert_eq!(gets[0].range, None);
    for (get, offset) in gets[1..].iter().zip(drops) {
        assert_eq!(
            get.range.as_deref(),
            Some(format!("bytes={offset}-").as_str())
        );
        assert_eq!(get.if_range.as_deref(), Some("\"v1\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_resumes_the_partial_file() {
    let body = model(50_000);
    let hex = sha(&body);
    let srv = server(&body).await;
    srv.with(|b| b.drop_at = [700_000].into_iter().collect());
    let tmp = tempfile::tempdir().unwrap();
    let mut once = config(tmp.path());
    once.max_attempts = 1;
    let first = Store::open(once, StoreMetrics::unregistered().unwrap()).unwrap();
    let err = first
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Interrupted {
                received: 700_000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(tmp.path().join(format!("sha256/{hex}.partial")))
            .unwrap()
            .len(),
        700_000
    );

    let pulled = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    assert_eq!(srv.gets()[1].range.as_deref(), Some("bytes=700000-"));
    assert_eq!(
        cache_files(tmp.path()),
        [format!("{hex}.gguf"), format!("{hex}.json")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_are_rejected_and_nothing_is_cached() {
    let body = model(1_000);
    let hex = sha(&body);
    let mut wrong = body.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 0xff;
    let srv = server(&wrong).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());

    let err = store
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{text}");
    assert!(text.contains(&hex) && text.contains(&sha(&wrong)), "{text}");
    assert!(
        cache_files(tmp.path())
            .iter()
            .all(|f| !f.ends_with(".gguf") && !f.ends_with(".partial"))
    );
    assert_eq!(store.metrics().verify_failures.get(), 1);
    // Disjoint from fetch errors: the alert adds the two without counting one twice.
    assert_eq!(store.metrics().download_errors.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_linked_etag_is_the_expected_hash() {
    let body = model(1_000);
    let srv = server(&body).await;
    srv.with(|b| b.linked_etag = Some(sha(&body)));
    let tmp = tempfile::tempdir().unwrap();
    let pulled = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), None))
        .await
        .unwrap();
    assert_eq!(pulled.sha256, sha(&body));
    assert_eq!(pulled.verification, Verification::LinkedEtag);

    // A linked etag that the bytes do not match is a verification failure.
    let liar = server(&body).await;
    liar.with(|b| b.linked_etag = Some("ab".repeat(32)));
    let tmp = tempfile::tempdir().unwrap();
    let err = store(tmp.path())
        .pull(&request(&liar.url("/m.gguf"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_hash_the_computed_one_is_recorded_and_reused() {
    let body = model(1_000);
    let srv = server(&body).await;
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let pulled = store
        .pull(&request(&srv.url("/m.gguf"), None))
        .await
        .unwrap();
    assert_eq!(pulled.verification, Verification::TrustOnFirstUse);
    assert_eq!(pulled.sha256, sha(&body));
    let again = store
        .pull(&request(&srv.url("/m.gguf"), None))
        .await
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(srv.gets().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_pulls_download_once() {
    let body = model(200_000); // ~6.4 MB
    let hex = sha(&body);
    for pinned in [Some(hex.as_str()), None] {
        let srv = server(&body).await;
        let tmp = tempfile::tempdir().unwrap();
        // Two agents on one node: two stores over the same directory.
        let (a, b) = (store(tmp.path()), store(tmp.path()));
        let req = request(&srv.url("/m.gguf"), pinned);
        let (ra, rb) = tokio::join!(a.pull(&req), b.pull(&req));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(ra.path, rb.path);
        assert_eq!(srv.gets().len(), 1, "pinned={pinned:?}");
        assert!(ra.cache_hit != rb.cache_hit);
    }
}

#[derive(Debug)]
struct TinyDisk(u64);

impl DiskSpace for TinyDisk {
    fn available(&self, _: &Path) -> std::io::Result<u64> {
        Ok(self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_enough_disk_space_is_a_clear_error_before_downloading() {
    let body = model(10_000);
    let hex = sha(&body);
    let srv = server(&body).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.disk_space = Arc::new(TinyDisk(1000));
    let store = Store::open(c, StoreMetrics::unregistered().unwrap()).unwrap();
    let err = store
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::InsufficientSpace { available: 1000, remaining, .. } if remaining == body.len() as u64),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("not enough disk space"),
        "{err}"
    );
    assert!(srv.gets().is_empty());
    assert!(!tmp.path().join(format!("sha256/{hex}.partial")).exists());

    // The real statvfs check, with a margin no disk has.
    let mut c = config(tmp.path());
    c.margin_bytes = u64::MAX / 4;
    let store = Store::open(c, StoreMetrics::unregistered().unwrap()).unwrap();
    let err = store
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InsufficientSpace { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_drops_the_token() {
    let body = model(1_000);
    let target = server(&body).await;
    let front = TestServer::start(Behaviour {
        redirect_to: Some(target.localhost_url("")),
        linked_etag: Some(sha(&body)),
        ..Behaviour::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let mut req = request(&front.url("/org/model/resolve/main/m.gguf"), None);
    req.bearer_token = Some("hf_secret".into());
    let pulled = store(tmp.path()).pull(&req).await.unwrap();
    // The redirect's X-Linked-Etag was kept as the expected hash.
    assert_eq!(pulled.verification, Verification::LinkedEtag);
    assert!(
        front
            .seen()
            .iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer hf_secret"))
    );
    let at_target = target.seen();
    assert!(!at_target.is_empty());
    assert!(
        at_target.iter().all(|s| s.authorization.is_none()),
        "{at_target:?}"
    );
    assert!(
        at_target
            .iter()
            .all(|s| s.path == "/org/model/resolve/main/m.gguf")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_instead_of_206_restarts_cleanly() {
    let body = model(50_000);
    let hex = sha(&body);
    let srv = server(&body).await;
    srv.with(|b| {
        b.drop_at = [500_000].into_iter().collect();
        b.ignore_range = true;
    });
    let tmp = tempfile::tempdir().unwrap();
    let pulled = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    assert_eq!(srv.gets()[1].range.as_deref(), Some("bytes=500000-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_416_is_an_error_and_the_partial_is_dropped() {
    let body = model(50_000);
    let hex = sha(&body);
    let srv = server(&body).await;
    srv.with(|b| {
        b.drop_at = [4096].into_iter().collect();
        b.range_416 = true;
    });
    let tmp = tempfile::tempdir().unwrap();
    let err = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RangeNotSatisfiable { start: 4096, .. }),
        "{err}"
    );
    assert!(!tmp.path().join(format!("sha256/{hex}.partial")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_is_briefly_unavailable_is_asked_again() {
    let body = model(10_000);
    let hex = sha(&body);
    let srv = server(&body).await;
    srv.with(|b| {
        b.fail_next = [("HEAD", 503), ("HEAD", 429), ("GET", 502)]
            .into_iter()
            .collect();
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let pulled = store
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap();
    assert_eq!(pulled.sha256, hex);
    let methods: Vec<String> = srv.seen().into_iter().map(|s| s.method).collect();
    assert_eq!(methods, ["HEAD", "HEAD", "HEAD", "GET", "GET"]);
    // Every failed attempt counts, retried or not: a flaky source shows before it fails.
    assert_eq!(store.metrics().download_errors.get(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_is_not_asked_again() {
    let body = model(1_000);
    let srv = server(&body).await;
    srv.with(|b| b.fail_next = [("HEAD", 404)].into_iter().collect());
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let err = store
        .pull(&request(&srv.url("/m.gguf"), None))
        .await
        .unwrap_err();
    assert_eq!(store.metrics().download_errors.get(), 1);
    assert!(
        matches!(
            &err,
            StoreError::Remote(RemoteError::Status { status: 404, .. })
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("HEAD {}: HTTP 404 Not Found", srv.url("/m.gguf"))
    );
    assert_eq!(srv.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_that_lie_are_errors() {
    let body = model(10_000);
    let hex = sha(&body);
    let announced = body.len() as u64 - 1000;

    // HEAD says one size, GET another.
    let srv = server(&body).await;
    srv.with(|b| b.head_size = Some(announced));
    let tmp = tempfile::tempdir().unwrap();
    let err = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SizeChanged { .. }), "{err}");

    // HEAD announces less than the (length-less) body delivers.
    srv.with(|b| b.no_content_length = true);
    let tmp = tempfile::tempdir().unwrap();
    let err = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LargerThanAnnounced { announced: a, .. } if a == announced),
        "{err}"
    );
    assert!(!tmp.path().join(format!("sha256/{hex}.partial")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_needs_the_allow_flag() {
    let srv = server(&model(10)).await;
    let tmp = tempfile::tempdir().unwrap();
    let mut c = config(tmp.path());
    c.allow_http = false;
    let store = Store::open(c, StoreMetrics::unregistered().unwrap()).unwrap();
    let err = store
        .pull(&request(&srv.url("/m.gguf"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InsecureHttp { .. }), "{err}");
    assert!(err.to_string().contains("--allow-http"));
    assert!(srv.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_gguf_is_not_promoted() {
    let mut body = model(100);
    body[0] = b'X';
    let hex = sha(&body);
    let srv = server(&body).await;
    let tmp = tempfile::tempdir().unwrap();
    let err = store(tmp.path())
        .pull(&request(&srv.url("/m.gguf"), Some(&hex)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidGguf { .. }), "{err}");
    assert!(err.to_string().contains("bad magic"), "{err}");
    assert!(
        cache_files(tmp.path())
            .iter()
            .all(|f| !f.ends_with(".gguf") && !f.ends_with(".partial"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_paths_and_file_urls() {
    let body = model(1_000);
    let hex = sha(&body);
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("m.gguf");
    std::fs::write(&src, &body).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());

    let pulled = store
        .pull(&request(src.to_str().unwrap(), None))
        .await
        .unwrap();
    assert_eq!(pulled.sha256, hex);
    assert_eq!(pulled.verification, Verification::TrustOnFirstUse);
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    assert!(
        store
            .pull(&request(src.to_str().unwrap(), None))
            .await
            .unwrap()
            .cache_hit
    );

    let url = format!("file://{}", src.display());
    let again = store.pull(&request(&url, Some(&hex))).await.unwrap();
    assert!(again.cache_hit);
    let wrong = store
        .pull(&request(&url, Some(&"00".repeat(32))))
        .await
        .unwrap_err();
    assert!(matches!(wrong, StoreError::HashMismatch { .. }), "{wrong}");
    assert_eq!(
        std::fs::read(&src).unwrap(),
        body,
        "the source is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_what_is_asked_and_what_is_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store(tmp.path());
    let mut hexes = Vec::new();
    for rows in [10, 20, 30] {
        let body = model(rows);
        let srv = server(&body).await;
        hexes.push(
            store
                .pull(&request(&srv.url("/m.gguf"), None))
                .await
                .unwrap()
                .sha256,
        );
    }
    let lease = store.lease(&hexes[1]).await.unwrap();
    let report = gc::collect(store.layout(), std::slice::from_ref(&hexes[0]), false).unwrap();
    assert_eq!(report.kept, [hexes[0].clone()]);
    assert_eq!(report.in_use, [hexes[1].clone()]);
    assert_eq!(report.removed, [hexes[2].clone()]);
    assert!(store.layout().model(&hexes[1]).exists());
    assert!(!store.layout().model(&hexes[2]).exists());
    drop(lease);
    let report = gc::collect(store.layout(), &[], true).unwrap();
    assert_eq!(report.removed.len(), 2, "dry run lists both");
    assert!(
        store.layout().model(&hexes[1]).exists(),
        "dry run deletes nothing"
    );
}
