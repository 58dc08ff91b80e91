//! `llamafleet-agent`: the node agent's command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use llamafleet_agent::inspect;
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
    /// Manage the model cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Subcommand, Debug)]
enum CacheCommand {
    /// Delete cached models not listed with --keep (never one in use).
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
    #[command(flatten)]
    access: SourceArgs,
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
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
