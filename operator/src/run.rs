//! Running the operator: CRD check, leader election, the two controllers, HTTP, shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use kube::api::ListParams;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, watcher};
use kube::{Api, Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use llamafleet_crds::{LlmDeployment, LlmModel};
use tokio::sync::watch;

use crate::agent_status::{AgentProbe, HttpAgentProbe, NoAgentProbe};
use crate::build::gpu::AgentImages;
use crate::context::{Context, ModelOptions, system_clock};
use crate::metrics::Metrics;
use crate::model::fetch::Fetcher;
use crate::rollout::RouterStatsClient;
use crate::stores::{self, Stores, Writers};
use crate::{api_client, deployment, http, model, names, trigger};

/// Command that installs the CRDs, printed when they are missing.
pub const INSTALL_CRDS: &str = "kubectl apply -f crds/";
/// Lease the replicas compete for.
pub const LEASE_NAME: &str = "llamafleet-operator";
/// A leader that stops renewing loses the lease after this long (seconds).
const LEASE_DURATION_SECONDS: u64 = 15;
/// The leader renews this long before expiry (seconds), tolerating that much clock skew.
const LEASE_GRACE_SECONDS: u64 = 5;

/// Operator settings from flags and environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Agent images of the pods, per backend.
    pub images: AgentImages,
    /// Address of `/metrics` and `/healthz`.
    pub listen: SocketAddr,
    /// Compete for the Lease before reconciling.
    pub leader_election: bool,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's name (pod name): lease identity and Event instance.
    pub identity: String,
    /// Poll agents' `/status` for download and acceleration figures. Off where the operator
    /// cannot reach pods (running outside the cluster, or against simulated nodes).
    pub agent_status: bool,
    /// Resolve model sources (HEAD + ranged GETs of the GGUF header). Off where the operator
    /// must not contact the sources (air-gapped clusters, tests): models are then `Ready`
    /// from their spec.
    pub resolve: bool,
    /// Memory of each GPU, for the layer split of `gpu.layers: auto`.
    pub gpu_memory_bytes: u64,
    /// Base URLs of routers whose `/router/stats` progressive rollouts read, instead of
    /// the router pods of each deployment (development outside the cluster, tests).
    pub router_urls: Vec<String>,
    /// Node directory of the node cache (the model cache when `spec.cache` names none).
    pub cache_path: String,
    /// Reconciles of one kind that run at once.
    pub concurrent_reconciles: u16,
}

/// Fails with the install command when a CRD is missing.
pub async fn check_crds(client: &Client) -> anyhow::Result<()> {
    let lp = ListParams::default().limit(1);
    for (kind, result) in [
        (
            "LlmDeployment",
            Api::<LlmDeployment>::all(client.clone())
                .list(&lp)
                .await
                .map(|_| ()),
        ),
        (
            "LlmModel",
            Api::<LlmModel>::all(client.clone())
                .list(&lp)
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                bail!("the {kind} CRD is not installed; install the CRDs with: {INSTALL_CRDS}")
            }
            Err(e) => return Err(e).context(format!("checking the {kind} CRD")),
        }
    }
    Ok(())
}

/// Deployments in `store` that use `model` (same namespace).
pub fn deployments_using(
    store: &Store<LlmDeployment>,
    model: &LlmModel,
) -> Vec<ObjectRef<LlmDeployment>> {
    let (ns, name) = (model.namespace(), model.name_any());
    store
        .state()
        .iter()
        .filter(|d| d.namespace() == ns && d.spec.variants.iter().any(|v| v.model == name))
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// The models a deployment's variants name.
pub fn models_of(llmd: &LlmDeployment) -> Vec<ObjectRef<LlmModel>> {
    let ns = llmd.namespace().unwrap_or_default();
    let mut names: Vec<&str> = llmd
        .spec
        .variants
        .iter()
        .map(|v| v.model.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|m| ObjectRef::new(m).within(&ns))
        .collect()
}

/// Runs until SIGTERM/Ctrl-C (or until leadership is lost).
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let client = api_client::connect(metrics.api_requests.clone())
        .await
        .context("connecting to the Kubernetes API")?;
    check_crds(&client).await?;
    let server = serve_http(settings.listen, metrics.clone());

    let mut leader = None;
    if settings.leader_election {
        let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
            .with_namespace(&settings.lease_namespace)
            .with_identity(&settings.identity)
            .with_duration(LEASE_DURATION_SECONDS)
            .with_grace(LEASE_GRACE_SECONDS)
            .build()
            .await
            .context("setting up leader election")?;
        let (mut rx, task) = manager.watch().await;
        tracing::info!(lease = LEASE_NAME, "waiting for leadership");
        while !*rx.borrow_and_update() {
            tokio::select! {
                changed = rx.changed() => changed.context("leader election stopped")?,
                () = shutdown_signal() => return Ok(()),
            }
        }
        tracing::info!("leading");
        leader = Some((rx, task));
    }

    let (stores, writers) = Stores::new();
    let agents: Arc<dyn AgentProbe> = if settings.agent_status {
        let probe = HttpAgentProbe::new(Some(client.clone()));
        Arc::new(probe.context("building the agent HTTP client")?)
    } else {
        Arc::new(NoAgentProbe)
    };
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            Some(settings.identity.clone()),
            metrics.clone(),
            settings.images.cpu.clone(),
            agents,
            system_clock(),
        )
        .with_agent_images(settings.images)
        .with_model_options(ModelOptions {
            fetcher: if settings.resolve {
                Some(Fetcher::new().context("building the source HTTP client")?)
            } else {
                None
            },
            gpu_memory_bytes: settings.gpu_memory_bytes,
        })
        .with_routers(
            RouterStatsClient::new(settings.router_urls)
                .context("building the router stats HTTP client")?,
        )
        .with_cache_path(settings.cache_path)
        .with_stores(stores),
    );
    let lost = lost_leadership(leader.as_ref().map(|(rx, _)| rx.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let config = controller::Config::default().concurrency(settings.concurrent_reconciles);
    let controllers = async {
        tokio::join!(
            run_deployments(client.clone(), ctx.clone(), writers, config.clone(), stop()),
            run_models(client.clone(), ctx.clone(), config, stop())
        )
    };
    tokio::pin!(controllers);
    let result = tokio::select! {
        _ = &mut controllers => Ok(()),
        () = shutdown_signal() => Ok(()),
        () = lost => Err(anyhow::anyhow!("lost the leader lease; exiting so no two replicas reconcile")),
    };
    // Graceful: let running reconciles finish, then hand the lease back.
    let _ = stop_tx.send(true);
    controllers.await;
    if let Some((rx, task)) = leader {
        drop(rx);
        let _ = task.await;
    }
    server.abort();
    result
}

async fn lost_leadership(rx: Option<watch::Receiver<bool>>) {
    match rx {
        Some(mut rx) => {
            let _ = rx.wait_for(|leading| !*leading).await;
        }
        None => std::future::pending().await,
    }
}

fn serve_http(addr: SocketAddr, metrics: Arc<Metrics>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                // With `--listen …:0` the port is only known here (the e2e suite reads it).
                let listen = listener.local_addr().map_or(addr, |a| a);
                tracing::info!(%listen, "serving /metrics and /healthz");
                if let Err(e) = axum::serve(listener, http::app(metrics)).await {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            }
            Err(e) => tracing::error!(error = %e, %addr, "cannot listen for /metrics"),
        }
    })
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn run_deployments(
    client: Client,
    ctx: Arc<Context>,
    writers: Writers,
    config: controller::Config,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<LlmDeployment> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    // Status writes bump resourceVersion but not generation: filtering on generation keeps
    // our own status patches (download progress) from triggering reconciles.
    let trigger = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(stores::trim)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let controller = Controller::for_stream(trigger, reader).with_config(config);
    let store = controller.store();
    let by_label = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::FIELD_MANAGER
    ));
    let managed = ctx.metrics.managed.with_label_values(&["LlmDeployment"]);
    let counted = store.clone();
    // Each watch feeds a store the reconciles read (crate::stores) and triggers the owner;
    // deletions trigger too, so a deleted child is made again.
    let models = watcher(
        Api::<LlmModel>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(stores::trim)
    .reflect(writers.models)
    .touched_objects();
    controller
        .owns_stream(children(&client, &by_label, writers.deployments))
        .owns_stream(children(&client, &by_label, writers.services))
        .owns_stream(children(&client, &by_label, writers.config_maps))
        .owns_stream(children(&client, &by_label, writers.pdbs))
        .owns_stream(children(&client, &by_label, writers.hpas))
        .owns_stream(children(&client, &by_label, writers.service_accounts))
        .owns_stream(children(&client, &by_label, writers.roles))
        .owns_stream(children(&client, &by_label, writers.role_bindings))
        .watches_stream(models, move |m| deployments_using(&store, &m))
        .graceful_shutdown_on(stop)
        .run(deployment::reconcile, deployment::error_policy, ctx.clone())
        .for_each(|result| {
            let held = counted.state();
            managed.set(i64::try_from(held.len()).unwrap_or(i64::MAX));
            // Deleted deployments get no reconcile; their children's deletion gets here.
            let live = held
                .iter()
                .map(|d| (d.namespace().unwrap_or_default(), d.name_any()));
            ctx.metrics.retain_deployments(&live.collect());
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
            std::future::ready(())
        })
        .await;
}

async fn run_models(
    client: Client,
    ctx: Arc<Context>,
    config: controller::Config,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let api: Api<LlmModel> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let trigger = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify(stores::trim)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let controller = Controller::for_stream(trigger, reader).with_config(config);
    let counted = controller.store();
    let managed = ctx.metrics.managed.with_label_values(&["LlmModel"]);
    controller
        // A model rolling a candidate out follows the rollouts of its deployments (their
        // status): each change of a deployment looks at the models it serves.
        .watches(
            Api::<LlmDeployment>::all(client),
            watcher::Config::default(),
            |d| models_of(&d),
        )
        .graceful_shutdown_on(stop)
        .run(model::reconcile, model::error_policy, ctx)
        .for_each(|result| {
            managed.set(i64::try_from(counted.state().len()).unwrap_or(i64::MAX));
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
            std::future::ready(())
        })
        .await;
}

/// The watch of one kind of children (those with the operator's managed-by label), feeding
/// `writer`'s store.
fn children<K>(
    client: &Client,
    config: &watcher::Config,
    writer: Writer<K>,
) -> impl futures_util::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + trigger::StatusRead
        + stores::Slim
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let events = watcher(Api::<K>::all(client.clone()), config.clone())
        .default_backoff()
        .modify(stores::keep_owned)
        .reflect(writer);
    trigger::content_changes(events).touched_objects()
}
