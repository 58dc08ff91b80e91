//! The product on pods that really run (the test cluster's real node, tests/cluster/node.sh):
//! `helm install` of the chart with the images scripts/build-images.sh built, the operator as
//! a pod, then the quickstart as a user applies it — in a namespace that enforces Pod Security
//! `restricted` — with its model URL pointed at a server inside the cluster that serves the
//! test GGUF. The variant pod downloads, verifies, loads and turns Ready; a client pod calls
//! the router Service by its DNS name with both APIs, streaming and not; a second replica on
//! the same node finds the file in the node cache instead of downloading it again; a wrong
//! sha256 shows in the LlmDeployment's status and Events without a crash loop; the migration
//! of docs/migration.md (Saiga to Vistral, both played by the test model) moves traffic from
//! blue to green step by step without a failed request.
//!
//! One test function: the node has two cores, and the steps build on each other.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "real_pods_migration.rs"]
mod migration;
#[path = "../../operator/tests/source_server/mod.rs"]
mod source_server;

use llamafleet_e2e::loopback::test_model;
use llamafleet_e2e::real_node::{ClientPod, NODE_IP, has_real_node, time_until};
use llamafleet_e2e::{Cluster, cluster, figure, helm, repo_root, run_ok, snippets};
use source_server::SourceServer;

/// Loading the model on the 2-core node beside the suite, and a debug-profile agent.
const READY_SECONDS: u64 = 600;

/// The quickstart as a user writes it, with three changes a test cluster needs: the model URL
/// (no internet here: a server in the cluster), plain http allowed for it, and a CPU request
/// the 2-core node can grant.
fn quickstart(model_url: &str) -> String {
    let original =
        std::fs::read_to_string(repo_root().join("manifests/examples/quickstart.yaml")).unwrap();
    let url_line = original
        .lines()
        .find(|l| l.trim_start().starts_with("url: "))
        .expect("the quickstart names a url");
    let indent = &url_line[..url_line.len() - url_line.trim_start().len()];
    let replaced = original.replace(
        url_line,
        &format!("{indent}url: {model_url}\n{indent}allowInsecureHttp: true"),
    );
    assert!(replaced.contains("cpu: \"2\""), "quickstart's CPU request");
    replaced.replace("cpu: \"2\"", "cpu: 500m")
}

/// Replicas of `deployment` in `ns` that are Ready (empty while it does not exist yet).
fn ready_replicas(c: &Cluster, ns: &str, deployment: &str) -> String {
    let out = c.kubectl(&[
        "get",
        "-n",
        ns,
        deployment,
        "-o",
        "jsonpath={.status.readyReplicas}",
    ]);
    if out.ok { out.stdout } else { String::new() }
}

/// Downloads of the model file the source answered: GETs without a range or with an
/// open-ended one (a resumed download). The operator's reads of the GGUF header are bounded
/// ranges and do not count.
fn full_downloads(server: &SourceServer) -> usize {
    server
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path == "/plain/m.gguf")
        .filter(|s| s.range.as_deref().is_none_or(|r| r.ends_with('-')))
        .count()
}

fn chat_body(stream: bool) -> String {
    format!(
        r#"{{"model":"chat","messages":[{{"role":"user","content":"Name a color."}}],"max_tokens":8,"temperature":0,"stream":{stream}}}"#
    )
}

/// Both APIs through the router Service, by its DNS name, from a pod.
fn call_both_apis(client: &ClientPod<'_>, router: &str) {
    let json = "-H 'content-type: application/json'";
    let openai = client.curl(&format!(
        "-D - {json} -d '{}' {router}/v1/chat/completions",
        chat_body(false)
    ));
    assert!(openai.starts_with("HTTP/1.1 200"), "{openai}");
    assert!(
        openai
            .to_ascii_lowercase()
            .contains("x-llamafleet-variant: main"),
        "the router names the variant: {openai}"
    );
    assert!(openai.contains("\"choices\""), "{openai}");

    let streamed = client.curl(&format!(
        "-N {json} -d '{}' {router}/v1/chat/completions",
        chat_body(true)
    ));
    let events = streamed
        .lines()
        .filter(|l| l.starts_with("data: {"))
        .count();
    assert!(events >= 2, "several SSE chunks: {streamed}");
    assert!(streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");

    let ollama = client.curl(&format!(
        r#"{json} -d '{{"model":"chat","messages":[{{"role":"user","content":"Name a color."}}],"stream":false,"options":{{"num_predict":8,"temperature":0}}}}' {router}/api/chat"#
    ));
    let answer: serde_json::Value = serde_json::from_str(&ollama).expect("Ollama JSON");
    assert_eq!(answer["done"], true, "{ollama}");

    let lines = client.curl(&format!(
        r#"-N {json} -d '{{"model":"chat","prompt":"Name a color.","options":{{"num_predict":8,"temperature":0}}}}' {router}/api/generate"#
    ));
    let chunks: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    assert!(chunks.len() >= 2, "streamed NDJSON: {lines}");
    assert_eq!(chunks.last().unwrap()["done"], true, "{lines}");
}

#[test]
fn the_quickstart_runs_on_real_pods_under_pod_security_restricted() {
    let Some(c) = cluster() else { return };
    if !has_real_node(&c) {
        return;
    }
    let Some(helm) = helm() else { return };
    let Some(model) = test_model() else { return };

    // The cluster's Kubernetes binaries say which release they are, as a release build does
    // (tests/cluster/build.sh sets the version at link time).
    let kubelet = c.kubectl_ok(&[
        "get",
        "nodes",
        "-l",
        "llamafleet.dev/node=real",
        "-o",
        "jsonpath={.items[0].status.nodeInfo.kubeletVersion}",
    ]);
    let server = c.kubectl_ok(&["version", "-o", "json"]);
    let server: serde_json::Value = serde_json::from_str(&server).unwrap();
    assert_eq!(kubelet.trim(), "v1.34.4");
    assert_eq!(
        server["serverVersion"]["gitVersion"], "v1.34.4",
        "{server:#}"
    );

    // The chart's release namespace runs the node-cache DaemonSet (hostPath): `privileged`.
    // The application namespace enforces `restricted`, as many clusters do.
    let system = c.real_node_namespace("e2e-real-system", "privileged");
    let app = c.real_node_namespace("e2e-real-app", "restricted");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(SourceServer::start_on(
        NODE_IP,
        std::fs::read(&model).unwrap(),
    ));
    c.expose_node_port(&system.name, "models", server.hub.port());
    let model_url = format!(
        "http://models.{}.svc.cluster.local/plain/m.gguf",
        system.name
    );

    // The node cache of this test only, not the machine's /var/lib/llamafleet.
    let cache = tempfile::Builder::new()
        .prefix("llamafleet-e2e-cache-")
        .tempdir_in("/tmp")
        .unwrap();
    let cache_path = cache.path().join("models");
    let kubeconfig = c.kubeconfig().to_str().unwrap().to_string();
    let chart = repo_root().join("charts/llamafleet");
    let _release = Release {
        helm: helm.clone(),
        namespace: system.name.clone(),
        kubeconfig: kubeconfig.clone(),
    };
    run_ok(
        &helm,
        &[
            "install",
            "llamafleet",
            chart.to_str().unwrap(),
            "--namespace",
            &system.name,
            "--kubeconfig",
            &kubeconfig,
            "--set",
            &format!("agent.cachePath={}", cache_path.display()),
            // The namespace's node selector (real_node_namespace) puts every pod of the
            // release on the real node, so the DaemonSet need not try the kwok nodes.
            "--set",
            "nodeCache.nodeSelector.llamafleet\\.dev/node=real",
            "--wait",
            "--timeout",
            "300s",
        ],
    );
    c.hand_crds_back();

    let in_app = format!("metadata:\n  namespace: {}\n", app.name);
    c.apply_yaml(&quickstart(&model_url).replace("metadata:\n", &in_app));
    let variant = "deployment/chat-main";
    let to_ready = time_until("the variant pod Ready", READY_SECONDS, || {
        ready_replicas(&c, &app.name, variant) == "1"
    });
    figure(&format!(
        "kubectl apply of the quickstart to a Ready real pod: {:.1} s",
        to_ready.as_secs_f64()
    ));
    c.wait_until("the router Ready", 300, || {
        !ready_replicas(&c, &app.name, "deployment/chat-router").is_empty()
    });
    assert_eq!(
        full_downloads(&server),
        1,
        "one download: {:?}",
        server.seen()
    );

    let client = ClientPod::start(&c, &app.name);
    let router = format!("http://chat.{}.svc.cluster.local", app.name);
    call_both_apis(&client, &router);

    // A second replica on the same node: the file is in the node cache already.
    c.kubectl_ok(&[
        "patch",
        "llmd",
        "chat",
        "-n",
        &app.name,
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    time_until("two Ready replicas", READY_SECONDS, || {
        ready_replicas(&c, &app.name, variant) == "2"
    });
    assert_eq!(
        full_downloads(&server),
        1,
        "two replicas on one node download the file once: {:?}",
        server.seen()
    );
    let files: Vec<_> = walk(&cache_path)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    assert_eq!(files.len(), 1, "one file in the node cache: {files:?}");
    routers_pick_replicas_from_endpoint_slices(&c, &client, &router);

    stream_survives_its_pod_being_deleted(&c, &client, &router, &app.name);
    an_idle_variant_sleeps_and_a_request_wakes_it(&c, &client, &router, &app.name);
    a_wrong_sha256_is_reported_without_a_crash_loop(&c, &app.name, &model_url, &server);
    // Room on the node for the migration's two variants.
    c.kubectl_ok(&["delete", "llmd", "broken", "-n", &app.name, "--wait=true"]);
    migration::blue_to_green_without_a_failed_request(&c, &client, &app.name, &model_url);
    released_volumes_are_removed_as_the_docs_say(&c, &app.name);
}

/// The namespace goes: its node-cache claim with it, and the volume turns `Released` (the
/// operator never deletes volumes). docs/install.md's command, run as written, removes it.
fn released_volumes_are_removed_as_the_docs_say(c: &Cluster, ns: &str) {
    let volume = format!("persistentvolume/llamafleet-cache-{ns}");
    c.kubectl_ok(&["delete", "namespace", ns, "--wait=true", "--timeout=180s"]);
    c.wait_until_seen("the node-cache volume Released", 120, || {
        let phase = c.kubectl(&["get", &volume, "-o", "jsonpath={.status.phase}"]);
        if phase.stdout == "Released" {
            return Ok(());
        }
        let yaml = c.kubectl(&["get", &volume, "-o", "yaml"]);
        Err(format!("{}{}", yaml.stdout, yaml.stderr))
    });
    let docs = std::fs::read_to_string(repo_root().join("docs/install.md")).unwrap();
    let block = snippets::fenced_blocks("docs/install.md", &docs)
        .into_iter()
        .find(|b| b.code.contains("xargs -r kubectl delete pv"))
        .expect("install.md says how to remove Released volumes");
    let out = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block.code])
        .env("KUBECONFIG", c.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}{}",
        block.place,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !c.kubectl(&["get", &volume]).ok,
        "{volume} is still there after {}",
        block.place
    );
}

/// Both variant replicas are known to the routers, from the variant Service's EndpointSlices
/// (watched with the routers' own ServiceAccount, under `restricted`), and a request is
/// answered by a replica the router chose, not by the Service.
fn routers_pick_replicas_from_endpoint_slices(c: &Cluster, client: &ClientPod<'_>, router: &str) {
    c.wait_until("a router knows both replicas", 60, || {
        client
            .curl(&format!("{router}/metrics"))
            .contains("llamafleet_router_replicas{variant=\"main\"} 2")
    });
    let json = "-H 'content-type: application/json'";
    for _ in 0..4 {
        let answer = client.curl(&format!(
            "-s -o /dev/null -w '%{{http_code}}' {json} -d '{}' {router}/v1/chat/completions",
            chat_body(false)
        ));
        assert_eq!(answer.trim(), "200");
    }
    // Two router replicas: each request and each scrape lands on either.
    c.wait_until("a router chose a replica itself", 30, || {
        client.curl(&format!("{router}/metrics")).lines().any(|l| {
            l.starts_with("llamafleet_router_replica_choices_total{")
                && !l.contains("choice=\"service\"")
                && !l.ends_with(" 0")
        })
    });
}

/// A wrong sha256 in the LlmModel: the agent downloads the file, refuses it, and stays up
/// saying why instead of exiting (a restart would download it again, forever); the
/// LlmDeployment says it in its `Degraded` condition (reason `AgentFailed`) and an Event,
/// read from the not-Ready pod itself (its Service would not route to it).
fn a_wrong_sha256_is_reported_without_a_crash_loop(
    c: &Cluster,
    ns: &str,
    model_url: &str,
    server: &SourceServer,
) {
    // Room on the 2-core node for the broken deployment's pods.
    c.kubectl_ok(&["delete", "llmd", "chat", "-n", ns, "--wait=true"]);
    let right = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
    // Letters in it: YAML would read 64 zeros as a number.
    let wrong = "deadbeef".repeat(8);
    let broken = quickstart(model_url)
        .replace(right, &wrong)
        .replace("gemma3-270m", "broken-model")
        .replace("name: chat", "name: broken");
    assert!(broken.contains(&wrong), "the quickstart pins the sha256");
    let downloads_before = full_downloads(server);
    c.apply_yaml(&broken.replace("metadata:\n", &format!("metadata:\n  namespace: {ns}\n")));
    let degraded = |field: &str| {
        c.jsonpath(
            ns,
            "llmd/broken",
            &format!("{{.status.conditions[?(@.type==\"Degraded\")].{field}}}"),
        )
    };
    let to_reported = time_until("Degraded with reason AgentFailed", READY_SECONDS, || {
        degraded("reason") == "AgentFailed"
    });
    figure(&format!(
        "wrong sha256 to Degraded/AgentFailed: {:.1} s",
        to_reported.as_secs_f64()
    ));
    let message = degraded("message");
    assert!(
        message.starts_with("variant main: sha256 mismatch"),
        "{message}"
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "reason=AgentFailed,involvedObject.name=broken",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("sha256 mismatch"), "events: {events:?}");
    // Past the 60 s a failed agent lingers before exiting for a failure that may heal: still
    // the same container, and the file was downloaded once.
    std::thread::sleep(std::time::Duration::from_secs(70));
    let selector = "llamafleet.dev/variant=main,app.kubernetes.io/instance=broken";
    let restarts = c.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        selector,
        "-o",
        "jsonpath={.items[*].status.containerStatuses[*].restartCount}",
    ]);
    assert_eq!(restarts.trim(), "0", "the agent restarted");
    assert_eq!(
        full_downloads(server) - downloads_before,
        1,
        "one download of the wrong file: {:?}",
        server.seen()
    );
    assert_eq!(degraded("reason"), "AgentFailed", "the report stays");
}

/// Scale to zero: with `minReplicas: 0` and a short `idleAfter`, the variant goes to 0
/// replicas once the routers saw no request for that long (status `idleSince`, an `Idle`
/// Event); a request then is held by the router, which scales the Deployment up through the
/// scale subresource with its own least-privilege ServiceAccount, and answered — no failed
/// request. Prints the wake time and its parts.
fn an_idle_variant_sleeps_and_a_request_wakes_it(
    c: &Cluster,
    client: &ClientPod<'_>,
    router: &str,
    ns: &str,
) {
    c.kubectl_ok(&[
        "patch",
        "llmd",
        "chat",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":null,"autoscaling":{"minReplicas":0,"maxReplicas":2,"idleAfter":"10s"}}}"#,
    ]);
    // The routers' Role gains the scale rule (their pods, with their ServiceAccount already,
    // do not change); every replica's figures count.
    c.kubectl_ok(&[
        "rollout",
        "status",
        "-n",
        ns,
        "deployment/chat-router",
        "--timeout=300s",
    ]);
    let asleep = time_until("the variant scaled to zero", 300, || {
        c.jsonpath(ns, "deployment/chat-main", "{.spec.replicas}") == "0"
    });
    figure(&format!(
        "idleAfter 10s: scaled to zero {:.0} s after the router rollout",
        asleep.as_secs_f64()
    ));
    let since = c.jsonpath(ns, "llmd/chat", "{.status.variants[0].idleSince}");
    assert!(!since.is_empty(), "status says since when it sleeps");
    let events = c.kubectl_ok(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]);
    assert!(
        events.contains("had no request for idleAfter"),
        "an Idle Event: {events}"
    );
    time_until("the variant's pods gone", 300, || {
        variant_pods(c, ns, "name").trim().is_empty()
    });

    // The first request wakes it and is answered, slowly.
    let asked = std::time::SystemTime::now();
    let answer = client.curl(&format!(
        "-w '\nwake_total_seconds=%{{time_total}}\n' -H 'content-type: application/json' -d '{}' {router}/v1/chat/completions",
        chat_body(false)
    ));
    assert!(
        answer.contains("\"choices\""),
        "held and answered: {answer}"
    );
    let total = answer
        .lines()
        .find_map(|l| l.strip_prefix("wake_total_seconds="))
        .unwrap_or("?")
        .to_string();
    assert_eq!(
        c.jsonpath(ns, "deployment/chat-main", "{.spec.replicas}"),
        "1",
        "the router scaled the variant to one replica"
    );
    c.wait_until("the status awake again", 120, || {
        c.jsonpath(ns, "llmd/chat", "{.status.variants[0].idleSince}")
            .is_empty()
    });
    print_wake_breakdown(c, client, ns, asked, &total);
}

/// `kubectl get pods -o OUTPUT` of the variant `main`.
fn variant_pods(c: &Cluster, ns: &str, output: &str) -> String {
    let selector = "llamafleet.dev/variant=main";
    c.kubectl_ok(&["get", "pods", "-n", ns, "-l", selector, "-o", output])
}

/// The wake's parts from the new pod's timestamps (whole seconds, as the API server keeps
/// them) and the agent's own model load time.
fn print_wake_breakdown(
    c: &Cluster,
    client: &ClientPod<'_>,
    ns: &str,
    asked: std::time::SystemTime,
    total: &str,
) {
    let pods: serde_json::Value = serde_json::from_str(&variant_pods(c, ns, "json")).unwrap();
    let pod = &pods["items"][0];
    // The API server keeps whole seconds: the request's time is cut to its second too, so an
    // event in the same second reads +0, not -0.4.
    let asked = asked
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .floor();
    let at = |text: &serde_json::Value| -> f64 {
        let t: k8s_openapi::jiff::Timestamp = text.as_str().unwrap_or_default().parse().unwrap();
        t.as_second() as f64 - asked
    };
    let condition = |kind: &str| {
        pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .map_or(f64::NAN, |c| at(&c["lastTransitionTime"]))
    };
    let created = at(&pod["metadata"]["creationTimestamp"]);
    let scheduled = condition("PodScheduled");
    let started = at(&pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]);
    let ready = condition("Ready");
    let status = client.curl(&format!("http://chat-main.{ns}.svc:8080/status"));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    figure(&format!(
        "wake (cached model): request to answer {total} s; after the \
         request (whole seconds): pod created +{created:.0} s, scheduled +{scheduled:.0} s, \
         container started +{started:.0} s, Ready +{ready:.0} s; the agent's phases (s): {}",
        status["phase_seconds"]
    ));
}

/// A stream whose serving pod is deleted in the middle ends cleanly: the agent drains it
/// within the grace period (complete, `[DONE]`), or ends it with an error event — never a
/// connection that hangs or breaks. Both replicas are deleted, so whichever serves the stream
/// is among them.
fn stream_survives_its_pod_being_deleted(
    c: &Cluster,
    client: &ClientPod<'_>,
    router: &str,
    ns: &str,
) {
    let body = r#"{"model":"chat","messages":[{"role":"user","content":"Tell a long story."}],"max_tokens":300,"temperature":0,"stream":true}"#;
    let (ok, out) = client.sh(&format!("printf '%s' '{body}' > /tmp/body.json"));
    assert!(ok, "{out}");
    // In its own session, so it outlives this exec.
    let (ok, out) = client.sh(&format!(
        "setsid sh -c 'curl -sS -N --max-time 240 -H content-type:application/json \
           -d @/tmp/body.json {router}/v1/chat/completions > /tmp/stream.txt 2>&1; \
           echo curl exit $? > /tmp/stream.done' > /dev/null 2>&1 &"
    ));
    assert!(ok, "the stream started: {out}");
    // Deleted once the first tokens arrived: the stream is running.
    time_until("the first streamed chunk", 120, || {
        client.sh("grep -q 'data: {' /tmp/stream.txt").0
    });
    c.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        ns,
        "-l",
        "llamafleet.dev/variant=main",
        "--wait=false",
    ]);
    time_until("the stream to end", 300, || {
        client.sh("test -s /tmp/stream.done").0
    });
    let (_, done) = client.sh("cat /tmp/stream.done");
    let (_, stream) = client.sh("cat /tmp/stream.txt");
    assert_eq!(
        done.trim(),
        "curl exit 0",
        "the connection ended cleanly: {stream}"
    );
    let last = stream.trim_end().lines().last().unwrap_or_default();
    assert!(
        last == "data: [DONE]" || last.contains("\"error\""),
        "complete or a proper error event, not a cut stream: {stream}"
    );
}

/// The chart's release, uninstalled on drop (its cluster-scoped objects outlive the
/// namespace).
struct Release {
    helm: std::path::PathBuf,
    namespace: String,
    kubeconfig: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.helm)
            .args(["uninstall", "llamafleet", "--namespace", &self.namespace])
            .args([
                "--kubeconfig",
                &self.kubeconfig,
                "--wait",
                "--timeout",
                "120s",
            ])
            .output();
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
