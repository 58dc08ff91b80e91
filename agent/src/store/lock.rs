//! Per-target file locks (`flock` through std's `File::lock`), so that several agents on one
//! node download a model once and never delete a model in use.
//!
//! Locks belong to an open file and vanish when the process dies, so a crash never leaves a
//! stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use super::StoreError;

/// A held lock; released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the lock file's mtime to now: a use lock's mtime records when a server last
    /// started using its model, which eviction reads to pick the least recently used.
    pub fn touch(&self) -> std::io::Result<()> {
        self.file.set_modified(std::time::SystemTime::now())
    }
}

fn open(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(StoreError::io("opening lock", path))
}

/// Waits for an exclusive lock (on a blocking thread).
pub async fn exclusive(path: PathBuf) -> Result<FileLock, StoreError> {
    tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        file.lock().map_err(StoreError::io("locking", &path))?;
        Ok(FileLock { file, path })
    })
    .await?
}

/// Waits for a shared lock (on a blocking thread).
pub async fn shared(path: PathBuf) -> Result<FileLock, StoreError> {
    tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        file.lock_shared()
            .map_err(StoreError::io("locking", &path))?;
        Ok(FileLock { file, path })
    })
    .await?
}

/// Takes an exclusive lock if nobody holds the file; `None` when it is held.
pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, StoreError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(FileLock {
            file,
            path: path.to_owned(),
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io("locking", path)(e)),
    }
}

/// Takes a shared lock unless someone holds it exclusively (a collection deleting the model
/// right now); `None` then.
pub fn try_shared(path: &Path) -> Result<Option<FileLock>, StoreError> {
    let file = open(path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(FileLock {
            file,
            path: path.to_owned(),
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io("locking", path)(e)),
    }
}

/// Whether someone holds the lock (shared or exclusive), without creating the lock file: a
/// missing one is held by nobody. Only a hint (it may change right after); what deletes goes
/// through [`try_exclusive`].
pub fn is_held(path: &Path) -> Result<bool, StoreError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io("opening lock", path)(e)),
    };
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(StoreError::io("locking", path)(e)),
    }
}
