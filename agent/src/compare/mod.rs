//! `llamafleet-agent compare`: sends the same prompts to each variant of a deployment (through
//! the router, pinned with `x-llamafleet-variant`, or straight to each variant's URL), measures
//! every streamed answer (latency, time to first token, tokens per second, length), compares
//! the answers with the first variant's, and writes `<out>.json` and `<out>.md`.

mod args;
pub mod markdown;
pub mod prompts;
pub mod report;
pub mod request;
pub mod stats;
pub mod votes;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;

pub use args::{CompareArgs, Plan, Target};
use prompts::PromptsError;
use report::{Report, Settings, VariantInfo};
use request::{Client, Sample, Sampling};

/// Why a comparison could not be made (a failed request is not one: it is recorded).
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// `--url` without `=`.
    #[error("--url {0:?}: expected NAME=URL")]
    UrlArg(String),
    /// A URL that is not http(s).
    #[error("{name}: {url:?} is not an http or https URL")]
    BadUrl {
        /// The variant (or `--endpoint`).
        name: String,
        /// What was given.
        url: String,
    },
    /// Fewer than two variants.
    #[error(
        "compare needs at least two variants (--endpoint URL --variants a,b, or --url a=URL --url b=URL); got {0}"
    )]
    TooFewVariants(usize),
    /// A variant without a name.
    #[error("a variant name is empty")]
    EmptyName,
    /// The same variant twice.
    #[error("variant {0:?} is listed twice")]
    DuplicateVariant(String),
    /// `--repeat`, `--concurrency` or `--max-tokens` of 0.
    #[error("--repeat, --concurrency and --max-tokens must be at least 1")]
    Zero,
    /// The API key file cannot be read.
    #[error("reading the API key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The prompts file is unusable.
    #[error(transparent)]
    Prompts(#[from] PromptsError),
    /// A router's votes cannot be read (`--votes-from`).
    #[error("--votes-from {url}: {message}")]
    Votes {
        /// The router.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The report's directory does not exist.
    #[error("the report directory {} does not exist", .0.display())]
    NoOutDir(PathBuf),
    /// The HTTP client cannot be built.
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The report cannot be turned into JSON.
    #[error("serializing the report: {0}")]
    Serialize(serde_json::Error),
    /// A report file cannot be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Some variant answered nothing; the report was written all the same.
    #[error("every request to {variants} failed (first error: {first}); report: {}", json.display())]
    AllFailed {
        /// The variants, quoted and comma-separated.
        variants: String,
        /// The first failing variant's first error.
        first: String,
        /// Where the JSON report is.
        json: PathBuf,
    },
}

/// `path` with `extension` appended (`report` → `report.json`, keeping any dots in the name).
fn with_extension(path: &Path, extension: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".");
    name.push(extension);
    name.into()
}

/// The two report files written: JSON and Markdown.
#[derive(Debug, Clone)]
pub struct Written {
    /// `<out>.json`.
    pub json: PathBuf,
    /// `<out>.md`.
    pub markdown: PathBuf,
}

/// Runs the command: compares, writes both reports, and fails when a variant answered nothing.
pub async fn run_cli(args: CompareArgs) -> Result<(), CompareError> {
    let plan = Plan::from_args(args)?;
    let (report, written) = run(&plan).await?;
    println!("{}\n{}", written.json.display(), written.markdown.display());
    let failed = report.all_failed();
    if let Some(first) = failed.first() {
        return Err(CompareError::AllFailed {
            variants: failed
                .iter()
                .map(|v| format!("{:?}", v.variant))
                .collect::<Vec<_>>()
                .join(", "),
            first: first.first_error.clone().unwrap_or_default(),
            json: written.json,
        });
    }
    Ok(())
}

/// Compares the variants of `plan` and writes the report.
pub async fn run(plan: &Plan) -> Result<(Report, Written), CompareError> {
    let prompts = prompts::load(&plan.prompts)?;
    let dir = plan.out.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|d| !d.is_dir()) {
        return Err(CompareError::NoOutDir(dir.to_owned()));
    }
    let client = Client::new(plan.api_key.clone(), plan.timeout)?;
    // Read first: a router that cannot be read fails the command before any prompt is sent.
    let votes = if plan.votes_from.is_empty() {
        None
    } else {
        let read = votes::read(&client, &plan.votes_from, &plan.targets).await;
        Some(read.map_err(|(url, message)| CompareError::Votes { url, message })?)
    };
    let mut models = Vec::new();
    for target in &plan.targets {
        models.push(match &plan.model {
            Some(m) => Ok(m.clone()),
            None => client.first_model(target).await,
        });
    }
    let sampling = Sampling {
        max_tokens: plan.max_tokens,
        temperature: plan.temperature,
    };
    // Prompt by prompt, each variant in turn, so that load changes over time hit all alike.
    let jobs = (0..prompts.len()).flat_map(|p| {
        (0..plan.repeat).flat_map(move |r| (0..plan.targets.len()).map(move |v| (p, r, v)))
    });
    let mut done: Vec<((usize, u32, usize), Sample)> = futures_util::stream::iter(jobs)
        .map(|(p, r, v)| {
            let (client, target, model, prompt) =
                (&client, &plan.targets[v], &models[v], &prompts[p]);
            async move {
                let sample = match model {
                    Ok(model) => client.chat(target, model, prompt, sampling).await,
                    Err(e) => Sample::failed(format!("no model name: {e}")),
                };
                ((p, r, v), sample)
            }
        })
        .buffer_unordered(plan.concurrency)
        .collect()
        .await;
    done.sort_by_key(|(key, _)| *key);
    let mut samples = vec![vec![Vec::new(); plan.targets.len()]; prompts.len()];
    for ((p, _, v), sample) in done {
        samples[p][v].push(sample);
    }
    let variants = plan
        .targets
        .iter()
        .zip(models)
        .map(|(t, model)| VariantInfo {
            name: t.name.clone(),
            url: t.base.to_string(),
            pinned: t.pinned,
            model: model.ok(),
        })
        .collect();
    let settings = Settings {
        max_tokens: plan.max_tokens,
        temperature: plan.temperature,
        repeat: plan.repeat,
        concurrency: plan.concurrency,
    };
    let labels = prompts.into_iter().map(|p| p.label).collect();
    let mut report = Report::build(settings, variants, labels, samples);
    report.votes = votes;
    let written = write(&plan.out, &report)?;
    Ok((report, written))
}

fn write(out: &Path, report: &Report) -> Result<Written, CompareError> {
    let written = Written {
        json: with_extension(out, "json"),
        markdown: with_extension(out, "md"),
    };
    let json = serde_json::to_string_pretty(report).map_err(CompareError::Serialize)?;
    for (path, text) in [
        (&written.json, json),
        (&written.markdown, markdown::render(report)),
    ] {
        std::fs::write(path, text).map_err(|source| CompareError::Write {
            path: path.clone(),
            source,
        })?;
    }
    Ok(written)
}
