//! Reading the routers' figures: `GET /router/stats` on every router replica of a deployment
//! (found by the router pods' labels), or on the URLs given with `--router-url`.
//!
//! A replica that does not answer in time is left out, as is one still on another routing
//! revision ([`RouterStats::merge`]); the analysis waits when nothing is left.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client};
use llamafleet_crds::routing::{RouterStats, STATS_PATH};

use crate::error::DereferenceError;
use crate::names;
use crate::pod_url;

/// Longest wait for one router replica: a stuck pod must not hold up the reconcile.
pub const ROUTER_STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Where router figures come from.
#[derive(Debug, Clone)]
pub struct RouterStatsClient {
    client: reqwest::Client,
    urls: Vec<String>,
}

impl RouterStatsClient {
    /// Asks the router pods of each deployment; with `urls`, asks those base URLs instead
    /// (development outside the cluster, tests), for every deployment.
    pub fn new(urls: Vec<String>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(ROUTER_STATS_TIMEOUT)
            .build()?;
        let urls = urls
            .into_iter()
            .map(|u| u.trim_end_matches('/').to_string())
            .collect();
        Ok(Self { client, urls })
    }

    /// Base URLs of the router replicas of `llmd`: the override, else each running router
    /// pod's IP with its `http` container port.
    pub async fn replicas(
        &self,
        kube: &Client,
        namespace: &str,
        llmd: &str,
    ) -> Result<Vec<String>, DereferenceError> {
        if !self.urls.is_empty() {
            return Ok(self.urls.clone());
        }
        let selector = names::router_selector(llmd)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(kube.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| DereferenceError::List {
                kind: "Pod",
                source,
            })?;
        Ok(list.items.iter().filter_map(pod_url::of).collect())
    }

    /// Every replica's figures that could be had, one GET each, concurrently.
    pub async fn fetch(&self, urls: &[String]) -> Vec<RouterStats> {
        let gets = urls.iter().map(|base| self.fetch_one(base));
        futures_util::future::join_all(gets)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn fetch_one(&self, base: &str) -> Option<RouterStats> {
        let url = format!("{base}{STATS_PATH}");
        let response = match self.client.get(&url).send().await {
            Ok(r) => r.error_for_status(),
            Err(e) => Err(e),
        };
        let body = match response {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let parsed = body
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
        match parsed {
            Ok(stats) => Some(stats),
            Err(error) => {
                tracing::debug!(%url, %error, "router stats unavailable");
                None
            }
        }
    }
}
