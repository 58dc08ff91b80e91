//! The GBNF grammar for a JSON schema: llama.cpp's converter, given only schemas whose every
//! keyword it enforces (checked by [`enforceable`], shared with the operator).

use serde_json::Value;

pub use llamafleet_crds::json_schema::{SchemaError, enforceable};

/// The grammar that makes the output a JSON object (OpenAI `json_object`, Ollama `"json"`).
pub fn json_object_grammar() -> Result<String, SchemaError> {
    convert(&serde_json::json!({"type": "object"}))
}

/// The grammar for `schema`, once every keyword in it is one the grammar enforces.
pub fn schema_grammar(schema: &Value) -> Result<String, SchemaError> {
    convert(&enforceable(schema)?)
}

/// llama.cpp's grammar for a schema made of [`enforceable`] parts.
pub fn convert(schema: &Value) -> Result<String, SchemaError> {
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| SchemaError::Invalid {
        path: "#".into(),
        what: format!("llama.cpp could not convert it ({e})"),
    })
}

#[cfg(test)]
mod tests;
