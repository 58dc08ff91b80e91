//! The operator hands agents the LlmDeployment's `spec.presets` serialised as the CRD type
//! (`presets.yaml` in the routing ConfigMap); `serve --preset` must read exactly that.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use llamafleet_agent::serve::presets;
use llamafleet_crds::{Preset, PresetTool, PresetToolChoice, SamplingParameters};

#[test]
fn the_crd_preset_list_is_a_valid_preset_file() {
    let crd = vec![Preset {
        name: "support-bot".into(),
        system: Some("Answer briefly, in Russian: «кратко».".into()),
        parameters: Some(SamplingParameters {
            temperature: Some(0.2),
            top_p: Some(0.9),
            top_k: Some(40),
            repeat_penalty: Some(1.1),
            max_tokens: Some(256),
            stop: vec!["\n\nUser:".into()],
        }),
        tools: vec![PresetTool {
            name: "lookup_order".into(),
            description: Some("Find an order by its number.".into()),
            parameters: Some(serde_json::json!({"type": "object",
                "properties": {"id": {"type": "integer"}}, "required": ["id"]})),
        }],
        tool_choice: Some(PresetToolChoice::Required),
        parallel_tool_calls: Some(false),
    }];
    let yaml = serde_norway::to_string(&crd).unwrap();
    let parsed = presets::parse(&yaml, "assistant").unwrap();
    assert_eq!(parsed.len(), 1);
    let p = &parsed[0];
    assert_eq!(p.name, "support-bot");
    assert_eq!(p.system.as_deref(), crd[0].system.as_deref());
    let params = p.base_params();
    assert_eq!(
        (params.temperature, params.top_p, params.top_k),
        (0.2, 0.9, 40)
    );
    assert_eq!(params.repeat_penalty, 1.1);
    assert_eq!(params.max_tokens, Some(256));
    assert_eq!(params.stop, vec!["\n\nUser:".to_string()]);
    assert_eq!(p.tool_choice, Some(presets::PresetToolChoice::Required));
    assert_eq!(p.parallel_tool_calls, Some(false));
    let tools = p.engine_tools();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "lookup_order");
    assert_eq!(
        tools[0].description.as_deref(),
        Some("Find an order by its number.")
    );
    assert_eq!(
        Some(&tools[0].parameters),
        crd[0].tools[0].parameters.as_ref()
    );
}
