//! What serving agents report on `GET /status`, and how the operator asks for it.
//!
//! The operator asks each variant's Service (so one replica answers per poll, whichever the
//! Service picks); an agent that does not answer in time leaves the variant without download
//! and acceleration figures, and nothing fails.

use std::time::Duration;

use futures_util::future::BoxFuture;
use llamafleet_crds::{Acceleration, DownloadProgress};
use serde::{Deserialize, Serialize};

/// Longest wait for one agent: status must not hold up a reconcile behind a stuck pod.
pub const AGENT_STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Path of the endpoint on the agent's `http` port.
pub const AGENT_STATUS_PATH: &str = "/status";

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

/// Source of agent status (HTTP in the cluster, canned in tests).
pub trait AgentProbe: Send + Sync {
    /// Status of the agent behind `base_url`, or `None` when it cannot be had.
    fn status<'a>(&'a self, base_url: &'a str) -> BoxFuture<'a, Option<AgentStatus>>;

    /// Whether it can ever report something: a reconcile polls agents for download progress
    /// only when so, and otherwise waits for watch events.
    fn reports(&self) -> bool {
        true
    }
}

/// Asks agents over HTTP.
#[derive(Debug, Clone)]
pub struct HttpAgentProbe {
    client: reqwest::Client,
}

impl HttpAgentProbe {
    /// A probe with the operator's short timeout.
    pub fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(AGENT_STATUS_TIMEOUT)
            .build()?;
        Ok(Self { client })
    }
}

impl AgentProbe for HttpAgentProbe {
    fn status<'a>(&'a self, base_url: &'a str) -> BoxFuture<'a, Option<AgentStatus>> {
        Box::pin(async move {
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
        })
    }
}

/// Reports nothing (agents unreachable, or tests that do not care).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAgentProbe;

impl AgentProbe for NoAgentProbe {
    fn status<'a>(&'a self, _base_url: &'a str) -> BoxFuture<'a, Option<AgentStatus>> {
        Box::pin(async { None })
    }

    fn reports(&self) -> bool {
        false
    }
}
