//! Presets: a system prompt and parameters under a name, served as an extra model name on
//! both APIs (like an Ollama Modelfile).

use std::path::Path;

use serde::Deserialize;

use super::engine::SamplingParams;

/// One preset as written in the `--preset` YAML file (a list of these).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// The model name clients use.
    pub name: String,
    /// System prompt put before the conversation.
    #[serde(default)]
    pub system: Option<String>,
    /// Defaults a request may override.
    #[serde(default)]
    pub parameters: PresetParameters,
}

/// Sampling defaults of a preset (camelCase as in the LlmDeployment CRD; snake_case accepted).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PresetParameters {
    /// Temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(alias = "top_p")]
    pub top_p: Option<f32>,
    /// Top-k.
    #[serde(alias = "top_k")]
    pub top_k: Option<i32>,
    /// Min-p.
    #[serde(alias = "min_p")]
    pub min_p: Option<f32>,
    /// Repeat penalty.
    #[serde(alias = "repeat_penalty")]
    pub repeat_penalty: Option<f32>,
    /// Token limit.
    #[serde(alias = "max_tokens")]
    pub max_tokens: Option<u32>,
    /// Seed.
    pub seed: Option<u32>,
    /// Stop strings.
    #[serde(default)]
    pub stop: Vec<String>,
}

impl Preset {
    /// Applies the preset's defaults under the request's own settings.
    pub fn base_params(&self) -> SamplingParams {
        let p = &self.parameters;
        let d = SamplingParams::default();
        SamplingParams {
            temperature: p.temperature.unwrap_or(d.temperature),
            top_p: p.top_p.unwrap_or(d.top_p),
            top_k: p.top_k.unwrap_or(d.top_k),
            min_p: p.min_p.unwrap_or(d.min_p),
            repeat_penalty: p.repeat_penalty.unwrap_or(d.repeat_penalty),
            max_tokens: p.max_tokens,
            seed: p.seed,
            stop: p.stop.clone(),
            ..d
        }
    }
}

/// Reads and checks a preset file: names unique and distinct from the model's name.
pub fn load(path: &Path, model_name: &str) -> anyhow::Result<Vec<Preset>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading presets {}: {e}", path.display()))?;
    parse(&text, model_name)
}

/// Parses preset YAML.
pub fn parse(text: &str, model_name: &str) -> anyhow::Result<Vec<Preset>> {
    let presets: Vec<Preset> = serde_norway::from_str(text)?;
    let mut seen = std::collections::HashSet::new();
    for p in &presets {
        if p.name.is_empty() || p.name == model_name || !seen.insert(p.name.clone()) {
            anyhow::bail!(
                "preset name {:?} is empty, duplicated or the model's name",
                p.name
            );
        }
        p.base_params()
            .validate()
            .map_err(|e| anyhow::anyhow!("preset {:?}: {e}", p.name))?;
    }
    Ok(presets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_duplicates() {
        let yaml = "- name: pirate\n  system: Talk like a pirate.\n  parameters:\n    temperature: 0\n    maxTokens: 8\n    stop: [\"\\n\"]\n";
        let presets = parse(yaml, "m").expect("parse");
        assert_eq!(presets[0].base_params().max_tokens, Some(8));
        assert_eq!(presets[0].base_params().temperature, 0.0);
        assert!(parse(&format!("{yaml}{yaml}"), "m").is_err());
        assert!(parse("- name: m\n", "m").is_err());
        assert!(parse("- name: x\n  parameters: {topP: 7}\n", "m").is_err());
    }
}
