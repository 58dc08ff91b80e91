//! `serve --keep-file`: cached models (a YAML list of sha256s) this server keeps from
//! `cache gc` and eviction besides the one it serves. The operator lists both revisions of a
//! model in the routing ConfigMap while an update of it is under way and empties the list
//! once it is promoted or rolled back, so the file a rollback goes back to stays on the node
//! without any pod restarting. The kubelet swaps ConfigMap volumes in place, so the file is
//! polled (as the router polls its table, see `route::reload`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::keep::Keeper;
use crate::store::{Layout, source::normalize_sha256};

/// How often the keep file is re-read: the kubelet takes up to about a minute to refresh a
/// ConfigMap volume, so 5 s adds little to that, and reading a small file that often is free.
pub const KEEP_POLL: Duration = Duration::from_secs(5);

/// Parses the keep file: a YAML list of sha256s; empty text keeps nothing.
pub fn parse(text: &str) -> Result<BTreeSet<String>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeSet::new());
    }
    let list: Vec<String> = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    list.iter()
        .map(|s| normalize_sha256(s).map_err(|e| e.to_string()))
        .collect()
}

fn read(path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {e}"))?;
    parse(&text)
}

/// Keeps what `path` lists: one pass now (before the server pulls, so that its own eviction
/// spares those models), then one every [`KEEP_POLL`] on a thread of its own for the life of
/// the process. A missing or invalid file keeps nothing and is logged (once per change);
/// it never stops the server.
pub fn start(path: PathBuf, layout: Layout) -> std::io::Result<()> {
    let mut keeper = Keeper::new(layout);
    let mut last = None;
    poll(&path, &mut keeper, &mut last);
    std::thread::Builder::new()
        .name("keep-file".into())
        .spawn(move || {
            loop {
                std::thread::sleep(KEEP_POLL);
                poll(&path, &mut keeper, &mut last);
            }
        })?;
    Ok(())
}

type Outcome = Result<BTreeSet<String>, String>;

fn poll(path: &Path, keeper: &mut Keeper, last: &mut Option<Outcome>) {
    let now = read(path);
    if last.as_ref() != Some(&now) {
        match &now {
            Ok(models) => {
                tracing::info!(path = %path.display(), ?models, "keep list read");
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "keep file missing or invalid; keeping no model besides the one served");
            }
        }
    }
    keeper.keep(now.as_ref().unwrap_or(&BTreeSet::new()));
    *last = Some(now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_sha256s_normalized_and_anything_else_refused() {
        let a = "AB".repeat(32);
        let b = "cd".repeat(32);
        let parsed = parse(&format!("- {a}\n- {b}\n- {b}\n")).expect("list");
        assert_eq!(parsed, BTreeSet::from([a.to_ascii_lowercase(), b.clone()]));
        // Quoted as YAML writers quote a sha256 made of digits only.
        let digits = "1".repeat(64);
        assert_eq!(
            parse(&format!("- '{digits}'\n")).expect("quoted"),
            BTreeSet::from([digits])
        );
        assert_eq!(parse("").expect("empty"), BTreeSet::new());
        assert_eq!(parse("[]\n").expect("empty list"), BTreeSet::new());
        assert!(parse("- not-a-sha\n").is_err());
        assert!(parse("keep: [1, 2").is_err());
        assert!(parse(&format!("- ../../{b}\n")).is_err(), "no paths");
    }
}
