//! Hot reload: the routing table and the keys directory are polled (Kubernetes updates
//! ConfigMap and Secret volumes by swapping a symlink, which file watchers see unreliably; a
//! read a second is cheap). A bad table or unreadable keys leave the last good ones in place.

use std::path::Path;

use super::keys::KeySet;
use super::state::RouterState;
use super::table;

/// What the last poll saw, so only changes are applied and logged.
#[derive(Debug, Default)]
pub struct Watcher {
    table_text: Option<String>,
    keys_error: Option<String>,
}

impl Watcher {
    /// Applies whatever changed since the last poll.
    pub fn poll(&mut self, state: &RouterState, config: &Path) {
        self.poll_table(state, config);
        self.poll_keys(state);
    }

    fn poll_table(&mut self, state: &RouterState, config: &Path) {
        let text = match std::fs::read_to_string(config) {
            Ok(text) => text,
            Err(e) => {
                let message = format!("reading {}: {e}", config.display());
                if self.table_text.as_deref() != Some(message.as_str()) {
                    tracing::error!(error = %message, "routing table unreadable; keeping the last good one");
                    count(state, "table", "error");
                    self.table_text = Some(message);
                }
                return;
            }
        };
        if self.table_text.as_deref() == Some(text.as_str()) {
            return;
        }
        match table::parse(&text) {
            Ok(table) => {
                let revision = table.revision();
                let changed = state.live().is_none_or(|l| l.stats.revision() != revision);
                state.install(table);
                tracing::info!(%revision, weights_changed = changed, "routing table loaded");
                count(state, "table", "ok");
            }
            Err(e) => {
                tracing::error!(error = %e, path = %config.display(), "bad routing table; keeping the last good one");
                count(state, "table", "error");
            }
        }
        self.table_text = Some(text);
    }

    fn poll_keys(&mut self, state: &RouterState) {
        let Some(live) = state.live() else { return };
        let Some(dir) = live.table.api_keys_dir.as_deref() else {
            return;
        };
        let tiers: Vec<&str> = live.table.tiers.iter().map(|t| t.name.as_str()).collect();
        match KeySet::load(Path::new(dir), &tiers) {
            Ok(keys) => {
                self.keys_error = None;
                if *state.keys() != keys {
                    for problem in &keys.rejected {
                        tracing::warn!(entry = %problem, "API key entry ignored");
                    }
                    tracing::info!(keys = keys.len(), "API keys loaded");
                    state.set_keys(keys);
                    count(state, "keys", "ok");
                }
            }
            Err(e) => {
                let message = e.to_string();
                if self.keys_error.as_ref() != Some(&message) {
                    tracing::error!(error = %message, "API keys unreadable; keeping the last good ones");
                    count(state, "keys", "error");
                    self.keys_error = Some(message);
                }
            }
        }
    }
}

fn count(state: &RouterState, what: &str, result: &str) {
    state
        .metrics
        .reloads
        .with_label_values(&[what, result])
        .inc();
}
