//! Single-use tickets from `POST /ws-ticket`, so that a browser never puts
//! a long-lived credential in a URL: `/ws?ticket=T` opens a WebSocket as the
//! user who asked for the ticket, once, within 30 s.
//!
//! Like session ids, tickets are 256 random bits stored only as their
//! SHA-256 digest.

use std::collections::HashMap;

use rand::rngs::StdRng;
use std::time::Duration;

use super::time::Time;
use crate::auth::Principal;
use crate::auth::secret_id::{IdDigest, digest_of, new_secret_id};

/// A ticket's lifetime (PROTOCOL §1).
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Unused tickets one user may hold at once.
pub const MAX_TICKETS_PER_USER: usize = 32;

/// Why no ticket was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketRefusal {
    /// The store is full (`503`).
    Full,
    /// This user holds [`MAX_TICKETS_PER_USER`] unused tickets (`429`).
    TooManyForUser,
}

/// Unused tickets.
#[derive(Debug)]
pub struct Tickets {
    /// Where tickets come from (seeded by the server).
    rng: StdRng,
    map: HashMap<IdDigest, (Principal, Time)>,
    per_user: HashMap<String, usize>,
    max: usize,
}

impl Tickets {
    /// At most `max` unused tickets at once, drawn from `rng`.
    pub fn new(max: usize, rng: StdRng) -> Tickets {
        Tickets {
            rng,
            map: HashMap::new(),
            per_user: HashMap::new(),
            max,
        }
    }

    /// A new ticket for `principal`.
    pub fn issue(&mut self, principal: Principal, now: Time) -> Result<String, TicketRefusal> {
        if self.map.len() >= self.max
            || self
                .per_user
                .get(principal.user())
                .is_some_and(|n| *n >= MAX_TICKETS_PER_USER)
        {
            self.sweep(now);
        }
        if self.map.len() >= self.max {
            return Err(TicketRefusal::Full);
        }
        let mine = self
            .per_user
            .entry(principal.user().to_string())
            .or_insert(0);
        if *mine >= MAX_TICKETS_PER_USER {
            return Err(TicketRefusal::TooManyForUser);
        }
        *mine += 1;
        let (ticket, digest) = new_secret_id(&mut self.rng);
        self.map.insert(digest, (principal, now + TICKET_TTL));
        Ok(ticket)
    }

    /// Uses up a ticket: its principal, if it exists and has not expired.
    pub fn redeem(&mut self, ticket: &str, now: Time) -> Option<Principal> {
        let digest = digest_of(ticket.as_bytes());
        let (principal, expires) = self.map.remove(&digest)?;
        self.release(principal.user());
        (now < expires).then_some(principal)
    }

    /// Forgets expired tickets.
    pub fn sweep(&mut self, now: Time) {
        let mut gone = Vec::new();
        self.map.retain(|_, (principal, expires)| {
            let keep = now < *expires;
            if !keep {
                gone.push(principal.user().to_string());
            }
            keep
        });
        for user in gone {
            self.release(&user);
        }
    }

    fn release(&mut self, user: &str) {
        if let Some(n) = self.per_user.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(user);
            }
        }
    }
}
