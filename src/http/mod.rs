//! HTTP: a [`tower`](https://docs.rs/tower) middleware (and, with the
//! `reqwest` feature, a `reqwest-middleware` one) that puts the shared token
//! on every request and sends a rejected request again with the new one.
//!
//! ```text
//!  request ──► Auth ── token from the Handle (waits while refreshing) ──► inner service
//!                ▲                                                          │
//!                └── Rejected? reject(ticket) → the one refresh → resend ◄──┘  Accepted → caller
//! ```
//!
//! - **Injection** ([`Inject`]): `Authorization: Bearer …` by default
//!   ([`Bearer`]); a cookie ([`Cookie`], e.g. `JSESSIONID`), any header
//!   ([`SetHeader`]) or a closure. The header value is marked sensitive so
//!   that HTTP/2's header compression and well-behaved loggers leave it out.
//! - **Classification** ([`Classify`]): `401 Unauthorized` means "token
//!   rejected" by default ([`RejectOnStatus`]); [`RejectOnBody`] reads a
//!   bounded prefix of the body for APIs that answer `200 {"code":"0002"}`.
//! - **Retries**: a rejected request is sent again with the token the
//!   [`Handle`](crate::Handle) hands out after its rejection: a new
//!   generation (one refresh, however many requests were rejected), or the
//!   current one if the rejected token was already stale. Each request is
//!   sent at most `1 + max_auth_retries` times. When every send was
//!   rejected, the caller gets the last rejection response as `Ok`, as
//!   tower's retry middleware returns its last response: the `401` with its
//!   `WWW-Authenticate` and body, marked with the [`RetriesExhausted`]
//!   extension. It is never an error: a client that checks statuses (or
//!   `error_for_status`) sees it as it sees any other refusal.
//! - **Bodies that cannot be sent twice** ([`ReplayBody`], [`OneShot`]) are
//!   not retried: the caller gets the rejection response, marked with the
//!   [`NotRetried`] extension, and the token is declared bad so that the
//!   next request waits for a new one.
//! - **Bypass**: a request carrying the [`SkipAuth`] extension (the refresh
//!   call itself, public endpoints) goes straight to the inner service,
//!   never waits for a token and is never classified.
//!
//! # Examples
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use tokenflight::http::AuthLayer;
//! use tokenflight::{Config, Fresh, Handle, RefreshError};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A refresher that counts the tokens it issues: "t1", "t2", ...
//! let issued = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&issued);
//! let handle = Handle::new(Config::default(), move |_| {
//!     let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
//!     async move { Ok::<_, RefreshError<Infallible>>(Fresh::new(format!("t{n}"))) }
//! })
//! .unwrap();
//!
//! // A server that accepts only the second token.
//! let server = service_fn(|req: Request<String>| async move {
//!     let ok = req.headers()["authorization"] == "Bearer t2";
//!     let status = if ok { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
//!     Ok::<_, Infallible>(Response::builder().status(status).body(()).unwrap())
//! });
//!
//! let client = AuthLayer::new(handle).layer(server);
//! let response = client.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(issued.load(Ordering::SeqCst), 2); // one refresh after the 401
//! # }
//! ```

mod classify;
mod error;
mod future;
mod inject;
mod layer;
mod replay;
#[cfg(feature = "reqwest")]
pub mod reqwest;
mod service;

pub use classify::{Classify, Inspected, RejectOnBody, RejectOnStatus, Verdict};
pub use error::{AuthError, BoxError, InvalidToken};
pub use future::ResponseFuture;
pub use inject::{Bearer, Cookie, Inject, SetHeader};
pub use layer::AuthLayer;
pub use replay::{OneShot, ReplayBody};
pub use service::Auth;

/// Marks a request that must go out without a token: the refresh call
/// itself, a login, a public endpoint. It goes straight to the inner
/// service, never waits for a token and its response is not classified.
///
/// # Examples
///
/// ```
/// use tokenflight::http::SkipAuth;
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(SkipAuth);
/// assert!(request.extensions().get::<SkipAuth>().is_some());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SkipAuth;

/// Put on the last rejection response of a request whose every send was
/// rejected (`1 + max_auth_retries` of them, fresh tokens included): the
/// layer hands it to the caller as `Ok`, as tower's retry hands back its
/// last response, instead of an error that would drop its status, its
/// `WWW-Authenticate` and its body. The token it was sent with is declared
/// bad, as after every rejection.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use http::{header, Request, Response, StatusCode};
/// use tokenflight::http::{AuthLayer, RetriesExhausted};
/// use tokenflight::{Config, Fresh, Handle, RefreshError};
/// use tower::{service_fn, Layer, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let config = Config::default().with_max_auth_retries(1);
/// let handle = Handle::new(config, |_| async {
///     Ok::<_, RefreshError<Infallible>>(Fresh::new("t".to_string()))
/// })
/// .unwrap();
/// // A server that refuses this client whatever its token.
/// let server = service_fn(|_: Request<String>| async {
///     let refused = Response::builder()
///         .status(StatusCode::UNAUTHORIZED)
///         .header(header::WWW_AUTHENTICATE, r#"Bearer error="insufficient_scope""#)
///         .body(())
///         .unwrap();
///     Ok::<_, Infallible>(refused)
/// });
/// let client = AuthLayer::new(handle).layer(server);
/// let response = client.oneshot(Request::new(String::new())).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(
///     response.headers()[header::WWW_AUTHENTICATE],
///     r#"Bearer error="insufficient_scope""#
/// );
/// assert_eq!(response.extensions().get(), Some(&RetriesExhausted { sends: 2 }));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetriesExhausted {
    /// How many times the request was sent, each time rejected.
    pub sends: u32,
}

/// Put on a response that says the token was rejected, when the layer hands
/// it back instead of sending the request again because the request's body
/// cannot be sent twice (see [`ReplayBody`]).
///
/// The token it was sent with is declared bad, so the next request waits for
/// a new one; the caller may rebuild the request and send it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NotRetried;
