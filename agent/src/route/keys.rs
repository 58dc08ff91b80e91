//! API keys from the mounted Secret: one file per client, named after the client, holding
//! `<tier>:<api key>`. Keys are kept only as SHA-256 digests, so a lookup's timing says nothing
//! about the stored keys.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A client the key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Client name (the Secret entry's name); rate limits are kept per client.
    pub name: String,
    /// Tier name.
    pub tier: String,
}

/// Why the keys directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The directory or one of its files is unreadable.
    #[error("reading API keys in {path}: {source}")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The keys of every client; the entries that were malformed are reported, not loaded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySet {
    by_digest: HashMap<[u8; 32], Client>,
    /// `file: problem` for each entry that was left out.
    pub rejected: Vec<String>,
}

impl KeySet {
    /// Reads every client file of `dir` (Kubernetes' `..data` links and other dot names are
    /// skipped). Entries naming a tier outside `tiers` are rejected.
    pub fn load(dir: &Path, tiers: &[&str]) -> Result<KeySet, KeysError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeysError::Read { path, source }
        };
        let mut set = KeySet::default();
        let mut entries = std::fs::read_dir(dir)
            .map_err(read_err(dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read_err(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with('.') || path.is_dir() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
            match parse_entry(&text, tiers) {
                Ok((tier, key)) => {
                    let client = Client {
                        name: name.clone(),
                        tier: tier.to_owned(),
                    };
                    // Files are read in name order; the first holder of a key keeps it.
                    match set.by_digest.entry(digest(key)) {
                        Entry::Occupied(first) => set.rejected.push(format!(
                            "{name}: key already belongs to {}",
                            first.get().name
                        )),
                        Entry::Vacant(slot) => {
                            slot.insert(client);
                        }
                    }
                }
                Err(problem) => set.rejected.push(format!("{name}: {problem}")),
            }
        }
        Ok(set)
    }

    /// The client a presented key belongs to.
    pub fn client(&self, presented: &str) -> Option<&Client> {
        self.by_digest.get(&digest(presented.trim()))
    }

    /// Number of loaded keys.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

fn parse_entry<'a>(text: &'a str, tiers: &[&str]) -> Result<(&'a str, &'a str), String> {
    let (tier, key) = text
        .trim()
        .split_once(':')
        .ok_or("expected <tier>:<api key>")?;
    let (tier, key) = (tier.trim(), key.trim());
    if key.is_empty() {
        return Err("empty key".into());
    }
    if !tiers.contains(&tier) {
        return Err(format!("unknown tier {tier:?}"));
    }
    Ok((tier, key))
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: `Authorization: Bearer KEY` (OpenAI clients) or `x-api-key`.
pub fn presented(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}
