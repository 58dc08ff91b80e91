//! Which JSON schemas constrained decoding can enforce. Shared by the agent (a request's
//! `response_format`, `format` and tools, refused with a 400 that names the construct) and
//! the operator (a preset's tools, refused in the LlmDeployment's status before any pod
//! starts), which never links llama.cpp; the agent turns what passes into a grammar.
//!
//! llama.cpp's converter (`common/json-schema.cpp`, `json-schema-to-grammar.cpp`) skips
//! keywords it does not know (`multipleOf`, `uniqueItems`, bounds on numbers, most formats,
//! `not`, ...) and turns a regex it cannot translate into "any string" with a warning on
//! stderr. Either would produce output that does not validate while the client believes it
//! does. So every keyword is checked here first, against what that converter honours, and
//! anything else is refused with the JSON pointer and the keyword. Written by hand: the check
//! is about one C++ converter's coverage, which no crate describes.

use serde_json::{Map, Value};

/// Keywords that describe a schema without constraining values: allowed anywhere.
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "default",
    "examples",
    "$schema",
    "$id",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
];
/// The types the converter knows.
const TYPES: &[&str] = &[
    "object", "array", "string", "integer", "number", "boolean", "null",
];
/// String formats the converter has rules for; any other format would be ignored.
const FORMATS: &[&str] = &[
    "date",
    "time",
    "date-time",
    "uuid",
    "uuid1",
    "uuid2",
    "uuid3",
    "uuid4",
    "uuid5",
];
/// Regex nesting the converter accepts (its `MAX_PATTERN_DEPTH`).
const MAX_PATTERN_DEPTH: usize = 100;
/// Largest count (`maxLength`, `minItems`, `{m,n}`, ...): llama.cpp's grammar parser refuses
/// more (`MAX_REPETITION_THRESHOLD` in `llama-grammar.cpp`), because it expands a repetition
/// into one rule per count; refusing here names the keyword.
const MAX_REPETITION: u64 = 2000;

/// A schema constrained decoding cannot enforce, or one that is not a schema at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// A construct the grammar cannot enforce.
    #[error("JSON schema at {path}: {what} is not supported by constrained decoding")]
    Unsupported {
        /// JSON pointer of the schema node (`#` is the root).
        path: String,
        /// The keyword or construct.
        what: String,
    },
    /// Not a valid schema.
    #[error("JSON schema at {path}: {what}")]
    Invalid {
        /// JSON pointer of the schema node.
        path: String,
        /// What is wrong.
        what: String,
    },
}

/// `schema` simplified and checked: every keyword in it is one the grammar enforces, so it
/// may be embedded in a larger schema given to the grammar converter (tool calls are built so).
pub fn enforceable(schema: &Value) -> Result<Value, SchemaError> {
    let mut schema = schema.clone();
    simplify(&mut schema);
    check(&schema, "#")?;
    Ok(schema)
}

fn unsupported(path: &str, what: impl Into<String>) -> SchemaError {
    SchemaError::Unsupported {
        path: path.into(),
        what: what.into(),
    }
}

fn invalid(path: &str, what: impl Into<String>) -> SchemaError {
    SchemaError::Invalid {
        path: path.into(),
        what: what.into(),
    }
}

/// `{"allOf": [X]}` with nothing but annotations beside it is X (pydantic writes a `$ref`
/// with a description that way); the converter would only merge object properties.
fn simplify(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            // Values under these keys are data, not schemas: they stay as written.
            for (key, value) in map.iter_mut() {
                if !matches!(key.as_str(), "const" | "enum" | "default" | "examples") {
                    simplify(value);
                }
            }
            let single = map
                .get("allOf")
                .and_then(Value::as_array)
                .filter(|all| all.len() == 1)
                .map(|all| all[0].clone());
            let only_annotations = map
                .keys()
                .all(|k| k == "allOf" || ANNOTATIONS.contains(&k.as_str()));
            if let (Some(inner), true) = (single, only_annotations) {
                *schema = inner;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(simplify),
        _ => {}
    }
}

fn check(schema: &Value, path: &str) -> Result<(), SchemaError> {
    let Value::Object(node) = schema else {
        return Err(unsupported(path, "a schema that is not an object"));
    };
    for key in ["$defs", "definitions"] {
        if let Some(defs) = node.get(key) {
            let defs = defs
                .as_object()
                .ok_or_else(|| invalid(path, format!("{key} must be an object")))?;
            for (name, def) in defs {
                check(def, &format!("{path}/{key}/{name}"))?;
            }
        }
    }
    let mut keys: Vec<&str> = node
        .keys()
        .map(String::as_str)
        .filter(|k| !ANNOTATIONS.contains(k) && *k != "$defs" && *k != "definitions")
        .collect();
    // These replace the node in the converter: any other keyword beside them is skipped.
    for exclusive in ["$ref", "anyOf"] {
        if node.contains_key(exclusive) {
            if let Some(other) = keys.iter().find(|k| **k != exclusive) {
                return Err(unsupported(path, format!("{other:?} beside {exclusive:?}")));
            }
            return match exclusive {
                "$ref" => check_ref(&node["$ref"], path),
                _ => check_each(&node["anyOf"], &format!("{path}/anyOf"), true),
            };
        }
    }
    let types = types(node, path)?;
    keys.retain(|k| *k != "type");
    if let Some(values) = node.get("enum").or_else(|| node.get("const")) {
        return check_values(node, values, &types, &keys, path);
    }
    for key in keys {
        check_keyword(node, key, &types, path)?;
    }
    check_counts(node, path)?;
    check_required(node, path)
}

/// The `type` (one name or several), empty when absent.
fn types<'a>(node: &'a Map<String, Value>, path: &str) -> Result<Vec<&'a str>, SchemaError> {
    let names: Vec<&Value> = match node.get("type") {
        None => return Ok(Vec::new()),
        Some(Value::Array(names)) if !names.is_empty() => names.iter().collect(),
        Some(one) => vec![one],
    };
    names
        .into_iter()
        .map(|name| match name.as_str() {
            Some(t) if TYPES.contains(&t) => Ok(t),
            _ => Err(invalid(path, format!("unknown type {name}"))),
        })
        .collect()
}

fn check_ref(reference: &Value, path: &str) -> Result<(), SchemaError> {
    match reference.as_str() {
        Some(r) if r.starts_with("#/") => Ok(()),
        _ => Err(unsupported(
            path,
            format!("$ref {reference} (only references into the same document, \"#/...\")"),
        )),
    }
}

fn check_each(schemas: &Value, path: &str, non_empty: bool) -> Result<(), SchemaError> {
    let list = schemas
        .as_array()
        .filter(|l| !non_empty || !l.is_empty())
        .ok_or_else(|| invalid(path, "must be a non-empty array of schemas"))?;
    for (i, schema) in list.iter().enumerate() {
        check(schema, &format!("{path}/{i}"))?;
    }
    Ok(())
}

/// `enum`/`const` decide the value on their own; a `type` beside them must admit every value.
fn check_values(
    node: &Map<String, Value>,
    values: &Value,
    types: &[&str],
    keys: &[&str],
    path: &str,
) -> Result<(), SchemaError> {
    if let Some(other) = keys.iter().find(|k| !matches!(**k, "enum" | "const")) {
        return Err(unsupported(path, format!("{other:?} beside enum/const")));
    }
    let values: Vec<&Value> = match (node.get("enum"), node.get("const")) {
        (Some(_), Some(_)) => return Err(unsupported(path, "enum and const together")),
        (Some(Value::Array(list)), None) if !list.is_empty() => list.iter().collect(),
        (Some(_), None) => return Err(invalid(path, "enum must be a non-empty array")),
        _ => vec![values],
    };
    match values
        .iter()
        .find(|v| !types.is_empty() && !has_type(v, types))
    {
        Some(v) => Err(invalid(path, format!("{v} is not of type {types:?}"))),
        None => Ok(()),
    }
}

fn has_type(value: &Value, types: &[&str]) -> bool {
    let name = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    types.contains(&name) || (name == "integer" && types.contains(&"number"))
}

fn check_keyword(
    node: &Map<String, Value>,
    key: &str,
    types: &[&str],
    path: &str,
) -> Result<(), SchemaError> {
    let value = &node[key];
    match key {
        "properties" => {
            let properties = value
                .as_object()
                .ok_or_else(|| invalid(path, "properties must be an object"))?;
            for (name, property) in properties {
                check(property, &format!("{path}/properties/{name}"))?;
            }
            Ok(())
        }
        "required" => Ok(()),
        "additionalProperties" => match value {
            Value::Bool(_) => Ok(()),
            schema => check(schema, &format!("{path}/additionalProperties")),
        },
        "items" | "prefixItems" => check_items(node, key, path),
        // Without an array type or items the converter takes the node for "any value".
        "minItems" | "maxItems"
            if !types.contains(&"array")
                && !node.contains_key("items")
                && !node.contains_key("prefixItems") =>
        {
            Err(unsupported(
                path,
                format!("{key} without \"type\": \"array\""),
            ))
        }
        "minItems" | "maxItems" | "minLength" | "maxLength" => count(value, key, path),
        "pattern" if has_any(node, &["minLength", "maxLength", "format"]) => Err(unsupported(
            path,
            "pattern beside minLength, maxLength or format",
        )),
        "pattern" => match value.as_str() {
            Some(pattern) => check_pattern(pattern)
                .map_err(|what| unsupported(path, format!("pattern {pattern:?}: {what}"))),
            None => Err(invalid(path, "pattern must be a string")),
        },
        "format" if has_any(node, &["minLength", "maxLength"]) => {
            Err(unsupported(path, "format beside minLength or maxLength"))
        }
        "format" => match value.as_str() {
            Some(f) if FORMATS.contains(&f) => Ok(()),
            _ => Err(unsupported(path, format!("format {value}"))),
        },
        "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
            check_bound(node, key, types, path)
        }
        "allOf" => Err(unsupported(path, "allOf with more than one schema")),
        "oneOf" => Err(unsupported(
            path,
            "oneOf (its alternatives need not exclude each other; use anyOf)",
        )),
        other => Err(unsupported(path, format!("keyword {other:?}"))),
    }
}

fn has_any(node: &Map<String, Value>, keys: &[&str]) -> bool {
    keys.iter().any(|k| node.contains_key(*k))
}

fn count(value: &Value, key: &str, path: &str) -> Result<(), SchemaError> {
    match value.as_u64() {
        Some(n) if n <= MAX_REPETITION => Ok(()),
        Some(_) => Err(unsupported(path, format!("{key} above {MAX_REPETITION}"))),
        _ => Err(invalid(
            path,
            format!("{key} must be a non-negative integer"),
        )),
    }
}

fn check_items(node: &Map<String, Value>, key: &str, path: &str) -> Result<(), SchemaError> {
    if key == "prefixItems" && node.contains_key("items") {
        return Err(unsupported(path, "prefixItems beside items"));
    }
    match &node[key] {
        Value::Array(tuple) => {
            // A tuple has exactly its items; bounds that disagree would be dropped.
            let n = tuple.len() as u64;
            let min = node.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let max = node.get("maxItems").and_then(Value::as_u64).unwrap_or(n);
            if min > n || max < n {
                return Err(unsupported(
                    path,
                    format!("minItems/maxItems that exclude the {n} items of {key}"),
                ));
            }
            check_each(&node[key], &format!("{path}/{key}"), false)
        }
        schema => check(schema, &format!("{path}/{key}")),
    }
}

/// Bounds are enforced on integers only, one lower and one upper.
fn check_bound(
    node: &Map<String, Value>,
    key: &str,
    types: &[&str],
    path: &str,
) -> Result<(), SchemaError> {
    if !types.contains(&"integer") || types.contains(&"number") {
        return Err(unsupported(
            path,
            format!("{key} without \"type\": \"integer\" (bounds hold on integers only)"),
        ));
    }
    let both = |a: &str, b: &str| node.contains_key(a) && node.contains_key(b);
    if both("minimum", "exclusiveMinimum") || both("maximum", "exclusiveMaximum") {
        return Err(unsupported(path, "both a bound and its exclusive form"));
    }
    // The converter reads bounds as 64-bit integers (rounded inwards); an empty range would
    // leave the grammar no token to write.
    let bound = |k: &str| -> Result<Option<f64>, SchemaError> {
        match node.get(k).map(|v| v.as_f64()) {
            None => Ok(None),
            Some(Some(x)) if x.abs() < 9.0e18 => Ok(Some(x)),
            Some(_) => Err(invalid(path, format!("{k} must be a number within ±9e18"))),
        }
    };
    let lower = match (bound("minimum")?, bound("exclusiveMinimum")?) {
        (Some(m), _) => Some(m.ceil()),
        (None, Some(e)) => Some(e.floor() + 1.0),
        _ => None,
    };
    let upper = match (bound("maximum")?, bound("exclusiveMaximum")?) {
        (Some(m), _) => Some(m.floor()),
        (None, Some(e)) => Some(e.ceil() - 1.0),
        _ => None,
    };
    if let (Some(lower), Some(upper)) = (lower, upper)
        && lower > upper
    {
        return Err(invalid(path, "no integer lies between its bounds"));
    }
    Ok(())
}

/// Lower counts above upper ones leave nothing to write.
fn check_counts(node: &Map<String, Value>, path: &str) -> Result<(), SchemaError> {
    for (min, max) in [("minLength", "maxLength"), ("minItems", "maxItems")] {
        let count = |k: &str| node.get(k).and_then(Value::as_u64);
        if let (Some(lo), Some(hi)) = (count(min), count(max))
            && lo > hi
        {
            return Err(invalid(path, format!("{min} is above {max}")));
        }
    }
    Ok(())
}

/// Every required property must be one the grammar can write.
fn check_required(node: &Map<String, Value>, path: &str) -> Result<(), SchemaError> {
    let Some(required) = node.get("required") else {
        return Ok(());
    };
    let names = required
        .as_array()
        .ok_or_else(|| invalid(path, "required must be an array"))?;
    let properties = node.get("properties").and_then(Value::as_object);
    for name in names {
        let name = name
            .as_str()
            .ok_or_else(|| invalid(path, "required must list property names"))?;
        if !properties.is_some_and(|p| p.contains_key(name)) {
            return Err(unsupported(
                path,
                format!("required property {name:?} that is not in properties"),
            ));
        }
    }
    Ok(())
}

/// Mirrors what the converter's `_pattern_to_rule` translates, and what it translates into
/// valid JSON: it writes the pattern's characters into the JSON string unescaped, so a quote,
/// a backslash or a control character (and `.` or a negated class, which admit them) would
/// end or break the string. Anything else it would replace by "any string".
fn check_pattern(pattern: &str) -> Result<(), String> {
    let inner = pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .ok_or("it is not anchored with ^ and $")?;
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let (c, len) = escape(&chars, i, true)?;
                json_safe(c)?;
                i += len;
            }
            '(' => {
                if chars.get(i + 1) == Some(&'?') {
                    if chars.get(i + 2) != Some(&':') {
                        return Err("group syntax \"(?\" other than \"(?:\"".into());
                    }
                    i += 2;
                }
                depth += 1;
                if depth > MAX_PATTERN_DEPTH {
                    return Err("nesting deeper than 100 groups".into());
                }
                i += 1;
            }
            ')' => {
                depth = depth.checked_sub(1).ok_or("unbalanced parentheses")?;
                i += 1;
            }
            '^' | '$' => return Err("an anchor inside the pattern".into()),
            '.' => return Err("\".\" (it admits quotes and backslashes; use a class)".into()),
            '[' => i = class_end(&chars, i)?,
            '{' => i = repetition_end(&chars, i)?,
            ']' | '}' => return Err(format!("a stray {:?}", chars[i])),
            c => {
                json_safe(c)?;
                i += 1;
            }
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    Ok(())
}

/// A character the grammar can write into a JSON string as it is.
fn json_safe(c: char) -> Result<(), String> {
    if c < ' ' || c == '"' || c == '\\' {
        return Err(format!(
            "the character {c:?}, which would be written unescaped into the JSON string"
        ));
    }
    Ok(())
}

/// The character an escape at `i` stands for, and its length: a regex metacharacter (outside
/// classes), or one the grammar knows (`\t \r \n \\ \" \[ \] \-`, `\xHH`, `\uHHHH`,
/// `\UHHHHHHHH`). `\d`, `\w`, `\s`, `\b` and the like have no grammar equivalent there.
fn escape(chars: &[char], i: usize, outside_class: bool) -> Result<(char, usize), String> {
    let Some(&next) = chars.get(i + 1) else {
        return Err("a trailing backslash".into());
    };
    if outside_class && "^$.[]()|{}*+?".contains(next) {
        return Ok((next, 2));
    }
    let hex = match next {
        't' => return Ok(('\t', 2)),
        'r' => return Ok(('\r', 2)),
        'n' => return Ok(('\n', 2)),
        '\\' | '"' | '[' | ']' | '-' => return Ok((next, 2)),
        'x' => 2,
        'u' => 4,
        'U' => 8,
        _ => return Err(format!("the escape \\{next}")),
    };
    let digits: String = chars
        .get(i + 2..i + 2 + hex)
        .unwrap_or_default()
        .iter()
        .collect();
    match u32::from_str_radix(&digits, 16)
        .ok()
        .and_then(char::from_u32)
    {
        Some(c) if digits.len() == hex => Ok((c, 2 + hex)),
        _ => Err(format!("the escape \\{next} without {hex} hex digits")),
    }
}

/// Index after the character class that starts at `i`; its characters and ranges must be
/// JSON-safe and in order.
fn class_end(chars: &[char], mut i: usize) -> Result<usize, String> {
    i += 1;
    if chars.get(i) == Some(&'^') {
        return Err("a negated class \"[^...]\" (it admits quotes and backslashes)".into());
    }
    let mut previous: Option<char> = None;
    let mut range = false;
    while i < chars.len() && chars[i] != ']' {
        let (c, len) = match chars[i] {
            '\\' => escape(chars, i, false)?,
            '-' if previous.is_some() && chars.get(i + 1).is_some_and(|n| *n != ']') => {
                range = true;
                i += 1;
                continue;
            }
            c => (c, 1),
        };
        json_safe(c)?;
        if range {
            let from = previous.take().unwrap_or(c);
            if from > c {
                return Err(format!("the range {from:?}-{c:?}, which is out of order"));
            }
            if (from..=c).contains(&'"') || (from..=c).contains(&'\\') {
                return Err(format!(
                    "the range {from:?}-{c:?}, which admits a quote or backslash"
                ));
            }
            range = false;
        } else {
            previous = Some(c);
        }
        i += len;
    }
    if i >= chars.len() {
        return Err("an unterminated character class".into());
    }
    Ok(i + 1)
}

/// Index after `{n}`, `{n,}`, `{,m}` or `{n,m}` at `i`.
fn repetition_end(chars: &[char], i: usize) -> Result<usize, String> {
    let close = chars[i..]
        .iter()
        .position(|&c| c == '}')
        .ok_or("unterminated curly brackets")?;
    let body: String = chars[i + 1..i + close].iter().collect();
    let parts: Vec<&str> = body.split(',').collect();
    let number = |s: &str| s.parse::<u64>().ok().filter(|n| *n <= MAX_REPETITION);
    let ok = match parts.as_slice() {
        [n] => number(n).is_some(),
        [n, m] => {
            let lo = if n.is_empty() { Some(0) } else { number(n) };
            let hi = if m.is_empty() {
                Some(MAX_REPETITION)
            } else {
                number(m)
            };
            matches!((lo, hi), (Some(lo), Some(hi)) if lo <= hi)
        }
        _ => false,
    };
    if !ok {
        return Err(format!(
            "the repetition {{{body}}} (counts up to {MAX_REPETITION}, the first not above the second)"
        ));
    }
    Ok(i + close + 1)
}
