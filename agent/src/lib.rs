//! llamafleet node agent: the model store (`pull`, `inspect`, `cache gc`) and `serve` (llama.cpp
//! behind the OpenAI and Ollama APIs) and `route` (the router in front of a deployment's
//! variants, reusing serve's API errors), and `compare` (the A/B report over variants), which share the APIs' wire types (`wire`).
#![forbid(unsafe_code)]

pub mod compare;
pub mod console;
pub mod inspect;
pub mod route;
pub mod serve;
pub mod store;
pub mod wire;
