//! What the core and the Redis link (`crate::redis`, cargo feature
//! `redis`) say to each other: pure data. With `--redis`, a chat message is
//! not broadcast where it arrives: the core asks the link to store and
//! publish it ([`Publish`]), and every node, the sender's own included,
//! delivers it to its local members when Redis hands it back in its one
//! order ([`LinkEvent::Message`]).

/// A chat message to store and fan out through Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Publish {
    /// Names the answer ([`LinkEvent::Stored`], [`LinkEvent::Failed`]).
    pub id: u64,
    /// The room.
    pub room: String,
    /// The sender.
    pub from: String,
    /// The line.
    pub text: String,
    /// Milliseconds since the UNIX epoch, when the sender's node took it.
    pub ts: u64,
}

/// A message as Redis ordered it, from the subscription (every node, the
/// sender's own included).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// The room.
    pub room: String,
    /// The sender.
    pub from: String,
    /// The line.
    pub text: String,
    /// As in [`Publish::ts`].
    pub ts: u64,
    /// The room's sequence number, gapless in its epoch.
    pub seq: u64,
    /// The life of the room's sequence in Redis.
    pub epoch: u64,
}

/// A session as Redis holds it (cluster mode): sessions are shared, so a
/// login on one node works on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// Whose session.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// When it was created (milliseconds since the UNIX epoch): its
    /// absolute limit runs from here.
    pub created_ms: u64,
}

/// The limits every session question carries, so that Redis applies the
/// same ones whichever node asks (milliseconds; `now_ms` is the asking
/// node's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionClock {
    /// The asking node's time.
    pub now_ms: u64,
    /// A session's absolute lifetime (`--session-ttl`).
    pub ttl_ms: u64,
    /// A session's idle limit (`--session-idle`).
    pub idle_ms: u64,
}

/// The SHA-256 digest of a session id or ticket: Redis never holds the
/// secret itself.
pub type Digest = [u8; 32];

/// A question for Redis about sessions and tickets (cluster mode); the
/// answer comes back as [`LinkEvent::Answer`] with the same `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Query {
    /// Names the answer (never the same as a [`Publish::id`]).
    pub id: u64,
    /// What to do.
    pub ask: Ask,
}

/// What a [`Query`] asks. Every session key expires in Redis at its idle
/// or absolute limit, whichever is first; a lookup that finds a session
/// refreshes its idle limit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ask {
    /// Store a new session. The user's sessions past `max_per_user` (the
    /// oldest first) end, as by [`Ask::EndSessions`] but announced as
    /// [`Ended::Evicted`]. Answer: [`Answer::Done`].
    CreateSession {
        /// The new session id's digest.
        digest: Digest,
        /// Whose.
        record: SessionRecord,
        /// The limits.
        clock: SessionClock,
        /// `--max-sessions-per-user`.
        max_per_user: usize,
    },
    /// Find a session, and refresh its idle limit. Answer:
    /// [`Answer::Session`] (`None`: unknown or expired).
    LookupSession {
        /// The session id's digest.
        digest: Digest,
        /// The limits.
        clock: SessionClock,
    },
    /// End sessions (a logout): delete them, and announce
    /// [`LinkEvent::SessionsEnded`] with [`Ended::LoggedOut`] to every
    /// node. Answer: [`Answer::Done`].
    EndSessions {
        /// The sessions' digests (unknown ones are skipped).
        digests: Vec<Digest>,
    },
    /// Sessions with open WebSockets on this node: refresh their idle
    /// limit (a live socket keeps its session from idling out). Answer:
    /// [`Answer::Missing`], those of them Redis no longer has.
    TouchSessions {
        /// The sessions' digests.
        digests: Vec<Digest>,
        /// The limits.
        clock: SessionClock,
    },
    /// Store a single-use ticket for [`TICKET_TTL_MS`]. With `session`,
    /// only if that session is live (refreshing its idle limit). Answer:
    /// [`Answer::Done`], or [`Answer::Session`]`(None)` when the session
    /// is gone (no ticket stored).
    IssueTicket {
        /// The ticket's digest.
        digest: Digest,
        /// What the core needs to admit its bearer (opaque to the link).
        payload: String,
        /// The session it was issued from, if any.
        session: Option<Digest>,
        /// The session limits.
        clock: SessionClock,
    },
    /// A WebSocket of `user` opens in `room` on this node: count it
    /// against the user's connections on every node (at most
    /// `max_per_user`, dead nodes' included until they are removed), and
    /// when it is the user's first in the room on any node, announce
    /// [`LinkEvent::Presence`] `joined`. At the limit, nothing is counted
    /// and the answer is [`Answer::Full`], unless `may_evict` (the user
    /// has a connection on this node that the core will close to make
    /// room, `--per-user-policy evict-oldest`): then it is counted all the
    /// same. Answer: [`Answer::Joined`] or [`Answer::Full`].
    Join {
        /// The room.
        room: String,
        /// The user.
        user: String,
        /// `--max-conns-per-user`.
        max_per_user: usize,
        /// Count it even at the limit.
        may_evict: bool,
    },
    /// A WebSocket counted by [`Ask::Join`] closed: uncount it, and when
    /// it was the user's last in the room on any node, announce
    /// [`LinkEvent::Presence`] not `joined`. Answer: [`Answer::Done`].
    Leave {
        /// The room.
        room: String,
        /// The user.
        user: String,
    },
    /// Who is in `room`, on every node. Answer: [`Answer::Users`].
    Who {
        /// The room.
        room: String,
    },
    /// The messages of `room` after `since` that Redis's stream holds (for
    /// a client resuming on a node that did not keep them). With `epoch`
    /// not Redis's epoch of the room (the client counted in another life),
    /// every message the stream holds. Answer: [`Answer::Stream`].
    Replay {
        /// The room.
        room: String,
        /// The client's last `seq`.
        since: u64,
        /// The epoch the client's `since` counts in, if it said.
        epoch: Option<u64>,
    },
    /// Everything this node counts, after the link came back (it may have
    /// been removed as dead meanwhile, and joins and leaves sent while it
    /// was down were refused). With `first`, the link starts a new life
    /// of this node in Redis (a new incarnation; the old one is removed
    /// like a dead node's, within [`NODE_TIMEOUT_MS`]); a long list comes
    /// in several parts, the rest without `first`. Users already present
    /// through the old incarnation or another node are not announced
    /// again. Answer: [`Answer::Done`].
    Register {
        /// `(room, user, connections)`.
        entries: Vec<(String, String, u32)>,
        /// The first part.
        first: bool,
    },
    /// Take a ticket (deleting it: it works once, across all nodes). If it
    /// was issued from a session, only while that session is live
    /// (refreshing its idle limit). Answer: [`Answer::Ticket`].
    RedeemTicket {
        /// The ticket's digest.
        digest: Digest,
        /// The session limits.
        clock: SessionClock,
    },
}

/// A node that has not told Redis it is alive for this long is dead: its
/// users are removed (and their leaves announced) by the next live node's
/// heartbeat, which every node sends every [`HEARTBEAT_MS`].
pub const NODE_TIMEOUT_MS: u64 = 10_000;

/// How often each node's link tells Redis that it is alive.
pub const HEARTBEAT_MS: u64 = 2_000;

/// A ticket's lifetime in Redis (PROTOCOL §1: 30 s).
pub const TICKET_TTL_MS: u64 = 30_000;

/// Redis's answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Done.
    Done,
    /// The session, or `None` (unknown, expired).
    Session(Option<SessionRecord>),
    /// Of the sessions asked about, those Redis does not have.
    Missing(Vec<Digest>),
    /// The ticket's payload, or `None` (unknown, expired, used, or its
    /// session ended).
    Ticket(Option<String>),
    /// The WebSocket was counted ([`Ask::Join`]); with `evict`, over the
    /// limit, because the core closes one of the user's here.
    Joined {
        /// Close the user's oldest WebSocket on this node.
        evict: bool,
    },
    /// The user holds `--max-conns-per-user` WebSockets on all nodes.
    Full,
    /// The users in a room ([`Ask::Who`]), sorted.
    Users(Vec<String>),
    /// What Redis's stream of a room holds ([`Ask::Replay`]): its epoch
    /// and newest `seq` (both 0 when Redis has no such room), and the
    /// messages asked for, oldest first.
    Stream {
        /// The room's epoch.
        epoch: u64,
        /// The room's newest `seq`.
        last: u64,
        /// The messages.
        entries: Vec<Delivered>,
    },
    /// Not answered: the link is down, too much is in flight, or Redis
    /// failed or refused (the query may or may not have run).
    Unavailable,
}

/// Why sessions ended ([`LinkEvent::SessionsEnded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// A logout ([`Ask::EndSessions`]).
    LoggedOut,
    /// The user's newer logins pushed them past the per-user limit
    /// ([`Ask::CreateSession`]).
    Evicted,
}

/// What the link tells the core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// Both connections are ready (scripts loaded, subscribed):
    /// publishes and queries work.
    Up,
    /// A connection was lost or stalled; the link reconnects with backoff
    /// by itself.
    Down {
        /// What happened (never a password).
        why: String,
    },
    /// Publish `id` was stored with this `seq`.
    Stored {
        /// The publish.
        id: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// Publish `id` was not stored: refused at once while down
    /// (`unconfirmed: false`), or written and never answered before the
    /// connection failed (`unconfirmed: true`: it may still appear).
    Failed {
        /// The publish.
        id: u64,
        /// Whether it may still have been stored.
        unconfirmed: bool,
    },
    /// A message from the subscription.
    Message(Delivered),
    /// The answer to [`Query`] `id`.
    Answer {
        /// The query.
        id: u64,
        /// Its answer.
        answer: Answer,
    },
    /// A user's first WebSocket in a room on any node opened (`joined`),
    /// or the last one closed (or its node was found dead), from the
    /// subscription: in one order with the room's messages.
    Presence {
        /// The room.
        room: String,
        /// The user.
        user: String,
        /// Joined, or left.
        joined: bool,
    },
    /// Sessions ended on some node (this one included), from the
    /// subscription: their WebSockets on every node close.
    SessionsEnded {
        /// The sessions' digests.
        digests: Vec<Digest>,
        /// Why.
        why: Ended,
    },
}

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use log::info;

use super::chat::{Event, Reply, resume_json};
use super::cluster_sessions::Waiter;
use super::conn::Conn;
use super::logfmt::quoted;
use super::rooms::Adopted;
use super::time::Time;
use super::{Action, ConnId, Server};
use crate::http::upgrade::Mode;

/// The most publishes awaiting Redis's answer at once; past it a sender
/// is told the chat is busy (no queue grows without bound).
pub const MAX_PENDING: usize = 4096;

/// The core's side of the link (with `--redis`).
#[derive(Debug, Default)]
pub struct Cluster {
    /// The link said [`LinkEvent::Up`] last (not [`LinkEvent::Down`]).
    pub up: bool,
    next_id: u64,
    /// Publishes awaiting their answer, and who sent each (`None`: the
    /// embedding program).
    pending: HashMap<u64, Option<ConnId>>,
    /// Publishes Redis did not confirm, for `/metrics`.
    pub failed: u64,
    /// Queries awaiting their answer, and who waits for each.
    queries: HashMap<u64, Waiter>,
    /// Joins awaiting Redis's count here, by `(room, user)`.
    pub joining: HashMap<(String, String), usize>,
    /// Joins Redis announced while one of `joining` awaited its count:
    /// the joiner, not yet a member then, is told when it opens.
    pub early_joins: HashSet<(String, String)>,
    /// A count in Redis may be wrong: count everything again
    /// ([`Server::recount`]) at the next sweep.
    pub recount: bool,
}

impl Cluster {
    /// A new query's id, awaited by `waiter`.
    pub(super) fn waiting_for(&mut self, waiter: Waiter) -> u64 {
        if let Waiter::Join(_, room, user) | Waiter::Counted(_, room, user) = &waiter {
            *(self.joining)
                .entry((room.clone(), user.to_string()))
                .or_default() += 1;
        }
        self.next_id += 1;
        self.queries.insert(self.next_id, waiter);
        self.next_id
    }

    /// True when connection `conn` waits for query `id`.
    #[cfg(any(test, fuzzing))]
    pub(super) fn awaits(&self, id: u64, conn: ConnId) -> bool {
        match self.queries.get(&id) {
            Some(Waiter::Conn(c) | Waiter::Join(c, ..) | Waiter::Counted(c, ..)) => *c == conn,
            _ => false,
        }
    }

    /// Who waited for query `id` (no longer).
    pub(super) fn answered(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.queries.remove(&id)?;
        if let Waiter::Join(_, room, user) | Waiter::Counted(_, room, user) = &waiter {
            let key = (room.clone(), user.to_string());
            if let Some(n) = self.joining.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.joining.remove(&key);
                }
            }
        }
        Some(waiter)
    }

    /// Publishes awaiting Redis's answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Why a message could not go out, as its sender hears it.
const UNREACHABLE: &str = "not sent: the chat store (Redis) cannot be reached";
const UNCONFIRMED: &str =
    "not confirmed: the chat store (Redis) stopped answering; it may still appear";
const BUSY: &str = "not sent: too many messages are waiting for the chat store";

impl Server {
    /// True when chat goes through Redis (`--redis`).
    pub fn is_clustered(&self) -> bool {
        self.ctx.clustered()
    }

    /// Hands a chat line to Redis (cluster mode): it reaches the room,
    /// here and on every node, when Redis gives it back in its order. The
    /// sender (`None`: the embedding program) hears at once if it cannot
    /// go, and later if Redis does not confirm it.
    pub(super) fn publish(
        &mut self,
        sender: Option<ConnId>,
        room: &str,
        from: &str,
        text: &str,
        now: Time,
    ) {
        let Some(cluster) = self.ctx.cluster.as_mut() else {
            return;
        };
        let refusal = if !cluster.up {
            Some(UNREACHABLE)
        } else if cluster.pending.len() >= MAX_PENDING {
            Some(BUSY)
        } else {
            None
        };
        if let Some(detail) = refusal {
            cluster.failed += 1;
            if let Some(id) = sender {
                self.tell_unsent(id, detail, now);
            }
            return;
        }
        cluster.next_id += 1;
        let id = cluster.next_id;
        cluster.pending.insert(id, sender);
        self.actions.push_back(Action::Publish(Publish {
            id,
            room: room.to_string(),
            from: from.to_string(),
            text: text.to_string(),
            ts: now.as_millis(),
        }));
    }

    /// The Redis link reports `event`.
    pub fn handle_link(&mut self, event: LinkEvent, now: Time) {
        // why: a constant without the feature; what follows compiles away.
        if !self.is_clustered() {
            return;
        }
        let Some(cluster) = self.ctx.cluster.as_mut() else {
            return;
        };
        match event {
            // The link logs both, with Redis's address.
            LinkEvent::Up => {
                cluster.up = true;
                // Joins and leaves were not counted while it was down, and
                // this node may have been found dead meanwhile.
                self.recount();
                // A session may have ended while the link was down.
                self.touch_sessions(now);
            }
            LinkEvent::Down { .. } => {
                cluster.up = false;
                // why: what the subscription misses meanwhile never comes;
                // a resume must not be told that nothing is missing.
                self.reg.drop_all_history();
            }
            LinkEvent::Stored { id, .. } => {
                cluster.pending.remove(&id);
            }
            LinkEvent::Failed { id, unconfirmed } => {
                let sender = cluster.pending.remove(&id).flatten();
                cluster.failed += 1;
                if let Some(conn) = sender {
                    let detail = if unconfirmed {
                        UNCONFIRMED
                    } else {
                        UNREACHABLE
                    };
                    self.tell_unsent(conn, detail, now);
                }
            }
            LinkEvent::Message(message) => self.deliver(&message, now),
            LinkEvent::Answer { id, answer } => self.store_answered(id, answer, now),
            LinkEvent::Presence { room, user, joined } => {
                self.presence(&room, &user, joined, now);
            }
            LinkEvent::SessionsEnded { digests, why } => {
                self.handle_sessions_ended(&digests, why, now);
            }
        }
    }

    /// A message Redis ordered: to this node's members of its room (with
    /// Redis's `seq`, `epoch` and `ts`), into the local history, and to
    /// the observers.
    fn deliver(&mut self, m: &Delivered, now: Time) {
        match self.reg.adopt(&m.room, m.seq, m.epoch) {
            Adopted::NotHere | Adopted::Stale => return,
            Adopted::Follows => {}
            // The numbering broke (Redis restarted, or this node missed
            // messages): JSON clients hear it before the message, as a
            // resume that did not recover, so that none skips a `seq` it
            // thinks it has seen (PROTOCOL §4).
            Adopted::Renumbered => {
                let epoch = format!("{:016x}", m.epoch);
                let text = resume_json(&m.room, &epoch, m.seq.saturating_sub(1), false);
                self.send_to_json_members(&m.room, &text, now);
            }
        }
        let event = Event::Message {
            from: &m.from,
            text: &m.text,
        };
        self.broadcast_stamped(&m.room, event, Some((m.seq, m.ts)), now);
        for observer in &mut self.ctx.observers {
            observer.message(&m.room, &m.from, &m.text, m.seq);
        }
    }

    /// Sends `text` to each JSON-mode member of `room` here.
    fn send_to_json_members(&mut self, room: &str, text: &str, now: Time) {
        let mut json = Vec::new();
        self.reg.for_each_member(room, |conn| {
            if conn.ws().is_some_and(|ws| ws.mode == Mode::Json) {
                json.push(conn.id);
            }
        });
        for id in json {
            self.send_to(id, text, now);
        }
    }

    /// Tells `id` that its message did not go out (an error reply, as for
    /// any refused message).
    fn tell_unsent(&mut self, id: ConnId, detail: &'static str, now: Time) {
        let Some(mode) = self.reg.get(id).and_then(Conn::ws).map(|ws| ws.mode) else {
            return;
        };
        let user = self
            .reg
            .get(id)
            .and_then(Conn::ws)
            .map(|ws| Arc::clone(ws.principal.user_shared()));
        if let Some(user) = user {
            info!("unsent user={} why=\"{detail}\"", quoted(&user));
        }
        let text = Reply::Error("unavailable", detail).render(mode);
        self.send_to(id, &text, now);
    }
}
