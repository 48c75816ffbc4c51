//! A refresh ahead of expiry: the token is due but still usable, so every
//! request goes out with it at once while the one call runs in the
//! background (S5b), and the next request after the answer gets the new
//! token.

use std::sync::Arc;
use std::time::Duration;

use tokenflight::core::Mutant;
use tokenflight::{Config, Fresh, Generation, Handle};

use crate::common::{build_on, caught, first_poll, model, token, Calls, Gate, Judge, Time};

fn requests_during_a_refresh_ahead(mutant: Option<Mutant>) {
    let time = Time::new();
    let calls = Calls::new();
    let gate = Gate::new(false);
    let mut config = Config::default();
    config.expiry_skew = Duration::from_secs(8);
    config.skew_jitter = Duration::ZERO;
    config.safety_margin = Duration::from_secs(1);
    let judge = Judge::new(&config);
    let builder = Handle::builder(calls.refresher(Some(Arc::clone(&gate)), |n| {
        Ok(Fresh::new(n + 2).expires_in(Duration::from_secs(60)))
    }))
    .config(config)
    .without_spawner();
    let handle = build_on(builder, &time, &judge, mutant);
    // Due at 5 s (half its life), usable until 9 s.
    handle.set_token(Fresh::new(1).expires_in(Duration::from_secs(10)));
    time.advance_to(Duration::from_secs(6));
    // The gate stays closed until both are answered: each must be ready on
    // its first poll (a request that waits is dropped, and counted).
    let requests: Vec<_> = (0..2)
        .map(|_| {
            let h = handle.clone();
            loom::thread::spawn(move || first_poll(h.ticket()).map(token))
        })
        .collect();
    for request in requests {
        let got = request.join().unwrap();
        assert_eq!(
            got,
            Some((1, Generation(1))),
            "a request waited for the refresh ahead"
        );
    }
    assert_eq!(calls.made(), 1, "the refresh ahead started once");
    gate.open();
    // The answer's wake sends the next request the slow way, to collect it.
    let (now, generation) = token(loom::future::block_on(handle.ticket()));
    assert_eq!((now, generation), (2, Generation(2)));
    assert_eq!(calls.made(), 1);
    assert!(calls.most_at_once() <= 1);
    judge.assert_clean();
}

#[test]
fn requests_during_a_refresh_ahead_go_out_at_once_with_the_current_token() {
    model(|| requests_during_a_refresh_ahead(None));
}

#[test]
fn loom_catches_requests_parked_while_the_token_is_usable() {
    let message = caught(|| requests_during_a_refresh_ahead(Some(Mutant::ParkWhileUsable)));
    assert!(
        message.contains("waited for the refresh ahead"),
        "failed for another reason: {message}"
    );
}
