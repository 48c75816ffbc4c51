//! What a request holds while it is sent ([`Ticket`]) and what it reports
//! back ([`Reply`]).

use std::fmt;

use super::board::Published;
use crate::sync::SnapshotGuard;
use crate::{Generation, Lease};

/// What the request closure of `call` reports back: the server's answer,
/// and whether it rejected the token.
///
/// Both carry the answer, so that a request whose every send was rejected
/// ends with the server's last word, as tower's retry hands back its last
/// response: `call` returns the last [`Rejected`](Reply::Rejected) answer
/// (a `401` with its `WWW-Authenticate`, say) as `Ok`. A caller that must
/// tell the two apart picks an `R` that does, such as
/// `Result<Body, Response>`.
///
/// # Examples
///
/// ```
/// use tokenflight::Reply;
///
/// /// What a caller keeps of a server's answer: the body, or the challenge
/// /// of a refusal.
/// fn classify(status: u16, body: String, challenge: &str) -> Reply<Result<String, String>> {
///     if status == 401 {
///         Reply::Rejected(Err(challenge.to_string()))
///     } else {
///         Reply::Done(Ok(body))
///     }
/// }
/// let reply = classify(401, String::new(), r#"Bearer error="invalid_token""#);
/// assert_eq!(reply, Reply::Rejected(Err(r#"Bearer error="invalid_token""#.to_string())));
/// assert_eq!(reply.into_inner(), Err(r#"Bearer error="invalid_token""#.to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply<R> {
    /// The server answered (anything but an auth rejection): this is the
    /// call's result.
    Done(R),
    /// The server rejected the token as expired or invalid, with this
    /// answer: the handle refreshes (once, however many requests say so)
    /// and sends again; when the request's sends are spent, this answer is
    /// the call's result.
    Rejected(R),
}

impl<R> Reply<R> {
    /// The answer, whichever it was.
    pub fn into_inner(self) -> R {
        match self {
            Reply::Done(r) | Reply::Rejected(r) => r,
        }
    }
}

/// The token a request is to be sent with, and what the handle needs to
/// know if the server rejects it.
///
/// A ticket from the fast path holds the published snapshot without
/// touching any shared reference count; keep it only while the request is
/// in flight.
///
/// # Examples
///
/// ```
/// use tokenflight::{Config, Fresh, Generation, blocking};
///
/// let handle = blocking::Handle::new(Config::default(), |_| {
///     Ok::<_, tokenflight::RefreshError<()>>(Fresh::new("tok".to_string()))
/// })
/// .unwrap();
/// let ticket = handle.ticket().unwrap();
/// assert_eq!(ticket.token(), "tok");
/// assert_eq!(ticket.generation(), Generation(1));
/// assert_eq!(ticket.send(), 1);
/// ```
pub struct Ticket<T> {
    kind: TicketKind<T>,
    /// The request, for an observed handle's history: reported completed
    /// when the ticket goes, unless it goes back as a rejection.
    #[cfg(feature = "observe")]
    seen: Option<super::observe::Seen>,
}

enum TicketKind<T> {
    /// From the fast path: always holds a snapshot.
    Fast(SnapshotGuard<Published<T>>),
    /// From the core.
    Core(Lease<T>),
}

impl<T> Ticket<T> {
    #[inline]
    pub(crate) fn fast(guard: SnapshotGuard<Published<T>>) -> Self {
        debug_assert!(guard.snapshot.is_some());
        Ticket::of(TicketKind::Fast(guard))
    }

    pub(crate) fn core(lease: Lease<T>) -> Self {
        Ticket::of(TicketKind::Core(lease))
    }

    #[inline]
    fn of(kind: TicketKind<T>) -> Self {
        Ticket {
            kind,
            #[cfg(feature = "observe")]
            seen: None,
        }
    }

    /// The same ticket, reporting its request's end to an observer.
    #[cfg(feature = "observe")]
    pub(crate) fn seen(mut self, seen: super::observe::Seen) -> Self {
        self.seen = Some(seen);
        self
    }

    /// The ticket's request, taken back for a rejection: the ticket no
    /// longer reports it completed.
    #[cfg(feature = "observe")]
    pub(crate) fn take_seen(&mut self) -> Option<crate::RequestId> {
        self.seen.take().map(super::observe::Seen::into_id)
    }

    /// The lease as the core issued it.
    pub fn lease(&self) -> &Lease<T> {
        match &self.kind {
            TicketKind::Fast(guard) => match &guard.snapshot {
                Some(snapshot) => &snapshot.lease,
                None => unreachable!("a fast ticket is only made from a present snapshot"),
            },
            TicketKind::Core(lease) => lease,
        }
    }

    /// The token to put on the request.
    pub fn token(&self) -> &T {
        self.lease().token()
    }

    /// Which generation the token is.
    pub fn generation(&self) -> Generation {
        self.lease().generation()
    }

    /// Which send of its request this is: 1 for the first, 2 for the first
    /// retry, and so on.
    pub fn send(&self) -> u32 {
        self.lease().send()
    }
}

impl<T> fmt::Debug for Ticket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("token", &"<redacted>")
            .field("generation", &self.generation().0)
            .field("send", &self.send())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::Ticket;
    use crate::HandleError;

    /// The fast path returns an `Option<Ticket>` and `ticket()` a `Result`:
    /// each as large as the lease, so that no tag word is written and
    /// matched beside the ticket on every call. An observed build's ticket
    /// also carries its request's report, so only there is it larger than
    /// the lease.
    #[test]
    fn a_ticket_and_the_option_and_result_around_it_are_each_as_large_as_a_lease() {
        let ticket = size_of::<Ticket<String>>();
        assert_eq!(size_of::<Option<Ticket<String>>>(), ticket);
        assert_eq!(size_of::<Result<Ticket<String>, HandleError<()>>>(), ticket);
        #[cfg(not(feature = "observe"))]
        assert_eq!(ticket, size_of::<crate::Lease<String>>());
    }
}
