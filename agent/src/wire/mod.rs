//! The APIs' wire types: what `serve` writes, `route` reads as answers pass through and
//! `compare` reads from the variants it measures, in one place, so a field is added once. The
//! response types are published in `/openapi.json` beside the request types.
//!
//! Reading is lenient (absent fields take their defaults, unknown fields are ignored), as a
//! client of other servers must be; writing gives exactly the official APIs' shapes.

pub mod anthropic;
pub mod ollama;
pub mod openai;
pub mod responses;
