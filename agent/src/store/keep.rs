//! Models a node keeps without serving them. During a model update a serving agent holds the
//! other revision's file (the one a rollback elsewhere would send it back to) under the same
//! shared use lock a server holds on the model it serves, so neither `cache gc` nor eviction
//! deletes it. `serve --keep-file` says which models (see `crate::serve::keep`).

use std::collections::{BTreeMap, BTreeSet};

use super::Layout;
use super::lock::{self, FileLock};

/// Shared use locks on the kept models; dropping it releases them all.
#[derive(Debug)]
pub struct Keeper {
    layout: Layout,
    held: BTreeMap<String, FileLock>,
}

impl Keeper {
    /// Keeps nothing yet.
    pub fn new(layout: Layout) -> Self {
        Keeper {
            layout,
            held: BTreeMap::new(),
        }
    }

    /// The models held now (sha256, sorted).
    pub fn held(&self) -> Vec<String> {
        self.held.keys().cloned().collect()
    }

    /// Holds each model of `wanted` (lowercase sha256s) that is in the cache and releases the
    /// others. A model not cached yet, or being deleted by a collection right now, is picked
    /// up by a later call; a lock that fails is logged and tried again then too.
    pub fn keep(&mut self, wanted: &BTreeSet<String>) {
        let layout = &self.layout;
        self.held.retain(|hex, _| {
            let stay = wanted.contains(hex) && layout.model(hex).is_file();
            if !stay {
                tracing::info!(sha256 = %hex, "no longer keeping a cached model");
            }
            stay
        });
        for hex in wanted {
            if self.held.contains_key(hex) || !layout.model(hex).is_file() {
                continue;
            }
            let lock = match lock::try_shared(&layout.use_lock(hex)) {
                Ok(Some(lock)) => lock,
                // A collection holds it exclusively: it is deleting the file right now.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(sha256 = %hex, error = %e, "cannot keep a cached model; trying again later");
                    continue;
                }
            };
            // The file may have gone between the check and the lock.
            if layout.model(hex).is_file() {
                tracing::info!(sha256 = %hex, "keeping a cached model from collection and eviction");
                self.held.insert(hex.clone(), lock);
            }
        }
    }
}
