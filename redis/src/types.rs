//! What the core and the Redis link say to each other: pure data. With
//! `--redis`, a chat message is not broadcast where it arrives: the core
//! asks the link to store and publish it ([`Publish`]), and every node,
//! the sender's own included, delivers it to its local members when Redis
//! hands it back in its one order ([`LinkEvent::Message`]). Sessions,
//! tickets, presence counts and the rooms' streams are asked of Redis
//! with a [`Query`], answered by [`LinkEvent::Answer`].
//!
//! Exhaustive on purpose: both sides are wsgate's, and a new event or
//! answer must be handled by the core (the compiler says where), not fall
//! into a wildcard.

#![allow(clippy::exhaustive_enums, clippy::exhaustive_structs)]

/// A chat message to store and fan out through Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A question for Redis (cluster mode): sessions, tickets, presence, a
/// room's stream; the
/// answer comes back as [`LinkEvent::Answer`] with the same `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// was down were refused), or after a count went wrong. With `first`,
    /// the link starts a new life of this node in Redis, counts the
    /// entries under it, and then removes the life it replaces (users no
    /// longer counted are announced as left; those counted again, or by
    /// another node, are not announced). Answer: [`Answer::Done`].
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
pub enum Ended {
    /// A logout ([`Ask::EndSessions`]).
    LoggedOut,
    /// The user's newer logins pushed them past the per-user limit
    /// ([`Ask::CreateSession`]).
    Evicted,
}

/// What the link tells the core.
#[derive(Clone, Debug, PartialEq, Eq)]
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
