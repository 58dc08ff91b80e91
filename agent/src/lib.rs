//! llamafleet node agent: the model store (`pull`, `inspect`, `cache gc`) and `serve` (llama.cpp
//! behind the OpenAI and Ollama APIs); `route` and `compare` come later and reuse them.
#![forbid(unsafe_code)]

pub mod inspect;
pub mod route;
pub mod serve;
pub mod store;
