//! One streamed chat completion, measured; and model discovery.

use std::time::Instant;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use llamafleet_crds::routing::PIN_HEADER;
use llamafleet_remote::error_chain;
use serde::Serialize;
use serde_json::Value;

use super::args::Target;
use super::prompts::Prompt;
use crate::wire::openai::{ChatCompletionChunk, ErrorDetail, ModelList};
use crate::wire::openai_request::{
    ChatRequest, SamplerFields, Sampling as RequestSampling, StreamOptions,
};

/// Characters of an error response body kept in the error text.
const ERROR_BODY_CHARS: usize = 300;

/// What one request measured. Times are milliseconds from just before the request was sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sample {
    /// Until the stream ended (or the request failed).
    pub latency_ms: f64,
    /// Until the first chunk with answer text.
    pub ttft_ms: Option<f64>,
    /// Output tokens: the server's usage figure, else the count of text chunks.
    pub tokens: u64,
    /// Whether `tokens` came from the server's usage figure.
    pub tokens_from_usage: bool,
    /// `tokens / (latency - ttft)`; `None` when no time passed after the first chunk.
    pub tokens_per_second: Option<f64>,
    /// Characters in the answer.
    pub length: usize,
    /// Why the request failed; failed samples are left out of the statistics.
    pub error: Option<String>,
    /// The answer text (what arrived before a failure, for a failed one).
    pub text: String,
}

impl Sample {
    /// A request that was never sent.
    pub fn failed(error: String) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }

    /// Whether the request succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Sends requests to the variants.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api_key: Option<String>,
}

/// What to ask for, the same for every request.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// Most tokens per answer.
    pub max_tokens: u32,
    /// Sampling temperature.
    pub temperature: f64,
}

impl Client {
    /// A client whose requests (streams included) time out after `timeout`.
    pub fn new(api_key: Option<String>, timeout: std::time::Duration) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("llamafleet-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, api_key })
    }

    fn request(
        &self,
        method: reqwest::Method,
        target: &Target,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, target.url(path));
        if target.pinned {
            req = req.header(PIN_HEADER, &target.name);
        }
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        req
    }

    /// A router's A/B vote counts (`GET /console/votes`).
    pub async fn votes(
        &self,
        router: &url::Url,
    ) -> Result<crate::route::votes::VoteSummary, String> {
        let url = format!("{}/console/votes", router.as_str().trim_end_matches('/'));
        let mut req = self.http.get(url);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let response = req
            .send()
            .await
            .map_err(|e| format!("GET /console/votes: {}", error_chain(&e)))?;
        let body = checked_body(response).await?;
        serde_json::from_str(&body).map_err(|e| format!("GET /console/votes: not JSON: {e}"))
    }

    /// The first model of `GET /v1/models` (pinned to the variant through a router).
    pub async fn first_model(&self, target: &Target) -> Result<String, String> {
        let response = self
            .request(reqwest::Method::GET, target, "v1/models")
            .send()
            .await
            .map_err(|e| format!("GET /v1/models: {}", error_chain(&e)))?;
        let body = checked_body(response).await?;
        let list: ModelList = serde_json::from_str(&body)
            .map_err(|e| format!("GET /v1/models: not a model list: {e}"))?;
        list.data
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| "GET /v1/models lists no model".to_owned())
    }

    /// Streams one chat completion and measures it; failures are recorded in the sample.
    pub async fn chat(&self, target: &Target, model: &str, prompt: &Prompt, s: Sampling) -> Sample {
        let body = ChatRequest {
            model: Some(model.to_owned()),
            messages: prompt.messages.clone(),
            stream: true,
            stream_options: Some(StreamOptions {
                include_usage: true,
            }),
            sampling: RequestSampling {
                max_tokens: Some(s.max_tokens),
                ..RequestSampling::default()
            },
            sampler: SamplerFields {
                // f32 as the agent reads it; the report keeps the figure given.
                temperature: Some(s.temperature as f32),
                ..SamplerFields::default()
            },
            ..ChatRequest::default()
        };
        let started = Instant::now();
        let mut sample = Sample::default();
        let mut chunks = 0u64;
        let mut usage = None;
        let result = async {
            let response = self
                .request(reqwest::Method::POST, target, "v1/chat/completions")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&body).map_err(|e| e.to_string())?)
                .send()
                .await
                .map_err(|e| error_chain(&e))?;
            if !response.status().is_success() {
                return Err(checked_body(response).await.err().unwrap_or_default());
            }
            let mut events = response.bytes_stream().eventsource();
            while let Some(event) = events.next().await {
                let event = event.map_err(|e| format!("reading the stream: {e}"))?;
                if event.data == "[DONE]" {
                    return Ok(());
                }
                let chunk = read_chunk(&event.data)?;
                if let Some(u) = &chunk.usage {
                    usage = Some(u.completion_tokens);
                }
                if let Some(text) = chunk.choices.first().and_then(|c| c.delta.text())
                    && !text.is_empty()
                {
                    sample.ttft_ms.get_or_insert_with(|| millis(started));
                    sample.text.push_str(text);
                    chunks += 1;
                }
            }
            Err("the stream ended before [DONE]".to_owned())
        }
        .await;
        sample.latency_ms = millis(started);
        sample.error = result.err();
        sample.tokens_from_usage = usage.is_some();
        sample.tokens = usage.unwrap_or(chunks);
        sample.length = sample.text.chars().count();
        sample.tokens_per_second = sample.ttft_ms.and_then(|ttft| {
            let generating = (sample.latency_ms - ttft) / 1000.0;
            (generating > 0.0 && sample.tokens > 0).then(|| sample.tokens as f64 / generating)
        });
        sample
    }
}

/// One chunk of the stream; an error frame (OpenAI's error object, or any other `error`) is
/// the request's error.
fn read_chunk(data: &str) -> Result<ChatCompletionChunk, String> {
    let frame: Value =
        serde_json::from_str(data).map_err(|e| format!("stream chunk is not JSON: {e}"))?;
    if let Some(error) = frame.get("error") {
        let message = serde_json::from_value::<ErrorDetail>(error.clone())
            .map(|d| d.message)
            .ok()
            .filter(|m| !m.is_empty());
        return Err(format!(
            "error in stream: {}",
            message.unwrap_or_else(|| error.to_string())
        ));
    }
    serde_json::from_value(frame).map_err(|e| format!("stream chunk is not a chat chunk: {e}"))
}

/// The body of a 2xx response, else `HTTP <status>: <start of the body>`.
async fn checked_body(response: reqwest::Response) -> Result<String, String> {
    let status = response.status();
    let body = response.text().await.map_err(|e| error_chain(&e))?;
    if status.is_success() {
        return Ok(body);
    }
    let start: String = body.chars().take(ERROR_BODY_CHARS).collect();
    Err(format!("HTTP {status}: {}", start.trim()))
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
