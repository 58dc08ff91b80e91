//! Disk-space check before a download: a clear error instead of a half-filled disk.

use std::path::Path;

use super::StoreError;

/// Bytes kept free after a download (logs, other pods,
/// llama.cpp's own files). Overridable per store.
pub const DEFAULT_MARGIN_BYTES: u64 = 512 << 20;

/// Tells how many bytes are available to this user under a path. Injectable for tests.
pub trait DiskSpace: Send + Sync + std::fmt::Debug {
    /// Bytes available under `path`.
    fn available(&self, path: &Path) -> std::io::Result<u64>;
}

/// The real file system (`statvfs`, through `fs4`).
#[derive(Debug, Default, Clone, Copy)]
pub struct FsSpace;

impl DiskSpace for FsSpace {
    fn available(&self, path: &Path) -> std::io::Result<u64> {
        fs4::available_space(path)
    }
}

/// Fails when `remaining` bytes plus `margin` do not fit in `dir` (the store then evicts,
/// see [`super::evict`], and asks again).
pub fn ensure(
    space: &dyn DiskSpace,
    dir: &Path,
    remaining: u64,
    margin: u64,
) -> Result<(), StoreError> {
    let available = space
        .available(dir)
        .map_err(StoreError::io("checking free space in", dir))?;
    let needed = remaining.saturating_add(margin);
    if available < needed {
        return Err(StoreError::InsufficientSpace {
            dir: dir.to_owned(),
            needed,
            remaining,
            margin,
            available,
            held: Vec::new(),
        });
    }
    Ok(())
}
