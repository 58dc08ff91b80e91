//! What a tool offered to a model must be: a name the model can write back exactly, and an
//! argument schema the engine can enforce. Shared by the agent (a request's `tools`) and the
//! operator (a preset's tools), so both refuse the same tools with the same words.

use serde_json::{Value, json};

use crate::json_schema::enforceable;

/// Longest tool name (OpenAI's limit).
pub const NAME_MAX: usize = 64;

/// A tool name as OpenAI allows them: 1 to [`NAME_MAX`] letters, digits, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > NAME_MAX || !name.chars().all(valid) {
        return Err(format!("{name:?}: 1 to {NAME_MAX} letters, digits, _ or -"));
    }
    Ok(())
}

/// A tool's argument schema ready to be combined with others into one call grammar: absent
/// (`null`) means an object of any arguments; it must describe an object, use only keywords
/// the grammar enforces, and refer only into its own `$defs`/`definitions` (which move with
/// it when the tools' schemas are combined).
pub fn arguments(parameters: &Value) -> Result<Value, String> {
    if parameters.is_null() {
        return Ok(json!({"type": "object", "properties": {}}));
    }
    if parameters.get("type").is_some_and(|t| t != "object") {
        return Err("the arguments must be an object".into());
    }
    let schema = enforceable(parameters).map_err(|e| e.to_string())?;
    local_refs_only(&schema, "#")?;
    Ok(schema)
}

/// The definition a local reference names (`#/$defs/X` or `#/definitions/X`).
pub fn def_name(reference: &str) -> Option<&str> {
    reference
        .strip_prefix("#/$defs/")
        .or_else(|| reference.strip_prefix("#/definitions/"))
}

/// The path of the first reference that does not point into `$defs`/`definitions`.
fn local_refs_only(node: &Value, path: &str) -> Result<(), String> {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match key.as_str() {
                    "$ref" => match value.as_str() {
                        Some(r) if def_name(r).is_some() => {}
                        _ => {
                            return Err(format!(
                                "$ref {value} at {path}: only references into $defs or definitions"
                            ));
                        }
                    },
                    "const" | "enum" | "default" | "examples" => {}
                    "properties" | "$defs" | "definitions" => {
                        for (name, schema) in value.as_object().into_iter().flatten() {
                            local_refs_only(schema, &format!("{path}/{key}/{name}"))?;
                        }
                    }
                    _ => local_refs_only(value, &format!("{path}/{key}"))?,
                }
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| local_refs_only(v, &format!("{path}/{i}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn names_follow_openai_alphabet() {
        assert!(check_name("get_weather-2").is_ok());
        for bad in ["", "get weather", "naïve", &"x".repeat(NAME_MAX + 1)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn arguments_are_an_enforceable_object_with_local_references() {
        assert_eq!(
            arguments(&Value::Null).unwrap(),
            json!({"type": "object", "properties": {}})
        );
        assert_eq!(
            arguments(&json!({"type": "string"})).unwrap_err(),
            "the arguments must be an object"
        );
        let unsupported = arguments(
            &json!({"type": "object", "properties": {"n": {"type": "number", "multipleOf": 2}}}),
        );
        assert!(unsupported.unwrap_err().contains("multipleOf"));
        assert!(arguments(&json!({"properties": {"a": {"$ref": "#/$defs/D"}}, "$defs": {"D": {"type": "string"}}})).is_ok());
        assert_eq!(
            arguments(
                &json!({"properties": {"a": {"type": "string"}, "b": {"$ref": "#/properties/a"}}})
            )
            .unwrap_err(),
            "$ref \"#/properties/a\" at #/properties/b: only references into $defs or definitions"
        );
    }
}
