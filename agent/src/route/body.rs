//! The upstream body on its way to the client: passed on chunk by chunk as it arrives (never
//! buffered), read by an [`Answer`] on the side, with a callback when it ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::answer::Answer;

/// How a proxied body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The upstream finished the body.
    Finished,
    /// The upstream connection failed mid-body.
    Cut,
    /// The client went away first.
    Abandoned,
}

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;
type OnEnd = Box<dyn FnOnce(Option<Answer>, End) + Send>;

/// A body stream that reports how it ended exactly once (also when dropped early).
pub struct Watched {
    inner: Upstream,
    answer: Option<Answer>,
    on_end: Option<OnEnd>,
}

impl Watched {
    /// Wraps `inner`; `answer` (if any) reads the chunks; `on_end` runs once at the end.
    pub fn new(
        inner: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
        answer: Option<Answer>,
        on_end: impl FnOnce(Option<Answer>, End) + Send + 'static,
    ) -> Self {
        Watched {
            inner: Box::pin(inner),
            answer,
            on_end: Some(Box::new(on_end)),
        }
    }

    fn end(&mut self, how: End) {
        if let Some(on_end) = self.on_end.take() {
            let mut answer = self.answer.take();
            if how == End::Finished
                && let Some(a) = answer.as_mut()
            {
                a.finish();
            }
            on_end(answer, how);
        }
    }
}

impl Stream for Watched {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.on_end.is_none() {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if let Some(answer) = self.answer.as_mut() {
                    answer.feed(&bytes);
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.end(End::Cut);
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.end(End::Finished);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.end(End::Abandoned);
    }
}
