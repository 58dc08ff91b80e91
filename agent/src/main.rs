//! `llamafleet-agent`: the node agent's command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use llamafleet_agent::inspect;
use llamafleet_agent::serve::{self, engine::GpuLayers, state};
use llamafleet_agent::store::{PullRequest, Source, Store, StoreConfig, StoreMetrics, gc, http};

/// Where the cache lives on a node (the Helm chart mounts a hostPath here).
const DEFAULT_CACHE_DIR: &str = "/var/lib/llamafleet/models";

#[derive(Parser, Debug)]
#[command(name = "llamafleet-agent", version, about = "llamafleet node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download a model into the verified cache and print its path.
    Pull(PullArgs),
    /// Print a GGUF file's metadata as JSON (for a URL, only the header is fetched).
    Inspect(InspectArgs),
    /// Serve a model with the OpenAI and Ollama APIs.
    Serve(Box<ServeArgs>),
    /// Send the same prompts to each variant and report speed and agreement.
    Compare(llamafleet_agent::compare::CompareArgs),
    /// Route the client API to an LlmDeployment's variants (weights, keys, limits, shadow).
    Route(RouteArgs),
    /// Manage the model cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Delete cached models not listed with --keep (never one in use or kept by a server).
    Gc(GcArgs),
}

#[derive(Args, Debug)]
struct SourceArgs {
    /// Permit plain http (and redirects to it).
    #[arg(long)]
    allow_http: bool,
    /// File holding a bearer token (gated Hugging Face repos); sent only to the source's origin.
    #[arg(long, env = "LLAMAFLEET_TOKEN_FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PullArgs {
    /// https URL, http URL (with --allow-http), file:// URL or path.
    source: String,
    /// Expected sha256 (64 hex). Without it, Hugging Face's X-Linked-Etag is used, else the
    /// computed hash is recorded (trust on first use).
    #[arg(long)]
    sha256: Option<String>,
    /// Cache directory.
    #[arg(long, env = "LLAMAFLEET_CACHE_DIR", default_value = DEFAULT_CACHE_DIR)]
    cache_dir: PathBuf,
    /// Bytes that must remain free after the download.
    #[arg(long, default_value_t = llamafleet_agent::store::space::DEFAULT_MARGIN_BYTES)]
    min_free_bytes: u64,
    /// Store the file even if its GGUF header does not validate (not recommended).
    #[arg(long)]
    skip_gguf_check: bool,
    /// When the download does not fit, fail instead of evicting cached models nobody uses.
    #[arg(long)]
    no_evict: bool,
    #[command(flatten)]
    access: SourceArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// https URL, http URL (with --allow-http), file:// URL or path of the GGUF.
    #[arg(long)]
    model: String,
    /// Expected sha256 (64 hex).
    #[arg(long)]
    sha256: Option<String>,
    /// Cache directory.
    #[arg(long, env = "LLAMAFLEET_CACHE_DIR", default_value = DEFAULT_CACHE_DIR)]
    cache_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Context tokens per slot (the KV cache holds ctx × parallel tokens).
    #[arg(long, default_value_t = 4096)]
    ctx: u32,
    /// Slots decoded together (concurrent generations).
    #[arg(long, default_value_t = 1)]
    parallel: u32,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Layers to offload to the GPU: auto (as many as fit the GPUs' free memory with the
    /// context, leaving 1 GiB per GPU; none without a GPU backend or device) or a number.
    #[arg(long, default_value = "auto")]
    gpu_layers: GpuLayers,
    /// File holding the API key clients must send (Bearer or x-api-key).
    #[arg(long, env = "LLAMAFLEET_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
    /// YAML list of presets ({name, system, parameters}) served as extra model names.
    #[arg(long)]
    preset: Option<PathBuf>,
    /// Chat template override: a llama.cpp template name (chatml, gemma, llama3, ...) or text.
    #[arg(long)]
    chat_template: Option<String>,
    /// Longest prompt a request may send, in tokens once templated (longer: 400).
    #[arg(long)]
    max_prompt_tokens: Option<u32>,
    /// Most tokens one request may generate (asking for more: 400); also caps the default.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Prefill every prompt in its own slot instead of copying the longest prefix another
    /// slot has cached (to measure the sharing, or to rule it out).
    #[arg(long)]
    no_prefix_sharing: bool,
    /// Model name clients use (default: the file name without .gguf).
    #[arg(long)]
    model_name: Option<String>,
    /// Requests that may wait for a slot, beyond the slots (default: 4 per slot).
    #[arg(long)]
    queue: Option<usize>,
    /// Request body limit in bytes.
    #[arg(long, default_value_t = state::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Per-request timeout in seconds (streams included).
    #[arg(long, default_value_t = state::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    request_timeout: u64,
    /// /healthz fails after this many seconds without a decode step while requests run.
    #[arg(long, default_value_t = state::DEFAULT_STUCK_AFTER.as_secs())]
    stuck_after: u64,
    /// Seconds in-flight streams may take to finish after SIGTERM; those still running then
    /// end with an error event (`shut_down`) before the agent exits.
    #[arg(long, default_value_t = 30)]
    grace: u64,
    /// Seconds a failed startup (download, verification, load) keeps /metrics and /status
    /// up before exiting, so the failure is scraped (the operator sets 60 in pods).
    #[arg(long, default_value_t = serve::FAILURE_LINGER.as_secs())]
    failure_linger: u64,
    /// After a failure a restart would repeat (wrong sha256, not a GGUF, crashed too often,
    /// a refused source), stay up in the failed phase until stopped instead of exiting: in a
    /// pod a restart would download the file again and again (the operator sets it).
    #[arg(long)]
    hold_permanent_failure: bool,
    /// Allowed CORS origin (repeatable; `*` for any). None: no CORS headers.
    #[arg(long)]
    cors_origin: Vec<String>,
    /// Log prompt and answer text in request log lines (off: counts only).
    #[arg(long)]
    log_text: bool,
    /// YAML list of sha256s of cached models to keep from `cache gc` and eviction while this
    /// server runs, besides the one it serves; re-read every 5 s (the operator mounts one
    /// listing both revisions while a model update is under way). Missing or invalid: none.
    #[arg(long)]
    keep_file: Option<PathBuf>,
    /// When the download does not fit, fail instead of evicting cached models nobody uses.
    #[arg(long)]
    no_evict: bool,
    #[command(flatten)]
    access: SourceArgs,
}

#[derive(Args, Debug)]
struct RouteArgs {
    /// The routing table (YAML), re-read when it changes.
    #[arg(long)]
    config: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Failures in a row (no connection, a 5xx other than a busy 503, a cut stream) that
    /// eject a variant from the weighted choice; 0 never ejects.
    #[arg(long, default_value_t = 3)]
    eject_after_failures: u32,
    /// Seconds of a first ejection; each further one in a row doubles it, up to 10 times
    /// this.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    ejection_seconds: u64,
    /// How a variant's replica is picked when the table says where its replicas are: the one
    /// holding the request's prompt prefix unless it is full, the least loaded, or at random.
    #[arg(long, value_enum, default_value_t = llamafleet_agent::route::replicas::ReplicaChoice::Prefix)]
    replica_choice: llamafleet_agent::route::replicas::ReplicaChoice,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// URL or path.
    source: String,
    /// Include per-tensor information.
    #[arg(long)]
    tensors: bool,
    #[command(flatten)]
    access: SourceArgs,
}

#[derive(Args, Debug)]
struct GcArgs {
    /// sha256 of a model to keep (repeatable).
    #[arg(long, num_args = 1..)]
    keep: Vec<String>,
    /// Report without deleting.
    #[arg(long)]
    dry_run: bool,
    /// Cache directory.
    #[arg(long, env = "LLAMAFLEET_CACHE_DIR", default_value = DEFAULT_CACHE_DIR)]
    cache_dir: PathBuf,
}

fn read_token(path: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|p| {
        std::fs::read_to_string(p)
            .map(|t| t.trim().to_owned())
            .with_context(|| format!("reading token file {}", p.display()))
    })
    .transpose()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pull(args) => {
            let mut config = StoreConfig::new(&args.cache_dir);
            config.allow_http = args.access.allow_http;
            config.margin_bytes = args.min_free_bytes;
            config.validate_gguf = !args.skip_gguf_check;
            config.evict = !args.no_evict;
            let store = Store::open(config, StoreMetrics::unregistered()?)?;
            let pulled = store
                .pull(&PullRequest {
                    source: args.source,
                    sha256: args.sha256,
                    bearer_token: read_token(args.access.token_file.as_ref())?,
                })
                .await?;
            println!("{}", pulled.path.display());
        }
        Command::Inspect(args) => {
            let source = Source::parse(&args.source, args.access.allow_http)?;
            let client = llamafleet_agent::store::http_client()?;
            let token = read_token(args.access.token_file.as_ref())?;
            let access = http::Access {
                client: &client,
                bearer: token.as_deref(),
                allow_http: args.access.allow_http,
            };
            let mut summary = inspect::inspect(&source, access, &Default::default()).await?;
            if !args.tensors {
                summary.tensors.clear();
            }
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::Serve(args) => {
            let mut config = serve::ServeConfig::new(&args.model, &args.cache_dir, args.listen);
            config.sha256 = args.sha256;
            config.bearer_token = read_token(args.access.token_file.as_ref())?;
            config.store.allow_http = args.access.allow_http;
            config.store.show_progress = true;
            config.store.evict = !args.no_evict;
            config.engine.ctx = args.ctx;
            config.engine.parallel = args.parallel.max(1);
            if let Some(threads) = args.threads {
                config.engine.threads = threads;
            }
            config.engine.gpu_layers = args.gpu_layers;
            config.engine.chat_template = args.chat_template;
            config.engine.share_prefixes = !args.no_prefix_sharing;
            config.engine.limits = serve::engine::RequestLimits {
                prompt_tokens: args.max_prompt_tokens,
                max_tokens: args.max_tokens,
            };
            let slots = config.engine.parallel as usize;
            let name = args
                .model_name
                .unwrap_or_else(|| serve::startup_model_name(&args.model));
            let mut options = state::ServeOptions::new(name, slots);
            if let Some(queue) = args.queue {
                options.queue = queue;
            }
            options.max_body_bytes = args.max_body_bytes;
            options.request_timeout = std::time::Duration::from_secs(args.request_timeout);
            options.stuck_after = std::time::Duration::from_secs(args.stuck_after);
            options.cors_origins = args.cors_origin;
            options.log_text = args.log_text;
            config.options = options;
            config.api_key = args
                .api_key_file
                .as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map(|k| k.trim().to_owned())
                        .with_context(|| format!("reading API key file {}", p.display()))
                })
                .transpose()?;
            config.preset_file = args.preset;
            config.grace = std::time::Duration::from_secs(args.grace);
            config.keep_file = args.keep_file;
            config.failure_linger = std::time::Duration::from_secs(args.failure_linger);
            config.hold_permanent_failure = args.hold_permanent_failure;
            serve::run(config).await?;
        }
        Command::Compare(args) => llamafleet_agent::compare::run_cli(args).await?,
        Command::Route(args) => {
            let mut config = llamafleet_agent::route::RouteConfig::new(args.config, args.listen);
            let base = std::time::Duration::from_secs(args.ejection_seconds);
            config.outliers = llamafleet_agent::route::outliers::OutlierPolicy {
                consecutive_failures: args.eject_after_failures,
                base_ejection: base,
                max_ejection: base * 10,
            };
            config.replica_choice = args.replica_choice;
            llamafleet_agent::route::run(config).await?;
        }
        Command::Cache {
            command: CacheCommand::Gc(args),
        } => {
            let layout = llamafleet_agent::store::Layout::new(&args.cache_dir);
            let report = gc::collect(&layout, &args.keep, args.dry_run)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    // `serve` and `route` run in pods: one JSON object per line for the log pipeline.
    if matches!(cli.command, Command::Serve(_) | Command::Route(_)) {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
