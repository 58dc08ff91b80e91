//! One structured log line and the request metrics per request, written when the request is
//! really over: for a stream that is when its last frame is sent (or the client goes away),
//! not when the headers leave.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::error::ErrorKind;
use crate::serve::engine::Usage;
use crate::serve::metrics::ServeMetrics;
use crate::serve::state::AppState;

/// Longest client-supplied request id we echo (longer ones are replaced).
const MAX_REQUEST_ID_LEN: usize = 64;

#[derive(Debug, Default)]
struct Fields {
    model: String,
    user: Option<String>,
    status: u16,
    category: &'static str,
    usage: Option<Usage>,
    streaming: bool,
    /// Generations admitted and not finished yet (`n`, a list of prompts).
    running: usize,
    finished: bool,
    /// Each generation's prompt (empty for a copy of the one before: `n`) and answer, in
    /// the order they ended (with `--log-text`).
    text: Vec<Generation>,
}

/// The text of one generation: its choice index, prompt and answer.
#[derive(Debug, Default)]
struct Generation {
    choice: usize,
    prompt: String,
    answer: String,
}

/// The `prompt` and `answer` fields of the log line: as they are for one generation; for
/// several (`n`, a list of prompts), each prompt once and every answer, marked `[choice i]`
/// in choice order, so none is lost.
fn logged_text(mut generations: Vec<Generation>) -> (String, String) {
    if generations.len() <= 1 {
        let g = generations.pop().unwrap_or_default();
        return (g.prompt, g.answer);
    }
    generations.sort_by_key(|g| g.choice);
    let prompts: Vec<&str> = generations
        .iter()
        .map(|g| g.prompt.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    let answers: Vec<String> = generations
        .iter()
        .map(|g| format!("[choice {}] {}", g.choice, g.answer))
        .collect();
    (prompts.join("\n\n"), answers.join("\n"))
}

impl Fields {
    /// How the request ended, for the log line.
    fn category(&self) -> &'static str {
        if self.streaming && !self.finished {
            "cancelled"
        } else if self.category.is_empty() {
            if self.status < 400 { "ok" } else { "error" }
        } else {
            self.category
        }
    }
}

#[derive(Debug)]
struct Inner {
    id: String,
    api: &'static str,
    route: String,
    started: Instant,
    metrics: ServeMetrics,
    fields: Mutex<Fields>,
}

/// Handle to the current request's log record; handlers fill in what they learn.
#[derive(Debug, Clone)]
pub struct RequestLog(Arc<Inner>);

impl RequestLog {
    fn with(&self, f: impl FnOnce(&mut Fields)) {
        if let Ok(mut fields) = self.0.fields.lock() {
            f(&mut fields);
        }
    }

    /// The request id (also sent back in `x-request-id`).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The model or preset name asked for.
    pub fn model(&self, name: &str) {
        self.with(|f| f.model = name.to_owned());
    }

    /// The end user the client named (OpenAI `user`).
    pub fn user(&self, user: &str) {
        self.with(|f| f.user = Some(user.to_owned()));
    }

    /// Marks a streaming response: a drop before [`RequestLog::finished`] is a cancellation.
    pub fn streaming(&self) {
        self.with(|f| f.streaming = true);
    }

    /// `n` more generations serve this request (each ends with [`RequestLog::finished`]).
    pub fn admitted(&self, n: usize) {
        self.with(|f| f.running += n);
    }

    /// Token counts and timings once a generation ended; a request with several generations
    /// (a list of prompts, `n`) logs their sums and its longest times, and is finished when
    /// the last one is (a stream dropped before that is a cancellation).
    pub fn finished(&self, usage: Usage) {
        self.with(|f| {
            f.usage = Some(f.usage.map_or(usage, |before| before.plus(usage)));
            f.running = f.running.saturating_sub(1);
            f.finished = f.running == 0;
        });
    }

    /// A stream that failed after its headers were sent.
    pub fn failed(&self, category: &'static str) {
        self.with(|f| {
            f.category = category;
            f.finished = true;
        });
    }

    /// Prompt and answer text of the generation of choice `choice`, logged only when
    /// `--log-text` is set; a request of several logs them all.
    pub fn text(&self, choice: usize, prompt: String, answer: String) {
        self.with(|f| {
            f.text.push(Generation {
                choice,
                prompt,
                answer,
            });
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let duration = self.started.elapsed();
        let f = match self.fields.get_mut() {
            Ok(f) => std::mem::take(f),
            Err(p) => std::mem::take(p.into_inner()),
        };
        let category = f.category();
        let status = f.status.to_string();
        self.metrics
            .requests
            .with_label_values(&[self.api, self.route.as_str(), status.as_str()])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[self.api, self.route.as_str()])
            .observe(duration.as_secs_f64());
        let usage = f.usage.unwrap_or_default();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (prompt, answer) = logged_text(f.text);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "llamafleet::request",
                    $level,
                    request_id = %self.id,
                    api = self.api,
                    route = %self.route,
                    model = %f.model,
                    user = f.user.as_deref(),
                    status = f.status,
                    category,
                    prompt_tokens = usage.prompt_tokens,
                    cached_tokens = usage.cached_tokens,
                    completion_tokens = usage.completion_tokens,
                    ttft_ms = f.usage.map(|u| ms(u.ttft)),
                    duration_ms = ms(duration),
                    prompt = (!prompt.is_empty()).then_some(prompt.as_str()),
                    answer = (!answer.is_empty()).then_some(answer.as_str()),
                    "request"
                )
            };
        }
        // Probes and scrapes arrive every few seconds: at info they would drown the log.
        if self.api == "ops" {
            emit!(tracing::Level::DEBUG);
        } else {
            emit!(tracing::Level::INFO);
        }
    }
}

fn api_label(path: &str) -> &'static str {
    if path.starts_with("/v1/") {
        "openai"
    } else if path.starts_with("/api/") {
        "ollama"
    } else {
        "ops"
    }
}

/// Middleware: request id, the record, and its status once the handler answered.
pub(super) async fn track(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let log = RequestLog(Arc::new(Inner {
        id: id.clone(),
        api: api_label(request.uri().path()),
        route,
        started: Instant::now(),
        metrics: state.metrics.clone(),
        fields: Mutex::new(Fields::default()),
    }));
    request.extensions_mut().insert(log.clone());
    request
        .extensions_mut()
        .insert(super::BodyLimit(state.options.max_body_bytes));
    let mut response = next.run(request).await;
    let kind = response.extensions().get::<ErrorKind>().map(|k| k.0);
    log.with(|f| {
        f.status = response.status().as_u16();
        if let Some(kind) = kind {
            f.category = kind;
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> RequestLog {
        RequestLog(Arc::new(Inner {
            id: "test".into(),
            api: "openai",
            route: "/v1/chat/completions".into(),
            started: Instant::now(),
            metrics: ServeMetrics::new().expect("metrics"),
            fields: Mutex::new(Fields {
                status: 200,
                ..Fields::default()
            }),
        }))
    }

    fn category(log: &RequestLog) -> &'static str {
        log.0.fields.lock().expect("fields").category()
    }

    #[test]
    fn a_stream_of_several_generations_is_finished_when_the_last_one_is() {
        let log = log();
        log.streaming();
        log.admitted(2);
        let usage = Usage {
            prompt_tokens: 10,
            completion_tokens: 3,
            ..Usage::default()
        };
        log.finished(usage);
        assert_eq!(category(&log), "cancelled");
        log.finished(Usage {
            prompt_tokens: 0,
            ..usage
        });
        assert_eq!(category(&log), "ok");
        let total = log.0.fields.lock().expect("fields").usage.expect("usage");
        assert_eq!((total.prompt_tokens, total.completion_tokens), (10, 6));
    }

    #[test]
    fn several_generations_log_every_answer_in_choice_order() {
        let g = |choice: usize, prompt: &str, answer: &str| Generation {
            choice,
            prompt: prompt.into(),
            answer: answer.into(),
        };
        assert_eq!(
            logged_text(vec![g(0, "hi", "hello")]),
            ("hi".into(), "hello".into())
        );
        assert_eq!(logged_text(vec![]), (String::new(), String::new()));
        // n = 2: one prompt (the copy's is empty), answers in choice order whatever the
        // order they ended in.
        assert_eq!(
            logged_text(vec![g(1, "", "blue"), g(0, "Name a color.", "red")]),
            (
                "Name a color.".into(),
                "[choice 0] red\n[choice 1] blue".into()
            )
        );
    }
}
