//! Where each variant's replicas are: the table's fixed URLs, or the ready endpoints of the
//! variant Service's EndpointSlices, watched (one watch per Service, started and stopped as
//! tables come and go). A watch that fails keeps the last list it had and tries again with
//! back-off; the router's ServiceAccount may list and watch EndpointSlices in the namespace
//! (the operator's `build/router_access.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use llamafleet_crds::routing::{RoutedReplicas, RoutingTable};
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;

use super::replicas::Replicas;

/// Name of the EndpointSlice port the agent listens on.
const PORT_NAME: &str = "http";
/// How long a watch without a Kubernetes client waits before it tries to make one again.
const CLIENT_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// The running EndpointSlice watches, by variant.
#[derive(Default, Clone)]
pub struct Discovery {
    watches: Arc<Mutex<HashMap<String, Watch>>>,
    kube: Arc<OnceCell<Client>>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("watches", &self.watches)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Watch {
    namespace: String,
    service: String,
    task: AbortHandle,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// Brings the replicas in line with `table`: fixed lists are set, watches started for new
    /// Services and stopped for Services no longer listed.
    pub fn sync(&self, table: &RoutingTable, replicas: &Replicas) {
        let mut watches = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        let mut wanted = HashMap::new();
        for variant in &table.variants {
            match &variant.replicas {
                Some(RoutedReplicas::Urls(urls)) => replicas.set(&variant.name, urls),
                Some(RoutedReplicas::EndpointSlices { namespace, service }) => {
                    replicas.of(&variant.name);
                    wanted.insert(variant.name.clone(), (namespace, service));
                }
                None => replicas.set(&variant.name, &[]),
            }
        }
        watches.retain(|name, w| {
            wanted
                .get(name)
                .is_some_and(|(ns, svc)| **ns == w.namespace && **svc == w.service)
        });
        for (name, (namespace, service)) in wanted {
            if watches.contains_key(&name) {
                continue;
            }
            let task = tokio::spawn(watch(
                self.kube.clone(),
                namespace.clone(),
                service.clone(),
                name.clone(),
                replicas.clone(),
            ))
            .abort_handle();
            let watch = Watch {
                namespace: namespace.clone(),
                service: service.clone(),
                task,
            };
            watches.insert(name, watch);
        }
        replicas.retain(|name| table.variants.iter().any(|v| v.name == name));
    }
}

async fn watch(
    kube: Arc<OnceCell<Client>>,
    namespace: String,
    service: String,
    variant: String,
    replicas: Replicas,
) {
    // Without a client the variant's Service chooses its replicas; try again now and then.
    let client = loop {
        match kube.get_or_try_init(Client::try_default).await {
            Ok(client) => break client.clone(),
            Err(error) => {
                tracing::warn!(%variant, %error, "no Kubernetes client: the variant's Service chooses its replicas");
                tokio::time::sleep(CLIENT_RETRY).await;
            }
        }
    };
    let api: Api<EndpointSlice> = Api::namespaced(client, &namespace);
    let selector = format!("kubernetes.io/service-name={service}");
    let (reader, writer) = reflector::store();
    let events = reflector(
        writer,
        watcher(api, watcher::Config::default().labels(&selector)).default_backoff(),
    );
    let mut events = std::pin::pin!(events);
    let mut last = None;
    while let Some(event) = events.next().await {
        if let Err(error) = event {
            tracing::warn!(%variant, %service, %error, "watching EndpointSlices");
            continue;
        }
        let urls = ready_urls(reader.state().iter().map(|s| s.as_ref()));
        if last.as_ref() != Some(&urls) {
            tracing::info!(%variant, replicas = urls.len(), "replicas changed");
            replicas.set_if_known(&variant, &urls);
            last = Some(urls);
        }
    }
}

/// Base URLs of the ready endpoints of `slices`, sorted.
pub fn ready_urls<'a>(slices: impl Iterator<Item = &'a EndpointSlice>) -> Vec<String> {
    let mut urls = Vec::new();
    for slice in slices {
        let ports = slice.ports.as_deref().unwrap_or_default();
        let port = ports
            .iter()
            .find(|p| p.name.as_deref() == Some(PORT_NAME))
            .or(ports.first())
            .and_then(|p| p.port);
        let Some(port) = port else { continue };
        let v6 = slice.address_type == "IPv6";
        for endpoint in &slice.endpoints {
            // An endpoint without conditions is ready (the API's own reading).
            let ready = endpoint.conditions.as_ref().and_then(|c| c.ready);
            if ready == Some(false) {
                continue;
            }
            if let Some(address) = endpoint.addresses.first() {
                urls.push(if v6 {
                    format!("http://[{address}]:{port}")
                } else {
                    format!("http://{address}:{port}")
                });
            }
        }
    }
    urls.sort();
    urls.dedup();
    urls
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn slice(yaml: &str) -> EndpointSlice {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn only_ready_endpoints_on_the_agent_port_are_replicas() {
        let slices = [
            slice(
                r#"
metadata: {name: a}
addressType: IPv4
ports: [{name: metrics, port: 9090}, {name: http, port: 8080}]
endpoints:
  - {addresses: ["198.18.0.5"], conditions: {ready: true}}
  - {addresses: ["198.18.0.6"], conditions: {ready: false, terminating: true}}
  - {addresses: ["198.18.0.4"]}
"#,
            ),
            slice(
                r#"
metadata: {name: b}
addressType: IPv6
ports: [{port: 8080}]
endpoints: [{addresses: ["fd00::7"], conditions: {ready: true}}]
"#,
            ),
            slice(
                "{metadata: {name: c}, addressType: IPv4, endpoints: [{addresses: [\"198.18.0.9\"]}]}",
            ),
        ];
        assert_eq!(
            ready_urls(slices.iter()),
            [
                "http://198.18.0.4:8080",
                "http://198.18.0.5:8080",
                "http://[fd00::7]:8080"
            ]
        );
    }
}
