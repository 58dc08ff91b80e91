//! What a client may ask of one generation, and the llama.cpp sampler chain built from it.

use llama_cpp_2::sampling::LlamaSampler;

/// Tokens generated when a request names no limit: long enough for a chat answer, short
/// enough that a forgotten limit cannot hold a slot for minutes.
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Window of recent tokens the repeat/presence/frequency penalties look at (llama.cpp's default).
const PENALTY_LAST_N: i32 = 64;
/// Stop strings per request: OpenAI allows 4; a few more cost nothing but unbounded lists do.
pub const MAX_STOP_STRINGS: usize = 16;

/// Sampling settings of one request (defaults follow llama-server's).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling; 1 disables it.
    pub top_p: f32,
    /// 0 disables it.
    pub top_k: i32,
    /// 0 disables it.
    pub min_p: f32,
    /// 1 disables it.
    pub repeat_penalty: f32,
    /// 0 disables it.
    pub presence_penalty: f32,
    /// 0 disables it.
    pub frequency_penalty: f32,
    /// Random seed; `None` draws one.
    pub seed: Option<u32>,
    /// Generation stops before the first occurrence of any of these.
    pub stop: Vec<String>,
    /// Tokens to generate at most; `None` means [`DEFAULT_MAX_TOKENS`] capped by the context.
    pub max_tokens: Option<u32>,
    /// Constrained decoding: a GBNF grammar (root rule `root`) every output must match
    /// (see `schema.rs` for JSON).
    pub grammar: Option<String>,
    /// With `grammar`: it applies only from the first of these words on (a lazy grammar:
    /// free text until a tool call starts); empty: from the first token.
    pub grammar_triggers: Vec<String>,
    /// With `grammar`: regexes over the output so far that switch it on, from their first
    /// capture group (llama.cpp's lazy grammar patterns); `^...$` ones match the whole output.
    pub grammar_trigger_patterns: Vec<String>,
    /// Texts of special tokens that belong to the answer (a tool call's opening such as
    /// Mistral's `[TOOL_CALLS]`): written out, where other special tokens are hidden.
    pub preserved: Vec<String>,
    /// `max_tokens` is an upper bound to cut to the room the prompt leaves in the context,
    /// not a demand refused when it does not fit (Anthropic's clients always send one).
    pub fit_max_tokens: bool,
    /// Generation goes on past end-of-generation tokens (they are never picked) until
    /// `max_tokens` or a stop string: llama-server's `ignore_eos`, for benchmarks.
    pub ignore_eos: bool,
    /// Report each generated token's log probability with this many alternatives
    /// (at most [`super::MAX_TOP_LOGPROBS`]); `None`: no log probabilities.
    pub logprobs: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            stop: Vec::new(),
            max_tokens: None,
            grammar: None,
            grammar_triggers: Vec::new(),
            grammar_trigger_patterns: Vec::new(),
            preserved: Vec::new(),
            fit_max_tokens: false,
            ignore_eos: false,
            logprobs: None,
        }
    }
}

impl SamplingParams {
    /// Checks ranges; the message names the parameter (it goes back to the client as a 400).
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: f32| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{name} must be a finite number"))
            }
        };
        finite("temperature", self.temperature)?;
        finite("top_p", self.top_p)?;
        finite("min_p", self.min_p)?;
        finite("repeat_penalty", self.repeat_penalty)?;
        finite("presence_penalty", self.presence_penalty)?;
        finite("frequency_penalty", self.frequency_penalty)?;
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err("temperature must be between 0 and 2".into());
        }
        if !(0.0..=1.0).contains(&self.top_p) || self.top_p == 0.0 {
            return Err("top_p must be in (0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err("min_p must be between 0 and 1".into());
        }
        if self.top_k < 0 {
            return Err("top_k must not be negative".into());
        }
        if self.repeat_penalty <= 0.0 {
            return Err("repeat_penalty must be greater than 0".into());
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            return Err("presence_penalty must be between -2 and 2".into());
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            return Err("frequency_penalty must be between -2 and 2".into());
        }
        if self.stop.len() > MAX_STOP_STRINGS {
            return Err(format!("at most {MAX_STOP_STRINGS} stop strings"));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings must not be empty".into());
        }
        if self.ignore_eos && self.grammar.is_some() {
            return Err(
                "ignore_eos cannot be combined with structured output: a finished grammar only allows the end".into(),
            );
        }
        if self.logprobs.is_some_and(|n| n > super::MAX_TOP_LOGPROBS) {
            return Err(format!(
                "top_logprobs must be at most {}",
                super::MAX_TOP_LOGPROBS
            ));
        }
        if self.max_tokens == Some(0) {
            return Err("max_tokens must be at least 1".into());
        }
        Ok(())
    }

    /// The sampler chain, in llama-server's order: penalties, top-k, top-p, min-p, temperature,
    /// then a seeded draw (or greedy at temperature 0, which makes output reproducible).
    pub(crate) fn sampler(&self, n_vocab: i32) -> LlamaSampler {
        let mut chain = Vec::new();
        if !self.plain_logits() {
            chain.push(LlamaSampler::penalties(
                n_vocab,
                PENALTY_LAST_N,
                self.repeat_penalty,
                self.frequency_penalty,
                self.presence_penalty,
            ));
        }
        if self.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
            return LlamaSampler::chain_simple(chain);
        }
        if self.top_k > 0 {
            chain.push(LlamaSampler::top_k(self.top_k));
        }
        chain.extend(self.after_top_k());
        LlamaSampler::chain_simple(chain)
    }

    /// Whether the chain starts from the whole vocabulary's logits as they are: no penalties
    /// (they rewrite logits of recent tokens first). Then greedy and top-k can be taken
    /// straight from the logits (see `sample.rs`).
    pub(crate) fn plain_logits(&self) -> bool {
        self.repeat_penalty == 1.0 && self.presence_penalty == 0.0 && self.frequency_penalty == 0.0
    }

    /// The samplers after top-k: top-p, min-p, temperature, the seeded draw.
    pub(crate) fn after_top_k(&self) -> Vec<LlamaSampler> {
        let mut chain = Vec::new();
        if self.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(self.top_p, 1));
        }
        if self.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(self.min_p, 1));
        }
        chain.push(LlamaSampler::temp(self.temperature));
        chain.push(LlamaSampler::dist(self.seed.unwrap_or_else(random_seed)));
        chain
    }
}

fn random_seed() -> u32 {
    // The low bits of a v4 UUID are random; no need for a separate RNG crate.
    uuid::Uuid::new_v4().as_u128() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_parameter() {
        assert_eq!(SamplingParams::default().validate(), Ok(()));
        let bad = SamplingParams {
            temperature: -1.0,
            ..Default::default()
        };
        assert!(bad.validate().expect_err("bad").contains("temperature"));
        let bad = SamplingParams {
            top_p: f32::NAN,
            ..Default::default()
        };
        assert!(bad.validate().expect_err("bad").contains("top_p"));
        let bad = SamplingParams {
            stop: vec![String::new()],
            ..Default::default()
        };
        assert!(bad.validate().expect_err("bad").contains("stop"));
    }
}
