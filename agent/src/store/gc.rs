//! `cache gc --keep <hex>...`: delete models (and stale partial downloads) that are not kept,
//! never one in use (or kept by a `serve --keep-file`) or being downloaded.

use std::collections::HashSet;

use serde::Serialize;

use super::{Layout, StoreError, lock};

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Models deleted (sha256).
    pub removed: Vec<String>,
    /// Models kept because asked.
    pub kept: Vec<String>,
    /// Models not deleted because a server uses or keeps them.
    pub in_use: Vec<String>,
    /// Partial downloads deleted (keys).
    pub removed_partials: Vec<String>,
    /// Bytes freed.
    pub freed_bytes: u64,
}

/// Deletes every model not in `keep` and not in use, and partial downloads nobody is
/// running. With `dry_run`, only reports.
pub fn collect(layout: &Layout, keep: &[String], dry_run: bool) -> Result<GcReport, StoreError> {
    let keep: HashSet<String> = keep.iter().map(|k| k.trim().to_ascii_lowercase()).collect();
    let dir = layout.models_dir();
    let mut report = GcReport::default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(StoreError::io("listing", &dir)(e)),
    };
    let mut names: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        if let Some(hex) = name.strip_suffix(".gguf") {
            if keep.contains(hex) {
                report.kept.push(hex.to_owned());
                continue;
            }
            let Some(freed) = remove_model(layout, hex, dry_run)? else {
                report.in_use.push(hex.to_owned());
                continue;
            };
            report.removed.push(hex.to_owned());
            report.freed_bytes += freed;
        } else if let Some(key) = name.strip_suffix(".partial") {
            if keep.contains(key) {
                continue;
            }
            let Some(_download) = lock::try_exclusive(&layout.download_lock(key))? else {
                continue;
            };
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            if !dry_run {
                std::fs::remove_file(&path).map_err(StoreError::io("removing", &path))?;
                let _ = std::fs::remove_file(layout.resume_info(key));
            }
            report.removed_partials.push(key.to_owned());
            report.freed_bytes += size;
        }
    }
    Ok(report)
}

/// Deletes one cached model (with its metadata, use lock and crash markers) unless a server
/// uses or keeps it; returns the bytes freed, `None` when it is held. With `dry_run`, only
/// checks. Both `cache gc` and automatic eviction go through here.
pub fn remove_model(layout: &Layout, hex: &str, dry_run: bool) -> Result<Option<u64>, StoreError> {
    let path = layout.model(hex);
    let size = || std::fs::metadata(&path).map_or(0, |m| m.len());
    if dry_run {
        // Only a look: no lock file is created (its mtime would count as a use).
        return Ok((!lock::is_held(&layout.use_lock(hex))?).then(size));
    }
    // Holding the use lock exclusively while deleting: no server can start using it
    // between the check and the unlink.
    let Some(_use) = lock::try_exclusive(&layout.use_lock(hex))? else {
        return Ok(None);
    };
    let freed = size();
    match std::fs::remove_file(&path) {
        // Deleted meanwhile by another collection: nothing was left to free.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(0)),
        other => other.map_err(StoreError::io("removing", &path))?,
    }
    let _ = std::fs::remove_file(layout.meta(hex));
    let _ = std::fs::remove_file(layout.use_lock(hex));
    let _ = std::fs::remove_dir_all(layout.crash_dir(hex));
    Ok(Some(freed))
}
