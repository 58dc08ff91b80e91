//! Reading and checking the routing table file.

use std::collections::HashSet;
use std::path::Path;

use llamafleet_crds::routing::{RoutedReplicas, RoutingTable};

/// Why a routing table was refused (the router keeps the last good one).
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file is unreadable.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML does not match the table's schema.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parse error.
        source: serde_norway::Error,
    },
    /// The table parses but cannot be routed.
    #[error("invalid routing table {path}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// Reads, parses and checks the table at `path`.
pub fn load(path: &Path) -> Result<RoutingTable, TableError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TableError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_named(&text, shown)
}

/// Parses and checks a table's YAML text.
pub fn parse(text: &str) -> Result<RoutingTable, TableError> {
    parse_named(text, "<text>".into())
}

fn parse_named(text: &str, path: String) -> Result<RoutingTable, TableError> {
    let table: RoutingTable = match serde_norway::from_str(text) {
        Ok(table) => table,
        Err(source) => return Err(TableError::Parse { path, source }),
    };
    match check(&table) {
        Ok(()) => Ok(table),
        Err(problem) => Err(TableError::Invalid { path, problem }),
    }
}

fn check(table: &RoutingTable) -> Result<(), String> {
    if table.variants.is_empty() {
        return Err("no variants".into());
    }
    let mut names = HashSet::new();
    for v in &table.variants {
        if !names.insert(v.name.as_str()) {
            return Err(format!("variant {:?} listed twice", v.name));
        }
        if v.weight < 0 {
            return Err(format!("variant {:?} has a negative weight", v.name));
        }
        let url = url::Url::parse(&v.url)
            .map_err(|e| format!("variant {:?}: url {:?}: {e}", v.name, v.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("variant {:?}: url must be http(s)", v.name));
        }
        if let Some(RoutedReplicas::Urls(urls)) = &v.replicas {
            for replica in urls {
                let parsed = url::Url::parse(replica)
                    .map_err(|e| format!("variant {:?}: replica {replica:?}: {e}", v.name))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!(
                        "variant {:?}: replica {replica:?} must be http(s)",
                        v.name
                    ));
                }
            }
        }
    }
    if let Some(shadow) = &table.shadow {
        if !names.contains(shadow.variant.as_str()) {
            return Err(format!("shadow variant {:?} is not listed", shadow.variant));
        }
        if shadow.percent > 100 {
            return Err(format!("shadow percent {} is over 100", shadow.percent));
        }
    }
    let mut tiers = HashSet::new();
    for t in &table.tiers {
        if !tiers.insert(t.name.as_str()) {
            return Err(format!("tier {:?} listed twice", t.name));
        }
    }
    Ok(())
}
