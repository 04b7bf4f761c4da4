//! A deterministic harness around the sans-IO core, shared by the unit
//! tests and the fuzz targets (compiled only for `cfg(test)` and
//! `cfg(fuzzing)`).
//!
//! [`Harness`] plays the shell: it hands bytes to the [`Server`] (in reads
//! of at most [`READ_CHUNK`] bytes, asking [`Server::should_read`] before
//! each, as the real shell does, so flow control holds input back),
//! collects what it would write, carries out its actions (password checks
//! run inline), and moves a virtual clock. Each simulated peer can speak
//! WebSocket through tungstenite's client role, so tests read frames the
//! way a real client would.

// why: test-only code; nothing outside the crate builds these types.
#![allow(clippy::exhaustive_structs, clippy::exhaustive_enums)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::{Role, WebSocketContext};
use tungstenite::{Error, Message};

use crate::auth::jwt::{JwtConfig, Secret};
use crate::auth::users::Users;
use crate::config::{Config, SecretKey};
use crate::core::pipe::Pipe;
use crate::core::{Accept, Action, ConnId, Server, Time, cluster};
use crate::http::proxied::MAX_PROXY_HEADER;

/// The most bytes handed to the core in one `handle_bytes`, like the real
/// shell's read buffer.
pub const READ_CHUNK: usize = 16 * 1024;

/// The secret every harness signs with.
pub const SECRET: &[u8] = b"testkit-secret-0123456789abcdef-0123456789";

/// The harness's starting time: 2026-01-01T00:00:00Z in milliseconds.
pub const START: Time = Time::from_millis(1_767_225_600_000);

thread_local! {
    /// Log lines of the current thread, while a test or fuzz driver captures them.
    static LOG_LINES: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Collects log lines of threads that asked for them.
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        LOG_LINES.with(|l| l.borrow().is_some())
    }

    fn log(&self, record: &log::Record<'_>) {
        // The server's logger writes wsgate's records only (`main.rs`);
        // tungstenite's trace lines show message payloads.
        if !record.target().starts_with("wsgate") {
            return;
        }
        LOG_LINES.with(|l| {
            if let Some(lines) = l.borrow_mut().as_mut() {
                lines.push(record.args().to_string());
            }
        });
    }

    fn flush(&self) {}
}

/// Starts capturing this thread's log lines; false when another logger
/// was installed first (then the log check is skipped).
pub fn capture_logs() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    static CAPTURE: Capture = Capture;
    let installed = *INSTALLED.get_or_init(|| {
        let ok = log::set_logger(&CAPTURE).is_ok();
        if ok {
            log::set_max_level(log::LevelFilter::Trace);
        }
        ok
    });
    if installed {
        LOG_LINES.with(|l| *l.borrow_mut() = Some(Vec::new()));
    }
    installed
}

/// The lines captured since the last call.
pub fn take_log_lines() -> Vec<String> {
    LOG_LINES.with(|l| {
        l.borrow_mut()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    })
}

/// Stops capturing this thread's log lines.
pub fn stop_capturing_logs() {
    LOG_LINES.with(|l| *l.borrow_mut() = None);
}

/// A client frame: masked unless `masked` is false, `rsv` in bits 4–6.
pub fn client_frame(opcode: u8, fin: bool, rsv: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f)];
    let mask = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask | n as u8),
        n @ 126..=65_535 => {
            out.push(mask | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&KEY);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// A masked client frame, as a well-behaved client sends it.
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(opcode, fin, 0, true, payload)
}

/// A WebSocket upgrade request head for `target`, with `extra` header lines
/// (each ending in `\r\n`).
pub fn upgrade_request(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A form `POST` to `path`.
pub fn form_post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One parsed HTTP response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The first header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a simulated peer saw.
#[derive(Default)]
pub struct Peer {
    /// Bytes the server wrote and the test has not consumed yet.
    pub received: Vec<u8>,
    /// The core dropped the socket ([`Action::Close`]).
    pub dropped: bool,
    /// The core shut the write half ([`Action::ShutdownWrite`]).
    pub shut: bool,
    /// The peer does not read: its queued bytes stay queued.
    pub stalled: bool,
    /// Bytes the peer sent that the core has not read yet (flow control
    /// keeps them "in the kernel").
    pub unread: Vec<u8>,
    /// The peer shut its write half after `unread`.
    eof_after_unread: bool,
    /// The client side of an open WebSocket.
    client: Option<WebSocketContext>,
    /// Messages read by the client and not yet taken by the test.
    inbox: Vec<Message>,
}

/// Redis's session store as the link's scripts keep it (`--redis`): the
/// tests and the fuzzer play it for one node or several.
#[derive(Default)]
pub struct StoreModel {
    /// Session → (record, idle deadline in ms).
    pub sessions: HashMap<cluster::Digest, (cluster::SessionRecord, u64)>,
    /// Each user's sessions, oldest first.
    pub by_user: HashMap<String, Vec<cluster::Digest>>,
    /// Ticket → (payload, session, deadline in ms).
    pub tickets: HashMap<cluster::Digest, (String, Option<cluster::Digest>, u64)>,
    /// Announcements (ended sessions, joins and leaves) not yet delivered
    /// to the nodes.
    pub ended: Vec<cluster::LinkEvent>,
    /// WebSockets counted: `(life, room, user)` → how many.
    pub counts: HashMap<(u64, String, String), u32>,
    /// Each node's current life, by its place among the nodes served.
    pub lives: HashMap<usize, u64>,
    next_life: u64,
    /// Each room's stream (every message, epoch [`REDIS_EPOCH`]), for
    /// [`StoreModel::publish_round`] and resumes.
    pub streams: HashMap<String, Vec<cluster::Delivered>>,
}

impl StoreModel {
    /// The session, if live at `clock.now_ms` (its idle clock restarted).
    fn live(
        &mut self,
        digest: &cluster::Digest,
        clock: cluster::SessionClock,
    ) -> Option<cluster::SessionRecord> {
        let (record, idle_until) = self.sessions.get_mut(digest)?;
        let absolute = record.created_ms + clock.ttl_ms;
        if clock.now_ms >= absolute || clock.now_ms >= *idle_until {
            self.sessions.remove(digest);
            return None;
        }
        *idle_until = clock.now_ms + clock.idle_ms;
        Some(record.clone())
    }

    /// The WebSockets of `user` counted, in `room` (or all rooms).
    fn total(&self, room: Option<&str>, user: &str) -> u32 {
        (self.counts.iter())
            .filter(|((_, r, u), _)| u == user && room.is_none_or(|room| room == r))
            .map(|(_, n)| n)
            .sum()
    }

    /// Counts `n` more (or fewer) of `user` in `room` for `life`,
    /// announcing a first join or a last leave.
    fn count(&mut self, life: u64, room: &str, user: &str, n: i64) {
        let before = self.total(Some(room), user);
        let key = (life, room.to_string(), user.to_string());
        let now = i64::from(self.counts.get(&key).copied().unwrap_or(0)) + n;
        match u32::try_from(now) {
            Ok(0) | Err(_) => self.counts.remove(&key),
            Ok(now) => self.counts.insert(key, now),
        };
        let after = self.total(Some(room), user);
        if (before == 0) != (after == 0) {
            self.ended.push(cluster::LinkEvent::Presence {
                room: room.to_string(),
                user: user.to_string(),
                joined: after > 0,
            });
        }
    }

    /// The node `node` died (or its old life was let go): its counts go,
    /// and the leaves are announced.
    pub fn kill(&mut self, node: usize) {
        if let Some(life) = self.lives.remove(&node) {
            self.drop_life(life);
        }
    }

    fn drop_life(&mut self, life: u64) {
        let mut mine: Vec<(String, String, u32)> = (self.counts.iter())
            .filter(|((l, ..), _)| *l == life)
            .map(|((_, r, u), n)| (r.clone(), u.clone(), *n))
            .collect();
        mine.sort();
        for (room, user, n) in mine {
            self.count(life, &room, &user, -i64::from(n));
        }
    }

    /// `node`'s current life (a new one if it has none).
    fn life(&mut self, node: usize) -> u64 {
        if let Some(&life) = self.lives.get(&node) {
            return life;
        }
        self.next_life += 1;
        self.lives.insert(node, self.next_life);
        self.next_life
    }

    /// Redis's answer to `ask` from node `node` (announcements wait in
    /// [`StoreModel::ended`]).
    pub fn answer(&mut self, node: usize, ask: cluster::Ask) -> cluster::Answer {
        match ask {
            cluster::Ask::Join {
                room,
                user,
                max_per_user,
                may_evict,
            } => {
                let held = self.total(None, &user) as usize;
                if held >= max_per_user && !may_evict {
                    return cluster::Answer::Full;
                }
                let life = self.life(node);
                self.count(life, &room, &user, 1);
                cluster::Answer::Joined {
                    evict: held >= max_per_user,
                }
            }
            cluster::Ask::Leave { room, user } => {
                let life = self.life(node);
                if self
                    .counts
                    .contains_key(&(life, room.clone(), user.clone()))
                {
                    self.count(life, &room, &user, -1);
                }
                cluster::Answer::Done
            }
            cluster::Ask::Who { room } => {
                let mut users: Vec<String> = (self.counts.keys())
                    .filter(|(_, r, _)| *r == room)
                    .map(|(_, _, u)| u.clone())
                    .collect();
                users.sort();
                users.dedup();
                cluster::Answer::Users(users)
            }
            cluster::Ask::Replay { room, since, epoch } => {
                let Some(stream) = self.streams.get(&room) else {
                    return cluster::Answer::Stream {
                        epoch: 0,
                        last: 0,
                        entries: Vec::new(),
                    };
                };
                let from = if epoch == Some(REDIS_EPOCH) { since } else { 0 };
                cluster::Answer::Stream {
                    epoch: REDIS_EPOCH,
                    last: stream.len() as u64,
                    entries: stream.iter().filter(|m| m.seq > from).cloned().collect(),
                }
            }
            cluster::Ask::Register { entries, first } => {
                let old = first.then(|| self.lives.remove(&node)).flatten();
                let life = self.life(node);
                for (room, user, n) in entries {
                    self.count(life, &room, &user, i64::from(n));
                }
                if let Some(old) = old {
                    self.drop_life(old);
                }
                cluster::Answer::Done
            }
            cluster::Ask::CreateSession {
                digest,
                record,
                clock,
                max_per_user,
            } => {
                let mine = self.by_user.entry(record.user.clone()).or_default();
                mine.retain(|d| self.sessions.contains_key(d));
                mine.push(digest);
                let cut = mine.len().saturating_sub(max_per_user);
                let evicted: Vec<cluster::Digest> = mine.drain(..cut).collect();
                for d in &evicted {
                    self.sessions.remove(d);
                }
                if !evicted.is_empty() {
                    self.ended.push(cluster::LinkEvent::SessionsEnded {
                        digests: evicted,
                        why: cluster::Ended::Evicted,
                    });
                }
                self.sessions
                    .insert(digest, (record, clock.now_ms + clock.idle_ms));
                cluster::Answer::Done
            }
            cluster::Ask::LookupSession { digest, clock } => {
                cluster::Answer::Session(self.live(&digest, clock))
            }
            cluster::Ask::EndSessions { digests } => {
                let ended: Vec<cluster::Digest> = (digests.into_iter())
                    .filter(|d| self.sessions.remove(d).is_some())
                    .collect();
                if !ended.is_empty() {
                    self.ended.push(cluster::LinkEvent::SessionsEnded {
                        digests: ended,
                        why: cluster::Ended::LoggedOut,
                    });
                }
                cluster::Answer::Done
            }
            cluster::Ask::TouchSessions { digests, clock } => cluster::Answer::Missing(
                (digests.into_iter())
                    .filter(|d| self.live(d, clock).is_none())
                    .collect(),
            ),
            cluster::Ask::IssueTicket {
                digest,
                payload,
                session,
                clock,
            } => {
                if let Some(s) = session {
                    if self.live(&s, clock).is_none() {
                        return cluster::Answer::Session(None);
                    }
                }
                self.tickets.insert(
                    digest,
                    (payload, session, clock.now_ms + cluster::TICKET_TTL_MS),
                );
                cluster::Answer::Done
            }
            cluster::Ask::RedeemTicket { digest, clock } => {
                let Some((payload, session, until)) = self.tickets.remove(&digest) else {
                    return cluster::Answer::Ticket(None);
                };
                let session_ok = session.is_none_or(|s| self.live(&s, clock).is_some());
                cluster::Answer::Ticket((clock.now_ms < until && session_ok).then_some(payload))
            }
        }
    }

    /// Plays Redis for every message the nodes published: each is
    /// numbered in its room (epoch [`REDIS_EPOCH`]), kept in the room's
    /// stream, confirmed to its node and handed to every node, in order.
    pub fn publish_round(&mut self, nodes: &mut [&mut Harness]) {
        for at in 0..nodes.len() {
            for p in std::mem::take(&mut nodes[at].published) {
                let stream = self.streams.entry(p.room.clone()).or_default();
                let delivered = cluster::Delivered {
                    room: p.room,
                    from: p.from,
                    text: p.text,
                    ts: p.ts,
                    seq: stream.len() as u64 + 1,
                    epoch: REDIS_EPOCH,
                };
                stream.push(delivered.clone());
                let seq = delivered.seq;
                nodes[at].link(cluster::LinkEvent::Stored { id: p.id, seq });
                for h in nodes.iter_mut() {
                    h.link(cluster::LinkEvent::Message(delivered.clone()));
                }
            }
        }
    }

    /// Answers every query the nodes asked (and any they ask meanwhile),
    /// then announces ended sessions, joins and leaves to every node, as
    /// the subscription does.
    pub fn serve(&mut self, nodes: &mut [&mut Harness]) {
        loop {
            let mut any = false;
            for (node, h) in nodes.iter_mut().enumerate() {
                for q in std::mem::take(&mut h.queries) {
                    any = true;
                    let answer = self.answer(node, q.ask);
                    h.link(cluster::LinkEvent::Answer { id: q.id, answer });
                }
            }
            for event in std::mem::take(&mut self.ended) {
                any = true;
                for h in nodes.iter_mut() {
                    h.link(event.clone());
                }
            }
            if !any {
                break;
            }
        }
    }
}

/// The epoch [`Harness::redis_round`] numbers messages in.
pub const REDIS_EPOCH: u64 = 0x0000_0042_0000_0001;

/// The core, a virtual clock and the peers.
pub struct Harness {
    /// The core under test.
    pub server: Server,
    /// The virtual clock.
    pub now: Time,
    /// A verifier/signer with the server's secret.
    pub jwt: JwtConfig,
    users: Users,
    peers: HashMap<ConnId, Peer>,
    next_port: u16,
    /// Password checks are held (as if the helper thread were stuck)
    /// instead of answered at once.
    pub hold_passwords: bool,
    /// The held checks.
    pub held: Vec<crate::core::PasswordJob>,
    /// The answer the core wrote to the last connection it refused at
    /// accept (it holds no connection for it).
    pub refusal: Option<Vec<u8>>,
    /// Messages the core handed to Redis (`--redis`), not yet answered:
    /// [`Harness::redis_round`] plays Redis for them.
    pub published: Vec<crate::core::cluster::Publish>,
    /// Queries the core asked of Redis, in order (the test answers them).
    pub queries: Vec<crate::core::cluster::Query>,
    /// The rooms' sequences as the played Redis keeps them.
    pub redis_seqs: HashMap<String, u64>,
    /// The session store as the played Redis keeps it
    /// ([`Harness::store_round`]).
    pub store: StoreModel,
    /// Queries are answered by [`Harness::store`] as soon as they are
    /// asked (a node alone, with `--redis`).
    pub auto_store: bool,
    serving: bool,
    /// Connections whose queue went out whole while
    /// [`Server::shuts_when_written`] said so: the shell held that write
    /// for the FIN, so the core must now say `ShutdownWrite`
    /// ([`Harness::pump`] checks that it does, and that it does not say
    /// `Close` instead).
    owed_shut: Vec<ConnId>,
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new(|_| {})
    }
}

impl Harness {
    /// A harness whose config the caller may adjust.
    pub fn new(adjust: impl FnOnce(&mut Config)) -> Harness {
        let mut config = Config {
            secrets: vec![SecretKey(SECRET.to_vec())],
            // why: the same inputs give the same session ids and tickets,
            // so a fuzz input replays exactly.
            random_seed: Some(0x5eed),
            ..Config::default()
        };
        adjust(&mut config);
        let secret = Secret::new(SECRET.to_vec(), None).expect("long enough");
        Harness {
            server: Server::new(config, START),
            now: START,
            jwt: JwtConfig::new(vec![secret]),
            users: Users::demo(),
            peers: HashMap::new(),
            next_port: 40_000,
            hold_passwords: false,
            held: Vec::new(),
            refusal: None,
            published: Vec::new(),
            queries: Vec::new(),
            redis_seqs: HashMap::new(),
            store: StoreModel::default(),
            auto_store: false,
            serving: false,
            owed_shut: Vec::new(),
        }
    }

    /// Plays the shell's write of the first `n` queued bytes of `id`: the
    /// peer receives them and the core hears they were written. A write
    /// that empties the queue of a connection that
    /// [`Server::shuts_when_written`] is owed its shut (see `owed_shut`).
    pub fn write_out(&mut self, id: ConnId, n: usize) {
        let last = self.server.shuts_when_written(id);
        let pending = self.server.pending(id);
        let n = n.min(pending.len());
        let whole = n == pending.len();
        let bytes = pending[..n].to_vec();
        self.peer(id).received.extend_from_slice(&bytes);
        self.server.handle_written(id, n, self.now);
        if last && whole && !self.owed_shut.contains(&id) {
            self.owed_shut.push(id);
        }
    }

    /// A token for `user` (role `member`) valid for `ttl_secs` from now.
    pub fn token(&self, user: &str, ttl_secs: u64) -> String {
        self.jwt
            .issue(user, "member", self.now.as_millis(), ttl_secs)
    }

    /// A token with exactly these claims.
    pub fn token_with(&self, claims: serde_json::Value) -> String {
        match claims {
            serde_json::Value::Object(map) => self.jwt.sign(&map),
            _ => panic!("claims must be an object"),
        }
    }

    /// Accepts a connection from a fresh port of 127.0.0.1; `None` when
    /// the core refused it (its answer is in [`Harness::refusal`]).
    pub fn try_connect(&mut self) -> Option<ConnId> {
        self.connect_from([127, 0, 0, 1].into())
    }

    /// The answer to the last refused accept, parsed.
    pub fn refusal(&mut self) -> Option<HttpResponse> {
        let mut bytes = self.refusal.take()?;
        take_response(&mut bytes)
    }

    /// Accepts a connection.
    pub fn connect(&mut self) -> ConnId {
        self.try_connect().expect("connection accepted")
    }

    /// The peer state of `id`.
    pub fn peer(&mut self, id: ConnId) -> &mut Peer {
        self.peers.entry(id).or_default()
    }

    /// Sends bytes from the peer of `id`: they reach the core as fast as
    /// it is willing to read them.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        self.peer(id).unread.extend_from_slice(bytes);
        self.deliver(id);
        self.pump();
    }

    /// Hands the core what the peer of `id` sent, a read at a time, while
    /// the core wants to read; the rest stays unread until it resumes.
    fn deliver(&mut self, id: ConnId) -> bool {
        let mut progressed = false;
        loop {
            let peer = self.peer(id);
            if peer.dropped {
                peer.unread.clear();
                return progressed;
            }
            // Asked before every read, even with nothing to read: the core
            // may process input it held back.
            if !self.server.should_read(id, self.now) {
                return progressed;
            }
            let peer = self.peer(id);
            if peer.unread.is_empty() {
                if std::mem::take(&mut peer.eof_after_unread) {
                    self.server.handle_eof(id, self.now);
                    progressed = true;
                }
                return progressed;
            }
            // A PROXY protocol header is peeked, then taken whole, as the
            // shell does.
            if self.server.awaits_proxy_header(id) {
                let unread = &self.peer(id).unread;
                let peeked = unread[..unread.len().min(MAX_PROXY_HEADER)].to_vec();
                let Some(len) = (self.server).handle_proxy_header(id, &peeked, self.now) else {
                    return progressed;
                };
                self.peer(id).unread.drain(..len);
                progressed = true;
                continue;
            }
            let peer = self.peer(id);
            let n = peer.unread.len().min(READ_CHUNK);
            let chunk: Vec<u8> = peer.unread.drain(..n).collect();
            self.server.handle_bytes(id, &chunk, self.now);
            progressed = true;
        }
    }

    /// The peer of `id` shuts its write half (end of stream), after what
    /// it already sent.
    pub fn half_close(&mut self, id: ConnId) {
        self.peer(id).eof_after_unread = true;
        self.deliver(id);
        self.pump();
    }

    /// Accepts a connection from `ip`; `None` when the core refused it
    /// (its answer is in [`Harness::refusal`]).
    pub fn connect_from(&mut self, ip: std::net::IpAddr) -> Option<ConnId> {
        self.next_port = self.next_port.wrapping_add(1);
        let peer = SocketAddr::new(ip, self.next_port);
        match self.server.handle_accept(peer, self.now) {
            Accept::Open(id) => {
                // A key may be reused: the old peer is gone for good.
                self.peers.insert(id, Peer::default());
                self.pump();
                Some(id)
            }
            Accept::Refuse(answer) => {
                self.refusal = Some(answer);
                None
            }
            Accept::Drop => None,
        }
    }

    /// The peer of `id` hangs up.
    pub fn hang_up(&mut self, id: ConnId) {
        self.peer(id).unread.clear();
        self.server.handle_closed(id, self.now);
        self.pump();
    }

    /// Moves the clock forward by `ms`, stopping at every deadline the core
    /// asks for on the way (as the shell's sleep would), so peers answer
    /// pings in time.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + Duration::from_millis(ms);
        loop {
            let next = self
                .server
                .poll_timeout()
                .map_or(target, |at| at.clamp(self.now, target));
            self.now = next;
            self.server.handle_timeout(self.now);
            self.pump();
            if self.now >= target {
                return;
            }
        }
    }

    /// Moves the clock forward by `ms` in one jump, as after a long stall
    /// of the whole process.
    pub fn jump(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.server.handle_timeout(self.now);
        self.pump();
    }

    /// The peer of `id` stops (or resumes) reading.
    pub fn stall(&mut self, id: ConnId, stalled: bool) {
        self.peer(id).stalled = stalled;
        if !stalled {
            self.server.handle_writable(id);
            self.pump();
        }
    }

    /// Plays Redis for every message published so far: each is stored
    /// (numbered in its room, epoch [`REDIS_EPOCH`]) and handed back to the
    /// core as the subscription would, in order.
    pub fn redis_round(&mut self) {
        use crate::core::cluster::{Delivered, LinkEvent};
        for p in std::mem::take(&mut self.published) {
            let seq = self.redis_seqs.entry(p.room.clone()).or_insert(0);
            *seq += 1;
            let seq = *seq;
            let now = self.now;
            self.server
                .handle_link(LinkEvent::Stored { id: p.id, seq }, now);
            let delivered = Delivered {
                room: p.room,
                from: p.from,
                text: p.text,
                ts: p.ts,
                seq,
                epoch: REDIS_EPOCH,
            };
            // Kept in the played stream too (resumes on another node).
            let stream = self.store.streams.entry(delivered.room.clone());
            stream.or_default().push(delivered.clone());
            self.server.handle_link(LinkEvent::Message(delivered), now);
        }
        self.pump();
    }

    /// Plays Redis's session store ([`Harness::store`]) for every query
    /// asked so far (and any asked meanwhile).
    pub fn store_round(&mut self) {
        let mut store = std::mem::take(&mut self.store);
        self.serving = true;
        store.serve(&mut [self]);
        self.serving = false;
        self.store = store;
    }

    /// Answers every query asked so far `Unavailable`, as the link does
    /// when it goes down.
    pub fn fail_queries(&mut self) {
        for q in std::mem::take(&mut self.queries) {
            self.link(cluster::LinkEvent::Answer {
                id: q.id,
                answer: cluster::Answer::Unavailable,
            });
        }
    }

    /// Tells the core what the Redis link says, then plays the shell.
    pub fn link(&mut self, event: crate::core::cluster::LinkEvent) {
        let now = self.now;
        self.server.handle_link(event, now);
        self.pump();
    }

    /// Plays the shell until the core has nothing more to say.
    pub fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.server.poll_action() {
                progressed = true;
                match action {
                    // why: a close is no shut for a held write: while
                    // another process (a forked child before its exec)
                    // holds the descriptor, close() sends no FIN, and the
                    // held bytes wait for TCP's probe timer (200 ms).
                    Action::Close(id) => {
                        assert!(
                            !self.owed_shut.contains(&id),
                            "{id:?}: closed, not shut, after a write held for the FIN"
                        );
                        self.peer(id).dropped = true;
                    }
                    Action::ShutdownWrite(id) => {
                        self.owed_shut.retain(|&o| o != id);
                        self.peer(id).shut = true;
                    }
                    Action::CheckPassword(job) if self.hold_passwords => self.held.push(job),
                    Action::CheckPassword(job) => {
                        let verified = self.users.check(&job.user, &job.password);
                        self.server
                            .handle_password_checked(job.job, verified, self.now);
                    }
                    Action::Resume(id) => {
                        self.deliver(id);
                    }
                    Action::Publish(publish) => self.published.push(publish),
                    Action::Query(query) => self.queries.push(query),
                }
            }
            while let Some(id) = self.server.poll_transmit() {
                if self.peers.get(&id).is_some_and(|p| p.stalled) {
                    continue;
                }
                progressed = true;
                self.write_out(id, usize::MAX);
            }
            // Clients read what arrived, as real ones do, and answer
            // pings (and close frames) on their own.
            let readers: Vec<ConnId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.client.is_some() && !p.stalled && !p.received.is_empty())
                .map(|(id, _)| *id)
                .collect();
            for id in readers {
                let replies = self.client_read(id);
                if !replies.is_empty() && !self.peer(id).dropped {
                    progressed = true;
                    self.peer(id).unread.extend_from_slice(&replies);
                    self.deliver(id);
                }
            }
            if !progressed {
                break;
            }
        }
        // why: the shell sends such a last write with MSG_MORE; without
        // the shut that follows it, the answer would wait in the kernel.
        assert!(
            self.owed_shut.is_empty(),
            "queues written out whole while shuts_when_written, never shut: {:?}",
            self.owed_shut
        );
        if self.auto_store && !self.serving && !self.queries.is_empty() {
            self.store_round();
        }
    }

    /// Lets the client of `id` read what arrived; returns what it wants to
    /// send back (pongs, a close reply).
    fn client_read(&mut self, id: ConnId) -> Vec<u8> {
        let peer = self.peer(id);
        let mut replies = Vec::new();
        let Some(client) = peer.client.as_mut() else {
            return replies;
        };
        let received = std::mem::take(&mut peer.received);
        let mut input: &[u8] = &received;
        // The core's own in-memory stream, writing to a plain vector.
        let mut pipe = Pipe {
            input: &mut input,
            out: &mut replies,
        };
        loop {
            match client.read(&mut pipe) {
                Ok(m) => peer.inbox.push(m),
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        replies
    }

    /// Takes one complete HTTP response off what `id` received.
    pub fn response(&mut self, id: ConnId) -> Option<HttpResponse> {
        take_response(&mut self.peer(id).received)
    }

    /// Sends `request` on a new connection and returns the response.
    pub fn request(&mut self, request: &str) -> (ConnId, HttpResponse) {
        let id = self.connect();
        self.send(id, request.as_bytes());
        let response = self.response(id).expect("a complete response");
        (id, response)
    }

    /// Upgrades a new connection; on `101` the peer becomes a WebSocket
    /// client.
    pub fn upgrade(&mut self, target: &str, extra: &str) -> (ConnId, HttpResponse) {
        let (id, response) = self.request(&upgrade_request(target, extra));
        if response.status == 101 {
            self.make_client(id);
        }
        (id, response)
    }

    /// Turns the peer of `id` into a WebSocket client (after a `101`).
    pub fn make_client(&mut self, id: ConnId) {
        self.peer(id).client = Some(WebSocketContext::new(Role::Client, None));
    }

    /// Opens a text-mode WebSocket for `user` with a fresh token.
    pub fn open(&mut self, user: &str) -> ConnId {
        self.open_in(user, "lobby")
    }

    /// Opens a text-mode WebSocket for `user` in `room`.
    pub fn open_in(&mut self, user: &str, room: &str) -> ConnId {
        let token = self.token(user, 3600);
        let (id, response) = self.upgrade(
            &format!("/ws?room={room}"),
            &format!("Authorization: Bearer {token}\r\n"),
        );
        assert_eq!(response.status, 101, "{}", response.body);
        id
    }

    /// The client of `id` sends `message` (masked, as a client must).
    pub fn ws_send(&mut self, id: ConnId, message: Message) {
        let mut out = Vec::new();
        let client = self.peer(id).client.as_mut().expect("an open WebSocket");
        let mut input: &[u8] = &[];
        let mut pipe = Pipe {
            input: &mut input,
            out: &mut out,
        };
        client.write(&mut pipe, message).expect("client write");
        client.flush(&mut pipe).expect("client flush");
        self.send(id, &out);
    }

    /// The client of `id` sends a text message.
    pub fn say(&mut self, id: ConnId, text: &str) {
        self.ws_send(id, Message::text(text));
    }

    /// Every message the client of `id` has read (control frames too)
    /// and the test has not taken yet.
    pub fn messages(&mut self, id: ConnId) -> Vec<Message> {
        let replies = self.client_read(id);
        if !replies.is_empty() {
            self.send(id, &replies);
        }
        std::mem::take(&mut self.peer(id).inbox)
    }

    /// The text messages the client of `id` can read now.
    pub fn texts(&mut self, id: ConnId) -> Vec<String> {
        self.messages(id)
            .into_iter()
            .filter_map(|m| match m {
                Message::Text(t) => Some(t.as_str().to_string()),
                _ => None,
            })
            .collect()
    }

    /// The close frame the client of `id` received, if any, as
    /// `(code, reason)`.
    pub fn close_frame(&mut self, id: ConnId) -> Option<(u16, String)> {
        self.messages(id).into_iter().find_map(|m| match m {
            Message::Close(Some(CloseFrame { code, reason })) => {
                Some((u16::from(code), reason.as_str().to_string()))
            }
            _ => None,
        })
    }
}

/// Takes one complete HTTP response off the front of `received`.
fn take_response(received: &mut Vec<u8>) -> Option<HttpResponse> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(received).ok()? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return None,
    };
    let headers: Vec<(String, String)> = res
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = res.code?;
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if status == 101 || status == 100 {
        received.drain(..head_len);
        return Some(HttpResponse {
            status,
            headers,
            body: String::new(),
        });
    }
    if received.len() < head_len + len {
        return None;
    }
    let body = String::from_utf8_lossy(&received[head_len..head_len + len]).into_owned();
    received.drain(..head_len + len);
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}
