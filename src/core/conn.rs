//! One connection's state machine.
//!
//! ```text
//!  accept ─► Http ──(POST /token, /login, password upgrade)──► AwaitPassword
//!             │  ▲                                                  │
//!             │  └───────────── answer sent, keep-alive ────────────┤
//!             │  ▲                                                  │
//!             │  └── (--redis: login, logout, ticket, cookie or ────┤
//!             │       ticket upgrade) ◄──► AwaitStore ──────────────┤
//!             │                                                     │
//!             └──(valid upgrade + credential)──► Ws ◄───────────────┘
//!                                                 │
//!   (final response, close frame, or fatal error) ▼
//!                                              Closing ──(queue drained)──► Lingering ──(EOF or timeout)──► gone
//! ```
//!
//! A connection can only reach `Ws` through [`Ws::new`], which takes a
//! [`Principal`] (only the verifiers in `auth` build one, and the core for
//! an embedding program's authenticator) and which only
//! [`super::registry::Registry::open`] calls, so that an open WebSocket is
//! always listed in its room and under its user.

use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};

use super::cluster::Digest;
use super::fragments::FragmentMeter;
use super::limits::Bucket;
use super::peer::{Peer, ViaProxy};
use super::pipe::OutQueue;
use super::registry::ConnId;
use super::time::{Time, Timer};
use crate::auth::{Credential, Principal};
use crate::http::response::Then;
use crate::http::upgrade::{Mode, Upgrade};

/// A [`Time`] that is never the epoch itself, so that an `Option<At>`
/// costs no more than a `u64` (these sit in every connection's record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct At(NonZeroU64);

impl At {
    /// The time `t` (the epoch is read as 1 ms after it, which no clock
    /// here shows).
    pub fn new(t: Time) -> At {
        At(NonZeroU64::new(t.as_millis()).unwrap_or(NonZeroU64::MIN))
    }

    /// The time it holds.
    pub fn time(self) -> Time {
        Time::from_millis(self.0.get())
    }
}

/// Why a password check was started, and so what to do with its answer.
#[derive(Debug)]
pub enum Purpose {
    /// `POST /token`: answer with a JWT.
    Token(Cors),
    /// `POST /login`: answer with a session cookie.
    Login(Cors),
    /// An opt-in password upgrade: open the WebSocket.
    Upgrade(Box<Upgrade>),
}

impl Purpose {
    /// Who may read the answer across origins.
    pub fn cors(&self) -> Cors {
        match self {
            Purpose::Token(cors) | Purpose::Login(cors) => *cors,
            Purpose::Upgrade(_) => Cors::default(),
        }
    }
}

/// Which `--allowed-origin` (an index) sent the request, when it may read
/// the answer: CORS (`http::cors`). `None` for every other origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cors(pub Option<usize>);

/// A password check to start: whose, why, and what to do after it.
#[derive(Debug)]
pub struct PasswordCheck {
    /// The user name the peer gave.
    pub user: String,
    /// The password the peer gave (never logged).
    pub password: String,
    /// What the answer is for.
    pub purpose: Purpose,
    /// Whether the connection stays open after the answer.
    pub then: Then,
    /// Bytes that came after the request, processed once it is answered.
    pub rest: Vec<u8>,
}

/// What a connection awaits from the session store in Redis (with
/// `--redis`), and so what to do with the answer.
pub enum StoreStep {
    /// `POST /login`: the session is being stored; then the cookie.
    Login {
        /// The cookie value (a secret: never logged).
        cookie: String,
        /// Whose session.
        user: String,
        /// Who may read the answer across origins.
        cors: Cors,
    },
    /// `POST /logout`: the sessions are being ended on every node.
    Logout {
        /// The sessions' digests.
        digests: Vec<Digest>,
        /// Who may read the answer across origins.
        cors: Cors,
    },
    /// `POST /ws-ticket` with a cookie: its session is being looked up;
    /// then a ticket is issued.
    TicketSession {
        /// The session id's digest.
        digest: Digest,
        /// Who may read the answer across origins.
        cors: Cors,
    },
    /// `POST /ws-ticket`: the ticket is being stored; then it is sent.
    Ticket {
        /// The ticket (a secret: never logged).
        ticket: String,
        /// Whose.
        user: String,
        /// Who may read the answer across origins.
        cors: Cors,
    },
    /// An upgrade with a cookie or a ticket: its session is being looked
    /// up, or its ticket taken.
    Upgrade(Box<Upgrade>),
    /// An authenticated upgrade: the WebSocket is being counted across
    /// nodes (the per-user limit).
    Join(Box<(Principal, Upgrade)>),
    /// A counted upgrade that resumes: Redis's stream of its room is being
    /// read, for what this node did not keep.
    Stream(Box<Counted>),
}

/// A WebSocket counted in Redis, about to open (with `--redis`).
#[derive(Debug)]
pub struct Counted {
    /// Who.
    pub principal: Principal,
    /// The upgrade.
    pub upgrade: Upgrade,
    /// Close the user's oldest WebSocket here to make room.
    pub evict: bool,
    /// Redis announced this join before the WebSocket opened: tell it.
    pub heard: bool,
}

impl StoreStep {
    /// Who may read the answer across origins.
    pub fn cors(&self) -> Cors {
        match self {
            StoreStep::Login { cors, .. }
            | StoreStep::Logout { cors, .. }
            | StoreStep::TicketSession { cors, .. }
            | StoreStep::Ticket { cors, .. } => *cors,
            StoreStep::Upgrade(_) | StoreStep::Join(_) | StoreStep::Stream(_) => Cors::default(),
        }
    }

    /// The request's target, for a refusal's log line.
    pub fn target(&self) -> String {
        match self {
            StoreStep::Login { .. } => "/login".into(),
            StoreStep::Logout { .. } => "/logout".into(),
            StoreStep::TicketSession { .. } | StoreStep::Ticket { .. } => "/ws-ticket".into(),
            StoreStep::Upgrade(upgrade) => format!("/ws?room={}", upgrade.room),
            StoreStep::Join(join) => format!("/ws?room={}", join.1.room),
            StoreStep::Stream(counted) => format!("/ws?room={}", counted.upgrade.room),
        }
    }
}

impl fmt::Debug for StoreStep {
    // why by hand: a cookie or ticket value never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            StoreStep::Login { .. } => "Login",
            StoreStep::Logout { .. } => "Logout",
            StoreStep::TicketSession { .. } => "TicketSession",
            StoreStep::Ticket { .. } => "Ticket",
            StoreStep::Upgrade(_) => "Upgrade",
            StoreStep::Join(_) => "Join",
            StoreStep::Stream(_) => "Stream",
        };
        write!(f, "StoreStep::{name}([redacted])")
    }
}

/// Where a connection is in its life.
#[derive(Debug)]
pub enum Phase {
    /// Reading a request head (and body); `buf` holds unparsed bytes.
    Http {
        /// Bytes received and not yet handled.
        buf: Vec<u8>,
        /// `100 Continue` already sent for the request being read.
        sent_continue: bool,
    },
    /// A password is being checked off the event loop; input is held.
    AwaitPassword {
        /// The job's number.
        job: u64,
        /// What the answer is for.
        purpose: Purpose,
        /// Whether the connection stays open after the answer.
        then: Then,
        /// Bytes that arrived after the request.
        rest: Vec<u8>,
    },
    /// A question to the session store in Redis is under way (with
    /// `--redis`); input is held.
    AwaitStore {
        /// The query's id.
        query: u64,
        /// What the answer is for.
        step: StoreStep,
        /// Whether the connection stays open after the answer.
        then: Then,
        /// Bytes that arrived after the request.
        rest: Vec<u8>,
    },
    /// An open, authenticated WebSocket. why inline: it is what most
    /// connections are, and no other phase is larger, so a box would only
    /// add its pointer and its allocation to each.
    Ws(Ws),
    /// The last bytes (a final response or a close frame) are queued;
    /// input is discarded. Once the queue drains the write half is shut.
    Closing,
    /// The write half is shut; waiting for the peer to hang up so that
    /// unread input cannot turn our last bytes into a reset.
    Lingering,
}

impl Phase {
    /// A short name: `http`, `await-password`, `ws`, `closing` or
    /// `lingering`.
    #[cfg(any(test, fuzzing))]
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Http { .. } => "http",
            Phase::AwaitPassword { .. } => "await-password",
            Phase::AwaitStore { .. } => "await-store",
            Phase::Ws(_) => "ws",
            Phase::Closing => "closing",
            Phase::Lingering => "lingering",
        }
    }
}

/// Where a WebSocket that holds no tungstenite state of its own gets one:
/// the configuration a fresh one is made with, and one spare, given back
/// by the last WebSocket that went idle (so a busy server does not make
/// one a message; the spare keeps its read buffer, at most a frame).
#[derive(Debug)]
pub struct Protocols {
    config: WebSocketConfig,
    spare: Option<Box<WebSocketContext>>,
}

impl Protocols {
    /// Fresh contexts get `config`.
    pub fn new(config: WebSocketConfig) -> Protocols {
        Protocols {
            config,
            spare: None,
        }
    }
}

/// The state of an open WebSocket.
#[derive(Debug)]
pub struct Ws {
    /// tungstenite's protocol state (reading frames, control replies),
    /// held only while it has some of its own: a frame or a message that
    /// spans reads, or a close under way. `None` stands for a fresh one
    /// (open, nothing buffered, nothing to send), which is all an idle
    /// WebSocket's would be. why: it is 256 bytes, and most WebSockets are
    /// idle most of the time (see [`Ws::protocol`], [`Ws::release`]).
    ctx: Option<Box<WebSocketContext>>,
    /// Who this is (shared with the registry's tables).
    pub user: Arc<str>,
    /// How it proved it (a token's expiry moves on `/refresh`).
    pub credential: Credential,
    /// Its role may send chat lines ([`crate::config::Config::may_send`]),
    /// decided when it opens and on `/refresh`. why not the role: that is
    /// all the role is asked, and a string per connection is an
    /// allocation (the principal's other parts are for admission only).
    pub may_send: bool,
    /// The room it is in (empty once it left: the name went to
    /// `Leaving`), its name shared with the room's own.
    pub room: Arc<str>,
    /// Its index among the room's members, or [`Ws::LEFT`] once it left
    /// (kept by the registry: see [`Ws::index`]). why a bare `u32`: an
    /// `Option<usize>` was 16 bytes of every connection's record, an
    /// `Option<u32>` 8; members are connections, whose slots are `u32`
    /// too and never reach `u32::MAX`.
    index: u32,
    /// Text or JSON mode (`wsgate.json`).
    pub mode: Mode,
    /// When the peer last sent anything (pongs included).
    pub last_seen: Time,
    /// When the next ping is due.
    pub next_ping: Time,
    /// A token connection closes `4401` at this time (`exp` + leeway).
    pub expires: Option<At>,
    /// When to warn that the token is about to expire; `None` once warned.
    pub warn_at: Option<At>,
    /// The message-rate bucket, when a rate is configured.
    pub bucket: Option<Bucket>,
    /// Messages refused for rate in a row (each accepted one takes one off).
    pub strikes: u8,
    /// Charges the fragments of incoming messages against the size limit;
    /// only held while a frame or a fragmented message spans reads (an
    /// idle connection keeps no meter).
    pub meter: Option<Box<FragmentMeter>>,
}

impl Ws {
    /// An open WebSocket for `principal`, whose role may send chat lines
    /// or not (`may_send`), joined to no room yet (only
    /// [`super::registry::Registry::open`] makes one, and joins it).
    pub(super) fn new(
        principal: Principal,
        may_send: bool,
        room: Arc<str>,
        mode: Mode,
        now: Time,
    ) -> Ws {
        Ws {
            ctx: None,
            user: Arc::clone(principal.user_shared()),
            credential: principal.credential().clone(),
            may_send,
            room,
            index: Ws::LEFT,
            mode,
            last_seen: now,
            next_ping: now,
            expires: None,
            warn_at: None,
            bucket: None,
            strikes: 0,
            meter: None,
        }
    }

    /// [`Ws::index`] of a WebSocket in no room (yet, or any more).
    const LEFT: u32 = u32::MAX;

    /// Its index among its room's members; `None` when it is in no room
    /// (not yet joined, or left).
    pub fn index(&self) -> Option<usize> {
        (self.index != Ws::LEFT).then_some(self.index as usize)
    }

    /// Sets its index among its room's members (`None`: it left).
    pub fn set_index(&mut self, index: Option<usize>) {
        // why `as`: see the field.
        self.index = index.map_or(Ws::LEFT, |i| i as u32);
    }

    /// tungstenite's state for this WebSocket: its own, or else the spare
    /// (or a fresh one), which is its own from then on.
    pub fn protocol(&mut self, protocols: &mut Protocols) -> &mut WebSocketContext {
        self.ctx.get_or_insert_with(|| {
            protocols.spare.take().unwrap_or_else(|| {
                Box::new(WebSocketContext::new(Role::Server, Some(protocols.config)))
            })
        })
    }

    /// Gives tungstenite's state back (as the spare) when it holds nothing
    /// a fresh one would not. Call it only once tungstenite has taken all
    /// the input it was given (its last read said `WouldBlock`): then, with
    /// no fragment meter, every byte read was part of a whole frame that it
    /// decoded, and no fragmented message is open (the meter reads the
    /// same headers, and is held exactly while a frame or a message spans
    /// reads); its pongs and close replies were written by that last read
    /// (our queue never blocks); and while it can write, no close frame
    /// went either way. So its buffers are empty and its state is `Active`,
    /// as in a fresh one.
    pub fn release(&mut self, protocols: &mut Protocols) {
        if self.meter.is_none() && self.can_write() {
            if let Some(ctx) = self.ctx.take() {
                protocols.spare = Some(ctx);
            }
        }
    }

    /// True while it holds tungstenite state of its own.
    pub fn holds_protocol(&self) -> bool {
        self.ctx.is_some()
    }

    /// True while frames may be sent to it: no close frame has gone either
    /// way.
    pub fn can_write(&self) -> bool {
        self.ctx.as_ref().is_none_or(|ctx| ctx.can_write())
    }

    /// Sets when a token connection is warned (`warning` before `exp`, or
    /// at once when that has passed) and when it is closed (`exp` plus
    /// `leeway`).
    pub fn set_expiry(&mut self, exp: Time, leeway: Duration, warning: Duration, now: Time) {
        self.expires = Some(At::new(exp + leeway));
        self.warn_at = Some(At::new(exp.before(warning).max(now)));
    }

    /// The earliest of this WebSocket's own timers, given the ping
    /// interval; on a tie the one listed first wins (ending the connection
    /// before warning or pinging it).
    pub fn next_timer(&self, ping_interval: Duration) -> (Time, Timer) {
        let silence = self.last_seen + ping_interval.saturating_mul(2);
        let others = [
            self.expires.map(|e| (e.time(), Timer::Expiry)),
            self.warn_at.map(|w| (w.time(), Timer::ExpiryWarning)),
            Some((self.next_ping, Timer::Ping)),
        ];
        let mut next = (silence, Timer::Silence);
        for (at, timer) in others.into_iter().flatten() {
            if at < next.0 {
                next = (at, timer);
            }
        }
        next
    }
}

/// One connection, from accept until the socket is dropped.
#[derive(Debug)]
pub struct Conn {
    /// Its id (slot and generation).
    pub id: ConnId,
    /// Its client's address (through a trusted proxy, the client the
    /// proxy named; see [`Conn::via`]).
    pub peer: Peer,
    /// The trusted proxy it came through, if it did.
    pub via: Option<Box<ViaProxy>>,
    /// Bytes to write.
    pub out: OutQueue,
    /// Listed in the server's dirty list (has output to flush this turn).
    pub dirty: bool,
    /// The connection's next deadline (`None` only while it is acted on).
    pub deadline: Option<At>,
    /// What `deadline` is for.
    pub timer: Timer,
    /// The earliest entry of this connection in the server's timer heap.
    /// A later `deadline` does not push another entry: when this one comes
    /// due it re-arms for `deadline`, so the heap holds about one entry a
    /// connection however often deadlines move.
    pub armed: Option<At>,
    /// The peer shut its write half; once the answer is written the socket
    /// is dropped (no linger: the peer has nothing more to send).
    pub eof: bool,
    /// It opened a WebSocket; until then it counts against its address's
    /// unauthenticated connections.
    pub authenticated: bool,
    /// The shell was told not to read it (flow control) and waits for
    /// [`super::Action::Resume`].
    pub parked: bool,
    /// The kernel took bytes from its queue since the budget's clock last
    /// started (see `Server::on_budget_deadline`).
    pub progressed: bool,
    /// Where it is in its life.
    pub phase: Phase,
}

impl Conn {
    /// The open WebSocket, if it is one.
    pub fn ws(&self) -> Option<&Ws> {
        match &self.phase {
            Phase::Ws(ws) => Some(ws),
            _ => None,
        }
    }

    /// The open WebSocket, if it is one.
    pub fn ws_mut(&mut self) -> Option<&mut Ws> {
        match &mut self.phase {
            Phase::Ws(ws) => Some(ws),
            _ => None,
        }
    }

    /// True when broadcasts may be queued to it: an open WebSocket that
    /// has not sent or received a close frame.
    pub fn can_receive(&self) -> bool {
        self.ws().is_some_and(Ws::can_write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection holds a `Conn` (its slab slot), so a field added to
    /// it or to `Ws` is paid by every idle WebSocket (issue 13: at most 512
    /// bytes each at 15,000, of which this is half).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_record_stays_small() {
        assert_eq!(std::mem::size_of::<Ws>(), 128);
        assert_eq!(std::mem::size_of::<Phase>(), 128);
        assert_eq!(std::mem::size_of::<Conn>(), 256);
    }
}
