//! The token server under arbitrary clients: a sequence of requests (logins,
//! refreshes with well-formed, form-encoded, mistyped and garbage bodies
//! under any content type, protected calls with any credentials and
//! headers, and raw requests of any method, path and headers) driven
//! through its router in process, against a model of the grants it issued.
//!
//! Judged: it never panics and never answers 5xx (no faults are injected);
//! garbage gets a 4xx; a refresh succeeds exactly when its refresh token is
//! one it issued, unused, of a family not revoked; a refresh token used
//! twice revokes its family; a protected call is authorised only with a
//! live access token, and is told that token's generation.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tokenserver::{Knobs, TokenServer, REQUEST_ID};
use tower::ServiceExt;

/// Requests in one input at most.
const MAX_CALLS: usize = 32;

/// The target: panics on a panic of the server or a wrong answer.
pub fn run(data: &[u8]) {
    if let Err(e) = check(data) {
        panic!("{e}");
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
}

/// Decodes requests from `data` and sends them to a fresh server.
///
/// # Errors
///
/// The first wrong answer, with the request it answered.
pub fn check(data: &[u8]) -> Result<(), String> {
    let mut u = Unstructured::new(data);
    let mut model = Model {
        app: TokenServer::router(Knobs::default()),
        families: BTreeMap::new(),
        access: BTreeMap::new(),
        refresh: BTreeMap::new(),
        revoked: BTreeSet::new(),
    };
    for n in 0..MAX_CALLS {
        let Ok(call) = Call::arbitrary(&mut u) else {
            break;
        };
        model
            .call(&call)
            .map_err(|e| format!("request {n} {call:?}: {e}"))?;
        if u.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Which token a request presents.
#[derive(Debug, Clone, Arbitrary)]
enum Token {
    /// The `n`-th issued (access or refresh, as the place asks).
    Issued(u8),
    /// One of the other kind: a refresh token as an access token, say.
    OtherKind(u8),
    Raw(String),
}

#[derive(Debug, Clone, Arbitrary)]
enum Shape {
    /// `{"refresh_token": "<token>"}`.
    Json,
    /// The same with more fields.
    JsonExtra(String),
    /// `refresh_token=<token>`, as a form would send it.
    Form,
    /// `{"refresh_token": 7}`.
    Mistyped,
    Raw(Vec<u8>),
}

#[derive(Debug, Clone, Arbitrary)]
enum ContentType {
    Json,
    Form,
    None,
    Raw(Vec<u8>),
}

#[derive(Debug, Clone, Arbitrary)]
enum Credentials {
    None,
    Bearer(Token),
    Cookie(Token),
    /// An `Authorization` header of any bytes.
    RawAuthorization(Vec<u8>),
    /// A `Cookie` header of any bytes.
    RawCookie(Vec<u8>),
}

#[derive(Debug, Clone, Arbitrary)]
enum Call {
    Login(Vec<u8>),
    Refresh {
        token: Token,
        shape: Shape,
        content_type: ContentType,
    },
    Protected {
        recipe: bool,
        post: bool,
        credentials: Credentials,
        request_id: Option<Vec<u8>>,
        body: Vec<u8>,
    },
    Raw {
        method: Vec<u8>,
        path: Vec<u8>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        body: Vec<u8>,
    },
}

struct Model {
    app: Router,
    /// Family of every access token, and its generation.
    access: BTreeMap<String, (u64, u64)>,
    /// Family, generation and "used" of every refresh token.
    refresh: BTreeMap<String, (u64, u64, bool)>,
    /// Families seen, in order of login.
    families: BTreeMap<u64, ()>,
    revoked: BTreeSet<u64>,
}

struct Answer {
    status: StatusCode,
    body: Vec<u8>,
}

fn family_of(token: &str) -> Option<(u64, u64)> {
    // Tokens read `at-<family>-<generation>-<serial>`.
    let mut parts = token.split('-').skip(1);
    let family = parts.next()?.parse().ok()?;
    let generation = parts.next()?.parse().ok()?;
    Some((family, generation))
}

impl Model {
    fn send(&self, request: Request<Body>) -> Result<Answer, String> {
        RUNTIME.with(|rt| {
            rt.block_on(async {
                let response = self
                    .app
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Answer {
                    status,
                    body: body.to_vec(),
                })
            })
        })
    }

    fn pick(keys: Vec<&String>, n: u8) -> Option<String> {
        (!keys.is_empty()).then(|| keys[usize::from(n) % keys.len()].clone())
    }

    fn token(&self, t: &Token, access: bool) -> String {
        let (mine, other): (Vec<&String>, Vec<&String>) = if access {
            (self.access.keys().collect(), self.refresh.keys().collect())
        } else {
            (self.refresh.keys().collect(), self.access.keys().collect())
        };
        match t {
            Token::Issued(n) => Self::pick(mine, *n).unwrap_or_default(),
            Token::OtherKind(n) => Self::pick(other, *n).unwrap_or_default(),
            Token::Raw(s) => s.clone(),
        }
    }

    /// Records a grant the server answered with.
    fn grant(&mut self, answer: &Answer) -> Result<(), String> {
        let grant: tokenserver::Grant = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("a 200 that is not a grant: {e}"))?;
        let (family, generation) =
            family_of(&grant.access_token).ok_or("an access token of an unknown shape")?;
        self.families.insert(family, ());
        self.access.insert(grant.access_token, (family, generation));
        self.refresh
            .insert(grant.refresh_token, (family, generation, false));
        Ok(())
    }

    fn call(&mut self, call: &Call) -> Result<(), String> {
        match call {
            Call::Login(body) => {
                let request = Request::post("/login")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.clone()))
                    .map_err(|e| e.to_string())?;
                let answer = self.send(request)?;
                if answer.status != StatusCode::OK {
                    return Err(format!("login answered {}", answer.status));
                }
                self.grant(&answer)
            }
            Call::Refresh {
                token,
                shape,
                content_type,
            } => self.refresh(token, shape, content_type),
            Call::Protected {
                recipe,
                post,
                credentials,
                request_id,
                body,
            } => self.protected(*recipe, *post, credentials, request_id.as_deref(), body),
            Call::Raw {
                method,
                path,
                headers,
                body,
            } => {
                let Ok(method) = Method::from_bytes(method) else {
                    return Ok(());
                };
                let path = String::from_utf8_lossy(path);
                let mut builder = Request::builder().method(method).uri(format!("/{path}"));
                for (n, v) in headers {
                    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v))
                    {
                        builder = builder.header(n, v);
                    }
                }
                let Ok(request) = builder.body(Body::from(body.clone())) else {
                    return Ok(());
                };
                let answer = self.send(request)?;
                if answer.status.is_server_error() {
                    return Err(format!("answered {}", answer.status));
                }
                // A grant can only come from a login or a refresh; keep the
                // books if this was one.
                if answer.status == StatusCode::OK {
                    if let Ok(grant) = serde_json::from_slice::<tokenserver::Grant>(&answer.body) {
                        self.adopt_unexpected(&grant, body);
                    }
                }
                Ok(())
            }
        }
    }

    /// A raw request that turned out to be a login or a refresh: the books
    /// follow what the server did, so later judgements stay exact.
    fn adopt_unexpected(&mut self, grant: &tokenserver::Grant, body: &[u8]) {
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            if let Some(rt) = v.get("refresh_token").and_then(Value::as_str) {
                if let Some(entry) = self.refresh.get_mut(rt) {
                    entry.2 = true;
                }
            }
        }
        if let Some((family, generation)) = family_of(&grant.access_token) {
            self.families.insert(family, ());
            self.access
                .insert(grant.access_token.clone(), (family, generation));
            self.refresh
                .insert(grant.refresh_token.clone(), (family, generation, false));
        }
    }

    fn refresh(
        &mut self,
        token: &Token,
        shape: &Shape,
        content_type: &ContentType,
    ) -> Result<(), String> {
        let rt = self.token(token, false);
        let body = match shape {
            Shape::Json => json!({ "refresh_token": rt }).to_string().into_bytes(),
            Shape::JsonExtra(extra) => json!({ "refresh_token": rt, "scope": extra })
                .to_string()
                .into_bytes(),
            Shape::Form => format!("refresh_token={rt}").into_bytes(),
            Shape::Mistyped => br#"{"refresh_token": 7}"#.to_vec(),
            Shape::Raw(raw) => raw.clone(),
        };
        let mut builder = Request::post("/token");
        let declared_json = match content_type {
            ContentType::Json => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Some(true)
            }
            ContentType::Form => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Some(false)
            }
            ContentType::None => Some(false),
            ContentType::Raw(raw) => match HeaderValue::from_bytes(raw) {
                Ok(v) => {
                    builder = builder.header(header::CONTENT_TYPE, v);
                    // Whether axum takes it for JSON is its business.
                    None
                }
                Err(_) => Some(false),
            },
        };
        let request = builder
            .body(Body::from(body.clone()))
            .map_err(|e| e.to_string())?;
        let answer = self.send(request)?;
        let status = answer.status;
        if status.is_server_error() {
            return Err(format!("answered {status}"));
        }
        let presented = presented_refresh_token(&body);
        let known = presented
            .as_ref()
            .and_then(|p| self.refresh.get(p).copied());
        if status == StatusCode::OK {
            let Some((family, _, used)) = known else {
                return Err("a refresh with no issued refresh token succeeded".into());
            };
            if used || self.revoked.contains(&family) {
                return Err("a used or revoked refresh token succeeded".into());
            }
            if let Some(p) = &presented {
                self.refresh.entry(p.clone()).and_modify(|e| e.2 = true);
            }
            return self.grant(&answer);
        }
        if !status.is_client_error() {
            return Err(format!("answered {status}"));
        }
        // Only the server's own refusal says the body was read as a grant.
        let refused_grant = status == StatusCode::BAD_REQUEST && is_invalid_grant(&answer.body);
        match (declared_json, known) {
            (Some(true), Some((family, _, used))) => {
                if !used && !self.revoked.contains(&family) {
                    return Err(format!("a live refresh token was refused: {status}"));
                }
                if !is_invalid_grant(&answer.body) {
                    return Err(format!(
                        "a spent refresh token got {status}, not invalid_grant"
                    ));
                }
                if used {
                    // Reuse: the whole family is revoked.
                    self.revoked.insert(family);
                }
            }
            (None, Some((family, _, true))) if refused_grant => {
                self.revoked.insert(family);
            }
            _ => {}
        }
        Ok(())
    }

    fn protected(
        &mut self,
        recipe: bool,
        post: bool,
        credentials: &Credentials,
        request_id: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), String> {
        let path = if recipe { "/api/recipe" } else { "/api/data" };
        let mut builder = if post {
            Request::post(path)
        } else {
            Request::get(path)
        };
        let presented = match credentials {
            Credentials::None => None,
            Credentials::Bearer(t) => {
                let t = self.token(t, true);
                match HeaderValue::from_str(&format!("Bearer {t}")) {
                    Ok(v) => {
                        builder = builder.header(header::AUTHORIZATION, v);
                        Some(t)
                    }
                    Err(_) => None,
                }
            }
            Credentials::Cookie(t) => {
                let t = self.token(t, true);
                match HeaderValue::from_str(&format!("lang=en; JSESSIONID={t}")) {
                    Ok(v) => {
                        builder = builder.header(header::COOKIE, v);
                        // The cookie ends at the first `;`, and trailing
                        // white space is not part of it; a value's leading
                        // white space is (no cookie value may hold any).
                        t.split(';').next().map(|t| t.trim_end().to_string())
                    }
                    Err(_) => None,
                }
            }
            Credentials::RawAuthorization(raw) => {
                if let Ok(v) = HeaderValue::from_bytes(raw) {
                    builder = builder.header(header::AUTHORIZATION, v);
                }
                None
            }
            Credentials::RawCookie(raw) => {
                if let Ok(v) = HeaderValue::from_bytes(raw) {
                    builder = builder.header(header::COOKIE, v);
                }
                None
            }
        };
        let raw_credentials = matches!(
            credentials,
            Credentials::RawAuthorization(_) | Credentials::RawCookie(_)
        );
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_bytes(id).ok()) {
            builder = builder.header(REQUEST_ID, id);
        }
        let request = builder
            .body(Body::from(body.to_vec()))
            .map_err(|e| e.to_string())?;
        let answer = self.send(request)?;
        let live = presented.as_ref().and_then(|t| {
            let (family, generation) = *self.access.get(t)?;
            (!self.revoked.contains(&family)).then_some(generation)
        });
        let (authorised, generation) = if recipe {
            if answer.status != StatusCode::OK {
                return Err(format!("the recipe endpoint answered {}", answer.status));
            }
            let v: Value = serde_json::from_slice(&answer.body)
                .map_err(|e| format!("the recipe endpoint answered no JSON: {e}"))?;
            let ok = v["success"] == true;
            if !ok && v["code"] != "0002" {
                return Err(format!("a recipe refusal without code 0002: {v}"));
            }
            (ok, v["data"]["generation"].as_u64())
        } else {
            match answer.status {
                StatusCode::OK => {
                    let v: Value = serde_json::from_slice(&answer.body)
                        .map_err(|e| format!("a 200 with no JSON: {e}"))?;
                    (true, v["generation"].as_u64())
                }
                StatusCode::UNAUTHORIZED => (false, None),
                other => return Err(format!("a protected call answered {other}")),
            }
        };
        if raw_credentials {
            // Arbitrary credentials: authorised only if they carry a live
            // token somewhere.
            if authorised {
                let header = match credentials {
                    Credentials::RawAuthorization(b) | Credentials::RawCookie(b) => b,
                    _ => unreachable!("raw credentials"),
                };
                let carried = self.access.iter().any(|(t, (family, _))| {
                    !self.revoked.contains(family)
                        && header.windows(t.len()).any(|w| w == t.as_bytes())
                });
                if !carried {
                    return Err("authorised credentials that carry no live token".into());
                }
            }
            return Ok(());
        }
        match (live, authorised) {
            (Some(g), true) if generation == Some(g) => Ok(()),
            (Some(g), true) => Err(format!("told generation {generation:?}, token is {g}")),
            (Some(_), false) => Err("a live access token was refused".into()),
            (None, true) => Err(format!("authorised {presented:?}, which is not live")),
            (None, false) => Ok(()),
        }
    }
}

fn is_invalid_grant(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v["error"] == "invalid_grant")
}

/// The refresh token a body presents, read as the server reads a grant
/// request: a JSON object whose `refresh_token` is a string.
fn presented_refresh_token(body: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(body).ok()? {
        Value::Object(o) => o.get("refresh_token")?.as_str().map(str::to_string),
        _ => None,
    }
}
