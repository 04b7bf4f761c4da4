//! The sans-IO core: every connection's state, every decision, no sockets
//! and no clock.
//!
//! The shell drives a [`Server`] with `handle_*` calls, passing the current
//! [`Time`] (every span is a `std::time::Duration`), and drains it with
//! `poll_*` calls:
//!
//! - [`Server::handle_accept`], [`Server::handle_bytes`],
//!   [`Server::handle_closed`], [`Server::handle_written`],
//!   [`Server::handle_writable`], [`Server::handle_timeout`],
//!   [`Server::handle_password_checked`], [`Server::handle_shutdown`];
//! - [`Server::poll_transmit`] (a connection with bytes to write),
//!   [`Server::pending`] (those bytes), [`Server::poll_action`] (sockets
//!   to shut or drop, passwords to check, reading to resume),
//!   [`Server::poll_timeout`] (the next deadline);
//! - [`Server::should_read`] before each read: flow control.
//!
//! # Flow control
//!
//! Slowness is judged by whether a connection drains, never by how much
//! one turn queued to it (a burst is not slowness):
//!
//! - a WebSocket whose queue is over the queue limit
//!   ([`crate::config::Limits::max_queue_bytes`]) after a write attempt
//!   starts a clock; if the queue is still over the limit when
//!   [`crate::config::Limits::slow_consumer_timeout`] has passed, it is
//!   closed `1013` and its unsent frames are dropped;
//! - a queue that reaches the hard ceiling
//!   ([`crate::config::Limits::queue_ceiling`]) is closed `1013` at once;
//! - while its own queue is over the limit, a connection's input is not
//!   read (its pings and commands wait for it to read its answers);
//! - all queues together are bounded by a budget
//!   ([`crate::config::Limits::queue_budget_bytes`]): at the budget no
//!   WebSocket input is read at all (frames that came with an upgrade
//!   request are held too), so senders' TCP windows fill (backpressure)
//!   until writes bring the total down; readers that drain are never
//!   closed for it, nor for a silence the server imposed. If the total
//!   stays at the budget for the slow-consumer timeout, the queues the
//!   kernel took nothing from meanwhile are closed `1013`, however small.
//!
//! Every change of a queue goes through `settle` (the total follows it)
//! and every fall of the total through `total_changed_from` (whoever
//! waited may resume): there is one place for each.
//!
//! Because time is an argument, handshake timeouts, heartbeats, token
//! expiry and rate limits are unit-tested with a virtual clock
//! (`tests/`, through the `testkit` harness).
//!
//! The work is split by what a connection is doing: `requests` (plain
//! HTTP: login, tokens, tickets, logout, metrics), `handshake` (the
//! upgrade), `websocket` (chat, timers, endings). In each, the decisions
//! are handlers on the `Context` (configuration, verifiers, stores, rate
//! limits, counters, hooks) that borrow at most the one WebSocket they
//! are about (and the rooms, to read) and return what to do (`Routed`, `Authenticated`, `Step`);
//! the `Server` carries that out on the `Registry` and the queues.

mod authenticate;
mod chat;
pub mod cluster;
mod cluster_presence;
mod cluster_sessions;
mod conn;
mod context;
mod ending;
mod fragments;
mod handshake;
#[cfg(any(test, fuzzing))]
mod inspect;
mod limits;
mod logfmt;
mod metrics;
mod observe;
mod peer;
pub(crate) mod pipe;
mod registry;
mod requests;
mod rooms;
#[cfg(test)]
mod tests;
mod tickets;
mod time;
mod websocket;

pub use authenticate::{Authenticate, Identity, Verdict};
pub(crate) use limits::AddrKey;
pub(crate) use logfmt::quoted;
pub use observe::{Observe, Publication, PublishError};
pub use registry::ConnId;
pub use time::Time;
use time::Timer;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use log::info;

use crate::auth::users::VerifiedUser;
use crate::config::Config;
use crate::http::Response;
use crate::http::response::{Part, Then};
use crate::http::upgrade::Reject;

use crate::http::proxied::{self, ProxyHeader};
use conn::{Conn, Cors, Phase, Protocols, Purpose};
use context::Context;
use metrics::Gauges;
use peer::ViaProxy;
use registry::Registry;
use requests::Detail;

/// A password check handed to the helper thread.
#[derive(Debug, Clone, Copy)]
struct Job {
    conn: ConnId,
    addr: AddrKey,
}

/// How often expired sessions, tickets and idle per-IP buckets are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// `Retry-After` seconds on a `503`, and on a `429` for a user's
/// connection limit.
const RETRY_AFTER_SECS: u64 = 1;

/// Bytes of requests a peer may send ahead of reading the answers
/// (beyond one request head and body).
const PIPELINE_LIMIT: usize = 64 * 1024;

/// How long a password check may take on the helper thread before the
/// request is answered `503`.
const PASSWORD_TIMEOUT: Duration = Duration::from_secs(30);

/// How often expired sessions, tickets and rate buckets are swept: every
/// minute; with `--redis` often enough that a session WebSockets here use
/// is touched in Redis at least three times within its idle limit.
fn sweep_interval(ctx: &Context) -> Duration {
    let idle = ctx.config.session_idle;
    if ctx.clustered() {
        SWEEP_INTERVAL.min((idle / 3).max(Duration::from_secs(1)))
    } else {
        SWEEP_INTERVAL
    }
}

/// Something only the shell can do.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Drop the socket now; the core has forgotten the connection.
    Close(ConnId),
    /// Everything queued was written: shut the socket's write half, keep
    /// reading (the core discards the input) until end of stream.
    ShutdownWrite(ConnId),
    /// Check a password off the event loop, then call
    /// [`Server::handle_password_checked`] with the job's number.
    CheckPassword(PasswordJob),
    /// Store and fan out a chat message through Redis (`--redis`); the
    /// answer comes back through [`Server::handle_link`].
    Publish(cluster::Publish),
    /// Ask Redis about sessions or tickets (`--redis`); the answer comes
    /// back through [`Server::handle_link`].
    Query(cluster::Query),
    /// Reading `id` may go on: [`Server::should_read`] said no to it
    /// before, and the queues it waited for have drained. Read it now
    /// (its readiness event may have come and gone).
    Resume(ConnId),
}

/// What to do with a socket just accepted.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Accept {
    /// The core holds it now as connection `id`.
    Open(ConnId),
    /// Refused (a connection limit): write these bytes once, shut the
    /// socket and drop it. The core holds nothing for it, so a refused
    /// connection never takes a slot.
    Refuse(Vec<u8>),
    /// Shutting down: drop it without a word.
    Drop,
}

impl Accept {
    /// The connection's id, when the core took it.
    pub fn id(&self) -> Option<ConnId> {
        match self {
            Accept::Open(id) => Some(*id),
            Accept::Refuse(_) | Accept::Drop => None,
        }
    }
}

/// A password to check on a helper thread.
#[derive(PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordJob {
    /// Echo this back in [`Server::handle_password_checked`].
    pub job: u64,
    /// The user name as sent.
    pub user: String,
    /// The password as sent.
    pub password: String,
}

impl fmt::Debug for PasswordJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordJob({}, [redacted])", self.job)
    }
}

/// The core: the context the handlers decide with, the registry of
/// connections, and the flow-control state that ties their queues together.
pub struct Server {
    /// Configuration, verifiers, stores, rate limits, counters, hooks.
    ctx: Context,
    /// Every connection and every index over them.
    reg: Registry,
    actions: VecDeque<Action>,
    dirty: Vec<ConnId>,
    next_job: u64,
    /// Password jobs the helper thread has not answered, including those
    /// whose connection is gone: they still cost the helper their time.
    jobs: HashMap<u64, Job>,
    /// Bytes queued to all connections (the sum of what each queue last
    /// settled, see `settle`).
    queued_total: usize,
    /// WebSockets whose queue is over the limit, and since when: the
    /// slow-consumer clock.
    backlog: HashMap<ConnId, Time>,
    /// Connections the shell was told not to read (`Conn::parked`); may
    /// hold stale ids, skipped when walked.
    parked: Vec<ConnId>,
    /// How many connections are parked.
    parked_count: usize,
    /// Input read but not yet processed because the connection's input
    /// waits (see [`Server::hold_input`]); at most one read's worth each.
    held: HashMap<ConnId, Vec<u8>>,
    /// Since when the queue total has been at the budget (and not fallen
    /// under half of it): the budget's verdict on queues that do not drain.
    pressure_since: Option<Time>,
    next_sweep: Time,
    /// Reused buffers for encoding a broadcast once per mode.
    scratch: Vec<u8>,
    scratch_json: Vec<u8>,
    /// tungstenite's state for WebSockets that hold none (idle ones).
    protocols: Protocols,
}

impl Server {
    /// A server with `config`, starting at time `now`.
    ///
    /// # Panics
    /// When `config.secrets` is empty or holds a secret shorter than 32
    /// bytes: `main` validates both before it gets here.
    pub fn new(config: Config, now: Time) -> Server {
        let ctx = Context::new(config);
        let next_sweep = now + sweep_interval(&ctx);
        let protocols = Protocols::new(ctx.ws_config);
        Server {
            reg: Registry::new(ctx.epoch_base),
            ctx,
            actions: VecDeque::new(),
            dirty: Vec::new(),
            next_job: 0,
            jobs: HashMap::new(),
            queued_total: 0,
            backlog: HashMap::new(),
            parked: Vec::new(),
            parked_count: 0,
            held: HashMap::new(),
            pressure_since: None,
            next_sweep,
            scratch: Vec::new(),
            scratch_json: Vec::new(),
            protocols,
        }
    }

    /// Adds an authenticator, consulted (in the order added) before the
    /// built-in checks on every upgrade.
    pub fn add_authenticator(&mut self, authenticator: Box<dyn Authenticate>) {
        self.ctx.authenticators.push(authenticator);
    }

    /// Adds an observer, told (in the order added) of joins, leaves and
    /// chat lines, and asked about text-mode commands the server does not
    /// know.
    pub fn add_observer(&mut self, observer: Box<dyn Observe>) {
        self.ctx.observers.push(observer);
    }

    /// An embedding program's line into a room, delivered to every member
    /// as from `publication.from()` (in JSON mode with the room's next
    /// `seq`). Observers are not told of it. Returns how many connections
    /// it was queued to (0 for a room without members: nothing is kept).
    ///
    /// # Errors
    /// [`PublishError::TooLong`] for a line longer than
    /// `limits.max_message_bytes`, as a client's would be.
    pub fn handle_publish(
        &mut self,
        publication: &Publication,
        now: Time,
    ) -> Result<usize, PublishError> {
        if publication.text().len() > self.ctx.config.limits.max_message_bytes {
            return Err(PublishError::TooLong);
        }
        let room = publication.room();
        let members = self.reg.rooms().get(room).map_or(0, |r| r.members.len());
        if self.is_clustered() {
            // Every node's members hear it once Redis has ordered it.
            self.publish(None, room, publication.from(), publication.text(), now);
        } else if members > 0 {
            let event = chat::Event::Message {
                from: publication.from(),
                text: publication.text(),
            };
            self.broadcast(room, event, now);
        }
        Ok(members)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Number of connections the core holds (any phase).
    pub fn connections(&self) -> usize {
        self.reg.len()
    }

    /// True while the core holds connection `id`.
    pub fn holds(&self, id: ConnId) -> bool {
        self.reg.get(id).is_some()
    }

    /// Number of rooms with members.
    pub fn rooms(&self) -> usize {
        self.reg.rooms().len()
    }

    /// Number of open WebSockets.
    pub fn websockets(&self) -> usize {
        self.reg.websockets()
    }

    /// Bytes queued (not yet written) for `id`.
    pub fn queued(&self, id: ConnId) -> usize {
        self.reg.get(id).map_or(0, |c| c.out.len())
    }

    /// Bytes queued to all connections together.
    pub fn queued_total(&self) -> usize {
        self.queued_total
    }

    /// Connections whose input is not being read (backpressure).
    pub fn paused_inputs(&self) -> usize {
        self.parked_count
    }

    /// True when `id` is an open, authenticated WebSocket.
    pub fn is_websocket(&self, id: ConnId) -> bool {
        self.reg.get(id).is_some_and(|c| c.ws().is_some())
    }

    /// True when the write half of `id` is shut as soon as its queue is
    /// out ([`Action::ShutdownWrite`] follows the write that empties it):
    /// the shell may hold that last write for the FIN to go with it. Not
    /// once the peer's end of stream was read: the core then says
    /// [`Action::Close`], and a close sends no FIN while another process
    /// (a forked child before its `exec`) holds the socket, which would
    /// leave a held write waiting for TCP's probe timer.
    pub fn shuts_when_written(&self, id: ConnId) -> bool {
        self.reg
            .get(id)
            .is_some_and(|c| matches!(c.phase, Phase::Closing) && !c.eof)
    }

    /// Entries in the timer heap (about one a connection).
    pub fn timer_entries(&self) -> usize {
        self.reg.timer_entries()
    }

    /// True once [`Server::handle_shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.ctx.shutting_down
    }

    // ------------------------------------------------------------------
    // handle_*

    /// A TCP connection was accepted from `peer`. The server's connection
    /// limit and the per-address limits are checked here, before the
    /// connection takes a slot: a refused one is answered `503` or `429`
    /// by the shell at once and held by nobody.
    ///
    /// A trusted proxy (`Config::trusted_proxies`) passes the per-address
    /// limits; its clients' addresses count once it names them. With
    /// `Config::proxy_protocol` its connection then awaits a PROXY
    /// protocol header ([`Server::awaits_proxy_header`]).
    pub fn handle_accept(&mut self, peer: SocketAddr, now: Time) -> Accept {
        if self.ctx.shutting_down {
            return Accept::Drop;
        }
        self.ctx.metrics.accepted += 1;
        let client = self.ctx.peer(peer);
        let load = self.reg.load(client.key());
        if let Some(rej) = (self.ctx).accept_refusal(client, self.reg.len(), load, now) {
            let mut bytes = Vec::new();
            rej.response()
                .write_to(&mut bytes, Then::Close, Part::Whole);
            return Accept::Refuse(bytes);
        }
        let via = client.trusted.then(|| {
            Box::new(ViaProxy {
                proxy: peer,
                hop: Some(peer),
                awaits_header: self.ctx.config.proxy_protocol,
            })
        });
        let id = self.reg.admit(client, via);
        let deadline = now + self.ctx.config.limits.handshake_timeout;
        self.set_deadline(id, deadline, Timer::Handshake);
        Accept::Open(id)
    }

    /// True while connection `id` waits for its PROXY protocol header (it
    /// is from a trusted proxy, and `Config::proxy_protocol` is on): the
    /// shell passes what the connection sent first to
    /// [`Server::handle_proxy_header`], peeked, before anything else (TLS
    /// included).
    pub fn awaits_proxy_header(&self, id: ConnId) -> bool {
        (self.reg.get(id)).is_some_and(|c| c.via.as_ref().is_some_and(|v| v.awaits_header))
    }

    /// `bytes`, what connection `id` has sent so far (peeked, not taken
    /// off the stream), read as its PROXY protocol header: how many of
    /// them to take off the stream as the header, then read the stream as
    /// usual, or `None` when the header is not whole yet (peek again when
    /// more arrives; the request-head deadline runs meanwhile).
    ///
    /// With the client's address the connection counts under it, and the
    /// per-address limits are checked for it as at accept. A refusal, or
    /// bytes that are not a PROXY header, end the connection: on a plain
    /// port with a `429` or a `400`, on a TLS port without a word (as at
    /// accept). Either way `Some(_)` is returned and the shell carries
    /// on as usual: the core discards what it reads, or an
    /// [`Action::Close`] is queued. So does a header that comes after the
    /// connection began to close (shutdown): it is not read.
    // why: only for trusted proxies; kept out of the loop that calls it.
    #[inline(never)]
    pub fn handle_proxy_header(&mut self, id: ConnId, bytes: &[u8], now: Time) -> Option<usize> {
        let tls = self.ctx.config.tls.is_some();
        let conn = self.reg.get_mut(id)?;
        let open = matches!(conn.phase, Phase::Http { .. });
        let Some(via) = conn.via.as_mut().filter(|v| v.awaits_header) else {
            return Some(0);
        };
        if !open {
            via.awaits_header = false;
            return Some(0);
        }
        let (len, source) = match proxied::proxy_header(bytes) {
            ProxyHeader::Incomplete => return None,
            ProxyHeader::Header { len, source } => (len, source),
            ProxyHeader::Invalid => {
                via.awaits_header = false;
                let rej = Reject::BadRequest("expected a PROXY protocol header");
                self.refuse_early(id, rej, tls, now);
                return Some(0);
            }
        };
        via.awaits_header = false;
        via.hop = source;
        if let Some(source) = source {
            let client = self.ctx.peer(source);
            let fresh = client.key() != conn.peer.key();
            let load = self.reg.load(client.key());
            self.reg.rekey(id, client);
            if fresh {
                if let Some(rej) = self.ctx.proxied_refusal(client, load, tls, now) {
                    self.refuse_early(id, rej, tls, now);
                }
            }
        }
        Some(len)
    }

    /// Ends connection `id` before its first request: on a plain port with
    /// `rej`'s answer, on a TLS port (before the handshake) without a word.
    fn refuse_early(&mut self, id: ConnId, rej: Reject, tls: bool, now: Time) {
        if let Reject::BadRequest(_) = rej {
            self.refuse(id, rej, "-", Detail::default(), now);
        } else if !tls {
            self.respond(id, &rej.response(), Then::Close, Part::Whole, now);
        }
        if tls {
            self.drop_conn(id, now);
        }
    }

    /// Bytes arrived on connection `id`.
    pub fn handle_bytes(&mut self, id: ConnId, data: &[u8], now: Time) {
        let max_head = self.ctx.config.limits.max_head_bytes;
        let max_body = self.ctx.config.limits.max_body_bytes;
        self.ctx.metrics.bytes_in += data.len() as u64;
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        match &mut conn.phase {
            Phase::Http { buf, .. } => {
                // why: nothing is dropped (pipelined requests may follow).
                // `process_http` consumes complete requests until the
                // answers queue up to the cap; a peer that keeps sending
                // requests without reading the answers is cut off.
                if buf.len() + data.len() > PIPELINE_LIMIT + max_head + max_body {
                    info!(
                        "closed peer={} reason=\"pipelined without reading\"",
                        conn.peer
                    );
                    return self.drop_conn(id, now);
                }
                buf.extend_from_slice(data);
                self.process_http(id, now);
            }
            Phase::AwaitPassword { rest, .. } | Phase::AwaitStore { rest, .. } => {
                if rest.len() + data.len() > max_head + max_body {
                    info!(
                        "closed peer={} reason=\"input while an answer is awaited\"",
                        conn.peer
                    );
                    self.drop_conn(id, now);
                } else {
                    rest.extend_from_slice(data);
                }
            }
            Phase::Ws(ws) => {
                ws.last_seen = now;
                // Pongs count against the cap too: `feed_ws` checks it
                // after every frame.
                self.feed_ws(id, data, now);
            }
            Phase::Closing | Phase::Lingering => {}
        }
    }

    /// The peer hung up, or the socket failed. The shell has dropped (or
    /// will drop) the socket itself; no [`Action::Close`] follows.
    pub fn handle_closed(&mut self, id: ConnId, now: Time) {
        if let Some(conn) = self.reg.get(id) {
            if let Some(ws) = conn.ws() {
                info!(
                    "close user={} peer={} code=1006 reason=\"connection lost\"",
                    quoted(&ws.user),
                    conn.peer
                );
                self.ctx.metrics.closed_by_peer(1006);
            }
            self.forget(id, now);
        }
    }

    /// The TLS layer in front of `id` failed with a failure of `class`
    /// (`not_tls`, `incompatible`, `alert`, `protocol`, `eof`, `timeout`):
    /// counted in `/metrics`, logged, and the connection forgotten if the
    /// core still holds it. The shell writes what TLS has left to say (an
    /// alert, or the plain-HTTP `400`) and drops the socket itself; no
    /// [`Action::Close`] follows.
    pub fn handle_tls_failure(&mut self, id: ConnId, class: &'static str, now: Time) {
        *self.ctx.metrics.tls_failures.entry(class).or_default() += 1;
        if let Some(conn) = self.reg.get(id) {
            info!("tls failed peer={} class={class}", conn.peer);
            // An open WebSocket (a bad record or a fatal alert after the
            // handshake) ends like any lost connection: 1006, counted.
            self.handle_closed(id, now);
        }
    }

    /// The peer shut its write half (a read returned end of stream). A
    /// request already received is still answered: the answer is written,
    /// then the socket dropped ([`Action::Close`]). Anything else ends now;
    /// either way an [`Action::Close`] follows, and the shell keeps the
    /// socket until then.
    pub fn handle_eof(&mut self, id: ConnId, now: Time) {
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        conn.eof = true;
        match &mut conn.phase {
            Phase::AwaitPassword { then, .. } | Phase::AwaitStore { then, .. } => {
                *then = Then::Close;
            }
            Phase::Closing => {}
            Phase::Http { .. } if !conn.out.is_empty() => self.begin_closing(id, now),
            Phase::Http { .. } | Phase::Lingering => self.drop_conn(id, now),
            Phase::Ws(_) => {
                self.handle_closed(id, now);
                self.actions.push_back(Action::Close(id));
            }
        }
    }

    /// The shell wrote `n` bytes of [`Server::pending`] for `id`. This is
    /// where draining is seen: a queue back within the limit stops its
    /// slow-consumer clock, and reading that waited for it resumes.
    pub fn handle_written(&mut self, id: ConnId, n: usize, now: Time) {
        let close_timeout = self.ctx.config.limits.close_timeout;
        self.ctx.metrics.bytes_out += n as u64;
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        conn.out.consume(n);
        if n > 0 {
            conn.progressed = true;
        }
        self.settle(id, now);
        let conn = &self.reg[id];
        let drained = conn.out.is_empty();
        // why: the map is empty but for slow consumers; skip hashing.
        if !self.backlog.is_empty() && conn.out.len() <= self.ctx.config.limits.max_queue_bytes {
            self.backlog.remove(&id);
        }
        // Pipelined requests waited for the answers to drain.
        let pipelined = matches!(&conn.phase, Phase::Http { buf, .. } if !buf.is_empty())
            && !self.http_waits(conn);
        let conn = &mut self.reg[id];
        match &conn.phase {
            Phase::Closing if drained && conn.eof => self.drop_conn(id, now),
            Phase::Closing if drained => {
                conn.phase = Phase::Lingering;
                self.actions.push_back(Action::ShutdownWrite(id));
                self.set_deadline(id, now + close_timeout, Timer::Close);
            }
            Phase::Http { .. } if pipelined => self.process_http(id, now),
            _ => {}
        }
        self.unpark(id);
    }

    /// The socket of `id` can take more bytes again.
    pub fn handle_writable(&mut self, id: ConnId) {
        self.mark_dirty(id);
    }

    /// Time passed: act on every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some((id, timer)) = self.reg.pop_due(now) {
            self.on_deadline(id, timer, now);
        }
        if self.budget_verdict_at().is_some_and(|at| now >= at) {
            self.on_budget_deadline(now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + sweep_interval(&self.ctx);
            // A session in use here must not idle out in Redis.
            self.touch_sessions(now);
            if self.ctx.cluster.as_ref().is_some_and(|c| c.recount) {
                self.recount();
            }
            for handle in self.ctx.sessions.sweep(now.as_millis()) {
                self.close_session_sockets(handle, ending::Ending::SessionExpired, now);
            }
            self.ctx.tickets.sweep(now);
            self.ctx.upgrade_ips.sweep(now);
            self.ctx.tls_ips.sweep(now);
            self.ctx.failed_logins.sweep(now);
        }
    }

    /// A password check finished: `user` is the verified user, or `None`
    /// for a wrong name or password.
    pub fn handle_password_checked(&mut self, job: u64, user: Option<VerifiedUser>, now: Time) {
        let Some(Job { conn: id, addr }) = self.jobs.remove(&job) else {
            return;
        };
        self.reg.login_answered(addr);
        if user.is_some() {
            self.ctx.metrics.logins_ok += 1;
            // A token was taken from the failure bucket when the check
            // started (so parallel guesses count); success gives it back.
            self.ctx.failed_logins.refund(addr, now);
        } else {
            self.ctx.metrics.logins_failed += 1;
        }
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        // The connection may have timed out waiting, and moved on.
        if !matches!(conn.phase, Phase::AwaitPassword { .. }) {
            return;
        }
        let Phase::AwaitPassword {
            job: awaited,
            purpose,
            then,
            rest,
        } = std::mem::replace(&mut conn.phase, Phase::Closing)
        else {
            return;
        };
        debug_assert_eq!(awaited, job, "one check at a time per connection");
        let peer = conn.peer;
        match purpose {
            Purpose::Upgrade(_) if self.ctx.shutting_down => {
                let rej = Reject::Unavailable("server shutting down", RETRY_AFTER_SECS);
                self.refuse(id, rej, "/ws", Detail::carrier(Some("password")), now);
            }
            Purpose::Upgrade(upgrade) => match user {
                Some(user) => self.admit(id, user.into_principal(), *upgrade, &rest, now),
                None => {
                    let rej = Reject::Unauthorized("invalid credentials");
                    self.refuse(id, rej, "/ws", Detail::carrier(Some("password")), now);
                }
            },
            Purpose::Token(_) | Purpose::Login(_) => {
                let routed = self.ctx.logged_in(user.as_ref(), &purpose, peer, now);
                self.reg[id].phase = Phase::Http {
                    buf: rest,
                    sent_continue: false,
                };
                let then = if self.ctx.shutting_down {
                    Then::Close
                } else {
                    then
                };
                if self.take_routed(id, routed, then, Part::Whole, now) && then == Then::KeepAlive {
                    self.process_http(id, now);
                }
            }
        }
    }

    /// SIGTERM or SIGINT: every WebSocket gets `1001` "server shutting
    /// down" after what is already queued to it; idle HTTP connections
    /// close; requests in flight get their answer, then close. New
    /// connections are refused from now on.
    pub fn handle_shutdown(&mut self, now: Time) {
        self.ctx.shutting_down = true;
        let ids = self.reg.ids();
        for id in ids {
            match self.reg[id].phase {
                Phase::Ws(_) => self.close_ws(id, ending::Ending::ShuttingDown, now),
                Phase::Http { .. } => self.begin_closing(id, now),
                Phase::AwaitPassword { .. }
                | Phase::AwaitStore { .. }
                | Phase::Closing
                | Phase::Lingering => {}
            }
        }
    }

    // ------------------------------------------------------------------
    // poll_*

    /// A connection with bytes to write this turn. Each appears at most
    /// once until it gets new bytes or becomes writable again.
    pub fn poll_transmit(&mut self) -> Option<ConnId> {
        while let Some(id) = self.dirty.pop() {
            if let Some(conn) = self.reg.get_mut(id) {
                conn.dirty = false;
                if !conn.out.is_empty() {
                    return Some(id);
                }
            }
        }
        None
    }

    /// The bytes queued for `id` (empty for an unknown id).
    pub fn pending(&self, id: ConnId) -> &[u8] {
        self.reg.get(id).map_or(&[], |c| c.out.pending())
    }

    /// The next thing only the shell can do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Asked by the shell before it reads `id`: false while the core wants
    /// that input left in the kernel (flow control: the connection's own
    /// queue is over its limit, or all queues together are at the budget).
    /// The core then remembers `id` and says [`Action::Resume`] once
    /// reading may go on. When it may read, input the core held back
    /// earlier (frames that came in one read with the upgrade request) is
    /// processed first.
    #[must_use]
    pub fn should_read(&mut self, id: ConnId, now: Time) -> bool {
        let Some(conn) = self.reg.get(id) else {
            return true;
        };
        if !self.input_waits(conn) {
            match self.held.remove(&id) {
                None => return true,
                Some(held) => {
                    self.feed_ws(id, &held, now);
                    // It may have to wait now.
                    return self.should_read(id, now);
                }
            }
        }
        self.park(id);
        false
    }

    /// Marks `id` as not being read until [`Action::Resume`].
    fn park(&mut self, id: ConnId) {
        let conn = &mut self.reg[id];
        if !conn.parked {
            conn.parked = true;
            self.parked_count += 1;
            self.parked.push(id);
            // Ids unparked one by one stay listed; don't let them pile up.
            if self.parked.len() > 2 * self.parked_count + 64 {
                let reg = &self.reg;
                self.parked
                    .retain(|&id| reg.get(id).is_some_and(|c| c.parked));
            }
        }
    }

    /// Input already read for `id` while its input should wait (frames
    /// behind an upgrade request): it is held, the connection parked, and
    /// the input processed when [`Server::should_read`] next says yes.
    fn hold_input(&mut self, id: ConnId, input: &[u8]) {
        self.held.entry(id).or_default().extend_from_slice(input);
        self.park(id);
    }

    /// The earliest deadline (it may be one that is no longer armed;
    /// calling [`Server::handle_timeout`] early is harmless).
    pub fn poll_timeout(&self) -> Option<Time> {
        let conn = self.reg.next_deadline();
        let mut at = conn.map_or(self.next_sweep, |c| c.min(self.next_sweep));
        if let Some(verdict) = self.budget_verdict_at() {
            at = at.min(verdict);
        }
        Some(at)
    }

    /// When the budget's clock runs out, if it runs.
    fn budget_verdict_at(&self) -> Option<Time> {
        let slow = self.ctx.config.limits.slow_consumer_timeout;
        self.pressure_since.map(|since| since + slow)
    }

    // ------------------------------------------------------------------
    // Shared plumbing

    /// The server's load, for `/metrics`.
    fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.reg.len(),
            websockets: self.websockets(),
            rooms: self.reg.rooms().len(),
            sessions: self.ctx.sessions.len(),
            queued_bytes: self.queued_total,
            history_messages: self.reg.rooms().history().0,
            history_bytes: self.reg.rooms().history().1,
            redis: (self.ctx.cluster.as_ref())
                .filter(|_| cfg!(feature = "redis"))
                .map(|c| (c.up, c.pending(), c.failed)),
            paused_inputs: self.parked_count,
        }
    }

    /// Refuses a request with its HTTP response, closes, and logs it.
    fn refuse(&mut self, id: ConnId, rej: Reject, target: &str, detail: Detail, now: Time) {
        let Some(conn) = self.reg.get(id) else {
            return;
        };
        self.ctx.log_refusal(conn.peer, rej, target, detail);
        self.respond(id, &rej.response(), Then::Close, Part::Whole, now);
    }

    /// Queues `response` on `id`. Without keep-alive the connection then
    /// closes; with it, the next request head has a fresh timeout.
    fn respond(&mut self, id: ConnId, response: &Response, then: Then, part: Part, now: Time) {
        let limits = &self.ctx.config.limits;
        let (close_timeout, handshake) = (limits.close_timeout, limits.handshake_timeout);
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        response.write_to(conn.out.tail(), then, part);
        if then == Then::KeepAlive {
            // why: a proxy may send the next request for another client,
            // or keep the connection idle in its pool; until the next
            // request names someone, it is the proxy's (or its PROXY
            // header's client's) again.
            if let Some(base) = conn.via.as_ref().map(|v| v.base()) {
                let base = self.ctx.peer(base);
                self.reg.rekey(id, base);
            }
            self.set_deadline(id, now + handshake, Timer::Handshake);
        } else {
            conn.phase = Phase::Closing;
            self.set_deadline(id, now + close_timeout, Timer::Close);
        }
        self.queue_changed(id, now);
        // A closing connection is read (and its input discarded) until
        // its end of stream.
        self.unpark(id);
    }

    /// From now on: discard input, flush the queue, then shut and linger.
    fn begin_closing(&mut self, id: ConnId, now: Time) {
        let close_timeout = self.ctx.config.limits.close_timeout;
        self.backlog.remove(&id);
        self.held.remove(&id);
        self.settle(id, now);
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        if conn.out.is_empty() {
            conn.phase = Phase::Lingering;
            self.actions.push_back(Action::ShutdownWrite(id));
        } else {
            conn.phase = Phase::Closing;
            self.queue_changed(id, now);
        }
        self.set_deadline(id, now + close_timeout, Timer::Close);
        // A closing connection's input is read again (and discarded), so
        // that its end of stream is seen.
        self.unpark(id);
    }

    /// The deadline of `id` came: act on what it was for (the registry's
    /// checker holds the timer to the connection's phase).
    fn on_deadline(&mut self, id: ConnId, timer: Timer, now: Time) {
        let Some(conn) = self.reg.get(id) else {
            return;
        };
        let peer = conn.peer;
        match timer {
            Timer::Handshake => {
                info!("closed peer={peer} reason=\"handshake timeout\"");
                self.drop_conn(id, now);
            }
            Timer::Close => self.drop_conn(id, now),
            Timer::SlowConsumer
            | Timer::Silence
            | Timer::Expiry
            | Timer::ExpiryWarning
            | Timer::Ping => self.on_ws_timer(id, timer, now),
            Timer::StoreQuery => self.store_timed_out(id, now),
            Timer::PasswordCheck => {
                // The helper thread should answer in well under a second;
                // if it does not (gone, or swamped), don't hold the peer.
                // The job still counts until the helper answers it.
                let rej = Reject::Unavailable("password check timed out", RETRY_AFTER_SECS);
                let (peer, cors) = match &self.reg[id] {
                    Conn {
                        peer,
                        phase: Phase::AwaitPassword { purpose, .. },
                        ..
                    } => (*peer, purpose.cors()),
                    conn => (conn.peer, Cors::default()),
                };
                self.ctx.log_refusal(peer, rej, "-", Detail::default());
                let response = self.ctx.with_cors(cors, rej.response());
                self.respond(id, &response, Then::Close, Part::Whole, now);
            }
        }
    }

    /// The core ends a connection and tells the shell to drop the socket.
    fn drop_conn(&mut self, id: ConnId, now: Time) {
        if self.reg.get(id).is_some() {
            self.forget(id, now);
            self.actions.push_back(Action::Close(id));
        }
    }

    /// Removes every trace of `id`. A password job of its stays counted
    /// until the helper answers it.
    fn forget(&mut self, id: ConnId, now: Time) {
        self.leave_room(id, now);
        self.backlog.remove(&id);
        self.held.remove(&id);
        if let Some((conn, _)) = self.reg.remove(id) {
            let before = self.budget_use();
            self.queued_total -= conn.out.accounted();
            if conn.parked {
                self.parked_count -= 1;
            }
            self.total_changed_from(before, now);
        }
    }

    /// Sets the connection's one deadline (replacing any other).
    fn set_deadline(&mut self, id: ConnId, at: Time, timer: Timer) {
        self.reg.set_deadline(id, at, timer);
    }

    /// The queue of `id` changed: count it in the total and schedule a
    /// write.
    fn queue_changed(&mut self, id: ConnId, now: Time) {
        self.settle(id, now);
        self.mark_dirty(id);
    }

    /// Schedules a write of what `id` has queued (its socket can take
    /// bytes, or it has new ones).
    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.reg.get_mut(id) {
            if !conn.dirty && !conn.out.is_empty() {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    /// Brings the queue total up to date with the queue of `id`.
    fn settle(&mut self, id: ConnId, now: Time) {
        if let Some(conn) = self.reg.get_mut(id) {
            let (before, after) = conn.out.settle();
            let used = self.budget_use();
            self.queued_total = self.queued_total + after - before;
            self.total_changed_from(used, now);
        }
    }

    /// What counts against the queue budget: every queue, and the rooms'
    /// history (at most a quarter of the budget, [`Server::history_cap`]).
    pub(super) fn budget_use(&self) -> usize {
        self.queued_total + self.reg.rooms().history().1
    }

    /// The most bytes all rooms' history may hold: a quarter of the queue
    /// budget, so that queues always keep three quarters of it.
    pub(super) fn history_cap(&self) -> usize {
        self.ctx.config.limits.queue_budget_bytes / 4
    }

    /// What counts against the budget ([`Server::budget_use`]) was
    /// `before`. Every way it changes (queued bytes, writes, dropped slow
    /// consumers' frames, gone connections, history kept) comes through
    /// here:
    ///
    /// - it fell under the budget: whoever waited for the budget may read
    ///   again;
    /// - it reached the budget: the budget's clock starts, unless it runs
    ///   already (it stops only once the total is under half the budget).
    ///   When it runs out, queues that the kernel took nothing from all
    ///   that time are closed `1013`, however small (see
    ///   `on_budget_deadline`): queues that do not drain cannot hold
    ///   everyone's input forever.
    pub(super) fn total_changed_from(&mut self, before: usize, now: Time) {
        let budget = self.ctx.config.limits.queue_budget_bytes;
        let total = self.budget_use();
        if before >= budget && total < budget {
            self.unpark_all();
        }
        if total >= budget {
            if self.pressure_since.is_none() {
                self.start_budget_clock(now);
            }
        } else if total < budget / 2 {
            self.pressure_since = None;
        }
    }

    /// Starts (or restarts) the budget's clock: from now on, what the
    /// kernel takes from each queue is noted (`Conn::progressed`).
    fn start_budget_clock(&mut self, now: Time) {
        self.pressure_since = Some(now);
        for conn in self.reg.iter_mut() {
            conn.progressed = false;
        }
    }

    /// The budget's clock ran out with the total still at least half the
    /// budget: every WebSocket whose queue the kernel took nothing from
    /// since the clock started is a slow consumer, whatever its size. The
    /// clock then starts over.
    fn on_budget_deadline(&mut self, now: Time) {
        if self.pressure_since.is_none() {
            return;
        }
        let stuck: Vec<ConnId> = self
            .reg
            .iter()
            .filter(|c| c.can_receive() && !c.out.is_empty() && !c.progressed)
            .map(|c| c.id)
            .collect();
        if !stuck.is_empty() {
            info!(
                "queue budget held: closing {} connections that did not drain",
                stuck.len()
            );
        }
        for id in stuck {
            self.close_ws(id, ending::Ending::SlowConsumer, now);
        }
        if self.pressure_since.is_some() {
            self.start_budget_clock(now);
        }
    }

    /// True when pipelined requests on an HTTP connection wait for the
    /// answers already queued to drain.
    fn http_waits(&self, conn: &Conn) -> bool {
        let limits = &self.ctx.config.limits;
        !conn.out.is_empty()
            && (conn.out.len() >= limits.max_http_queue_bytes
                || self.budget_use() >= limits.queue_budget_bytes)
    }

    /// True when the input of `conn` should stay in the kernel for now.
    fn input_waits(&self, conn: &Conn) -> bool {
        let limits = &self.ctx.config.limits;
        match conn.phase {
            Phase::Ws(_) => {
                self.budget_use() >= limits.queue_budget_bytes
                    || conn.out.len() > limits.max_queue_bytes
            }
            Phase::Http { .. } => self.http_waits(conn),
            Phase::AwaitPassword { .. }
            | Phase::AwaitStore { .. }
            | Phase::Closing
            | Phase::Lingering => false,
        }
    }

    /// Lets the shell read `id` again if it was parked and need not be.
    fn unpark(&mut self, id: ConnId) {
        let Some(conn) = self.reg.get(id) else {
            return;
        };
        if conn.parked && !self.input_waits(conn) {
            self.reg[id].parked = false;
            self.parked_count -= 1;
            self.actions.push_back(Action::Resume(id));
        }
    }

    /// The total fell under the budget: everyone parked that need not be
    /// any more may read again.
    fn unpark_all(&mut self) {
        let parked = std::mem::take(&mut self.parked);
        for &id in &parked {
            self.unpark(id);
        }
        self.parked = parked;
        let reg = &self.reg;
        self.parked
            .retain(|&id| reg.get(id).is_some_and(|c| c.parked));
    }
}
