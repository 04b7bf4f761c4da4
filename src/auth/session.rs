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

use std::collections::{HashMap, VecDeque};

use rand::rngs::StdRng;

use super::secret_id::{IdDigest, digest_of, new_secret_id};

use super::{Credential, Principal};

/// The store's handle for one session (not the secret cookie value).
pub type SessionHandle = u64;

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
#[non_exhaustive]
pub enum SessionError {
    /// No session has this id (never had, logged out, or swept).
    Unknown,
    /// The session passed its idle or absolute limit.
    Expired,
}

/// All live sessions, with their idle and absolute limits.
///
/// `by_user` indexes `sessions` by user so that a login costs O(1) (at most
/// `max_per_user` evictions) however many sessions other users hold. Each
/// list is in ascending handle order, which is creation order because
/// handles only grow, so its front is the user's oldest session. Invariant
/// (see `check_index` in the tests): every session's handle is in its
/// user's list exactly once, every listed handle is a session of that user,
/// and no list is empty.
#[derive(Debug)]
pub struct SessionStore {
    /// Where session ids come from.
    rng: StdRng,
    by_digest: HashMap<IdDigest, SessionHandle>,
    sessions: HashMap<SessionHandle, Session>,
    by_user: HashMap<Box<str>, VecDeque<SessionHandle>>,
    next: SessionHandle,
    ttl_ms: u64,
    idle_ms: u64,
    max_per_user: usize,
    /// Sessions `create` looked at to decide its evictions (work counter
    /// for the complexity test).
    #[cfg(test)]
    examined: usize,
}

impl SessionStore {
    /// A store whose sessions live at most `ttl_ms`, expire after `idle_ms`
    /// without use, and of which one user holds at most `max_per_user`.
    /// Session ids come from `rng` (the server passes one derived from its
    /// own: the same seed, the same ids).
    pub fn new(ttl_ms: u64, idle_ms: u64, max_per_user: usize, rng: StdRng) -> Self {
        SessionStore {
            rng,
            by_digest: HashMap::new(),
            sessions: HashMap::new(),
            by_user: HashMap::new(),
            next: 1,
            ttl_ms,
            idle_ms,
            max_per_user: max_per_user.max(1),
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Starts a session for `user` and returns the cookie value to send,
    /// its handle, and the handles of this user's sessions ended to stay
    /// within the per-user limit (oldest first).
    ///
    /// "Oldest" is creation order (handle order), so a caller whose `now`
    /// went backwards still evicts the session created first.
    ///
    /// Cost: O(1) map operations plus one per evicted session, independent
    /// of how many sessions other users hold.
    pub fn create(
        &mut self,
        user: &str,
        role: &str,
        now: u64,
    ) -> (String, SessionHandle, Vec<SessionHandle>) {
        let handle = self.next;
        self.next += 1;
        let mut evicted = Vec::new();
        match self.by_user.get_mut(user) {
            Some(mine) => {
                while mine.len() >= self.max_per_user {
                    #[cfg(test)]
                    {
                        self.examined += 1;
                    }
                    let Some(old) = mine.pop_front() else { break };
                    if let Some(s) = self.sessions.remove(&old) {
                        self.by_digest.remove(&s.digest);
                    }
                    evicted.push(old);
                }
                // Not empty afterwards even when the limit is 1: the new
                // handle goes in before anyone can look.
                mine.push_back(handle);
            }
            None => {
                self.by_user.insert(user.into(), VecDeque::from([handle]));
            }
        }
        let (id, digest) = new_secret_id(&mut self.rng);
        self.insert(handle, digest, user, role, now, now);
        (id, handle, evicted)
    }

    /// A fresh session id and its digest, for a session another store
    /// keeps (Redis, with `--redis`): nothing is stored here.
    pub fn new_id(&mut self) -> (String, IdDigest) {
        new_secret_id(&mut self.rng)
    }

    /// Holds here a session that Redis holds (with `--redis`), so that
    /// WebSockets can be tied to it: its handle, the one it already has
    /// here if any. Such a copy is not counted against the per-user limit
    /// (Redis keeps that) and, like any session, idles out here when no
    /// WebSocket uses it; only its absolute limit can end it while one
    /// does.
    pub fn adopt(
        &mut self,
        digest: IdDigest,
        user: &str,
        role: &str,
        created: u64,
        now: u64,
    ) -> SessionHandle {
        if let Some(&handle) = self.by_digest.get(&digest) {
            if let Some(s) = self.sessions.get_mut(&handle) {
                s.last_seen = now;
            }
            return handle;
        }
        let handle = self.next;
        self.next += 1;
        self.by_user
            .entry(user.into())
            .or_default()
            .push_back(handle);
        self.insert(handle, digest, user, role, created, now);
        handle
    }

    /// Holds session `handle` (already listed under its user).
    fn insert(
        &mut self,
        handle: SessionHandle,
        digest: IdDigest,
        user: &str,
        role: &str,
        created: u64,
        now: u64,
    ) {
        self.by_digest.insert(digest, handle);
        let session = Session {
            digest,
            user: user.to_string(),
            role: role.to_string(),
            created,
            last_seen: now,
            live: 0,
        };
        self.sessions.insert(handle, session);
    }

    /// The handle of the session with this digest, if held here.
    pub fn handle_of_digest(&self, digest: &IdDigest) -> Option<SessionHandle> {
        self.by_digest.get(digest).copied()
    }

    /// The digests of the sessions that WebSockets here use, in handle
    /// order.
    pub fn in_use(&self) -> Vec<IdDigest> {
        let mut live: Vec<(SessionHandle, IdDigest)> = (self.sessions.iter())
            .filter(|(_, s)| s.live > 0)
            .map(|(&h, s)| (h, s.digest))
            .collect();
        live.sort_unstable();
        live.into_iter().map(|(_, d)| d).collect()
    }

    /// Finds the session of a cookie value, refreshing its idle clock.
    pub fn lookup(&mut self, id: &[u8], now: u64) -> Result<Principal, SessionError> {
        let handle = *self
            .by_digest
            .get(&digest_of(id))
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
        self.by_digest.get(&digest_of(id)).copied()
    }

    /// Ends a session. True when it existed.
    ///
    /// Cost: O(log k + k) in the user's own session count k (at most
    /// `max_per_user`).
    pub fn remove(&mut self, handle: SessionHandle) -> bool {
        let Some(s) = self.sessions.remove(&handle) else {
            return false;
        };
        self.by_digest.remove(&s.digest);
        if let Some(mine) = self.by_user.get_mut(s.user.as_str()) {
            if let Ok(i) = mine.binary_search(&handle) {
                mine.remove(i);
            }
            if mine.is_empty() {
                self.by_user.remove(s.user.as_str());
            }
        }
        true
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
    ///
    /// Cost: O(sessions), since any session may have expired; it runs on a
    /// timer, not per request. Goes through `remove`, so the per-user index
    /// stays exact.
    pub fn sweep(&mut self, now: u64) -> Vec<SessionHandle> {
        let mut dead: Vec<SessionHandle> = self
            .sessions
            .keys()
            .copied()
            .filter(|&h| self.expired(h, now))
            .collect();
        // why: in creation order, not the map's: a seeded run replays
        // exactly (the sockets of each are closed in this order).
        dead.sort_unstable();
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

    #[cfg(test)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const MIN: u64 = 60_000;

    fn store() -> SessionStore {
        SessionStore::new(60 * MIN, 10 * MIN, 2, StdRng::seed_from_u64(7))
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

    impl SessionStore {
        /// Panics unless `by_user` indexes `sessions` exactly: each list is
        /// non-empty, strictly ascending, within the limit and names only
        /// that user's sessions, and together the lists hold every session
        /// once. Also checks `by_digest` against `sessions`.
        fn check_index(&self) {
            let mut indexed = 0;
            for (user, mine) in &self.by_user {
                assert!(!mine.is_empty(), "empty list left for {user}");
                assert!(mine.len() <= self.max_per_user, "{user} over the limit");
                assert!(
                    mine.iter().zip(mine.iter().skip(1)).all(|(a, b)| a < b),
                    "{user}'s list is not in handle order: {mine:?}"
                );
                for h in mine {
                    let s = self.sessions.get(h).expect("indexed handle is a session");
                    assert_eq!(&*s.user, &**user, "handle {h} under the wrong user");
                }
                indexed += mine.len();
            }
            // Lists hold distinct handles (strictly ascending, one user
            // each), so equal counts mean every session is listed once.
            assert_eq!(
                indexed,
                self.sessions.len(),
                "sessions missing from the index"
            );
            assert_eq!(self.by_digest.len(), self.sessions.len());
            for (d, h) in &self.by_digest {
                assert_eq!(&self.sessions[h].digest, d);
            }
        }
    }

    #[test]
    fn create_work_is_bounded_by_the_per_user_limit() {
        let mut s = SessionStore::new(60 * MIN, 10 * MIN, 3, StdRng::seed_from_u64(7));
        for i in 0..10_000 {
            s.create(&format!("user{i}"), "member", 0);
        }
        // A new user: nothing of anyone else's is looked at.
        s.examined = 0;
        s.create("newcomer", "member", 1);
        assert!(s.examined <= 3, "examined {}", s.examined);
        // A user at the limit: only that user's sessions.
        for t in 2..5 {
            s.create("newcomer", "member", t);
        }
        s.examined = 0;
        let (_, _, evicted) = s.create("newcomer", "member", 5);
        assert!(s.examined <= 3, "examined {}", s.examined);
        assert_eq!(evicted.len(), 1);
        s.check_index();
    }

    #[test]
    fn eviction_follows_creation_order() {
        let mut s = SessionStore::new(60 * MIN, 10 * MIN, 1, StdRng::seed_from_u64(7));
        let (_, a, _) = s.create("alice", "member", 5);
        // `now` went backwards: the first-created session is still the
        // one evicted.
        let (_, b, evicted) = s.create("alice", "member", 3);
        assert_eq!(evicted, vec![a]);
        let (_, _, evicted) = s.create("alice", "member", 4);
        assert_eq!(evicted, vec![b]);
        assert_eq!(s.len(), 1);
        s.check_index();
    }

    #[test]
    fn index_stays_exact_through_creates_removes_evictions_and_sweeps() {
        const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "eve"];
        let mut s = SessionStore::new(60 * MIN, 10 * MIN, 3, StdRng::seed_from_u64(7));
        // The model: live handles and their users, oldest first.
        let mut model: Vec<(SessionHandle, &str)> = Vec::new();
        let mut ids: HashMap<SessionHandle, String> = HashMap::new();
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            // xorshift64: deterministic, no dependency.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut now = 0;
        let (mut evictions, mut removals, mut swept_total) = (0, 0, 0);
        for _ in 0..5_000 {
            now += next() % (MIN / 2);
            let r = next();
            match r % 10 {
                0..=4 => {
                    let user = USERS[(r / 10) as usize % USERS.len()];
                    let mine: Vec<SessionHandle> = model
                        .iter()
                        .filter(|(_, u)| *u == user)
                        .map(|(h, _)| *h)
                        .collect();
                    let expect: Vec<SessionHandle> = mine
                        .iter()
                        .take((mine.len() + 1).saturating_sub(3))
                        .copied()
                        .collect();
                    let (id, h, evicted) = s.create(user, "member", now);
                    assert_eq!(evicted, expect, "evicts {user}'s oldest first");
                    evictions += evicted.len();
                    model.retain(|(m, _)| !evicted.contains(m));
                    model.push((h, user));
                    ids.insert(h, id);
                }
                5 | 6 => {
                    // Log out a live session, or a handle that is gone.
                    let h = if model.is_empty() || r % 3 == 0 {
                        (r >> 8) % (s.next + 1)
                    } else {
                        model[(r >> 8) as usize % model.len()].0
                    };
                    let live = model.iter().any(|(m, _)| *m == h);
                    assert_eq!(s.remove(h), live);
                    removals += live as usize;
                    model.retain(|(m, _)| *m != h);
                }
                7 => {
                    // Use a session (refreshes its idle clock).
                    if let Some(&(h, user)) = model.get((r >> 8) as usize % model.len().max(1)) {
                        match s.lookup(ids[&h].as_bytes(), now) {
                            Ok(p) => assert_eq!(p.user(), user),
                            Err(e) => assert_eq!(e, SessionError::Expired),
                        }
                    }
                }
                8 => {
                    if let Some(&(h, _)) = model.get((r >> 8) as usize % model.len().max(1)) {
                        s.track_live(h, r % 2 == 0, now);
                    }
                }
                _ => {
                    let swept = s.sweep(now);
                    for h in &swept {
                        assert!(model.iter().any(|(m, _)| m == h), "swept unknown {h}");
                    }
                    swept_total += swept.len();
                    model.retain(|(m, _)| !swept.contains(m));
                    for &(h, _) in &model {
                        assert!(s.is_live(h, now), "sweep left an expired session");
                    }
                }
            }
            s.check_index();
            assert_eq!(s.len(), model.len());
        }
        // The loop really exercised each path.
        assert!(evictions > 50 && removals > 50 && swept_total > 50);
        for (h, _) in std::mem::take(&mut model) {
            assert!(s.remove(h));
        }
        s.check_index();
        assert!(s.by_user.is_empty() && s.is_empty());
    }
}
