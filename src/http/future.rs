//! The future of a request through [`Auth`](super::Auth).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;

use super::AuthError;

type Boxed<B, E, S> = Pin<Box<dyn Future<Output = Result<Response<B>, AuthError<E, S>>> + Send>>;

/// The response of a request through [`Auth`](super::Auth): waits for a
/// token if needed, sends, and sends again after a rejection.
///
/// Dropping it gives up the request at any point: a request that waits for
/// a refresh leaves the queue (the refresh goes on for the others).
pub struct ResponseFuture<B, E, S> {
    inner: Boxed<B, E, S>,
}

impl<B, E, S> ResponseFuture<B, E, S> {
    pub(super) fn new(
        future: impl Future<Output = Result<Response<B>, AuthError<E, S>>> + Send + 'static,
    ) -> Self {
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

impl<B, E, S> Future for ResponseFuture<B, E, S> {
    type Output = Result<Response<B>, AuthError<E, S>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E, S> fmt::Debug for ResponseFuture<B, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
