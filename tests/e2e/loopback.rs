//! Real data-plane processes on loopback for the suite: `llamafleet-agent serve` with the test
//! model, `llamafleet-agent route` fed from the routing ConfigMap (the test copies the
//! ConfigMap into the router's file as the kubelet would, pointing variant URLs at loopback
//! instead of cluster DNS), an upstream that fails every request, and plain HTTP/1.1 calls.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use llamafleet_crds::routing::RoutingTable;

use crate::{Cluster, target_binary};

/// Longest wait for a process to answer `/readyz` (loading the model on a busy machine).
const READY_SECONDS: u64 = 120;

/// The test model, or `None` after printing that the test is skipped; under CI a missing
/// model is a failure.
pub fn test_model() -> Option<PathBuf> {
    match std::env::var_os("LLAMAFLEET_TEST_MODEL") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "LLAMAFLEET_TEST_MODEL is not set: run scripts/fetch-test-model.sh"
            );
            eprintln!("skipped: LLAMAFLEET_TEST_MODEL is not set");
            None
        }
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child process killed on drop (also when a test fails).
pub struct Process {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_agent(args: &[&str], port: u16) -> Process {
    let bin = target_binary("llamafleet-agent", "cargo build -p llamafleet-agent");
    let child = Command::new(&bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let process = Process {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(READY_SECONDS);
    while Instant::now() < deadline {
        if get(&process.base, "/readyz").0 == 200 {
            return process;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{args:?} never became ready on port {port}");
}

/// `llamafleet-agent serve` with the test model, one thread, two slots.
pub fn serve(model: &Path, cache: &Path) -> Process {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (model, cache) = (model.to_str().unwrap_or(""), cache.to_str().unwrap_or(""));
    spawn_agent(
        &[
            "serve",
            "--model",
            model,
            "--cache-dir",
            cache,
            "--listen",
            &listen,
            "--ctx",
            "256",
            "--parallel",
            "2",
            "--threads",
            "1",
            "--gpu-layers",
            "0",
        ],
        port,
    )
}

/// `llamafleet-agent route` on `port` reading `config` (which must already hold a table).
pub fn route(config: &Path, port: u16) -> Process {
    let listen = format!("127.0.0.1:{port}");
    spawn_agent(
        &[
            "route",
            "--config",
            config.to_str().unwrap_or(""),
            "--listen",
            &listen,
        ],
        port,
    )
}

/// Copies the `<llmd>-routing` ConfigMap into `file` whenever it changes, with each variant's
/// URL replaced by `upstreams[name]`; stops when dropped.
pub struct ConfigMapSync {
    stop: Arc<AtomicBool>,
}

impl Drop for ConfigMapSync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One copy of the ConfigMap into `file`; true when it was written (it changed).
fn copy_table(
    cluster: &Cluster,
    ns: &str,
    config_map: &str,
    upstreams: &BTreeMap<String, String>,
    file: &Path,
) -> bool {
    let out = cluster.kubectl(&[
        "get",
        "-n",
        ns,
        &format!("configmap/{config_map}"),
        "-o",
        "jsonpath={.data.routing\\.yaml}",
    ]);
    let Ok(mut table) = serde_norway::from_str::<RoutingTable>(&out.stdout) else {
        return false;
    };
    for v in &mut table.variants {
        if let Some(url) = upstreams.get(&v.name) {
            v.url.clone_from(url);
            // The loopback process is the variant's one replica, not its pods' addresses.
            v.replicas = None;
        }
    }
    let yaml = serde_norway::to_string(&table).expect("table serialises");
    if std::fs::read_to_string(file).is_ok_and(|old| old == yaml) {
        return false;
    }
    // Write beside and rename, as the kubelet swaps ConfigMap volumes atomically.
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, yaml).expect("table written");
    std::fs::rename(&tmp, file).expect("table renamed");
    true
}

impl ConfigMapSync {
    /// Copies once (waiting up to 60 s for the ConfigMap), then keeps copying every 300 ms.
    pub fn start(
        cluster: &Cluster,
        ns: &str,
        config_map: &str,
        upstreams: BTreeMap<String, String>,
        file: &Path,
    ) -> ConfigMapSync {
        cluster.wait_until("routing ConfigMap", 60, || {
            copy_table(cluster, ns, config_map, &upstreams, file)
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (c, ns, name, file) = (
            Cluster::with_kubeconfig(cluster.kubeconfig().to_path_buf()),
            ns.to_string(),
            config_map.to_string(),
            file.to_path_buf(),
        );
        let flag = stop.clone();
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                copy_table(&c, &ns, &name, &upstreams, &file);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        ConfigMapSync { stop }
    }
}

/// An upstream answering every request with a 500 in OpenAI's error shape; its base URL.
pub fn failing_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let body = r#"{"error":{"message":"deliberately failing","type":"server_error"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// One HTTP/1.1 request (`Connection: close`): status and body; status 0 when the
/// connection failed.
pub fn request(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(host) else {
        return (0, String::new());
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let sent = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut text = String::new();
    if sent.is_err() || stream.read_to_string(&mut text).is_err() {
        return (0, text);
    }
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// `GET base+path`.
pub fn get(base: &str, path: &str) -> (u16, String) {
    request(base, "GET", path, "")
}

/// Clients calling `base` in a loop until dropped: short completions at temperature 0.
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Load {
    /// `clients` threads, each sending one request after another.
    pub fn start(base: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        for _ in 0..clients {
            let (flag, base) = (stop.clone(), base.to_string());
            let (answered, failed) = (answered.clone(), failed.clone());
            std::thread::spawn(move || {
                let body =
                    r#"{"prompt":"The capital of France is","max_tokens":2,"temperature":0}"#;
                while !flag.load(Ordering::Relaxed) {
                    let (status, _) = request(&base, "POST", "/v1/completions", body);
                    let counter = if status == 200 { &answered } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if status == 0 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
        }
        Load {
            stop,
            answered,
            failed,
        }
    }

    /// Requests answered with 200 so far, and the others (errors, refused connections).
    pub fn counts(&self) -> (u64, u64) {
        (
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
