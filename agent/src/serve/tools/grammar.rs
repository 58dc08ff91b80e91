//! The grammar a tool call is sampled under: the call's JSON (the tool's name and arguments
//! that validate against its parameters schema) wrapped in the model's syntax, so a `required`
//! or named call always parses, and an `auto` call parses once it has started (a lazy grammar
//! triggered by the syntax's opening).

use serde_json::{Map, Value, json};

use llamafleet_crds::tools::def_name;

use crate::serve::engine::{SchemaError, Tool, ToolSyntax, convert};

/// A grammar and what switches it on: words found anywhere, or regexes over the whole output
/// so far (llama.cpp's lazy grammar); both empty: it applies from the first token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Constraint {
    pub grammar: String,
    pub triggers: Vec<String>,
    pub patterns: Vec<String>,
}

/// A Llama 3 call is the whole answer: a JSON object whose first key is "name". The grammar
/// applies from the `{` (the capture group) when the answer opens so.
const LLAMA3_OPENING: &str = r#"^\s*(?:<\|python_tag\|>)?\s*(\{\s*"name"[\s\S]*)$"#;

/// The key the model writes the arguments under.
fn arguments_key(syntax: ToolSyntax) -> &'static str {
    match syntax {
        ToolSyntax::Llama3 => "parameters",
        _ => "arguments",
    }
}

/// The opening of a call anywhere in the model's output; `None` for the generic form (all
/// JSON) and Llama 3 (a call is the whole answer).
pub(crate) fn marker(syntax: ToolSyntax) -> Option<&'static str> {
    match syntax {
        ToolSyntax::Hermes => Some("<tool_call>"),
        ToolSyntax::Mistral => Some("[TOOL_CALLS]"),
        ToolSyntax::Llama3 | ToolSyntax::Generic => None,
    }
}

/// The texts that open a call and may be special tokens of the model's vocabulary (hidden
/// from the output unless preserved; the grammar and the parser need them).
pub(crate) fn opening_tokens(syntax: ToolSyntax) -> Vec<String> {
    match syntax {
        ToolSyntax::Llama3 => vec!["<|python_tag|>".to_owned()],
        other => marker(other).into_iter().map(str::to_owned).collect(),
    }
}

/// The grammar for calls of `tools` (already narrowed to the named tool), `lazy` for `auto`
/// with a native syntax. Parameters schemas are checked beforehand (`super::checked_tools`).
pub(crate) fn constraint(
    syntax: ToolSyntax,
    tools: &[Tool],
    required: bool,
    parallel: bool,
) -> Result<Constraint, SchemaError> {
    let (call, defs) = any_call(tools, arguments_key(syntax));
    let calls = |call: Value| {
        let mut list = json!({"type": "array", "items": call, "minItems": 1});
        if !parallel {
            list["maxItems"] = json!(1);
        }
        list
    };
    let with_defs = |mut schema: Value| {
        if !defs.is_empty() {
            schema["$defs"] = Value::Object(defs.clone());
        }
        schema
    };
    let lazy = |grammar: String| Constraint {
        triggers: match (required, marker(syntax)) {
            (false, Some(m)) => vec![m.to_owned()],
            _ => Vec::new(),
        },
        patterns: if !required && syntax == ToolSyntax::Llama3 {
            vec![LLAMA3_OPENING.to_owned()]
        } else {
            Vec::new()
        },
        grammar,
    };
    Ok(match syntax {
        ToolSyntax::Generic => {
            let with_calls = json!({"type": "object", "properties": {"tool_calls": calls(call)},
                "required": ["tool_calls"], "additionalProperties": false});
            let root = if required {
                with_calls
            } else {
                let response = json!({"type": "object",
                    "properties": {"response": {"type": "string"}},
                    "required": ["response"], "additionalProperties": false});
                json!({"anyOf": [with_calls, response]})
            };
            Constraint {
                grammar: convert(&with_defs(root))?,
                triggers: Vec::new(),
                patterns: Vec::new(),
            }
        }
        ToolSyntax::Hermes => {
            let json = rename_root(&convert(&with_defs(call))?, "lf-call");
            let one = r#""<tool_call>\n" lf-call "\n</tool_call>""#;
            let more = if parallel {
                format!(r#" ( "\n" {one} )*"#)
            } else {
                String::new()
            };
            lazy(format!("root ::= {one}{more}\n{json}"))
        }
        ToolSyntax::Mistral => {
            let json = rename_root(&convert(&with_defs(calls(call)))?, "lf-calls");
            lazy(format!("root ::= \"[TOOL_CALLS]\" lf-calls\n{json}"))
        }
        ToolSyntax::Llama3 => {
            let json = rename_root(&convert(&with_defs(call))?, "lf-call");
            lazy(format!("root ::= lf-call\n{json}"))
        }
    })
}

/// The schema of one call of any of `tools` (`{"name": <const>, <key>: <parameters>}`), with
/// each tool's `$defs` moved to the root under a per-tool prefix, since references resolve
/// from the root of the combined schema.
fn any_call(tools: &[Tool], key: &str) -> (Value, Map<String, Value>) {
    let mut defs = Map::new();
    let mut calls: Vec<Value> = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let mut parameters = tool.parameters.clone();
            let prefix = format!("t{i}-");
            if let Value::Object(map) = &mut parameters {
                for defs_key in ["$defs", "definitions"] {
                    if let Some(Value::Object(own)) = map.remove(defs_key) {
                        for (name, mut def) in own {
                            // Definitions refer to their own tool's definitions.
                            prefix_refs(&mut def, &prefix);
                            defs.insert(format!("{prefix}{name}"), def);
                        }
                    }
                }
            }
            let mut call = json!({"type": "object",
                "properties": {"name": {"const": tool.name}, key: parameters},
                "required": ["name", key], "additionalProperties": false});
            prefix_refs(&mut call, &prefix);
            call
        })
        .collect();
    let call = if calls.len() == 1 {
        calls.remove(0)
    } else {
        json!({"anyOf": calls})
    };
    (call, defs)
}

/// Rewrites the `#/$defs/X` and `#/definitions/X` references of a schema node to
/// `#/$defs/<prefix>X` (the only references tools may use: [`llamafleet_crds::tools::arguments`]).
fn prefix_refs(node: &mut Value, prefix: &str) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "$ref" => {
                        if let Some(name) = value.as_str().and_then(def_name) {
                            *value = Value::String(format!("#/$defs/{prefix}{name}"));
                        }
                    }
                    // Data, not schemas.
                    "const" | "enum" | "default" | "examples" => {}
                    // Maps of names to schemas: a property may be called "default".
                    "properties" | "$defs" | "definitions" => {
                        if let Value::Object(schemas) = value {
                            schemas.values_mut().for_each(|v| prefix_refs(v, prefix));
                        }
                    }
                    _ => prefix_refs(value, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| prefix_refs(v, prefix)),
        _ => {}
    }
}

/// `gbnf` with its rule `root` named `to` (definition and references), so it can be a part of
/// a larger grammar. Rule names are runs of letters, digits and `-`; text inside string
/// literals and character classes is left alone.
pub(crate) fn rename_root(gbnf: &str, to: &str) -> String {
    let mut out = String::with_capacity(gbnf.len() + 16);
    let mut chars = gbnf.chars().peekable();
    let mut ident = String::new();
    let flush = |ident: &mut String, out: &mut String| {
        out.push_str(if ident == "root" { to } else { ident });
        ident.clear();
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            ident.push(c);
            continue;
        }
        flush(&mut ident, &mut out);
        out.push(c);
        let close = match c {
            '"' => '"',
            '[' => ']',
            _ => continue,
        };
        // Copy the literal or class through its closing character, escapes included.
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else if c == close {
                break;
            }
        }
    }
    flush(&mut ident, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tool(name: &str, parameters: Value) -> Tool {
        Tool {
            name: name.into(),
            description: None,
            parameters,
        }
    }

    #[test]
    fn renaming_root_leaves_literals_classes_and_longer_names_alone() {
        let gbnf = "root ::= \"{\" root-kv \"root\" [root\\]] \"\\\"root\" root\nroot-kv ::= root";
        assert_eq!(
            rename_root(gbnf, "lf-call"),
            "lf-call ::= \"{\" root-kv \"root\" [root\\]] \"\\\"root\" lf-call\nroot-kv ::= lf-call"
        );
    }

    #[test]
    fn definitions_of_each_tool_move_to_the_root_under_its_prefix() {
        let weather = tool(
            "weather",
            json!({"type": "object", "properties": {"place": {"$ref": "#/$defs/Place"}},
                "$defs": {"Place": {"type": "string"}}}),
        );
        let time = tool(
            "time",
            json!({"type": "object", "properties": {"zone": {"$ref": "#/definitions/Zone"}},
                "definitions": {"Zone": {"$ref": "#/definitions/Place"},
                    "Place": {"type": "integer"}}}),
        );
        let tools = [weather, time];
        let (call, defs) = any_call(&tools, "arguments");
        assert_eq!(defs["t0-Place"], json!({"type": "string"}));
        assert_eq!(defs["t1-Place"], json!({"type": "integer"}));
        assert_eq!(defs["t1-Zone"], json!({"$ref": "#/$defs/t1-Place"}));
        assert_eq!(
            call["anyOf"][1]["properties"]["arguments"]["properties"]["zone"]["$ref"],
            "#/$defs/t1-Zone"
        );
        // llama.cpp resolves every reference (it fails on an unknown one).
        let c = constraint(ToolSyntax::Hermes, &tools, true, true).unwrap();
        assert!(c.grammar.contains("t1-Zone"), "{}", c.grammar);
        // The call's keys in the order models are taught: name first.
        let name_first = r#"alternative-0 ::= "{" space alternative-0-name-kv"#;
        assert!(c.grammar.contains(name_first), "{}", c.grammar);
        let dangling = tool("x", json!({"properties": {"a": {"$ref": "#/$defs/Nope"}}}));
        assert!(constraint(ToolSyntax::Hermes, &[dangling], true, true).is_err());
    }

    #[test]
    fn references_under_properties_named_like_keywords_are_moved_too() {
        let t = tool(
            "f",
            json!({"properties": {"default": {"$ref": "#/$defs/D"}, "enum": {"$ref": "#/$defs/D"}},
                "$defs": {"D": {"type": "string"}}}),
        );
        let (call, _) = any_call(&[t], "arguments");
        let props = &call["properties"]["arguments"]["properties"];
        assert_eq!(props["default"]["$ref"], "#/$defs/t0-D");
        assert_eq!(props["enum"]["$ref"], "#/$defs/t0-D");
    }

    #[test]
    fn each_syntax_wraps_the_call_and_auto_is_lazy_on_its_opening() {
        let tools = [tool("f", json!({"type": "object"}))];
        let hermes = constraint(ToolSyntax::Hermes, &tools, false, false).unwrap();
        assert!(
            hermes
                .grammar
                .starts_with("root ::= \"<tool_call>\\n\" lf-call")
        );
        assert_eq!(hermes.triggers, ["<tool_call>"]);
        let required = constraint(ToolSyntax::Hermes, &tools, true, true).unwrap();
        assert!(required.triggers.is_empty());
        assert!(required.grammar.contains(")*"));
        let mistral = constraint(ToolSyntax::Mistral, &tools, false, true).unwrap();
        assert!(
            mistral
                .grammar
                .starts_with("root ::= \"[TOOL_CALLS]\" lf-calls")
        );
        let generic = constraint(ToolSyntax::Generic, &tools, false, true).unwrap();
        assert!(generic.triggers.is_empty());
        assert!(generic.grammar.contains("response"));
    }
}
