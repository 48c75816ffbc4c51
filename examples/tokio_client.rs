//! Many tokio tasks share one short-lived token through the async handle.
//!
//! A fake in-process server issues tokens that live 200 ms and answers 401
//! to an expired one. 2 000 tasks each make five calls spread over about a
//! second; the program prints how many refreshes ran (one per expiry, not
//! one per task) and how the calls ended.
//!
//! Run with `cargo run --example tokio_client --features tokio`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenflight::{Config, Fresh, Handle, RefreshError, Reply, TokioSleep};
use tokio::time::Instant;

const TTL: Duration = Duration::from_millis(200);

/// Issues numbered tokens that expire `TTL` after issue.
struct Server {
    issued: Mutex<Vec<Instant>>,
    refreshes: AtomicU64,
    rejected: AtomicU64,
}

impl Server {
    async fn refresh(&self) -> (u64, Duration) {
        tokio::time::sleep(Duration::from_millis(20)).await; // a network round trip
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let mut issued = self.issued.lock().unwrap();
        issued.push(Instant::now());
        (issued.len() as u64, TTL)
    }

    async fn get(&self, token: u64) -> Result<String, u16> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let issued_at = self.issued.lock().unwrap()[token as usize - 1];
        if issued_at.elapsed() >= TTL {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return Err(401);
        }
        Ok(format!("hello from token {token}"))
    }
}

#[tokio::main]
async fn main() {
    let server = Arc::new(Server {
        issued: Mutex::new(Vec::new()),
        refreshes: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let mut config = Config::default();
    // Refresh 50 ms ahead of expiry, so most requests never see a 401.
    config.expiry_skew = Duration::from_millis(50);
    config.skew_jitter = Duration::from_millis(10);
    // Tokens here live 200 ms: the default 5 s safety margin would count
    // every one as expired on arrival.
    config.safety_margin = Duration::from_millis(10);
    let s = Arc::clone(&server);
    let handle = Handle::builder(move |_| {
        let s = Arc::clone(&s);
        async move {
            let (token, expires_in) = s.refresh().await;
            Ok::<_, RefreshError<std::io::Error>>(Fresh::new(token).expires_in(expires_in))
        }
    })
    .config(config)
    .sleep(TokioSleep)
    .build()
    .expect("a valid configuration");

    let start = Instant::now();
    let tasks: Vec<_> = (0..2_000u64)
        .map(|i| {
            let (handle, server) = (handle.clone(), Arc::clone(&server));
            tokio::spawn(async move {
                let mut ok = 0;
                for round in 0..5 {
                    tokio::time::sleep(Duration::from_millis((i % 50) * 4 + round * 150)).await;
                    let result = handle
                        .call(|token: &u64| {
                            let (server, token) = (Arc::clone(&server), *token);
                            async move {
                                match server.get(token).await {
                                    Err(401) => Reply::Rejected(Err(401)),
                                    other => Reply::Done(other),
                                }
                            }
                        })
                        .await;
                    if matches!(result, Ok(Ok(_))) {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        ok += task.await.expect("no task panics");
    }
    println!(
        "ran for:           {:?} (token TTL {TTL:?})",
        start.elapsed()
    );
    println!("calls answered:    {ok} of {}", 2_000 * 5);
    println!(
        "refreshes:         {}",
        server.refreshes.load(Ordering::SeqCst)
    );
    println!(
        "401s (retried):    {}",
        server.rejected.load(Ordering::SeqCst)
    );
}
