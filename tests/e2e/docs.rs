//! The docs' commands, run as written against a real control plane with the operator (kwok
//! runs the pods): every block marked `<!-- checked on cluster: ... -->` in `README.md` and
//! `docs/*.md` (see `snippets.rs`), doc by doc in [`DOCS`] order and in document order within
//! each, `sh` with `bash -euo pipefail`, `yaml` with `kubectl apply -f -` (as a reader saves
//! and applies it). Each doc gets its own namespace, set as the context namespace of a copy of
//! the kubeconfig (so the commands name none, as in the docs), and its own working directory
//! holding links to the repository's top-level entries and a copy of `manifests/` (so
//! `manifests/...` resolves while what the docs write, such as `qa.key` or a regenerated
//! `manifests/install.yaml`, stays out of the checkout); `helm` (`charts/fetch-helm.sh`) is
//! first on `PATH`. Each block must exit 0 and print what the doc says it shows.
//!
//! The install blocks (`helm install llamafleet ...`, `kubectl apply ... manifests/install.yaml`)
//! install the chart for real into `llamafleet-system`; each starts from a cluster where only
//! the CRDs are left of an earlier one, as for a reader who follows one install path, and the
//! test removes the last. The chart's operator pod runs nothing on kwok's nodes (kwok only
//! reports it Running), so the operator that reconciles is the suite's own process of the same
//! binary. The migration asks for nodes with room for both models (one GPU per replica), so
//! the test adds a kwok node with GPUs to spare for its run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod doc_run;

use std::time::Instant;

use doc_run::{GpuNode, Install, Shows, eventually, run_doc, shows};
use llamafleet_e2e::snippets::{Runner, Snippet, checked_snippets, doc_files, runs};
use llamafleet_e2e::{cluster, helm, repo_root};

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

/// What a fresh install from `manifests/install.yaml` shows (README.md and docs/install.md).
const INSTALL_YAML: Shows = shows(
    "-f manifests/install.yaml",
    &[
        "namespace/llamafleet-system serverside-applied",
        "customresourcedefinition.apiextensions.k8s.io/llmdeployments.llamafleet.dev serverside-applied",
        "clusterrole.rbac.authorization.k8s.io/llamafleet serverside-applied",
        "deployment.apps/llamafleet serverside-applied",
    ],
);

/// What the README's install and troubleshooting blocks show on the quickstart.
const README: &[Shows] = &[
    shows(
        "kubectl get deploy -n llamafleet-system",
        &["STATUS: deployed", "\nllamafleet "],
    ),
    INSTALL_YAML,
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

/// What `docs/install.md` shows: the chart, the quickstart Ready, the PVC example accepted.
const INSTALL: &[Shows] = &[
    shows(
        "kubectl wait llmd/chat",
        &[
            "STATUS: deployed",
            "llmdeployment.llamafleet.dev/chat created",
            "llmdeployment.llamafleet.dev/chat condition met",
        ],
    ),
    shows(
        "kind: PersistentVolumeClaim",
        &[
            "persistentvolumeclaim/llamafleet-models created",
            "llmdeployment.llamafleet.dev/assistant created",
        ],
    ),
    INSTALL_YAML,
];

/// What `docs/images.md` shows: the release runs the tags it was given.
const IMAGES: &[Shows] = &[
    shows("--set agent.image.tag", &["STATUS: deployed"]),
    shows(
        "kubectl set env",
        &[
            "ghcr.io/llamafleet/operator:0.1.0",
            "LLAMAFLEET_AGENT_IMAGE=ghcr.io/llamafleet/agent:0.1.0",
            "LLAMAFLEET_AGENT_IMAGE_CUDA=ghcr.io/llamafleet/agent:0.1.0-cuda13",
            "LLAMAFLEET_AGENT_IMAGE_VULKAN=ghcr.io/llamafleet/agent:0.1.0-vulkan",
        ],
    ),
];

/// What `docs/metrics.md` shows (its block needs helm and promtool, no cluster: it runs here
/// with the chart's other commands).
const METRICS: &[Shows] = &[shows("promtool check rules", &["SUCCESS"])];

/// A doc with checked cluster blocks: the namespace prefix it runs in, what it shows.
struct Doc {
    file: &'static str,
    namespace: &'static str,
    shows: &'static [Shows],
}

/// Every doc with checked cluster blocks, in the order they run (a test below holds the list
/// complete).
const DOCS: &[Doc] = &[
    Doc {
        file: "docs/migration.md",
        namespace: "e2e-doc-migration",
        shows: MIGRATION,
    },
    Doc {
        file: "README.md",
        namespace: "e2e-doc-readme",
        shows: README,
    },
    Doc {
        file: "docs/install.md",
        namespace: "e2e-doc-install",
        shows: INSTALL,
    },
    Doc {
        file: "docs/images.md",
        namespace: "e2e-doc-images",
        shows: IMAGES,
    },
    Doc {
        file: "docs/metrics.md",
        namespace: "e2e-doc-metrics",
        shows: METRICS,
    },
];

#[test]
fn doc_commands_run_as_written_against_a_real_cluster() {
    let docs: Vec<Vec<Snippet>> = DOCS.iter().map(|d| doc_snippets(d.file)).collect();
    let Some(c) = cluster() else { return };
    let Some(helm) = helm() else { return };
    c.install_crds();
    // `kubectl explain` reads the OpenAPI document, published a moment after the CRDs.
    c.kubectl_eventually(&["explain", "llmd.spec.rollout"]);
    let _operator = c.start_operator();
    let _gpus = GpuNode::add(&c);
    let install = Install { cluster: &c };

    for (doc, snippets) in DOCS.iter().zip(&docs) {
        let started = Instant::now();
        let dir = run_doc(&c, &install, &helm, doc.namespace, snippets, doc.shows);
        eprintln!("{}: {:.0?}", doc.file, started.elapsed());
        let work = dir.path().join("work");
        match doc.file {
            "docs/migration.md" => {
                let key = std::fs::read_to_string(work.join("qa.key")).unwrap();
                assert!(
                    key.trim().len() == 48 && key.trim().bytes().all(|b| b.is_ascii_hexdigit()),
                    "qa.key holds {key:?}, not the qa-team key"
                );
            }
            "docs/install.md" => {
                let rendered =
                    std::fs::read_to_string(work.join("manifests/install.yaml")).unwrap();
                let committed =
                    std::fs::read_to_string(repo_root().join("manifests/install.yaml")).unwrap();
                assert!(
                    rendered == committed,
                    "docs/install.md's render-install.sh does not reproduce manifests/install.yaml"
                );
            }
            _ => {}
        }
    }
}

/// Every doc whose source marks cluster blocks is in [`DOCS`], so none goes unrun.
#[test]
fn every_doc_with_cluster_blocks_is_run() {
    let root = repo_root();
    let with_blocks: Vec<String> = doc_files(&root)
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            checked_snippets(file, &text)
                .iter()
                .any(|s| s.runner == Runner::Cluster)
        })
        .collect();
    let mut listed: Vec<&str> = DOCS.iter().map(|d| d.file).collect();
    let mut found: Vec<&str> = with_blocks.iter().map(String::as_str).collect();
    listed.sort_unstable();
    found.sort_unstable();
    assert_eq!(listed, found);
}

/// Blocks marked `checked on real pods` are run by the real-pod test, which runs those of
/// docs/migration.md (with green at 10 %): one in another file would be run by nothing.
#[test]
fn real_pod_blocks_are_all_in_the_migration_guide() {
    let root = repo_root();
    let elsewhere: Vec<String> = doc_files(&root)
        .into_iter()
        .filter(|file| file != "docs/migration.md")
        .flat_map(|file| {
            let text = std::fs::read_to_string(root.join(&file)).unwrap();
            checked_snippets(&file, &text)
                .into_iter()
                .filter(|s| s.runner == Runner::RealPods)
                .map(|s| s.place)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(elsewhere.is_empty(), "run by no test: {elsewhere:?}");
}

/// The blocks of `file` the cluster runs.
fn doc_snippets(file: &str) -> Vec<Snippet> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    let cluster: Vec<Snippet> = checked_snippets(file, &text)
        .into_iter()
        .filter(|s| s.runner == Runner::Cluster)
        .collect();
    assert!(!cluster.is_empty(), "{file} has no checked cluster blocks");
    for s in &cluster {
        assert!(
            runs(Runner::Cluster, &s.lang),
            "{}: no runner for {}",
            s.place,
            s.lang
        );
    }
    cluster
}
