//! A real token server on loopback, for tokenflight's HTTP tests and
//! examples: the kind of server that punishes a client that refreshes twice.
//!
//! - `POST /login` (any JSON body) starts a *family*: an access token and a
//!   refresh token.
//! - `POST /token` with `{"refresh_token": "…"}` rotates: the refresh token
//!   is single-use; it buys a new access token and a new refresh token. A
//!   refresh token used a second time is *reuse*: the server counts it and
//!   revokes the whole family (every token of that login stops working), as
//!   OAuth 2.0 security best practice asks. With a *reuse grace window*
//!   (`Knobs::reuse_grace`, as Auth0's reuse interval, Cognito's and Ory
//!   Hydra's grace periods offer), a refresh token used again within the
//!   window of its first use is honoured instead (counted as a grace
//!   reuse): it buys another grant. Errors are `400
//!   {"error":"invalid_grant"}` (for good) and `503
//!   {"error":"temporarily_unavailable"}` (injected, transient).
//! - `GET|POST /api/data` is protected (`Authorization: Bearer …` or
//!   `Cookie: JSESSIONID=…`): `401` for a bad token, else `200` with the
//!   request's id (header `x-request-id`), the token's generation and the
//!   request body echoed. It counts calls and successes per request id.
//! - `GET|POST /api/recipe` is the same, answered the way the classic
//!   mini-program recipe's backend does: always `200`, with
//!   `{"success":false,"code":"0002"}` for a bad token.
//! - `GET /public` needs no token.
//!
//! Access tokens expire after a TTL, and optionally after a number of
//! successful uses (a deterministic way to make "expiries" happen under
//! load without depending on timing). Knobs add latency, inject refresh
//! failures and make the server reject every token.
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use tokenserver::{Knobs, TokenServer};
//!
//! let server = TokenServer::start(Knobs::default()).await?;
//! assert!(server.url("/public").starts_with("http://127.0.0.1:"));
//! assert_eq!(server.stats().logins, 0);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The header a client puts its request id in, so that the server can
/// count how often each logical request was sent and succeeded.
pub const REQUEST_ID: &str = "x-request-id";

/// How the server behaves from the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// How long an access token is valid.
    pub access_ttl: Duration,
    /// After this many successful uses an access token is expired too.
    pub uses_per_token: Option<u32>,
    /// Added to every protected call before it answers.
    pub latency: Duration,
    /// Added to every refresh before it answers.
    pub refresh_latency: Duration,
    /// A used refresh token presented again within this long of its first
    /// use is honoured (a new grant) rather than revoking the family. Zero:
    /// no grace, every reuse revokes.
    pub reuse_grace: Duration,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            access_ttl: Duration::from_secs(60),
            uses_per_token: None,
            latency: Duration::ZERO,
            refresh_latency: Duration::ZERO,
            reuse_grace: Duration::ZERO,
        }
    }
}

/// Refresh failures to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefreshFault {
    /// Refreshes work.
    #[default]
    None,
    /// The next `n` refreshes answer `503` (the refresh token is not used up).
    Transient(u32),
    /// Every refresh answers `400 invalid_grant` from now on.
    Permanent,
}

/// A grant, as `/login` and `/token` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The access token.
    pub access_token: String,
    /// The single-use refresh token.
    pub refresh_token: String,
    /// How long the access token is valid, in milliseconds.
    pub expires_in_ms: u64,
}

/// What one request id saw on the protected endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdStats {
    /// Calls with this id, rejected ones included.
    pub calls: u32,
    /// Calls with this id that were answered as authorised.
    pub successes: u32,
}

/// Counters, read with [`TokenServer::stats`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Successful logins.
    pub logins: u64,
    /// Successful refreshes (each made a new access token).
    pub refreshes: u64,
    /// Refreshes of a family whose newest access token was still valid: a
    /// refresh that no expiry asked for.
    pub needless_refreshes: u64,
    /// Refresh tokens presented a second time (each revoked its family).
    pub reuse: u64,
    /// Refresh tokens presented again within the reuse grace window (each
    /// honoured; also counted in `refreshes`).
    pub grace_reuses: u64,
    /// Refreshes answered with an injected failure.
    pub injected_failures: u64,
    /// Refreshes refused because the token was unknown or revoked.
    pub invalid_grants: u64,
    /// Protected calls rejected for their token.
    pub rejected: u64,
    /// Protected calls, in all.
    pub protected_calls: u64,
    /// Calls to `/public`.
    pub public_calls: u64,
    /// The newest token generation issued (1 after login, +1 per refresh).
    pub generation: u32,
    /// Per request id.
    pub ids: HashMap<String, IdStats>,
}

impl Stats {
    /// Successful protected calls, summed over request ids.
    pub fn successes(&self) -> u64 {
        self.ids.values().map(|s| u64::from(s.successes)).sum()
    }

    /// Request ids that succeeded more than once (answered twice).
    pub fn duplicated(&self) -> Vec<String> {
        let mut ids: Vec<_> = self
            .ids
            .iter()
            .filter(|(_, s)| s.successes > 1)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }
}

/// A running server on `127.0.0.1` with an ephemeral port; it stops when
/// dropped.
#[derive(Debug)]
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenServer {
    /// Binds `127.0.0.1:0` and serves in a tokio task.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound.
    pub async fn start(knobs: Knobs) -> std::io::Result<Self> {
        let shared = Shared::new(knobs);
        let app = routes(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Serving ends only by `abort` on drop; an accept error ends it
            // early, and the clients then see refused connections.
            let _ = axum::serve(listener, app).await;
        });
        Ok(TokenServer { addr, shared, task })
    }

    /// The server's routes with books of their own, to be driven in process
    /// (say, with `tower::ServiceExt::oneshot`) rather than over a socket:
    /// every request is answered exactly as a started server answers it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use axum::body::Body;
    /// use axum::http::{Request, StatusCode};
    /// use tokenserver::{Knobs, TokenServer};
    /// use tower::ServiceExt;
    ///
    /// let app = TokenServer::router(Knobs::default());
    /// let request = Request::post("/token").body(Body::from("garbage")).unwrap();
    /// let response = app.oneshot(request).await.unwrap();
    /// assert!(response.status().is_client_error());
    /// # }
    /// ```
    pub fn router(knobs: Knobs) -> Router {
        routes(Shared::new(knobs))
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.books().stats.clone()
    }

    /// Injects refresh failures from now on.
    pub fn set_refresh_fault(&self, fault: RefreshFault) {
        self.shared.books().fault = fault;
    }

    /// Makes the protected endpoints reject every token (or stop doing so).
    pub fn set_reject_all(&self, reject: bool) {
        self.shared.reject_all.store(reject, Ordering::SeqCst);
    }

    /// Expires every access token issued so far, as if their TTL ran out.
    pub fn expire_access_tokens(&self) {
        let mut books = self.shared.books();
        for access in books.access.values_mut() {
            access.expired = true;
        }
    }
}

#[derive(Debug)]
struct Shared {
    knobs: Knobs,
    reject_all: AtomicBool,
    state: Mutex<Books>,
}

fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/token", post(refresh))
        .route("/api/data", any(data))
        .route("/api/recipe", any(recipe))
        .route("/public", get(public))
        .with_state(shared)
}

impl Shared {
    fn new(knobs: Knobs) -> Arc<Self> {
        Arc::new(Shared {
            knobs,
            reject_all: AtomicBool::new(false),
            state: Mutex::new(Books::default()),
        })
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        // A panicking handler holds no invariant half-done that matters to a
        // test server: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, Default)]
struct Books {
    serial: u64,
    fault: RefreshFault,
    families: HashMap<u64, Family>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, RefreshToken>,
    stats: Stats,
}

#[derive(Debug)]
struct Family {
    revoked: bool,
    newest_access: String,
}

#[derive(Debug)]
struct Access {
    family: u64,
    generation: u32,
    expires_at: Instant,
    uses: u32,
    expired: bool,
}

#[derive(Debug)]
struct RefreshToken {
    family: u64,
    generation: u32,
    /// When it was first used.
    used: Option<Instant>,
}

impl Books {
    fn issue(&mut self, knobs: &Knobs, family: u64, generation: u32) -> Grant {
        self.serial += 1;
        let access_token = format!("at-{family}-{generation}-{}", self.serial);
        let refresh_token = format!("rt-{family}-{generation}-{}", self.serial);
        self.access.insert(
            access_token.clone(),
            Access {
                family,
                generation,
                expires_at: Instant::now() + knobs.access_ttl,
                uses: 0,
                expired: false,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshToken {
                family,
                generation,
                used: None,
            },
        );
        self.families.insert(
            family,
            Family {
                revoked: false,
                newest_access: access_token.clone(),
            },
        );
        self.stats.generation = self.stats.generation.max(generation);
        Grant {
            access_token,
            refresh_token,
            expires_in_ms: u64::try_from(knobs.access_ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Whether `token` is valid now, without using it up.
    fn valid(&self, knobs: &Knobs, token: &str, now: Instant) -> Option<&Access> {
        let access = self.access.get(token)?;
        let family = self.families.get(&access.family)?;
        let used_up = knobs.uses_per_token.is_some_and(|n| access.uses >= n);
        (!family.revoked && !access.expired && !used_up && now < access.expires_at)
            .then_some(access)
    }
}

/// The token a request carries: a bearer token or a `JSESSIONID` cookie.
fn presented(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("JSESSIONID="))
        .map(str::to_string)
}

async fn login(State(shared): State<Arc<Shared>>) -> Json<Grant> {
    let mut books = shared.books();
    books.stats.logins += 1;
    books.serial += 1;
    let family = books.serial;
    Json(books.issue(&shared.knobs, family, 1))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(State(shared): State<Arc<Shared>>, Json(req): Json<RefreshRequest>) -> Response {
    if !shared.knobs.refresh_latency.is_zero() {
        tokio::time::sleep(shared.knobs.refresh_latency).await;
    }
    let now = Instant::now();
    let mut books = shared.books();
    match books.fault {
        RefreshFault::None => {}
        RefreshFault::Transient(n) => {
            books.fault = match n {
                0 | 1 => RefreshFault::None,
                n => RefreshFault::Transient(n - 1),
            };
            books.stats.injected_failures += 1;
            let body = json!({"error": "temporarily_unavailable"});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        }
        RefreshFault::Permanent => {
            books.stats.injected_failures += 1;
            return invalid_grant();
        }
    }
    let Some(presented) = books.refresh.get_mut(&req.refresh_token) else {
        books.stats.invalid_grants += 1;
        return invalid_grant();
    };
    let (family, generation) = (presented.family, presented.generation);
    let reused = presented.used.is_some();
    let first_use = *presented.used.get_or_insert(now);
    let grace = shared.knobs.reuse_grace;
    if reused && now.duration_since(first_use) <= grace && !grace.is_zero() {
        let alive = books.families.get(&family).is_some_and(|f| !f.revoked);
        if alive {
            books.stats.grace_reuses += 1;
            books.stats.refreshes += 1;
            let grant = books.issue(&shared.knobs, family, generation + 1);
            return Json(grant).into_response();
        }
    }
    if reused {
        // Reuse: someone refreshed twice with one token. Revoke the login.
        books.stats.reuse += 1;
        if let Some(f) = books.families.get_mut(&family) {
            f.revoked = true;
        }
        return invalid_grant();
    }
    let Some(newest) = books.families.get(&family).filter(|f| !f.revoked) else {
        books.stats.invalid_grants += 1;
        return invalid_grant();
    };
    let newest = newest.newest_access.clone();
    if books.valid(&shared.knobs, &newest, now).is_some() {
        books.stats.needless_refreshes += 1;
    }
    books.stats.refreshes += 1;
    let grant = books.issue(&shared.knobs, family, generation + 1);
    Json(grant).into_response()
}

fn invalid_grant() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "invalid_grant"})),
    )
        .into_response()
}

/// Checks the token and, if it is good, uses it once; counts the call.
/// Returns the token's generation if authorised.
fn authorise(shared: &Shared, headers: &HeaderMap) -> Option<u32> {
    let id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let token = presented(headers);
    let now = Instant::now();
    let reject_all = shared.reject_all.load(Ordering::SeqCst);
    let mut books = shared.books();
    books.stats.protected_calls += 1;
    let generation = match token {
        Some(token) if !reject_all => match books.valid(&shared.knobs, &token, now) {
            Some(access) => {
                let generation = access.generation;
                if let Some(access) = books.access.get_mut(&token) {
                    access.uses += 1;
                }
                Some(generation)
            }
            None => None,
        },
        _ => None,
    };
    if generation.is_none() {
        books.stats.rejected += 1;
    }
    if let Some(id) = id {
        let counts = books.stats.ids.entry(id).or_default();
        counts.calls += 1;
        counts.successes += u32::from(generation.is_some());
    }
    generation
}

fn echo(headers: &HeaderMap, generation: u32, body: &Bytes) -> serde_json::Value {
    json!({
        "id": headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()),
        "generation": generation,
        "body": String::from_utf8_lossy(body),
    })
}

async fn data(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !shared.knobs.latency.is_zero() {
        tokio::time::sleep(shared.knobs.latency).await;
    }
    match authorise(&shared, &headers) {
        Some(generation) => Json(echo(&headers, generation, &body)).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#)],
            Json(json!({"error": "invalid_token"})),
        )
            .into_response(),
    }
}

async fn recipe(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if !shared.knobs.latency.is_zero() {
        tokio::time::sleep(shared.knobs.latency).await;
    }
    let answer = match authorise(&shared, &headers) {
        Some(generation) => json!({
            "success": true,
            "code": "0000",
            "data": echo(&headers, generation, &body),
        }),
        None => json!({"success": false, "code": "0002", "message": "login expired"}),
    };
    Json(answer).into_response()
}

async fn public(State(shared): State<Arc<Shared>>) -> &'static str {
    shared.books().stats.public_calls += 1;
    "public"
}
