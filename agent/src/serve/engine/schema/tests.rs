use serde_json::json;

use super::*;

fn refused(schema: Value) -> String {
    schema_grammar(&schema)
        .expect_err(&format!("{schema} must be refused"))
        .to_string()
}

#[test]
fn a_pydantic_schema_becomes_a_grammar() {
    // What pydantic 2 writes for a model with a nested model, an optional field, an enum,
    // a list and a bounded integer (openai's `parse` sends it with strict and no extra keys).
    let schema = json!({
        "$defs": {
            "Colour": {"enum": ["red", "green"], "title": "Colour", "type": "string"},
            "Point": {
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x", "y"], "title": "Point", "type": "object",
                "additionalProperties": false
            }
        },
        "properties": {
            "name": {"title": "Name", "type": "string"},
            "age": {"maximum": 150, "minimum": 0, "type": "integer"},
            "colour": {"$ref": "#/$defs/Colour"},
            "where": {"allOf": [{"$ref": "#/$defs/Point"}], "description": "location"},
            "tags": {"items": {"type": "string"}, "type": "array", "maxItems": 3},
            "nick": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null},
            "born": {"type": "string", "format": "date"},
            "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]+$"}
        },
        "required": ["name", "age", "colour", "where", "tags", "nick", "born", "code"],
        "title": "Person", "type": "object", "additionalProperties": false
    });
    let grammar = schema_grammar(&schema).expect("supported");
    assert!(grammar.contains("root ::="), "{grammar}");
    assert!(grammar.contains("\\\"name\\\""), "{grammar}");
    let object = json_object_grammar().expect("object grammar");
    assert!(object.contains("root ::="), "{object}");
}

#[test]
fn constructs_the_grammar_would_drop_are_refused_by_name() {
    let cases = [
        (json!({"type": "number", "minimum": 0}), "minimum"),
        (json!({"type": "integer", "multipleOf": 2}), "multipleOf"),
        (json!({"type": "array", "uniqueItems": true}), "uniqueItems"),
        (json!({"type": "string", "format": "email"}), "email"),
        (json!({"type": "string", "pattern": "^\\d+$"}), "\\d"),
        (json!({"type": "string", "pattern": "[a-z]+"}), "anchored"),
        (json!({"type": "string", "pattern": "^(?=a)b$"}), "(?"),
        (
            json!({"type": "string", "pattern": "^a$", "maxLength": 3}),
            "pattern beside",
        ),
        (json!({"oneOf": [{"type": "string"}]}), "oneOf"),
        (
            json!({"allOf": [{"type": "object"}, {"type": "object"}]}),
            "allOf",
        ),
        (json!({"not": {"type": "string"}}), "\"not\""),
        (
            json!({"$ref": "#/$defs/A", "type": "object"}),
            "beside \"$ref\"",
        ),
        (
            json!({"$ref": "https://example.com/s.json"}),
            "same document",
        ),
        (json!({"type": "object", "required": ["a"]}), "\"a\""),
        (
            json!({"type": "object", "patternProperties": {}}),
            "patternProperties",
        ),
        (
            json!({"type": "array", "items": [{"type": "string"}], "minItems": 2}),
            "minItems",
        ),
        (json!({"enum": ["a"], "maxLength": 1}), "beside enum"),
        (
            json!({"type": "string", "minLength": 2_000_000_000_u64}),
            "minLength above",
        ),
        (json!({"type": "array", "maxItems": 2001}), "maxItems above"),
        (
            json!({"type": "string", "pattern": "^a{99999}$"}),
            "repetition",
        ),
        (
            json!({"type": "string", "pattern": "^a{3,2}$"}),
            "repetition",
        ),
        (
            json!({"type": "integer", "minimum": 5, "maximum": 3}),
            "no integer",
        ),
        (
            json!({"type": "integer", "minimum": 0.2, "maximum": 0.8}),
            "no integer",
        ),
        (
            json!({"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 4}),
            "no integer",
        ),
        (json!({"type": "integer", "maximum": 1e30}), "9e18"),
        (
            json!({"type": "string", "minLength": 4, "maxLength": 2}),
            "minLength is above",
        ),
        (
            json!({"properties": {"tags": {"minItems": 2}}}),
            "minItems without",
        ),
        (json!({"type": "string", "pattern": "^a\"b$"}), "unescaped"),
        (json!({"type": "string", "pattern": "^a\\\\$"}), "unescaped"),
        (json!({"type": "string", "pattern": "^a\\n$"}), "unescaped"),
        (json!({"type": "string", "pattern": "^.+$"}), "\".\""),
        (json!({"type": "string", "pattern": "^[^@]+$"}), "negated"),
        (
            json!({"type": "string", "pattern": "^[ -~]+$"}),
            "admits a quote",
        ),
        (
            json!({"type": "string", "pattern": "^[z-a]$"}),
            "out of order",
        ),
        (
            json!({"properties": {"a": {"type": "integer", "maximum": 3, "exclusiveMaximum": 4}}}),
            "both",
        ),
    ];
    for (schema, named) in cases {
        let message = refused(schema.clone());
        assert!(message.contains(named), "{schema}: {message}");
    }
}

#[test]
fn the_error_names_where_in_the_schema() {
    let message = refused(json!({
        "type": "object",
        "properties": {"inner": {"type": "object", "properties": {"n": {"type": "number", "maximum": 1}}}}
    }));
    assert!(
        message.contains("#/properties/inner/properties/n"),
        "{message}"
    );
}

#[test]
fn invalid_schemas_are_errors_not_unconstrained_output() {
    assert!(matches!(
        schema_grammar(&json!({"type": "text"})),
        Err(SchemaError::Invalid { .. })
    ));
    assert!(matches!(
        schema_grammar(&json!({"enum": ["a", 1], "type": "string"})),
        Err(SchemaError::Invalid { .. })
    ));
    assert!(schema_grammar(&json!("string")).is_err());
    assert!(schema_grammar(&json!({"$ref": "#/$defs/Missing"})).is_err());
    // Data under const is not a schema: it is not rewritten.
    let grammar = schema_grammar(&json!({"const": {"allOf": [5]}})).expect("a const");
    assert!(grammar.contains("allOf"), "{grammar}");
}

#[test]
fn patterns_the_converter_translates_are_accepted() {
    for pattern in [
        "^[a-z]+$",
        "^(?:ab|cd){2,3}\\.x*$",
        "^\\x41\\u0042[\\-\\]a-c]?$",
        "^a{2}b{1,}c{,4}$",
    ] {
        let schema = json!({"type": "string", "pattern": pattern});
        assert!(schema_grammar(&schema).is_ok(), "{pattern}");
    }
}
