//! The sampler settings that OpenAI's completion requests and Ollama's `options` both carry,
//! under the same names and with the same meaning (on OpenAI's side partly llama-server's
//! extensions): one type ([`SamplerFields`], in `crate::wire`), applied here, so a setting
//! added there reaches both APIs.

use crate::serve::engine::SamplingParams;
use crate::wire::openai_request::SamplerFields;

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
