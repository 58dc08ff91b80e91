//! llamafleet node agent. This crate holds the model store (`pull`, `inspect`, `cache gc`);
//! `serve`, `route` and `compare` come later and reuse it.
#![forbid(unsafe_code)]

pub mod inspect;
pub mod store;
