//! Server-side sessions behind the login cookie.
//!
//! A session id is 256 random bits from the OS, sent to the browser once in
//! `Set-Cookie` and never stored: the store keeps its SHA-256 digest, so
//! looking one up leaks nothing useful through timing, and a dump of the
//! store holds no usable cookie. Every login makes a fresh id; a cookie sent
//! to `/login` is never reused (session fixation).
//!
//! Time is an argument (milliseconds since the UNIX epoch); the store never
//! reads a clock.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::{Credential, Principal};

/// The store's handle for one session (not the secret cookie value).
pub type SessionHandle = u64;

/// Bytes of randomness in a session id.
pub const SESSION_ID_BYTES: usize = 32;

/// One live session.
#[derive(Clone, Debug)]
struct Session {
    digest: [u8; 32],
    user: String,
    role: String,
    created: u64,
    last_seen: u64,
    /// Live WebSocket connections using this session keep it from idling out.
    live: usize,
}

/// Why a session lookup failed; both are a `401`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// No session has this id (never had, logged out, or swept).
    Unknown,
    /// The session passed its idle or absolute limit.
    Expired,
}

/// All live sessions, with their idle and absolute limits.
#[derive(Debug)]
pub struct SessionStore {
    by_digest: HashMap<[u8; 32], SessionHandle>,
    sessions: HashMap<SessionHandle, Session>,
    next: SessionHandle,
    ttl_ms: u64,
    idle_ms: u64,
    max_per_user: usize,
}

impl SessionStore {
    /// A store whose sessions live at most `ttl_ms`, expire after `idle_ms`
    /// without use, and of which one user holds at most `max_per_user`.
    pub fn new(ttl_ms: u64, idle_ms: u64, max_per_user: usize) -> Self {
        SessionStore {
            by_digest: HashMap::new(),
            sessions: HashMap::new(),
            next: 1,
            ttl_ms,
            idle_ms,
            max_per_user: max_per_user.max(1),
        }
    }

    /// Starts a session for `user` and returns the cookie value to send,
    /// its handle, and the handles of this user's sessions ended to stay
    /// within the per-user limit (oldest first).
    pub fn create(
        &mut self,
        user: &str,
        role: &str,
        now: u64,
    ) -> (String, SessionHandle, Vec<SessionHandle>) {
        let mut evicted = Vec::new();
        let mut mine: Vec<(u64, SessionHandle)> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user == user)
            .map(|(h, s)| (s.created, *h))
            .collect();
        if mine.len() >= self.max_per_user {
            mine.sort_unstable();
            for (_, h) in mine.iter().take(mine.len() + 1 - self.max_per_user) {
                self.remove(*h);
                evicted.push(*h);
            }
        }
        let mut raw = [0u8; SESSION_ID_BYTES];
        super::random_bytes(&mut raw);
        let id = URL_SAFE_NO_PAD.encode(raw);
        let digest = digest(id.as_bytes());
        let handle = self.next;
        self.next += 1;
        self.by_digest.insert(digest, handle);
        self.sessions.insert(
            handle,
            Session {
                digest,
                user: user.to_string(),
                role: role.to_string(),
                created: now,
                last_seen: now,
                live: 0,
            },
        );
        (id, handle, evicted)
    }

    /// Finds the session of a cookie value, refreshing its idle clock.
    pub fn lookup(&mut self, id: &[u8], now: u64) -> Result<Principal, SessionError> {
        let handle = *self
            .by_digest
            .get(&digest(id))
            .ok_or(SessionError::Unknown)?;
        if self.expired(handle, now) {
            return Err(SessionError::Expired);
        }
        let s = self
            .sessions
            .get_mut(&handle)
            .ok_or(SessionError::Unknown)?;
        s.last_seen = now;
        Ok(Principal::new(
            s.user.clone(),
            s.role.clone(),
            None,
            Credential::Session { handle },
        ))
    }

    /// True when the session exists and has not expired.
    pub fn is_live(&self, handle: SessionHandle, now: u64) -> bool {
        !self.expired(handle, now)
    }

    /// When the session ends at the latest (its absolute limit).
    pub fn expires_at(&self, handle: SessionHandle) -> Option<u64> {
        self.sessions
            .get(&handle)
            .map(|s| s.created.saturating_add(self.ttl_ms))
    }

    /// The handle of a cookie value's session, live or not (for logout).
    pub fn handle_of(&self, id: &[u8]) -> Option<SessionHandle> {
        self.by_digest.get(&digest(id)).copied()
    }

    /// Ends a session. True when it existed.
    pub fn remove(&mut self, handle: SessionHandle) -> bool {
        match self.sessions.remove(&handle) {
            Some(s) => {
                self.by_digest.remove(&s.digest);
                true
            }
            None => false,
        }
    }

    /// A WebSocket started (`+1`) or ended (`-1`) using this session.
    pub fn track_live(&mut self, handle: SessionHandle, opened: bool, now: u64) {
        if let Some(s) = self.sessions.get_mut(&handle) {
            if opened {
                s.live += 1;
            } else {
                s.live = s.live.saturating_sub(1);
            }
            s.last_seen = now;
        }
    }

    /// Removes every expired session and returns their handles.
    pub fn sweep(&mut self, now: u64) -> Vec<SessionHandle> {
        let dead: Vec<SessionHandle> = self
            .sessions
            .keys()
            .copied()
            .filter(|&h| self.expired(h, now))
            .collect();
        for &h in &dead {
            self.remove(h);
        }
        dead
    }

    /// The cookie's `Max-Age`, in seconds.
    pub fn max_age_secs(&self) -> u64 {
        self.ttl_ms / 1000
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn expired(&self, handle: SessionHandle, now: u64) -> bool {
        match self.sessions.get(&handle) {
            None => true,
            Some(s) => {
                now >= s.created.saturating_add(self.ttl_ms)
                    || (s.live == 0 && now >= s.last_seen.saturating_add(self.idle_ms))
            }
        }
    }
}

fn digest(id: &[u8]) -> [u8; 32] {
    Sha256::digest(id).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn store() -> SessionStore {
        SessionStore::new(60 * MIN, 10 * MIN, 2)
    }

    #[test]
    fn ids_are_fresh_and_long() {
        let mut s = store();
        let (a, ..) = s.create("alice", "member", 0);
        let (b, ..) = s.create("alice", "member", 0);
        assert_ne!(a, b);
        assert!(a.len() >= 43, "256 bits in base64url");
        assert_eq!(s.lookup(a.as_bytes(), 1).unwrap().user(), "alice");
        assert_eq!(s.lookup(b"nope", 1).unwrap_err(), SessionError::Unknown);
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let mut s = store();
        let (id, h, _) = s.create("alice", "member", 0);
        assert!(s.lookup(id.as_bytes(), 9 * MIN).is_ok());
        // Idle clock restarted at 9 minutes.
        assert!(s.lookup(id.as_bytes(), 18 * MIN).is_ok());
        assert_eq!(
            s.lookup(id.as_bytes(), 29 * MIN).unwrap_err(),
            SessionError::Expired
        );
        // A live connection keeps it from idling, not past the absolute limit.
        let (id, h2, _) = s.create("bob", "member", 0);
        s.track_live(h2, true, 0);
        assert!(s.lookup(id.as_bytes(), 59 * MIN).is_ok());
        assert_eq!(
            s.lookup(id.as_bytes(), 60 * MIN).unwrap_err(),
            SessionError::Expired
        );
        let mut swept = s.sweep(60 * MIN);
        swept.sort_unstable();
        assert_eq!(swept, vec![h, h2]);
        assert!(s.is_empty());
    }

    #[test]
    fn per_user_limit_evicts_the_oldest() {
        let mut s = store();
        let (first, h1, _) = s.create("alice", "member", 0);
        s.create("alice", "member", 1);
        let (_, _, evicted) = s.create("alice", "member", 2);
        assert_eq!(evicted, vec![h1]);
        assert_eq!(
            s.lookup(first.as_bytes(), 3).unwrap_err(),
            SessionError::Unknown
        );
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn remove_forgets_the_id() {
        let mut s = store();
        let (id, h, _) = s.create("alice", "member", 0);
        assert_eq!(s.handle_of(id.as_bytes()), Some(h));
        assert!(s.remove(h));
        assert!(!s.remove(h));
        assert_eq!(
            s.lookup(id.as_bytes(), 0).unwrap_err(),
            SessionError::Unknown
        );
    }
}
