//! Crash-loop protection: a marker is written (and locked) before llama.cpp loads a model and
//! removed after. A marker whose lock nobody holds belongs to a process that died while
//! loading; after [`MAX_CRASHES`] such deaths for one sha256 the model is refused with a
//! clear error instead of crash-looping the pod.

use std::path::{Path, PathBuf};

use super::{Layout, StoreError, lock};

/// Crashes tolerated per model: one can be bad luck (OOM kill), three is the file.
pub const MAX_CRASHES: u32 = 3;

const COUNT_FILE: &str = "crashes";

/// Held while a model loads. [`LoadGuard::loaded`] on success; dropping it without that
/// (an ordinary error) removes the marker without counting a crash.
#[derive(Debug)]
pub struct LoadGuard {
    marker: PathBuf,
    dir: PathBuf,
    lock: Option<lock::FileLock>,
}

fn read_count(dir: &Path) -> u32 {
    std::fs::read_to_string(dir.join(COUNT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_count(dir: &Path, count: u32) -> Result<(), StoreError> {
    let path = dir.join(COUNT_FILE);
    std::fs::write(&path, count.to_string()).map_err(StoreError::io("writing", &path))
}

/// Counts markers left by dead loaders, refuses the model after `max_crashes`, and otherwise
/// writes this load's marker.
pub fn begin_load(layout: &Layout, hex: &str, max_crashes: u32) -> Result<LoadGuard, StoreError> {
    let dir = layout.crash_dir(hex);
    std::fs::create_dir_all(&dir).map_err(StoreError::io("creating", &dir))?;
    let mut crashes = read_count(&dir);
    let entries = std::fs::read_dir(&dir).map_err(StoreError::io("listing", &dir))?;
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "loading") {
            continue;
        }
        // Held: another process is loading right now. Free: its loader died mid-load.
        if let Some(_stale) = lock::try_exclusive(&path)? {
            crashes += 1;
            let _ = std::fs::remove_file(&path);
            tracing::warn!(
                sha256 = hex,
                crashes,
                "a previous load of this model did not finish"
            );
        }
    }
    write_count(&dir, crashes)?;
    if crashes >= max_crashes {
        return Err(StoreError::CrashLoop {
            sha256: hex.to_owned(),
            crashes,
            markers: dir,
        });
    }
    // Locked under a temporary name, then renamed: a scanner never sees an unlocked marker.
    let name = format!("{}-{}", std::process::id(), unique_suffix());
    let pending = dir.join(format!("{name}.pending"));
    let marker = dir.join(format!("{name}.loading"));
    let lock = lock::try_exclusive(&pending)?;
    std::fs::rename(&pending, &marker).map_err(StoreError::io("creating", &marker))?;
    Ok(LoadGuard { marker, dir, lock })
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl LoadGuard {
    /// The model loaded: remove the marker and forget earlier crashes.
    pub fn loaded(self) -> Result<(), StoreError> {
        write_count(&self.dir, 0)
        // Drop removes the marker.
    }

    /// What a crash leaves behind: the marker stays, its lock goes (as when the process dies).
    #[doc(hidden)]
    pub fn simulate_crash(mut self) {
        self.lock = None;
        self.marker = PathBuf::new();
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        if !self.marker.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.marker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_crashes_refuse_the_model_and_a_success_resets() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(tmp.path());
        let hex = "ab".repeat(32);
        for _ in 0..MAX_CRASHES {
            begin_load(&layout, &hex, MAX_CRASHES)
                .expect("still allowed")
                .simulate_crash();
        }
        let err = begin_load(&layout, &hex, MAX_CRASHES).expect_err("refused");
        assert!(
            matches!(err, StoreError::CrashLoop { crashes: 3, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains(&hex)
                && err.to_string().contains("crashed the server 3 times")
        );

        let other = "cd".repeat(32);
        begin_load(&layout, &other, MAX_CRASHES)
            .expect("ok")
            .simulate_crash();
        begin_load(&layout, &other, MAX_CRASHES)
            .expect("ok")
            .loaded()
            .expect("loaded");
        assert_eq!(read_count(&layout.crash_dir(&other)), 0);
    }

    #[test]
    fn a_live_concurrent_load_is_not_a_crash() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(tmp.path());
        let hex = "ef".repeat(32);
        let first = begin_load(&layout, &hex, MAX_CRASHES).expect("first");
        let second = begin_load(&layout, &hex, MAX_CRASHES).expect("second");
        assert_eq!(read_count(&layout.crash_dir(&hex)), 0);
        drop((first, second));
        begin_load(&layout, &hex, MAX_CRASHES).expect("third");
        assert_eq!(
            read_count(&layout.crash_dir(&hex)),
            0,
            "clean drops are not crashes"
        );
    }
}
