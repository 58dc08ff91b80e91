//! The engine thread's loop: intake, slot assignment with prefix reuse, one batched decode
//! step over every busy slot (generation tokens first, then prompt chunks), sampling.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::job::{self, Job};
use super::load::{EngineConfig, ModelInfo, context_params};
use super::offload;
use super::stop::Delta;
use super::template::ChatFormat;
use super::{
    Command, EngineError, EngineStats, Event, FinishReason, Generation, Usage, embed, logprobs,
    tokens,
};
use crate::serve::metrics::EngineMetrics;

/// Tokens decoded per step at most. It bounds how long generating streams wait while a long
/// prompt is prefilled (chunked prefill) and matches llama.cpp's default micro-batch.
pub(crate) const BATCH_TOKENS: usize = 512;
/// How often an idle engine wakes up to report that it is alive.
const IDLE_TICK: Duration = Duration::from_millis(200);

pub(crate) struct Setup<'m> {
    pub backend: &'static LlamaBackend,
    pub model: &'m LlamaModel,
    pub template: ChatFormat,
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
}

struct Worker<'m> {
    setup: Setup<'m>,
    ctx: LlamaContext<'m>,
    embed_ctx: Option<LlamaContext<'m>>,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    batch: LlamaBatch<'static>,
    closed: bool,
    /// The model's end-of-generation tokens, found once (a scan of the whole vocabulary),
    /// for requests with `ignore_eos`.
    eog: Vec<LlamaToken>,
}

pub(crate) fn run(
    setup: Setup<'_>,
    rx: mpsc::Receiver<Command>,
    ready: mpsc::SyncSender<Result<ModelInfo, EngineError>>,
    info: ModelInfo,
) {
    let config = setup.config;
    let params = context_params(config);
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
        .set(i64::from(config.ctx) * i64::from(config.parallel));
    setup.metrics.slots.set(i64::from(config.parallel));
    let slots = (0..config.parallel)
        .map(|i| Slot {
            seq: i as i32,
            cache: Vec::new(),
            job: None,
        })
        .collect();
    let mut worker = Worker {
        setup,
        ctx,
        embed_ctx: None,
        slots,
        waiting: VecDeque::new(),
        batch: LlamaBatch::new(BATCH_TOKENS, 1),
        closed: false,
        eog: Vec::new(),
    };
    let vocab = worker.setup.model.vocab();
    worker.eog = (0..worker.setup.model.n_vocab())
        .map(LlamaToken)
        .filter(|&t| vocab.is_eog(t))
        .collect();
    let mut info = info;
    info.gpu_memory_bytes = offload::memory_taken(&info.gpus);
    if ready.send(Ok(info)).is_err() {
        return;
    }
    while worker.intake(&rx) {
        worker.drop_cancelled();
        worker.assign();
        worker.step();
        worker.publish_stats();
    }
}

impl<'m> Worker<'m> {
    fn busy(&self) -> bool {
        !self.waiting.is_empty() || self.slots.iter().any(|s| s.job.is_some())
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
            Command::Embed { inputs, reply } => {
                let result = embed::embed(
                    self.setup.backend,
                    self.setup.model,
                    self.setup.config,
                    &mut self.embed_ctx,
                    &inputs,
                );
                let _ = reply.send(result);
            }
            Command::Tokenize {
                text,
                add_special,
                reply,
            } => {
                let _ = reply.send(tokens::tokenize(self.setup.model, &text, add_special));
            }
            Command::Detokenize { ids, reply } => {
                let _ = reply.send(tokens::detokenize(self.setup.model, &ids));
            }
            Command::Count { prompt, reply } => {
                let tokens = job::prompt_tokens(self.setup.model, &self.setup.template, prompt);
                let _ = reply.send(tokens.map(|t| t.len() as u32));
            }
        }
    }

    fn admit(&mut self, job: Generation) {
        let model = self.setup.model;
        let ctx = self.setup.config.ctx;
        if let Some(job) = job::admit(model, &self.setup.template, ctx, job, &self.eog) {
            self.waiting.push_back(job);
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

    /// Gives waiting jobs free slots, preferring the slot whose cache shares the longest prefix.
    fn assign(&mut self) {
        while let Some(free) = self.slots.iter().position(|s| s.job.is_none()) {
            let Some(mut job) = self.waiting.pop_front() else {
                return;
            };
            let best = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.job.is_none())
                .map(|(i, s)| (i, common_prefix(&s.cache, &job.tokens)))
                .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
                .unwrap_or((free, 0));
            let slot = &mut self.slots[best.0];
            // At least the last prompt token is decoded again: its logits start generation.
            let mut keep = best.1.min(job.tokens.len() - 1);
            let mem = &mut self.ctx;
            if mem
                .kv_cache_seq_rm(slot.seq, Some(keep as u32), None)
                .is_err()
            {
                let _ = mem.kv_cache_seq_rm(slot.seq, None, None);
                keep = 0;
            }
            slot.cache.truncate(keep);
            job.fed = keep;
            job.cached = keep as u32;
            job.assigned = Some(Instant::now());
            slot.job = Some(job);
        }
    }

    fn step(&mut self) {
        self.batch.clear();
        let mut outputs: Vec<(usize, i32)> = Vec::new();
        let mut planned: Vec<(usize, usize)> = Vec::new();
        let mut budget = BATCH_TOKENS;
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(job) = &slot.job else { continue };
            if let Some(token) = job.next {
                let pos = slot.cache.len() as i32;
                if self.batch.add(token, pos, &[slot.seq], true).is_ok() {
                    outputs.push((i, self.batch.n_tokens() - 1));
                    budget -= 1;
                }
            }
        }
        for (i, slot) in self.slots.iter().enumerate() {
            let Some(job) = &slot.job else { continue };
            if job.next.is_some() || job.fed >= job.tokens.len() || budget == 0 {
                continue;
            }
            let take = (job.tokens.len() - job.fed).min(budget);
            for k in job.fed..job.fed + take {
                let last = k + 1 == job.tokens.len();
                if self
                    .batch
                    .add(job.tokens[k], k as i32, &[slot.seq], last)
                    .is_err()
                {
                    break;
                }
                if last {
                    outputs.push((i, self.batch.n_tokens() - 1));
                }
            }
            planned.push((i, take));
            budget -= take;
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        if let Err(e) = self.ctx.decode(&mut self.batch) {
            tracing::error!(error = %e, "decode failed");
            self.fail_all(&format!("decode: {e}"));
            return;
        }
        self.touch();
        for (i, take) in planned {
            let slot = &mut self.slots[i];
            if let Some(job) = &mut slot.job {
                slot.cache
                    .extend_from_slice(&job.tokens[job.fed..job.fed + take]);
                job.fed += take;
            }
        }
        for (i, idx) in outputs {
            self.sample(i, idx);
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
        let _ = job.events.send(Event::Done { finish, usage });
    }

    fn fail_all(&mut self, message: &str) {
        for slot in &mut self.slots {
            if let Some(job) = slot.job.take() {
                let _ = job
                    .events
                    .send(Event::Error(EngineError::Internal(message.into())));
                let _ = self.ctx.kv_cache_seq_rm(slot.seq, None, None);
                slot.cache.clear();
            }
        }
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

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
