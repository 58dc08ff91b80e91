//! The APIs' wire types, in one place so a field is added once, all published in
//! `/openapi.json`: the requests `serve` reads and `compare` writes (`*_request`), and the
//! answers `serve` writes, `route` reads as they pass through and `compare` reads from the
//! variants it measures.
//!
//! Reading a request is strict: a field the server does not implement is refused by name
//! ([`request_fields`]), never dropped. Reading an answer is lenient (absent fields take their
//! defaults, unknown fields are ignored), as a client of other servers must be. Writing gives
//! exactly the official APIs' shapes (absent options are left out).

pub mod anthropic;
pub mod anthropic_request;
pub mod ollama;
pub mod ollama_request;
pub mod openai;
pub mod openai_request;
pub mod request_fields;
pub mod responses;
pub mod responses_request;
