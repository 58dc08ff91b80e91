//! Helpers for the real-cluster suite: find the cluster, run kubectl, give each test its own
//! namespace. Every test calls [`cluster`] first and returns early (printing why) when no
//! cluster is configured, so `cargo test` on a laptop without one stays green and says so.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A cluster reachable through a kubeconfig.
pub struct Cluster {
    kubeconfig: PathBuf,
}

/// The cluster `KUBECONFIG` names, or `None` after printing that the suite is skipped.
/// Under CI (`CI` set) with `LLAMAFLEET_E2E=required`, a missing cluster is a failure, so the
/// suite can never pass by silently not running.
pub fn cluster() -> Option<Cluster> {
    match std::env::var_os("KUBECONFIG") {
        Some(k) if !k.is_empty() => Some(Cluster {
            kubeconfig: PathBuf::from(k),
        }),
        _ => {
            let required = std::env::var("LLAMAFLEET_E2E").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "LLAMAFLEET_E2E=required but KUBECONFIG is not set"
            );
            eprintln!("skipped: no KUBECONFIG (start one with tests/cluster/up.sh DIR)");
            None
        }
    }
}

/// Root of the repository.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What kubectl printed and whether it succeeded.
pub struct Kubectl {
    /// Exit status was zero.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Kubectl {
    fn from(o: Output) -> Self {
        Kubectl {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Cluster {
    /// Runs kubectl with this cluster's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Kubectl {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs")
            .into()
    }

    /// Runs kubectl and panics with its output if it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// Runs kubectl until it succeeds (up to 30 s), for what the API server publishes a moment
    /// after a change (discovery, the OpenAPI document behind `kubectl explain`).
    pub fn kubectl_eventually(&self, args: &[&str]) -> String {
        let mut last = self.kubectl(args);
        for _ in 0..60 {
            if last.ok {
                return last.stdout;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
            last = self.kubectl(args);
        }
        panic!(
            "kubectl {args:?} kept failing:\n{}{}",
            last.stdout, last.stderr
        );
    }

    /// Installs the CRDs from `crds/` and waits until kubectl can use their short names.
    pub fn install_crds(&self) {
        let crds = repo_root().join("crds");
        self.kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            crds.to_str().expect("utf-8 path"),
        ]);
        for crd in ["llmmodels.llamafleet.dev", "llmdeployments.llamafleet.dev"] {
            let target = format!("crd/{crd}");
            self.kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                &target,
                "--timeout=60s",
            ]);
        }
        // Established is not yet discoverable: wait until kubectl resolves the short names.
        self.kubectl_eventually(&["get", "llm,llmd", "-A"]);
    }

    /// JSONPath of one object, as kubectl prints it (empty when the field is absent).
    pub fn jsonpath(&self, ns: &str, object: &str, path: &str) -> String {
        let template = format!("jsonpath={path}");
        self.kubectl_ok(&["get", "-n", ns, object, "-o", &template])
    }

    /// Polls `check` every half second until it returns true, for up to `seconds`.
    pub fn wait_until(&self, what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if check() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!("timed out after {seconds}s waiting for {what}");
    }

    /// Starts the operator binary against this cluster; it is killed when the guard drops.
    pub fn start_operator(&self) -> Operator {
        let bin = operator_binary();
        let child = Command::new(&bin)
            .args([
                "--no-leader-election",
                "--no-agent-status",
                // The suite never contacts model sources (nothing beyond loopback).
                "--no-resolve",
                "--listen",
                "127.0.0.1:0",
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Operator { child }
    }

    /// A fresh namespace for one test, deleted when the guard drops.
    pub fn namespace(&self, prefix: &str) -> Namespace<'_> {
        let name = format!("{prefix}-{}", std::process::id());
        self.kubectl_ok(&["create", "namespace", &name]);
        Namespace {
            cluster: self,
            name,
        }
    }
}

/// The operator binary Cargo built beside this test (`target/<profile>/llamafleet-operator`),
/// or the one `LLAMAFLEET_OPERATOR_BIN` names.
fn operator_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("LLAMAFLEET_OPERATOR_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("llamafleet-operator");
    assert!(
        bin.exists(),
        "{} missing: cargo build -p llamafleet-operator",
        bin.display()
    );
    bin
}

/// A running operator process, killed on drop (also when a test fails).
pub struct Operator {
    child: std::process::Child,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A namespace that is deleted (without waiting) when dropped, also when a test fails.
pub struct Namespace<'a> {
    cluster: &'a Cluster,
    /// The namespace's name.
    pub name: String,
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}
