//! The engine thread's loop: intake, slot assignment with prefix reuse, one batched decode
//! step over every busy slot (generation tokens first, then prompt chunks), sampling.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use llama_cpp_2::DecodeError;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::job::{self, Job};
use super::load::{EngineConfig, ModelInfo, Shared, context_params};
use super::offload;
use super::stop::Delta;
use super::template::ChatFormat;
use super::{
    Command, EngineError, EngineStats, Event, FinishReason, Usage, embed, logprobs, pinned,
};
use crate::serve::metrics::EngineMetrics;

/// Tokens decoded per step at most. It bounds how long generating streams wait while a long
/// prompt is prefilled (chunked prefill) and matches llama.cpp's default micro-batch.
pub(crate) const BATCH_TOKENS: usize = 512;
/// Fewest prompt tokens a step that also decodes running streams prefills (see
/// [`Pace::prefill_budget`]).
const MIN_PREFILL_BESIDE_STREAMS: usize = 16;
/// A prompt with at most this many tokens left to prefill is taken whole beside running
/// streams, on top of the paced budget: users of one preset asking together (their system
/// prompt copied from cache, only their questions left) start together, as they would on an
/// idle server, instead of one paced step after another.
const SHORT_PROMPT: usize = 64;
/// The most tokens of such short prompts one step takes beside running streams, which bounds
/// what they add to the streams' next token (about half a full step).
const SHORT_PROMPTS_BESIDE_STREAMS: usize = 256;
/// The fewest tokens worth taking from another slot (or waiting for): a shorter prefix (a chat
/// template's opening) costs less to compute than the wait, and would only reorder the cache.
const MIN_SHARED_TOKENS: usize = 16;
/// How often an idle engine wakes up to report that it is alive.
const IDLE_TICK: Duration = Duration::from_millis(200);

pub(crate) struct Setup<'m> {
    pub backend: &'static LlamaBackend,
    pub model: &'m LlamaModel,
    pub template: &'m ChatFormat,
    pub config: &'m EngineConfig,
    pub metrics: EngineMetrics,
    pub stats: Arc<EngineStats>,
    pub started: Instant,
}

struct Slot {
    seq: i32,
    /// Tokens whose keys/values sit in the KV cache for this sequence, positions 0..len.
    cache: Vec<LlamaToken>,
    job: Option<Job>,
    /// A pinned prefix: a source of copies that never takes a job (see [`super::pinned`]).
    pinned: bool,
}

/// One slot's share of a decode step.
#[derive(Debug, Clone, Copy)]
struct Part {
    slot: usize,
    /// Prompt tokens to prefill from the job's `fed`; 0: the slot's next generated token.
    prompt: usize,
}

/// Why llama.cpp (or building the batch) refused a step.
struct Refused {
    message: String,
    /// Whether the same tokens in a smaller batch might go through (a full KV cache, a failed
    /// allocation or computation), unlike invalid input.
    smaller_may_help: bool,
}

impl Refused {
    fn new(message: String, smaller_may_help: bool) -> Self {
        Refused {
            message,
            smaller_may_help,
        }
    }
}

struct Worker<'m> {
    setup: Setup<'m>,
    ctx: LlamaContext<'m>,
    embed_ctx: Option<LlamaContext<'m>>,
    /// Embedding requests, oldest first.
    embeds: VecDeque<embed::EmbedJob>,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    batch: LlamaBatch<'static>,
    closed: bool,
    /// The model's end-of-generation tokens, found once (a scan of the whole vocabulary),
    /// for requests with `ignore_eos`.
    eog: Vec<LlamaToken>,
    /// Whether the model's memory holds one entry per position, so a prefix can be copied
    /// between slots (not so for recurrent and hybrid models, whose state is the whole
    /// sequence at once).
    can_share: bool,
    /// The model's sliding attention window (0: none); see [`Worker::continuable`].
    n_swa: usize,
    /// The last job id given out.
    next_id: u64,
    /// How long steps take, for the prefill budget beside running streams.
    pace: Pace,
}

/// Step times, measured: a decode step of the running streams alone, and each prompt token
/// on top of it (exponential averages).
#[derive(Default)]
struct Pace {
    decode_step: Option<f64>,
    per_prompt_token: Option<f64>,
}

impl Pace {
    /// Prompt tokens a step that also decodes running streams may prefill: as many as take
    /// about as long as their decode step, so a long prompt arriving makes the streams' next
    /// tokens up to twice as slow instead of freezing them while it is prefilled (a step with
    /// nothing else to decode takes up to 512).
    fn prefill_budget(&self) -> usize {
        match (self.decode_step, self.per_prompt_token) {
            (Some(step), Some(token)) if token > 0.0 => {
                ((step / token) as usize).clamp(MIN_PREFILL_BESIDE_STREAMS, BATCH_TOKENS)
            }
            _ => MIN_PREFILL_BESIDE_STREAMS * 4,
        }
    }

    /// Learns from a step that decoded `generating` stream tokens and `prompt` prompt tokens.
    fn record(&mut self, took: Duration, generating: usize, prompt: usize) {
        let took = took.as_secs_f64();
        let blend = |old: Option<f64>, new: f64| Some(old.map_or(new, |o| 0.8 * o + 0.2 * new));
        if prompt == 0 && generating > 0 {
            self.decode_step = blend(self.decode_step, took);
        } else if prompt >= MIN_PREFILL_BESIDE_STREAMS {
            let streams = if generating > 0 {
                self.decode_step.unwrap_or(0.0)
            } else {
                0.0
            };
            let per_token = ((took - streams) / prompt as f64).max(1e-6);
            self.per_prompt_token = blend(self.per_prompt_token, per_token);
        }
    }
}

pub(crate) fn run(
    setup: Setup<'_>,
    rx: mpsc::Receiver<Command>,
    ready: mpsc::SyncSender<Result<(ModelInfo, Arc<Shared>), EngineError>>,
    (info, shared): (ModelInfo, Arc<Shared>),
) {
    let config = setup.config;
    let pinned = pinned_prefixes(&setup);
    let pinned_tokens: usize = pinned.iter().map(Vec::len).sum();
    let params = context_params(config, (pinned.len() as u32, pinned_tokens as u32));
    let ctx = match setup.model.new_context(setup.backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Internal(format!(
                "creating the context: {e}"
            ))));
            return;
        }
    };
    setup
        .metrics
        .kv_cells_total
        .set(i64::from(config.ctx) * i64::from(config.parallel) + pinned_tokens as i64);
    setup.metrics.slots.set(i64::from(config.parallel));
    let slots = (0..config.parallel as usize)
        .map(|i| Slot {
            seq: i as i32,
            cache: Vec::new(),
            job: None,
            pinned: false,
        })
        .chain(pinned.iter().enumerate().map(|(k, _)| Slot {
            seq: (config.parallel as usize + k) as i32,
            cache: Vec::new(),
            job: None,
            pinned: true,
        }))
        .collect();
    let n_swa = sliding_window(setup.model);
    let mut worker = Worker {
        setup,
        ctx,
        embed_ctx: None,
        embeds: VecDeque::new(),
        slots,
        waiting: VecDeque::new(),
        batch: LlamaBatch::new(BATCH_TOKENS, 1),
        closed: false,
        eog: Vec::new(),
        can_share: false,
        n_swa,
        next_id: 0,
        pace: Pace::default(),
    };
    let model = worker.setup.model;
    worker.can_share = !model.is_recurrent() && !model.is_hybrid();
    let vocab = worker.setup.model.vocab();
    worker.eog = (0..worker.setup.model.n_vocab())
        .map(LlamaToken)
        .filter(|&t| vocab.is_eog(t))
        .collect();
    worker.warm(pinned);
    let mut info = info;
    info.pinned_prefix_tokens = worker
        .slots
        .iter()
        .filter(|s| s.pinned && !s.cache.is_empty())
        .map(|s| s.cache.len() as u32)
        .collect();
    info.gpu_memory_bytes = offload::memory_taken(&info.gpus);
    if ready.send(Ok((info, shared))).is_err() {
        return;
    }
    while worker.intake(&rx) {
        worker.embed_step();
        worker.drop_cancelled();
        worker.assign();
        worker.step();
        worker.publish_stats();
    }
}

/// The model's sliding attention window in tokens (`<arch>.attention.sliding_window`), 0 when
/// it has none.
fn sliding_window(model: &LlamaModel) -> usize {
    model
        .meta_val_str("general.architecture")
        .and_then(|arch| model.meta_val_str(&format!("{arch}.attention.sliding_window")))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The presets' system prompts as pinned prefixes, one per distinct prompt worth one.
fn pinned_prefixes(setup: &Setup<'_>) -> Vec<Vec<LlamaToken>> {
    let config = setup.config;
    let mut prefixes: Vec<Vec<LlamaToken>> = Vec::new();
    for system in &config.pinned {
        let max = config.ctx as usize - 1;
        let found = pinned::prefix(setup.model, setup.template, system, MIN_SHARED_TOKENS, max);
        if let Some(tokens) = found
            && !prefixes.contains(&tokens)
        {
            prefixes.push(tokens);
        }
    }
    prefixes
}

impl<'m> Worker<'m> {
    /// Decodes each pinned prefix into its sequence (before the engine reports ready, so a
    /// ready agent has them warm). One that fails to decode is dropped with a warning.
    fn warm(&mut self, prefixes: Vec<Vec<LlamaToken>>) {
        let first = self.setup.config.parallel as usize;
        for (k, tokens) in prefixes.into_iter().enumerate() {
            let seq = self.slots[first + k].seq;
            let mut done = 0;
            while done < tokens.len() {
                self.batch.clear();
                let end = (done + BATCH_TOKENS).min(tokens.len());
                for (pos, &token) in tokens.iter().enumerate().take(end).skip(done) {
                    // The last one asks for logits only because a batch must produce some.
                    let _ = self.batch.add(token, pos as i32, &[seq], pos + 1 == end);
                }
                if let Err(e) = self.ctx.decode(&mut self.batch) {
                    tracing::warn!(error = %e, "decoding a pinned prefix failed: not pinned");
                    let _ = self.ctx.kv_cache_seq_rm(seq, None, None);
                    break;
                }
                done = end;
            }
            if done == tokens.len() {
                tracing::info!(tokens = done, "preset system prompt pinned in the KV cache");
                self.slots[first + k].cache = tokens;
            }
        }
    }

    fn busy(&self) -> bool {
        !self.waiting.is_empty()
            || !self.embeds.is_empty()
            || self.slots.iter().any(|s| s.job.is_some())
    }

    /// Takes new commands; blocks only when there is nothing to decode. False: shut down.
    fn intake(&mut self, rx: &mpsc::Receiver<Command>) -> bool {
        if !self.busy() {
            if self.closed {
                return false;
            }
            self.touch();
            match rx.recv_timeout(IDLE_TICK) {
                Ok(cmd) => self.handle(cmd),
                Err(mpsc::RecvTimeoutError::Timeout) => return true,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(cmd) => self.handle(cmd),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => {
                    // Handles are gone but streams may still be reading: finish them first.
                    self.closed = true;
                    return self.busy();
                }
            }
        }
    }

    fn touch(&self) {
        let ms = self.setup.started.elapsed().as_millis() as u64;
        self.setup
            .stats
            .last_progress_ms
            .store(ms, Ordering::Relaxed);
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Generate(job) => self.admit(*job),
            Command::Embed(job) => self.embeds.push_back(*job),
            #[cfg(test)]
            Command::Desync(id) => self.desync(id),
        }
    }

    #[cfg(test)]
    fn desync(&mut self, id: u64) {
        let found = self
            .slots
            .iter()
            .find(|s| s.job.as_ref().is_some_and(|j| j.id == id));
        if let Some(slot) = found {
            let last = slot.cache.len().saturating_sub(1) as u32;
            let _ = self.ctx.kv_cache_seq_rm(slot.seq, Some(last), None);
        }
    }

    fn admit(&mut self, job: job::Prepared) {
        let config = self.setup.config;
        let mut leader = None;
        for mut job in job::admit(self.setup.model, job, &self.eog) {
            self.next_id += 1;
            job.id = self.next_id;
            job.twin_of = leader;
            // Without sharing, every copy prefills its prompt itself.
            if config.share_prefixes {
                leader = leader.or(Some(job.id));
            }
            self.waiting.push_back(job);
        }
    }

    /// Embeds one input of the oldest embedding request (one per loop turn, between
    /// generation steps).
    fn embed_step(&mut self) {
        let Some(job) = self.embeds.front_mut() else {
            return;
        };
        let setup = &self.setup;
        let more = job.step(
            setup.backend,
            setup.model,
            setup.config,
            &mut self.embed_ctx,
        );
        self.touch();
        match more {
            Ok(true) => {}
            Ok(false) => {
                if let Some(job) = self.embeds.pop_front() {
                    job.finish();
                }
            }
            Err(e) => {
                if let Some(job) = self.embeds.pop_front() {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }

    /// A client that went away frees its slot now; its KV stays as reusable cache.
    fn drop_cancelled(&mut self) {
        self.waiting.retain(|job| !job.events.is_closed());
        for slot in &mut self.slots {
            if slot.job.as_ref().is_some_and(|j| j.events.is_closed()) {
                slot.job = None;
            }
        }
    }

    /// Gives waiting jobs free slots. A job whose prompt prefix another slot is prefilling
    /// right now waits for it (and then copies it) rather than computing the same tokens
    /// beside it: users of one preset arriving together. Copies of a prompt (`n`) take slots
    /// with their first copy.
    fn assign(&mut self) {
        self.release_orphans();
        let mut k = 0;
        while k < self.waiting.len() && self.free_slot().is_some() {
            let job = &self.waiting[k];
            let sharing = self.setup.config.share_prefixes && self.can_share;
            if job.twin_of.is_some() || (sharing && self.prefix_coming(&job.tokens)) {
                k += 1;
                continue;
            }
            let Some(job) = self.waiting.remove(k) else {
                return;
            };
            let (id, leader) = (job.id, self.place(job));
            while let Some(pos) = self.waiting.iter().position(|j| j.twin_of == Some(id)) {
                match (leader, self.free_slot()) {
                    (Some(_), Some(free)) => {
                        if let Some(mut twin) = self.waiting.remove(pos) {
                            twin.assigned = Some(Instant::now());
                            self.slots[free].job = Some(twin);
                        }
                    }
                    // No room beside it: the copy runs as a request of its own.
                    _ => self.waiting[pos].twin_of = None,
                }
            }
        }
    }

    /// A free slot, preferring one with the least cache to lose.
    fn free_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.job.is_none() && !s.pinned)
            .min_by_key(|(i, s)| (s.cache.len(), *i))
            .map(|(i, _)| i)
    }

    /// Copies waiting in a slot for a first copy that is gone (cancelled, failed) or already
    /// past its prompt go back to the queue as requests of their own; copies still queued
    /// whose first copy is gone become requests of their own there.
    fn release_orphans(&mut self) {
        let prefilling: Vec<u64> = self
            .slots
            .iter()
            .filter_map(|s| s.job.as_ref())
            .filter(|j| j.twin_of.is_none() && j.next.is_none())
            .map(|j| j.id)
            .collect();
        let waiting: Vec<u64> = self.waiting.iter().map(|j| j.id).collect();
        for job in &mut self.waiting {
            if job
                .twin_of
                .is_some_and(|l| !waiting.contains(&l) && !prefilling.contains(&l))
            {
                job.twin_of = None;
            }
        }
        for i in 0..self.slots.len() {
            let orphan = self.slots[i]
                .job
                .as_ref()
                .and_then(|j| j.twin_of)
                .is_some_and(|leader| !prefilling.contains(&leader));
            if orphan && let Some(mut job) = self.slots[i].job.take() {
                job.twin_of = None;
                self.waiting.push_front(job);
            }
        }
    }

    /// Whether a busy slot is prefilling more of `tokens`' prefix than any cache holds now.
    fn prefix_coming(&self, tokens: &[LlamaToken]) -> bool {
        let usable = reusable(tokens);
        let have = self
            .slots
            .iter()
            .map(|s| common_prefix(&s.cache, tokens))
            .max()
            .unwrap_or(0)
            .min(usable);
        self.slots.iter().any(|s| {
            s.job.as_ref().is_some_and(|j| {
                let coming = common_prefix(&j.tokens, tokens).min(usable);
                coming > s.cache.len() && coming >= have + MIN_SHARED_TOKENS
            })
        })
    }

    /// Puts `job` in the free slot that keeps the longest prefix of its prompt (ties: the one
    /// with the least cache to lose), then copies a longer prefix from any other slot, busy or
    /// idle, when there is one. Returns the slot (`None`: none was free, the job waits).
    fn place(&mut self, mut job: Job) -> Option<usize> {
        let usable = reusable(&job.tokens);
        let Some((target, own)) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.job.is_none() && !s.pinned)
            .map(|(i, s)| {
                let n = common_prefix(&s.cache, &job.tokens).min(usable);
                (i, self.continuable(s.seq, n))
            })
            .max_by_key(|&(i, n)| {
                (
                    n,
                    std::cmp::Reverse(self.slots[i].cache.len()),
                    std::cmp::Reverse(i),
                )
            })
        else {
            self.waiting.push_front(job);
            return None;
        };
        let shared = if self.setup.config.share_prefixes && self.can_share {
            self.slots
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != target)
                .map(|(i, s)| {
                    let n = common_prefix(&s.cache, &job.tokens).min(usable);
                    (i, self.continuable(s.seq, n))
                })
                .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
                .filter(|&(_, n)| n >= own + MIN_SHARED_TOKENS)
        } else {
            None
        };
        let seq = self.slots[target].seq;
        let keep = match shared {
            Some((source, n)) => self.copy_prefix(source, target, n),
            None => self.cut(target, own),
        };
        let m = &self.setup.metrics;
        match shared {
            Some(_) => m.prompt_tokens_shared.inc_by(keep as u64),
            None => m.prompt_tokens_reused.inc_by(keep as u64),
        }
        tracing::trace!(seq, keep, shared = shared.is_some(), "slot assigned");
        job.fed = keep;
        job.cached = keep as u32;
        job.assigned = Some(Instant::now());
        self.slots[target].job = Some(job);
        Some(target)
    }

    /// How many of sequence `seq`'s first `n` tokens a request can continue from. With
    /// sliding-window layers llama.cpp may reuse a sequence's cells that fell out of its
    /// window (it then drops every older position, keeping [pos_min, pos_max]); continuing at
    /// `n` needs the window before `n`, so a sequence that lost it offers nothing.
    fn continuable(&self, seq: i32, n: usize) -> usize {
        if self.n_swa == 0 || n == 0 {
            return n;
        }
        let pos_min = self.ctx.kv_cache_seq_pos_min(seq);
        if pos_min <= 0 || pos_min as usize <= n.saturating_sub(self.n_swa) {
            n
        } else {
            0
        }
    }

    /// Copy `twin` takes slot `leader`'s decoded prompt (all of it: its first token comes from
    /// the same logits) as the leader samples its first token. `false`: the copy failed and
    /// the twin prefills its prompt itself.
    fn promote(&mut self, twin: usize, leader: usize) -> bool {
        let n = self.slots[leader].cache.len();
        let kept = self.copy_prefix(leader, twin, n);
        self.setup.metrics.prompt_tokens_shared.inc_by(kept as u64);
        let Some(job) = &mut self.slots[twin].job else {
            return false;
        };
        job.twin_of = None;
        job.fed = kept;
        job.cached = kept as u32;
        if kept < n {
            let keep = self.cut(twin, 0);
            if let Some(job) = &mut self.slots[twin].job {
                job.fed = keep;
                job.cached = 0;
            }
            return false;
        }
        true
    }

    /// Keeps the first `keep` tokens of slot `i`'s cache (all of it goes when the model's
    /// memory cannot be cut at a position); returns what was kept.
    fn cut(&mut self, i: usize, keep: usize) -> usize {
        let slot = &mut self.slots[i];
        let mut keep = keep;
        if self
            .ctx
            .kv_cache_seq_rm(slot.seq, Some(keep as u32), None)
            .is_err()
        {
            let _ = self.ctx.kv_cache_seq_rm(slot.seq, None, None);
            keep = 0;
        }
        slot.cache.truncate(keep);
        keep
    }

    /// Replaces slot `target`'s cache with the first `n` tokens of slot `source`'s. In the
    /// unified KV cache this only tags the cells with a second sequence: nothing is computed
    /// or stored twice, and either slot may later drop them without touching the other.
    fn copy_prefix(&mut self, source: usize, target: usize, n: usize) -> usize {
        let (from, to) = (self.slots[source].seq, self.slots[target].seq);
        let _ = self.ctx.kv_cache_seq_rm(to, None, None);
        if self
            .ctx
            .kv_cache_seq_cp(from, to, Some(0), Some(n as u32))
            .is_err()
        {
            self.slots[target].cache.clear();
            return 0;
        }
        let prefix = self.slots[source].cache[..n].to_vec();
        self.slots[target].cache = prefix;
        n
    }

    /// One decode step over every busy slot: generation tokens first, then prompt chunks
    /// within the budget.
    fn step(&mut self) {
        let parts = self.plan();
        if parts.is_empty() {
            return;
        }
        let generating = parts.iter().filter(|p| p.prompt == 0).count();
        let prompt: usize = parts.iter().map(|p| p.prompt).sum();
        // Only a whole step teaches the pace (a retried one's parts are not a step's).
        if let Some(took) = self.decode_and_apply(parts) {
            self.pace.record(took, generating, prompt);
        }
        self.touch();
    }

    /// Decodes `parts` and applies the result, or recovers from a refusal. Returns how long
    /// the decode took when it went through at the first try.
    fn decode_and_apply(&mut self, parts: Vec<Part>) -> Option<Duration> {
        let started = Instant::now();
        match self.decode(&parts) {
            Ok(outputs) => {
                let took = started.elapsed();
                self.apply(&parts, outputs);
                Some(took)
            }
            Err(refused) => {
                self.recover(parts, refused);
                None
            }
        }
    }

    /// What the next step decodes: each generating slot's next token, then prompt chunks of
    /// the prefilling slots while the budget lasts.
    fn plan(&self) -> Vec<Part> {
        let running = || {
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| Some((i, s.job.as_ref().filter(|j| j.twin_of.is_none())?)))
        };
        let mut parts: Vec<Part> = running()
            .filter(|(_, job)| job.next.is_some())
            .map(|(slot, _)| Part { slot, prompt: 0 })
            .collect();
        let mut budget = BATCH_TOKENS - parts.len();
        let mut short_budget = 0;
        if !parts.is_empty() {
            budget = budget.min(self.pace.prefill_budget());
            short_budget = SHORT_PROMPTS_BESIDE_STREAMS.min(BATCH_TOKENS - parts.len() - budget);
        }
        for (slot, job) in running() {
            if job.next.is_some() || job.fed >= job.tokens.len() {
                continue;
            }
            let left = job.tokens.len() - job.fed;
            if left <= SHORT_PROMPT && left <= short_budget {
                parts.push(Part { slot, prompt: left });
                short_budget -= left;
                continue;
            }
            if budget == 0 {
                continue;
            }
            let take = left.min(budget);
            parts.push(Part { slot, prompt: take });
            budget -= take;
        }
        parts
    }

    /// Decodes `parts` as one batch; returns where each slot's logits came out (slot, index
    /// in the batch). llama.cpp removes what a refused micro-batch had added; see
    /// [`Worker::recover`] for the ones before it.
    fn decode(&mut self, parts: &[Part]) -> Result<Vec<(usize, i32)>, Refused> {
        self.batch.clear();
        let mut outputs = Vec::new();
        for part in parts {
            let slot = &self.slots[part.slot];
            let Some(job) = &slot.job else { continue };
            let mut add = |token, pos: usize, last: bool| {
                self.batch
                    .add(token, pos as i32, &[slot.seq], last)
                    .map_err(|e| Refused::new(format!("building the batch: {e}"), false))?;
                if last {
                    outputs.push((part.slot, self.batch.n_tokens() - 1));
                }
                Ok::<_, Refused>(())
            };
            match (part.prompt, job.next) {
                (0, Some(token)) => add(token, slot.cache.len(), true)?,
                (0, None) => {}
                (take, _) => {
                    for k in job.fed..job.fed + take {
                        add(job.tokens[k], k, k + 1 == job.tokens.len())?;
                    }
                }
            }
        }
        if self.batch.n_tokens() == 0 {
            return Ok(outputs);
        }
        self.ctx.decode(&mut self.batch).map_err(|e| {
            // Invalid input (-1) is the same in any smaller batch; a full cache or a failed
            // allocation or computation may not be.
            let smaller = !matches!(e, DecodeError::NTokensZero);
            Refused::new(format!("decode: {e}"), smaller)
        })?;
        Ok(outputs)
    }

    /// After a successful decode of `parts`: the prompt chunks join their slots' caches, and
    /// every slot with logits samples its next token.
    fn apply(&mut self, parts: &[Part], outputs: Vec<(usize, i32)>) {
        for part in parts.iter().filter(|p| p.prompt > 0) {
            let slot = &mut self.slots[part.slot];
            if let Some(job) = &mut slot.job {
                slot.cache
                    .extend_from_slice(&job.tokens[job.fed..job.fed + part.prompt]);
                job.fed += part.prompt;
            }
        }
        for (i, idx) in outputs {
            self.start_twins(i, idx);
            self.sample(i, idx);
        }
    }

    /// A refused step, as llama-server does, goes again in smaller parts instead of failing
    /// every slot: first half the slots and then the other half (each halved again if
    /// refused), and a slot alone with a prompt chunk tries half the chunk (the rest follows in
    /// later steps). Only a slot whose single token is refused fails, and only its request.
    fn recover(&mut self, parts: Vec<Part>, refused: Refused) {
        let metrics = &self.setup.metrics;
        let retry = match parts.as_slice() {
            [] => return,
            [one] if one.prompt > 1 && refused.smaller_may_help => {
                vec![vec![Part {
                    prompt: one.prompt / 2,
                    ..*one
                }]]
            }
            [one] => {
                metrics.decode_failures.inc();
                tracing::error!(error = %refused.message, slot = one.slot,
                    "llama.cpp refused one request's tokens: that request fails, the other slots go on");
                return self.fail_slot(one.slot, &refused.message);
            }
            many => {
                let (a, b) = many.split_at(many.len() / 2);
                vec![a.to_vec(), b.to_vec()]
            }
        };
        metrics.decode_retries.inc();
        tracing::warn!(error = %refused.message, slots = parts.len(),
            "llama.cpp refused a decode step: trying it again in smaller parts");
        // A step llama.cpp split into several ubatches (recurrent and hybrid models, or a
        // sliding-window cache that could not place it whole) keeps what the ubatches before
        // the failed one wrote: cut every part's sequence back to what its slot holds, so the
        // retried parts continue where they should.
        for part in &parts {
            let slot = &self.slots[part.slot];
            let _ = self
                .ctx
                .kv_cache_seq_rm(slot.seq, Some(slot.cache.len() as u32), None);
        }
        for parts in retry {
            self.decode_and_apply(parts);
        }
    }

    /// When slot `i` has just decoded its prompt, its waiting copies take the cache and sample
    /// their first token from the same logits (`idx`).
    fn start_twins(&mut self, i: usize, idx: i32) {
        let Some(leader) = self.slots[i].job.as_ref().filter(|j| j.next.is_none()) else {
            return;
        };
        let id = leader.id;
        for t in 0..self.slots.len() {
            let twin = self.slots[t].job.as_ref();
            if twin.is_some_and(|j| j.twin_of == Some(id)) && self.promote(t, i) {
                self.sample(t, idx);
            }
        }
    }

    fn sample(&mut self, i: usize, idx: i32) {
        let model = self.setup.model;
        let metrics = &self.setup.metrics;
        let slot = &mut self.slots[i];
        let Some(job) = &mut slot.job else { return };
        if let Some(decoded) = job.next.take() {
            slot.cache.push(decoded);
        }
        let Some(token) = job.sampler.sample(&self.ctx, idx) else {
            let _ = job.events.send(Event::Error(EngineError::Invalid(
                "the output format allows no further token: no value satisfies its schema \
                 (for example minimum above maximum)"
                    .into(),
            )));
            slot.job = None;
            return;
        };
        let now = Instant::now();
        match job.last_token {
            None => metrics.ttft.observe((now - job.enqueued).as_secs_f64()),
            Some(last) => metrics.inter_token.observe((now - last).as_secs_f64()),
        }
        job.first_token.get_or_insert(now);
        job.last_token = Some(now);
        let vocab = model.vocab();
        if vocab.is_eog(token) {
            return self.finish(i, FinishReason::Stop);
        }
        if let Some(top) = job.logprobs {
            let lp = logprobs::logprob(model, self.ctx.get_logits_ith(idx), token, top);
            let _ = job.events.send(Event::Logprob(Box::new(lp)));
        }
        job.generated += 1;
        let piece = vocab.token_to_piece(token, job.preserved.contains(&token), None);
        match job.text.push(&piece) {
            Delta::Text(text) => {
                if !text.is_empty() {
                    let _ = job.events.send(Event::Token(text));
                }
            }
            Delta::Stopped(text, which) => {
                if !text.is_empty() {
                    let _ = job.events.send(Event::Token(text));
                }
                let which = u16::try_from(which).unwrap_or(u16::MAX);
                return self.finish(i, FinishReason::StopSequence(which));
            }
        }
        if job.generated >= job.max_tokens {
            return self.finish(i, FinishReason::Length);
        }
        job.next = Some(token);
    }

    fn finish(&mut self, i: usize, finish: FinishReason) {
        let Some(mut job) = self.slots[i].job.take() else {
            return;
        };
        let rest = job.text.finish();
        // Text held back because it could have grown into a stop string is the answer's own,
        // unless a stop string was found.
        if !rest.is_empty() && !matches!(finish, FinishReason::StopSequence(_)) {
            let _ = job.events.send(Event::Token(rest));
        }
        let now = Instant::now();
        let first = job.first_token.unwrap_or(now);
        let usage = Usage {
            prompt_tokens: job.tokens.len() as u32,
            cached_tokens: job.cached,
            completion_tokens: job.generated,
            ttft: first - job.enqueued,
            total: now - job.enqueued,
            prompt_eval: first - job.assigned.unwrap_or(job.enqueued),
        };
        let m = &self.setup.metrics;
        m.prompt_tokens.inc_by(u64::from(usage.prompt_tokens));
        m.generated_tokens
            .inc_by(u64::from(usage.completion_tokens));
        let gen_time = (now - first).as_secs_f64();
        if usage.completion_tokens > 1 && gen_time > 0.0 {
            m.tokens_per_second
                .observe(f64::from(usage.completion_tokens - 1) / gen_time);
        }
        // The slot is free before the answer ends, so the load the answer reports counts it free.
        self.publish_stats();
        let _ = job.events.send(Event::Done { finish, usage });
    }

    /// Fails slot `i`'s request and forgets its cache, whose state llama.cpp refused.
    fn fail_slot(&mut self, i: usize, message: &str) {
        let slot = &mut self.slots[i];
        if let Some(job) = slot.job.take() {
            let _ = job
                .events
                .send(Event::Error(EngineError::Internal(message.into())));
        }
        let _ = self.ctx.kv_cache_seq_rm(slot.seq, None, None);
        slot.cache.clear();
    }

    fn publish_stats(&self) {
        let busy = self.slots.iter().filter(|s| s.job.is_some()).count();
        let kv: usize = self.slots.iter().map(|s| s.cache.len()).sum();
        let stats = &self.setup.stats;
        stats.busy_slots.store(busy, Ordering::Relaxed);
        stats.queued.store(self.waiting.len(), Ordering::Relaxed);
        let m = &self.setup.metrics;
        m.busy_slots.set(busy as i64);
        m.queue_depth.set(self.waiting.len() as i64);
        m.kv_cells_used.set(kv as i64);
    }
}

/// How much of a prompt may come from a cache: all but the last token, whose decoding gives
/// the logits that start generation.
fn reusable(tokens: &[LlamaToken]) -> usize {
    tokens.len().saturating_sub(1)
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
