//! Leader election with two operator processes on a real API server (Lease in a test
//! namespace): only the Lease holder reconciles; a leader killed outright (no hand-back) is
//! replaced within the lease duration (twice, the second time in the middle of a batch of new
//! LlmDeployments, which still all converge with exactly one set of children each); a leader
//! stopped with SIGTERM releases the Lease on its way out.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use llamafleet_e2e::{Cluster, LoggedOperator, cluster, minimal_deployment, repo_root};

/// Long enough for a cold API server under a loaded 2-core CI machine; converging takes ~2 s.
const CONVERGE_SECONDS: u64 = 90;
/// The operator's lease duration (operator/src/run.rs LEASE_DURATION_SECONDS).
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// Polling of the Lease here and by the waiting replica adds up to this on top.
const HANDOVER_SLACK: Duration = Duration::from_secs(5);
/// LlmDeployments applied while the leader changes.
const BATCH: usize = 10;
/// A reconcile that wrote something logs this (operator/src/deployment.rs).
const RECONCILED: &str = "children updated";

fn holder(c: &Cluster, ns: &str) -> String {
    c.kubectl(&[
        "get",
        "lease",
        "llamafleet-operator",
        "-n",
        ns,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
    .stdout
}

fn start(
    c: &Cluster,
    lease_ns: &str,
    identity: &str,
    dir: &std::path::Path,
    run: u32,
) -> LoggedOperator {
    let log = dir.join(format!("{identity}-{run}.log"));
    c.spawn_operator(
        &["--lease-namespace", lease_ns, "--identity", identity],
        &log,
    )
}

/// Waits until `identity` holds the Lease; returns how long that took.
fn wait_for_holder(c: &Cluster, ns: &str, identity: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if holder(c, ns) == identity {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{identity} did not get the Lease within {limit:?} (holder: {:?})",
        holder(c, ns)
    );
}

fn count(c: &Cluster, ns: &str, kind: &str) -> usize {
    c.kubectl_ok(&[
        "get",
        kind,
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/managed-by=llamafleet-operator",
        "-o",
        "name",
    ])
    .lines()
    .count()
}

#[test]
fn one_leader_reconciles_and_hands_over() {
    let Some(c) = cluster() else { return };
    c.install_crds();
    let lease = c.namespace("e2e-leader");
    let apps = c.namespace("e2e-leader-apps");
    let dir = tempfile::tempdir().unwrap();

    // op-a starts first and leads; op-b waits.
    let mut a = start(&c, &lease.name, "op-a", dir.path(), 1);
    wait_for_holder(
        &c,
        &lease.name,
        "op-a",
        Duration::from_secs(CONVERGE_SECONDS),
    );
    let mut b = start(&c, &lease.name, "op-b", dir.path(), 1);
    c.wait_until("op-b waiting for leadership", CONVERGE_SECONDS, || {
        b.logs().contains("waiting for leadership")
    });

    let quickstart = repo_root().join("manifests/examples/quickstart.yaml");
    c.kubectl_ok(&[
        "apply",
        "-n",
        &apps.name,
        "-f",
        quickstart.to_str().unwrap(),
    ]);
    let ready = "{.status.conditions[?(@.type==\"Ready\")].status}";
    c.wait_until("quickstart Ready", CONVERGE_SECONDS, || {
        c.jsonpath(&apps.name, "llmd/chat", ready) == "True"
    });
    assert!(
        a.logs().contains(RECONCILED),
        "the leader reconciled:\n{}",
        a.logs()
    );
    let follower = b.logs();
    assert!(
        !follower.contains(RECONCILED) && !follower.contains("\"leading\""),
        "the follower must not reconcile:\n{follower}"
    );

    // Killed outright, the leader cannot hand the Lease back: it expires.
    a.kill();
    let took = wait_for_holder(
        &c,
        &lease.name,
        "op-b",
        LEASE_DURATION + HANDOVER_SLACK + Duration::from_secs(10),
    );
    println!(
        "handover after SIGKILL of the leader: {:.1} s",
        took.as_secs_f64()
    );
    assert!(
        took <= LEASE_DURATION + HANDOVER_SLACK,
        "handover took {took:?}, more than the {LEASE_DURATION:?} lease (+{HANDOVER_SLACK:?})"
    );
    c.kubectl_ok(&[
        "patch",
        "-n",
        &apps.name,
        "llmd/chat",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ]);
    c.wait_until("the new leader applies a change", CONVERGE_SECONDS, || {
        c.jsonpath(&apps.name, "deployment/chat-main", "{.spec.replicas}") == "2"
    });
    assert!(b.logs().contains(RECONCILED), "{}", b.logs());

    // op-a comes back as the follower; a batch arrives and the leader is killed mid-way.
    let mut a2 = start(&c, &lease.name, "op-a", dir.path(), 2);
    c.wait_until("op-a back, waiting", CONVERGE_SECONDS, || {
        a2.logs().contains("waiting for leadership")
    });
    let batch: Vec<String> = (0..BATCH)
        .map(|i| minimal_deployment(&apps.name, &format!("batch-{i}")))
        .collect();
    c.apply_yaml(&batch.join("---\n"));
    c.wait_until("the batch under way", CONVERGE_SECONDS, || {
        c.kubectl(&["get", "-n", &apps.name, "deployment/batch-0-main"])
            .ok
    });
    b.kill();
    println!(
        "leader killed with {} of {} batch Deployments written",
        count(&c, &apps.name, "deployments") - 2,
        2 * BATCH
    );
    // One more arrives while nobody leads: only the next leader can build it.
    c.apply_yaml(&minimal_deployment(&apps.name, "late"));
    let took = wait_for_holder(
        &c,
        &lease.name,
        "op-a",
        LEASE_DURATION + HANDOVER_SLACK + Duration::from_secs(10),
    );
    println!("second handover after SIGKILL: {:.1} s", took.as_secs_f64());
    c.wait_until("every LlmDeployment Ready", CONVERGE_SECONDS, || {
        c.ready_deployments(&apps.name) == BATCH + 2
    });
    assert!(a2.logs().contains(RECONCILED), "{}", a2.logs());

    // Exactly one set of children per LlmDeployment: variant + router Deployments, variant +
    // stable Services, one routing ConfigMap, one PDB.
    let llmds = BATCH + 2;
    assert_eq!(count(&c, &apps.name, "deployments"), 2 * llmds);
    assert_eq!(count(&c, &apps.name, "services"), 2 * llmds);
    assert_eq!(count(&c, &apps.name, "configmaps"), llmds);
    assert_eq!(count(&c, &apps.name, "poddisruptionbudgets"), llmds);

    // SIGTERM: reconciles finish and the Lease is handed back (no holder) on the way out.
    assert!(a2.terminate(30), "op-a did not stop on SIGTERM");
    assert!(a2.logs().contains("\"leading\""));
    assert_eq!(holder(&c, &lease.name), "", "the Lease was not released");
}
