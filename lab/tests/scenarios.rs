//! The real async handle in the lab, in scenarios written out by hand: each
//! is judged by the handle's own history (`Monitor`) and by the scripted
//! endpoint's books, which count the calls outstanding themselves.

use std::time::Duration;

use tokenflight::check::Event;
use tokenflight::{Fresh, RefreshError};
use tokenflight_lab::{Drive, Lifetime, Op, Setup};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn clean(drive: &mut Drive) {
    drive.check().unwrap();
    drive.heal().unwrap();
}

/// Without a spawner, the caller whose polling lets a queued attempt start
/// (a late answer ended the call it waited behind) makes that call itself,
/// at once; left for the next caller, it was made after a login had
/// already superseded it, for a token that was good.
#[test]
fn a_call_a_late_answer_lets_go_is_made_at_once_not_after_a_login() {
    let mut drive = Drive::new(&Setup::small(false));
    drive
        .step(Op::SetToken {
            lifetime: Lifetime::Long,
        })
        .unwrap();
    // A rejection: call 1 goes out.
    drive.step(Op::Call { rejections: 1 }).unwrap();
    assert_eq!(drive.script().made(), 1);
    // A login supersedes it; the call is still outstanding.
    drive
        .step(Op::SetToken {
            lifetime: Lifetime::Forever,
        })
        .unwrap();
    let late = drive.script().pending()[0].id;
    drive
        .script()
        .answer(late, Ok(Fresh::new(100).expires_in(ms(5_000))));
    drive.lab().run();
    // The token goes bad: the next attempt waits behind call 1, whose
    // answer the invalidating caller polls, which lets attempt 2 go.
    drive.step(Op::Invalidate).unwrap();
    assert_eq!(
        drive.script().made(),
        2,
        "made by the caller that let it go"
    );
    drive
        .step(Op::SetToken {
            lifetime: Lifetime::Long,
        })
        .unwrap();
    assert_eq!(drive.script().made(), 2);
    clean(&mut drive);
}

/// A call that outlives its timeout stays outstanding (the next attempt
/// waits for it); its late answer, for the current token, is adopted.
#[test]
fn a_late_answer_for_the_current_token_is_adopted_and_no_second_call_overlaps() {
    for spawner in [false, true] {
        let mut drive = Drive::new(&Setup::small(spawner));
        drive.step(Op::Ticket).unwrap();
        drive.step(Op::Advance { ms: 150 }).unwrap();
        assert_eq!(
            drive.script().made(),
            1,
            "the next attempt waits for the call"
        );
        let call = drive.script().pending()[0].id;
        drive.script().answer(call, Ok(Fresh::new(1)));
        drive.lab().run();
        drive.check().unwrap();
        assert_eq!(drive.handle().status().generation.0, 1, "adopted");
        assert_eq!(drive.script().max_live(), 1);
        clean(&mut drive);
    }
}

/// A call that never answers is given up for good at the hard limit: its
/// future is dropped (the endpoint's books and the history both say so)
/// and only then does the next call go out.
#[test]
fn a_call_that_never_answers_is_dropped_at_the_hard_limit_before_the_next() {
    for spawner in [false, true] {
        let mut drive = Drive::new(&Setup::small(spawner));
        drive.step(Op::Call { rejections: 0 }).unwrap();
        drive.step(Op::Advance { ms: 249 }).unwrap();
        assert_eq!((drive.script().made(), drive.script().dropped()), (1, 0));
        drive.step(Op::Advance { ms: 1 }).unwrap();
        assert_eq!(drive.script().dropped(), 1, "dropped at 250 ms");
        let events = drive.history().events();
        let dropped = events
            .iter()
            .position(|(_, e)| matches!(e, Event::RefreshDropped { .. }))
            .expect("reported dropped");
        assert!(events[..dropped]
            .iter()
            .all(|(_, e)| !matches!(e, Event::RefreshStarted { attempt } if attempt.0 > 1)));
        drive.step(Op::Call { rejections: 0 }).unwrap();
        assert_eq!(drive.script().max_live(), 1);
        clean(&mut drive);
    }
}

/// A failing refresh ahead of expiry fails no request while the token is
/// good (S5b): requests keep going with it.
#[test]
fn a_failing_refresh_ahead_holds_no_request() {
    for spawner in [false, true] {
        let mut drive = Drive::new(&Setup::small(spawner));
        drive
            .step(Op::SetToken {
                lifetime: Lifetime::Short,
            })
            .unwrap();
        // 150 ms token, refreshed 40-50 ms ahead: due by 110 ms.
        drive.step(Op::Advance { ms: 110 }).unwrap();
        drive.step(Op::Ticket).unwrap();
        for _ in 0..3 {
            if let Some(call) = drive.script().pending().first().map(|c| c.id) {
                drive
                    .script()
                    .answer(call, Err(RefreshError::Transient("unavailable")));
            }
            drive.step(Op::Call { rejections: 0 }).unwrap();
            drive.step(Op::Advance { ms: 5 }).unwrap();
        }
        let waited = drive
            .history()
            .events()
            .iter()
            .filter(|(_, e)| matches!(e, Event::Waiting { .. }))
            .count();
        assert_eq!(waited, 0, "nobody waited while the token was good");
        clean(&mut drive);
    }
}
