//! How the layer tells "the server rejected the token" from any other
//! answer.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::{response, HeaderMap, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};

use super::BoxError;

/// What a response says about the token the request was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Anything but an auth rejection, errors included: the response goes
    /// to the caller.
    Accepted,
    /// The server rejected the token as expired or invalid: the request is
    /// sent again with the next token, if it can be.
    Rejected,
}

/// Tells whether a response rejects the token its request carried.
///
/// A classifier may read the body (and so change the response's body type
/// to [`Body`](Classify::Body)); one that looks only at the head keeps it.
/// Implemented by [`RejectOnStatus`] (the default: `401`) and
/// [`RejectOnBody`].
pub trait Classify<B>: Clone + Send + Sync + 'static {
    /// The body of the responses handed to the caller.
    type Body;
    /// The classification in progress.
    type Future: Future<Output = Result<(Verdict, Response<Self::Body>), BoxError>> + Send;

    /// Classifies `response`, handing it back (its body possibly read into
    /// memory).
    fn classify(&self, response: Response<B>) -> Self::Future;

    /// `response` as the caller gets it, unread: for requests that bypass
    /// authentication ([`SkipAuth`](super::SkipAuth)).
    fn unclassified(&self, response: Response<B>) -> Response<Self::Body>;
}

/// Rejects the token on some status codes: `401 Unauthorized` by default.
///
/// # Examples
///
/// ```
/// use http::{Response, StatusCode};
/// use tokenflight::http::{Classify, RejectOnStatus, Verdict};
///
/// let classify = RejectOnStatus::default();
/// let response = Response::builder().status(401).body(()).unwrap();
/// let (verdict, _) = futures::executor::block_on(classify.classify(response)).unwrap();
/// assert_eq!(verdict, Verdict::Rejected);
///
/// // Some servers say 403 for an expired token too.
/// let classify = RejectOnStatus::new([StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN]);
/// let response = Response::builder().status(403).body(()).unwrap();
/// let (verdict, _) = futures::executor::block_on(classify.classify(response)).unwrap();
/// assert_eq!(verdict, Verdict::Rejected);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectOnStatus {
    statuses: Arc<[StatusCode]>,
}

impl Default for RejectOnStatus {
    fn default() -> Self {
        RejectOnStatus::new([StatusCode::UNAUTHORIZED])
    }
}

impl RejectOnStatus {
    /// Rejects the token on any of `statuses`.
    pub fn new(statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        RejectOnStatus {
            statuses: statuses.into_iter().collect(),
        }
    }

    fn verdict(&self, status: StatusCode) -> Verdict {
        if self.statuses.contains(&status) {
            Verdict::Rejected
        } else {
            Verdict::Accepted
        }
    }
}

impl<B: Send + 'static> Classify<B> for RejectOnStatus {
    type Body = B;
    type Future = std::future::Ready<Result<(Verdict, Response<B>), BoxError>>;

    fn classify(&self, response: Response<B>) -> Self::Future {
        std::future::ready(Ok((self.verdict(response.status()), response)))
    }

    fn unclassified(&self, response: Response<B>) -> Response<B> {
        response
    }
}

/// Rejects the token when a predicate over the response's head and whole
/// body says so: for APIs that answer an expired token with `200` and a
/// code in the body, like the mini-program recipe's
/// `{"success": false, "code": "0002"}`.
///
/// Judging a body means reading it first. Only bodies of at most `limit`
/// bytes (64 KiB unless set) are read, into memory, and the predicate sees
/// them whole; a longer body (by its `Content-Length`, or found while
/// reading) is never judged: the response is accepted and its body streams
/// on to the caller unchanged, the bytes read so far included. The caller
/// always gets the body as an [`Inspected`].
///
/// The predicate sees the head too, so one predicate can also reject on
/// `401`.
///
/// # Examples
///
/// ```
/// use http::Response;
/// use tokenflight::http::{Classify, RejectOnBody, Verdict};
///
/// let expired = RejectOnBody::new(|head: &http::response::Parts, body: &[u8]| {
///     head.status == 401
///         || serde_json::from_slice::<serde_json::Value>(body)
///             .is_ok_and(|v| v["code"] == "0002" && v["success"] == false)
/// });
/// let response = Response::new(r#"{"success":false,"code":"0002"}"#.to_string());
/// let (verdict, _) = futures::executor::block_on(expired.classify(response)).unwrap();
/// assert_eq!(verdict, Verdict::Rejected);
/// ```
pub struct RejectOnBody<F> {
    predicate: Arc<F>,
    limit: usize,
}

impl<F> Clone for RejectOnBody<F> {
    fn clone(&self) -> Self {
        RejectOnBody {
            predicate: Arc::clone(&self.predicate),
            limit: self.limit,
        }
    }
}

impl<F> fmt::Debug for RejectOnBody<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectOnBody")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F> RejectOnBody<F>
where
    F: Fn(&response::Parts, &[u8]) -> bool + Send + Sync + 'static,
{
    /// Rejects the token when `predicate` says so of a body of at most 64 KiB.
    pub fn new(predicate: F) -> Self {
        RejectOnBody {
            predicate: Arc::new(predicate),
            limit: 64 * 1024,
        }
    }

    /// Judges bodies of at most `limit` bytes; longer ones are accepted
    /// unread.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl<B, F> Classify<B> for RejectOnBody<F>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Fn(&response::Parts, &[u8]) -> bool + Send + Sync + 'static,
{
    type Body = Inspected<B>;
    type Future =
        Pin<Box<dyn Future<Output = Result<(Verdict, Response<Inspected<B>>), BoxError>> + Send>>;

    fn classify(&self, response: Response<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (head, body) = response.into_parts();
            let declared = head
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let too_long = |n: u64| usize::try_from(n).map_or(true, |n| n > this.limit);
            if declared.is_some_and(too_long) || body.size_hint().lower() > this.limit as u64 {
                return Ok((
                    Verdict::Accepted,
                    Response::from_parts(head, Inspected::unread(body)),
                ));
            }
            let body = Inspected::read(body, this.limit).await?;
            let verdict = match body.whole() {
                Some(bytes) if (this.predicate)(&head, bytes) => Verdict::Rejected,
                _ => Verdict::Accepted,
            };
            Ok((verdict, Response::from_parts(head, body)))
        })
    }

    fn unclassified(&self, response: Response<B>) -> Response<Inspected<B>> {
        response.map(Inspected::unread)
    }
}

/// A response body that [`RejectOnBody`] may have read into memory: what it
/// read comes first, then whatever the original body still has.
pub struct Inspected<B> {
    /// Read, not yet handed on; at most the limit.
    head: Bytes,
    /// The rest of the frame that went past the limit, not copied.
    over: Bytes,
    /// Whether `head` is the whole body (the original ended while read).
    whole: bool,
    /// Trailers met while reading.
    trailers: Option<HeaderMap>,
    /// The rest of the original body, if it had not ended.
    rest: Option<Pin<Box<B>>>,
}

impl<B> fmt::Debug for Inspected<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspected")
            .field("buffered", &self.head.len())
            .field("whole", &self.whole)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Inspected<B> {
    /// `body`, not read.
    pub fn unread(body: B) -> Self {
        Inspected {
            head: Bytes::new(),
            over: Bytes::new(),
            whole: false,
            trailers: None,
            rest: Some(Box::pin(body)),
        }
    }

    /// The whole body, if it was read into memory (and not yet polled).
    pub fn whole(&self) -> Option<&Bytes> {
        self.whole.then_some(&self.head)
    }

    /// Reads `body` until it ends or a byte past `limit` comes. At most
    /// `limit` bytes are copied: the rest of a frame that goes past it is
    /// kept as it came (for `Bytes` frames, without a copy), so one huge
    /// frame costs no more memory than the limit.
    async fn read(body: B, limit: usize) -> Result<Self, BoxError>
    where
        B::Error: Into<BoxError>,
    {
        let mut body = Box::pin(body);
        let mut buf = BytesMut::new();
        let mut over = Bytes::new();
        let mut trailers = None;
        let ended = 'read: loop {
            if body.is_end_stream() {
                break true;
            }
            let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await else {
                break true;
            };
            match frame.map_err(Into::into)?.into_data() {
                Ok(mut data) => {
                    while data.has_remaining() {
                        let room = limit - buf.len();
                        let chunk = data.chunk();
                        if chunk.len() > room {
                            buf.extend_from_slice(&chunk[..room]);
                            data.advance(room);
                            over = data.copy_to_bytes(data.remaining());
                            break 'read false;
                        }
                        buf.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                }
                Err(frame) => {
                    // Trailers end a body; other frame kinds carry no data.
                    if let Ok(t) = frame.into_trailers() {
                        trailers = Some(t);
                        break true;
                    }
                }
            }
        };
        Ok(Inspected {
            head: buf.freeze(),
            over,
            whole: ended,
            trailers,
            rest: (!ended).then_some(body),
        })
    }
}

impl<B> Body for Inspected<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if !this.head.is_empty() {
            this.whole = false;
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.head)))));
        }
        if !this.over.is_empty() {
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(&mut this.over)))));
        }
        if let Some(trailers) = this.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        match &mut this.rest {
            None => Poll::Ready(None),
            Some(rest) => rest.as_mut().poll_frame(cx).map(|frame| {
                frame.map(|r| r.map(|f| f.map_data(|mut d| d.copy_to_bytes(d.remaining()))))
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_empty()
            && self.over.is_empty()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(|r| r.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self
            .rest
            .as_ref()
            .map(|r| r.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0));
        let read = (self.head.len() + self.over.len()) as u64;
        // Saturating: the rest's hint is the server's word, and may be as
        // large as `u64` goes.
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(read));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(read));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU32, Ordering};

    use http_body_util::BodyExt;

    use super::*;

    /// A body that arrives in the given frames.
    struct Chunks(VecDeque<Frame<Bytes>>);

    impl Chunks {
        fn new(data: &[&'static str], trailers: Option<HeaderMap>) -> Self {
            let mut frames: VecDeque<_> =
                data.iter().map(|d| Frame::data(Bytes::from(*d))).collect();
            frames.extend(trailers.map(Frame::trailers));
            Chunks(frames)
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn trailers() -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("x-checksum", "42".parse().unwrap());
        t
    }

    fn run<F: Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    /// Everything the caller reads: the data and the trailers.
    fn drain<B: Body<Data = Bytes>>(body: B) -> (Bytes, Option<HeaderMap>)
    where
        B::Error: std::fmt::Debug,
    {
        let collected = run(body.collect()).unwrap();
        let trailers = collected.trailers().cloned();
        (collected.to_bytes(), trailers)
    }

    #[test]
    fn a_small_body_is_judged_whole_and_handed_on_unchanged() {
        let classify = RejectOnBody::new(|_: &response::Parts, body: &[u8]| body == b"code=0002");
        let response = Response::new(Chunks::new(&["code=", "0002"], Some(trailers())));
        let (verdict, response) = run(classify.classify(response)).unwrap();
        assert_eq!(verdict, Verdict::Rejected);
        assert_eq!(
            response.body().whole().map(|b| &b[..]),
            Some(&b"code=0002"[..])
        );
        assert_eq!(
            drain(response.into_body()),
            (Bytes::from("code=0002"), Some(trailers()))
        );
    }

    #[test]
    fn a_body_longer_than_the_limit_is_not_judged_and_streams_on_whole() {
        let judged = Arc::new(AtomicU32::new(0));
        let count = Arc::clone(&judged);
        let classify = RejectOnBody::new(move |_: &response::Parts, _: &[u8]| {
            count.fetch_add(1, Ordering::SeqCst);
            true
        })
        .limit(4);
        let response = Response::new(Chunks::new(&["abc", "def", "gh"], Some(trailers())));
        let (verdict, response) = run(classify.classify(response)).unwrap();
        assert_eq!(verdict, Verdict::Accepted);
        assert!(response.body().whole().is_none());
        assert_eq!(
            drain(response.into_body()),
            (Bytes::from("abcdefgh"), Some(trailers()))
        );
        assert_eq!(judged.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_frame_far_past_the_limit_is_not_copied() {
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let classify = RejectOnBody::new(|_: &response::Parts, _: &[u8]| true).limit(4);
        let response = Response::new(Chunks(VecDeque::from([
            Frame::data(Bytes::from_static(b"ab")),
            Frame::data(big.clone()),
        ])));
        let (verdict, response) = run(classify.classify(response)).unwrap();
        assert_eq!(verdict, Verdict::Accepted);
        let body = response.into_body();
        assert_eq!(body.head.len(), 4, "only the limit is copied");
        let (data, _) = drain(body);
        assert_eq!(data.len(), 2 + big.len());
        assert_eq!(&data[..2], b"ab");
        assert!(data[2..].iter().all(|&b| b == 7));
    }

    #[test]
    fn a_huge_size_hint_after_reading_saturates() {
        struct Huge(bool);
        impl Body for Huge {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                let first = std::mem::replace(&mut self.0, false);
                Poll::Ready(first.then(|| Ok(Frame::data(Bytes::from_static(b"abcdef")))))
            }
            fn size_hint(&self) -> SizeHint {
                // Unknown before the first frame, then as large as it goes.
                if self.0 {
                    SizeHint::new()
                } else {
                    SizeHint::with_exact(u64::MAX)
                }
            }
        }
        let classify = RejectOnBody::new(|_: &response::Parts, _: &[u8]| true).limit(4);
        let (_, response) = run(classify.classify(Response::new(Huge(true)))).unwrap();
        assert_eq!(response.body().size_hint().lower(), u64::MAX);
    }

    #[test]
    fn a_declared_length_over_the_limit_is_not_read_at_all() {
        let classify = RejectOnBody::new(|_: &response::Parts, _: &[u8]| true).limit(4);
        let response = Response::builder()
            .header(CONTENT_LENGTH, "8")
            .body(Chunks::new(&["abcdefgh"], None))
            .unwrap();
        let (verdict, response) = run(classify.classify(response)).unwrap();
        assert_eq!(verdict, Verdict::Accepted);
        assert_eq!(drain(response.into_body()).0, Bytes::from("abcdefgh"));
    }

    #[test]
    fn status_classification_keeps_the_body_type() {
        let response = Response::builder()
            .status(200)
            .body("ok".to_string())
            .unwrap();
        let (verdict, response) = run(RejectOnStatus::default().classify(response)).unwrap();
        assert_eq!(
            (verdict, response.body().as_str()),
            (Verdict::Accepted, "ok")
        );
    }
}
