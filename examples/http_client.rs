//! A real token server and real HTTP clients on 127.0.0.1, through the
//! tower layer and the reqwest middleware.
//!
//! The server (the workspace's `tokenserver`) rotates single-use refresh
//! tokens: a refresh token used twice revokes the whole login, which is what
//! a client that refreshes twice for one expiry runs into. The program runs
//! a few scenarios against it and prints what the server saw.
//!
//! Run with `cargo run --example http_client`.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokenflight::http::{AuthLayer, SkipAuth};
use tokenflight::{Config, Credential, Fresh, Handle, Refresh, RefreshError};
use tokenserver::{Grant, Knobs, RefreshFault, Stats, TokenServer, REQUEST_ID};
use tower::{Layer, ServiceExt};

type Hyper = Client<HttpConnector, Full<Bytes>>;

/// The token a grant carries, with its lifetime and the refresh token that
/// the next refresh must present.
fn fresh(grant: Grant) -> Fresh<String> {
    Fresh::new(grant.access_token)
        .expires_in(Duration::from_millis(grant.expires_in_ms))
        .with_credential(Credential::new(grant.refresh_token))
}

/// Why the refresher brought no token.
#[derive(Debug)]
enum RefreshFail {
    InvalidGrant,
    Unavailable(String),
}

impl fmt::Display for RefreshFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshFail::InvalidGrant => f.write_str("invalid_grant"),
            RefreshFail::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

impl std::error::Error for RefreshFail {}

/// POSTs `body` as JSON; the request skips authentication, so it would go
/// straight through the layer too.
async fn post(client: &Hyper, url: String, body: String) -> Result<(StatusCode, Bytes), String> {
    let mut request = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::from(body))
        .map_err(|e| e.to_string())?;
    request.extensions_mut().insert(SkipAuth);
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, body.to_bytes()))
}

/// Logs in, and builds a handle whose refresher rotates the refresh token.
async fn session(server: &TokenServer, client: &Hyper) -> Handle<String, RefreshFail> {
    let mut config = Config::default();
    config.expiry_skew = Duration::ZERO;
    config.skew_jitter = Duration::ZERO;
    config.max_auth_retries = 3;
    let (url, http) = (server.url("/token"), client.clone());
    // The server rotates its refresh token with every access token: the
    // handle keeps the latest with the token and hands it to the next call.
    let handle = Handle::builder(move |refresh: Refresh<String>| {
        let (url, http) = (url.clone(), http.clone());
        async move {
            let presented = refresh.credential().map_or("", Credential::expose);
            let body = serde_json::json!({ "refresh_token": presented }).to_string();
            let unavailable = |e: String| RefreshError::Transient(RefreshFail::Unavailable(e));
            let (status, body) = post(&http, url, body).await.map_err(unavailable)?;
            match status {
                StatusCode::OK => {
                    let grant: Grant =
                        serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))?;
                    Ok(fresh(grant))
                }
                StatusCode::BAD_REQUEST => Err(RefreshError::Permanent(RefreshFail::InvalidGrant)),
                other => Err(unavailable(other.to_string())),
            }
        }
    })
    .config(config)
    .build()
    .expect("a valid configuration");
    let (_, body) = post(client, server.url("/login"), "{}".into())
        .await
        .expect("login");
    let grant: Grant = serde_json::from_slice(&body).expect("a grant");
    handle.set_token(fresh(grant));
    handle
}

/// Sends requests `ids` at once through the layer; returns how many
/// succeeded and the errors of the others, counted by message.
async fn herd(
    server: &TokenServer,
    handle: &Handle<String, RefreshFail>,
    client: &Hyper,
    ids: std::ops::Range<usize>,
) -> (usize, Vec<(String, usize)>) {
    let service = AuthLayer::new(handle.clone()).layer(client.clone());
    let tasks: Vec<_> = ids
        .map(|id| {
            let request = Request::get(server.url("/api/data"))
                .header(REQUEST_ID, id.to_string())
                .body(Full::default())
                .expect("a valid request");
            tokio::spawn(service.clone().oneshot(request))
        })
        .collect();
    let (mut ok, mut errors) = (0, Vec::<(String, usize)>::new());
    for task in tasks {
        match task.await.expect("no task panics") {
            Ok(response) if response.status() == StatusCode::OK => ok += 1,
            Ok(response) => count(&mut errors, format!("HTTP {}", response.status())),
            Err(e) => {
                let cause = e.source().map(|s| format!(" ({s})")).unwrap_or_default();
                count(&mut errors, format!("{e}{cause}"));
            }
        }
    }
    (ok, errors)
}

fn count(errors: &mut Vec<(String, usize)>, message: String) {
    match errors.iter_mut().find(|(m, _)| *m == message) {
        Some((_, n)) => *n += 1,
        None => errors.push((message, 1)),
    }
}

fn report(requests: usize, ok: usize, errors: &[(String, usize)], stats: &Stats) {
    println!("  requests: {requests}, succeeded: {ok}");
    for (message, n) in errors {
        println!("  failed: {n} × {message}");
    }
    println!(
        "  server: {} refreshes, {} of them needless (token still good), {} refresh-token reuse; tokens 1..={}",
        stats.refreshes, stats.needless_refreshes, stats.reuse, stats.generation
    );
    let resent = stats.ids.values().filter(|s| s.calls > 1).count();
    println!(
        "  server: {} protected calls ({} rejected, {} requests sent more than once), {} answered twice",
        stats.protected_calls,
        stats.rejected,
        resent,
        stats.duplicated().len()
    );
}

#[tokio::main]
async fn main() {
    let client: Hyper = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();

    println!("1. 1000 concurrent requests; each access token is retired after 250 uses");
    let server = TokenServer::start(Knobs {
        uses_per_token: Some(250),
        latency: Duration::from_millis(1),
        ..Knobs::default()
    })
    .await
    .expect("bind 127.0.0.1");
    println!("  token server on {}", server.url(""));
    let handle = session(&server, &client).await;
    let (ok, errors) = herd(&server, &handle, &client, 0..1000).await;
    report(1000, ok, &errors, &server.stats());

    println!("\n2. access tokens live 150 ms; 4 waves of 100 requests, 200 ms apart");
    let short = TokenServer::start(Knobs {
        access_ttl: Duration::from_millis(150),
        ..Knobs::default()
    })
    .await
    .expect("bind 127.0.0.1");
    let short_handle = session(&short, &client).await;
    let mut ok = 0;
    let mut errors = Vec::new();
    for wave in 0..4 {
        if wave > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (n, e) = herd(&short, &short_handle, &client, wave * 100..(wave + 1) * 100).await;
        ok += n;
        errors.extend(e);
    }
    report(400, ok, &errors, &short.stats());

    println!("\n3. the server rejects every token: 20 requests");
    server.set_reject_all(true);
    let before = server.stats();
    let (ok, errors) = herd(&server, &handle, &client, 1000..1020).await;
    let stats = server.stats();
    println!("  requests: 20, succeeded: {ok}");
    for (message, n) in &errors {
        println!("  failed: {n} × {message}");
    }
    println!(
        "  server: each request sent {} times (1 + max_auth_retries), {} refreshes meanwhile, {} refresh-token reuse",
        stats.ids["1000"].calls,
        stats.refreshes - before.refreshes,
        stats.reuse
    );
    server.set_reject_all(false);

    println!("\n4. the refresh token is refused for good (invalid_grant): 100 requests");
    server.set_refresh_fault(RefreshFault::Permanent);
    server.expire_access_tokens();
    let before = server.stats();
    let (ok, errors) = herd(&server, &handle, &client, 2000..2100).await;
    let stats = server.stats();
    println!("  requests: 100, succeeded: {ok}");
    for (message, n) in &errors {
        println!("  failed: {n} × {message}");
    }
    println!(
        "  server: {} refresh attempt(s) for all of them, {} refresh-token reuse",
        stats.injected_failures - before.injected_failures,
        stats.reuse
    );

    println!("\n5. reqwest-middleware: 200 concurrent requests; tokens retired after 50 uses");
    let server = TokenServer::start(Knobs {
        uses_per_token: Some(50),
        ..Knobs::default()
    })
    .await
    .expect("bind 127.0.0.1");
    let handle = session(&server, &client).await;
    // The one line a reqwest user adds: `.with(Auth::new(handle))`.
    let reqwest = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(tokenflight::http::reqwest::Auth::new(handle))
        .build();
    let tasks: Vec<_> = (0..200)
        .map(|id| {
            let request = reqwest
                .get(server.url("/api/data"))
                .header(REQUEST_ID, id.to_string());
            tokio::spawn(request.send())
        })
        .collect();
    let (mut ok, mut errors) = (0, Vec::new());
    for task in tasks {
        match task.await.expect("no task panics") {
            Ok(response) if response.status() == StatusCode::OK => ok += 1,
            Ok(response) => count(&mut errors, format!("HTTP {}", response.status())),
            Err(e) => count(&mut errors, e.to_string()),
        }
    }
    report(200, ok, &errors, &server.stats());
}
