//! Which request bodies can be sent a second time.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::Request;
use http_body::{Body, Frame, SizeHint};

/// A request body that can be sent again after the server rejected the
/// token it went out with.
///
/// Every `Clone` body can (`String`, `Bytes`, `Full<Bytes>`, `Empty`...):
/// the layer keeps a copy while the request is in flight. A body that cannot
/// be copied, a stream, is wrapped in [`OneShot`]: it is sent once, and if
/// its token is rejected the caller gets the rejection response (marked
/// [`NotRetried`](super::NotRetried)) instead of a retry.
///
/// Implement it for a body of your own that knows at run time whether it can
/// be replayed (a buffered-or-streaming enum, say).
///
/// # Examples
///
/// ```
/// use tokenflight::http::{OneShot, ReplayBody};
///
/// assert_eq!("body".to_string().try_replay(), Some("body".to_string()));
/// assert!(OneShot(String::new()).try_replay().is_none());
/// ```
pub trait ReplayBody: Sized {
    /// A copy to send again, or `None` if this body can be sent only once.
    fn try_replay(&self) -> Option<Self>;
}

impl<B: Clone> ReplayBody for B {
    fn try_replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// A body that is sent at most once: a rejected request with it is handed
/// back, not retried.
///
/// # Examples
///
/// ```
/// use http_body::Body;
/// use tokenflight::http::OneShot;
///
/// let body = OneShot(String::from("streamed"));
/// assert_eq!(body.size_hint().exact(), Some(8));
/// ```
#[derive(Debug, Default)]
pub struct OneShot<B>(pub B);

impl<B> ReplayBody for OneShot<B> {
    fn try_replay(&self) -> Option<Self> {
        None
    }
}

impl<B: Body + Unpin> Body for OneShot<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A copy of `request` to send again, if its body can be.
pub(super) fn replay<B: ReplayBody>(request: &Request<B>) -> Option<Request<B>> {
    let mut copy = Request::new(request.body().try_replay()?);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Marker(u8);

    #[test]
    fn a_replay_copies_everything_but_nothing_more() {
        let mut request = Request::builder()
            .method("POST")
            .uri("http://127.0.0.1/x?y=1")
            .header("x-a", "1")
            .body("payload".to_string())
            .unwrap();
        request.extensions_mut().insert(Marker(7));
        let copy = replay(&request).unwrap();
        assert_eq!(copy.method(), "POST");
        assert_eq!(copy.uri(), "http://127.0.0.1/x?y=1");
        assert_eq!(copy.headers()["x-a"], "1");
        assert_eq!(copy.extensions().get::<Marker>(), Some(&Marker(7)));
        assert_eq!(copy.body(), "payload");
    }

    #[test]
    fn a_one_shot_body_is_not_copied() {
        assert!(replay(&Request::new(OneShot(String::new()))).is_none());
    }
}
