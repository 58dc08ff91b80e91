//! Presets: a system prompt and parameters under a name, served as an extra model name on
//! both APIs (like an Ollama Modelfile).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

pub use llamafleet_crds::PresetToolChoice;

use super::engine::{SamplingParams, Tool};
use super::tools::ToolChoice;

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
    /// Tools offered on the chat routes when the request brings none of its own.
    #[serde(default)]
    pub tools: Vec<PresetTool>,
    /// Whether the model must call one of `tools` (`required`) or may answer in text
    /// (`auto`, the default); a request's own `tool_choice` wins.
    #[serde(default, rename = "toolChoice", alias = "tool_choice")]
    pub tool_choice: Option<PresetToolChoice>,
    /// Whether an answer may hold several calls (default true); a request's own setting wins.
    #[serde(default, rename = "parallelToolCalls", alias = "parallel_tool_calls")]
    pub parallel_tool_calls: Option<bool>,
}

/// A function tool of a preset (the LlmDeployment CRD's form: no `{"type": "function"}`
/// wrapper).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PresetTool {
    /// Function name the model calls.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of the arguments (absent: no arguments).
    #[serde(default)]
    pub parameters: Value,
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

    /// The preset's tools as the engine takes them.
    pub fn engine_tools(&self) -> Vec<Tool> {
        self.tools
            .iter()
            .map(|t| Tool {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.parameters.clone(),
            })
            .collect()
    }

    /// The tool choice a request that names none gets with the preset's tools.
    pub(crate) fn default_tool_choice(&self) -> ToolChoice {
        match self.tool_choice {
            Some(PresetToolChoice::Required) => ToolChoice::Required,
            Some(PresetToolChoice::Auto) | None => ToolChoice::Auto,
        }
    }

    /// Tools as a request's would be checked (the same words as the operator's check).
    fn check_tools(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (i, tool) in self.tools.iter().enumerate() {
            let field = format!("tools[{i}]");
            llamafleet_crds::tools::check_name(&tool.name)
                .map_err(|e| anyhow::anyhow!("{field}.name {e}"))?;
            anyhow::ensure!(
                seen.insert(&tool.name),
                "{field}.name {:?} is given twice",
                tool.name
            );
            llamafleet_crds::tools::arguments(&tool.parameters)
                .map_err(|e| anyhow::anyhow!("{field}.parameters: {e}"))?;
        }
        anyhow::ensure!(
            (self.tool_choice.is_none() && self.parallel_tool_calls.is_none())
                || !self.tools.is_empty(),
            "toolChoice and parallelToolCalls need tools"
        );
        Ok(())
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
        p.check_tools()
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

    #[test]
    fn tools_are_checked_as_a_request_would_be() {
        let yaml = "- name: weather\n  toolChoice: required\n  tools:\n  - name: get_weather\n    description: Weather in a city.\n    parameters: {type: object, properties: {city: {type: string}}, required: [city]}\n";
        let presets = parse(yaml, "m").expect("parse");
        assert_eq!(presets[0].default_tool_choice(), ToolChoice::Required);
        let tools = presets[0].engine_tools();
        assert_eq!(tools[0].name, "get_weather");
        assert_eq!(tools[0].parameters["required"][0], "city");
        let refused = |yaml: &str| parse(yaml, "m").expect_err(yaml).to_string();
        assert!(
            refused("- name: x\n  tools: [{name: a b}]\n").contains("tools[0].name \"a b\""),
            "a name the model could not write back"
        );
        let unenforceable = refused(
            "- name: x\n  tools: [{name: f, parameters: {type: object, properties: {n: {type: number, multipleOf: 2}}}}]\n",
        );
        assert!(
            unenforceable.contains("tools[0].parameters: JSON schema at #/properties/n")
                && unenforceable.contains("multipleOf"),
            "a schema the grammar cannot enforce: {unenforceable}"
        );
        assert!(refused("- name: x\n  tools: [{name: f}, {name: f}]\n").contains("given twice"));
        assert!(
            refused("- name: x\n  toolChoice: required\n")
                .contains("toolChoice and parallelToolCalls need tools")
        );
        assert!(refused("- name: x\n  toolChoice: none\n  tools: [{name: f}]\n").contains("none"));
    }
}
