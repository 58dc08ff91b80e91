//! What serving agents report on `GET /status`, and how the operator asks for it.
//!
//! The operator asks a variant's running pods directly (a Service routes to Ready pods only,
//! and a replica that downloads, or failed, is not Ready): its not-Ready ones, up to
//! [`MAX_PODS_ASKED`], or one when all are Ready, and keeps the most telling answer: a
//! failure, else a download, else any. Without pod access it asks the variant's Service. An agent that does
//! not answer in time leaves the variant without figures, and nothing fails.

use std::time::Duration;

use futures_util::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use llamafleet_crds::{Acceleration, DownloadProgress};
use serde::{Deserialize, Serialize};

use crate::{names, pod_url};

/// Longest wait for one agent: status must not hold up a reconcile behind a stuck pod.
pub const AGENT_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Path of the endpoint on the agent's `http` port.
pub const AGENT_STATUS_PATH: &str = "/status";
/// Pods asked per variant and reconcile: enough to find the one starting or failed among
/// the first replicas, bounded for variants with many.
pub const MAX_PODS_ASKED: usize = 8;
/// Phase of an agent whose startup failed (`error` says why).
pub const PHASE_FAILED: &str = "failed";

/// JSON body of `GET /status` on `llamafleet-agent serve` (snake_case keys), for example
/// `{"phase":"downloading","download":{"bytes":1048576,"total":253000000},
///   "sha256":"a5fd…","device":"NVIDIA H100","layers_offloaded":18,"layers_total":18,
///   "slots_busy":1,"slots_total":4}`.
/// Every field but `phase` may be absent; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Where the agent stands: `downloading`, `verifying`, `loading`, `ready` or `failed`.
    pub phase: String,
    /// Bytes of the model file on the node, while downloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<AgentDownload>,
    /// sha256 of the file being served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `cpu`, or the GPU's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Layers llama.cpp put on the GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_offloaded: Option<u32>,
    /// Layers of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_total: Option<u32>,
    /// Slots decoding now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots_busy: Option<u32>,
    /// Slots of this replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots_total: Option<u32>,
    /// Why the startup failed (phase `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Download progress in `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentDownload {
    /// Bytes fetched so far.
    pub bytes: u64,
    /// File size, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Phase the agent reports while it fetches the model.
pub const PHASE_DOWNLOADING: &str = "downloading";

impl AgentStatus {
    /// Download figures for the LlmDeployment status; only while downloading, so status goes
    /// quiet once the file is in place.
    pub fn download_progress(&self) -> Option<DownloadProgress> {
        let d = self
            .download
            .as_ref()
            .filter(|_| self.phase == PHASE_DOWNLOADING)?;
        Some(DownloadProgress {
            bytes: i64::try_from(d.bytes).unwrap_or(i64::MAX),
            total: d.total.and_then(|t| i64::try_from(t).ok()),
        })
    }

    /// Why the agent's startup failed, when it did.
    pub fn failure(&self) -> Option<&str> {
        (self.phase == PHASE_FAILED).then(|| self.error.as_deref().unwrap_or("no reason given"))
    }

    /// The answer that says most about a variant among its replicas': a failure, else a
    /// download in progress, else the first.
    pub fn most_telling(answers: Vec<AgentStatus>) -> Option<AgentStatus> {
        let rank = |s: &AgentStatus| match s.phase.as_str() {
            PHASE_FAILED => 0,
            PHASE_DOWNLOADING => 1,
            _ => 2,
        };
        answers
            .into_iter()
            .enumerate()
            .min_by_key(|(i, s)| (rank(s), *i))
            .map(|(_, s)| s)
    }

    /// Device and offload for the LlmDeployment status, once the agent knows them.
    pub fn acceleration(&self) -> Option<Acceleration> {
        let device = self.device.clone()?;
        Some(Acceleration {
            device: Some(device),
            layers_offloaded: self.layers_offloaded.and_then(|n| i32::try_from(n).ok()),
            layers_total: self.layers_total.and_then(|n| i32::try_from(n).ok()),
        })
    }
}

/// The agents of one variant.
#[derive(Debug, Clone, Copy)]
pub struct AgentTarget<'a> {
    /// Namespace of the LlmDeployment.
    pub namespace: &'a str,
    /// The LlmDeployment.
    pub llmd: &'a str,
    /// The variant.
    pub variant: &'a str,
}

impl AgentTarget<'_> {
    /// The variant's Service URL.
    pub fn service_url(&self) -> String {
        names::variant_url(self.llmd, self.variant, self.namespace)
    }
}

/// Source of agent status (HTTP in the cluster, canned in tests).
pub trait AgentProbe: Send + Sync {
    /// Status of the variant's agents, or `None` when none can be had.
    fn status<'a>(&'a self, target: AgentTarget<'a>) -> BoxFuture<'a, Option<AgentStatus>>;

    /// Whether it can ever report something: a reconcile polls agents for download progress
    /// only when so, and otherwise waits for watch events.
    fn reports(&self) -> bool {
        true
    }
}

/// Asks agents over HTTP: the variant's pods when it can list them, else its Service.
#[derive(Clone)]
pub struct HttpAgentProbe {
    client: reqwest::Client,
    kube: Option<kube::Client>,
}

impl std::fmt::Debug for HttpAgentProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAgentProbe")
            .field("pods", &self.kube.is_some())
            .finish()
    }
}

impl HttpAgentProbe {
    /// A probe with the operator's short timeout; with `kube`, it asks pods directly.
    pub fn new(kube: Option<kube::Client>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(AGENT_STATUS_TIMEOUT)
            .build()?;
        Ok(Self { client, kube })
    }

    /// Base URLs of the variant's running pods, not-Ready first; `None` when they cannot be
    /// listed.
    async fn pod_urls(&self, target: AgentTarget<'_>) -> Option<Vec<String>> {
        let kube = self.kube.clone()?;
        let selector = names::variant_selector(target.llmd, target.variant)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(kube, target.namespace);
        let list = match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list,
            Err(error) => {
                tracing::debug!(%error, "cannot list a variant's pods; asking its Service");
                return None;
            }
        };
        // Not-Ready replicas have the news (a download, a failure); when every replica is
        // Ready, one answer is enough (device and offload are the same on each).
        let (waiting, ready): (Vec<Pod>, Vec<Pod>) =
            list.items.into_iter().partition(|p| !is_ready(p));
        let (asked, limit) = if waiting.is_empty() {
            (ready, 1)
        } else {
            (waiting, MAX_PODS_ASKED)
        };
        Some(asked.iter().filter_map(pod_url::of).take(limit).collect())
    }

    async fn ask(&self, base_url: &str) -> Option<AgentStatus> {
        let url = format!("{base_url}{AGENT_STATUS_PATH}");
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?;
        let body = response.bytes().await.ok()?;
        match serde_json::from_slice(&body) {
            Ok(status) => Some(status),
            Err(e) => {
                tracing::debug!(%url, error = %e, "agent status is not the expected JSON");
                None
            }
        }
    }
}

impl AgentProbe for HttpAgentProbe {
    fn status<'a>(&'a self, target: AgentTarget<'a>) -> BoxFuture<'a, Option<AgentStatus>> {
        Box::pin(async move {
            let urls = match self.pod_urls(target).await {
                Some(urls) if !urls.is_empty() => urls,
                _ => vec![target.service_url()],
            };
            let asks = urls.iter().map(|url| self.ask(url));
            let answers = futures_util::future::join_all(asks).await;
            AgentStatus::most_telling(answers.into_iter().flatten().collect())
        })
    }
}

/// Whether a pod's `Ready` condition is true.
fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Reports nothing (agents unreachable, or tests that do not care).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAgentProbe;

impl AgentProbe for NoAgentProbe {
    fn status<'a>(&'a self, _target: AgentTarget<'a>) -> BoxFuture<'a, Option<AgentStatus>> {
        Box::pin(async { None })
    }

    fn reports(&self) -> bool {
        false
    }
}
