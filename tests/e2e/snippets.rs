//! The checked blocks of the Markdown docs: a fenced block right after a marker line is run,
//! as written, by a test. Two markers, one per runner:
//!
//! - `<!-- checked: LANG -->`: against a real `llamafleet-agent serve`
//!   (`agent/tests/readme_snippets.rs`);
//! - `<!-- checked on cluster: LANG -->`: against a real Kubernetes API server with the
//!   operator running (`tests/e2e/docs.rs`).
//!
//! Shared by both tests (the agent's includes this file with `#[path]`, so the agent's tests
//! do not depend on the cluster suite's crate). A broken marker panics, so it can never
//! silently drop a block from its test.

/// Where a checked block runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Against a real `llamafleet-agent serve`.
    Agent,
    /// Against a real Kubernetes API server with the operator running.
    Cluster,
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

/// The marker's runner and language, or `None` when `line` is no marker. A comment that
/// starts with `checked` but is neither marker (a typo) panics.
fn marker(line: &str, place: impl Fn() -> String) -> Option<(Runner, &str)> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let (runner, lang) = if let Some(lang) = inner.strip_prefix("checked:") {
        (Runner::Agent, lang)
    } else if let Some(lang) = inner.strip_prefix("checked on cluster:") {
        (Runner::Cluster, lang)
    } else {
        assert!(
            !inner.starts_with("checked"),
            "{}: unknown marker {line:?}",
            place()
        );
        return None;
    };
    Some((runner, lang.trim()))
}

/// The checked blocks of `markdown` (the text of `file`), in document order. Panics on a
/// marker not followed by a fence of its language, or a fence that never closes.
pub fn checked_snippets(file: &str, markdown: &str) -> Vec<Snippet> {
    let mut lines = markdown.lines().enumerate();
    let mut found = Vec::new();
    while let Some((n, line)) = lines.next() {
        let place = || format!("{file}:{}", n + 1);
        let Some((runner, lang)) = marker(line, place) else {
            continue;
        };
        let place = place();
        let fence = lines.next().map(|(_, l)| l.trim());
        assert_eq!(
            fence,
            Some(format!("```{lang}").as_str()),
            "{place}: a checked marker must be followed by a ```{lang} fence"
        );
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
        found.push(Snippet {
            runner,
            lang: lang.to_owned(),
            code: code.join("\n"),
            place,
        });
    }
    found
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
        ];
        for md in broken {
            let refused = std::panic::catch_unwind(|| checked_snippets("doc.md", md));
            assert!(refused.is_err(), "{md:?} was accepted");
        }
        // Other comments are not markers.
        assert_eq!(
            checked_snippets("doc.md", "<!-- needs real nodes -->\n```sh\nx\n```"),
            vec![]
        );
    }
}
