//! Rooms: which connections are in which room, which users they belong
//! to, each room's message sequence, and its history (the last messages,
//! for clients that resume: PROTOCOL §4).
//!
//! A room is a vector of connection ids. Each member remembers its index
//! in that vector, so leaving is O(1) (`swap_remove`, then the moved member
//! learns its new index from the return value).
//!
//! A room exists while it has members or history. A room that had neither
//! is forgotten, and its sequence with it: when it is made again it has a
//! new *epoch*, so a client holding an old `seq` learns that its numbers
//! no longer mean anything (`recovered: false`).
//!
//! History is held as JSON-mode frames, ready to copy into a queue. It is
//! bounded twice: `--history` messages a room, and a byte cap for all
//! rooms together (a quarter of the queue budget), past which the oldest
//! messages of any room go first. Each message counts its frame plus
//! [`ENTRY_OVERHEAD`], and each room holding history [`room_cost`], so
//! that many small messages in many rooms (kept for their history alone)
//! stay within the cap too, bookkeeping included.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::ConnId;

/// What one history entry costs beside its frame: its box, its slots in
/// the room's and the global queue.
pub const ENTRY_OVERHEAD: usize = 256;

/// What a room holding history costs beside its entries, counted in the
/// history's bytes from its first kept message to its last: the map slot,
/// the `Room` and its queues, and the name twice (the key, and the shared
/// copy). Measured at about 700 bytes for a 64-byte name with one entry.
pub fn room_cost(name: &str) -> usize {
    512 + 2 * name.len()
}

/// One room.
#[derive(Debug)]
pub struct Room {
    /// Connection ids of the members.
    pub members: Vec<ConnId>,
    /// Live connections per user in this room.
    users: HashMap<Arc<str>, usize>,
    /// The last `seq` given to a message (JSON mode counts from 1).
    pub seq: u64,
    /// Which life of the room `seq` counts in ([`Room::epoch_text`]).
    pub epoch: u64,
    /// The room's name, shared with the global history order.
    name: Arc<str>,
    /// The last messages: `seq` and the JSON-mode frame, oldest first, with
    /// consecutive numbers ending at `seq` (when not empty).
    history: VecDeque<(u64, Box<[u8]>)>,
    /// With `--redis`: `seq` is Redis's newest as far as this node knows.
    /// False from the link going down until Redis's next message (this
    /// node may have missed some meanwhile).
    synced: bool,
}

impl Room {
    /// Users in the room, sorted.
    pub fn users(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.users.keys().map(|u| &**u).collect();
        names.sort_unstable();
        names
    }

    /// The epoch as clients see it: 16 lowercase hex digits.
    pub fn epoch_text(&self) -> String {
        format!("{:016x}", self.epoch)
    }

    /// What a client that saw everything up to `since` (in `epoch`, when it
    /// names one) gets: whether nothing after `since` is missing, and the
    /// frames to send, oldest first, within `max_bytes` (the newest that
    /// fit; leaving older ones out makes it not recovered). `since` 0 means
    /// the client has nothing, in any epoch.
    pub fn replay(&self, since: u64, epoch: Option<&str>, max_bytes: usize) -> Replay<'_> {
        let same_life = since == 0 || epoch == Some(self.epoch_text().as_str());
        let from = if same_life && since <= self.seq {
            since + 1
        } else {
            0
        };
        // Messages after `since` that history no longer holds are missed.
        let first_held = self.history.front().map_or(self.seq + 1, |(s, _)| *s);
        let mut recovered = from != 0 && first_held <= from;
        let mut frames = Vec::new();
        let mut bytes = 0;
        for (seq, frame) in self.history.iter().rev() {
            if *seq < from {
                break;
            }
            if bytes + frame.len() > max_bytes {
                recovered = false;
                break;
            }
            bytes += frame.len();
            frames.push(&**frame);
        }
        frames.reverse();
        Replay { recovered, frames }
    }
}

/// What [`Room::replay`] found.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay<'a> {
    /// Nothing after the client's `since` is missing from `frames`.
    pub recovered: bool,
    /// The frames to send, oldest first.
    pub frames: Vec<&'a [u8]>,
}

/// What joining did.
#[derive(Debug, PartialEq, Eq)]
pub struct Joined {
    /// The room's name, shared: a member keeps this instead of a copy.
    pub name: Arc<str>,
    /// The member's index in the room (keep it for [`Rooms::leave`]).
    pub index: usize,
    /// This is the user's first connection in the room.
    pub first_of_user: bool,
}

/// What [`Rooms::adopt`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// Nobody is in the room here.
    NotHere,
    /// The message follows the room's last one.
    Follows,
    /// It does not (another epoch, or a gap): history was dropped.
    Renumbered,
    /// The room has it already (from Redis's stream): not delivered again.
    Stale,
}

/// What leaving did.
#[derive(Debug, PartialEq, Eq)]
pub struct Left {
    /// That was the user's last connection in the room.
    pub last_of_user: bool,
    /// The member that moved into the leaver's index, which must update
    /// its stored index to the leaver's.
    pub moved: Option<ConnId>,
}

/// All rooms with members or history.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: HashMap<String, Room>,
    /// Rooms with at least one member.
    occupied: usize,
    /// Every history entry in the order it was made (room, epoch, seq),
    /// for dropping the oldest first. Entries a room dropped itself
    /// (`--history`) stay until compacted; the epoch keeps them from
    /// naming a later life of the room.
    order: VecDeque<(Arc<str>, u64, u64)>,
    /// History entries held, and their cost in bytes.
    entries: usize,
    bytes: usize,
    /// Epochs are this plus a count of rooms made: random per process.
    epoch_base: u64,
    made: u64,
}

impl Rooms {
    /// No rooms; epochs will start at `epoch_base` (random per process,
    /// so that a restarted server's epochs differ).
    pub fn new(epoch_base: u64) -> Rooms {
        Rooms {
            epoch_base,
            ..Rooms::default()
        }
    }

    /// The room called `name`, if it has members or history.
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.rooms.get(name)
    }

    /// Adds connection `id` of `user` to room `name`.
    pub fn join(&mut self, name: &str, id: ConnId, user: &Arc<str>) -> Joined {
        let room = match self.rooms.get_mut(name) {
            Some(room) => room,
            None => {
                self.made += 1;
                let room = Room {
                    members: Vec::new(),
                    users: HashMap::new(),
                    seq: 0,
                    epoch: self.epoch_base.wrapping_add(self.made),
                    name: Arc::from(name),
                    history: VecDeque::new(),
                    synced: true,
                };
                self.rooms.entry(name.to_string()).or_insert(room)
            }
        };
        if room.members.is_empty() {
            self.occupied += 1;
        }
        room.members.push(id);
        let count = room.users.entry(Arc::clone(user)).or_insert(0);
        *count += 1;
        Joined {
            name: Arc::clone(&room.name),
            index: room.members.len() - 1,
            first_of_user: *count == 1,
        }
    }

    /// Removes the member at `index` (connection `id` of `user`).
    pub fn leave(&mut self, name: &str, index: usize, id: ConnId, user: &str) -> Left {
        let Some(room) = self.rooms.get_mut(name) else {
            return Left {
                last_of_user: false,
                moved: None,
            };
        };
        debug_assert_eq!(room.members.get(index), Some(&id));
        if room.members.get(index) == Some(&id) {
            room.members.swap_remove(index);
            if room.members.is_empty() {
                self.occupied -= 1;
                // why: a room kept for its history alone must not keep the
                // capacity of a crowd (counted nowhere).
                room.members = Vec::new();
            }
        }
        let moved = room.members.get(index).copied();
        let last_of_user = match room.users.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                room.users.remove(user);
                true
            }
            None => false,
        };
        if room.members.is_empty() {
            if room.history.is_empty() {
                self.rooms.remove(name);
            } else {
                room.users = HashMap::new();
            }
        }
        Left {
            last_of_user,
            moved,
        }
    }

    /// The next `seq` of room `name`, for a chat message. `None` when the
    /// room has no members (the message reaches nobody and is not kept).
    pub fn next_seq(&mut self, name: &str) -> Option<u64> {
        let room = self.rooms.get_mut(name).filter(|r| !r.members.is_empty())?;
        room.seq += 1;
        Some(room.seq)
    }

    /// Takes message `seq` of `epoch` as room `name`'s newest, numbered
    /// elsewhere (Redis, with `--redis`). If it does not follow the room's
    /// last one in the same epoch (a new life of the room, a Redis that
    /// lost some, or messages this node missed while its link was down),
    /// the room's history is dropped, since it could no longer be replayed
    /// without a gap, and the answer says so: members must hear that the
    /// numbering broke. A room kept for its history alone (no members
    /// here) cannot follow Redis at all: it is forgotten.
    pub fn adopt(&mut self, name: &str, seq: u64, epoch: u64) -> Adopted {
        let Some(room) = self.rooms.get_mut(name) else {
            return Adopted::NotHere;
        };
        if room.members.is_empty() {
            self.drop_history(name);
            self.rooms.remove(name);
            return Adopted::NotHere;
        }
        // why: a room filled from Redis's stream (`backfill`) was given
        // what the subscription may still bring.
        if room.epoch == epoch && seq <= room.seq {
            return Adopted::Stale;
        }
        // why the second case: a room new here has numbered nothing yet; its
        // first message from Redis, if Redis's first, misses nothing.
        let follows = (room.epoch == epoch && room.seq.checked_add(1) == Some(seq))
            || (room.seq == 0 && room.history.is_empty() && seq == 1);
        room.epoch = epoch;
        room.seq = seq;
        room.synced = true;
        if follows {
            Adopted::Follows
        } else {
            self.drop_history(name);
            Adopted::Renumbered
        }
    }

    /// Takes messages of room `name` from Redis's stream (with `--redis`,
    /// for a client that resumes here after missing what this node did not
    /// keep): `entries` are `(seq, JSON frame)`, oldest first, numbered in
    /// `epoch`, Redis's newest being `last`. Only what joins up with the
    /// room's own history is taken, so history stays one run of
    /// consecutive numbers ending at the room's `seq`:
    ///
    /// - a room here with members, in `epoch`: the entries just older than
    ///   its history (those newer come on the subscription);
    /// - no room with members here: the room starts at `last` of
    ///   `epoch`, with the entries as its history (a message numbered up to
    ///   `last` that the subscription brings later is then
    ///   [`Adopted::Stale`]);
    /// - a room here with members in another epoch, or that has numbered
    ///   nothing yet, or whose `seq` may be behind Redis's since the link
    ///   was down (unless `last` is that `seq`): nothing (its members may
    ///   still be owed messages up to `last`).
    ///
    /// Within `keep` per room and `cap` in all, as [`Rooms::record`].
    pub fn backfill(
        &mut self,
        name: &str,
        epoch: u64,
        last: u64,
        entries: Vec<(u64, Box<[u8]>)>,
        keep: usize,
        cap: usize,
    ) {
        if keep == 0 {
            return;
        }
        let fresh = self.rooms.get(name).is_none_or(|r| r.members.is_empty());
        if fresh {
            self.drop_history(name);
            if self.rooms.get(name).is_some_and(|r| r.members.is_empty()) {
                self.rooms.remove(name);
            }
            let room = self.rooms.entry(name.to_string()).or_insert_with(|| Room {
                members: Vec::new(),
                users: HashMap::new(),
                seq: 0,
                epoch,
                name: Arc::from(name),
                history: VecDeque::new(),
                synced: true,
            });
            room.epoch = epoch;
            room.seq = last;
        }
        let Some(room) = self.rooms.get_mut(name).filter(|r| r.epoch == epoch) else {
            return;
        };
        // why: after the link was down this node may have missed messages,
        // unless Redis's newest is still the room's.
        if !room.synced && room.seq != last {
            return;
        }
        room.synced = true;
        // The run must end right before the room's oldest kept message.
        let end = (room.history.front()).map_or(room.seq, |(first, _)| first.saturating_sub(1));
        let room_left = keep.saturating_sub(room.history.len());
        let mut run: Vec<(u64, Box<[u8]>)> = Vec::new();
        for (seq, frame) in entries.into_iter().rev() {
            let expect = run.last().map_or(end, |(s, _)| s - 1);
            if seq > expect {
                continue;
            }
            if seq < expect || run.len() == room_left || seq == 0 {
                break;
            }
            run.push((seq, frame));
        }
        if run.is_empty() {
            // why not forgotten at once when empty: a room started at
            // `last` is what a caught-up client resumes into (the caller
            // joins it now, or calls `forget_if_empty`).
            return;
        }
        if room.history.is_empty() {
            self.bytes += room_cost(name);
        }
        // Newest first: each goes in front of the one before.
        for (seq, frame) in run {
            self.entries += 1;
            self.bytes += frame.len() + ENTRY_OVERHEAD;
            self.order
                .push_front((Arc::clone(&room.name), room.epoch, seq));
            room.history.push_front((seq, frame));
        }
        while self.bytes > cap {
            self.drop_oldest();
        }
    }

    /// Forgets room `name` if nobody is in it and it keeps nothing (made
    /// by [`Rooms::backfill`] for a resume that did not open).
    pub fn forget_if_empty(&mut self, name: &str) {
        if self
            .rooms
            .get(name)
            .is_some_and(|r| r.members.is_empty() && r.history.is_empty())
        {
            self.rooms.remove(name);
        }
    }

    /// Drops all kept history (the link to Redis went down: what arrives
    /// later may not follow it). Rooms kept for their history alone are
    /// forgotten.
    pub fn drop_all_history(&mut self) {
        for room in self.rooms.values_mut() {
            room.synced = false;
        }
        let names: Vec<String> = (self.rooms.iter())
            .filter(|(_, r)| !r.history.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.drop_history(&name);
        }
        self.rooms.retain(|_, r| !r.members.is_empty());
    }

    /// Drops the history of room `name` (its bytes and cost released).
    fn drop_history(&mut self, name: &str) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if room.history.is_empty() {
            return;
        }
        for (_, frame) in room.history.drain(..) {
            self.entries -= 1;
            self.bytes -= frame.len() + ENTRY_OVERHEAD;
        }
        self.bytes -= room_cost(name);
    }

    /// Keeps message `seq` of room `name` (its JSON-mode `frame`): at most
    /// `keep` a room, and all rooms' history within `cap` bytes, the
    /// oldest dropped first (a room left with neither members nor history
    /// is forgotten).
    pub fn record(&mut self, name: &str, seq: u64, frame: &[u8], keep: usize, cap: usize) {
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        if keep == 0 {
            return;
        }
        debug_assert_eq!(
            seq, room.seq,
            "history is recorded as messages are numbered"
        );
        if room.history.is_empty() {
            self.bytes += room_cost(name);
        }
        room.history.push_back((seq, frame.into()));
        self.order
            .push_back((Arc::clone(&room.name), room.epoch, seq));
        self.entries += 1;
        self.bytes += frame.len() + ENTRY_OVERHEAD;
        while room.history.len() > keep {
            if let Some((_, old)) = room.history.pop_front() {
                self.entries -= 1;
                self.bytes -= old.len() + ENTRY_OVERHEAD;
            }
        }
        while self.bytes > cap {
            self.drop_oldest();
        }
        // why: entries a room dropped itself stay in `order`; rebuild
        // before they outnumber the live ones.
        if self.order.len() > 2 * self.entries + 64 {
            let rooms = &self.rooms;
            self.order.retain(|(name, epoch, seq)| {
                rooms.get(&**name).is_some_and(|r| {
                    r.epoch == *epoch && r.history.front().is_some_and(|(first, _)| first <= seq)
                })
            });
        }
    }

    /// Drops the oldest history entry of all rooms.
    fn drop_oldest(&mut self) {
        while let Some((name, epoch, seq)) = self.order.pop_front() {
            let Some(room) = self.rooms.get_mut(&*name) else {
                continue;
            };
            if room.epoch != epoch || room.history.front().is_none_or(|(first, _)| *first != seq) {
                continue;
            }
            if let Some((_, old)) = room.history.pop_front() {
                self.entries -= 1;
                self.bytes -= old.len() + ENTRY_OVERHEAD;
            }
            if room.history.is_empty() {
                self.bytes -= room_cost(&name);
                if room.members.is_empty() {
                    self.rooms.remove(&*name);
                }
            }
            return;
        }
    }

    /// Number of rooms with members.
    pub fn len(&self) -> usize {
        self.occupied
    }

    /// History entries held in all rooms, and what they cost in bytes.
    pub fn history(&self) -> (usize, usize) {
        (self.entries, self.bytes)
    }

    /// The invariants of rooms and history (for `Registry::check`): every
    /// room has members or history; the occupied count, entry count and
    /// bytes are right; a room's history has consecutive numbers ending
    /// at its `seq`, within `keep`; all of it within `cap`; the order
    /// names every entry.
    #[cfg(any(test, fuzzing))]
    pub fn check(&self, keep: usize, cap: usize) -> Result<(), String> {
        use std::collections::HashSet;
        let (mut occupied, mut entries, mut bytes) = (0, 0, 0);
        let ordered: HashSet<(&str, u64, u64)> =
            self.order.iter().map(|(n, e, s)| (&**n, *e, *s)).collect();
        for (name, room) in &self.rooms {
            if *room.name != **name {
                return Err(format!("room {name:?} calls itself {:?}", room.name));
            }
            if room.members.is_empty() && room.history.is_empty() {
                return Err(format!("room {name:?} is kept with nothing in it"));
            }
            occupied += usize::from(!room.members.is_empty());
            if room.history.len() > keep {
                return Err(format!(
                    "room {name:?} keeps {} messages",
                    room.history.len()
                ));
            }
            let first = room.seq + 1 - room.history.len() as u64;
            if !room.history.is_empty() {
                bytes += room_cost(name);
            }
            if room.members.is_empty() && (room.members.capacity() > 0 || room.users.capacity() > 0)
            {
                return Err(format!("empty room {name:?} holds member capacity"));
            }
            for (expect, (seq, frame)) in (first..).zip(&room.history) {
                if *seq != expect {
                    return Err(format!(
                        "room {name:?} history has {seq} where {expect} belongs"
                    ));
                }
                entries += 1;
                bytes += frame.len() + ENTRY_OVERHEAD;
            }
            let named = (room.history.iter())
                .all(|(seq, _)| ordered.contains(&(&**name, room.epoch, *seq)));
            if !named {
                return Err(format!("room {name:?} has history the order does not name"));
            }
        }
        if (occupied, entries, bytes) != (self.occupied, self.entries, self.bytes) {
            return Err(format!(
                "rooms count ({}, {}, {}) but hold ({occupied}, {entries}, {bytes})",
                self.occupied, self.entries, self.bytes
            ));
        }
        if bytes > cap {
            return Err(format!("history holds {bytes} bytes, over its cap {cap}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnId {
        ConnId::from_token(n)
    }

    #[test]
    fn join_and_leave_track_users_and_indices() {
        let mut r = Rooms::default();
        assert!(r.join("lobby", id(10), &Arc::from("alice")).first_of_user);
        assert!(!r.join("lobby", id(11), &Arc::from("alice")).first_of_user);
        let bob = r.join("lobby", id(12), &Arc::from("bob"));
        assert_eq!(bob.index, 2);
        assert_eq!(r.get("lobby").unwrap().users(), vec!["alice", "bob"]);
        // Alice's first connection leaves; Bob's moves into its index.
        let left = r.leave("lobby", 0, id(10), "alice");
        assert_eq!(
            left,
            Left {
                last_of_user: false,
                moved: Some(id(12))
            }
        );
        assert_eq!(r.get("lobby").unwrap().members, vec![id(12), id(11)]);
        let left = r.leave("lobby", 1, id(11), "alice");
        assert_eq!(
            left,
            Left {
                last_of_user: true,
                moved: None
            }
        );
        assert_eq!(r.get("lobby").unwrap().users(), vec!["bob"]);
        r.leave("lobby", 0, id(12), "bob");
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_emptied_room_kept_for_its_history_keeps_no_crowd() {
        // Found by review: a room of 1,000 kept 50 KB of member and user
        // capacity after everyone left, counted nowhere.
        let mut r = Rooms::new(7);
        let users: Vec<Arc<str>> = (0..1000).map(|i| Arc::from(format!("u{i}"))).collect();
        for (i, u) in users.iter().enumerate() {
            r.join("big", id(i as u64 + 1), u);
        }
        let seq = r.next_seq("big").unwrap();
        r.record("big", seq, b"frame", 100, usize::MAX);
        assert_eq!(r.history(), (1, 5 + ENTRY_OVERHEAD + room_cost("big")));
        for (i, u) in users.iter().enumerate().rev() {
            r.leave("big", i, id(i as u64 + 1), u);
        }
        let room = r.get("big").unwrap();
        assert_eq!((room.members.capacity(), room.users.capacity()), (0, 0));
        assert_eq!(r.len(), 0);
        r.check(100, usize::MAX).unwrap();
    }

    #[test]
    fn the_oldest_message_of_any_room_goes_first_and_empty_rooms_are_forgotten() {
        let mut r = Rooms::new(7);
        let alice: Arc<str> = Arc::from("alice");
        let cost = |name: &str| 10 + ENTRY_OVERHEAD + room_cost(name);
        // Room a, then b: each one 10-byte message; the cap fits two rooms.
        let cap = cost("a") + cost("b");
        for (n, name) in ["a", "b"].iter().enumerate() {
            r.join(name, id(n as u64), &alice);
            let seq = r.next_seq(name).unwrap();
            r.record(name, seq, &[b'm'; 10], 5, cap);
            r.leave(name, 0, id(n as u64), "alice");
        }
        let epoch_a = r.get("a").unwrap().epoch;
        assert_eq!(r.history(), (2, cap));
        // A third room pushes out a's message, and a with it.
        r.join("c", id(9), &alice);
        let seq = r.next_seq("c").unwrap();
        r.record("c", seq, &[b'm'; 10], 5, cap);
        assert!(r.get("a").is_none() && r.get("b").is_some());
        r.check(5, cap).unwrap();
        // Made again, a is a new life: a new epoch, numbered from 1.
        r.join("a", id(10), &alice);
        let a = r.get("a").unwrap();
        assert_ne!(a.epoch, epoch_a);
        assert_eq!(a.seq, 0);
    }

    #[test]
    fn rooms_are_separate() {
        let mut r = Rooms::default();
        r.join("a", id(1), &Arc::from("alice"));
        r.join("b", id(2), &Arc::from("alice"));
        assert_eq!(r.len(), 2);
        assert_eq!(r.get("a").unwrap().members, vec![id(1)]);
        assert!(r.leave("a", 0, id(1), "alice").last_of_user);
        assert_eq!(r.get("b").unwrap().users(), vec!["alice"]);
    }
}
