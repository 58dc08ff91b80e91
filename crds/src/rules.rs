//! Bounds and messages shared by the CRD schema (OpenAPI + CEL) and the Rust validators.
//!
//! Keeping them in one place is what makes the two twins agree: the schema attributes and
//! `validate()` read the same constants, and the example tests check both against the same
//! files.

/// Lowest context length accepted; below this even a short chat does not fit.
pub const CONTEXT_LENGTH_MIN: u32 = 256;
/// Highest context length accepted (1 Mi tokens, the largest any GGUF model advertises today).
pub const CONTEXT_LENGTH_MAX: u32 = 1_048_576;
/// Parallel decoding slots per replica; llama.cpp shares one context between them.
pub const PARALLEL_MAX: u32 = 64;
/// CPU threads per replica; more than a large node has is a typo.
pub const THREADS_MAX: u32 = 256;
/// Replicas per variant; the operator is not meant for more pods of one model than this.
pub const REPLICAS_MAX: i32 = 100;
/// GPUs per replica; the largest common node has 8.
pub const GPU_COUNT_MAX: u32 = 8;
/// Layer count for `gpu.layers`; no GGUF model has more transformer blocks than this.
pub const GPU_LAYERS_MAX: i64 = 1024;
/// Memory of one GPU in GiB for `gpu.memoryGiB` (the chart's `operator.gpuMemoryGiB` has the
/// same bound); the largest GPUs today have 288 GB, so more than 1 TiB is a typo.
pub const GPU_MEMORY_GIB_MAX: u32 = 1024;
/// Variants per deployment: a stable one, a candidate, and room for an A/B pair.
pub const VARIANTS_MAX: u32 = 4;
/// Requests per hour for an API-key tier.
pub const REQUESTS_PER_HOUR_MAX: u32 = 10_000_000;
/// Presets per deployment; each one is an extra model name on the client API.
pub const PRESETS_MAX: u32 = 32;
/// Tiers per deployment.
pub const TIERS_MAX: u32 = 16;
/// Tools per preset.
pub const PRESET_TOOLS_MAX: u32 = 16;
/// Stop strings per preset (the OpenAI API allows 4; Ollama more; 8 covers both).
pub const STOP_MAX: u32 = 8;
/// Upper bound for `maxTokens` of a preset or of the access limits.
pub const MAX_TOKENS_MAX: u32 = 1_048_576;
/// Longest request timeout; longer generations should stream.
pub const REQUEST_TIMEOUT_MAX: u32 = 3600;
/// Largest request body the router accepts (64 MiB: a long prompt, never a file upload).
pub const MAX_BODY_BYTES_MAX: i64 = 64 * 1024 * 1024;
/// Longest string the CEL rules look at; bounds the CEL cost estimate.
pub const NAME_MAX_LEN: u32 = 63;

/// DNS-1123 label: what Kubernetes accepts as a Service name component.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A sha256 digest in lowercase hex.
pub const SHA256_HEX: &str = "^[0-9a-f]{64}$";
/// A cron expression: five fields (or six, seconds first), or one of the `@` macros.
pub const CRON: &str = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|\S+(\s+\S+){4,5})$";
/// A duration such as `30s`, `5m`, `1h`.
pub const DURATION: &str = "^[0-9]{1,6}(s|m|h)$";

/// Message when variant weights do not add up.
pub const MSG_WEIGHTS_SUM: &str = "variant weights must sum to 100";
/// Message when two variants share a name.
pub const MSG_VARIANT_NAMES_UNIQUE: &str = "variant names must be unique";
/// Message when two presets share a name.
pub const MSG_PRESET_NAMES_UNIQUE: &str = "preset names must be unique";
/// Message when two tools of a preset share a name.
pub const MSG_TOOL_NAMES_UNIQUE: &str = "tool names must be unique within a preset";
/// Message for a preset's `toolChoice` or `parallelToolCalls` without tools.
pub const MSG_TOOL_SETTINGS_NEED_TOOLS: &str = "toolChoice and parallelToolCalls need tools";
/// Message when two tiers share a name.
pub const MSG_TIER_NAMES_UNIQUE: &str = "tier names must be unique";
/// Message for a URL with a scheme other than https, file, or allowed http.
pub const MSG_URL_SCHEME: &str =
    "url must start with https:// or file://, or http:// when allowInsecureHttp is true";
/// Message when an update policy needs a schedule and has none.
pub const MSG_SCHEDULE_REQUIRED: &str = "schedule is required when policy is not Disabled";
/// Message for rollout steps that are not ascending or do not end at 100.
pub const MSG_STEPS_ORDER: &str = "rollout steps must be ascending and end at 100";
/// Message for autoscaling bounds the wrong way round.
pub const MSG_MIN_LE_MAX: &str = "minReplicas must not exceed maxReplicas";
/// Message for `minReplicas: 0` without a time to go idle.
pub const MSG_IDLE_AFTER: &str =
    "minReplicas 0 needs idleAfter (how long without requests before a variant sleeps)";
/// Message for a cache with both hostPath and pvc.
pub const MSG_CACHE_ONE_OF: &str = "set at most one of hostPath and pvc";
/// Message for a `gpu.layers` that is neither `auto` nor a layer count.
pub const MSG_GPU_LAYERS: &str = "layers must be 'auto' or a number from 0 to 1024";
/// Message for `gpu.vendor` or `gpu.memoryGiB` on a replica without GPUs, which would serve on
/// CPU and silently ignore them.
pub const MSG_GPU_NEEDS_COUNT: &str =
    "vendor and memoryGiB need a count of 1 or more (count 0 serves on CPU)";

/// Every message a CEL rule of the CRDs carries (the API server reports these words as is).
pub const CEL_MESSAGES: [&str; 14] = [
    MSG_WEIGHTS_SUM,
    MSG_VARIANT_NAMES_UNIQUE,
    MSG_PRESET_NAMES_UNIQUE,
    MSG_TOOL_NAMES_UNIQUE,
    MSG_TOOL_SETTINGS_NEED_TOOLS,
    MSG_TIER_NAMES_UNIQUE,
    MSG_URL_SCHEME,
    MSG_SCHEDULE_REQUIRED,
    MSG_STEPS_ORDER,
    MSG_MIN_LE_MAX,
    MSG_IDLE_AFTER,
    MSG_CACHE_ONE_OF,
    MSG_GPU_LAYERS,
    MSG_GPU_NEEDS_COUNT,
];
