//! The layer that wraps a service in [`Auth`].

use std::fmt;

use tower_layer::Layer;

use super::{Auth, Bearer, RejectOnStatus};
use crate::Handle;

/// Wraps a service in [`Auth`]: every request gets the handle's token, and
/// a request whose token the server rejects is sent again with the new one.
///
/// Defaults: [`Bearer`] injection, [`RejectOnStatus`] (`401`)
/// classification. See the [module docs](super) for the whole story.
///
/// # Examples
///
/// ```
/// use tokenflight::http::{AuthLayer, Cookie, RejectOnBody};
/// use tokenflight::{Config, Fresh, Handle, RefreshError};
///
/// let handle = Handle::new(Config::default(), |_| async {
///     Ok::<_, RefreshError<std::io::Error>>(Fresh::new("session".to_string()))
/// })
/// .unwrap();
///
/// // The mini-program recipe's server: `Cookie: JSESSIONID=…`, and an
/// // expired session answered `200 {"success":false,"code":"0002"}`.
/// let layer = AuthLayer::new(handle)
///     .inject(Cookie::new("JSESSIONID"))
///     .classify(RejectOnBody::new(|_head: &http::response::Parts, body: &[u8]| {
///         serde_json::from_slice::<serde_json::Value>(body)
///             .is_ok_and(|v| v["code"] == "0002" && v["success"] == false)
///     }));
/// # drop(layer);
/// ```
pub struct AuthLayer<T, E, I = Bearer, C = RejectOnStatus> {
    handle: Handle<T, E>,
    inject: I,
    classify: C,
}

impl<T, E> AuthLayer<T, E> {
    /// A layer that puts `handle`'s token in `Authorization: Bearer …` and
    /// takes `401` as a rejection.
    pub fn new(handle: Handle<T, E>) -> Self {
        AuthLayer {
            handle,
            inject: Bearer,
            classify: RejectOnStatus::default(),
        }
    }
}

impl<T, E, I, C> AuthLayer<T, E, I, C> {
    /// Puts the token on requests with `inject` instead.
    pub fn inject<I2>(self, inject: I2) -> AuthLayer<T, E, I2, C> {
        AuthLayer {
            handle: self.handle,
            inject,
            classify: self.classify,
        }
    }

    /// Tells rejections from other responses with `classify` instead.
    pub fn classify<C2>(self, classify: C2) -> AuthLayer<T, E, I, C2> {
        AuthLayer {
            handle: self.handle,
            inject: self.inject,
            classify,
        }
    }

    /// The handle whose token the layer uses.
    pub fn handle(&self) -> &Handle<T, E> {
        &self.handle
    }
}

impl<T, E, I: Clone, C: Clone> Clone for AuthLayer<T, E, I, C> {
    fn clone(&self) -> Self {
        AuthLayer {
            handle: self.handle.clone(),
            inject: self.inject.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<T, E, I: fmt::Debug, C: fmt::Debug> fmt::Debug for AuthLayer<T, E, I, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("inject", &self.inject)
            .field("classify", &self.classify)
            .finish_non_exhaustive()
    }
}

impl<S, T, E, I: Clone, C: Clone> Layer<S> for AuthLayer<T, E, I, C> {
    type Service = Auth<S, T, E, I, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth::from_parts(
            inner,
            self.handle.clone(),
            self.inject.clone(),
            self.classify.clone(),
        )
    }
}
