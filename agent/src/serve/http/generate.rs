//! What the APIs share: model/preset resolution, admission, starting a generation (chats with
//! their tools) and reading its events (collected, or as a stream that holds the admission
//! permit).

use std::collections::VecDeque;

use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::UnboundedReceiver;

use super::{ApiError, Flavor, RequestLog};
use crate::serve::engine::{
    ChatMessage, Engine, Event, FinishReason, Prompt, SamplingParams, TokenLogprob, Tool, ToolCall,
    ToolSyntax, Usage,
};
use crate::serve::presets::Preset;
use crate::serve::state::AppState;
use crate::serve::tools::{self, Prepared, ToolChoice, ToolRequest, ToolStream, call_id};

/// Ollama clients append a tag; `:latest` names the same model.
const DEFAULT_TAG: &str = ":latest";

/// The name a request is answered under (the server's model when it names none), recorded in
/// the request log, and the preset that name selects.
pub(crate) fn requested<'s>(
    state: &'s AppState,
    flavor: Flavor,
    log: &RequestLog,
    name: Option<&str>,
) -> Result<(String, Option<&'s Preset>), ApiError> {
    let model = name.map_or_else(|| state.options.model_name.clone(), str::to_owned);
    log.model(&model);
    Ok((model, resolve(state, flavor, name)?))
}

/// The model (or preset) a request names; no name means the model itself.
pub(crate) fn resolve<'s>(
    state: &'s AppState,
    flavor: Flavor,
    name: Option<&str>,
) -> Result<Option<&'s Preset>, ApiError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let bare = name.strip_suffix(DEFAULT_TAG).unwrap_or(name);
    if bare == state.options.model_name {
        return Ok(None);
    }
    state
        .presets
        .iter()
        .find(|p| p.name == bare)
        .map(Some)
        .ok_or_else(|| ApiError::unknown_model(flavor, name))
}

/// The preset's defaults, or the server's.
pub(crate) fn base_params(preset: Option<&Preset>) -> SamplingParams {
    preset.map_or_else(SamplingParams::default, Preset::base_params)
}

/// The tools a chat offers, the request's own or else its preset's, with the choice and
/// parallel calls that apply where the request does not say: OpenAI's defaults (`auto` with
/// tools, `none` without; parallel calls allowed), or the preset's own for its tools.
pub(crate) fn offered_tools(preset: Option<&Preset>, requested: Vec<Tool>) -> ToolRequest {
    match preset {
        Some(p) if requested.is_empty() && !p.tools.is_empty() => ToolRequest {
            tools: p.engine_tools(),
            choice: p.default_tool_choice(),
            parallel: p.parallel_tool_calls.unwrap_or(true),
        },
        _ => ToolRequest {
            choice: if requested.is_empty() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            },
            tools: requested,
            parallel: true,
        },
    }
}

/// Refuses a preset with tools on a route without tools (completions, Ollama generate): its
/// tools would be dropped while the client believes they were offered.
pub(crate) fn no_preset_tools(preset: Option<&Preset>, flavor: Flavor) -> Result<(), ApiError> {
    match preset {
        Some(p) if !p.tools.is_empty() => Err(ApiError::bad_request(
            flavor,
            format!(
                "model {:?} is a preset with tools, which only the chat routes offer \
                 (/v1/chat/completions, /v1/responses, /v1/messages, /api/chat)",
                p.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Puts the preset's system prompt first unless the conversation brings its own.
pub(crate) fn with_system(
    preset: Option<&Preset>,
    mut messages: Vec<ChatMessage>,
) -> Vec<ChatMessage> {
    if let Some(system) = preset.and_then(|p| p.system.as_ref())
        && !messages.iter().any(|m| m.role == "system")
    {
        messages.insert(0, ChatMessage::new("system", system.clone()));
    }
    messages
}

/// How the loaded model writes tool calls (the generic form while it loads: the request then
/// gets a 503 from [`start`] anyway).
pub(crate) fn tool_syntax(state: &AppState) -> ToolSyntax {
    state
        .engine
        .get()
        .map_or(ToolSyntax::Generic, |e| e.info().tool_syntax)
}

/// A conversation and the request's tools, prepared for the loaded model's tool syntax (see
/// [`crate::serve::tools`]); sets the grammar of `params` when tools are offered.
pub(crate) fn prepare_chat(
    state: &AppState,
    flavor: Flavor,
    messages: Vec<ChatMessage>,
    request: ToolRequest,
    params: &mut SamplingParams,
) -> Result<Prepared, ApiError> {
    tools::prepare(request, tool_syntax(state), messages, params)
        .map_err(|e| ApiError::bad_request(flavor, e))
}

/// [`prepare_chat`], then [`start`], with the output read for tool calls: what every chat
/// route does.
pub(crate) async fn start_chat(
    state: &AppState,
    flavor: Flavor,
    log: RequestLog,
    messages: Vec<ChatMessage>,
    request: ToolRequest,
    params: SamplingParams,
    stream: bool,
) -> Result<Live, ApiError> {
    let lives = start_chat_copies(state, flavor, log, messages, request, params, 1, stream);
    lives
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal(flavor, "no generation"))
}

/// [`start_chat`] for `n` copies of the conversation (see [`start_copies`]).
#[expect(clippy::too_many_arguments, reason = "start_chat's arguments and n")]
pub(crate) async fn start_chat_copies(
    state: &AppState,
    flavor: Flavor,
    log: RequestLog,
    messages: Vec<ChatMessage>,
    request: ToolRequest,
    mut params: SamplingParams,
    n: usize,
    stream: bool,
) -> Result<Vec<Live>, ApiError> {
    let prepared = prepare_chat(state, flavor, messages, request, &mut params)?;
    tools::streamable(stream, &params, &prepared).map_err(|e| ApiError::bad_request(flavor, e))?;
    let copies = copies(&params, n);
    let lives = start_copies(state, flavor, log, Prompt::Chat(prepared.chat), copies).await?;
    Ok(lives
        .into_iter()
        .map(|live| live.with_tools(prepared.stream.clone()))
        .collect())
}

/// The parameters of `n` copies of a prompt: with a seed, copy `j` draws from its own
/// (`seed + j`), so the choices differ yet the answer is reproducible.
pub(crate) fn copies(params: &SamplingParams, n: usize) -> Vec<SamplingParams> {
    (0..n)
        .map(|j| {
            let mut params = params.clone();
            params.seed = params.seed.map(|s| s.wrapping_add(j as u32));
            params
        })
        .collect()
}

/// The engine, or 503 while starting.
pub(crate) fn engine(state: &AppState, flavor: Flavor) -> Result<Engine, ApiError> {
    if state.draining() {
        return Err(ApiError::not_ready(flavor, "shutting down"));
    }
    state.ready_engine().cloned().ok_or_else(|| {
        let phase = serde_json::to_value(state.snapshot().phase).unwrap_or_default();
        ApiError::not_ready(flavor, phase.as_str().unwrap_or("starting"))
    })
}

/// An admitted generation: its events and the permit that bounds admission.
pub(crate) struct Live {
    rx: UnboundedReceiver<Event>,
    _permit: OwnedSemaphorePermit,
    deadline: tokio::time::Instant,
    /// True once the shutdown's grace period is over ([`AppState::end_grace`]).
    grace_over: tokio::sync::watch::Receiver<bool>,
    flavor: Flavor,
    pub log: RequestLog,
    /// Prompt tokens, as the engine counted them at admission.
    pub prompt_tokens: u32,
    pub text: String,
    log_text: bool,
    /// The prompt as the log shows it (with `--log-text`; the first choice only).
    prompt_text: String,
    /// Log probabilities of tokens whose text has not been sent yet.
    pending: Vec<TokenLogprob>,
    /// With tools offered: separates content from calls.
    tools: Option<ToolStream>,
    /// Steps decided at the end (the rest of the content, the calls, `Done`).
    queued: VecDeque<Step>,
    /// Which choice of the answer this is (`n`, a list of prompts): keeps call ids unique.
    choice: usize,
    /// A copy of another choice's prompt (`n`): its prompt is not counted again.
    copy: bool,
}

/// Validates, takes an admission permit (503 when none is left) and waits until the engine
/// accepted the prompt, so context overflow is a 400 even for streaming requests.
pub(crate) async fn start(
    state: &AppState,
    flavor: Flavor,
    log: RequestLog,
    prompt: Prompt,
    params: SamplingParams,
) -> Result<Live, ApiError> {
    let mut lives = start_copies(state, flavor, log, prompt, vec![params]).await?;
    lives
        .pop()
        .ok_or_else(|| ApiError::internal(flavor, "no generation"))
}

/// [`start`] for copies of one prompt (`n`), one per entry of `params`, with a permit each:
/// the engine prefills the prompt once for all of them
/// ([`crate::serve::engine::Engine::generate_copies`]). The choices come back in order, each
/// marked with its index.
pub(crate) async fn start_copies(
    state: &AppState,
    flavor: Flavor,
    log: RequestLog,
    prompt: Prompt,
    params: Vec<SamplingParams>,
) -> Result<Vec<Live>, ApiError> {
    for p in &params {
        p.validate().map_err(|m| ApiError::bad_request(flavor, m))?;
    }
    let engine = engine(state, flavor)?;
    let n = u32::try_from(params.len()).map_err(|_| ApiError::busy(flavor))?;
    let mut permits = state
        .admission
        .clone()
        .try_acquire_many_owned(n)
        .map_err(|_| ApiError::busy(flavor))?;
    let mut prompt_text = if state.options.log_text {
        logged_prompt(&prompt)
    } else {
        String::new()
    };
    let receivers = engine
        .generate_copies(prompt, params)
        .map_err(|e| ApiError::engine(flavor, e))?;
    let deadline = tokio::time::Instant::now() + state.options.request_timeout;
    log.admitted(receivers.len());
    let mut lives = Vec::with_capacity(receivers.len());
    for (i, mut rx) in receivers.into_iter().enumerate() {
        // n permits split n times: each choice frees its own when it ends.
        let permit = permits
            .split(1)
            .ok_or_else(|| ApiError::internal(flavor, "admission permits"))?;
        match rx.recv().await {
            Some(Event::Accepted { prompt_tokens }) => lives.push(Live {
                rx,
                prompt_tokens,
                _permit: permit,
                deadline,
                grace_over: state.grace_watch(),
                flavor,
                log: log.clone(),
                text: String::new(),
                log_text: state.options.log_text,
                prompt_text: std::mem::take(&mut prompt_text),
                pending: Vec::new(),
                tools: None,
                queued: VecDeque::new(),
                choice: i,
                copy: i > 0,
            }),
            Some(Event::Error(e)) => return Err(ApiError::engine(flavor, e)),
            _ => return Err(ApiError::internal(flavor, "engine closed the request")),
        }
    }
    Ok(lives)
}

/// The prompt in a log line: raw text as sent, a chat as `role: content` lines (the system
/// prompt of a preset included).
fn logged_prompt(prompt: &Prompt) -> String {
    match prompt {
        Prompt::Text(text) => text.clone(),
        Prompt::Chat(chat) => chat
            .messages
            .iter()
            .map(|m| format!("{}: {}", m.role, m.content))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A whole generation.
pub(crate) struct Collected {
    pub text: String,
    pub finish: FinishReason,
    pub usage: Usage,
    /// One per generated token whose text was sent, when the request asked.
    pub logprobs: Vec<TokenLogprob>,
    /// The calls the answer makes (tools offered only).
    pub tool_calls: Vec<ToolCall>,
}

/// One step of a generation as the APIs see it.
pub(crate) enum Step {
    /// New text, with the log probabilities of the tokens behind it (when asked for).
    Text(String, Vec<TokenLogprob>),
    /// The answer's tool calls, once, just before `Done` (whose reason is then `ToolCalls`).
    ToolCalls(Vec<ToolCall>),
    Done(FinishReason, Usage),
    Failed(ApiError),
}

impl Live {
    /// Reads the output for tool calls (see [`crate::serve::tools`]).
    pub(crate) fn with_tools(mut self, tools: Option<ToolStream>) -> Self {
        self.tools = tools;
        self
    }

    /// Choice `i` of an answer with several.
    pub(crate) fn choice_at(mut self, i: usize) -> Self {
        self.choice = i;
        self
    }

    /// The next piece; `None` after `Done`/`Failed` was returned.
    pub(crate) async fn next(&mut self) -> Option<Step> {
        if let Some(step) = self.queued.pop_front() {
            return Some(step);
        }
        let step = self.next_event().await?;
        let Some(tools) = &mut self.tools else {
            return Some(step);
        };
        Some(match step {
            Step::Text(text, lps) => Step::Text(tools.push(&text), lps),
            Step::Done(finish, usage) => {
                let tools = self.tools.take()?;
                let (content, found) = tools.finish();
                if !content.is_empty() {
                    self.queued.push_back(Step::Text(content, Vec::new()));
                }
                let complete = finish != FinishReason::Length;
                let finish = if found.is_empty() || !complete {
                    // Cut by the token limit, the answer says so even with complete calls.
                    finish
                } else {
                    FinishReason::ToolCalls
                };
                if !found.is_empty() {
                    let id = match self.choice {
                        0 => self.log.id().to_string(),
                        i => format!("{}-{i}", self.log.id()),
                    };
                    let calls = found
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| ToolCall {
                            id: call_id(&id, i),
                            name: c.name,
                            arguments: c.arguments,
                        })
                        .collect();
                    self.queued.push_back(Step::ToolCalls(calls));
                }
                self.queued.push_back(Step::Done(finish, usage));
                self.queued.pop_front()?
            }
            other => other,
        })
    }

    async fn next_event(&mut self) -> Option<Step> {
        let event = loop {
            let received = tokio::select! {
                biased;
                // An error the client can read (the stream's last event, or the answer) beats
                // a connection cut when the process exits with the generation unfinished.
                _ = self.grace_over.wait_for(|over| *over) => None,
                r = tokio::time::timeout_at(self.deadline, self.rx.recv()) => Some(r),
            };
            match received {
                Some(Ok(Some(Event::Logprob(lp)))) => self.pending.push(*lp),
                Some(Ok(Some(event))) => break event,
                Some(Ok(None)) => return None,
                Some(Err(_)) => {
                    self.rx.close();
                    self.log.failed("timeout");
                    return Some(Step::Failed(ApiError::timeout(self.flavor)));
                }
                None => {
                    self.rx.close();
                    let error = ApiError::shut_down(self.flavor);
                    self.log.failed(error.kind);
                    return Some(Step::Failed(error));
                }
            }
        };
        Some(match event {
            Event::Token(text) => {
                if self.log_text {
                    self.text.push_str(&text);
                }
                Step::Text(text, std::mem::take(&mut self.pending))
            }
            Event::Done { finish, usage } => {
                // A copy of a prompt (`n`) did not compute it again: the log counts it once,
                // as `usage` does.
                let logged = if self.copy {
                    Usage {
                        prompt_tokens: 0,
                        cached_tokens: 0,
                        ..usage
                    }
                } else {
                    usage
                };
                self.log.finished(logged);
                if self.log_text {
                    let prompt = std::mem::take(&mut self.prompt_text);
                    let answer = std::mem::take(&mut self.text);
                    self.log.text(self.choice, prompt, answer);
                }
                self.rx.close();
                Step::Done(finish, usage)
            }
            Event::Error(e) => {
                self.rx.close();
                let error = ApiError::engine(self.flavor, e);
                self.log.failed(error.kind);
                Step::Failed(error)
            }
            Event::Accepted { .. } | Event::Logprob(_) => Step::Text(String::new(), Vec::new()),
        })
    }

    /// Runs to the end and returns the whole text (and the log probabilities when asked).
    pub(crate) async fn collect(mut self) -> Result<Collected, ApiError> {
        let mut text = String::new();
        let mut logprobs = Vec::new();
        let mut tool_calls = Vec::new();
        while let Some(step) = self.next().await {
            match step {
                Step::Text(t, lp) => {
                    text.push_str(&t);
                    logprobs.extend(lp);
                }
                Step::ToolCalls(calls) => tool_calls = calls,
                Step::Done(finish, usage) => {
                    return Ok(Collected {
                        text,
                        finish,
                        usage,
                        logprobs,
                        tool_calls,
                    });
                }
                Step::Failed(e) => return Err(e),
            }
        }
        Err(ApiError::internal(
            self.flavor,
            "generation ended without a result",
        ))
    }
}

/// Seconds since the epoch (OpenAI's `created`).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// RFC 3339 now (Ollama's `created_at`).
pub(crate) fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Start of measurement for Ollama's durations.
pub(crate) fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What the generation and embedding routes answer when they fail (OpenAPI responses shared
/// by the OpenAI and Ollama routes).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "only the OpenAPI document uses it")]
pub(crate) enum GenerationErrors {
    /// Invalid parameters or prompt + max tokens over the context
    #[response(status = 400)]
    BadRequest,
    /// Missing or wrong API key
    #[response(status = 401)]
    Unauthorized,
    /// Unknown model
    #[response(status = 404)]
    UnknownModel,
    /// Body too large
    #[response(status = 413)]
    TooLarge,
    /// Busy or not ready (Retry-After)
    #[response(status = 503)]
    Busy,
}
