//! The docs' kubectl commands, run as written against a real control plane with the operator
//! (kwok runs the pods): every block marked `<!-- checked on cluster: sh -->` in
//! `docs/migration.md` and `README.md`, in document order, with `bash -euo pipefail`. Each doc
//! gets its own namespace, set as the context namespace of a copy of the kubeconfig (so the
//! commands name none, as in the docs), and its own working directory holding links to the
//! repository's top-level entries (so `manifests/...` resolves while what the docs write, such
//! as `qa.key`, stays out of the checkout). Each block must exit 0 and print what the doc says
//! it shows. The migration asks for nodes with room for both models (one GPU per replica), so
//! the test adds a kwok node with GPUs to spare for its run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use llamafleet_e2e::snippets::{Runner, Snippet, checked_snippets};
use llamafleet_e2e::{Cluster, cluster, repo_root};

/// "Does not hang" bound for one block (the docs' `kubectl wait` allow 30 minutes; on the
/// simulated nodes readiness takes seconds).
const BLOCK_TIMEOUT_SECONDS: u64 = 300;
/// How long a read-only block is re-run until it shows what the doc says (the operator
/// reconciles within seconds of a change).
const EVENTUALLY_SECONDS: u64 = 60;

/// What a block must print: the block is the one containing `block`; `eventually` re-runs it
/// (read-only blocks only) until it does.
struct Shows {
    block: &'static str,
    texts: &'static [&'static str],
    eventually: bool,
}

const fn shows(block: &'static str, texts: &'static [&'static str]) -> Shows {
    Shows {
        block,
        texts,
        eventually: false,
    }
}

const fn eventually(block: &'static str, texts: &'static [&'static str]) -> Shows {
    Shows {
        block,
        texts,
        eventually: true,
    }
}

/// What `docs/migration.md` says its commands show. The sha256 look-ups, and stage 4's
/// candidate, condition and Events, print nothing here: with `--no-resolve` and
/// `--no-agent-status` no source is contacted and no agent reports a download.
const MIGRATION: &[Shows] = &[
    shows(
        "kubectl create secret generic assistant-api-keys",
        &["secret/assistant-api-keys created"],
    ),
    shows("kubectl get llm,llmd", &["Q4_K_M", "blue=100", "2/2"]),
    shows("02-green-10.yaml", &["blue=90,green=10", "4/4"]),
    shows("05-blue-removed.yaml", &["\"saiga-7b\" deleted"]),
    shows(
        "progressive/02-green-0.yaml",
        &["blue=100,green=0", "Stable"],
    ),
    eventually(
        "{.status.rollout}",
        &[
            "\"phase\":\"Progressing\"",
            "\"candidate\":\"green\"",
            "\"lastDecision\":\"started at 10%\"",
        ],
    ),
    shows("\"paused\":true", &["patched"]),
    // Every decision is an Event, which `describe` lists.
    eventually(
        "kubectl describe llmd assistant",
        &["\"type\":\"RolledBack\"", "RolloutStarted"],
    ),
];

/// What the README's install and troubleshooting blocks show on the quickstart.
const README: &[Shows] = &[
    shows(
        "kubectl explain llmd.spec.rollout",
        &["strategy", "llmdeployment.llamafleet.dev/chat created"],
    ),
    eventually(
        "kubectl describe llm gemma3-270m",
        &["main=100", "1/1", "Conditions:"],
    ),
    shows(
        "kubectl describe pod -l llamafleet.dev/variant=main",
        &["chat-main-", "llamafleet.dev/variant=main"],
    ),
    shows("kubectl describe node", &["nvidia.com/gpu"]),
];

#[test]
fn doc_commands_run_as_written_against_a_real_cluster() {
    let migration = doc_snippets("docs/migration.md");
    let readme = doc_snippets("README.md");
    let Some(c) = cluster() else { return };
    c.install_crds();
    // `kubectl explain` reads the OpenAPI document, published a moment after the CRDs.
    c.kubectl_eventually(&["explain", "llmd.spec.rollout"]);
    let _operator = c.start_operator();
    let _gpus = GpuNode::add(&c);

    let dir = run_doc(&c, "e2e-doc-migration", &migration, MIGRATION);
    let key = std::fs::read_to_string(dir.path().join("work/qa.key")).unwrap();
    assert!(
        key.trim().len() == 48 && key.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "qa.key holds {key:?}, not the qa-team key"
    );
    run_doc(&c, "e2e-doc-readme", &readme, README);
}

/// The blocks of `file` the cluster runs, all `sh`.
fn doc_snippets(file: &str) -> Vec<Snippet> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    let all = checked_snippets(file, &text);
    if file != "README.md" {
        // Only the README's agent blocks have a runner; elsewhere one would never run.
        assert!(all.iter().all(|s| s.runner == Runner::Cluster), "{all:#?}");
    }
    let cluster: Vec<Snippet> = all
        .into_iter()
        .filter(|s| s.runner == Runner::Cluster)
        .collect();
    assert!(!cluster.is_empty(), "{file} has no checked cluster blocks");
    for s in &cluster {
        assert_eq!(s.lang, "sh", "{}: no runner for {}", s.place, s.lang);
    }
    cluster
}

/// Runs `snippets` in order in a fresh namespace and working directory, checking `expected`;
/// returns the directory whose `work/` the blocks ran in (and wrote to).
fn run_doc(c: &Cluster, ns: &str, snippets: &[Snippet], expected: &[Shows]) -> tempfile::TempDir {
    let namespace = c.namespace(ns);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(c.kubeconfig(), &kubeconfig).unwrap();
    let in_ns = Cluster::with_kubeconfig(kubeconfig.clone());
    in_ns.kubectl_ok(&[
        "config",
        "set-context",
        "--current",
        "--namespace",
        &namespace.name,
    ]);
    let work = dir.path().join("work");
    link_repository(&work);

    // A jsonpath of a field the API does not have prints nothing, like an absent one: ask
    // the API server's schema for each field the blocks read.
    for s in snippets {
        for field in jsonpath_fields(&s.code) {
            let out = in_ns.kubectl(&["explain", &field]);
            assert!(out.ok, "{}: no field {field}:\n{}", s.place, out.stderr);
        }
    }
    for shows in expected {
        let n = snippets
            .iter()
            .filter(|s| s.code.contains(shows.block))
            .count();
        assert_eq!(n, 1, "{n} checked blocks contain {:?}", shows.block);
    }
    for s in snippets {
        let shows = expected.iter().find(|e| s.code.contains(e.block));
        let texts = shows.map_or(&[][..], |e| e.texts);
        let retry = shows.is_some_and(|e| e.eventually);
        if retry {
            assert!(
                read_only(&s.code),
                "{}: only a read-only block is re-run",
                s.place
            );
        }
        let deadline = Instant::now() + Duration::from_secs(EVENTUALLY_SECONDS);
        loop {
            let out = run_block(s, &kubeconfig, &work);
            let missing: Vec<&str> = texts.iter().copied().filter(|t| !out.contains(t)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                retry && Instant::now() < deadline,
                "{}: the output lacks {missing:?}:\n{}\n--- output:\n{out}",
                s.place,
                s.code
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    dir
}

/// Only `kubectl get` / `kubectl describe` lines (comments and blank lines aside).
fn read_only(code: &str) -> bool {
    code.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .all(|l| l.starts_with("kubectl get ") || l.starts_with("kubectl describe "))
}

/// The fields `kubectl get llm|llmd NAME -o jsonpath='...'` lines read, as `kubectl explain`
/// names them (`llmd.status.variants.plan` for `{.status.variants[*].plan}`).
fn jsonpath_fields(code: &str) -> Vec<String> {
    let mut fields = Vec::new();
    for line in code.lines().map(str::trim) {
        let Some(resource) = ["llm", "llmd"]
            .into_iter()
            .find(|r| line.starts_with(&format!("kubectl get {r} ")))
        else {
            continue;
        };
        let Some((_, rest)) = line.split_once("jsonpath='") else {
            continue;
        };
        let template = rest.split('\'').next().unwrap_or_default();
        for expr in template.split('{').filter_map(|e| e.split_once('}')) {
            let Some(path) = expr.0.strip_prefix('.') else {
                continue; // a literal such as {"\n"}
            };
            let mut field = resource.to_string();
            let mut depth = 0;
            for ch in format!(".{path}").chars() {
                match ch {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ if depth == 0 => field.push(ch),
                    _ => {}
                }
            }
            fields.push(field);
        }
    }
    fields
}

#[test]
fn jsonpath_fields_are_named_as_kubectl_explain_names_them() {
    let code = r#"kubectl get llmd a -o jsonpath='{.status.variants[?(@.name=="blue")].sha256}{"\n"}'
kubectl get llm b -o jsonpath='{.status.resolved.sha256}'   # a comment
kubectl get secret s -o jsonpath='{.data.x}'"#;
    assert_eq!(
        jsonpath_fields(code),
        ["llmd.status.variants.sha256", "llm.status.resolved.sha256"]
    );
}

/// `work` with a link to each top-level entry of the repository.
fn link_repository(work: &Path) {
    std::fs::create_dir(work).unwrap();
    for entry in std::fs::read_dir(repo_root()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), work.join(entry.file_name())).unwrap();
    }
}

/// Runs one block as written; panics with its output unless it exits 0 within the bound.
/// Returns what it printed (stdout, then stderr: kubectl says some results there).
fn run_block(s: &Snippet, kubeconfig: &Path, work: &Path) -> String {
    let out = Command::new("timeout")
        .arg(BLOCK_TIMEOUT_SECONDS.to_string())
        .args(["bash", "-euo", "pipefail", "-c", &s.code])
        .env("KUBECONFIG", kubeconfig)
        .current_dir(work)
        .output()
        .expect("timeout and bash run");
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: {:?} (124: still running after {BLOCK_TIMEOUT_SECONDS}s):\n{}\n--- output:\n{printed}",
        s.place,
        out.status,
        s.code
    );
    printed
}

/// A kwok node with GPUs to spare, deleted when dropped: the migration runs two variants of
/// two replicas, one GPU each, side by side, and the suite's `gpu-node` has one.
struct GpuNode<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl<'a> GpuNode<'a> {
    fn add(c: &'a Cluster) -> Self {
        let name = format!("e2e-docs-gpu-{}", std::process::id());
        c.apply_yaml(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  \
             annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}}\n  \
             labels: {{kubernetes.io/hostname: {name}, kubernetes.io/os: linux, type: kwok}}\n\
             status:\n  allocatable: {{cpu: \"32\", memory: 128Gi, pods: \"110\", nvidia.com/gpu: \"8\"}}\n  \
             capacity: {{cpu: \"32\", memory: 128Gi, pods: \"110\", nvidia.com/gpu: \"8\"}}\n"
        ));
        let node = GpuNode { cluster: c, name };
        // As tests/cluster/up.sh does: the API server taints a new node not-ready and the
        // node-lifecycle controller that would lift it is off.
        let taint = "node.kubernetes.io/not-ready:NoSchedule-";
        c.kubectl(&["taint", "nodes", &node.name, taint]);
        let ready = c.kubectl(&[
            "wait",
            "--for=condition=Ready",
            &format!("node/{}", node.name),
            "--timeout=60s",
        ]);
        assert!(
            ready.ok,
            "node {} never became Ready: this test needs kwok (tests/cluster/up.sh)\n{}",
            node.name, ready.stderr
        );
        node
    }
}

impl Drop for GpuNode<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "node", &self.name, "--wait=false"]);
    }
}
