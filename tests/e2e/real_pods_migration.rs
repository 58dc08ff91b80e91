//! The migration of `docs/migration.md` stage 1 on real pods: the five files of
//! `manifests/examples/migration/` applied in order, as a GitOps tool applies the commits,
//! with API keys from the Secret the guide creates. Each step is answered by the variants its
//! weights name (counted by the router's `x-llamafleet-variant` header over many clients), a
//! client keeps its variant when green's weight grows (its key is sticky), a request pinned to
//! green by the header is answered by green, the guide's blocks that need answering pods (the
//! pinned call, `compare` through a port-forward) run as written, and requests sent all
//! through the migration, blue's removal included, never fail.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use llamafleet_e2e::block_run::{path_with, run_block};
use llamafleet_e2e::real_node::{ClientPod, time_until};
use llamafleet_e2e::snippets::{Runner, Snippet, checked_snippets};
use llamafleet_e2e::{Cluster, figure, repo_root, target_binary, yaml_documents};
use serde_json::{Value, json};

use super::{READY_SECONDS, ready_replicas};

/// Clients with their own API key: enough that 10 % of them are a few.
const CLIENTS: usize = 30;
/// The steps, with the weights each leaves in effect and the variants it keeps running.
const STEPS: [(&str, &str, &[&str]); 5] = [
    ("01-blue-only.yaml", "blue=100", &["blue"]),
    ("02-green-10.yaml", "blue=90,green=10", &["blue", "green"]),
    ("03-green-50.yaml", "blue=50,green=50", &["blue", "green"]),
    ("04-green-100.yaml", "blue=0,green=100", &["blue", "green"]),
    ("05-blue-removed.yaml", "green=100", &["green"]),
];

/// A migration file as the 2-core test node can run it: the models from the server in the
/// cluster (plain http allowed), and each variant on the CPU with one replica, one slot of
/// 1024 tokens and a quarter of a core (the examples plan two GPU replicas with 8192 tokens
/// in four slots). Names, weights, presets, keys, tiers and rollout stay as written.
fn runnable(file: &str, ns: &str, model_url: &str) -> String {
    let path = repo_root().join("manifests/examples/migration").join(file);
    let docs = yaml_documents(&std::fs::read_to_string(path).unwrap());
    let docs: Vec<Value> = docs
        .into_iter()
        .map(|mut doc| {
            doc["metadata"]["namespace"] = json!(ns);
            match doc["kind"].as_str() {
                Some("LlmModel") => {
                    doc["spec"]["source"] = json!({"url": model_url, "allowInsecureHttp": true});
                    doc["spec"]["contextLength"] = json!(1024);
                }
                Some("LlmDeployment") => {
                    let spec = &mut doc["spec"];
                    spec["replicas"] = json!(1);
                    spec["serving"] = json!({"contextLength": 1024, "parallel": 1});
                    spec["resources"] = json!({
                        "requests": {"cpu": "250m", "memory": "1Gi"},
                        "limits": {"memory": "1Gi"},
                    });
                }
                other => panic!("{file}: unexpected {other:?}"),
            }
            doc
        })
        .collect();
    docs.iter()
        .map(|d| serde_norway::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The client whose key the guide keeps in `qa.key`.
const QA_TEAM: usize = 0;

/// The Secret of docs/migration.md with [`CLIENTS`] clients of the enterprise tier, the first
/// named `qa-team` as in the guide.
fn api_keys(c: &Cluster, ns: &str) -> Vec<String> {
    let keys: Vec<String> = (0..CLIENTS).map(|i| format!("key-{i:02}-e2e")).collect();
    let mut args = vec![
        "create".to_string(),
        "secret".into(),
        "generic".into(),
        "assistant-api-keys".into(),
        "-n".into(),
        ns.into(),
    ];
    for (i, key) in keys.iter().enumerate() {
        let client = if i == QA_TEAM {
            "qa-team".to_string()
        } else {
            format!("client-{i:02}")
        };
        args.push(format!("--from-literal={client}=enterprise:{key}"));
    }
    c.kubectl_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    keys
}

/// One request per client through the router, each with its key: the variant that answered
/// each client. Every answer must be a 200.
fn variants_by_client(client: &ClientPod<'_>, router: &str, keys: &[String]) -> Vec<String> {
    let body = r#"{"model":"assistant-support","messages":[{"role":"user","content":"Привет"}],"max_tokens":2,"temperature":0}"#;
    let script = format!(
        "for k in {}; do curl -sS --max-time 120 -o /dev/null \
         -w 'answer %{{http_code}} %header{{x-llamafleet-variant}}\\n' \
         -H \"authorization: Bearer $k\" -H 'content-type: application/json' \
         -d '{body}' {router}/v1/chat/completions; done",
        keys.join(" ")
    );
    let (ok, out) = client.sh(&script);
    assert!(ok, "the requests ran: {out}");
    // kubectl's own complaints (its exec stream) may come between the lines.
    let lines: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("answer "))
        .collect();
    assert_eq!(lines.len(), keys.len(), "{out}");
    lines
        .iter()
        .map(|l| {
            let (code, variant) = l.split_once(' ').unwrap_or((l, ""));
            assert_eq!(code, "200", "every request answered: {out}");
            variant.trim().to_string()
        })
        .collect()
}

/// Whether every router replica serves `weights`: the operator's status changes at once, the
/// routers read the table from a ConfigMap volume, which the kubelet updates within a minute
/// or so; each replica names the weights it routes by in `/router/stats`.
fn routers_serve(c: &Cluster, client: &ClientPod<'_>, ns: &str, weights: &str) -> bool {
    let ips = c.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/instance=assistant,app.kubernetes.io/component=router",
        "--field-selector=status.phase=Running",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ]);
    let ips: Vec<&str> = ips.split_whitespace().collect();
    !ips.is_empty()
        && ips.iter().all(|ip| {
            let (ok, out) = client.sh(&format!(
                "curl -sS --max-time 5 http://{ip}:8080/router/stats"
            ));
            ok && out.lines().any(|l| {
                serde_json::from_str::<Value>(l).is_ok_and(|stats| stats["revision"] == weights)
            })
        })
}

/// docs/migration.md's way to try green whatever the weights: the `x-llamafleet-variant`
/// header pins it, for a client the weights send to blue.
fn green_answers_when_pinned(client: &ClientPod<'_>, router: &str, blue_key: &str) {
    let out = client.curl(&format!(
        "-D - -o /dev/null -H 'authorization: Bearer {blue_key}' -H 'x-llamafleet-variant: green' \
         -H 'content-type: application/json' \
         -d '{{\"model\":\"assistant-support\",\"messages\":[{{\"role\":\"user\",\"content\":\"Как сбросить пароль?\"}}],\"max_tokens\":4}}' \
         {router}/v1/chat/completions"
    ));
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("x-llamafleet-variant: green"),
        "{out}"
    );
}

/// docs/migration.md's blocks marked `checked on real pods`, as written and in order, as a
/// reader runs them with the guide's `qa.key` in the current directory: the pinned call and
/// `compare` through `kubectl port-forward` of the router Service (each block's forward is
/// stopped after it). `compare`'s report must have both variants answering every prompt.
fn the_guides_blocks_run_as_written(c: &Cluster, ns: &str, qa_key: &str) {
    let file = "docs/migration.md";
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    let blocks: Vec<Snippet> = checked_snippets(file, &text)
        .into_iter()
        .filter(|s| s.runner == Runner::RealPods)
        .collect();
    assert_eq!(blocks.len(), 2, "the pinned call and compare: {blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("qa.key"), format!("{qa_key}\n")).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(c.kubeconfig(), &kubeconfig).unwrap();
    Cluster::with_kubeconfig(kubeconfig.clone()).kubectl_ok(&[
        "config",
        "set-context",
        "--current",
        "--namespace",
        ns,
    ]);
    // `llamafleet-agent` is the build under test.
    let agent = target_binary("llamafleet-agent", "cargo build -p llamafleet-agent");
    let path = path_with(agent.parent().unwrap());
    for block in &blocks {
        let printed = run_block(block, &kubeconfig, dir.path(), &path);
        // The block's port-forward keeps running in the background, as in a reader's shell.
        let _ = Command::new("pkill")
            .args(["-f", "port-forward svc/assistant 8080:80"])
            .status();
        if block.code.contains("curl") {
            let answer: Value = serde_json::from_str(out_json(&printed))
                .unwrap_or_else(|e| panic!("{}: {e}: {printed}", block.place));
            assert!(answer["choices"][0]["message"].is_object(), "{printed}");
        }
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let summary = report["summary"].as_array().expect("summary");
    let names: Vec<&str> = summary
        .iter()
        .filter_map(|v| v["variant"].as_str())
        .collect();
    assert_eq!(names, ["blue", "green"], "{report:#}");
    for v in summary {
        assert_eq!(v["requests"], 3, "{v:#}");
        assert_eq!(v["errors"], 0, "{v:#}");
    }
    assert!(dir.path().join("report.md").exists());
}

/// The JSON document in a block's output (kubectl may have said something before it).
fn out_json(printed: &str) -> &str {
    printed
        .lines()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or(printed)
}

fn count(variants: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for v in variants {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    counts
}

/// Requests from `client` one after another until `stop`, rotating over the keys: the status
/// codes seen.
fn load_until(
    client: &ClientPod<'_>,
    router: &str,
    keys: &[String],
    stop: &AtomicBool,
) -> Vec<String> {
    let body =
        r#"{"model":"assistant","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}"#;
    let mut codes = Vec::new();
    for key in keys.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (_, out) = client.sh(&format!(
            "curl -sS --max-time 120 -o /dev/null -w 'code=%{{http_code}}' \
             -H 'authorization: Bearer {key}' -H 'content-type: application/json' \
             -d '{body}' {router}/v1/chat/completions"
        ));
        // Only curl's figure: kubectl may add its own complaints about the exec stream.
        let code = out
            .split_once("code=")
            .map_or(out.as_str(), |(_, c)| &c[..c.len().min(3)]);
        codes.push(code.to_string());
    }
    codes
}

/// Sets the flag when dropped: a failing assertion stops the load thread too (the scope waits
/// for it before the panic goes on).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The five steps in order, under load (see the module's doc).
pub fn blue_to_green_without_a_failed_request(
    c: &Cluster,
    client: &ClientPod<'_>,
    ns: &str,
    model_url: &str,
) {
    let keys = api_keys(c, ns);
    let router = format!("http://assistant.{ns}.svc.cluster.local");
    let stop = AtomicBool::new(false);
    let mut green_at = BTreeMap::new();
    let codes = std::thread::scope(|scope| {
        let stop_load = StopOnDrop(&stop);
        let mut load = None;
        for (i, (file, weights, running)) in STEPS.iter().enumerate() {
            c.apply_yaml(&runnable(file, ns, model_url));
            if *file == "05-blue-removed.yaml" {
                c.kubectl_ok(&["delete", "llm", "saiga-7b", "-n", ns]);
            }
            let took = time_until(&format!("{file}: {weights}, ready"), READY_SECONDS, || {
                c.jsonpath(ns, "llmd/assistant", "{.status.weights}") == *weights
                    && running
                        .iter()
                        .all(|v| ready_replicas(c, ns, &format!("deployment/assistant-{v}")) == "1")
                    && routers_serve(c, client, ns, weights)
            });
            figure(&format!(
                "migration {file}: {weights} in {:.1} s",
                took.as_secs_f64()
            ));
            if i == 0 {
                // From the first step on, one request after another, all the way through.
                load = Some(scope.spawn(|| load_until(client, &router, &keys, &stop)));
            }
            let answered = variants_by_client(client, &router, &keys);
            let counts = count(&answered);
            figure(&format!("migration {file}: answers by variant {counts:?}"));
            for v in counts.keys() {
                assert!(running.contains(v), "{file}: {v} answered: {counts:?}");
            }
            match *weights {
                "blue=100" => assert_eq!(counts.get("blue"), Some(&CLIENTS)),
                "blue=0,green=100" | "green=100" => assert_eq!(counts.get("green"), Some(&CLIENTS)),
                _ => assert!(
                    counts.len() == 2,
                    "{file}: both variants answer: {counts:?}"
                ),
            }
            if *file == "02-green-10.yaml" {
                let blue_client = answered.iter().position(|v| v == "blue").expect("blue");
                green_answers_when_pinned(client, &router, &keys[blue_client]);
                the_guides_blocks_run_as_written(c, ns, &keys[QA_TEAM]);
            }
            let green: Vec<usize> = (0..CLIENTS).filter(|&k| answered[k] == "green").collect();
            green_at.insert(*file, green);
        }
        // Raising green's weight moves clients only towards green.
        let at_10 = &green_at["02-green-10.yaml"];
        let at_50 = &green_at["03-green-50.yaml"];
        assert!(
            at_10.iter().all(|k| at_50.contains(k)),
            "a client on green at 10 % stays there at 50 %: {at_10:?} vs {at_50:?}"
        );
        drop(stop_load);
        load.expect("started").join().expect("the load thread")
    });
    let failed: Vec<&String> = codes.iter().filter(|c| *c != "200").collect();
    figure(&format!(
        "migration: {} requests during the five steps, {} failed",
        codes.len(),
        failed.len()
    ));
    assert!(!codes.is_empty());
    assert!(
        failed.is_empty(),
        "failed requests during the migration: {failed:?}"
    );
    c.wait_until("blue's Deployment garbage-collected", 120, || {
        !c.kubectl(&["get", "-n", ns, "deployment/assistant-blue"])
            .ok
    });
}
