//! The token server's own rules, over real HTTP: rotation, reuse revoking
//! the login, expiry by use, injected faults, rejecting every token.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokenserver::{Grant, Knobs, RefreshFault, TokenServer, REQUEST_ID};

struct Probe {
    server: TokenServer,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Probe {
    async fn start(knobs: Knobs) -> Self {
        Probe {
            server: TokenServer::start(knobs).await.unwrap(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> (StatusCode, serde_json::Value) {
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    async fn login(&self) -> Grant {
        let request = Request::post(self.server.url("/login"))
            .body(Full::from("{}"))
            .unwrap();
        serde_json::from_value(self.send(request).await.1).unwrap()
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, serde_json::Value) {
        let body = serde_json::json!({ "refresh_token": refresh_token }).to_string();
        let request = Request::post(self.server.url("/token"))
            .header("content-type", "application/json")
            .body(Full::from(body))
            .unwrap();
        self.send(request).await
    }

    async fn data(&self, id: &str, header: (&str, String)) -> (StatusCode, serde_json::Value) {
        let request = Request::get(self.server.url("/api/data"))
            .header(REQUEST_ID, id)
            .header(header.0, header.1)
            .body(Full::default())
            .unwrap();
        self.send(request).await
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_login() {
    let p = Probe::start(Knobs::default()).await;
    let first = p.login().await;
    assert_eq!(
        p.data("a", bearer(&first.access_token)).await.1["generation"],
        1
    );

    let (status, body) = p.refresh(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let second: Grant = serde_json::from_value(body).unwrap();
    assert_eq!(
        p.data("b", bearer(&second.access_token)).await.1["generation"],
        2
    );
    assert_eq!(
        p.server.stats().needless_refreshes,
        1,
        "the first token was still good"
    );

    // The old refresh token again: reuse. The whole login is revoked.
    let (status, body) = p.refresh(&first.refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        p.data("c", bearer(&second.access_token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        p.refresh(&second.refresh_token).await.0,
        StatusCode::BAD_REQUEST
    );
    let stats = p.server.stats();
    assert_eq!((stats.refreshes, stats.reuse), (1, 1));
}

#[tokio::test]
async fn a_reuse_within_the_grace_window_is_honoured_and_one_after_it_revokes() {
    let grace = std::time::Duration::from_millis(300);
    let p = Probe::start(Knobs {
        reuse_grace: grace,
        ..Knobs::default()
    })
    .await;
    let first = p.login().await;
    let (status, _) = p.refresh(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    // A client that lost that answer tries again at once: honoured.
    let (status, body) = p.refresh(&first.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let again: Grant = serde_json::from_value(body).unwrap();
    assert_eq!(
        p.data("a", bearer(&again.access_token)).await.0,
        StatusCode::OK
    );
    let stats = p.server.stats();
    assert_eq!(
        (stats.refreshes, stats.grace_reuses, stats.reuse),
        (2, 1, 0)
    );

    // After the window, the same reuse is theft: the login is revoked.
    tokio::time::sleep(grace + std::time::Duration::from_millis(50)).await;
    assert_eq!(
        p.refresh(&first.refresh_token).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        p.data("b", bearer(&again.access_token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(p.server.stats().reuse, 1);
}

#[tokio::test]
async fn tokens_retire_after_their_uses_and_calls_are_counted_per_id() {
    let p = Probe::start(Knobs {
        uses_per_token: Some(2),
        ..Knobs::default()
    })
    .await;
    let grant = p.login().await;
    for _ in 0..2 {
        assert_eq!(
            p.data("x", bearer(&grant.access_token)).await.0,
            StatusCode::OK
        );
    }
    let cookie = (
        "cookie",
        format!("lang=en; JSESSIONID={}", grant.access_token),
    );
    assert_eq!(p.data("x", cookie).await.0, StatusCode::UNAUTHORIZED);
    let stats = p.server.stats();
    assert_eq!((stats.ids["x"].calls, stats.ids["x"].successes), (3, 2));
    assert_eq!(stats.duplicated(), vec!["x".to_string()]);

    // A refresh of a used-up token is what an expiry asks for.
    assert_eq!(p.refresh(&grant.refresh_token).await.0, StatusCode::OK);
    assert_eq!(p.server.stats().needless_refreshes, 0);
}

#[tokio::test]
async fn faults_are_injected_without_using_up_the_refresh_token() {
    let p = Probe::start(Knobs::default()).await;
    let grant = p.login().await;
    p.server.set_refresh_fault(RefreshFault::Transient(1));
    assert_eq!(
        p.refresh(&grant.refresh_token).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(p.refresh(&grant.refresh_token).await.0, StatusCode::OK);
    p.server.set_refresh_fault(RefreshFault::Permanent);
    assert_eq!(p.refresh("anything").await.0, StatusCode::BAD_REQUEST);
    let stats = p.server.stats();
    assert_eq!((stats.injected_failures, stats.reuse), (2, 0));
}

#[tokio::test]
async fn reject_all_and_expire_turn_good_tokens_away() {
    let p = Probe::start(Knobs::default()).await;
    let grant = p.login().await;
    p.server.set_reject_all(true);
    assert_eq!(
        p.data("r", bearer(&grant.access_token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    p.server.set_reject_all(false);
    assert_eq!(
        p.data("r", bearer(&grant.access_token)).await.0,
        StatusCode::OK
    );
    p.server.expire_access_tokens();
    assert_eq!(
        p.data("r", bearer(&grant.access_token)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(p.server.stats().rejected, 2);
}
