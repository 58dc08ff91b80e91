//! Automatic eviction: when a download does not fit, cached models that no server uses or
//! keeps are deleted, least recently used first, only until it fits. A model under a use lock
//! (a running `serve`, or one keeping it through `--keep-file`) is never touched: deletion
//! goes through [`gc::remove_model`], which takes that lock exclusively first.
//!
//! "Last used" is the newer of two mtimes: the model file's (when it was stored) and its use
//! lock's (set when a server or a keeper first opens it, bumped by every [`Store::lease`],
//! that is each time a server starts on it; eviction's own look does not create it). Both
//! survive restarts and cost no write on the serving path; the metadata's `fetched_at` says
//! only when a file was stored, and atimes are unreliable (`noatime`, `relatime`).

use std::time::SystemTime;

use super::{DiskSpace, Layout, Store, StoreError, gc, lock, space};

/// What one eviction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evicted {
    /// Models deleted, least recently used first, with the bytes each freed.
    pub removed: Vec<(String, u64)>,
    /// Models a server uses or keeps, so not deleted.
    pub held: Vec<String>,
}

/// The cached models (sha256), least recently used first (ties by name, so the order is
/// stable).
pub fn by_last_use(layout: &Layout) -> Result<Vec<String>, StoreError> {
    let dir = layout.models_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("listing", &dir)(e)),
    };
    let mut models: Vec<(SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".gguf").map(str::to_owned))
        .map(|hex| (last_used(layout, &hex), hex))
        .collect();
    models.sort();
    Ok(models.into_iter().map(|(_, hex)| hex).collect())
}

fn last_used(layout: &Layout, hex: &str) -> SystemTime {
    let mtime = |p: std::path::PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stored = mtime(layout.model(hex));
    let used = mtime(layout.use_lock(hex));
    stored.max(used).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Deletes the models nobody uses or keeps, least recently used first, until `needed` bytes
/// are available under the cache; `space` is asked again after each deletion. When even all
/// of them would not make room, deletes nothing (a download that fails anyway should not cost
/// the node its cache).
pub fn make_room(
    layout: &Layout,
    space: &dyn DiskSpace,
    needed: u64,
) -> Result<Evicted, StoreError> {
    let root = layout.root();
    let available = || {
        space
            .available(root)
            .map_err(StoreError::io("checking free space in", root))
    };
    let mut out = Evicted::default();
    let mut free = available()?;
    if free >= needed {
        return Ok(out);
    }
    let mut evictable = Vec::new();
    for hex in by_last_use(layout)? {
        if lock::is_held(&layout.use_lock(&hex))? {
            out.held.push(hex);
        } else {
            let size = std::fs::metadata(layout.model(&hex)).map_or(0, |m| m.len());
            evictable.push((hex, size));
        }
    }
    let could_free: u64 = evictable.iter().map(|(_, size)| size).sum();
    if free.saturating_add(could_free) < needed {
        return Ok(out);
    }
    for (hex, _) in evictable {
        if free >= needed {
            break;
        }
        match gc::remove_model(layout, &hex, false)? {
            // Gone already (another collection got there first): nothing freed by us.
            Some(0) => {}
            Some(bytes) => {
                free = available()?;
                tracing::info!(sha256 = %hex, bytes, available = free, needed, "evicted a cached model to make room for a download");
                out.removed.push((hex, bytes));
            }
            // Taken into use since the look above.
            None => out.held.push(hex),
        }
    }
    Ok(out)
}

impl Store {
    /// [`space::ensure`] for a download of `remaining` bytes; when it does not fit (and
    /// eviction is on), evicts what nobody uses or keeps and checks again. The error then
    /// names the models it could not evict.
    pub(super) fn ensure_space(&self, remaining: u64) -> Result<(), StoreError> {
        let space = &*self.config.disk_space;
        let (root, margin) = (self.layout.root(), self.config.margin_bytes);
        match space::ensure(space, root, remaining, margin) {
            Err(StoreError::InsufficientSpace { .. }) if self.config.evict => {}
            other => return other,
        }
        let evicted = make_room(&self.layout, space, remaining.saturating_add(margin))?;
        for (_, bytes) in &evicted.removed {
            self.metrics.evictions.inc();
            self.metrics.evicted_bytes.inc_by(*bytes);
        }
        match space::ensure(space, root, remaining, margin) {
            Err(StoreError::InsufficientSpace {
                dir,
                needed,
                remaining,
                margin,
                available,
                held: _,
            }) => Err(StoreError::InsufficientSpace {
                dir,
                needed,
                remaining,
                margin,
                available,
                held: evicted.held,
            }),
            other => other,
        }
    }
}
