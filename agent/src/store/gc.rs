//! `cache gc --keep <hex>...`: delete models (and stale partial downloads) that are not kept,
//! never one in use or being downloaded.

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
    /// Models not deleted because a server holds them.
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
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if let Some(hex) = name.strip_suffix(".gguf") {
            if keep.contains(hex) {
                report.kept.push(hex.to_owned());
                continue;
            }
            // Holding the use lock exclusively while deleting: no server can start using it
            // between the check and the unlink.
            let Some(_use) = lock::try_exclusive(&layout.use_lock(hex))? else {
                report.in_use.push(hex.to_owned());
                continue;
            };
            if !dry_run {
                std::fs::remove_file(&path).map_err(StoreError::io("removing", &path))?;
                let _ = std::fs::remove_file(layout.meta(hex));
                let _ = std::fs::remove_file(layout.use_lock(hex));
                let _ = std::fs::remove_dir_all(layout.crash_dir(hex));
            }
            report.removed.push(hex.to_owned());
            report.freed_bytes += size;
        } else if let Some(key) = name.strip_suffix(".partial") {
            if keep.contains(key) {
                continue;
            }
            let Some(_download) = lock::try_exclusive(&layout.download_lock(key))? else {
                continue;
            };
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
