//! Single-use tickets from `POST /ws-ticket`, so that a browser never puts
//! a long-lived credential in a URL: `/ws?ticket=T` opens a WebSocket as the
//! user who asked for the ticket, once, within 30 s.
//!
//! Like session ids, tickets are 256 random bits stored only as their
//! SHA-256 digest.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::auth::{Principal, random_bytes};

/// A ticket's lifetime (PROTOCOL §1).
pub const TICKET_TTL_MS: u64 = 30_000;

/// Unused tickets.
#[derive(Debug)]
pub struct Tickets {
    map: HashMap<[u8; 32], (Principal, u64)>,
    max: usize,
}

impl Tickets {
    /// At most `max` unused tickets at once.
    pub fn new(max: usize) -> Tickets {
        Tickets {
            map: HashMap::new(),
            max,
        }
    }

    /// A new ticket for `principal`, or `None` when the store is full.
    pub fn issue(&mut self, principal: Principal, now: u64) -> Option<String> {
        if self.map.len() >= self.max {
            self.sweep(now);
            if self.map.len() >= self.max {
                return None;
            }
        }
        let mut raw = [0u8; 32];
        random_bytes(&mut raw);
        let ticket = URL_SAFE_NO_PAD.encode(raw);
        self.map.insert(
            Sha256::digest(ticket.as_bytes()).into(),
            (principal, now + TICKET_TTL_MS),
        );
        Some(ticket)
    }

    /// Uses up a ticket: its principal, if it exists and has not expired.
    pub fn redeem(&mut self, ticket: &str, now: u64) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(ticket.as_bytes()).into();
        match self.map.remove(&digest) {
            Some((principal, expires)) if now < expires => Some(principal),
            _ => None,
        }
    }

    /// Forgets expired tickets.
    pub fn sweep(&mut self, now: u64) {
        self.map.retain(|_, (_, expires)| now < *expires);
    }
}
