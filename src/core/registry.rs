//! The registry: every connection, and every index over them.
//!
//! It owns the slab of connections and what is kept about them elsewhere:
//! room membership, the WebSockets of each user and of each session, what
//! each client address holds, the count of open WebSockets, and the timer
//! heap. Only five calls change which connections exist or where they are
//! listed — [`Registry::admit`], [`Registry::open`], [`Registry::leave`],
//! [`Registry::remove`], and [`Registry::rekey`] (a trusted proxy named
//! the client) — so the indexes cannot drift apart;
//! [`Registry::check`] states what they promise, for the tests and the
//! fuzzer.
//!
//! Connection ids carry a generation ([`ConnId`]): an id of a connection
//! that is gone never reaches a newer connection in the same slot.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use slab::Slab;

use super::chat;
use super::conn::{At, Conn, Phase, Ws};
use super::limits::{AddrKey, AddrLoad};
use super::peer::{Peer, ViaProxy};
use super::pipe::OutQueue;
use super::rooms::{Adopted, Left, Rooms};
use super::time::{Time, Timer};
use crate::auth::session::SessionHandle;
use crate::auth::{Credential, Principal};
use crate::http::upgrade::Mode;

/// A connection's id: its slot in the registry and the generation of that
/// slot's use. Ids are never reused while a process runs (the generation
/// counter would have to wrap, after four billion connections, and then
/// meet the same slot), so an id of a connection that is gone reaches
/// nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId {
    slot: u32,
    generation: u32,
}

impl ConnId {
    /// The id as one number, for an event loop's token (slot in the low 32
    /// bits, generation in the high 32).
    pub fn to_token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.slot)
    }

    /// The id a token of [`ConnId::to_token`] stands for.
    pub fn from_token(token: u64) -> ConnId {
        ConnId {
            slot: token as u32,
            generation: (token >> 32) as u32,
        }
    }

    /// The slot, a small number the shell may index a table with (a slot is
    /// used again once its connection is gone, with a new generation).
    pub fn slot(self) -> usize {
        self.slot as usize
    }
}

impl std::hash::Hash for ConnId {
    /// As one number (equal ids are equal tokens): one hasher call, not
    /// two, for the maps keyed by connection.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.to_token());
    }
}

impl std::fmt::Display for ConnId {
    /// `slot.generation`, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

/// What leaving its room meant for a WebSocket.
#[derive(Debug)]
pub struct Leaving {
    /// The room it was in.
    pub room: Arc<str>,
    /// Its user.
    pub user: Arc<str>,
    /// That was the user's last connection in the room.
    pub last_of_user: bool,
    /// The session it used, if any.
    pub session: Option<SessionHandle>,
}

/// Every connection and every index over them.
#[derive(Debug, Default)]
pub struct Registry {
    conns: Slab<Conn>,
    next_generation: u32,
    rooms: Rooms,
    /// Open WebSockets per user, oldest first, for the per-user limit.
    by_user: HashMap<Arc<str>, Ids>,
    /// Open WebSockets per session, so logout can close them.
    by_session: HashMap<SessionHandle, Ids>,
    /// What each client address holds; an entry goes when it holds nothing.
    by_addr: HashMap<AddrKey, AddrLoad>,
    /// Open WebSockets (kept as a count: `/metrics` must not walk the slab).
    websockets: usize,
    /// (deadline, id): about one live entry per connection (see
    /// `Conn::armed`); stale entries are skipped when popped, and the heap
    /// is rebuilt when they pile up (`push_timer`).
    timers: BinaryHeap<Reverse<(Time, ConnId)>>,
}

impl Registry {
    /// An empty registry; room epochs start at `epoch_base`
    /// ([`Rooms::new`]).
    pub fn new(epoch_base: u64) -> Registry {
        Registry {
            rooms: Rooms::new(epoch_base),
            ..Registry::default()
        }
    }

    // ------------------------------------------------------------------
    // The five mutators

    /// A new connection from `peer` (through the trusted proxy `via`, if
    /// it came through one), doing HTTP, not authenticated.
    pub fn admit(&mut self, peer: Peer, via: Option<Box<ViaProxy>>) -> ConnId {
        let generation = self.next_generation;
        // why: generation `u32::MAX` is never used, so that a shell can
        // keep a few tokens of its own (its listener, its waker) that no
        // connection's token can equal.
        self.next_generation = match self.next_generation.wrapping_add(1) {
            u32::MAX => 0,
            g => g,
        };
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            slot: u32::try_from(entry.key()).unwrap_or(u32::MAX),
            generation,
        };
        entry.insert(Conn {
            id,
            peer,
            via,
            out: OutQueue::default(),
            dirty: false,
            deadline: None,
            timer: Timer::Handshake,
            armed: None,
            eof: false,
            authenticated: false,
            parked: false,
            progressed: false,
            phase: Phase::Http {
                buf: Vec::new(),
                sent_continue: false,
            },
        });
        let load = self.by_addr.entry(peer.key()).or_default();
        load.conns += 1;
        load.unauth += 1;
        id
    }

    /// Turns connection `id` into an open WebSocket of `principal` (whose
    /// role may send chat lines or not: `may_send`) in `room`: listed in the room, under its user and its session, and no
    /// longer counted as unauthenticated. The only way a `Phase::Ws`
    /// comes to be. `None` for an unknown id. Returns whether this is the
    /// user's first connection in the room.
    pub fn open(
        &mut self,
        id: ConnId,
        principal: Principal,
        may_send: bool,
        room: String,
        mode: Mode,
        now: Time,
    ) -> Option<bool> {
        let conn = self.get_mut(id)?;
        let user = Arc::clone(principal.user_shared());
        let session = match principal.credential() {
            Credential::Session { handle } => Some(*handle),
            _ => None,
        };
        let addr = conn.peer.key();
        let was_authenticated = std::mem::replace(&mut conn.authenticated, true);
        let joined = self.rooms.join(&room, id, &user);
        let mut ws = Ws::new(principal, may_send, joined.name, mode, now);
        ws.set_index(Some(joined.index));
        self.conns[id.slot()].phase = Phase::Ws(ws);
        self.websockets += 1;
        if !was_authenticated {
            self.addr_load(addr, |load| load.unauth -= 1);
        }
        if let Some(handle) = session {
            add_to(&mut self.by_session, handle, id);
        }
        add_to(&mut self.by_user, user, id);
        Some(joined.first_of_user)
    }

    /// Takes WebSocket `id` out of its room and its user's and session's
    /// lists (it stays a WebSocket until its caller ends it). `None` when
    /// it was in no room.
    pub fn leave(&mut self, id: ConnId) -> Option<Leaving> {
        let ws = self.get_mut(id)?.ws_mut()?;
        let index = ws.index()?;
        ws.set_index(None);
        let room = std::mem::take(&mut ws.room);
        let user = Arc::clone(&ws.user);
        let session = match ws.credential {
            Credential::Session { handle } => Some(handle),
            _ => None,
        };
        self.websockets -= 1;
        if let Some(handle) = session {
            remove_from(&mut self.by_session, &handle, id);
        }
        remove_from(&mut self.by_user, &*user, id);
        let Left {
            last_of_user,
            moved,
        } = self.rooms.leave(&room, index, id, &user);
        if let Some(moved) = moved {
            if let Some(ws) = self.get_mut(moved).and_then(Conn::ws_mut) {
                ws.set_index(Some(index));
            }
        }
        Some(Leaving {
            room,
            user,
            last_of_user,
            session,
        })
    }

    /// Removes connection `id` for good (leaving its room first) and
    /// returns it with what leaving meant.
    pub fn remove(&mut self, id: ConnId) -> Option<(Conn, Option<Leaving>)> {
        self.get(id)?;
        let leaving = self.leave(id);
        let conn = self.conns.remove(id.slot());
        let unauth = !conn.authenticated;
        self.addr_load(conn.peer.key(), |load| {
            load.conns -= 1;
            if unauth {
                load.unauth -= 1;
            }
        });
        Some((conn, leaving))
    }

    /// Connection `id` is from `peer` after all (a trusted proxy named
    /// its client): what it holds moves to that address. A password
    /// check under way stays counted where it started.
    pub fn rekey(&mut self, id: ConnId, peer: Peer) {
        let Some(conn) = self.get_mut(id) else {
            return;
        };
        let old = std::mem::replace(&mut conn.peer, peer).key();
        let unauth = !conn.authenticated;
        if old == peer.key() {
            return;
        }
        self.addr_load(old, |load| {
            load.conns -= 1;
            if unauth {
                load.unauth -= 1;
            }
        });
        let load = self.by_addr.entry(peer.key()).or_default();
        load.conns += 1;
        if unauth {
            load.unauth += 1;
        }
    }

    // ------------------------------------------------------------------
    // What the password helper holds per address

    /// A password check from `addr` started.
    pub fn login_started(&mut self, addr: AddrKey) {
        self.by_addr.entry(addr).or_default().logins += 1;
    }

    /// A password check from `addr` was answered.
    pub fn login_answered(&mut self, addr: AddrKey) {
        self.addr_load(addr, |load| load.logins -= 1);
    }

    fn addr_load(&mut self, addr: AddrKey, change: impl FnOnce(&mut AddrLoad)) {
        if let Some(load) = self.by_addr.get_mut(&addr) {
            change(load);
            if load.is_idle() {
                self.by_addr.remove(&addr);
            }
        }
    }

    // ------------------------------------------------------------------
    // Reading

    /// The connection `id`, if it is still there.
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id.slot()).filter(|c| c.id == id)
    }

    /// The connection `id`, if it is still there. (Its phase may change,
    /// but only [`Registry::open`] makes a WebSocket.)
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.slot()).filter(|c| c.id == id)
    }

    /// The open WebSocket `id` (its peer's address beside it) and the
    /// rooms, borrowed together: a handler may change the one and read
    /// the other.
    pub fn ws_and_rooms(&mut self, id: ConnId) -> Option<(&mut Ws, Peer, &Rooms)> {
        let conn = self.conns.get_mut(id.slot()).filter(|c| c.id == id)?;
        let peer = conn.peer;
        Some((conn.ws_mut()?, peer, &self.rooms))
    }

    /// Every connection.
    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.conns.iter().map(|(_, c)| c)
    }

    /// Every connection, to change (queues, flags; not the indexes).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Conn> {
        self.conns.iter_mut().map(|(_, c)| c)
    }

    /// The ids of every connection, in slot order.
    pub fn ids(&self) -> Vec<ConnId> {
        self.iter().map(|c| c.id).collect()
    }

    /// Number of connections of any kind.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Number of open WebSockets (in a room).
    pub fn websockets(&self) -> usize {
        self.websockets
    }

    /// What `addr` holds now.
    pub fn load(&self, addr: AddrKey) -> AddrLoad {
        self.by_addr.get(&addr).copied().unwrap_or_default()
    }

    /// The rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// The open WebSockets of `user`, oldest first.
    pub fn of_user(&self, user: &str) -> &[ConnId] {
        self.by_user.get(user).map_or(&[], Ids::as_slice)
    }

    /// The open WebSockets of a session.
    pub fn of_session(&self, handle: SessionHandle) -> Vec<ConnId> {
        (self.by_session.get(&handle)).map_or_else(Vec::new, |ids| ids.as_slice().to_vec())
    }

    /// Calls `f` with each member of `room` (to queue a message to it).
    pub fn for_each_member(&mut self, room: &str, mut f: impl FnMut(&mut Conn)) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        for id in &r.members {
            if let Some(conn) = self.conns.get_mut(id.slot()).filter(|c| c.id == *id) {
                f(conn);
            }
        }
    }

    /// The sequence number of an event in `room`: a chat message takes the
    /// next one (JSON mode's `seq`, gapless per room), anything else sees
    /// the last. `None` when the room has no members.
    pub fn room_seq(&mut self, room: &str, message: bool) -> Option<u64> {
        if message {
            return self.rooms.next_seq(room);
        }
        self.rooms
            .get(room)
            .filter(|r| !r.members.is_empty())
            .map(|r| r.seq)
    }

    /// Queues to `id` what it missed in `room` since `since` (in `epoch`):
    /// the `resume` message, then the kept messages after `since`, so that
    /// the queue stays within `max_queue` and adds at most `budget_left`.
    /// Returns whether it recovered and how many messages were replayed;
    /// `None` when `id` or the room is gone.
    pub fn replay(
        &mut self,
        id: ConnId,
        room: &str,
        since: u64,
        epoch: Option<&str>,
        max_queue: usize,
        budget_left: usize,
    ) -> Option<(bool, usize)> {
        let r = self.rooms.get(room)?;
        let conn = self.conns.get_mut(id.slot()).filter(|c| c.id == id)?;
        let epoch_now = r.epoch_text();
        // why "false": the longer of the two heads bounds the one sent;
        // 256 more for the join notice that may follow at once.
        let head_bound = chat::resume_json(room, &epoch_now, r.seq, false).len() + 4 + 256;
        let room_left = max_queue.saturating_sub(conn.out.len() + head_bound);
        let replay = r.replay(since, epoch, room_left.min(budget_left));
        let head = chat::resume_json(room, &epoch_now, r.seq, replay.recovered);
        chat::encode_text_frame(head.as_bytes(), conn.out.tail());
        for frame in &replay.frames {
            conn.out.push(frame);
        }
        Some((replay.recovered, replay.frames.len()))
    }

    /// Takes `seq` in `epoch` (Redis's numbering) as `room`'s newest; see
    /// [`Rooms::adopt`].
    pub fn adopt(&mut self, room: &str, seq: u64, epoch: u64) -> Adopted {
        self.rooms.adopt(room, seq, epoch)
    }

    /// Takes messages of `room` from Redis's stream; see
    /// [`Rooms::backfill`].
    pub fn backfill(
        &mut self,
        room: &str,
        epoch: u64,
        last: u64,
        frames: Vec<(u64, Box<[u8]>)>,
        keep: usize,
        cap: usize,
    ) {
        self.rooms.backfill(room, epoch, last, frames, keep, cap);
    }

    /// Forgets an empty room; see [`Rooms::forget_if_empty`].
    pub fn forget_if_empty(&mut self, room: &str) {
        self.rooms.forget_if_empty(room);
    }

    /// Drops every room's history ([`Rooms::drop_all_history`]).
    pub fn drop_all_history(&mut self) {
        self.rooms.drop_all_history();
    }

    /// Keeps message `seq` of `room` (its JSON-mode frame) for clients
    /// that resume: see [`Rooms::record`].
    pub fn record(&mut self, room: &str, seq: u64, frame: &[u8], keep: usize, cap: usize) {
        self.rooms.record(room, seq, frame, keep, cap);
    }

    // ------------------------------------------------------------------
    // Timers

    /// Sets the one deadline of `id` (replacing any other). A later
    /// deadline pushes no entry: the armed one, when it comes due, re-arms
    /// for it. An earlier one does, leaving the old entry stale until it
    /// comes due; [`Registry::push_timer`] keeps the heap within about
    /// twice the connections however often deadlines move.
    pub fn set_deadline(&mut self, id: ConnId, at: Time, timer: Timer) {
        if let Some(conn) = self.get_mut(id) {
            let at = At::new(at);
            conn.deadline = Some(at);
            conn.timer = timer;
            if conn.armed.is_none_or(|armed| at < armed) {
                conn.armed = Some(at);
                self.push_timer(at, id);
            }
        }
    }

    /// Pushes a heap entry. When stale entries (deadlines moved earlier,
    /// then re-armed for the later time again) make the heap more than
    /// twice the connections, it is rebuilt from what is armed: a peer
    /// that keeps moving its deadlines cannot grow it.
    fn push_timer(&mut self, at: At, id: ConnId) {
        self.timers.push(Reverse((at.time(), id)));
        if self.timers.len() > 2 * self.conns.len() + 64 {
            // why: rebuilt in its own allocation, which a busy server
            // would otherwise give back and grow again every few dozen
            // connections.
            let mut entries = std::mem::take(&mut self.timers).into_vec();
            entries.clear();
            entries.extend(
                (self.conns.iter()).filter_map(|(_, c)| c.armed.map(|a| Reverse((a.time(), c.id)))),
            );
            self.timers = BinaryHeap::from(entries);
        }
    }

    /// The next connection whose deadline is at or before `now` (its
    /// deadline cleared), skipping stale heap entries and re-arming moved
    /// deadlines on the way.
    pub fn pop_due(&mut self, now: Time) -> Option<(ConnId, Timer)> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                return None;
            }
            self.timers.pop();
            let Some(conn) = self.get_mut(id) else {
                continue;
            };
            if conn.armed != Some(At::new(at)) {
                continue;
            }
            conn.armed = None;
            match conn.deadline {
                Some(d) if d.time() <= now => {
                    conn.deadline = None;
                    return Some((id, conn.timer));
                }
                // Moved later since this entry was pushed: re-arm.
                Some(d) => {
                    conn.armed = Some(d);
                    self.push_timer(d, id);
                }
                None => {}
            }
        }
        None
    }

    /// The earliest entry in the timer heap (it may be stale).
    pub fn next_deadline(&self) -> Option<Time> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Entries in the timer heap (about one a connection).
    pub fn timer_entries(&self) -> usize {
        self.timers.len()
    }
}

#[cfg(any(test, fuzzing))]
impl Registry {
    /// Checks what the registry promises; the first broken promise is
    /// described in the error.
    ///
    /// - every room member is an open WebSocket that names that room and
    ///   its own index in it, and every WebSocket still in a room is a
    ///   member of it (so no room holds a closed or closing connection,
    ///   and there are never more rooms than WebSockets);
    /// - every per-user and per-session entry is a live WebSocket of that
    ///   user (or session), still in its room, and every WebSocket in a
    ///   room is listed under its user (and session);
    /// - the count of open WebSockets is right;
    /// - what each address holds (connections, unauthenticated ones) is
    ///   what the connections say (password checks are the caller's to
    ///   compare: `logins`), with no idle entries;
    /// - every connection has a deadline of the kind its phase calls for
    ///   (`Timer`), and a timer armed for it (at or before it) is in the
    ///   heap, so none can live forever.
    pub fn check(&self, logins: &HashMap<AddrKey, usize>) -> Result<(), String> {
        let mut members_seen: HashMap<&str, usize> = HashMap::new();
        let mut in_rooms = 0;
        let mut loads: HashMap<AddrKey, AddrLoad> = HashMap::new();
        for (slot, conn) in &self.conns {
            let id = conn.id;
            if id.slot() != slot {
                return Err(format!("connection {id:?} sits in slot {slot}"));
            }
            let load = loads.entry(conn.peer.key()).or_default();
            load.conns += 1;
            if !conn.authenticated {
                load.unauth += 1;
            }
            let Some(deadline) = conn.deadline else {
                return Err(format!("connection {id:?} has no deadline"));
            };
            let fits = match conn.phase {
                Phase::Http { .. } => conn.timer == Timer::Handshake,
                Phase::AwaitPassword { .. } => conn.timer == Timer::PasswordCheck,
                Phase::AwaitStore { .. } => conn.timer == Timer::StoreQuery,
                Phase::Closing | Phase::Lingering => conn.timer == Timer::Close,
                Phase::Ws(_) => conn.timer.is_websocket(),
            };
            if !fits {
                return Err(format!(
                    "connection {id:?} has a {:?} timer in phase {}",
                    conn.timer,
                    conn.phase.name()
                ));
            }
            let armed = conn
                .armed
                .filter(|&at| at <= deadline)
                .ok_or_else(|| format!("connection {id:?} has no timer armed for its deadline"))?;
            let in_heap = self
                .timers
                .iter()
                .any(|Reverse(entry)| *entry == (armed.time(), id));
            if !in_heap {
                return Err(format!("connection {id:?}'s timer is not in the heap"));
            }
            let Some(ws) = conn.ws() else { continue };
            if !conn.authenticated {
                return Err(format!("WebSocket {id:?} counted as unauthenticated"));
            }
            let Some(index) = ws.index() else { continue };
            in_rooms += 1;
            *members_seen.entry(&*ws.room).or_default() += 1;
            let room = self
                .rooms
                .get(&ws.room)
                .ok_or_else(|| format!("connection {id:?} names a room that does not exist"))?;
            if room.members.get(index) != Some(&id) {
                return Err(format!(
                    "connection {id:?} is not at its index {index} in its room"
                ));
            }
            if !self.of_user(&ws.user).contains(&id) {
                return Err(format!("connection {id:?} is missing from its user's list"));
            }
            if let Credential::Session { handle } = ws.credential {
                if !self.of_session(handle).contains(&id) {
                    return Err(format!(
                        "connection {id:?} is missing from its session's list"
                    ));
                }
            }
        }
        // Each member found above sits at a distinct index, so equal
        // counts mean the rooms hold nobody else.
        if self.rooms.len() != members_seen.len() {
            return Err(format!(
                "{} rooms, but WebSockets are in {}",
                self.rooms.len(),
                members_seen.len()
            ));
        }
        for (name, seen) in &members_seen {
            let members = self.rooms.get(name).map_or(0, |r| r.members.len());
            if members != *seen {
                return Err(format!("a room has {members} members, {seen} point at it"));
            }
        }
        if in_rooms != self.websockets {
            return Err(format!(
                "{in_rooms} WebSockets in rooms, the count says {}",
                self.websockets
            ));
        }
        let mut listed = 0;
        for (user, list) in &self.by_user {
            let list = list.as_slice();
            for &id in list {
                let ok = self
                    .get(id)
                    .and_then(Conn::ws)
                    .is_some_and(|ws| ws.user == *user && ws.index().is_some());
                if !ok {
                    return Err(format!("a user's list holds a stale connection {id:?}"));
                }
            }
            listed += list.len();
        }
        if listed != in_rooms {
            return Err(format!(
                "user lists hold {listed} connections, rooms {in_rooms}"
            ));
        }
        for (handle, list) in &self.by_session {
            for &id in list.as_slice() {
                let ok = self.get(id).and_then(Conn::ws).is_some_and(|ws| {
                    ws.index().is_some()
                        && matches!(ws.credential,
                            Credential::Session { handle: h } if h == *handle)
                });
                if !ok {
                    return Err(format!("a session's list holds a stale connection {id:?}"));
                }
            }
        }
        for (addr, &n) in logins {
            loads.entry(*addr).or_default().logins = n;
        }
        if loads != self.by_addr {
            return Err(format!(
                "per-address loads {:?}, connections say {loads:?}",
                self.by_addr
            ));
        }
        Ok(())
    }
}

/// The open WebSockets of one user or one session, oldest first. why not
/// a `Vec`: most users and sessions hold one, which then costs no
/// allocation of its own, and the table's slot is 16 bytes, not 24.
#[derive(Debug)]
enum Ids {
    /// Just one.
    One(ConnId),
    /// Two or more.
    Many(Box<[ConnId]>),
}

impl Ids {
    /// The ids, oldest first.
    fn as_slice(&self) -> &[ConnId] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }

    /// Adds `id` as the newest.
    fn push(&mut self, id: ConnId) {
        let mut ids = self.as_slice().to_vec();
        ids.push(id);
        *self = Ids::Many(ids.into_boxed_slice());
    }

    /// Removes `id`; false when that was the last one (the caller then
    /// drops the entry).
    fn remove(&mut self, id: ConnId) -> bool {
        let Ids::Many(ids) = self else {
            return !matches!(self, Ids::One(one) if *one == id);
        };
        let rest: Vec<ConnId> = ids.iter().copied().filter(|&x| x != id).collect();
        *self = match *rest {
            [one] => Ids::One(one),
            _ => Ids::Many(rest.into_boxed_slice()),
        };
        true
    }
}

/// Adds `item` as the newest under `key`.
fn add_to<Q: std::hash::Hash + Eq>(map: &mut HashMap<Q, Ids>, key: Q, item: ConnId) {
    match map.entry(key) {
        Entry::Occupied(mut ids) => ids.get_mut().push(item),
        Entry::Vacant(slot) => {
            slot.insert(Ids::One(item));
        }
    }
}

/// Removes `item` from the list under `key`, and the list once empty.
fn remove_from<K, Q>(map: &mut HashMap<Q, Ids>, key: &K, item: ConnId)
where
    K: std::hash::Hash + Eq + ?Sized,
    Q: std::borrow::Borrow<K> + std::hash::Hash + Eq,
{
    if let Some(ids) = map.get_mut(key) {
        if !ids.remove(item) {
            map.remove(key);
        }
    }
}

impl std::ops::Index<ConnId> for Registry {
    type Output = Conn;

    /// The connection `id`; panics when it is gone (callers look it up
    /// first).
    fn index(&self, id: ConnId) -> &Conn {
        self.get(id).expect("a live connection")
    }
}

impl std::ops::IndexMut<ConnId> for Registry {
    fn index_mut(&mut self, id: ConnId) -> &mut Conn {
        self.get_mut(id).expect("a live connection")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_order_through_one_and_many() {
        let id = |slot| ConnId {
            slot,
            generation: 0,
        };
        let mut map: HashMap<&str, Ids> = HashMap::new();
        add_to(&mut map, "u", id(1));
        assert!(matches!(map["u"], Ids::One(_)));
        add_to(&mut map, "u", id(2));
        add_to(&mut map, "u", id(3));
        assert_eq!(map["u"].as_slice(), [id(1), id(2), id(3)]);
        remove_from(&mut map, "u", id(2));
        assert_eq!(map["u"].as_slice(), [id(1), id(3)]);
        remove_from(&mut map, "u", id(9));
        assert_eq!(map["u"].as_slice(), [id(1), id(3)]);
        remove_from(&mut map, "u", id(1));
        assert!(matches!(map["u"], Ids::One(only) if only == id(3)));
        remove_from(&mut map, "u", id(9));
        assert_eq!(map["u"].as_slice(), [id(3)]);
        remove_from(&mut map, "u", id(3));
        assert!(map.is_empty());
    }
}
