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
