//! The llama.cpp engine behind the [`Backend`] seam: a thread that owns the context and decodes
//! (`worker.rs`), fed through a channel; templating and tokenizing run on tokio's blocking pool
//! with the model they share ([`load::Shared`]).

use std::sync::{Arc, mpsc};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc as tmpsc, oneshot};

use super::backend::Backend;
use super::{
    Command, Copy, Embeddings, EngineConfig, EngineError, EngineStats, Event, Generation,
    ModelInfo, Prompt, SamplingParams, TokenPiece, blocking, embed, job, load, off_engine_thread,
    tokens,
};
use crate::serve::metrics::EngineMetrics;

/// The channel to the engine thread, the thread, and what handlers share with it.
pub(crate) struct LlamaEngine {
    // Declared first, so dropped first: the last sender gone is what ends the thread's loop.
    tx: mpsc::Sender<Command>,
    /// Held for its `Drop` only (declared after `tx`, so dropped after it).
    _thread: EngineThread,
    /// The model and its template for work off the engine thread (dropped after the thread
    /// has joined, so the model outlives its contexts).
    shared: Arc<load::Shared>,
}

/// Joins the engine thread when the engine goes. Without it the thread would free the
/// llama.cpp context on its own while the process exits: on a GPU that races the CUDA runtime's
/// teardown and aborts the process (seen on an H200 at the end of a test binary).
struct EngineThread(Option<std::thread::JoinHandle<()>>);

impl Drop for EngineThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take()
            && handle.join().is_err()
        {
            tracing::error!("the engine thread panicked");
        }
    }
}

impl LlamaEngine {
    /// Loads the model and starts the engine thread. Blocking.
    pub(crate) fn start(
        config: EngineConfig,
        metrics: EngineMetrics,
        stats: Arc<EngineStats>,
        started: Instant,
    ) -> Result<(LlamaEngine, ModelInfo), EngineError> {
        let (tx, rx) = mpsc::channel();
        let (info, shared, thread) = load::spawn(config, metrics, rx, stats, started)?;
        let engine = LlamaEngine {
            tx,
            _thread: EngineThread(Some(thread)),
            shared,
        };
        Ok((engine, info))
    }
}

impl Backend for LlamaEngine {
    fn generate_copies(
        &self,
        prompt: Prompt,
        params: Vec<SamplingParams>,
    ) -> Result<Vec<tmpsc::UnboundedReceiver<Event>>, EngineError> {
        let (copies, receivers) = params
            .into_iter()
            .map(|params| {
                let (events, rx) = tmpsc::unbounded_channel();
                (Copy { params, events }, rx)
            })
            .unzip();
        let job = Generation {
            prompt,
            copies,
            enqueued: Instant::now(),
        };
        let (shared, tx) = (self.shared.clone(), self.tx.clone());
        // Templated and tokenized on a blocking-pool thread; a copy that cannot run gets its
        // error there. A gone engine drops the job, which closes the receivers.
        off_engine_thread(move || {
            if let Some(prepared) = job::prepare(&shared, job) {
                let _ = tx.send(Command::Generate(Box::new(prepared)));
            }
        });
        Ok(receivers)
    }

    fn embed(&self, inputs: Vec<String>) -> BoxFuture<'static, Result<Embeddings, EngineError>> {
        let (shared, tx) = (self.shared.clone(), self.tx.clone());
        async move {
            let inputs = blocking(move || embed::prepare(&shared, &inputs)).await??;
            let (reply, rx) = oneshot::channel();
            let job = embed::EmbedJob {
                inputs,
                vectors: Vec::new(),
                reply,
            };
            tx.send(Command::Embed(Box::new(job)))
                .map_err(|_| EngineError::Stopped)?;
            rx.await.map_err(|_| EngineError::Stopped)?
        }
        .boxed()
    }

    fn tokenize(
        &self,
        text: String,
        add_special: bool,
    ) -> BoxFuture<'static, Result<Vec<TokenPiece>, EngineError>> {
        let shared = self.shared.clone();
        blocking(move || tokens::tokenize(&shared.model, &text, add_special)).boxed()
    }

    fn count_tokens(&self, prompt: Prompt) -> BoxFuture<'static, Result<u32, EngineError>> {
        let shared = self.shared.clone();
        async move {
            let tokens =
                blocking(move || job::prompt_tokens(&shared.model, &shared.template, prompt))
                    .await??;
            Ok(tokens.len() as u32)
        }
        .boxed()
    }

    fn detokenize(&self, ids: Vec<i32>) -> BoxFuture<'static, Result<String, EngineError>> {
        let shared = self.shared.clone();
        async move { blocking(move || tokens::detokenize(&shared.model, &ids)).await? }.boxed()
    }

    #[cfg(test)]
    fn desync(&self, job: u64) {
        let _ = self.tx.send(Command::Desync(job));
    }
}
