//! End to end over real HTTP on 127.0.0.1: the tower layer and the reqwest
//! middleware against `tokenserver`, a real token server with single-use
//! rotating refresh tokens (a second use of one revokes the login).
//!
//! What the server counts is the evidence: refreshes, refresh-token reuse,
//! refreshes no expiry asked for, and per request id how often it was sent
//! and how often it succeeded. No assertion is about time; every test is
//! bounded by a generous timeout that fails it rather than let it hang.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use tokenflight::http::{
    Auth, AuthError, AuthLayer, Cookie, NotRetried, OneShot, RejectOnBody, RetriesExhausted,
    SkipAuth,
};
use tokenflight::{Clock, Config, Error, Fresh, Handle, HandleError, RefreshError, TokioSleep};
use tokenserver::{Grant, Knobs, RefreshFault, TokenServer, REQUEST_ID};
use tower::{Layer, ServiceExt};

use common::chain;

/// No test may take longer than this; one that would, hangs, and fails.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `test` under [`BOUND`]: a hang fails the test instead of stalling
/// the suite.
async fn bounded<F: Future>(test: F) -> F::Output {
    tokio::time::timeout(BOUND, test)
        .await
        .expect("the test hung: some request never finished")
}

/// Why the refresher brought no token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RefreshFail {
    /// `400 invalid_grant`: the refresh token is gone.
    InvalidGrant,
    /// A `5xx`, or no answer.
    Unavailable(String),
}

impl fmt::Display for RefreshFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshFail::InvalidGrant => f.write_str("the refresh token was refused"),
            RefreshFail::Unavailable(why) => write!(f, "the token server is unavailable: {why}"),
        }
    }
}

impl std::error::Error for RefreshFail {}

type Hyper = Client<HttpConnector, Full<Bytes>>;
type Layered = Auth<Hyper, String, RefreshFail>;

/// A plain HTTP/2 client (one connection carries every request, however
/// many are in flight).
fn hyper_client() -> Hyper {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

async fn post_json(
    client: &Hyper,
    url: String,
    body: String,
) -> Result<(StatusCode, Bytes), String> {
    let request = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::from(body))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes()))
}

/// Logs in and gives the handle its first token; returns the refresh token
/// the refresher will rotate.
async fn login(
    server: &TokenServer,
    handle: &Handle<String, RefreshFail>,
    clock: &Clock,
    cell: &Mutex<String>,
) {
    let (status, body) = post_json(&hyper_client(), server.url("/login"), "{}".into())
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let grant: Grant = serde_json::from_slice(&body).unwrap();
    *cell.lock() = grant.refresh_token;
    let expires = clock.after(Duration::from_millis(grant.expires_in_ms));
    handle.set_token(Fresh::new(grant.access_token).expiring_at(expires));
}

/// A client of `server`: the handle, its refresher (rotating the refresh
/// token in a cell) and its clock, logged in.
struct Session {
    handle: Handle<String, RefreshFail>,
    clock: Clock,
    refresh_token: Arc<Mutex<String>>,
}

impl Session {
    async fn start(server: &TokenServer, config: Config) -> Self {
        let clock = Clock::system();
        let refresh_token = Arc::new(Mutex::new(String::new()));
        let cell = Arc::clone(&refresh_token);
        let url = server.url("/token");
        let client = hyper_client();
        let handle = Handle::builder(move |_| {
            let (cell, url, client) = (Arc::clone(&cell), url.clone(), client.clone());
            async move {
                let presented = cell.lock().clone();
                let body = serde_json::json!({ "refresh_token": presented }).to_string();
                let (status, body) = post_json(&client, url, body)
                    .await
                    .map_err(|e| RefreshError::Transient(RefreshFail::Unavailable(e)))?;
                match status {
                    StatusCode::OK => {
                        let grant: Grant = serde_json::from_slice(&body).map_err(|e| {
                            RefreshError::Transient(RefreshFail::Unavailable(e.to_string()))
                        })?;
                        *cell.lock() = grant.refresh_token;
                        let lifetime = Duration::from_millis(grant.expires_in_ms);
                        Ok(Fresh::new(grant.access_token).expires_in(lifetime))
                    }
                    StatusCode::BAD_REQUEST => {
                        Err(RefreshError::Permanent(RefreshFail::InvalidGrant))
                    }
                    other => Err(RefreshError::Transient(RefreshFail::Unavailable(
                        other.to_string(),
                    ))),
                }
            }
        })
        .config(config)
        .clock(clock.clone())
        .sleep(TokioSleep)
        .build()
        .unwrap();
        let session = Session {
            handle,
            clock,
            refresh_token,
        };
        login(
            server,
            &session.handle,
            &session.clock,
            &session.refresh_token,
        )
        .await;
        session
    }

    /// Logs in again (a new family), as a user would after `LoginRequired`.
    async fn relogin(&self, server: &TokenServer) {
        login(server, &self.handle, &self.clock, &self.refresh_token).await;
    }

    fn layered(&self) -> Layered {
        AuthLayer::new(self.handle.clone()).layer(hyper_client())
    }
}

/// Refresh exactly when the token is past its expiry (tokens live 150 ms
/// here, far less than the default safety margin), and retry a request
/// up to three times: a token the server retires after a number of uses can
/// be retired under a waiting request once per generation.
fn config() -> Config {
    let mut config = Config::default();
    config.expiry_skew = Duration::ZERO;
    config.skew_jitter = Duration::ZERO;
    config.safety_margin = Duration::ZERO;
    config.max_auth_retries = 3;
    config.backoff_initial = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(20);
    config
}

fn data_request(server: &TokenServer, id: usize) -> Request<Full<Bytes>> {
    Request::post(server.url("/api/data"))
        .header(REQUEST_ID, id.to_string())
        .body(Full::from(format!("payload-{id}")))
        .unwrap()
}

/// What `/api/data` answered: the echoed id, generation and body.
async fn echoed<B>(response: Response<B>) -> serde_json::Value
where
    B: http_body::Body,
    B::Error: fmt::Debug,
{
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

type Outcome = Result<serde_json::Value, AuthError<RefreshFail, hyper_util::client::legacy::Error>>;

/// Sends a request per id in `ids` through `service`, all at once.
async fn herd(server: &TokenServer, service: &Layered, ids: Range<usize>) -> Vec<Outcome> {
    let count = ids.len();
    let tasks: Vec<_> = ids
        .map(|id| {
            let request = data_request(server, id);
            let service = service.clone();
            tokio::spawn(async move {
                match service.oneshot(request).await {
                    Ok(response) => Ok(echoed(response).await),
                    Err(e) => Err(e),
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for task in tasks {
        results.push(task.await.expect("a request task panicked"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_across_three_expiries_refresh_once_per_expiry() {
    bounded(async {
        // Each access token is retired after 250 successful uses: 1 000
        // successes need exactly 4 tokens, so 3 expiries, whatever the
        // timing.
        let server = TokenServer::start(Knobs {
            uses_per_token: Some(250),
            latency: Duration::from_millis(1),
            ..Knobs::default()
        })
        .await
        .unwrap();
        let session = Session::start(&server, config()).await;
        let service = session.layered();

        let results = herd(&server, &service, 0..1000).await;

        let mut per_generation: HashMap<u64, usize> = HashMap::new();
        for (id, result) in results.iter().enumerate() {
            let answer = result
                .as_ref()
                .unwrap_or_else(|e| panic!("request {id} failed: {e}"));
            assert_eq!(answer["id"], id.to_string());
            assert_eq!(
                answer["body"],
                format!("payload-{id}"),
                "a retry lost its body"
            );
            *per_generation
                .entry(answer["generation"].as_u64().unwrap())
                .or_default() += 1;
        }
        let stats = server.stats();
        assert_eq!(stats.refreshes, 3, "one refresh per expiry");
        assert_eq!(stats.reuse, 0, "a refresh token was used twice");
        assert_eq!(stats.needless_refreshes, 0, "a refresh no expiry asked for");
        assert_eq!(stats.logins, 1);
        assert_eq!(stats.successes(), 1000);
        assert!(
            stats.duplicated().is_empty(),
            "answered twice: {:?}",
            stats.duplicated()
        );
        for id in 0..1000 {
            let seen = stats.ids[&id.to_string()];
            assert_eq!(seen.successes, 1, "request {id}");
            assert!(
                seen.calls <= 4,
                "request {id} was sent {} times",
                seen.calls
            );
        }
        let expected: HashMap<u64, usize> = (1..=4).map(|g| (g, 250)).collect();
        assert_eq!(per_generation, expected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_once_each_without_reuse() {
    bounded(async {
        let ttl = Duration::from_millis(150);
        let server = TokenServer::start(Knobs {
            access_ttl: ttl,
            ..Knobs::default()
        })
        .await
        .unwrap();
        let session = Session::start(&server, config()).await;
        let service = session.layered();
        for wave in 0..4 {
            // Waiting out the TTL between waves (not timing anything): each
            // wave after the first starts with an expired token.
            if wave > 0 {
                tokio::time::sleep(ttl + Duration::from_millis(50)).await;
            }
            for result in herd(&server, &service, wave * 50..(wave + 1) * 50).await {
                result.unwrap();
            }
        }
        let stats = server.stats();
        assert_eq!(stats.successes(), 200);
        assert!(stats.duplicated().is_empty());
        assert!(
            stats.refreshes >= 3,
            "each wave after the first needs a new token"
        );
        assert_eq!(stats.reuse, 0);
        assert_eq!(stats.needless_refreshes, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_refused_for_good_fails_every_request_with_the_typed_error() {
    bounded(async {
        let server = TokenServer::start(Knobs::default()).await.unwrap();
        let session = Session::start(&server, config()).await;
        let service = session.layered();
        server.set_refresh_fault(RefreshFault::Permanent);
        server.expire_access_tokens();

        for (id, result) in herd(&server, &service, 0..200)
            .await
            .into_iter()
            .enumerate()
        {
            match result {
                Err(e @ AuthError::Token(Error::LoginRequired(_))) => {
                    let Some(Error::LoginRequired(cause)) = e.token_error() else {
                        unreachable!()
                    };
                    assert_eq!(
                        **cause,
                        tokenflight::Fault::Refresher(RefreshFail::InvalidGrant)
                    );
                    // Each cause once: the layer's words, the handle's, the
                    // refresher's own error.
                    assert_eq!(
                        chain(&e),
                        [
                            "no usable token",
                            "token refresh was refused, a new login is needed",
                            "the refresh token was refused",
                        ]
                    );
                }
                other => panic!("request {id}: {other:?}"),
            }
        }
        let stats = server.stats();
        assert_eq!(
            stats.injected_failures, 1,
            "one refresh attempt for all of them"
        );
        assert_eq!(stats.successes(), 0);

        // Public endpoints still work: they never wait for a token.
        let mut public = Request::get(server.url("/public"))
            .body(Full::default())
            .unwrap();
        public.extensions_mut().insert(SkipAuth);
        let response = service.clone().oneshot(public).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);

        // A new login ends it.
        server.set_refresh_fault(RefreshFault::None);
        session.relogin(&server).await;
        for result in herd(&server, &service, 200..300).await {
            result.unwrap();
        }
        assert_eq!(server.stats().reuse, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_rejects_every_token_gets_each_request_a_bounded_number_of_times() {
    bounded(async {
        let server = TokenServer::start(Knobs::default()).await.unwrap();
        let session = Session::start(&server, config()).await;
        let service = session.layered();
        server.set_reject_all(true);

        let tasks: Vec<_> = (0..20)
            .map(|id| {
                let (request, service) = (data_request(&server, id), service.clone());
                tokio::spawn(async move { service.oneshot(request).await })
            })
            .collect();
        for (id, task) in tasks.into_iter().enumerate() {
            // The caller gets the server's last word, as tower's retry
            // hands back its last response: the 401, its challenge, its body.
            let response = task
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("request {id}: {e:?}"));
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(
                response.headers()[http::header::WWW_AUTHENTICATE],
                r#"Bearer error="invalid_token""#
            );
            assert_eq!(
                response.extensions().get(),
                Some(&RetriesExhausted { sends: 4 })
            );
            assert!(response.extensions().get::<NotRetried>().is_none());
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "invalid_token");
        }
        let stats = server.stats();
        for id in 0..20 {
            assert_eq!(
                stats.ids[&id.to_string()].calls,
                4,
                "request {id}: 1 + max_auth_retries sends"
            );
        }
        assert_eq!(stats.reuse, 0);
        assert_eq!(stats.successes(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_refresh_failures_are_retried_and_nobody_notices() {
    bounded(async {
        let server = TokenServer::start(Knobs::default()).await.unwrap();
        let session = Session::start(&server, config()).await;
        let service = session.layered();
        server.set_refresh_fault(RefreshFault::Transient(2));
        server.expire_access_tokens();

        for result in herd(&server, &service, 0..100).await {
            result.unwrap();
        }
        let stats = server.stats();
        assert_eq!(stats.injected_failures, 2);
        assert_eq!(stats.refreshes, 1);
        assert_eq!(stats.reuse, 0);
        assert_eq!(stats.successes(), 100);
        assert!(stats.duplicated().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipe_server_cookie_and_body_code_work_through_the_layer() {
    bounded(async {
        // The mini-program recipe's backend: `Cookie: JSESSIONID=…`, and an
        // expired session is `200 {"success":false,"code":"0002"}`.
        let server = TokenServer::start(Knobs {
            uses_per_token: Some(10),
            ..Knobs::default()
        })
        .await
        .unwrap();
        // Five tokens in all: a request may meet each of them retired.
        let mut config = config();
        config.max_auth_retries = 4;
        let session = Session::start(&server, config).await;
        let expired = RejectOnBody::new(|_head: &http::response::Parts, body: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(body)
                .is_ok_and(|v| v["code"] == "0002" && v["success"] == false)
        });
        let service = AuthLayer::new(session.handle.clone())
            .inject(Cookie::new("JSESSIONID"))
            .classify(expired)
            .layer(hyper_client());

        let tasks: Vec<_> = (0..50)
            .map(|id| {
                let request = Request::get(server.url("/api/recipe"))
                    .header(REQUEST_ID, id.to_string())
                    .header("cookie", "lang=zh")
                    .body(Full::default())
                    .unwrap();
                tokio::spawn(service.clone().oneshot(request))
            })
            .collect();
        for task in tasks {
            let response = task.await.unwrap().unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["success"], true, "{answer}");
        }
        let stats = server.stats();
        assert_eq!(
            stats.refreshes, 4,
            "50 successes at 10 per token: 4 expiries"
        );
        assert_eq!(stats.reuse, 0);
        assert_eq!(stats.successes(), 50);
        assert!(stats.duplicated().is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_cannot_be_sent_twice_comes_back_rejected_not_lost() {
    bounded(async {
        let server = TokenServer::start(Knobs::default()).await.unwrap();
        let session = Session::start(&server, config()).await;
        server.expire_access_tokens();
        // A client for bodies that can be sent only once (streams).
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<OneShot<Full<Bytes>>>();
        let service = AuthLayer::new(session.handle.clone()).layer(client);

        let request = Request::post(server.url("/api/data"))
            .header(REQUEST_ID, "stream")
            .body(OneShot(Full::from("once")))
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.extensions().get::<NotRetried>().is_some());
        assert_eq!(server.stats().ids["stream"].calls, 1);

        // The token is known bad now: the next request waits for the one
        // refresh and goes out with the new token, once.
        let request = Request::post(server.url("/api/data"))
            .header(REQUEST_ID, "next")
            .body(OneShot(Full::from("next")))
            .unwrap();
        let answer = echoed(service.oneshot(request).await.unwrap()).await;
        assert_eq!(answer["generation"], 2);
        let stats = server.stats();
        assert_eq!(stats.ids["next"].calls, 1);
        assert_eq!(stats.refreshes, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_auth_requests_never_wait_for_a_token() {
    bounded(async {
        let server = TokenServer::start(Knobs::default()).await.unwrap();
        // A handle with no token and a refresher that never answers: any
        // request that waited for a token would wait forever.
        let handle: Handle<String, RefreshFail> = Handle::builder(|_| std::future::pending())
            .sleep(TokioSleep)
            .build()
            .unwrap();
        let service = AuthLayer::new(handle.clone()).layer(hyper_client());
        for _ in 0..3 {
            let mut request = Request::get(server.url("/public"))
                .body(Full::default())
                .unwrap();
            request.extensions_mut().insert(SkipAuth);
            let response = service.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(response.headers().get("authorization").is_none());
        }
        assert_eq!(server.stats().public_calls, 3);
        assert_eq!(handle.waiters(), 0);
    })
    .await;
}

mod reqwest_middleware_client {
    use super::*;
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use tokenflight::http::reqwest::Auth;

    fn client(session: &Session) -> ClientWithMiddleware {
        ClientBuilder::new(reqwest::Client::new())
            .with(Auth::new(session.handle.clone()))
            .build()
    }

    /// Sends a request per id in `ids` to `/api/data`, all at once.
    async fn herd(
        client: &ClientWithMiddleware,
        server: &TokenServer,
        ids: Range<usize>,
    ) -> Vec<reqwest_middleware::Result<serde_json::Value>> {
        let tasks: Vec<_> = ids
            .map(|id| {
                let (client, url) = (client.clone(), server.url("/api/data"));
                tokio::spawn(async move {
                    let response = client
                        .post(url)
                        .header(REQUEST_ID, id.to_string())
                        .body(format!("payload-{id}"))
                        .send()
                        .await?;
                    assert_eq!(response.status(), StatusCode::OK);
                    let body = response.bytes().await?;
                    Ok(serde_json::from_slice(&body).unwrap())
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("a request task panicked"));
        }
        results
    }

    /// The handle's error inside a middleware error.
    fn handle_error(e: &reqwest_middleware::Error) -> &HandleError<RefreshFail> {
        match e {
            reqwest_middleware::Error::Middleware(e) => e
                .downcast_ref::<HandleError<RefreshFail>>()
                .unwrap_or_else(|| panic!("not the handle's error: {e}")),
            other => panic!("not a middleware error: {other}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_hundred_requests_across_three_expiries_refresh_once_per_expiry() {
        bounded(async {
            let server = TokenServer::start(Knobs {
                uses_per_token: Some(50),
                ..Knobs::default()
            })
            .await
            .unwrap();
            let session = Session::start(&server, config()).await;
            let client = client(&session);

            for (id, result) in herd(&client, &server, 0..200).await.into_iter().enumerate() {
                let answer = result.unwrap_or_else(|e| panic!("request {id}: {e}"));
                assert_eq!(answer["body"], format!("payload-{id}"));
            }
            let stats = server.stats();
            assert_eq!(stats.refreshes, 3);
            assert_eq!(stats.reuse, 0);
            assert_eq!(stats.needless_refreshes, 0);
            assert_eq!(stats.successes(), 200);
            assert!(stats.duplicated().is_empty());
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rejecting_server_hands_back_its_last_rejection_and_a_refused_refresh_is_a_typed_error(
    ) {
        bounded(async {
            let server = TokenServer::start(Knobs::default()).await.unwrap();
            let session = Session::start(&server, config()).await;
            let client = client(&session);

            server.set_reject_all(true);
            let tasks: Vec<_> = (0..10)
                .map(|id| {
                    let request = client
                        .post(server.url("/api/data"))
                        .header(REQUEST_ID, id.to_string())
                        .body(format!("payload-{id}"));
                    tokio::spawn(async move { request.send().await })
                })
                .collect();
            for task in tasks {
                // The last rejection, as the tower layer hands it back.
                let response = task.await.unwrap().unwrap();
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
                assert_eq!(
                    response.headers()[http::header::WWW_AUTHENTICATE],
                    r#"Bearer error="invalid_token""#
                );
                assert_eq!(
                    response.extensions().get(),
                    Some(&RetriesExhausted { sends: 4 })
                );
                assert_eq!(
                    response.error_for_status().unwrap_err().status(),
                    Some(StatusCode::UNAUTHORIZED)
                );
            }
            let stats = server.stats();
            assert!((0..10).all(|id| stats.ids[&id.to_string()].calls == 4));

            server.set_reject_all(false);
            server.set_refresh_fault(RefreshFault::Permanent);
            server.expire_access_tokens();
            for result in herd(&client, &server, 10..60).await {
                let e = result.unwrap_err();
                assert!(matches!(handle_error(&e), Error::LoginRequired(_)), "{e}");
                // The middleware's `anyhow` chain names each cause once.
                let reqwest_middleware::Error::Middleware(inner) = &e else {
                    unreachable!()
                };
                assert_eq!(
                    format!("{inner:#}"),
                    "token refresh was refused, a new login is needed: the refresh token was refused"
                );
            }
            assert_eq!(server.stats().reuse, 0);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn skip_auth_goes_out_without_a_token() {
        bounded(async {
            let server = TokenServer::start(Knobs::default()).await.unwrap();
            let session = Session::start(&server, config()).await;
            server.set_refresh_fault(RefreshFault::Permanent);
            // The invalidation's refresh is made at once and refused.
            session.handle.invalidate(tokenflight::Generation(1));
            while session.handle.status().phase != tokenflight::Phase::Failed {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let refused = server.stats().injected_failures;
            let response = client(&session)
                .get(server.url("/public"))
                .with_extension(SkipAuth)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                server.stats().injected_failures,
                refused,
                "no refresh was started"
            );
        })
        .await;
    }
}
