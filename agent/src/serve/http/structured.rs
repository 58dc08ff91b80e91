//! Structured outputs: OpenAI `response_format` and Ollama `format` become a grammar the
//! engine samples under, so the answer parses (and validates against the schema). A schema
//! the grammar cannot enforce is a 400 that names the construct, never free text.

use serde_json::Value;

use super::{ApiError, Flavor};
use crate::serve::engine::{SchemaError, json_object_grammar, schema_grammar};
use crate::wire::openai_request::ResponseFormat;

impl ResponseFormat {
    /// The grammar the engine samples under, `None` for free text.
    pub(crate) fn grammar(&self) -> Result<Option<String>, ApiError> {
        let flavor = Flavor::OpenAi;
        let grammar = match self {
            ResponseFormat::Text {} => return Ok(None),
            ResponseFormat::JsonObject {} => json_object_grammar(),
            ResponseFormat::JsonSchema { json_schema } => {
                if json_schema.name.is_empty() {
                    return Err(ApiError::bad_request(
                        flavor,
                        "response_format.json_schema.name must not be empty",
                    ));
                }
                match &json_schema.schema {
                    None => json_object_grammar(),
                    Some(schema) => schema_grammar(schema),
                }
            }
        };
        grammar
            .map(Some)
            .map_err(|e| refused(flavor, "response_format", e))
    }
}

/// Ollama `format`: `"json"`, a JSON schema, or `""`/absent for free text.
pub(crate) fn ollama_format(format: Option<&Value>) -> Result<Option<String>, ApiError> {
    let flavor = Flavor::Ollama;
    let grammar = match format {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) if s == "json" => json_object_grammar(),
        Some(schema @ Value::Object(_)) => schema_grammar(schema),
        Some(other) => {
            return Err(ApiError::bad_request(
                flavor,
                format!("format must be \"json\" or a JSON schema, not {other}"),
            ));
        }
    };
    grammar.map(Some).map_err(|e| refused(flavor, "format", e))
}

/// The grammar for `schema` given in `field`, or a 400 in `flavor` naming both.
pub(crate) fn schema_grammar_for(
    flavor: Flavor,
    field: &str,
    schema: &Value,
) -> Result<String, ApiError> {
    schema_grammar(schema).map_err(|e| refused(flavor, field, e))
}

fn refused(flavor: Flavor, field: &str, e: SchemaError) -> ApiError {
    ApiError::bad_request(flavor, format!("{field}: {e}"))
}
