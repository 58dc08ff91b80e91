//! Nothing silently ignored: a request field a route does not implement is refused with a 400
//! that names it, never accepted and dropped. `serve`'s `ApiJson` reports every field serde
//! skips (through `serde_ignored`); a struct that flattens another hides its leftover keys
//! from that, so it ends with a [`Rest`], which refuses them itself.

use serde::de::{Deserialize, DeserializeOwned, Deserializer, Error as _};
use serde_json::{Map, Value};

/// Message content: a string, or a list of `what` (OpenAI's parts, Anthropic's blocks). Read
/// by hand rather than as an untagged enum: serde's untagged error ("did not match any
/// variant") would hide which field of a part is unsupported.
pub fn text_or_list<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    deserializer: D,
    what: &str,
) -> Result<Result<String, Vec<T>>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(text) => Ok(Ok(text)),
        list @ Value::Array(_) => serde_json::from_value(list)
            .map(Err)
            .map_err(|e| D::Error::custom(format!("content {what}: {e}"))),
        other => Err(D::Error::custom(format!(
            "content must be a string or a list of {what}, not {other}"
        ))),
    }
}

/// The message for a field that is not implemented (`path` as `serde_ignored` writes it,
/// e.g. `messages.0.name`).
pub fn unsupported(path: &str) -> String {
    format!("unsupported field {path:?}: this server does not implement it")
}

/// Why [`read_strict`] refused a request.
#[derive(Debug, thiserror::Error)]
pub enum StrictError<E: std::error::Error> {
    /// Not the type's JSON (or a key a [`Rest`] refused).
    #[error("{0}")]
    Invalid(E),
    /// A field the type does not have, named by its path ([`unsupported`]'s message).
    #[error("{0}")]
    Unsupported(String),
}

/// Reads a request strictly, as `serve` does and `compare` does for the messages it will send:
/// a field serde would skip is an error that names the first one by its path (e.g.
/// `messages.0.name`), never dropped.
pub fn read_strict<'de, T, D>(deserializer: D) -> Result<T, StrictError<D::Error>>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
    D::Error: std::error::Error,
{
    let mut skipped = None;
    let value = serde_ignored::deserialize(deserializer, |path| {
        skipped.get_or_insert_with(|| path.to_string());
    })
    .map_err(StrictError::Invalid)?;
    match skipped {
        Some(path) => Err(StrictError::Unsupported(unsupported(&path))),
        None => Ok(value),
    }
}

/// The keys left over after a flattened struct took its own: there must be none.
#[derive(Debug, Default)]
pub struct Rest;

impl<'de> Deserialize<'de> for Rest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        refuse_leftovers(deserializer, "").map(|()| Rest)
    }
}

/// The same inside Ollama's `options` (named `options.<key>` in the refusal).
#[derive(Debug, Default)]
pub struct OptionsRest;

impl<'de> Deserialize<'de> for OptionsRest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        refuse_leftovers(deserializer, "options.").map(|()| OptionsRest)
    }
}

fn refuse_leftovers<'de, D: Deserializer<'de>>(
    deserializer: D,
    prefix: &str,
) -> Result<(), D::Error> {
    let rest = Map::<String, Value>::deserialize(deserializer)?;
    match rest.keys().next() {
        None => Ok(()),
        Some(key) => Err(D::Error::custom(unsupported(&format!("{prefix}{key}")))),
    }
}
