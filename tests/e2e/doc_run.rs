//! How `docs.rs` runs one doc's cluster blocks: the namespace, kubeconfig and working
//! directory each doc gets, the run of a block, the checks on what it prints, and what the
//! blocks install (llamafleet into `llamafleet-system`, a kwok node with GPUs to spare).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use llamafleet_e2e::block_run::{path_with, run_block};
use llamafleet_e2e::snippets::Snippet;
use llamafleet_e2e::{Cluster, repo_root};

/// How long a read-only block is re-run until it shows what the doc says (the operator
/// reconciles within seconds of a change).
const EVENTUALLY_SECONDS: u64 = 60;

/// What a block must print: the block is the one containing `block`; `eventually` re-runs it
/// (read-only blocks only) until it does.
pub struct Shows {
    block: &'static str,
    texts: &'static [&'static str],
    eventually: bool,
}

pub const fn shows(block: &'static str, texts: &'static [&'static str]) -> Shows {
    Shows {
        block,
        texts,
        eventually: false,
    }
}

pub const fn eventually(block: &'static str, texts: &'static [&'static str]) -> Shows {
    Shows {
        block,
        texts,
        eventually: true,
    }
}

/// Runs `snippets` in order in a fresh namespace and working directory, checking `expected`,
/// each install block on a cluster cleared of the last install; returns the directory whose
/// `work/` the blocks ran in (and wrote to).
pub fn run_doc(
    c: &Cluster,
    install: &Install,
    helm: &Path,
    ns: &str,
    snippets: &[Snippet],
    expected: &[Shows],
) -> tempfile::TempDir {
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
    let path = path_with(helm.parent().expect("helm's directory"));

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
        let started = Instant::now();
        if installs_llamafleet(&s.code) {
            install.remove();
            eprintln!(
                "{}: earlier install removed in {:.1?}",
                s.place,
                started.elapsed()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(EVENTUALLY_SECONDS);
        loop {
            let out = run_block(s, &kubeconfig, &work, &path);
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
        eprintln!("{}: {:.1?}", s.place, started.elapsed());
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

/// `work` with a link to each top-level entry of the repository, and a copy of `manifests/`
/// (docs/install.md regenerates `manifests/install.yaml`).
fn link_repository(work: &Path) {
    std::fs::create_dir(work).unwrap();
    for entry in std::fs::read_dir(repo_root()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "manifests" {
            let copied = Command::new("cp")
                .arg("-r")
                .arg(entry.path())
                .arg(work.join("manifests"))
                .status()
                .unwrap();
            assert!(copied.success());
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), work.join(entry.file_name())).unwrap();
    }
}

/// A block that installs llamafleet (the release `llamafleet` in `llamafleet-system`).
fn installs_llamafleet(code: &str) -> bool {
    code.contains("helm install llamafleet ") || code.contains("-f manifests/install.yaml")
}

/// What the docs install into `llamafleet-system`, removed before the next install block and
/// when the test ends (also when it fails).
pub struct Install<'a> {
    pub cluster: &'a Cluster,
}

impl Install<'_> {
    /// Removes the release as `helm uninstall` would (its objects and Helm's record), and
    /// what `manifests/install.yaml` created (the same objects, with the Namespace), keeping
    /// the CRDs: every doc's objects live on them, and Helm never deletes CRDs either.
    pub fn remove(&self) {
        let c = self.cluster;
        c.kubectl_ok(&[
            "delete",
            "clusterrolebinding,clusterrole",
            "-l",
            "app.kubernetes.io/instance=llamafleet",
            "--ignore-not-found",
        ]);
        // The operator pod first, at once: kwok would honour its 30 s grace period, which
        // the namespace's deletion waits for.
        c.kubectl_ok(&[
            "delete",
            "deployments,replicasets,pods",
            "-n",
            "llamafleet-system",
            "--all",
            "--grace-period=0",
            "--force",
        ]);
        c.kubectl_ok(&[
            "delete",
            "namespace",
            "llamafleet-system",
            "--ignore-not-found",
            "--timeout=120s",
        ]);
        c.hand_crds_back();
    }
}

impl Drop for Install<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Best effort, without a second panic.
            let _ = self.cluster.kubectl(&[
                "delete",
                "clusterrolebinding,clusterrole",
                "-l",
                "app.kubernetes.io/instance=llamafleet",
                "--ignore-not-found",
                "--wait=false",
            ]);
            let _ = self.cluster.kubectl(&[
                "delete",
                "namespace",
                "llamafleet-system",
                "--ignore-not-found",
                "--wait=false",
            ]);
        } else {
            self.remove();
        }
    }
}

/// A kwok node with GPUs to spare, deleted when dropped: the migration runs two variants of
/// two replicas, one GPU each, side by side, and the suite's `gpu-node` has one.
pub struct GpuNode<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl<'a> GpuNode<'a> {
    pub fn add(c: &'a Cluster) -> Self {
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
