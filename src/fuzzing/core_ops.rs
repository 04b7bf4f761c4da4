//! The `core_ops` target: the sans-IO core driven by a sequence of
//! operations through a simulated shell, the [`Driver`], with the
//! invariants checked after each one.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::auth::jwt::{JwtConfig, Secret};
use crate::auth::users::{Users, VerifiedUser};
use crate::auth::{MAX_ROOM_NAME_LEN, MAX_USER_NAME_LEN};
use crate::config::{Config, PerUserPolicy};
use crate::core::ConnId;
use crate::testkit::{
    Harness, capture_logs, client_frame, form_post, stop_capturing_logs, take_log_lines,
    upgrade_request,
};

use super::{WRONG_KEY, check_log_line};

/// The core driven by a sequence of operations.
///
/// The bytes are decoded by [`arbitrary`] into a [`CoreInput`]: the
/// configuration [`Switches`], then up to [`MAX_OPS`] operations ([`Op`]);
/// input that does not decode is skipped. That derived format is the
/// format of every checked-in `core_ops` input: changing the types
/// (adding, removing or reordering a variant or a field) changes what the
/// files under `fuzz/corpus/core_ops/` and `fuzz/regressions/core_ops/`
/// do, so regenerate the corpus (`cargo fuzz run` into an empty
/// directory, then `cargo fuzz cmin`) and turn each regression input into
/// a named test first (see `src/fuzzing/tests.rs`). After every
/// operation:
///
/// - the shell and the core agree on which connections exist (none
///   forgotten without an [`crate::core::Action::Close`], none dropped and still held);
/// - at most `max_connections` connections (a refused accept holds none,
///   and its answer is a well-formed `429` or `503`);
/// - every queue within the hard ceiling plus the slack of one frame,
///   one close frame and one HTTP response (see [`queue_bound`]), and the
///   server's total of queued bytes is exactly the sum of the queues;
/// - everything a peer receives before a `101` parses as HTTP responses,
///   each with `Content-Length` and `Cache-Control: no-store`, so no
///   WebSocket frame reaches a connection that is not open and
///   authenticated; every open WebSocket whose peer reads has received its
///   `101`;
/// - the rooms, per-user and per-session lists and password jobs are
///   consistent, no user exceeds `max_conns_per_user`, and every
///   connection has a deadline with a timer armed for it
///   ([`crate::core::Server::check_consistency`]); never more rooms than
///   WebSockets;
/// - no log line holds a token, password, session id or ticket that the
///   operations sent, and no refusal body echoes one;
/// - a queue written out whole while [`crate::core::Server::shuts_when_written`]
///   said so (the shell holds that write for the FIN) is followed by an
///   [`crate::core::Action::ShutdownWrite`], never by a bare close
///   (checked by the harness's pump).
///
/// At the end the server is shut down, pending password checks finish and
/// every peer reads: after twice the close timeout no connection is left.
pub fn core_ops(data: &[u8]) {
    if let Some(input) = decode(data) {
        let _ = Driver::run_input(&input);
    }
}

/// The operations `data` stands for; `None` when it does not decode.
pub(super) fn decode(data: &[u8]) -> Option<CoreInput> {
    CoreInput::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// The most operations one input runs (the rest are ignored).
pub(super) const MAX_OPS: usize = 160;

/// One `core_ops` input: how the server is configured, then what happens.
#[derive(Arbitrary, Debug, Clone, Default)]
pub(super) struct CoreInput {
    pub(super) switches: Switches,
    /// Run in order; only the first [`MAX_OPS`].
    pub(super) ops: Vec<Op>,
}

/// Configuration switches, each off by default. The limits they do not
/// touch are small so that they are hit (see [`Driver::run_input`]).
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) struct Switches {
    /// Passwords are accepted on the upgrade (`allow_password_auth`).
    pub(super) password_auth: bool,
    /// A user's connection past the limit evicts the oldest
    /// ([`PerUserPolicy::EvictOldest`]) instead of being refused.
    pub(super) evict_oldest: bool,
    /// No chat message rate limit.
    pub(super) no_message_rate: bool,
    /// No upgrade rate limit.
    pub(super) no_upgrade_rate: bool,
    /// The session cookie is `wsgate`, not `__Host-wsgate`
    /// (`insecure_cookie`).
    pub(super) insecure_cookie: bool,
    /// Echo mode: messages go back to their sender.
    pub(super) echo: bool,
    /// Join and leave notices only in rooms of one (else of up to three).
    pub(super) presence_of_one: bool,
    /// One WebSocket per user (else two).
    pub(super) one_per_user: bool,
    /// The server pings every 5 s (else every 30 s).
    pub(super) ping_5s: bool,
    /// 127.0.0.1, where connections come from by default, is a trusted
    /// proxy (`--trusted-proxy`).
    pub(super) behind_proxy: bool,
    /// With `behind_proxy`: its connections begin with a PROXY header
    /// (`--proxy-protocol`).
    pub(super) proxy_protocol: bool,
    /// Chat goes through Redis (`--redis`; the operations play the link).
    /// Only where the crate is built with the `redis` feature; elsewhere
    /// the server ignores it.
    pub(super) redis: bool,
}

/// One operation. `conn` picks one of the connections the simulated
/// shell holds (`conn` modulo their number; a fresh one is accepted when
/// there is none).
#[derive(Arbitrary, Debug, Clone)]
pub(super) enum Op {
    /// Accept a connection.
    Accept,
    /// Raw bytes from the peer.
    Raw { conn: u8, bytes: Vec<u8> },
    /// An upgrade request.
    Upgrade(Upgrade),
    /// A plain HTTP request, sent `pipelined` (twice in one go) and in
    /// pieces of `2^(dribble % 8 - 1)` bytes (all at once when
    /// `dribble % 8` is 0); a `100-continue` request is neither.
    Http {
        conn: u8,
        request: HttpRequest,
        pipelined: bool,
        dribble: u8,
    },
    /// One client frame with that payload (`opcode % 16`, `rsv % 8`).
    Frame {
        conn: u8,
        opcode: u8,
        fin: bool,
        rsv: u8,
        masked: bool,
        payload: Vec<u8>,
    },
    /// A chat message from the dictionary.
    Chat { conn: u8, message: ChatMessage },
    /// The last bytes sent on the connection again, `times` times in one
    /// read.
    Repeat { conn: u8, times: u8 },
    /// The peer hangs up.
    HangUp { conn: u8 },
    /// The peer shuts its write half: it sends nothing more.
    HalfClose { conn: u8 },
    /// The peer stops reading, or resumes.
    Stall { conn: u8 },
    /// Time passes: `n` × 50 ms, stopping at every deadline.
    Wait50ms(u8),
    /// Time passes: `n` × 5 s, stopping at every deadline.
    Wait5s(u8),
    /// The clock jumps `n` minutes at once.
    JumpMinutes(u8),
    /// The password thread finishes up to `checks % 4 + 1` checks.
    Passwords { checks: u8 },
    /// Shutdown.
    Shutdown,
    /// `n % 16` connections, from four addresses in turn (two in one IPv6
    /// /64).
    AcceptMany { n: u8 },
    /// A peer that does not read takes `16 × blocks` bytes all the same (a
    /// short write).
    ShortRead { conn: u8, blocks: u8 },
    /// A PROXY protocol header naming `client` (v1, or v2 when `v2`).
    ProxyHeader { conn: u8, client: u8, v2: bool },
    /// `GET /healthz` with `X-Forwarded-For` naming `client` (keep-alive).
    Forwarded { conn: u8, client: u8 },
    /// With the `redis` switch: what the link to Redis says.
    Link(LinkOp),
}

/// The Redis link's side, played.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(super) enum LinkOp {
    /// Connected.
    Up,
    /// Lost.
    Down,
    /// Every message published so far is stored and handed back, in
    /// order, and every question to the session store answered.
    Round,
    /// The oldest message published is answered `Failed` (`unconfirmed`
    /// or not).
    Fail { unconfirmed: bool },
    /// A message numbered elsewhere arrives for `lobby`: `seq` (1 to 8) in
    /// the harness's epoch, or the next one (a Redis that forgot).
    Numbered { seq: u8, new_epoch: bool },
}

/// The clients a proxy may name (`client` modulo their number): two
/// addresses, the proxy itself, an IPv6 address, and garbage.
const PROXIED_CLIENTS: [&str; 5] = [
    "203.0.113.1",
    "203.0.113.2",
    "127.0.0.1",
    "2001:db8::9",
    "unknown",
];

/// An upgrade request: each field off (or the first variant) by default.
#[derive(Arbitrary, Debug, Clone, Default)]
pub(super) struct Upgrade {
    pub(super) conn: u8,
    pub(super) carrier: Carrier,
    /// Whom the token (and a ticket's request) is for.
    pub(super) user: User,
    pub(super) room: Room,
    pub(super) token: TokenKind,
    /// Asks for the `wsgate.json` subprotocol.
    pub(super) json: bool,
    /// With [`Carrier::Cookie`]: the `Origin` header.
    pub(super) origin: Origin,
    /// With [`Carrier::Password`]: the wrong password.
    pub(super) wrong_password: bool,
    /// Sent 7 bytes at a time.
    pub(super) dribble: bool,
    /// A text frame right behind the head, in the same read.
    pub(super) frame_behind: bool,
    /// Resuming: `since=` (and `epoch=`) on the upgrade.
    pub(super) since: Since,
}

/// What a resuming upgrade says it saw last.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) enum Since {
    /// No `since`: not resuming.
    #[default]
    No,
    /// `since=0`: nothing yet.
    Zero,
    /// `since=N` with the room's epoch as it is now.
    Seq(u8),
    /// `since=N` with an epoch from elsewhere.
    OtherEpoch(u8),
}

/// Where an upgrade request carries its credential.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) enum Carrier {
    /// `Authorization: Bearer` with the token.
    #[default]
    Bearer,
    /// `/ws/TOKEN`.
    Path,
    /// `?token=`.
    Query,
    /// The last session cookie the peers received (or an unknown one).
    Cookie,
    /// `?ticket=` with the last ticket the peers received (or an unknown
    /// one).
    Ticket,
    /// `?username=alice&password=`.
    Password,
    /// `Authorization: Basic` for alice.
    Basic,
    /// Two credentials: bearer and query.
    Two,
}

/// The users tokens are made for.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) enum User {
    #[default]
    Alice,
    Bob,
    Carol,
    Dave,
}

impl User {
    fn name(self) -> &'static str {
        match self {
            User::Alice => "alice",
            User::Bob => "bob",
            User::Carol => "carol",
            User::Dave => "dave",
        }
    }
}

/// The `room` parameter of an upgrade.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) enum Room {
    /// None: the default room.
    #[default]
    Lobby,
    Dev,
    X,
    /// `bad%20room`, not a valid name.
    Invalid,
}

/// A token the harness makes for a user.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) enum TokenKind {
    /// Valid for an hour.
    #[default]
    Hour,
    /// Valid for 5 s.
    FiveSeconds,
    /// Expired an hour ago.
    Expired,
    /// Valid for an hour, for room `dev` only.
    DevOnly,
    /// Valid for an hour, role `viewer`.
    Viewer,
    /// Signed with a key the server does not hold.
    WrongKey,
    /// Valid for a minute.
    Minute,
    /// Not valid before 10 minutes from now.
    NotYet,
}

/// The `Origin` of a cookie upgrade.
#[derive(Arbitrary, Debug, Clone, Copy, Default)]
pub(super) enum Origin {
    /// `http://127.0.0.1:8080`, the server's own.
    #[default]
    Same,
    /// `https://evil.example`.
    Foreign,
    /// `null`.
    Null,
    /// No `Origin` header.
    Absent,
}

/// A plain HTTP request.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(super) enum HttpRequest {
    /// `POST /token` as alice, right password.
    TokenAlice,
    /// `POST /token` as alice, wrong password.
    TokenWrongPassword,
    /// `POST /login` as alice (with `grant_type=password`).
    LoginAlice,
    /// `POST /login` as bob.
    LoginBob,
    /// `POST /ws-ticket` with a bearer token for the user.
    TicketBearer(User),
    /// `POST /ws-ticket` with the last session cookie.
    TicketCookie,
    /// `POST /logout` with the last session cookie.
    Logout,
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `HEAD /healthz`.
    Head,
    /// `POST /token` as bob with `Expect: 100-continue`: the head, then the
    /// body in another read.
    Continue,
    /// `GET /healthz` with `Connection: close`.
    HealthClose,
}

/// A chat message from the dictionary.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub(super) enum ChatMessage {
    /// `hello`.
    Hello,
    /// `/who`.
    Who,
    /// `/refresh` with a fresh token for the sender.
    RefreshOwn,
    /// `/refresh` with a token for another user.
    RefreshOther,
    /// `/refresh not.a.token`.
    RefreshGarbage,
    /// A JSON message with quotes and a tab.
    JsonMessage,
    /// `{"type":"who"}`.
    JsonWho,
    /// A JSON refresh with a one-minute token.
    JsonRefresh,
    /// The longest JSON message, all quotes: the most JSON escaping.
    JsonLongest,
    /// A text line as long as allowed, all quotes.
    LongestLine,
    /// One byte past the longest message.
    TooLong,
    /// A control character in a line.
    Control,
    /// `/nope`, no command.
    UnknownCommand,
    /// `fragment` in two frames.
    Fragmented,
    /// A ping with 125 bytes.
    Ping,
    /// A close frame, `1000`.
    Close,
    /// A binary frame.
    Binary,
}

/// A PROXY protocol header naming `client` as the source (v1 `UNKNOWN`,
/// or v2 `LOCAL`, for what is not an address).
fn proxy_header(client: &str, v2: bool) -> Vec<u8> {
    let ip: Option<std::net::IpAddr> = client.parse().ok();
    if !v2 {
        return match ip {
            Some(std::net::IpAddr::V4(v4)) => format!("PROXY TCP4 {v4} 10.0.0.2 4711 443\r\n"),
            Some(std::net::IpAddr::V6(v6)) => format!("PROXY TCP6 {v6} ::2 4711 443\r\n"),
            None => "PROXY UNKNOWN\r\n".to_string(),
        }
        .into_bytes();
    }
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    match ip {
        Some(std::net::IpAddr::V4(v4)) => {
            h.extend_from_slice(&[0x21, 0x11, 0, 12]);
            h.extend_from_slice(&v4.octets());
            h.extend_from_slice(&[10, 0, 0, 2, 0x12, 0x67, 1, 187]);
        }
        Some(std::net::IpAddr::V6(v6)) => {
            h.extend_from_slice(&[0x21, 0x21, 0, 36]);
            h.extend_from_slice(&v6.octets());
            h.extend_from_slice(&[0; 16]);
            h.extend_from_slice(&[0x12, 0x67, 1, 187]);
        }
        None => h.extend_from_slice(&[0x20, 0x00, 0, 0]),
    }
    h
}

/// The largest HTTP response the server writes (`/metrics` with every
/// refusal reason and close code listed, about 5 KiB, is the largest);
/// checked on every response the peers read.
const MAX_HTTP_RESPONSE: usize = 8 * 1024;

/// The most a connection's queue may hold.
///
/// The core checks the hard ceiling after everything it queues (a
/// message, or the pong or close reply to each frame it reads), and
/// closes with `1013` past it (dropping the unsent frames); then it queues
/// one close frame and nothing more. So a queue at most holds: the ceiling,
/// plus the largest single frame queued while the queue was still within
/// it, plus one close frame, plus one HTTP response (the `101` that
/// precedes the frames). An HTTP connection's answers stop at their own
/// cap plus one response. The largest frame is the largest of:
///
/// - a text-mode line `USER: LINE`: a name of at most
///   [`MAX_USER_NAME_LEN`] bytes, `": "` and a line of at most
///   `max_message_bytes`;
/// - a JSON-mode message: the line JSON-escaped (at most 2 bytes a byte:
///   control characters other than tab are refused), the name escaped
///   likewise, the room, `seq` and `ts` (20 digits each) and 59 bytes of
///   names and punctuation;
/// - a `who` reply in JSON: 23 bytes plus, for each of at most
///   `max_connections` users, an escaped name, quotes and a comma;
///
/// with a frame header of 2, 4 or 10 bytes (a pong, an echoed message and
/// a close frame are smaller). A close frame is at most 2 + 125 bytes.
fn queue_bound(config: &Config) -> usize {
    let limits = &config.limits;
    let line = limits.max_message_bytes;
    let text = MAX_USER_NAME_LEN + 2 + line;
    let json = 2 * line + 2 * MAX_USER_NAME_LEN + MAX_ROOM_NAME_LEN + 2 * 20 + 59;
    let who = 23 + limits.max_connections * (2 * MAX_USER_NAME_LEN + 3);
    let payload = text.max(json).max(who);
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    let ws = limits.queue_ceiling() + header + payload + (2 + 125) + MAX_HTTP_RESPONSE;
    ws.max(limits.max_http_queue_bytes + MAX_HTTP_RESPONSE)
}

/// Password checks answered at once: the demo users' passwords are
/// checked for real (once per process; 600,000 PBKDF2 rounds), every
/// other pair is wrong without asking (the demo table holds no other
/// user), so a fuzzer does not spend a third of a second per login.
fn check_password(user: &str, password: &str) -> Option<VerifiedUser> {
    static ALICE: OnceLock<Option<VerifiedUser>> = OnceLock::new();
    static BOB: OnceLock<Option<VerifiedUser>> = OnceLock::new();
    match (user, password) {
        ("alice", "wonderland") => ALICE
            .get_or_init(|| Users::demo().check(user, password))
            .clone(),
        ("bob", "builder") => BOB
            .get_or_init(|| Users::demo().check(user, password))
            .clone(),
        _ => None,
    }
}

/// Client frame opcodes.
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

fn text_frame(text: &str) -> Vec<u8> {
    client_frame(TEXT, true, 0, true, text.as_bytes())
}

/// What a run reached, for the tests that check the harness gets deep.
#[derive(Debug, Default)]
pub(super) struct Reached {
    /// Most WebSockets open at once.
    pub(super) websockets: usize,
    /// Text messages the peers' clients read (the first 64 kept).
    pub(super) texts: Vec<String>,
    /// Statuses of the HTTP responses the peers read.
    pub(super) statuses: HashSet<u16>,
    /// Close codes the peers' clients read.
    pub(super) closes: HashSet<u16>,
}

/// A simulated shell around [`Harness`]: it holds the sockets, parses
/// what each peer reads, and answers password checks when told to.
pub(super) struct Driver {
    h: Harness,
    /// Connections the shell holds a socket for.
    live: Vec<ConnId>,
    /// Peers that have read a `101`: their WebSocket client is on.
    upgraded: HashSet<ConnId>,
    /// What was last sent on each connection, for [`Op::Repeat`].
    last_sent: HashMap<ConnId, Vec<u8>>,
    /// Peers that shut their write half: they send nothing more.
    eof: HashSet<ConnId>,
    /// Session ids from `Set-Cookie`, tickets from `/ws-ticket`.
    cookies: Vec<String>,
    tickets: Vec<String>,
    /// Credentials the operations sent or received: never in a log line.
    secrets: HashSet<String>,
    /// Every raw byte the fuzzer sent: a credential it spelled out itself
    /// may be logged as any other text.
    raw: Vec<u8>,
    logs: bool,
    bound: usize,
    reached: Reached,
}

impl Driver {
    /// Plays the Redis link (`Op::Link`).
    fn link(&mut self, op: LinkOp) {
        use crate::core::cluster::{Delivered, LinkEvent};
        match op {
            LinkOp::Up => self.h.link(LinkEvent::Up),
            LinkOp::Down => {
                self.h.link(LinkEvent::Down {
                    why: "played".into(),
                });
                // The link answers what it had not sent.
                self.h.fail_queries();
            }
            LinkOp::Round => {
                self.h.redis_round();
                self.h.store_round();
            }
            LinkOp::Fail { unconfirmed } => {
                if !self.h.published.is_empty() {
                    let id = self.h.published.remove(0).id;
                    self.h.link(LinkEvent::Failed { id, unconfirmed });
                }
            }
            LinkOp::Numbered { seq, new_epoch } => {
                let epoch = crate::testkit::REDIS_EPOCH + u64::from(new_epoch);
                self.h.link(LinkEvent::Message(Delivered {
                    room: "lobby".into(),
                    from: "bob".into(),
                    text: "numbered elsewhere".into(),
                    ts: 1,
                    seq: u64::from(seq % 8) + 1,
                    epoch,
                }));
            }
        }
    }

    /// Runs `input` (its first [`MAX_OPS`] operations), then
    /// [`Driver::finish`]; panics where an invariant fails.
    pub(super) fn run_input(input: &CoreInput) -> Reached {
        let s = input.switches;
        let mut h = Harness::new(|c| {
            let l = &mut c.limits;
            l.max_connections = 8;
            l.max_queue_bytes = 4096;
            l.max_http_queue_bytes = 2048;
            l.queue_budget_bytes = 24 * 1024;
            l.history = 8;
            if s.redis {
                c.redis = crate::config::RedisUrl::parse("redis://127.0.0.1:6379/0");
            }
            l.max_message_bytes = 1024;
            l.max_head_bytes = 2048;
            l.max_body_bytes = 256;
            l.handshake_timeout = std::time::Duration::from_secs(1);
            l.close_timeout = std::time::Duration::from_secs(2);
            l.max_tickets = 4;
            l.max_pending_logins = 2;
            l.max_sessions_per_user = 2;
            c.session_ttl = std::time::Duration::from_secs(600);
            c.session_idle = std::time::Duration::from_secs(120);
            c.allow_password_auth = s.password_auth;
            if s.evict_oldest {
                c.per_user_policy = PerUserPolicy::EvictOldest;
            }
            if s.no_message_rate {
                l.message_rate = None;
            }
            if s.no_upgrade_rate {
                l.upgrade_rate = None;
            }
            c.insecure_cookie = s.insecure_cookie;
            c.echo = s.echo;
            l.max_conns_per_ip = Some(5);
            l.presence_limit = if s.presence_of_one { 1 } else { 3 };
            l.max_conns_per_user = if s.one_per_user { 1 } else { 2 };
            if s.ping_5s {
                c.ping_interval = std::time::Duration::from_secs(5);
            }
            if s.behind_proxy {
                c.trusted_proxies = vec![crate::config::parse_network("127.0.0.1").unwrap()];
                c.proxy_protocol = s.proxy_protocol;
            }
        });
        // The "helper thread" answers password checks only at
        // `Op::Passwords`.
        h.hold_passwords = true;
        let bound = queue_bound(h.server.config());
        let mut d = Driver {
            h,
            live: Vec::new(),
            upgraded: HashSet::new(),
            last_sent: HashMap::new(),
            eof: HashSet::new(),
            cookies: Vec::new(),
            tickets: Vec::new(),
            secrets: ["wonderland", "builder", "not-the-password"]
                .map(String::from)
                .into(),
            raw: Vec::new(),
            logs: capture_logs(),
            bound,
            reached: Reached::default(),
        };
        for op in input.ops.iter().take(MAX_OPS) {
            d.op(op);
            d.observe();
        }
        d.finish();
        if d.logs {
            stop_capturing_logs();
        }
        d.reached
    }

    /// The connection `conn` picks: one of the held connections.
    fn target(&mut self, conn: u8) -> Option<ConnId> {
        if self.live.is_empty() {
            self.accept();
        }
        (!self.live.is_empty()).then(|| self.live[usize::from(conn) % self.live.len()])
    }

    fn op(&mut self, op: &Op) {
        match *op {
            Op::Accept => self.accept(),
            Op::Raw { conn, ref bytes } => {
                let id = self.target(conn);
                self.raw.extend_from_slice(bytes);
                if let Some(id) = id {
                    self.send(id, bytes, 0);
                }
            }
            Op::Upgrade(ref upgrade) => {
                if let Some(id) = self.target(upgrade.conn) {
                    self.upgrade(id, upgrade);
                }
            }
            Op::Http {
                conn,
                request,
                pipelined,
                dribble,
            } => {
                if let Some(id) = self.target(conn) {
                    self.http(id, request, pipelined, dribble);
                }
            }
            Op::Frame {
                conn,
                opcode,
                fin,
                rsv,
                masked,
                ref payload,
            } => {
                let id = self.target(conn);
                self.raw.extend_from_slice(payload);
                let frame = client_frame(opcode & 0x0f, fin, rsv & 7, masked, payload);
                if let Some(id) = id {
                    self.send(id, &frame, 0);
                }
            }
            Op::Chat { conn, message } => {
                if let Some(id) = self.target(conn) {
                    self.chat(id, message);
                }
            }
            Op::Repeat { conn, times } => {
                if let Some(id) = self.target(conn) {
                    let last = self.last_sent.get(&id).cloned().unwrap_or_default();
                    let bytes = last.repeat(usize::from(times));
                    if !bytes.is_empty() {
                        self.read(id, &bytes);
                    }
                }
            }
            Op::HangUp { conn } => {
                if let Some(id) = self.target(conn) {
                    self.h.hang_up(id);
                    self.live.retain(|&c| c != id);
                }
            }
            Op::HalfClose { conn } => {
                if let Some(id) = self.target(conn) {
                    self.h.half_close(id);
                    self.eof.insert(id);
                }
            }
            Op::Stall { conn } => {
                if let Some(id) = self.target(conn) {
                    let stalled = self.h.peer(id).stalled;
                    self.h.stall(id, !stalled);
                }
            }
            Op::Wait50ms(n) => self.h.advance(u64::from(n) * 50),
            Op::Wait5s(n) => self.h.advance(u64::from(n) * 5_000),
            Op::JumpMinutes(n) => self.h.jump(u64::from(n) * 60_000),
            Op::Passwords { checks } => {
                for _ in 0..=checks % 4 {
                    self.finish_job();
                }
            }
            Op::Shutdown => self.shutdown(),
            Op::AcceptMany { n } => {
                const FROM: [&str; 4] = ["127.0.0.1", "127.0.0.2", "2001:db8::1", "2001:db8::2"];
                for i in 0..usize::from(n % 16) {
                    let ip = FROM[i % FROM.len()].parse().expect("an address");
                    self.sync_live();
                    match self.h.connect_from(ip) {
                        Some(id) => self.accepted(id),
                        None => self.refused(),
                    }
                }
            }
            Op::ShortRead { conn, blocks } => {
                if let Some(id) = self.target(conn) {
                    self.short_read(id, usize::from(blocks) * 16);
                }
            }
            Op::ProxyHeader { conn, client, v2 } => {
                if let Some(id) = self.target(conn) {
                    let client = PROXIED_CLIENTS[usize::from(client) % PROXIED_CLIENTS.len()];
                    let header = proxy_header(client, v2);
                    self.send(id, &header, 0);
                }
            }
            Op::Link(op) => self.link(op),
            Op::Forwarded { conn, client } => {
                if let Some(id) = self.target(conn) {
                    let client = PROXIED_CLIENTS[usize::from(client) % PROXIED_CLIENTS.len()];
                    let request = format!(
                        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
                         X-Forwarded-For: 6.6.6.6, {client}\r\n\r\n"
                    );
                    self.send(id, request.as_bytes(), 0);
                }
            }
        }
    }

    /// A peer that does not read takes `n` bytes all the same: a short
    /// write.
    fn short_read(&mut self, id: ConnId, n: usize) {
        if !self.h.peer(id).stalled {
            return;
        }
        if n > 0 && !self.h.server.pending(id).is_empty() {
            self.h.write_out(id, n);
            self.h.pump();
        }
    }

    fn shutdown(&mut self) {
        let now = self.h.now;
        self.h.server.handle_shutdown(now);
        self.h.pump();
    }

    fn accept(&mut self) {
        self.sync_live();
        match self.h.try_connect() {
            Some(id) => self.accepted(id),
            None => self.refused(),
        }
    }

    /// A socket the core refused at accept: its one answer is a complete
    /// `429` or `503`, and the core holds nothing for it.
    fn refused(&mut self) {
        let Some(r) = self.h.refusal() else {
            return;
        };
        assert!(matches!(r.status, 429 | 503), "refused with {}", r.status);
        assert!(r.header("retry-after").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("connection"), Some("close"));
        self.reached.statuses.insert(r.status);
    }

    /// A new socket: whatever the shell knew of the id is gone.
    fn accepted(&mut self, id: ConnId) {
        self.live.push(id);
        self.upgraded.remove(&id);
        self.eof.remove(&id);
        self.last_sent.remove(&id);
    }

    /// Forgets the sockets the core told the shell to drop.
    fn sync_live(&mut self) {
        let h = &mut self.h;
        self.live.retain(|&id| !h.peer(id).dropped);
    }

    /// Sends `bytes` on `id`, in pieces of `chunk` bytes (all at once when
    /// 0).
    fn send(&mut self, id: ConnId, bytes: &[u8], chunk: usize) {
        let size = if chunk == 0 {
            bytes.len().max(1)
        } else {
            chunk
        };
        for piece in bytes.chunks(size) {
            self.read(id, piece);
        }
        self.last_sent.insert(id, bytes.to_vec());
    }

    /// The core reads `bytes` from the peer of `id` at once (unless the
    /// peer shut its write half).
    fn read(&mut self, id: ConnId, bytes: &[u8]) {
        if self.eof.contains(&id) {
            return;
        }
        self.h.send(id, bytes);
    }

    /// The oldest held password check finishes.
    fn finish_job(&mut self) {
        if !self.h.held.is_empty() {
            let job = self.h.held.remove(0);
            let verified = check_password(&job.user, &job.password);
            let now = self.h.now;
            self.h
                .server
                .handle_password_checked(job.job, verified, now);
            self.h.pump();
        }
    }

    fn secret(&mut self, text: &str) -> String {
        self.secrets.insert(text.to_string());
        text.to_string()
    }

    /// A token of `kind` for `user`.
    fn token(&mut self, user: &str, kind: TokenKind) -> String {
        let now_s = self.h.now.as_secs();
        let token = match kind {
            TokenKind::Hour => self.h.token(user, 3600),
            TokenKind::FiveSeconds => self.h.token(user, 5),
            TokenKind::Expired => self.h.token_with(json!({"sub": user, "exp": now_s - 3600})),
            TokenKind::DevOnly => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "rooms": ["dev"]})),
            TokenKind::Viewer => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "role": "viewer"})),
            TokenKind::WrongKey => {
                let secret = Secret::new(WRONG_KEY.to_vec(), None).expect("long enough");
                JwtConfig::new(vec![secret]).issue(user, "member", self.h.now.as_millis(), 3600)
            }
            TokenKind::Minute => self.h.token(user, 60),
            TokenKind::NotYet => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "nbf": now_s + 600})),
        };
        self.secret(&token)
    }

    /// [`Op::Upgrade`].
    fn upgrade(&mut self, id: ConnId, up: &Upgrade) {
        let user = up.user.name();
        let room = match up.room {
            Room::Lobby => "",
            Room::Dev => "dev",
            Room::X => "x",
            Room::Invalid => "bad%20room",
        };
        let token = self.token(user, up.token);
        let mut query: Vec<String> = Vec::new();
        if !room.is_empty() {
            query.push(format!("room={room}"));
        }
        let mut path = "/ws".to_string();
        let mut extra = String::new();
        match up.carrier {
            Carrier::Bearer => extra.push_str(&format!("Authorization: Bearer {token}\r\n")),
            Carrier::Path => path = format!("/ws/{token}"),
            Carrier::Query => query.push(format!("token={token}")),
            Carrier::Cookie => {
                let name = self.h.server.config().cookie_name();
                let sid = self
                    .cookies
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "no-such-session".into());
                extra.push_str(&format!("Cookie: {name}={sid}\r\n"));
                match up.origin {
                    Origin::Same => extra.push_str("Origin: http://127.0.0.1:8080\r\n"),
                    Origin::Foreign => extra.push_str("Origin: https://evil.example\r\n"),
                    Origin::Null => extra.push_str("Origin: null\r\n"),
                    Origin::Absent => {}
                }
            }
            Carrier::Ticket => {
                let ticket = self
                    .tickets
                    .pop()
                    .unwrap_or_else(|| "no-such-ticket".into());
                query.push(format!("ticket={ticket}"));
            }
            Carrier::Password => {
                let password = if up.wrong_password {
                    "not-the-password"
                } else {
                    "wonderland"
                };
                query.push(format!("username=alice&password={password}"));
            }
            Carrier::Basic => {
                let basic = self.secret(&STANDARD.encode("alice:wonderland"));
                extra.push_str(&format!("Authorization: Basic {basic}\r\n"));
            }
            Carrier::Two => {
                extra.push_str(&format!("Authorization: Bearer {token}\r\n"));
                query.push(format!("token={token}"));
            }
        }
        if up.json {
            extra.push_str("Sec-WebSocket-Protocol: wsgate.json\r\n");
        }
        let room_name = if room.is_empty() { "lobby" } else { room };
        match up.since {
            Since::No => {}
            Since::Zero => query.push("since=0".into()),
            Since::Seq(n) => match self.h.server.room_epoch(room_name) {
                Some(epoch) => query.push(format!("since={n}&epoch={epoch}")),
                None => query.push(format!("since={n}")),
            },
            Since::OtherEpoch(n) => query.push(format!("since={n}&epoch=0123456789abcdef")),
        }
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut bytes = upgrade_request(&target, &extra).into_bytes();
        if up.frame_behind {
            bytes.extend(text_frame("right behind the head"));
        }
        let chunk = if up.dribble { 7 } else { 0 };
        self.send(id, &bytes, chunk);
    }

    /// [`Op::Http`].
    fn http(&mut self, id: ConnId, request: HttpRequest, pipelined: bool, dribble: u8) {
        let host = "Host: 127.0.0.1:8080\r\n";
        let name = self.h.server.config().cookie_name();
        let sid = self
            .cookies
            .last()
            .cloned()
            .unwrap_or_else(|| "no-such-session".into());
        let cookie = format!("Cookie: {name}={sid}\r\nOrigin: http://127.0.0.1:8080\r\n");
        let request = match request {
            HttpRequest::TokenAlice => form_post("/token", "username=alice&password=wonderland"),
            HttpRequest::TokenWrongPassword => {
                form_post("/token", "username=alice&password=not-the-password")
            }
            HttpRequest::LoginAlice => form_post(
                "/login",
                "username=alice&password=wonderland&grant_type=password",
            ),
            HttpRequest::LoginBob => form_post("/login", "username=bob&password=builder"),
            HttpRequest::TicketBearer(user) => {
                let token = self.token(user.name(), TokenKind::Hour);
                format!(
                    "POST /ws-ticket HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\n\
                     Content-Length: 0\r\n\r\n"
                )
            }
            HttpRequest::TicketCookie => {
                format!("POST /ws-ticket HTTP/1.1\r\n{host}{cookie}Content-Length: 0\r\n\r\n")
            }
            HttpRequest::Logout => {
                format!("POST /logout HTTP/1.1\r\n{host}{cookie}Content-Length: 0\r\n\r\n")
            }
            HttpRequest::Health => format!("GET /healthz HTTP/1.1\r\n{host}\r\n"),
            HttpRequest::Metrics => format!("GET /metrics HTTP/1.1\r\n{host}\r\n"),
            HttpRequest::Head => format!("HEAD /healthz HTTP/1.1\r\n{host}\r\n"),
            HttpRequest::Continue => {
                let body = "username=bob&password=builder";
                let head = format!(
                    "POST /token HTTP/1.1\r\n{host}Expect: 100-continue\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                self.send(id, head.as_bytes(), 0);
                self.send(id, body.as_bytes(), 0);
                return;
            }
            HttpRequest::HealthClose => {
                format!("GET /healthz HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
            }
        };
        let mut bytes = request.into_bytes();
        if pipelined {
            bytes = bytes.repeat(2);
        }
        let chunk = match dribble % 8 {
            0 => 0,
            k => 1 << (k - 1),
        };
        self.send(id, &bytes, chunk);
    }

    /// [`Op::Chat`].
    fn chat(&mut self, id: ConnId, message: ChatMessage) {
        let user = self.h.server.user_of(id).unwrap_or("alice").to_string();
        let other = if user == "alice" { "bob" } else { "alice" };
        let max = self.h.server.config().limits.max_message_bytes;
        let frames = match message {
            ChatMessage::Hello => text_frame("hello"),
            ChatMessage::Who => text_frame("/who"),
            ChatMessage::RefreshOwn => {
                let token = self.token(&user, TokenKind::Hour);
                text_frame(&format!("/refresh {token}"))
            }
            ChatMessage::RefreshOther => {
                let token = self.token(other, TokenKind::Hour);
                text_frame(&format!("/refresh {token}"))
            }
            ChatMessage::RefreshGarbage => text_frame("/refresh not.a.token"),
            ChatMessage::JsonMessage => {
                text_frame(r#"{"type":"message","text":"hi \"there\"\t!"}"#)
            }
            ChatMessage::JsonWho => text_frame(r#"{"type":"who"}"#),
            ChatMessage::JsonRefresh => {
                let token = self.token(&user, TokenKind::Minute);
                text_frame(&json!({"type": "refresh", "token": token}).to_string())
            }
            ChatMessage::JsonLongest => text_frame(
                &json!({"type": "message", "text": "\"".repeat(max / 2 - 40)}).to_string(),
            ),
            ChatMessage::LongestLine => text_frame(&"\"".repeat(max)),
            ChatMessage::TooLong => text_frame(&"x".repeat(max + 1)),
            ChatMessage::Control => text_frame("a\u{1}b"),
            ChatMessage::UnknownCommand => text_frame("/nope"),
            ChatMessage::Fragmented => {
                let mut f = client_frame(TEXT, false, 0, true, b"frag");
                f.extend(client_frame(0x0, true, 0, true, b"ment"));
                f
            }
            ChatMessage::Ping => client_frame(PING, true, 0, true, &[b'p'; 125]),
            ChatMessage::Close => client_frame(CLOSE, true, 0, true, &1000u16.to_be_bytes()),
            ChatMessage::Binary => client_frame(BINARY, true, 0, true, b"\x00\x01"),
        };
        self.send(id, &frames, 0);
    }

    /// Reads what every peer received, then checks the invariants.
    fn observe(&mut self) {
        for id in self.live.clone() {
            if self.upgraded.contains(&id) {
                for message in self.h.messages(id) {
                    match message {
                        tungstenite::Message::Text(t) if self.reached.texts.len() < 64 => {
                            self.reached.texts.push(t.as_str().to_string());
                        }
                        tungstenite::Message::Close(Some(frame)) => {
                            self.reached.closes.insert(u16::from(frame.code));
                        }
                        _ => {}
                    }
                }
            } else {
                self.read_responses(id);
            }
        }
        self.sync_live();
        self.check();
    }

    /// Takes complete HTTP responses off what `id` received, up to a
    /// `101`; anything else before a `101` is a bug.
    fn read_responses(&mut self, id: ConnId) {
        loop {
            let received = &self.h.peer(id).received;
            if received.is_empty() {
                return;
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(received) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return,
                Err(e) => panic!(
                    "connection {id} received bytes that are no HTTP response before any 101 \
                     ({e}): {:?}",
                    String::from_utf8_lossy(&received[..received.len().min(80)])
                ),
            };
            let status = response.code.unwrap_or(0);
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            self.reached.statuses.insert(status);
            if status == 100 || status == 101 {
                self.h.peer(id).received.drain(..head_len);
                if status == 101 {
                    self.upgraded.insert(id);
                    self.h.make_client(id);
                    self.h.pump();
                    return;
                }
                continue;
            }
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("a {status} response without Content-Length"));
            assert_eq!(
                header("cache-control").as_deref(),
                Some("no-store"),
                "a {status} response without Cache-Control: no-store"
            );
            let set_cookie = header("set-cookie");
            let rest = &received[head_len..];
            // A response to HEAD has no body: another response follows.
            let body_len = if length > 0 && rest.starts_with(b"HTTP/1.1 ") {
                0
            } else if length > 0 && b"HTTP/1.1 ".starts_with(rest) {
                return;
            } else {
                length
            };
            if rest.len() < body_len {
                return;
            }
            let body = String::from_utf8_lossy(&rest[..body_len]).into_owned();
            assert!(
                head_len + body_len <= MAX_HTTP_RESPONSE,
                "a response past the bound"
            );
            self.h.peer(id).received.drain(..head_len + body_len);
            if status >= 300 {
                for secret in &self.secrets {
                    assert!(
                        !body.contains(secret.as_str()),
                        "a {status} body echoes a credential"
                    );
                }
            }
            if let Some(sid) = set_cookie
                .as_deref()
                .and_then(|c| c.split(';').next())
                .and_then(|c| c.split_once('='))
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty())
            {
                self.secret(&sid);
                self.cookies.push(sid);
            }
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&body) {
                if let Some(Value::String(ticket)) = map.get("ticket") {
                    let ticket = self.secret(ticket);
                    self.tickets.push(ticket);
                }
                if let Some(Value::String(token)) = map.get("access_token") {
                    self.secret(token);
                }
            }
        }
    }

    fn check(&mut self) {
        let server = &self.h.server;
        let limits = &server.config().limits;
        assert!(server.connections() <= limits.max_connections);
        let mut held = server.conn_ids();
        let mut live = self.live.clone();
        held.sort_unstable();
        live.sort_unstable();
        assert_eq!(
            held, live,
            "the core and the shell disagree on the connections"
        );
        for &id in &held {
            let queued = server.queued(id);
            assert!(
                queued <= self.bound,
                "connection {id} ({:?}) queues {queued} bytes, bound {}",
                server.phase_name(id),
                self.bound
            );
        }
        let websockets = server.websockets();
        self.reached.websockets = self.reached.websockets.max(websockets);
        assert!(server.rooms() <= websockets);
        if let Err(e) = server.check_consistency() {
            panic!("inconsistent core: {e}");
        }
        for &id in &held {
            let open = self.h.server.is_websocket(id);
            let peer = self.h.peer(id);
            if open && !peer.stalled && !peer.dropped {
                assert!(
                    self.upgraded.contains(&id),
                    "an open WebSocket {id} without a 101"
                );
            }
        }
        if self.logs {
            for line in take_log_lines() {
                check_log_line(&line);
                for secret in &self.secrets {
                    if line.contains(secret.as_str()) && !contains(&self.raw, secret.as_bytes()) {
                        panic!("a log line holds a credential: {line:?}");
                    }
                }
            }
        }
    }

    /// Shutdown, pending checks, everyone reads; then nothing may be left.
    fn finish(&mut self) {
        self.shutdown();
        self.observe();
        while !self.h.held.is_empty() {
            self.finish_job();
            self.observe();
        }
        for id in self.live.clone() {
            if self.h.peer(id).stalled {
                self.h.stall(id, false);
            }
        }
        self.observe();
        // The link answers every query.
        self.h.store_round();
        self.observe();
        let close = self.h.server.config().limits.close_timeout.as_millis() as u64;
        self.h.advance(2 * close + 1000);
        self.observe();
        let server = &self.h.server;
        let left: Vec<_> = server
            .conn_ids()
            .into_iter()
            .map(|id| (id, server.phase_name(id)))
            .collect();
        assert!(
            left.is_empty(),
            "connections outlive the shutdown: {left:?}"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
