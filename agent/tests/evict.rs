//! Automatic eviction when a download does not fit: real model files in a real cache, real
//! use locks (a lease, a keeper), downloads from loopback, and a disk whose free space is what
//! the cache's files leave of a fixed capacity.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use llamafleet_agent::store::keep::Keeper;
use llamafleet_agent::store::{
    DiskSpace, PullRequest, Store, StoreConfig, StoreError, StoreMetrics, evict,
};
use llamafleet_gguf::writer::GgufWriter;
use sha2::{Digest, Sha256};
use support::{Behaviour, TestServer};

/// A disk of `capacity` bytes holding only the cache: free space is what its models and
/// partial downloads leave (the small metadata files are not counted, so sizes are exact).
#[derive(Debug)]
struct CacheDisk {
    capacity: u64,
    models: PathBuf,
}

impl DiskSpace for CacheDisk {
    fn available(&self, _: &Path) -> std::io::Result<u64> {
        let mut used = 0;
        for entry in std::fs::read_dir(&self.models)? {
            let path = entry?.path();
            if path
                .extension()
                .is_some_and(|e| e == "gguf" || e == "partial")
            {
                used += std::fs::metadata(&path)?.len();
            }
        }
        Ok(self.capacity.saturating_sub(used))
    }
}

/// A cache with models of these row counts (each about `rows * 32` bytes), the oldest first.
struct Fixture {
    _tmp: tempfile::TempDir,
    cache: PathBuf,
    hexes: Vec<String>,
    sizes: Vec<u64>,
}

impl Fixture {
    async fn new(rows: &[u64]) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let store = store(&cache, u64::MAX, true);
        let (mut hexes, mut sizes) = (Vec::new(), Vec::new());
        for (i, r) in rows.iter().enumerate() {
            let body = GgufWriter::tiny_llama(*r).to_bytes();
            let src = tmp.path().join(format!("m{i}.gguf"));
            std::fs::write(&src, &body).unwrap();
            let pulled = store
                .pull(&request(src.to_str().unwrap(), &sha(&body)))
                .await
                .unwrap();
            // Stored an hour apart, the first the longest ago.
            let age = Duration::from_secs(3600 * (rows.len() - i) as u64);
            set_mtime(&pulled.path, SystemTime::now() - age);
            hexes.push(pulled.sha256);
            sizes.push(body.len() as u64);
        }
        Fixture {
            _tmp: tmp,
            cache,
            hexes,
            sizes,
        }
    }

    fn cached(&self) -> Vec<bool> {
        let store = store(&self.cache, u64::MAX, true);
        self.hexes
            .iter()
            .map(|h| store.layout().model(h).exists())
            .collect()
    }
}

fn set_mtime(path: &Path, at: SystemTime) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(at).unwrap();
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn request(source: &str, sha256: &str) -> PullRequest {
    PullRequest {
        source: source.to_owned(),
        sha256: Some(sha256.to_owned()),
        bearer_token: None,
    }
}

fn store(cache: &Path, capacity: u64, evict: bool) -> Store {
    let mut c = StoreConfig::new(cache);
    c.allow_http = true;
    c.margin_bytes = 0;
    c.show_progress = false;
    c.evict = evict;
    c.disk_space = Arc::new(CacheDisk {
        capacity,
        models: cache.join("sha256"),
    });
    Store::open(c, StoreMetrics::unregistered().unwrap()).unwrap()
}

/// A new model on loopback: (server, sha256, size).
async fn new_model(rows: u64) -> (TestServer, String, u64) {
    let body = GgufWriter::tiny_llama(rows).to_bytes();
    let (hex, size) = (sha(&body), body.len() as u64);
    let srv = TestServer::start(Behaviour {
        body: Arc::new(body),
        etag: Some("\"v1\"".into()),
        ..Behaviour::default()
    })
    .await;
    (srv, hex, size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_does_not_fit_evicts_just_enough_least_recently_used_first() {
    // 0 oldest … 4 newest; 1 is served (leased), 2 is kept by a keep list.
    let f = Fixture::new(&[100, 200, 300, 400, 500]).await;
    let (srv, hex, size) = new_model(450).await;
    // Room for the new model once 0 and 3 are gone; 0 alone is not enough, and 4 (newer
    // than 3, and larger) would do as well, so what goes shows the order.
    let capacity = f.sizes[1] + f.sizes[2] + f.sizes[4] + size;
    let store = store(&f.cache, capacity, true);
    assert_eq!(evict::by_last_use(store.layout()).unwrap(), f.hexes);
    let lease = store.lease(&f.hexes[1]).await.unwrap();
    let mut keeper = Keeper::new(store.layout().clone());
    keeper.keep(&BTreeSet::from([f.hexes[2].clone()]));
    assert_eq!(keeper.held(), [f.hexes[2].clone()]);

    let pulled = store
        .pull(&request(&srv.url("/new.gguf"), &hex))
        .await
        .unwrap();
    assert!(!pulled.cache_hit);
    assert_eq!(f.cached(), [false, true, true, false, true]);
    assert!(store.layout().model(&hex).exists());
    assert!(
        !store.layout().meta(&f.hexes[0]).exists(),
        "the metadata goes with its model"
    );
    let m = store.metrics();
    assert_eq!(m.evictions.get(), 2);
    assert_eq!(m.evicted_bytes.get(), f.sizes[0] + f.sizes[3]);
    // Stored four hours ago but leased just now, 1 has been used more recently than 4.
    drop((lease, keeper));
    let order = evict::by_last_use(store.layout()).unwrap();
    assert_eq!(order[0], f.hexes[4], "{order:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_evicted_for_a_download_that_would_not_fit_anyway() {
    let f = Fixture::new(&[100, 200, 300]).await;
    let (srv, hex, size) = new_model(450).await;
    // Evicting the free model 0 leaves one byte too few while 1 is in use and 2 kept.
    // Without them held, or with one more byte, evicting 0 would do.
    let capacity = f.sizes[1] + f.sizes[2] + size - 1;
    let url = srv.url("/new.gguf");

    // Eviction turned off: the plain error, nothing deleted.
    let off = store(&f.cache, capacity + f.sizes[0], false);
    let err = off.pull(&request(&url, &hex)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InsufficientSpace { held, .. } if held.is_empty()),
        "{err}"
    );
    assert_eq!(f.cached(), [true, true, true]);

    let store = store(&f.cache, capacity, true);
    let lease = store.lease(&f.hexes[1]).await.unwrap();
    let mut keeper = Keeper::new(store.layout().clone());
    keeper.keep(&BTreeSet::from([f.hexes[2].clone()]));
    let err = store.pull(&request(&url, &hex)).await.unwrap_err();
    let StoreError::InsufficientSpace { held, .. } = &err else {
        panic!("{err}");
    };
    let held: BTreeSet<_> = held.iter().collect();
    assert_eq!(held, f.hexes[1..].iter().collect());
    let message = err.to_string();
    assert!(
        message.contains("not evicted because in use or kept")
            && message.contains(&f.hexes[1])
            && message.contains(&f.hexes[2]),
        "{message}"
    );
    assert_eq!(f.cached(), [true, true, true], "nothing deleted in vain");
    assert!(srv.gets().is_empty(), "nothing downloaded");

    // The server stops: its model is the next least recently used, and 0 and 1 make room.
    drop(lease);
    store.pull(&request(&url, &hex)).await.unwrap();
    assert_eq!(f.cached(), [false, false, true]);
    assert_eq!(store.metrics().evictions.get(), 2);
    drop(keeper);
}
