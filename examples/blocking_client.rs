//! Plain threads share one short-lived token through the blocking handle.
//!
//! A fake in-process server issues tokens that live 100 ms and answers 401
//! to an expired one. 32 threads each make 20 calls of 20 ms; the program prints how
//! many refreshes ran (about one per token lifetime, however many threads
//! saw the token expire) and how the calls ended.
//!
//! Run with `cargo run --example blocking_client`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokenflight::{blocking, Config, Fresh, RefreshError, Reply};

const TTL: Duration = Duration::from_millis(100);

struct Server {
    issued: Mutex<Vec<Instant>>,
    refreshes: AtomicU64,
    rejected: AtomicU64,
}

impl Server {
    #[allow(clippy::disallowed_methods)] // the fake server keeps real time
    fn refresh(&self) -> u64 {
        std::thread::sleep(Duration::from_millis(10)); // a network round trip
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let mut issued = self.issued.lock().unwrap();
        issued.push(Instant::now());
        issued.len() as u64
    }

    #[allow(clippy::disallowed_methods)]
    fn get(&self, token: u64) -> Result<String, u16> {
        std::thread::sleep(Duration::from_millis(20));
        let issued_at = self.issued.lock().unwrap()[token as usize - 1];
        if issued_at.elapsed() >= TTL {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return Err(401);
        }
        Ok(format!("hello from token {token}"))
    }
}

fn main() {
    let server = Arc::new(Server {
        issued: Mutex::new(Vec::new()),
        refreshes: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
    });
    let mut config = Config::default();
    // No expiry is told to the handle here: it learns from the 401s, and
    // still refreshes once per expiry.
    config.max_auth_retries = 2;
    let s = Arc::clone(&server);
    let handle = blocking::Handle::new(config, move |_| {
        Ok::<_, RefreshError<std::io::Error>>(Fresh::new(s.refresh()))
    })
    .expect("a valid configuration");

    let start = now();
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let (handle, server) = (handle.clone(), Arc::clone(&server));
            std::thread::spawn(move || {
                (0..20)
                    .filter(|_| {
                        let result = handle.call(|token: &u64| match server.get(*token) {
                            Err(401) => Reply::Rejected(Err(401)),
                            other => Reply::Done(other),
                        });
                        matches!(result, Ok(Ok(_)))
                    })
                    .count()
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    println!(
        "ran for:           {:?} (token TTL {TTL:?})",
        start.elapsed()
    );
    println!("calls answered:    {ok} of {}", 32 * 20);
    println!(
        "refreshes:         {}",
        server.refreshes.load(Ordering::SeqCst)
    );
    println!(
        "401s (retried):    {}",
        server.rejected.load(Ordering::SeqCst)
    );
}

#[allow(clippy::disallowed_methods)] // the example reports how long it ran
fn now() -> Instant {
    Instant::now()
}
