//! The same for `reqwest`: a [`reqwest_middleware`] middleware.
//!
//! One line on the client builder:
//!
//! ```
//! use tokenflight::{Config, Fresh, Handle, RefreshError};
//!
//! let handle = Handle::new(Config::default(), |_| async {
//!     Ok::<_, RefreshError<std::io::Error>>(Fresh::new("token".to_string()))
//! })
//! .unwrap();
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(tokenflight::http::reqwest::Auth::new(handle))
//!     .build();
//! # drop(client);
//! ```
//!
//! Requests built with `.with_extension(SkipAuth)` go out without a token.
//! A request whose body is a stream (`reqwest::Request::try_clone` is
//! `None`) is not sent again: the caller gets the rejection response, with
//! the token declared bad, marked [`NotRetried`]. A request rejected on
//! every send gets its last rejection back as `Ok`, marked
//! [`RetriesExhausted`], as the tower layer does: `error_for_status()`
//! turns it into reqwest's own error.
//!
//! Errors come back as [`reqwest_middleware::Error::Middleware`] holding
//! the handle's [`HandleError`](crate::HandleError) or an
//! [`InvalidToken`]: `err.downcast_ref::<HandleError<E>>()` on the inner
//! `anyhow::Error` finds it, and `{:#}` prints its causes.
//!
//! Classification looks at the head only (the status, `401` by default):
//! a `reqwest::Response` cannot be put back together once its body is read.
//! For body codes, use the tower [`AuthLayer`](super::AuthLayer).

use std::fmt;
use std::sync::Arc;

use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use super::{Bearer, Inject, InvalidToken, NotRetried, RetriesExhausted, SkipAuth};
use crate::{Error, Handle};

type Rejects = Arc<dyn Fn(&Response) -> bool + Send + Sync>;

/// Puts the token on every request and sends a rejected request again with
/// the next one.
pub struct Auth<T, E, I = Bearer> {
    handle: Handle<T, E>,
    inject: I,
    rejects: Rejects,
}

impl<T, E> Auth<T, E> {
    /// `Authorization: Bearer …`, and `401` means the token was rejected.
    pub fn new(handle: Handle<T, E>) -> Self {
        Auth {
            handle,
            inject: Bearer,
            rejects: Arc::new(|response| response.status() == StatusCode::UNAUTHORIZED),
        }
    }
}

impl<T, E, I> Auth<T, E, I> {
    /// Puts the token on requests with `inject` instead.
    pub fn inject<I2>(self, inject: I2) -> Auth<T, E, I2> {
        Auth {
            handle: self.handle,
            inject,
            rejects: self.rejects,
        }
    }

    /// Takes a response as a rejection when `rejects` says so, instead of
    /// on `401`.
    pub fn rejects(mut self, rejects: impl Fn(&Response) -> bool + Send + Sync + 'static) -> Self {
        self.rejects = Arc::new(rejects);
        self
    }
}

impl<T, E, I: fmt::Debug> fmt::Debug for Auth<T, E, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inject", &self.inject)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl<T, E, I> Middleware for Auth<T, E, I>
where
    T: Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    I: Inject<T>,
{
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if extensions.get::<SkipAuth>().is_some() {
            return next.run(request, extensions).await;
        }
        let mut ticket = self
            .handle
            .ticket()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        loop {
            let spare = request.try_clone();
            self.inject
                .inject(ticket.token(), request.headers_mut())
                .map_err(|e: InvalidToken| reqwest_middleware::Error::middleware(e))?;
            let response = next.clone().run(request, extensions).await?;
            if !(self.rejects)(&response) {
                return Ok(response);
            }
            let (generation, send) = (ticket.generation().0, ticket.send());
            let Some(again) = spare else {
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
            // Kept while the handle answers: the caller's if it was the last send.
            ticket = match self.handle.reject(ticket).await {
                Ok(next) => next,
                Err(Error::AuthRejected { sends }) => {
                    let mut response = response;
                    response.extensions_mut().insert(RetriesExhausted { sends });
                    return Ok(response);
                }
                Err(e) => return Err(reqwest_middleware::Error::middleware(e)),
            };
            request = again;
        }
    }
}

const _: () = {
    const fn send_sync<X: Send + Sync>() {}
    send_sync::<Auth<String, std::io::Error>>();
};
