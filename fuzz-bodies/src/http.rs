//! The HTTP layer under arbitrary servers: a response (any status, headers,
//! a `Content-Length` true, false or garbage, a body of any bytes in any
//! framing, huge, cut short by an error, with trailers) judged by
//! [`RejectOnStatus`] and by [`RejectOnBody`] with a JSON predicate (JSON
//! nested tens of thousands deep included); and a
//! token of any bytes put on a request with any headers by every
//! [`Inject`]or.
//!
//! Judged: nothing panics; the classifier's heap stays within its limit;
//! the caller reads exactly the bytes and trailers the server sent; a body
//! is rejected only when it was read whole within the limit and the
//! predicate said so; an injector either puts exactly the expected header
//! on or fails and leaves the headers as they were.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokenflight::http::{
    Bearer, Classify, Cookie, Inject, Inspected, RejectOnBody, RejectOnStatus, SetHeader, Verdict,
};

use crate::heap;

/// The largest body one input may make (by repeating its bytes).
const MAX_BODY: usize = 4 << 20;
/// Heap the classifier may use beyond twice its limit: its own future, the
/// boxed body, a header map's growth.
const SLACK: usize = 16 << 10;

/// The target: panics on a panic or a broken promise of the layer.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data) {
        panic!("{e}");
    }
}

/// Decodes a response and a request from `data` and judges the classifiers
/// and the injectors on them.
///
/// # Errors
///
/// The first broken promise.
pub fn check(data: &[u8]) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary(&mut u) else {
        return Ok(());
    };
    inject(&input.inject)?;
    classify(&input.response)
}

#[derive(Debug, Arbitrary)]
struct Input {
    inject: InjectCase,
    response: ResponseCase,
}

/// Header names and values, kept where `http` accepts them.
fn headers(raw: &[(Vec<u8>, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in raw {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

#[derive(Debug, Arbitrary)]
enum Injector {
    Bearer,
    Cookie(String),
    SetHeader(Vec<u8>, String),
}

#[derive(Debug, Arbitrary)]
struct InjectCase {
    injector: Injector,
    token: String,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Cookie headers, most likely to matter to the cookie injector.
    cookies: Vec<Vec<u8>>,
}

fn inject(case: &InjectCase) -> Result<(), String> {
    let mut before = headers(&case.headers);
    for c in &case.cookies {
        if let Ok(v) = HeaderValue::from_bytes(c) {
            before.append(COOKIE, v);
        }
    }
    let mut after = before.clone();
    let token = &case.token;
    let (result, name, expected) = match &case.injector {
        Injector::Bearer => (
            Bearer.inject(token, &mut after),
            http::header::AUTHORIZATION,
            format!("Bearer {token}").into_bytes(),
        ),
        Injector::SetHeader(name, prefix) => {
            let Ok(name) = HeaderName::from_bytes(name) else {
                return Ok(());
            };
            let inject = SetHeader::new(name.clone(), prefix.clone());
            (
                inject.inject(token, &mut after),
                name,
                format!("{prefix}{token}").into_bytes(),
            )
        }
        Injector::Cookie(cookie) => {
            let result = Cookie::new(cookie.clone()).inject(token, &mut after);
            return judge_cookie(&before, &after, result.is_ok(), cookie, token);
        }
    };
    match result {
        Err(_) if after != before => Err("a failed injection changed the headers".into()),
        Err(_) if HeaderValue::from_bytes(&expected).is_ok() => Err(format!(
            "refused a token that makes a valid header: {expected:?}"
        )),
        Err(_) => Ok(()),
        Ok(()) => {
            let values: Vec<&HeaderValue> = after.get_all(&name).iter().collect();
            if values.len() != 1 || values[0].as_bytes() != expected.as_slice() {
                return Err(format!("{name} is {values:?}, expected {expected:?}"));
            }
            if !values[0].is_sensitive() {
                return Err(format!("{name} is not marked sensitive"));
            }
            let mut others = after.clone();
            others.remove(&name);
            let mut kept = before.clone();
            kept.remove(&name);
            if others != kept {
                return Err("injection changed other headers".into());
            }
            Ok(())
        }
    }
}

/// The cookies of a `Cookie` header, as bytes.
fn cookies_of(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(|c| c.trim_ascii().to_vec())
        .filter(|c| !c.is_empty())
        .collect()
}

fn judge_cookie(
    before: &HeaderMap,
    after: &HeaderMap,
    ok: bool,
    name: &str,
    token: &str,
) -> Result<(), String> {
    if !ok {
        if after != before {
            return Err("a failed cookie injection changed the headers".into());
        }
        return Ok(());
    }
    let values: Vec<&HeaderValue> = after.get_all(COOKIE).iter().collect();
    if values.len() != 1 || !values[0].is_sensitive() {
        return Err(format!("cookie header is {values:?}"));
    }
    let prefix = format!("{name}=");
    let ours = format!("{prefix}{token}");
    let got = cookies_of(after);
    if !values[0].as_bytes().ends_with(ours.as_bytes()) {
        return Err(format!("our cookie is not the last: {:?}", values[0]));
    }
    let kept: Vec<Vec<u8>> = cookies_of(before)
        .into_iter()
        .filter(|c| !c.starts_with(prefix.as_bytes()))
        .collect();
    for c in &kept {
        if !got.contains(c) {
            return Err(format!("the request's cookie {c:?} was dropped"));
        }
    }
    let mut rest = after.clone();
    rest.remove(COOKIE);
    let mut others = before.clone();
    others.remove(COOKIE);
    if rest != others {
        return Err("cookie injection changed other headers".into());
    }
    Ok(())
}

/// How a response declares its length.
#[derive(Debug, Arbitrary)]
enum Declared {
    None,
    /// The true length.
    True,
    Number(u64),
    Raw(Vec<u8>),
}

/// One frame of a body, or a pause.
#[derive(Debug, Arbitrary)]
enum Piece {
    Data(Vec<u8>),
    /// `byte` repeated `len` times (up to the body's maximum).
    Run {
        byte: u8,
        len: u32,
    },
    /// JSON nested `depth` deep: arrays, or objects if `objects`, closed
    /// or left open.
    Nested {
        depth: u16,
        objects: bool,
        closed: bool,
    },
    Empty,
    /// The body is not ready yet.
    Pending,
    /// Reading fails here.
    Error,
}

/// What the body says of its own length.
#[derive(Debug, Arbitrary)]
enum Hint {
    Unknown,
    /// Its true length (or what it would be).
    True,
    /// A lower bound and a span, true or not.
    Claim(u64, Option<u64>),
}

#[derive(Debug, Arbitrary)]
enum Limit {
    Default,
    Small(u8),
    Any(u32),
}

#[derive(Debug, Arbitrary)]
struct ResponseCase {
    status: u16,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    declared: Declared,
    pieces: Vec<Piece>,
    trailers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    hint: Hint,
    limit: Limit,
    /// Whether the body says when it has ended (bodies may not).
    tells_end: bool,
}

#[derive(Debug)]
enum Step {
    Frame(Frame<Bytes>),
    Pending,
    Error,
}

/// A body that plays back a script of frames.
struct Script {
    steps: VecDeque<Step>,
    hint: SizeHint,
    tells_end: bool,
}

#[derive(Debug)]
struct ReadFailed;

impl std::fmt::Display for ReadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection broke")
    }
}

impl std::error::Error for ReadFailed {}

impl Body for Script {
    type Data = Bytes;
    type Error = ReadFailed;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ReadFailed>>> {
        match self.steps.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Frame(f)) => Poll::Ready(Some(Ok(f))),
            Some(Step::Error) => {
                self.steps.clear();
                Poll::Ready(Some(Err(ReadFailed)))
            }
            Some(Step::Pending) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.tells_end && self.steps.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// What the server sent, as the caller must read it.
#[derive(Debug, PartialEq)]
struct Sent {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    /// Reading failed after `data`.
    failed: bool,
}

fn limit_of(l: &Limit) -> usize {
    match l {
        Limit::Default => 64 << 10,
        Limit::Small(n) => usize::from(*n),
        Limit::Any(n) => *n as usize % (1 << 20),
    }
}

/// Builds the response and what reading it must yield.
fn build(case: &ResponseCase) -> Option<(Response<Script>, Sent)> {
    let status = StatusCode::from_u16(case.status).ok()?;
    let mut steps = VecDeque::new();
    let mut data = Vec::new();
    let mut failed = false;
    for piece in &case.pieces {
        let bytes = match piece {
            Piece::Data(d) => Bytes::copy_from_slice(d),
            Piece::Run { byte, len } => {
                let len = (*len as usize).min(MAX_BODY.saturating_sub(data.len()));
                Bytes::from(vec![*byte; len])
            }
            Piece::Nested {
                depth,
                objects,
                closed,
            } => {
                let (open, close): (&[u8], &[u8]) = if *objects {
                    (br#"{"code":"#, b"}")
                } else {
                    (b"[", b"]")
                };
                let depth = usize::from(*depth);
                let mut nested = open.repeat(depth);
                if *closed {
                    nested.extend(close.repeat(depth));
                }
                Bytes::from(nested)
            }
            Piece::Empty => Bytes::new(),
            Piece::Pending => {
                steps.push_back(Step::Pending);
                continue;
            }
            Piece::Error => {
                steps.push_back(Step::Error);
                failed = true;
                break;
            }
        };
        if data.len() + bytes.len() > MAX_BODY {
            break;
        }
        data.extend_from_slice(&bytes);
        steps.push_back(Step::Frame(Frame::data(bytes)));
    }
    let trailers = match &case.trailers {
        Some(raw) if !failed => {
            let t = headers(raw);
            steps.push_back(Step::Frame(Frame::trailers(t.clone())));
            Some(t)
        }
        _ => None,
    };
    let mut head = headers(&case.headers);
    head.remove(CONTENT_LENGTH);
    let declared = match &case.declared {
        Declared::None => None,
        Declared::True => Some(HeaderValue::from(data.len())),
        Declared::Number(n) => Some(HeaderValue::from(*n)),
        Declared::Raw(raw) => HeaderValue::from_bytes(raw).ok(),
    };
    if let Some(v) = declared {
        head.insert(CONTENT_LENGTH, v);
    }
    let hint = match case.hint {
        Hint::Unknown => SizeHint::default(),
        Hint::True => SizeHint::with_exact(data.len() as u64),
        Hint::Claim(lower, span) => {
            let mut h = SizeHint::new();
            h.set_lower(lower);
            if let Some(span) = span {
                h.set_upper(lower.saturating_add(span));
            }
            h
        }
    };
    let body = Script {
        steps,
        hint,
        tells_end: case.tells_end,
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = head;
    Some((
        response,
        Sent {
            data,
            trailers,
            failed,
        },
    ))
}

/// The predicate of the mini-program recipe's backend, on any bytes.
fn recipe_expired(head: &http::response::Parts, body: &[u8]) -> bool {
    head.status == StatusCode::UNAUTHORIZED
        || serde_json::from_slice::<serde_json::Value>(body)
            .is_ok_and(|v| v["code"] == "0002" && v["success"] == false)
}

/// Polls `fut` to the end with a waker that does nothing (the script's
/// pauses wake themselves), measuring the heap after every poll; the
/// output and the peak seen above `base` (see [`heap::in_use`]).
pub fn measure<F: std::future::Future>(fut: F, base: isize) -> (F::Output, usize) {
    let mut fut = Box::pin(fut);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut peak = 0isize;
    loop {
        let poll = fut.as_mut().poll(&mut cx);
        peak = peak.max(heap::in_use() - base);
        if let Poll::Ready(out) = poll {
            return (out, usize::try_from(peak).unwrap_or(0));
        }
    }
}

/// Reads a body to its end, as a caller would.
fn read_all<B: Body<Data = Bytes>>(body: B) -> Sent {
    let mut body = Box::pin(body);
    let mut sent = Sent {
        data: Vec::new(),
        trailers: None,
        failed: false,
    };
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        // The hint must be well formed at every point (its bounds in order).
        let hint = body.size_hint();
        assert!(hint.upper().is_none_or(|u| u >= hint.lower()));
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Pending => continue,
            Poll::Ready(None) => return sent,
            Poll::Ready(Some(Err(_))) => {
                sent.failed = true;
                return sent;
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(d) => sent.data.extend_from_slice(&d),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        sent.trailers = Some(t);
                    }
                }
            },
        }
    }
}

fn classify(case: &ResponseCase) -> Result<(), String> {
    // By status: the response comes back untouched.
    let Some((response, sent)) = build(case) else {
        return Ok(());
    };
    let status = response.status();
    let by_status = RejectOnStatus::default();
    let (verdict, judged) =
        futures::executor::block_on(by_status.classify(response)).map_err(|e| e.to_string())?;
    if (verdict == Verdict::Rejected) != (status == StatusCode::UNAUTHORIZED) {
        return Err(format!("status {status} judged {verdict:?}"));
    }
    let read = read_all(judged.into_body());
    if read != sent {
        return Err("RejectOnStatus changed the body".into());
    }

    // By body.
    let limit = limit_of(&case.limit);
    // A response is read only once: the same one again.
    let Some((second, sent)) = build(case) else {
        return Ok(());
    };
    let by_body = RejectOnBody::new(recipe_expired).limit(limit);
    let base = heap::in_use();
    let (result, peak) = measure(by_body.classify(second), base);
    let bound = 2 * limit + SLACK;
    if heap::counting() && peak > bound {
        return Err(format!(
            "classifying took {peak} bytes of heap, limit {limit} (bound {bound})"
        ));
    }
    let (verdict, response) = match result {
        Ok(ok) => ok,
        // Reading the body failed: the layer reports it.
        Err(_) if sent.failed => return Ok(()),
        Err(e) => return Err(format!("classifying failed on a sound body: {e}")),
    };
    let whole = response.body().whole().map(|b| b.to_vec());
    if let Some(w) = &whole {
        if w.len() > limit {
            return Err(format!("judged a body of {} bytes, limit {limit}", w.len()));
        }
        if !sent.failed && w != &sent.data {
            return Err("judged a body that is not the one sent".into());
        }
    }
    let head = response.into_parts();
    let expected = match &whole {
        Some(w) => recipe_expired(&head.0, w),
        None => false,
    };
    if (verdict == Verdict::Rejected) != expected {
        return Err(format!(
            "judged {verdict:?}, whole body read: {}",
            whole.is_some()
        ));
    }
    let read = read_all::<Inspected<Script>>(head.1);
    if read != sent {
        return Err(format!(
            "the caller read {} bytes (trailers {}, failed {}), the server sent {} (trailers {}, failed {})",
            read.data.len(),
            read.trailers.is_some(),
            read.failed,
            sent.data.len(),
            sent.trailers.is_some(),
            sent.failed,
        ));
    }
    Ok(())
}
