//! The sampler settings that OpenAI's completion requests and Ollama's `options` both carry,
//! under the same names and with the same meaning (on OpenAI's side partly llama-server's
//! extensions): read and applied in one place, so a setting added here reaches both APIs.

use serde::Deserialize;

use super::generate::OneOrMany;
use crate::serve::engine::SamplingParams;

/// Flattened into a request (OpenAI) or into Ollama's `options`; each field overrides the
/// preset's value when present.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct SamplerFields {
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    /// The same seed and request give the same answer; llama.cpp's sampler takes 32 bits.
    seed: Option<i64>,
    stop: Option<OneOrMany>,
}

impl SamplerFields {
    pub(crate) fn apply(self, p: &mut SamplingParams) {
        p.temperature = self.temperature.unwrap_or(p.temperature);
        p.top_p = self.top_p.unwrap_or(p.top_p);
        p.top_k = self.top_k.unwrap_or(p.top_k);
        p.min_p = self.min_p.unwrap_or(p.min_p);
        p.repeat_penalty = self.repeat_penalty.unwrap_or(p.repeat_penalty);
        p.presence_penalty = self.presence_penalty.unwrap_or(p.presence_penalty);
        p.frequency_penalty = self.frequency_penalty.unwrap_or(p.frequency_penalty);
        if let Some(seed) = self.seed {
            p.seed = Some(seed as u32);
        }
        if let Some(stop) = self.stop {
            p.stop = stop.into_vec();
        }
    }
}
