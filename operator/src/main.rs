//! `llamafleet-operator`: run the controllers (default), or render what they would apply.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use llamafleet_operator::build::gpu::AgentImages;
use llamafleet_operator::names::{CACHE_DIR, DEFAULT_AGENT_IMAGE};
use llamafleet_operator::render::{self, DEFAULT_NAMESPACE};
use llamafleet_operator::run::{self, Settings};
use tracing_subscriber::EnvFilter;

/// Kubernetes operator serving GGUF models with llama.cpp.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct RunArgs {
    /// Agent image of route pods and of serve pods without GPUs (the CPU build).
    #[arg(long, env = "LLAMAFLEET_AGENT_IMAGE", default_value = DEFAULT_AGENT_IMAGE, global = true)]
    agent_image: String,
    /// Agent image of serve pods on NVIDIA GPUs (the CUDA build) [default: --agent-image with
    /// `-cuda13` appended to its tag].
    #[arg(long, env = "LLAMAFLEET_AGENT_IMAGE_CUDA", global = true)]
    agent_image_cuda: Option<String>,
    /// Agent image of serve pods on AMD and Intel GPUs (the Vulkan build) [default:
    /// --agent-image with `-vulkan` appended to its tag].
    #[arg(long, env = "LLAMAFLEET_AGENT_IMAGE_VULKAN", global = true)]
    agent_image_vulkan: Option<String>,
    /// Node directory of the node cache, the model cache of deployments whose `spec.cache`
    /// names none: the path of the hostPath PersistentVolume the operator makes per namespace.
    /// It must exist on every node, owned by 65532 (the chart's node-cache DaemonSet makes it).
    #[arg(long, env = "LLAMAFLEET_CACHE_PATH", default_value = CACHE_DIR, global = true)]
    cache_path: String,
    /// Address of /metrics and /healthz.
    #[arg(long, env = "LLAMAFLEET_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Reconcile without competing for the Lease (one replica only, or local development).
    #[arg(long, env = "LLAMAFLEET_NO_LEADER_ELECTION")]
    no_leader_election: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "llamafleet-system")]
    lease_namespace: String,
    /// Name of this replica (its pod name).
    #[arg(long, env = "POD_NAME", default_value = "llamafleet-operator")]
    identity: String,
    /// Do not poll agents' /status (when the operator runs outside the cluster network).
    #[arg(long, env = "LLAMAFLEET_NO_AGENT_STATUS")]
    no_agent_status: bool,
    /// Do not contact model sources: LlmModels become Ready from their spec, without the
    /// GGUF header, memory figures or update checks (air-gapped clusters, tests).
    #[arg(long, env = "LLAMAFLEET_NO_RESOLVE")]
    no_resolve: bool,
    /// GPU memory per GPU in GiB, for the layer split of `gpu.layers: auto` where a
    /// deployment's `gpu.memoryGiB` names none (set it to the smallest GPU the serving pods
    /// may land on).
    #[arg(long, env = "LLAMAFLEET_GPU_MEMORY_GIB", default_value_t = 16)]
    gpu_memory_gib: u64,
    /// Base URL of a router whose /router/stats progressive rollouts read, instead of
    /// discovering the router pods of each deployment (repeat for several; development
    /// outside the cluster, tests). Every deployment is judged on these routers.
    #[arg(
        long = "router-url",
        env = "LLAMAFLEET_ROUTER_URL",
        value_delimiter = ','
    )]
    router_urls: Vec<String>,
    /// Reconciles that run at once, per kind (LlmDeployment, LlmModel). The rest wait their
    /// turn: a thousand objects reconciling together after a restart would hold a thousand
    /// sets of built children and in-flight requests (the operator's peak memory, which its
    /// allocator keeps) while the API server serves them no faster.
    #[arg(long, env = "LLAMAFLEET_CONCURRENT_RECONCILES", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    concurrent_reconciles: u16,
}

#[derive(Subcommand)]
enum Command {
    /// Print, offline, the objects the operator would apply for the LlmDeployments in FILEs.
    Render {
        /// YAML files with LlmModel and LlmDeployment documents (models resolve across files).
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Namespace of documents that name none.
        #[arg(short, long, default_value = DEFAULT_NAMESPACE)]
        namespace: String,
    },
}

/// jemalloc, not the system allocator: a sweep over a thousand LlmDeployments allocates a
/// lot for a short while, and glibc's malloc kept that peak as the process's memory for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let images = match AgentImages::new(
        &cli.run.agent_image,
        cli.run.agent_image_cuda.as_deref(),
        cli.run.agent_image_vulkan.as_deref(),
    ) {
        Ok(images) => images,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Render { files, namespace }) => {
            let result = render::read_inputs(&files, &namespace).and_then(|inputs| {
                render::render_with_images(&inputs, &images, &cli.run.cache_path)
            });
            match result {
                Ok(yaml) => {
                    print!("{yaml}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => operate(cli.run, images),
    }
}

fn operate(args: RunArgs, images: AgentImages) -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let settings = Settings {
        images,
        listen: args.listen,
        leader_election: !args.no_leader_election,
        lease_namespace: args.lease_namespace,
        identity: args.identity,
        agent_status: !args.no_agent_status,
        resolve: !args.no_resolve,
        gpu_memory_bytes: args.gpu_memory_gib.saturating_mul(1 << 30),
        router_urls: args.router_urls,
        cache_path: args.cache_path,
        concurrent_reconciles: args.concurrent_reconciles,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "operator stopped");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
