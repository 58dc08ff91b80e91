//! `serve`: pull and verify a model through the store, load it into llama.cpp, and answer the
//! OpenAI and Ollama APIs with continuous batching over parallel slots.

pub mod engine;
pub mod gpu;
pub mod http;
pub mod keep;
pub mod metrics;
pub mod presets;
mod startup;
pub mod state;
pub(crate) mod tools;

pub use http::app;
pub(crate) use startup::shutdown_signal;
pub use startup::{FAILURE_LINGER, ServeConfig, model_name as startup_model_name, run};
