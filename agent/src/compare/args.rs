//! The `compare` command line, checked into a [`Plan`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use super::CompareError;

/// `llamafleet-agent compare`: the same prompts to each variant, measured and compared.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Router URL; each request is pinned to a variant with the `x-llamafleet-variant` header.
    #[arg(long, conflicts_with = "url", requires = "variants")]
    pub endpoint: Option<String>,
    /// Variants to compare through --endpoint, comma-separated; the first is the baseline.
    #[arg(long, value_delimiter = ',', requires = "endpoint")]
    pub variants: Vec<String>,
    /// A variant served at its own URL, as NAME=URL (repeatable; the first is the baseline).
    #[arg(long, value_name = "NAME=URL")]
    pub url: Vec<String>,
    /// Prompts: one per line, or JSONL lines of {"prompt": "..."} or {"messages": [...]} (JSONL
    /// when the first non-blank line starts with `{`).
    #[arg(long)]
    pub prompts: PathBuf,
    /// Report path without extension: <OUT>.json and <OUT>.md are written.
    #[arg(long)]
    pub out: PathBuf,
    /// API key sent as a Bearer token.
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// File holding the API key sent as a Bearer token.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Model name to request (default: the first of GET /v1/models, asked of each variant).
    #[arg(long)]
    pub model: Option<String>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: u32,
    /// Sampling temperature; 0 (greedy) keeps answers comparable.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Times each prompt is sent to each variant.
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Requests in flight at once (over all variants).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Seconds one request may take, its stream included.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// A router whose A/B-page votes go into the report (repeatable: each router replica
    /// counts the votes it took, so name every replica to count them all). Only votes between
    /// the variants compared count.
    #[arg(long, value_name = "URL")]
    pub votes_from: Vec<String>,
}

/// One variant and where its requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The variant's name.
    pub name: String,
    /// Base URL (the router's, or the variant's own).
    pub base: Url,
    /// Whether requests carry the pin header (through a router).
    pub pinned: bool,
}

impl Target {
    /// `base` joined with an API path such as `v1/models`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base.as_str().trim_end_matches('/'))
    }
}

/// The checked command line.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Variants in order; the first is the baseline.
    pub targets: Vec<Target>,
    /// The prompts file.
    pub prompts: PathBuf,
    /// Report path without extension.
    pub out: PathBuf,
    /// Bearer token.
    pub api_key: Option<String>,
    /// Model name, if given.
    pub model: Option<String>,
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
    /// Times each prompt is sent to each variant (at least 1).
    pub repeat: u32,
    /// Requests in flight at once (at least 1).
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Routers whose votes go into the report.
    pub votes_from: Vec<Url>,
}

fn parse_url(name: &str, url: &str) -> Result<Url, CompareError> {
    Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| CompareError::BadUrl {
            name: name.to_owned(),
            url: url.to_owned(),
        })
}

fn targets(args: &CompareArgs) -> Result<Vec<Target>, CompareError> {
    if let Some(endpoint) = &args.endpoint {
        let base = parse_url("--endpoint", endpoint)?;
        return Ok(args
            .variants
            .iter()
            .map(|name| Target {
                name: name.trim().to_owned(),
                base: base.clone(),
                pinned: true,
            })
            .collect());
    }
    args.url
        .iter()
        .map(|arg| {
            let (name, url) = arg
                .split_once('=')
                .ok_or_else(|| CompareError::UrlArg(arg.clone()))?;
            Ok(Target {
                name: name.trim().to_owned(),
                base: parse_url(name, url.trim())?,
                pinned: false,
            })
        })
        .collect()
}

impl Plan {
    /// Checks the command line; reads the API key file.
    pub fn from_args(args: CompareArgs) -> Result<Self, CompareError> {
        let targets = targets(&args)?;
        if targets.len() < 2 {
            return Err(CompareError::TooFewVariants(targets.len()));
        }
        for (i, t) in targets.iter().enumerate() {
            if t.name.is_empty() {
                return Err(CompareError::EmptyName);
            }
            if targets[..i].iter().any(|o| o.name == t.name) {
                return Err(CompareError::DuplicateVariant(t.name.clone()));
            }
        }
        if args.repeat == 0 || args.concurrency == 0 || args.max_tokens == 0 {
            return Err(CompareError::Zero);
        }
        let api_key = match (&args.api_key, &args.api_key_file) {
            (Some(k), _) => Some(k.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| CompareError::KeyFile {
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        Ok(Self {
            targets,
            prompts: args.prompts,
            out: args.out,
            api_key,
            model: args.model,
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            repeat: args.repeat,
            concurrency: args.concurrency,
            timeout: Duration::from_secs(args.timeout),
            votes_from: args
                .votes_from
                .iter()
                .map(|u| parse_url("--votes-from", u))
                .collect::<Result<_, _>>()?,
        })
    }
}
