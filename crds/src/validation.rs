//! The Rust twins of the CRD's OpenAPI bounds and CEL rules.
//!
//! An API server that enforces CEL never lets these fail; they exist for clusters that do not
//! (and for objects stored before a rule existed), so the operator can put the exact reason in
//! a status condition instead of failing somewhere deep in a reconcile.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::rules::*;
use crate::{
    AccessSpec, AutoscalingSpec, CacheSpec, GpuSpec, LlmDeploymentSpec, LlmModelSpec, Preset,
    RolloutSpec, ServingSpec, UpdatePolicy, Variant,
};

/// One broken rule: the field (a path such as `spec.variants[1].weight`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the offending field, from the object root.
    pub field: String,
    /// What is wrong, in the same words as the CRD's CEL message where there is one.
    pub message: String,
}

/// Every rule a spec breaks, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidSpec(pub Vec<FieldError>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid spec: {}", joined.join("; "))
    }
}

/// Collects errors under a path prefix.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        field: impl Into<String>,
        value: Option<T>,
        min: T,
        max: T,
    ) {
        if let Some(v) = value
            && (v < min || v > max)
        {
            self.push(field, format!("must be between {min} and {max}, got {v}"));
        }
    }

    fn len(&mut self, field: impl Into<String>, value: Option<&str>, min: usize, max: usize) {
        if let Some(v) = value
            && (v.len() < min || v.len() > max)
        {
            let n = v.len();
            self.push(
                field,
                format!("length must be between {min} and {max}, got {n}"),
            );
        }
    }

    fn dns_label(&mut self, field: impl Into<String>, value: &str) {
        if !is_dns1123_label(value) {
            self.push(
                field,
                format!("{value:?} is not a DNS-1123 label ({DNS1123_LABEL})"),
            );
        }
    }

    fn unique<'a>(&mut self, field: &str, names: impl Iterator<Item = &'a str>, msg: &str) {
        let mut seen = BTreeSet::new();
        if names.into_iter().any(|n| !seen.insert(n)) {
            self.push(field, msg);
        }
    }

    fn finish(self) -> Result<(), InvalidSpec> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidSpec(self.0))
        }
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    let ends_ok = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !b.is_empty() && b.len() <= 63 && inner_ok && ends_ok(b.first()) && ends_ok(b.last())
}

/// `^[A-Za-z0-9][-A-Za-z0-9_]*$`, at most 64 characters: a header name every proxy passes.
fn is_header_name(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn is_cron(s: &str) -> bool {
    const MACROS: [&str; 6] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
    ];
    MACROS.contains(&s) || matches!(s.split_whitespace().count(), 5 | 6)
}

/// Parses a duration of the CRDs' pattern: `30s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    if !is_duration(s) {
        return None;
    }
    let (digits, unit) = s.split_at(s.len() - 1);
    let n: u64 = digits.parse().ok()?;
    let per_unit = match unit {
        "s" => 1,
        "m" => 60,
        _ => 3600,
    };
    Some(std::time::Duration::from_secs(n * per_unit))
}

fn is_duration(s: &str) -> bool {
    let (digits, unit) = s.split_at(s.len().saturating_sub(1));
    matches!(unit, "s" | "m" | "h")
        && (1..=6).contains(&digits.len())
        && digits.bytes().all(|c| c.is_ascii_digit())
}

impl LlmModelSpec {
    /// Checks every rule the CRD schema enforces; returns all broken ones.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        let mut e = Errors::default();
        let src = &self.source;
        e.len("spec.source.url", Some(&src.url), 8, 2048);
        let insecure_ok = src.allow_insecure_http == Some(true) && src.url.starts_with("http://");
        if !(src.url.starts_with("https://") || src.url.starts_with("file://") || insecure_ok) {
            e.push("spec.source.url", MSG_URL_SCHEME);
        }
        if let Some(sha) = &src.sha256
            && !is_sha256_hex(sha)
        {
            e.push("spec.source.sha256", "must be 64 lowercase hex characters");
        }
        e.len("spec.quantization", self.quantization.as_deref(), 1, 32);
        let ctx = self.context_length;
        e.range(
            "spec.contextLength",
            ctx,
            CONTEXT_LENGTH_MIN,
            CONTEXT_LENGTH_MAX,
        );
        if let Some(update) = &self.update {
            match &update.schedule {
                None if update.policy != UpdatePolicy::Disabled => {
                    e.push("spec.update.schedule", MSG_SCHEDULE_REQUIRED)
                }
                Some(s) if !is_cron(s) => e.push(
                    "spec.update.schedule",
                    format!("{s:?} is not a cron expression (five fields, six with seconds, or @daily etc.)"),
                ),
                _ => {}
            }
        }
        e.finish()
    }
}

impl LlmDeploymentSpec {
    /// Checks every rule the CRD schema enforces; returns all broken ones.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        let mut e = Errors::default();
        let n = self.variants.len();
        if !(1..=VARIANTS_MAX as usize).contains(&n) {
            e.push(
                "spec.variants",
                format!("must have 1 to {VARIANTS_MAX} variants, got {n}"),
            );
        }
        for (i, v) in self.variants.iter().enumerate() {
            validate_variant(&mut e, &format!("spec.variants[{i}]"), v);
        }
        if self
            .variants
            .iter()
            .map(|v| i64::from(v.weight))
            .sum::<i64>()
            != 100
        {
            e.push("spec.variants", MSG_WEIGHTS_SUM);
        }
        let names = self.variants.iter().map(|v| v.name.as_str());
        e.unique("spec.variants", names, MSG_VARIANT_NAMES_UNIQUE);
        e.range("spec.replicas", self.replicas, 0, REPLICAS_MAX);
        if let Some(s) = &self.serving {
            validate_serving(&mut e, "spec.serving", s);
        }
        validate_presets(&mut e, &self.presets);
        if let Some(a) = &self.access {
            validate_access(&mut e, a);
        }
        if let Some(r) = &self.rollout {
            validate_rollout(&mut e, r);
        }
        if let Some(a) = &self.autoscaling {
            validate_autoscaling(&mut e, a);
        }
        if let Some(c) = &self.cache {
            validate_cache(&mut e, c);
        }
        e.finish()
    }
}

fn validate_variant(e: &mut Errors, at: &str, v: &Variant) {
    e.dns_label(format!("{at}.name"), &v.name);
    e.len(format!("{at}.model"), Some(&v.model), 1, 253);
    e.range(format!("{at}.weight"), Some(v.weight), 0, 100);
    e.range(format!("{at}.replicas"), v.replicas, 0, REPLICAS_MAX);
    if let Some(s) = &v.serving {
        validate_serving(e, &format!("{at}.serving"), s);
    }
}

fn validate_serving(e: &mut Errors, at: &str, s: &ServingSpec) {
    let ctx = s.context_length;
    e.range(
        format!("{at}.contextLength"),
        ctx,
        CONTEXT_LENGTH_MIN,
        CONTEXT_LENGTH_MAX,
    );
    e.range(format!("{at}.parallel"), s.parallel, 1, PARALLEL_MAX);
    e.range(format!("{at}.threads"), s.threads, 1, THREADS_MAX);
    if let Some(gpu) = &s.gpu {
        validate_gpu(e, &format!("{at}.gpu"), gpu);
    }
}

fn validate_gpu(e: &mut Errors, at: &str, gpu: &GpuSpec) {
    e.range(format!("{at}.count"), Some(gpu.count), 0, GPU_COUNT_MAX);
    let layers_ok = match &gpu.layers {
        None => true,
        // The API server sees an int-or-string; `"40"` is as good as `40`.
        Some(IntOrString::String(s)) => {
            let digits = (1..=4).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit());
            s == "auto" || (digits && s.parse::<i64>().is_ok_and(|n| n <= GPU_LAYERS_MAX))
        }
        Some(IntOrString::Int(n)) => (0..=GPU_LAYERS_MAX).contains(&i64::from(*n)),
    };
    if !layers_ok {
        e.push(format!("{at}.layers"), MSG_GPU_LAYERS);
    }
    if gpu.count == 0 && (gpu.vendor.is_some() || gpu.memory_gib.is_some()) {
        e.push(format!("{at}.count"), MSG_GPU_NEEDS_COUNT);
    }
    e.range(
        format!("{at}.memoryGiB"),
        gpu.memory_gib,
        1,
        GPU_MEMORY_GIB_MAX,
    );
}

fn validate_presets(e: &mut Errors, presets: &[Preset]) {
    if presets.len() > PRESETS_MAX as usize {
        e.push("spec.presets", format!("at most {PRESETS_MAX} presets"));
    }
    for (i, p) in presets.iter().enumerate() {
        let at = format!("spec.presets[{i}]");
        let name_ok = p.name.len() <= 63
            && p.name
                .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.name
                .ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.name.bytes().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'_')
            });
        if !name_ok {
            e.push(
                format!("{at}.name"),
                format!("{:?} is not a valid preset name", p.name),
            );
        }
        if let Some(s) = &p.parameters {
            e.range(
                format!("{at}.parameters.temperature"),
                s.temperature,
                0.0,
                2.0,
            );
            e.range(format!("{at}.parameters.topP"), s.top_p, 0.0, 1.0);
            e.range(format!("{at}.parameters.topK"), s.top_k, 0, 1000);
            e.range(
                format!("{at}.parameters.repeatPenalty"),
                s.repeat_penalty,
                0.0,
                5.0,
            );
            e.range(
                format!("{at}.parameters.maxTokens"),
                s.max_tokens,
                1,
                MAX_TOKENS_MAX,
            );
            if s.stop.len() > STOP_MAX as usize {
                e.push(
                    format!("{at}.parameters.stop"),
                    format!("at most {STOP_MAX} stop strings"),
                );
            }
        }
        validate_preset_tools(e, &at, p);
    }
    e.unique(
        "spec.presets",
        presets.iter().map(|p| p.name.as_str()),
        MSG_PRESET_NAMES_UNIQUE,
    );
}

/// The tools of a preset as the agent will check them at start (same words), so a bad one
/// shows in the status instead of a serving pod that exits.
fn validate_preset_tools(e: &mut Errors, at: &str, p: &Preset) {
    if p.tools.len() > PRESET_TOOLS_MAX as usize {
        e.push(
            format!("{at}.tools"),
            format!("at most {PRESET_TOOLS_MAX} tools"),
        );
    }
    for (j, tool) in p.tools.iter().enumerate() {
        let field = format!("{at}.tools[{j}]");
        if let Err(why) = crate::tools::check_name(&tool.name) {
            e.push(format!("{field}.name"), why);
        }
        if let Err(why) =
            crate::tools::arguments(tool.parameters.as_ref().unwrap_or(&serde_json::Value::Null))
        {
            e.push(format!("{field}.parameters"), why);
        }
    }
    e.unique(
        &format!("{at}.tools"),
        p.tools.iter().map(|t| t.name.as_str()),
        MSG_TOOL_NAMES_UNIQUE,
    );
    if p.tools.is_empty() {
        if p.tool_choice.is_some() {
            e.push(format!("{at}.toolChoice"), MSG_TOOL_SETTINGS_NEED_TOOLS);
        }
        if p.parallel_tool_calls.is_some() {
            e.push(
                format!("{at}.parallelToolCalls"),
                MSG_TOOL_SETTINGS_NEED_TOOLS,
            );
        }
    }
}

fn validate_access(e: &mut Errors, a: &AccessSpec) {
    if a.tiers.len() > TIERS_MAX as usize {
        e.push("spec.access.tiers", format!("at most {TIERS_MAX} tiers"));
    }
    for (i, t) in a.tiers.iter().enumerate() {
        e.dns_label(format!("spec.access.tiers[{i}].name"), &t.name);
        let rph = Some(t.requests_per_hour);
        e.range(
            format!("spec.access.tiers[{i}].requestsPerHour"),
            rph,
            1,
            REQUESTS_PER_HOUR_MAX,
        );
        let tph = t.tokens_per_hour;
        e.range(
            format!("spec.access.tiers[{i}].tokensPerHour"),
            tph,
            1,
            10_000_000_000,
        );
    }
    let names = a.tiers.iter().map(|t| t.name.as_str());
    e.unique("spec.access.tiers", names, MSG_TIER_NAMES_UNIQUE);
    if let Some(h) = &a.sticky_header
        && !is_header_name(h)
    {
        e.push(
            "spec.access.stickyHeader",
            format!("{h:?} is not a header name (1 to 64 letters, digits, '-' or '_')"),
        );
    }
    if let Some(l) = &a.limits {
        let at = "spec.access.limits";
        e.range(
            format!("{at}.maxBodyBytes"),
            l.max_body_bytes,
            1024,
            MAX_BODY_BYTES_MAX,
        );
        e.range(
            format!("{at}.maxPromptTokens"),
            l.max_prompt_tokens,
            1,
            MAX_TOKENS_MAX,
        );
        e.range(format!("{at}.maxTokens"), l.max_tokens, 1, MAX_TOKENS_MAX);
        let t = l.request_timeout_seconds;
        e.range(
            format!("{at}.requestTimeoutSeconds"),
            t,
            1,
            REQUEST_TIMEOUT_MAX,
        );
    }
}

fn validate_rollout(e: &mut Errors, r: &RolloutSpec) {
    for (i, s) in r.steps.iter().enumerate() {
        e.range(format!("spec.rollout.steps[{i}]"), Some(*s), 1, 100);
    }
    let ascending = r.steps.windows(2).all(|w| w[0] < w[1]);
    if !r.steps.is_empty() && (!ascending || r.steps.last() != Some(&100)) {
        e.push("spec.rollout.steps", MSG_STEPS_ORDER);
    }
    if let Some(i) = &r.interval
        && !is_duration(i)
    {
        e.push(
            "spec.rollout.interval",
            format!("{i:?} is not a duration such as 30s, 5m, 1h"),
        );
    }
    if let Some(a) = &r.analysis {
        let at = "spec.rollout.analysis";
        e.range(format!("{at}.maxErrorRate"), a.max_error_rate, 0.0, 1.0);
        e.range(
            format!("{at}.maxTtftP95Ratio"),
            a.max_ttft_p95_ratio,
            1.0,
            100.0,
        );
        let tps = a.min_tokens_per_second_ratio;
        e.range(format!("{at}.minTokensPerSecondRatio"), tps, 0.0, 10.0);
        e.range(format!("{at}.minRequests"), a.min_requests, 1, 1_000_000);
    }
    if let Some(p) = &r.promote {
        e.dns_label("spec.rollout.promote", p);
    }
    if let Some(s) = &r.shadow {
        e.dns_label("spec.rollout.shadow.variant", &s.variant);
        e.range("spec.rollout.shadow.percent", Some(s.percent), 0, 100);
    }
}

fn validate_autoscaling(e: &mut Errors, a: &AutoscalingSpec) {
    e.range(
        "spec.autoscaling.minReplicas",
        Some(a.min_replicas),
        0,
        REPLICAS_MAX,
    );
    e.range(
        "spec.autoscaling.maxReplicas",
        Some(a.max_replicas),
        1,
        REPLICAS_MAX,
    );
    if a.min_replicas > a.max_replicas {
        e.push("spec.autoscaling.minReplicas", MSG_MIN_LE_MAX);
    }
    if a.sleeps() && a.idle_after.is_none() {
        e.push("spec.autoscaling.idleAfter", MSG_IDLE_AFTER);
    }
    for (field, value) in [
        ("idleAfter", &a.idle_after),
        ("wakeTimeout", &a.wake_timeout),
    ] {
        if let Some(d) = value
            && !is_duration(d)
        {
            let message = format!("{d:?} is not a duration such as 30s, 5m, 1h");
            e.push(format!("spec.autoscaling.{field}"), message);
        }
    }
    let held = a.max_held_requests;
    e.range("spec.autoscaling.maxHeldRequests", held, 1, 10000);
    let cpu = a.target_cpu_utilization;
    e.range("spec.autoscaling.targetCpuUtilization", cpu, 1, 100);
    e.range(
        "spec.autoscaling.targetQueueDepth",
        a.target_queue_depth,
        1,
        1000,
    );
}

fn validate_cache(e: &mut Errors, c: &CacheSpec) {
    if c.host_path.is_some() && c.pvc.is_some() {
        e.push("spec.cache", MSG_CACHE_ONE_OF);
    }
    if let Some(p) = &c.host_path
        && !p.starts_with('/')
    {
        e.push("spec.cache.hostPath", "must be an absolute path");
    }
}
