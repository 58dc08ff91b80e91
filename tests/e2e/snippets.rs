//! The fenced blocks of the Markdown docs (`README.md`, `docs/*.md`) and their markers. The
//! line right before a fence may carry one marker:
//!
//! - `<!-- checked: LANG -->`: run as written against a real `llamafleet-agent`
//!   (`agent/tests/readme_snippets.rs`);
//! - `<!-- checked on cluster: LANG -->`: run as written against a real Kubernetes API server
//!   with the operator running (`tests/e2e/docs.rs`);
//! - `<!-- checked on real pods: LANG -->`: run as written on the test cluster's real node,
//!   where the pods answer (`tests/e2e/real_pods_migration.rs`, docs/migration.md's blocks);
//! - `<!-- not checked: REASON -->`: run by no test, for the reason given (no Docker engine,
//!   real nodes needed, ...).
//!
//! Every `sh` and `python` block carries exactly one (a test below), so a new command cannot
//! slip into the docs unrun and unexplained. Shared by both runners (the agent's includes this
//! file with `#[path]`, so the agent's tests do not depend on the cluster suite's crate). A
//! broken marker panics, so it can never silently drop a block from its test.

use std::path::Path;

/// Where a checked block runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Against a real `llamafleet-agent serve`.
    Agent,
    /// Against a real Kubernetes API server with the operator running.
    Cluster,
    /// On the real node, with the deployment's pods answering.
    RealPods,
}

/// The marker on the line before a fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// Run by `Runner`'s test; the fence must be of this language.
    Checked(Runner, String),
    /// Run by no test, for this reason.
    NotChecked(String),
}

/// A fenced block with its marker, if any.
#[derive(Debug, PartialEq)]
pub struct Block {
    /// The marker on the line before the fence.
    pub mark: Option<Mark>,
    /// The fence's language (`sh`, `python`, `yaml`; empty for a bare fence).
    pub lang: String,
    /// The lines between the fences.
    pub code: String,
    /// `FILE:LINE` of the marker, or of the fence when it has none, for messages.
    pub place: String,
}

/// A checked block: where it runs, its language, its text and where it is.
#[derive(Debug, PartialEq)]
pub struct Snippet {
    /// The test that runs it.
    pub runner: Runner,
    /// The fence's language (`sh`, `python`).
    pub lang: String,
    /// The lines between the fences.
    pub code: String,
    /// `FILE:LINE` of the marker, for messages.
    pub place: String,
}

/// The Markdown files the runners read, relative to `root` (the repository): `README.md`
/// and `docs/*.md`, in that order.
pub fn doc_files(root: &Path) -> Vec<String> {
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|e| {
            e.expect("docs/ entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    docs.insert(0, "README.md".to_owned());
    docs
}

/// The marker `line` is, or `None` when it is none. A comment that starts with `checked` or
/// `not checked` but is no marker (a typo, a missing reason) panics.
fn marker(line: &str, place: &str) -> Option<Mark> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let mark = if let Some(lang) = inner.strip_prefix("checked:") {
        Mark::Checked(Runner::Agent, lang.trim().to_owned())
    } else if let Some(lang) = inner.strip_prefix("checked on cluster:") {
        Mark::Checked(Runner::Cluster, lang.trim().to_owned())
    } else if let Some(lang) = inner.strip_prefix("checked on real pods:") {
        Mark::Checked(Runner::RealPods, lang.trim().to_owned())
    } else if let Some(reason) = inner.strip_prefix("not checked:") {
        let reason = reason.trim();
        assert!(!reason.is_empty(), "{place}: `not checked` needs a reason");
        Mark::NotChecked(reason.to_owned())
    } else {
        assert!(
            !inner.starts_with("checked") && !inner.starts_with("not checked"),
            "{place}: unknown marker {line:?}"
        );
        return None;
    };
    Some(mark)
}

/// Every fenced block of `markdown` (the text of `file`), in document order, with its marker.
/// Panics on a marker not followed by a fence (so two markers on one block are refused), a
/// checked marker whose fence has another language, or a fence that never closes.
pub fn fenced_blocks(file: &str, markdown: &str) -> Vec<Block> {
    let mut lines = markdown.lines().enumerate();
    let mut found = Vec::new();
    // The marker seen on the previous line, and where it is.
    let mut pending: Option<(Mark, String)> = None;
    while let Some((n, line)) = lines.next() {
        let place = format!("{file}:{}", n + 1);
        let Some(lang) = line.trim().strip_prefix("```") else {
            if let Some((_, at)) = &pending {
                panic!("{at}: a marker must be followed by a fence");
            }
            pending = marker(line, &place).map(|m| (m, place));
            continue;
        };
        let lang = lang.trim().to_owned();
        let mut code = Vec::new();
        loop {
            let Some((_, l)) = lines.next() else {
                panic!("{place}: unclosed fence");
            };
            if l.trim() == "```" {
                break;
            }
            code.push(l);
        }
        let (mark, place) = match pending.take() {
            Some((mark, at)) => {
                if let Mark::Checked(_, want) = &mark {
                    assert_eq!(
                        &lang, want,
                        "{at}: a checked marker must be followed by a ```{want} fence"
                    );
                }
                (Some(mark), at)
            }
            None => (None, place),
        };
        found.push(Block {
            mark,
            lang,
            code: code.join("\n"),
            place,
        });
    }
    if let Some((_, at)) = pending {
        panic!("{at}: a marker must be followed by a fence");
    }
    found
}

/// The checked blocks of `markdown` (the text of `file`), in document order.
pub fn checked_snippets(file: &str, markdown: &str) -> Vec<Snippet> {
    fenced_blocks(file, markdown)
        .into_iter()
        .filter_map(|b| match b.mark {
            Some(Mark::Checked(runner, _)) => Some(Snippet {
                runner,
                lang: b.lang,
                code: b.code,
                place: b.place,
            }),
            _ => None,
        })
        .collect()
}

/// The languages each runner runs.
pub fn runs(runner: Runner, lang: &str) -> bool {
    match runner {
        Runner::Agent => ["sh", "python"].contains(&lang),
        // `yaml`: applied as it stands, as a reader saves it and runs `kubectl apply -f`.
        Runner::Cluster => ["sh", "yaml"].contains(&lang),
        Runner::RealPods => lang == "sh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_parsed_and_broken_ones_are_refused() {
        let md = "x\n<!-- checked: sh -->\n```sh\necho a\necho b\n```\n```sh\nnot checked\n```\n\
                  <!-- checked on cluster: sh -->\n```sh\nkubectl get llmd\n```\n";
        assert_eq!(
            checked_snippets("doc.md", md),
            vec![
                Snippet {
                    runner: Runner::Agent,
                    lang: "sh".into(),
                    code: "echo a\necho b".into(),
                    place: "doc.md:2".into(),
                },
                Snippet {
                    runner: Runner::Cluster,
                    lang: "sh".into(),
                    code: "kubectl get llmd".into(),
                    place: "doc.md:10".into(),
                }
            ]
        );
        let broken = [
            "<!-- checked: sh -->\ntext",
            "<!-- checked: sh -->\n```sh\necho",
            "<!-- checked on cluster: sh -->\n```python\nprint()\n```",
            "<!-- checked on clustr: sh -->\n```sh\nkubectl get llmd\n```",
            "<!-- not checked -->\n```sh\ndocker build .\n```",
            "<!-- not checked: -->\n```sh\ndocker build .\n```",
            // Two markers on one block.
            "<!-- not checked: no Docker -->\n<!-- checked: sh -->\n```sh\necho\n```",
            "<!-- not checked: no Docker -->\n",
        ];
        for md in broken {
            let refused = std::panic::catch_unwind(|| fenced_blocks("doc.md", md));
            assert!(refused.is_err(), "{md:?} was accepted");
        }
        // Other comments are not markers.
        assert_eq!(
            checked_snippets("doc.md", "<!-- needs real nodes -->\n```sh\nx\n```"),
            vec![]
        );
    }

    #[test]
    fn every_block_has_its_marker_or_none() {
        let md = "<!-- not checked: no Docker engine -->\n```sh\ndocker build .\n```\n\
                  ```yaml\na: 1\n```\n  <!-- checked on cluster: yaml -->\n  ```yaml\n  b: 2\n  ```\n";
        let blocks = fenced_blocks("doc.md", md);
        let marks: Vec<(Option<Mark>, &str, &str)> = blocks
            .iter()
            .map(|b| (b.mark.clone(), b.lang.as_str(), b.place.as_str()))
            .collect();
        assert_eq!(
            marks,
            [
                (
                    Some(Mark::NotChecked("no Docker engine".into())),
                    "sh",
                    "doc.md:1"
                ),
                (None, "yaml", "doc.md:5"),
                (
                    Some(Mark::Checked(Runner::Cluster, "yaml".into())),
                    "yaml",
                    "doc.md:8"
                ),
            ]
        );
    }

    /// The languages whose blocks must carry a marker: what a reader would run.
    const RUNNABLE: &[&str] = &["sh", "python"];

    /// A new `sh` or `python` block in the docs must say whether and where it runs.
    #[test]
    fn every_shell_and_python_block_of_the_docs_carries_one_marker() {
        // At run time, as `llamafleet_crds::testing::repo_root` explains; both crates that
        // compile this file sit one level below the root.
        let root = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("..");
        let mut unmarked = Vec::new();
        let mut marked = 0;
        for file in doc_files(&root) {
            let text = std::fs::read_to_string(root.join(&file)).expect("doc is readable");
            for b in fenced_blocks(&file, &text) {
                match &b.mark {
                    None if RUNNABLE.contains(&b.lang.as_str()) => unmarked.push(b.place),
                    None => {}
                    Some(Mark::Checked(runner, lang)) => {
                        assert!(
                            runs(*runner, lang),
                            "{}: no {runner:?} runner for {lang}",
                            b.place
                        );
                        marked += 1;
                    }
                    Some(Mark::NotChecked(_)) => marked += 1,
                }
            }
        }
        assert!(
            unmarked.is_empty(),
            "blocks without a marker (<!-- checked: LANG -->, <!-- checked on cluster: LANG --> \
             or <!-- not checked: REASON --> on the line before the fence): {unmarked:?}"
        );
        assert!(
            marked >= 20,
            "only {marked} marked blocks: are the docs read?"
        );
    }
}
