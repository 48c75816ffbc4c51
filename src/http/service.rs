//! The middleware itself.

use std::fmt;
use std::future::poll_fn;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use tracing::Instrument;

use super::replay::replay;
use super::{
    AuthError, Bearer, Classify, Inject, NotRetried, RejectOnStatus, ReplayBody, ResponseFuture,
    RetriesExhausted, SkipAuth, Verdict,
};
use crate::{Error, Handle};

/// Puts the token on every request to `S` and sends a rejected request
/// again with the next one. Made by [`AuthLayer`](super::AuthLayer).
///
/// # Readiness
///
/// `poll_ready` is the inner service's. The first send of a request uses
/// the service that was made ready; a retry readies a clone of it first, as
/// tower's own retry middleware does, so `S` must be `Clone`.
pub struct Auth<S, T, E, I = Bearer, C = RejectOnStatus> {
    inner: S,
    handle: Handle<T, E>,
    inject: I,
    classify: C,
}

impl<S, T, E> Auth<S, T, E> {
    /// Wraps `inner` with the defaults of [`AuthLayer::new`](super::AuthLayer::new).
    pub fn new(inner: S, handle: Handle<T, E>) -> Self {
        Auth::from_parts(inner, handle, Bearer, RejectOnStatus::default())
    }
}

impl<S, T, E, I, C> Auth<S, T, E, I, C> {
    pub(super) fn from_parts(inner: S, handle: Handle<T, E>, inject: I, classify: C) -> Self {
        Auth {
            inner,
            handle,
            inject,
            classify,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The handle whose token is put on requests.
    pub fn handle(&self) -> &Handle<T, E> {
        &self.handle
    }
}

impl<S: Clone, T, E, I: Clone, C: Clone> Clone for Auth<S, T, E, I, C> {
    fn clone(&self) -> Self {
        Auth {
            inner: self.inner.clone(),
            handle: self.handle.clone(),
            inject: self.inject.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, T, E, I: fmt::Debug, C: fmt::Debug> fmt::Debug for Auth<S, T, E, I, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("inject", &self.inject)
            .field("classify", &self.classify)
            .finish_non_exhaustive()
    }
}

impl<S, T, E, I, C, ReqB, ResB> Service<Request<ReqB>> for Auth<S, T, E, I, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
    I: Inject<T>,
    C: Classify<ResB>,
    ReqB: ReplayBody + Send + 'static,
    ResB: Send + 'static,
    C::Body: Send + 'static,
{
    type Response = Response<C::Body>;
    type Error = AuthError<E, S::Error>;
    type Future = ResponseFuture<C::Body, E, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(AuthError::Service)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        // The service made ready is the one to call; leave a clone in its
        // place (the pattern `Service::call`'s docs recommend).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let classify = self.classify.clone();
        if request.extensions().get::<SkipAuth>().is_some() {
            tracing::trace!("request skips authentication");
            return ResponseFuture::new(async move {
                let response = inner.call(request).await.map_err(AuthError::Service)?;
                Ok(classify.unclassified(response))
            });
        }
        let span = tracing::debug_span!(
            "tokenflight.http",
            method = %request.method(),
            path = request.uri().path(),
        );
        let sending = Sending {
            inner,
            handle: self.handle.clone(),
            inject: self.inject.clone(),
            classify,
        };
        ResponseFuture::new(sending.run(request).instrument(span))
    }
}

/// One request's way through the layer.
struct Sending<S, T, E, I, C> {
    inner: S,
    handle: Handle<T, E>,
    inject: I,
    classify: C,
}

impl<S, T, E, I, C> Sending<S, T, E, I, C>
where
    T: Send + Sync + 'static,
    E: Send + Sync + 'static,
    I: Inject<T>,
{
    /// Sends `request` until it is accepted, cannot be sent again, or the
    /// handle says no more.
    ///
    /// Each rejection goes to the handle, which answers with the token to
    /// send next: one refresh per generation however many requests report
    /// it, the current token for a stale rejection, and `AuthRejected`
    /// once the request's sends are spent (S2, S4): then the caller gets
    /// the last rejection, as tower's retry hands back its last response.
    async fn run<ReqB, ResB>(
        mut self,
        mut request: Request<ReqB>,
    ) -> Result<Response<C::Body>, AuthError<E, S::Error>>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        C: Classify<ResB>,
        ReqB: ReplayBody,
    {
        let mut ticket = self.handle.ticket().await.map_err(|e| {
            tracing::debug!(error = %DisplayError(&e), "no token for the request");
            AuthError::Token(e)
        })?;
        let mut readied = true;
        loop {
            // Copied before the token goes on: a retry gets the next token,
            // not two.
            let spare = replay(&request);
            self.inject
                .inject(ticket.token(), request.headers_mut())
                .map_err(AuthError::InvalidToken)?;
            if !readied {
                poll_fn(|cx| self.inner.poll_ready(cx))
                    .await
                    .map_err(AuthError::Service)?;
            }
            readied = false;
            let response = self.inner.call(request).await.map_err(AuthError::Service)?;
            let (verdict, response) = self
                .classify
                .classify(response)
                .await
                .map_err(AuthError::Classify)?;
            if verdict == Verdict::Accepted {
                return Ok(response);
            }
            let (generation, send) = (ticket.generation().0, ticket.send());
            let Some(next) = spare else {
                // It cannot go again: the caller gets the rejection, and the
                // token is known bad so that the next request waits for a
                // new one instead of being sent with it.
                tracing::debug!(
                    generation,
                    send,
                    "token rejected; the body cannot be sent again"
                );
                self.handle.invalidate(ticket.generation());
                let mut response = response;
                response.extensions_mut().insert(NotRetried);
                return Ok(response);
            };
            tracing::debug!(generation, send, "token rejected; sending again");
            // The rejection is kept while the handle answers: if this was
            // the request's last send, it is what the caller gets.
            ticket = match self.handle.reject(ticket).await {
                Ok(next) => next,
                Err(Error::AuthRejected { sends }) => {
                    tracing::debug!(
                        sends,
                        "token rejected on every send; the caller gets the last rejection"
                    );
                    let mut response = response;
                    response.extensions_mut().insert(RetriesExhausted { sends });
                    return Ok(response);
                }
                Err(e) => {
                    tracing::debug!(error = %DisplayError(&e), "no token to send the request again with");
                    return Err(AuthError::Token(e));
                }
            };
            request = next;
        }
    }
}

/// `Display` for the handle's errors whatever `E` is: the variant's own
/// words, never a token (errors carry none).
struct DisplayError<'a, E>(&'a crate::HandleError<E>);

impl<E> fmt::Display for DisplayError<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Error::RefreshUnavailable(_) => f.write_str("token refresh is failing"),
            Error::LoginRequired(_) => {
                f.write_str("token refresh was refused, a new login is needed")
            }
            Error::Overloaded => f.write_str("too many requests are waiting for a token"),
            Error::AuthRejected { sends } => {
                write!(f, "the server rejected the token on all {sends} sends")
            }
            _ => f.write_str("the handle refused the request"),
        }
    }
}

// The service and its future cross tasks and threads.
const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    const fn send<X: Send>() {}
    send_sync::<Auth<(), String, std::io::Error>>();
    send_sync::<super::AuthLayer<String, std::io::Error>>();
    send::<ResponseFuture<String, std::io::Error, std::io::Error>>();
};
