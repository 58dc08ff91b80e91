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
    _file: File,
    path: PathBuf,
}

impl FileLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
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
        Ok(FileLock { _file: file, path })
    })
    .await?
}

/// Waits for a shared lock (on a blocking thread).
pub async fn shared(path: PathBuf) -> Result<FileLock, StoreError> {
    tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        file.lock_shared()
            .map_err(StoreError::io("locking", &path))?;
        Ok(FileLock { _file: file, path })
    })
    .await?
}

/// Takes an exclusive lock if nobody holds the file; `None` when it is held.
pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, StoreError> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(FileLock {
            _file: file,
            path: path.to_owned(),
        })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::io("locking", path)(e)),
    }
}
