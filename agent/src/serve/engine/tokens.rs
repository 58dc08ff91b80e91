//! Tokenizing and detokenizing for clients (`POST /tokenize`, `/detokenize`), on a
//! blocking-pool thread with the shared model (never on the engine thread).

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::EngineError;

/// One token of a tokenized text.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPiece {
    /// The token id.
    pub id: i32,
    /// Its text (special tokens as written, e.g. `<bos>`); bytes that are not UTF-8 on their
    /// own (part of a multi-byte character) are replaced.
    pub piece: String,
}

/// The tokens of `text`; `add_special` adds the model's BOS as generation does. Special
/// token text (`<start_of_turn>`) is read as the special token, as chat templates need.
pub(super) fn tokenize(model: &LlamaModel, text: &str, add_special: bool) -> Vec<TokenPiece> {
    let vocab = model.vocab();
    vocab
        .tokenize(text.as_bytes(), add_special, true)
        .into_iter()
        .map(|t| TokenPiece {
            id: t.0,
            piece: String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned(),
        })
        .collect()
}

/// The text of `ids`; an id outside the vocabulary is a client error (llama.cpp would read out
/// of bounds).
pub(super) fn detokenize(model: &LlamaModel, ids: &[i32]) -> Result<String, EngineError> {
    let n_vocab = model.n_vocab();
    if let Some(bad) = ids.iter().find(|&&id| id < 0 || id >= n_vocab) {
        return Err(EngineError::Invalid(format!(
            "token id {bad} is outside the vocabulary (0..{n_vocab})"
        )));
    }
    if ids.is_empty() {
        return Ok(String::new());
    }
    let tokens: Vec<LlamaToken> = ids.iter().map(|&id| LlamaToken(id)).collect();
    let bytes = model.vocab().detokenize(&tokens, false, true);
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
