//! The `core_ops` target: the sans-IO core driven by a sequence of
//! operations through a simulated shell, the [`Driver`], with the
//! invariants checked after each one.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

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

use super::{Reader, WRONG_KEY, check_log_line};

/// The core driven by a sequence of operations.
///
/// The first byte picks configuration switches (password upgrades,
/// per-user policy, rate limits, cookie name, presence limit, echo mode,
/// per-user limit, ping interval); limits are small so that they are hit. Each
/// following operation is an opcode byte and its arguments:
///
/// | op | arguments | what |
/// | --- | --- | --- |
/// | 0 | | accept a connection |
/// | 1 | c, n, n bytes | raw bytes on connection c |
/// | 2 | c, a, b | an upgrade request (carrier, user, room, token kind, subprotocol, origin, dribbled, frames behind it) |
/// | 3 | c, a | an HTTP request (`/token`, `/login`, `/ws-ticket`, `/logout`, health, metrics, `HEAD`, `100-continue`, pipelined, dribbled) |
/// | 4 | c, a, n, n bytes | one client frame (opcode, FIN, RSV bits, mask) with that payload |
/// | 5 | c, a | a chat message from a dictionary (lines, commands, JSON, refresh, too long, fragments, ping, close, binary) |
/// | 6 | c, n | the last bytes sent on c again, n times in one read |
/// | 7 | c | the peer hangs up (c < 128) or shuts its write half |
/// | 8 | c | the peer stops (or resumes) reading |
/// | 9, 10, 11 | n | time: n × 50 ms, n × 5 s (both stop at every deadline), or a jump of n minutes |
/// | 12 | n | the password thread finishes up to n % 4 + 1 checks |
/// | 13 | | shutdown |
/// | 14 | n | accept n % 16 connections from four addresses (two in one IPv6 /64) |
/// | 15 | c, n | a peer that does not read takes 16 × n bytes (a short write) |
///
/// `c` selects among the connections the simulated shell holds (a fresh
/// one is accepted when there is none). The table is the format of every
/// checked-in `core_ops` input: changing it changes what they do, so
/// re-minimise the regression inputs (`cargo fuzz tmin`) after a change.
/// After every operation:
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
///   operations sent, and no refusal body echoes one.
///
/// At the end the server is shut down, pending password checks finish and
/// every peer reads: after twice the close timeout no connection is left.
pub fn core_ops(data: &[u8]) {
    let _ = Driver::run(data);
}

/// The most operations one input runs.
const MAX_OPS: usize = 160;

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

/// The users tokens are made for.
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

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
    /// What was last sent on each connection, for op 6.
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
    pub(super) fn run(data: &[u8]) -> Reached {
        let mut r = Reader::new(data);
        let switches = r.byte();
        let mut h = Harness::new(|c| {
            let l = &mut c.limits;
            l.max_connections = 8;
            l.max_queue_bytes = 4096;
            l.max_http_queue_bytes = 2048;
            l.queue_budget_bytes = 24 * 1024;
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
            c.allow_password_auth = switches & 1 != 0;
            if switches & 2 != 0 {
                c.per_user_policy = PerUserPolicy::EvictOldest;
            }
            if switches & 4 != 0 {
                l.message_rate = None;
            }
            if switches & 8 != 0 {
                l.upgrade_rate = None;
            }
            c.insecure_cookie = switches & 16 != 0;
            c.echo = switches & 0x30 == 0x30;
            l.max_conns_per_ip = Some(5);
            l.presence_limit = if switches & 32 != 0 { 1 } else { 3 };
            l.max_conns_per_user = if switches & 64 != 0 { 1 } else { 2 };
            if switches & 128 != 0 {
                c.ping_interval = std::time::Duration::from_secs(5);
            }
        });
        // The "helper thread" answers password checks only at op 12.
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
        for _ in 0..MAX_OPS {
            if r.done() {
                break;
            }
            d.op(&mut r);
            d.observe();
        }
        d.finish();
        if d.logs {
            stop_capturing_logs();
        }
        d.reached
    }

    /// The connection argument `c`: one of the held connections.
    fn target(&mut self, r: &mut Reader<'_>) -> Option<ConnId> {
        let c = usize::from(r.byte());
        if self.live.is_empty() {
            self.accept();
        }
        (!self.live.is_empty()).then(|| self.live[c % self.live.len()])
    }

    fn op(&mut self, r: &mut Reader<'_>) {
        match r.byte() % 16 {
            0 => self.accept(),
            1 => {
                let id = self.target(r);
                let n = usize::from(r.byte());
                let bytes = r.bytes(n).to_vec();
                self.raw.extend_from_slice(&bytes);
                if let Some(id) = id {
                    self.send(id, &bytes, 0);
                }
            }
            2 => {
                let id = self.target(r);
                let (a, b) = (r.byte(), r.byte());
                if let Some(id) = id {
                    self.upgrade(id, a, b);
                }
            }
            3 => {
                let id = self.target(r);
                let a = r.byte();
                if let Some(id) = id {
                    self.http(id, a);
                }
            }
            4 => {
                let id = self.target(r);
                let a = r.byte();
                let n = usize::from(r.byte());
                let payload = r.bytes(n).to_vec();
                self.raw.extend_from_slice(&payload);
                let frame = client_frame(a & 0x0f, a & 0x10 == 0, a >> 5, a & 0x80 == 0, &payload);
                if let Some(id) = id {
                    self.send(id, &frame, 0);
                }
            }
            5 => {
                let id = self.target(r);
                let a = r.byte();
                if let Some(id) = id {
                    self.chat(id, a);
                }
            }
            6 => {
                let id = self.target(r);
                let n = usize::from(r.byte());
                if let Some(id) = id {
                    let last = self.last_sent.get(&id).cloned().unwrap_or_default();
                    let bytes = last.repeat(n);
                    if !bytes.is_empty() {
                        self.read(id, &bytes);
                    }
                }
            }
            7 => {
                let half = r.peek() & 0x80 != 0;
                if let Some(id) = self.target(r) {
                    if half {
                        self.h.half_close(id);
                        self.eof.insert(id);
                    } else {
                        self.h.hang_up(id);
                        self.live.retain(|&c| c != id);
                    }
                }
            }
            8 => {
                if let Some(id) = self.target(r) {
                    let stalled = self.h.peer(id).stalled;
                    self.h.stall(id, !stalled);
                }
            }
            9 => self.h.advance(u64::from(r.byte()) * 50),
            10 => self.h.advance(u64::from(r.byte()) * 5_000),
            11 => self.h.jump(u64::from(r.byte()) * 60_000),
            12 => {
                for _ in 0..=r.byte() % 4 {
                    self.finish_job();
                }
            }
            13 => self.shutdown(),
            14 => {
                const FROM: [&str; 4] = ["127.0.0.1", "127.0.0.2", "2001:db8::1", "2001:db8::2"];
                for i in 0..usize::from(r.byte() % 16) {
                    let ip = FROM[i % FROM.len()].parse().expect("an address");
                    self.sync_live();
                    match self.h.connect_from(ip) {
                        Some(id) => self.accepted(id),
                        None => self.refused(),
                    }
                }
            }
            _ => {
                let id = self.target(r);
                let n = usize::from(r.byte()) * 16;
                if let Some(id) = id {
                    self.short_read(id, n);
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
        let pending = self.h.server.pending(id);
        let bytes = pending[..n.min(pending.len())].to_vec();
        if !bytes.is_empty() {
            self.h.peer(id).received.extend_from_slice(&bytes);
            let now = self.h.now;
            self.h.server.handle_written(id, bytes.len(), now);
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

    /// A token of kind `kind` (0–7) for `user`.
    fn token(&mut self, user: &str, kind: u8) -> String {
        let now_s = self.h.now.as_secs();
        let token = match kind % 8 {
            0 => self.h.token(user, 3600),
            1 => self.h.token(user, 5),
            2 => self.h.token_with(json!({"sub": user, "exp": now_s - 3600})),
            3 => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "rooms": ["dev"]})),
            4 => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "role": "viewer"})),
            5 => {
                let secret = Secret::new(WRONG_KEY.to_vec(), None).expect("long enough");
                JwtConfig::new(vec![secret]).issue(user, "member", self.h.now.as_millis(), 3600)
            }
            6 => self.h.token(user, 60),
            _ => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "nbf": now_s + 600})),
        };
        self.secret(&token)
    }

    /// Op 2: an upgrade request.
    fn upgrade(&mut self, id: ConnId, a: u8, b: u8) {
        let user = USERS[usize::from(a >> 3) % USERS.len()];
        let room = ["", "dev", "x", "bad%20room"][usize::from(a >> 5) % 4];
        let token = self.token(user, (b >> 1) & 7);
        let mut query: Vec<String> = Vec::new();
        if !room.is_empty() {
            query.push(format!("room={room}"));
        }
        let mut path = "/ws".to_string();
        let mut extra = String::new();
        match a % 8 {
            0 => extra.push_str(&format!("Authorization: Bearer {token}\r\n")),
            1 => path = format!("/ws/{token}"),
            2 => query.push(format!("token={token}")),
            3 => {
                let name = self.h.server.config().cookie_name();
                let sid = self
                    .cookies
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "no-such-session".into());
                extra.push_str(&format!("Cookie: {name}={sid}\r\n"));
                match (b >> 4) & 3 {
                    0 => extra.push_str("Origin: http://127.0.0.1:8080\r\n"),
                    1 => extra.push_str("Origin: https://evil.example\r\n"),
                    2 => extra.push_str("Origin: null\r\n"),
                    _ => {}
                }
            }
            4 => {
                let ticket = self
                    .tickets
                    .pop()
                    .unwrap_or_else(|| "no-such-ticket".into());
                query.push(format!("ticket={ticket}"));
            }
            5 => {
                let password = if b & 0x10 == 0 {
                    "wonderland"
                } else {
                    "not-the-password"
                };
                query.push(format!("username=alice&password={password}"));
            }
            6 => {
                let basic = self.secret(&STANDARD.encode("alice:wonderland"));
                extra.push_str(&format!("Authorization: Basic {basic}\r\n"));
            }
            _ => {
                extra.push_str(&format!("Authorization: Bearer {token}\r\n"));
                query.push(format!("token={token}"));
            }
        }
        if b & 1 != 0 {
            extra.push_str("Sec-WebSocket-Protocol: wsgate.json\r\n");
        }
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut bytes = upgrade_request(&target, &extra).into_bytes();
        if b & 0x80 != 0 {
            bytes.extend(text_frame("right behind the head"));
        }
        let chunk = if b & 0x40 != 0 { 7 } else { 0 };
        self.send(id, &bytes, chunk);
    }

    /// Op 3: a plain HTTP request.
    fn http(&mut self, id: ConnId, a: u8) {
        let host = "Host: 127.0.0.1:8080\r\n";
        let name = self.h.server.config().cookie_name();
        let sid = self
            .cookies
            .last()
            .cloned()
            .unwrap_or_else(|| "no-such-session".into());
        let cookie = format!("Cookie: {name}={sid}\r\nOrigin: http://127.0.0.1:8080\r\n");
        let request = match a % 12 {
            0 => form_post("/token", "username=alice&password=wonderland"),
            1 => form_post("/token", "username=alice&password=not-the-password"),
            2 => form_post(
                "/login",
                "username=alice&password=wonderland&grant_type=password",
            ),
            3 => form_post("/login", "username=bob&password=builder"),
            4 => {
                let token = self.token(USERS[usize::from(a >> 6)], 0);
                format!(
                    "POST /ws-ticket HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\n\
                     Content-Length: 0\r\n\r\n"
                )
            }
            5 => format!("POST /ws-ticket HTTP/1.1\r\n{host}{cookie}Content-Length: 0\r\n\r\n"),
            6 => format!("POST /logout HTTP/1.1\r\n{host}{cookie}Content-Length: 0\r\n\r\n"),
            7 => format!("GET /healthz HTTP/1.1\r\n{host}\r\n"),
            8 => format!("GET /metrics HTTP/1.1\r\n{host}\r\n"),
            9 => format!("HEAD /healthz HTTP/1.1\r\n{host}\r\n"),
            10 => {
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
            _ => format!("GET /healthz HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
        };
        let mut bytes = request.into_bytes();
        if a & 0x10 != 0 {
            bytes = bytes.repeat(2);
        }
        let chunk = match a >> 5 {
            0 => 0,
            k => 1 << (k - 1),
        };
        self.send(id, &bytes, chunk);
    }

    /// Op 5: a chat message from the dictionary.
    fn chat(&mut self, id: ConnId, a: u8) {
        let user = self.h.server.user_of(id).unwrap_or("alice").to_string();
        let other = if user == "alice" { "bob" } else { "alice" };
        let max = self.h.server.config().limits.max_message_bytes;
        let frames = match a % 16 {
            0 => text_frame("hello"),
            1 => text_frame("/who"),
            2 => {
                let token = self.token(&user, 0);
                text_frame(&format!("/refresh {token}"))
            }
            3 => {
                let token = self.token(other, 0);
                text_frame(&format!("/refresh {token}"))
            }
            4 => text_frame("/refresh not.a.token"),
            5 => text_frame(r#"{"type":"message","text":"hi \"there\"\t!"}"#),
            6 => text_frame(r#"{"type":"who"}"#),
            7 => {
                let token = self.token(&user, 6);
                text_frame(&json!({"type": "refresh", "token": token}).to_string())
            }
            // The longest line, all quotes: the most JSON escaping.
            8 => text_frame(
                &json!({"type": "message", "text": "\"".repeat(max / 2 - 40)}).to_string(),
            ),
            9 => text_frame(&"x".repeat(max + 1)),
            10 => text_frame("a\u{1}b"),
            11 => text_frame("/nope"),
            12 => {
                let mut f = client_frame(TEXT, false, 0, true, b"frag");
                f.extend(client_frame(0x0, true, 0, true, b"ment"));
                f
            }
            13 => client_frame(PING, true, 0, true, &[b'p'; 125]),
            14 => client_frame(CLOSE, true, 0, true, &1000u16.to_be_bytes()),
            _ => client_frame(BINARY, true, 0, true, b"\x00\x01"),
        };
        // A raw-text line as long as allowed, for text mode.
        let frames = if a % 16 == 8 && a & 0x10 != 0 {
            text_frame(&"\"".repeat(max))
        } else {
            frames
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
