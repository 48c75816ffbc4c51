//! The blocking handle: its condition variable, its refresher thread and
//! the callers' threads, with two rejections of one generation racing the
//! refresh's answer.

use std::sync::Arc;

use loom::sync::{Condvar, Mutex};
use tokenflight::core::Mutant;
use tokenflight::{blocking, Config, Fresh, Generation, RefreshError};

use crate::common::{caught, model, Calls, Judge, Time};

/// A gate for a refresher that blocks.
#[derive(Default)]
struct Latch {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Latch {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

fn two_rejections_on_the_blocking_handle(mutant: Option<Mutant>) {
    let time = Time::new();
    let calls = Calls::new();
    let latch = Arc::new(Latch::default());
    let config = Config::default();
    let judge = Judge::new(&config);
    let (c, l) = (calls.clone(), Arc::clone(&latch));
    let mut builder = blocking::Handle::builder(move |_| {
        let (n, _out) = c.start();
        l.wait();
        Ok::<_, RefreshError<&'static str>>(Fresh::new(n + 2))
    })
    .config(config)
    .clock(time.clock())
    .observe(judge.observer());
    if let Some(mutant) = mutant {
        builder = builder.core_mutant(mutant);
    }
    let handle = builder.build().unwrap();
    handle.set_token(Fresh::new(1));
    let tickets: Vec<_> = (0..2).map(|_| handle.try_ticket().unwrap()).collect();
    let requests: Vec<_> = tickets
        .into_iter()
        .map(|ticket| {
            let h = handle.clone();
            loom::thread::spawn(move || {
                let t = h.reject(ticket).expect("a token");
                (*t.token(), t.generation())
            })
        })
        .collect();
    latch.open();
    for request in requests {
        assert_eq!(request.join().unwrap(), (2, Generation(2)));
    }
    assert_eq!(calls.made(), 1, "one call");
    assert!(calls.most_at_once() <= 1);
    // The refresher's thread ends with the handle.
    drop(handle);
    judge.assert_clean();
}

#[test]
fn two_rejections_on_the_blocking_handle_refresh_once() {
    model(|| two_rejections_on_the_blocking_handle(None));
}

#[test]
fn loom_catches_a_refresh_beside_the_one_in_flight_on_the_blocking_handle() {
    let message =
        caught(|| two_rejections_on_the_blocking_handle(Some(Mutant::RefreshBesideInFlight)));
    assert!(
        message.contains("one call") || message.contains("Generation"),
        "failed for another reason: {message}"
    );
}
