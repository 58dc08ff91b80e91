//! sha256 computed while the bytes stream to disk: one pass, on a blocking thread, so the
//! network task never waits on hashing or on the disk.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::StoreError;

/// Chunks in flight between the network and the disk: enough to ride out a slow write,
/// small enough to bound memory (chunks are ≤ a few hundred KiB).
const CHANNEL_CHUNKS: usize = 64;
/// Write buffer: large sequential writes.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Read size for hashing local files.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// What a sink wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// sha256 of the whole file (resumed prefix included), lower-case hex.
    pub sha256: String,
    /// File length.
    pub size: u64,
}

/// Sends chunks to a file, hashing them on the way.
#[derive(Debug)]
pub struct Sink {
    tx: mpsc::Sender<Bytes>,
    task: JoinHandle<Result<Written, StoreError>>,
}

impl Sink {
    /// Opens `path`, keeps its first `keep` bytes (hashing them once, the price of a resume)
    /// and drops anything after them.
    pub fn spawn(path: PathBuf, keep: u64) -> Sink {
        let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
        let task = tokio::task::spawn_blocking(move || {
            let (file, mut hasher) = open_for_append(&path, keep)?;
            let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
            let mut size = keep;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .map_err(StoreError::io("writing", &path))?;
                size += chunk.len() as u64;
            }
            let file = out
                .into_inner()
                .map_err(|e| StoreError::io("writing", &path)(e.into_error()))?;
            file.sync_all().map_err(StoreError::io("syncing", &path))?;
            Ok(Written {
                sha256: hex::encode(hasher.finalize()),
                size,
            })
        });
        Sink { tx, task }
    }

    /// Queues a chunk; `false` when the writer has stopped (its error comes from `finish`).
    pub async fn send(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Flushes, fsyncs and returns the hash and length.
    pub async fn finish(self) -> Result<Written, StoreError> {
        drop(self.tx);
        self.task.await?
    }
}

fn open_for_append(path: &Path, keep: u64) -> Result<(File, Sha256), StoreError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(StoreError::io("opening", path))?;
    let mut hasher = Sha256::new();
    if keep > 0 {
        let mut prefix = (&mut file).take(keep);
        let hashed =
            copy_into_hasher(&mut prefix, &mut hasher).map_err(StoreError::io("reading", path))?;
        if hashed != keep {
            return Err(StoreError::io("resuming", path)(std::io::Error::other(
                format!("partial file has {hashed} bytes, expected {keep}"),
            )));
        }
    }
    file.set_len(keep)
        .map_err(StoreError::io("truncating", path))?;
    file.seek(SeekFrom::Start(keep))
        .map_err(StoreError::io("seeking", path))?;
    Ok((file, hasher))
}

fn copy_into_hasher(reader: &mut impl Read, hasher: &mut Sha256) -> std::io::Result<u64> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut total = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// Hashes a file (one read).
pub fn hash_file(path: &Path) -> Result<Written, StoreError> {
    let mut file = File::open(path).map_err(StoreError::io("opening", path))?;
    let mut hasher = Sha256::new();
    let size = copy_into_hasher(&mut file, &mut hasher).map_err(StoreError::io("reading", path))?;
    Ok(Written {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// Copies `from` to `to` while hashing (one read, one write), then fsyncs `to`.
pub fn copy_and_hash(from: &Path, to: &Path) -> Result<Written, StoreError> {
    let mut src = File::open(from).map_err(StoreError::io("opening", from))?;
    let dst = File::create(to).map_err(StoreError::io("creating", to))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, dst);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(StoreError::io("reading", from))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(StoreError::io("writing", to))?;
        size += n as u64;
    }
    let dst = out
        .into_inner()
        .map_err(|e| StoreError::io("writing", to)(e.into_error()))?;
    dst.sync_all().map_err(StoreError::io("syncing", to))?;
    Ok(Written {
        sha256: hex::encode(hasher.finalize()),
        size,
    })
}

/// sha256 of a string, hex (cache keys for sources without a known hash).
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}
