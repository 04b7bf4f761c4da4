//! The sans-IO core: every connection's state, every decision, no sockets
//! and no clock.
//!
//! The shell drives a [`Server`] with `handle_*` calls, passing the current
//! time (milliseconds since the UNIX epoch), and drains it with `poll_*`
//! calls:
//!
//! - [`Server::handle_accept`], [`Server::handle_bytes`],
//!   [`Server::handle_closed`], [`Server::handle_written`],
//!   [`Server::handle_writable`], [`Server::handle_timeout`],
//!   [`Server::handle_password_checked`];
//! - [`Server::poll_transmit`] (a connection with bytes to write),
//!   [`Server::pending`] (those bytes), [`Server::poll_action`] (sockets
//!   to shut or drop, passwords to check), [`Server::poll_timeout`] (the
//!   next deadline).
//!
//! Because time is an argument, handshake timeouts, expiry and every other
//! deadline are unit-tested with a virtual clock (see `tests.rs`).

mod chat;
mod conn;
mod pipe;
mod rooms;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use log::{debug, info, warn};
use serde_json::json;
use slab::Slab;
use tungstenite::Message;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::auth::jwt::{JwtConfig, Secret, TokenError};
use crate::auth::session::{SessionHandle, SessionStore};
use crate::auth::users::VerifiedUser;
use crate::auth::{Credential, Principal};
use crate::config::Config;
use crate::http::params::{Params, cookie_values};
use crate::http::upgrade::{self, Carrier, Reject, Upgrade, UpgradePolicy};
use crate::http::{self as http, BodyLengthError, Method, Request, Response};

use chat::{Event, JsonRequest, Reply};
use conn::{Conn, Phase, Purpose, Ws};
use pipe::{OutQueue, Pipe};
use rooms::Rooms;

/// A connection's key. Keys are reused after a connection is gone; the
/// shell must act on [`Action::Close`] before it accepts again.
pub type ConnId = usize;

/// Connections accepted past `max_connections` only to be told `503`;
/// beyond these the shell drops new sockets at once.
const REFUSAL_SLACK: usize = 64;

/// How often expired sessions are swept.
const SWEEP_INTERVAL_MS: u64 = 60_000;

/// `Retry-After` seconds on a `503`.
const RETRY_AFTER_SECS: u64 = 1;

/// Something only the shell can do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Drop the socket now; the core has forgotten the connection.
    Close(ConnId),
    /// Everything queued was written: shut the socket's write half, keep
    /// reading (the core discards the input) until end of stream.
    ShutdownWrite(ConnId),
    /// Check a password off the event loop, then call
    /// [`Server::handle_password_checked`] with the job's number.
    CheckPassword(PasswordJob),
}

/// A password to check on a helper thread.
#[derive(PartialEq, Eq)]
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

/// The core: connections, rooms, sessions and the token verifier.
pub struct Server {
    config: Config,
    jwt: JwtConfig,
    sessions: SessionStore,
    conns: Slab<Conn>,
    rooms: Rooms,
    actions: VecDeque<Action>,
    dirty: Vec<ConnId>,
    /// (deadline, id, serial); stale entries are skipped when popped.
    timers: BinaryHeap<Reverse<(u64, ConnId, u64)>>,
    next_serial: u64,
    next_job: u64,
    /// Password jobs in flight: job → (connection, its serial).
    jobs: HashMap<u64, (ConnId, u64)>,
    /// Open WebSockets per session, so logout can close them.
    session_conns: HashMap<SessionHandle, Vec<(ConnId, u64)>>,
    next_sweep: u64,
    ws_config: WebSocketConfig,
    /// Reused buffer for encoding a broadcast once.
    scratch: Vec<u8>,
    /// Same, for the JSON rendering.
    scratch_json: Vec<u8>,
}

impl Server {
    /// A server with `config`, starting at time `now`.
    ///
    /// # Panics
    /// When `config.secrets` is empty or holds a secret shorter than 32
    /// bytes: `main` validates both before it gets here.
    pub fn new(config: Config, now: u64) -> Server {
        let secrets = config
            .secrets
            .iter()
            .map(|s| Secret::new(s.0.clone(), None).expect("secrets are validated at start-up"))
            .collect::<Vec<_>>();
        assert!(!secrets.is_empty(), "at least one secret");
        let mut jwt = JwtConfig::new(secrets);
        jwt.issuer = config.issuer.clone();
        jwt.audience = config.audience.clone();
        jwt.leeway_secs = config.token_leeway.as_secs();
        let limits = &config.limits;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_bytes)
            // why: tungstenite writes into our queue, which never blocks;
            // its own buffer should pass every byte straight through.
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(limits.max_message_bytes))
            .max_frame_size(Some(limits.max_message_bytes));
        let sessions = SessionStore::new(
            config.session_ttl.as_millis() as u64,
            config.session_idle.as_millis() as u64,
            limits.max_sessions_per_user,
        );
        Server {
            jwt,
            sessions,
            conns: Slab::new(),
            rooms: Rooms::default(),
            actions: VecDeque::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            next_serial: 0,
            next_job: 0,
            jobs: HashMap::new(),
            session_conns: HashMap::new(),
            next_sweep: now + SWEEP_INTERVAL_MS,
            ws_config,
            scratch: Vec::new(),
            scratch_json: Vec::new(),
            config,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of connections the core holds (any phase).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Number of rooms with members.
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Number of open WebSockets.
    pub fn websockets(&self) -> usize {
        self.conns.iter().filter(|(_, c)| c.ws().is_some()).count()
    }

    // ------------------------------------------------------------------
    // handle_*

    /// A TCP connection was accepted from `peer`. Returns its id, or `None`
    /// when the server is so far past its connection limit that the socket
    /// should be dropped without a word.
    pub fn handle_accept(&mut self, peer: SocketAddr, now: u64) -> Option<ConnId> {
        let max = self.config.limits.max_connections;
        if self.conns.len() >= max + REFUSAL_SLACK {
            warn!("refused peer={peer} reason=\"connection limit\" (dropped)");
            return None;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        let id = self.conns.insert(Conn {
            serial,
            peer,
            out: OutQueue::default(),
            dirty: false,
            deadline: None,
            phase: Phase::Http {
                buf: Vec::new(),
                sent_continue: false,
            },
        });
        if self.conns.len() > max {
            let rej = Reject::Unavailable("server at connection limit", RETRY_AFTER_SECS);
            info!("refused peer={peer} status=503 reason=\"{}\"", rej.reason());
            self.respond(id, &rej.response(), false, false, now);
        } else {
            let deadline = now + self.config.limits.handshake_timeout.as_millis() as u64;
            self.set_deadline(id, deadline);
        }
        Some(id)
    }

    /// Bytes arrived on connection `id`.
    pub fn handle_bytes(&mut self, id: ConnId, data: &[u8], now: u64) {
        let max_head = self.config.limits.max_head_bytes;
        let max_body = self.config.limits.max_body_bytes;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        match &mut conn.phase {
            Phase::Http { buf, .. } => {
                // why: a head plus a body is all a request may hold; more
                // is refused by `process_http` once it sees the head.
                let room = (max_head + max_body + 1).saturating_sub(buf.len());
                buf.extend_from_slice(&data[..data.len().min(room)]);
                self.process_http(id, now);
            }
            Phase::AwaitPassword { rest, .. } => {
                if rest.len() + data.len() > max_head + max_body {
                    info!(
                        "closed peer={} reason=\"input while a password is checked\"",
                        conn.peer
                    );
                    self.drop_conn(id, now);
                } else {
                    rest.extend_from_slice(data);
                }
            }
            Phase::Ws(_) => self.feed_ws(id, data, now),
            Phase::Closing | Phase::Lingering => {}
        }
    }

    /// The peer hung up, or the socket failed. The shell has dropped (or
    /// will drop) the socket itself; no [`Action::Close`] follows.
    pub fn handle_closed(&mut self, id: ConnId, now: u64) {
        if let Some(conn) = self.conns.get(id) {
            if let Some(ws) = conn.ws() {
                info!(
                    "close user={} peer={} code=1006 reason=\"connection lost\"",
                    ws.principal.user(),
                    conn.peer
                );
            }
            self.forget(id, now);
        }
    }

    /// The shell wrote `n` bytes of [`Server::pending`] for `id`.
    pub fn handle_written(&mut self, id: ConnId, n: usize, now: u64) {
        let close_timeout = self.config.limits.close_timeout.as_millis() as u64;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.out.consume(n);
        if conn.out.is_empty() && matches!(conn.phase, Phase::Closing) {
            conn.phase = Phase::Lingering;
            self.actions.push_back(Action::ShutdownWrite(id));
            self.set_deadline(id, now + close_timeout);
        }
    }

    /// The socket of `id` can take more bytes again.
    pub fn handle_writable(&mut self, id: ConnId) {
        self.mark_dirty(id);
    }

    /// Time passed: act on every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        while let Some(&Reverse((at, id, serial))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = self.conns.get_mut(id) else {
                continue;
            };
            if conn.serial != serial || conn.deadline != Some(at) {
                continue;
            }
            conn.deadline = None;
            self.on_deadline(id, now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL_MS;
            for handle in self.sessions.sweep(now) {
                self.close_session_sockets(handle, 4401, "session expired", now);
            }
        }
    }

    /// A password check finished: `user` is the verified user, or `None`
    /// for a wrong name or password.
    pub fn handle_password_checked(&mut self, job: u64, user: Option<VerifiedUser>, now: u64) {
        let Some((id, serial)) = self.jobs.remove(&job) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.serial != serial {
            return;
        }
        let phase = std::mem::replace(
            &mut conn.phase,
            Phase::Http {
                buf: Vec::new(),
                sent_continue: false,
            },
        );
        let Phase::AwaitPassword {
            job: expected,
            purpose,
            keep_alive,
            rest,
        } = phase
        else {
            conn.phase = phase;
            return;
        };
        debug_assert_eq!(expected, job);
        let peer = conn.peer;
        match purpose {
            Purpose::Upgrade(upgrade) => match user {
                Some(user) => self.admit(id, user.into_principal(), *upgrade, &rest, now),
                None => {
                    let rej = Reject::Unauthorized("invalid credentials");
                    info!(
                        "refused peer={peer} status=401 reason=\"{}\" carrier=password",
                        rej.reason()
                    );
                    self.respond(id, &rej.response(), false, false, now);
                }
            },
            Purpose::Token | Purpose::Login => {
                let response = match (user, &purpose) {
                    (None, _) => {
                        info!("login failed peer={peer}");
                        Response::detail(401, "Incorrect username or password")
                            .header("WWW-Authenticate", "Bearer")
                    }
                    (Some(user), Purpose::Token) => {
                        let ttl = self.config.token_ttl.as_secs();
                        let token = self.jwt.issue(user.name(), user.role(), now, ttl);
                        info!("token issued user={} peer={peer}", user.name());
                        Response::json(
                            200,
                            &json!({ "access_token": token, "token_type": "bearer", "expires_in": ttl }),
                        )
                    }
                    (Some(user), _) => self.login(&user, peer, now),
                };
                if let Some(Phase::Http { buf, .. }) = self.conns.get_mut(id).map(|c| &mut c.phase)
                {
                    *buf = rest;
                }
                self.respond(id, &response, keep_alive, false, now);
                if keep_alive {
                    self.process_http(id, now);
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // poll_*

    /// A connection with bytes to write this turn. Each appears at most
    /// once per call sequence until it gets new bytes or becomes writable.
    pub fn poll_transmit(&mut self) -> Option<ConnId> {
        while let Some(id) = self.dirty.pop() {
            if let Some(conn) = self.conns.get_mut(id) {
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
        self.conns.get(id).map_or(&[], |c| c.out.pending())
    }

    /// The next thing only the shell can do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline, if any (it may be one that is no longer armed;
    /// calling [`Server::handle_timeout`] early is harmless).
    pub fn poll_timeout(&self) -> Option<u64> {
        let conn = self.timers.peek().map(|Reverse((at, ..))| *at);
        Some(conn.map_or(self.next_sweep, |c| c.min(self.next_sweep)))
    }

    // ------------------------------------------------------------------
    // HTTP

    /// Handles every complete request in the buffer of `id`.
    fn process_http(&mut self, id: ConnId, now: u64) {
        let limits = &self.config.limits;
        let (max_headers, max_head, max_body) = (
            limits.max_headers,
            limits.max_head_bytes,
            limits.max_body_bytes,
        );
        loop {
            let Some(conn) = self.conns.get_mut(id) else {
                return;
            };
            let peer = conn.peer;
            let Phase::Http { buf, sent_continue } = &mut conn.phase else {
                return;
            };
            let (req, head_len) = match http::parse_head(buf, max_headers, max_head) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return,
                Err(e) => {
                    info!("refused peer={peer} status={} reason=\"{e}\"", e.status());
                    self.respond(
                        id,
                        &Response::detail(e.status(), &e.to_string()),
                        false,
                        false,
                        now,
                    );
                    return;
                }
            };
            let keep_alive = req.keep_alive();
            let head_only = req.method == Method::Head;
            if upgrade::is_upgrade_path(&req.path) {
                let rest = buf.split_off(head_len);
                self.start_upgrade(id, &req, rest, now);
                return;
            }
            let body_len = match req.body_length() {
                Ok(n) => n,
                Err(e) => {
                    let response = match e {
                        BodyLengthError::TransferEncoding => {
                            Response::detail(411, "send the body with Content-Length")
                        }
                        BodyLengthError::Invalid => Response::detail(400, "bad Content-Length"),
                    };
                    self.respond(id, &response, false, head_only, now);
                    return;
                }
            };
            if body_len > max_body {
                self.respond(
                    id,
                    &Response::detail(413, "request body too large"),
                    false,
                    head_only,
                    now,
                );
                return;
            }
            if buf.len() < head_len + body_len {
                if !*sent_continue && req.has_token("expect", "100-continue") {
                    *sent_continue = true;
                    conn.out.push(b"HTTP/1.1 100 Continue\r\n\r\n");
                    self.mark_dirty(id);
                }
                return;
            }
            let body: Vec<u8> = buf.drain(..head_len + body_len).skip(head_len).collect();
            *sent_continue = false;
            match self.route(id, &req, &body, keep_alive, now) {
                Some(response) => {
                    self.respond(id, &response, keep_alive, head_only, now);
                    if !keep_alive {
                        return;
                    }
                }
                // A password check is under way; the rest waits for it.
                None => return,
            }
        }
    }

    /// Answers a plain HTTP request; `None` when the answer comes later.
    fn route(
        &mut self,
        id: ConnId,
        req: &Request,
        body: &[u8],
        keep_alive: bool,
        now: u64,
    ) -> Option<Response> {
        let allow = |methods: &'static str| {
            Response::detail(405, "method not allowed").header("Allow", methods)
        };
        let peer = self.conns[id].peer;
        let response = match (req.path.as_str(), req.method) {
            ("/healthz", Method::Get | Method::Head) => Response::text(200, "ok"),
            ("/healthz", _) => allow("GET, HEAD"),
            ("/token" | "/login", Method::Post) => {
                let purpose = if req.path == "/token" {
                    Purpose::Token
                } else {
                    Purpose::Login
                };
                match read_login_form(req, body) {
                    Ok((user, password)) => {
                        return self.start_password_check(
                            id,
                            user,
                            password,
                            purpose,
                            keep_alive,
                            Vec::new(),
                        );
                    }
                    Err(detail) => {
                        info!(
                            "refused peer={peer} status=400 path={} reason=\"{detail}\"",
                            req.path
                        );
                        Response::detail(400, detail)
                    }
                }
            }
            ("/logout", Method::Post) => self.logout(req, peer, now),
            ("/token" | "/login" | "/logout", _) => allow("POST"),
            _ => Response::detail(404, "not found"),
        };
        Some(response)
    }

    /// Queues a password check for `id` (or answers `503` when too many
    /// are waiting).
    fn start_password_check(
        &mut self,
        id: ConnId,
        user: String,
        password: String,
        purpose: Purpose,
        keep_alive: bool,
        rest: Vec<u8>,
    ) -> Option<Response> {
        if self.jobs.len() >= self.config.limits.max_pending_logins {
            let rej = Reject::Unavailable("too many logins in progress", RETRY_AFTER_SECS);
            info!(
                "refused peer={} status=503 reason=\"{}\"",
                self.conns[id].peer,
                rej.reason()
            );
            return Some(rej.response());
        }
        let job = self.next_job;
        self.next_job += 1;
        let conn = &mut self.conns[id];
        // why: the leftover of the request buffer (pipelined requests)
        // waits with the job.
        let leftover = match &mut conn.phase {
            Phase::Http { buf, .. } => std::mem::take(buf),
            _ => Vec::new(),
        };
        let mut held = rest;
        held.extend_from_slice(&leftover);
        conn.phase = Phase::AwaitPassword {
            job,
            purpose,
            keep_alive,
            rest: held,
        };
        conn.deadline = None;
        self.jobs.insert(job, (id, conn.serial));
        self.actions.push_back(Action::CheckPassword(PasswordJob {
            job,
            user,
            password,
        }));
        None
    }

    /// `POST /login` succeeded: a fresh session and its cookie.
    fn login(&mut self, user: &VerifiedUser, peer: SocketAddr, now: u64) -> Response {
        let (id, _handle, evicted) = self.sessions.create(user.name(), user.role(), now);
        for old in evicted {
            self.close_session_sockets(old, 4401, "session expired", now);
        }
        info!("login user={} peer={peer}", user.name());
        let secure = if self.config.insecure_cookie {
            ""
        } else {
            " Secure;"
        };
        let cookie = format!(
            "{}={id};{secure} HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.config.cookie_name(),
            self.sessions.max_age_secs()
        );
        Response::empty(204).header("Set-Cookie", cookie)
    }

    /// `POST /logout`: end the session and close its sockets `4403`.
    fn logout(&mut self, req: &Request, peer: SocketAddr, now: u64) -> Response {
        let name = self.config.cookie_name();
        let ids: Vec<Vec<u8>> = cookie_values(req.header_values("cookie"), name)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        for cookie in ids {
            if let Some(handle) = self.sessions.handle_of(&cookie) {
                self.sessions.remove(handle);
                info!("logout peer={peer}");
                self.close_session_sockets(handle, 4403, "logged out", now);
            }
        }
        let secure = if self.config.insecure_cookie {
            ""
        } else {
            " Secure;"
        };
        Response::empty(204).header(
            "Set-Cookie",
            format!("{name}=;{secure} HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )
    }

    /// Queues `response` on `id`. Without keep-alive the connection then
    /// closes; with it, the next request head has a fresh timeout.
    fn respond(
        &mut self,
        id: ConnId,
        response: &Response,
        keep_alive: bool,
        head_only: bool,
        now: u64,
    ) {
        let limits = &self.config.limits;
        let (close_timeout, handshake) = (
            limits.close_timeout.as_millis() as u64,
            limits.handshake_timeout.as_millis() as u64,
        );
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        response.write_to(conn.out.tail(), keep_alive, head_only);
        if keep_alive {
            self.set_deadline(id, now + handshake);
        } else {
            conn.phase = Phase::Closing;
            self.set_deadline(id, now + close_timeout);
        }
        self.mark_dirty(id);
    }

    // ------------------------------------------------------------------
    // The upgrade

    /// A request to `/ws`: validate, authenticate, and open or refuse.
    fn start_upgrade(&mut self, id: ConnId, req: &Request, rest: Vec<u8>, now: u64) {
        let peer = self.conns[id].peer;
        let policy = UpgradePolicy {
            allow_password_auth: false,
            cookie_name: self.config.cookie_name(),
            allowed_origins: &self.config.allowed_origins,
        };
        let target = req.redacted_target();
        let upgrade = match upgrade::validate(req, &policy) {
            Ok(u) => u,
            Err(rej) => return self.refuse(id, rej, &target, None, now),
        };
        let carrier = upgrade.carrier.kind();
        let principal = match &upgrade.carrier {
            Carrier::Bearer(t) | Carrier::Path(t) | Carrier::Query(t) => {
                match self.jwt.verify(t, now) {
                    Ok(claims) => Ok(claims.into_principal()),
                    Err(e) => {
                        debug!("token refused peer={peer}: {}", e.detail());
                        Err(Reject::Unauthorized(match e {
                            TokenError::Expired => "token expired",
                            TokenError::Invalid(_) => "invalid token",
                        }))
                    }
                }
            }
            Carrier::Cookie(sid) => self
                .sessions
                .lookup(sid, now)
                .map_err(|_| Reject::Unauthorized("unknown or expired session")),
            Carrier::Ticket(_) => Err(Reject::Unauthorized("unknown or expired ticket")),
            Carrier::Password { user, password } => {
                let (user, password) = (user.clone(), password.clone());
                let keep_alive = false;
                if let Some(response) = self.start_password_check(
                    id,
                    user,
                    password,
                    Purpose::Upgrade(Box::new(upgrade)),
                    keep_alive,
                    rest,
                ) {
                    self.respond(id, &response, false, false, now);
                }
                return;
            }
        };
        match principal {
            Ok(p) => self.admit(id, p, upgrade, &rest, now),
            Err(rej) => self.refuse(id, rej, &target, Some(carrier), now),
        }
    }

    /// Refuses an upgrade with its HTTP response, and logs it.
    fn refuse(&mut self, id: ConnId, rej: Reject, target: &str, carrier: Option<&str>, now: u64) {
        let peer = self.conns[id].peer;
        let carrier = carrier.map(|c| format!(" carrier={c}")).unwrap_or_default();
        info!(
            "refused peer={peer} status={} reason=\"{}\" target={target}{carrier}",
            rej.status(),
            rej.reason()
        );
        self.respond(id, &rej.response(), false, false, now);
    }

    /// Opens the WebSocket for an authenticated principal: the `101`, the
    /// room, and any frames that came right behind the request head.
    fn admit(&mut self, id: ConnId, principal: Principal, upgrade: Upgrade, rest: &[u8], now: u64) {
        if let Some(allowed) = principal.rooms() {
            if !allowed.contains(&upgrade.room) {
                let target = format!("/ws?room={}", upgrade.room);
                return self.refuse(
                    id,
                    Reject::Forbidden("room not allowed"),
                    &target,
                    None,
                    now,
                );
            }
        }
        let conn = &mut self.conns[id];
        let protocol = if upgrade.json {
            format!("Sec-WebSocket-Protocol: {}\r\n", upgrade::JSON_PROTOCOL)
        } else {
            String::new()
        };
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{protocol}\r\n",
            upgrade.accept
        );
        conn.out.push(head.as_bytes());
        conn.deadline = None;
        info!(
            "open user={} peer={} room={} mode={} carrier={}",
            principal.user(),
            conn.peer,
            upgrade.room,
            if upgrade.json { "json" } else { "text" },
            upgrade.carrier.kind()
        );
        if let Credential::Session { handle } = principal.credential() {
            self.sessions.track_live(*handle, true, now);
            self.session_conns
                .entry(*handle)
                .or_default()
                .push((id, conn.serial));
        }
        let user = principal.user().to_string();
        let room = upgrade.room.clone();
        let mut ws = Ws::new(principal, upgrade.room, upgrade.json, self.ws_config);
        let joined = self.rooms.join(&room, id, &user);
        ws.index = joined.index;
        self.conns[id].phase = Phase::Ws(Box::new(ws));
        self.mark_dirty(id);
        if joined.first_of_user && self.presence_on(&room) {
            self.broadcast(&room, Event::Join { user: &user }, now);
        }
        if !rest.is_empty() {
            self.feed_ws(id, rest, now);
        }
    }

    // ------------------------------------------------------------------
    // WebSocket

    /// Feeds bytes to tungstenite and acts on every complete message.
    fn feed_ws(&mut self, id: ConnId, data: &[u8], now: u64) {
        let mut input = data;
        loop {
            let Some(conn) = self.conns.get_mut(id) else {
                return;
            };
            let Phase::Ws(ws) = &mut conn.phase else {
                return;
            };
            let mut pipe = Pipe {
                input: &mut input,
                out: &mut conn.out,
            };
            let result = ws.ctx.read(&mut pipe);
            if !conn.out.is_empty() {
                self.mark_dirty(id);
            }
            use tungstenite::Error as E;
            match result {
                Ok(Message::Text(text)) => self.on_text(id, text.as_str(), now),
                Ok(Message::Binary(_)) => {
                    return self.close_ws(
                        id,
                        CloseCode::Unsupported,
                        "binary frames not accepted",
                        now,
                    );
                }
                Ok(Message::Close(_)) => {
                    // tungstenite queued the reply; the next read flushes it
                    // and reports `ConnectionClosed`.
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(E::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(E::ConnectionClosed | E::AlreadyClosed) => {
                    return self.finish_ws(id, "closed by peer", now);
                }
                Err(E::Capacity(_)) => {
                    return self.close_ws(id, CloseCode::Size, "message too big", now);
                }
                Err(E::Utf8(_)) => {
                    return self.close_ws(id, CloseCode::Invalid, "invalid utf-8", now);
                }
                Err(_) => return self.close_ws(id, CloseCode::Protocol, "protocol error", now),
            }
        }
    }

    /// A text message from `id`.
    fn on_text(&mut self, id: ConnId, text: &str, now: u64) {
        let Some(ws) = self.conns.get(id).and_then(Conn::ws) else {
            return;
        };
        if !ws.ctx.can_write() {
            return;
        }
        let (json, room) = (ws.json, ws.room.clone());
        let user = ws.principal.user().to_string();
        let request = if json {
            chat::parse_json(text)
        } else {
            chat::parse_text(text).map(|r| match r {
                chat::Request::Message(m) => JsonRequest::Message(m.to_string()),
                chat::Request::Who => JsonRequest::Who,
            })
        };
        match request {
            Ok(JsonRequest::Message(line)) => {
                self.broadcast(
                    &room,
                    Event::Message {
                        from: &user,
                        text: &line,
                    },
                    now,
                );
            }
            Ok(JsonRequest::Who) => {
                let users = self.rooms.get(&room).map(|r| r.users()).unwrap_or_default();
                let reply = Reply::Who(users).render(json);
                self.send_to(id, &reply, now);
            }
            Err((code, detail)) => {
                let reply = Reply::Error(code, detail).render(json);
                self.send_to(id, &reply, now);
            }
        }
    }

    /// Queues one text frame to `id` alone.
    fn send_to(&mut self, id: ConnId, text: &str, now: u64) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if !conn.can_receive() {
            return;
        }
        chat::encode_text_frame(text.as_bytes(), conn.out.tail());
        self.mark_dirty(id);
        if self.conns[id].out.len() > self.config.limits.max_queue_bytes {
            self.close_ws(id, CloseCode::Again, "slow consumer", now);
        }
    }

    /// Writes one event into the queue of every member of `room`: encoded
    /// once per mode, copied into each queue. Members whose queue passes
    /// the cap are closed `1013` afterwards; nobody else waits for them.
    fn broadcast(&mut self, room: &str, event: Event<'_>, now: u64) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let seq = if matches!(event, Event::Message { .. }) {
            r.seq += 1;
            r.seq
        } else {
            r.seq
        };
        let cap = self.config.limits.max_queue_bytes;
        let (mut text_ready, mut json_ready) = (false, false);
        let mut victims = Vec::new();
        for &member in &r.members {
            let Some(conn) = self.conns.get_mut(member) else {
                continue;
            };
            let json = match conn.ws() {
                Some(ws) if ws.ctx.can_write() => ws.json,
                _ => continue,
            };
            let frame = if json {
                if !json_ready {
                    self.scratch_json.clear();
                    chat::encode_text_frame(
                        event.json(room, seq, now).as_bytes(),
                        &mut self.scratch_json,
                    );
                    json_ready = true;
                }
                &self.scratch_json
            } else {
                if !text_ready {
                    self.scratch.clear();
                    chat::encode_text_frame(event.text().as_bytes(), &mut self.scratch);
                    text_ready = true;
                }
                &self.scratch
            };
            conn.out.push(frame);
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(member);
            }
            if conn.out.len() > cap {
                victims.push(member);
            }
        }
        for victim in victims {
            self.close_ws(victim, CloseCode::Again, "slow consumer", now);
        }
    }

    /// The server ends a WebSocket: a close frame with `code`, out of the
    /// room at once, then flush and hang up.
    fn close_ws(&mut self, id: ConnId, code: CloseCode, reason: &'static str, now: u64) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Phase::Ws(ws) = &mut conn.phase else {
            return;
        };
        info!(
            "close user={} peer={} code={} reason=\"{reason}\"",
            ws.principal.user(),
            conn.peer,
            u16::from(code)
        );
        let mut input: &[u8] = &[];
        let mut pipe = Pipe {
            input: &mut input,
            out: &mut conn.out,
        };
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // Errors here mean the close handshake already happened.
        let _ = ws.ctx.close(&mut pipe, Some(frame));
        self.leave_room(id, now);
        self.begin_closing(id, now);
    }

    /// The peer completed a close handshake (or tungstenite is done).
    fn finish_ws(&mut self, id: ConnId, why: &str, now: u64) {
        if let Some(conn) = self.conns.get(id) {
            if let Some(ws) = conn.ws() {
                info!(
                    "close user={} peer={} reason=\"{why}\"",
                    ws.principal.user(),
                    conn.peer
                );
            }
        }
        self.leave_room(id, now);
        self.begin_closing(id, now);
    }

    /// Takes a WebSocket out of its room (and its session's list), telling
    /// the room when that was the user's last connection there. The phase
    /// stays `Ws` until the caller changes it.
    fn leave_room(&mut self, id: ConnId, now: u64) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let serial = conn.serial;
        let Some(ws) = conn.ws_mut() else {
            return;
        };
        if ws.index == usize::MAX {
            return;
        }
        let index = std::mem::replace(&mut ws.index, usize::MAX);
        let room = ws.room.clone();
        let user = ws.principal.user().to_string();
        if let Credential::Session { handle } = *ws.principal.credential() {
            self.sessions.track_live(handle, false, now);
            if let Some(list) = self.session_conns.get_mut(&handle) {
                list.retain(|&(c, s)| (c, s) != (id, serial));
                if list.is_empty() {
                    self.session_conns.remove(&handle);
                }
            }
        }
        let left = self.rooms.leave(&room, index, id, &user);
        if let Some(moved) = left.moved {
            if let Some(ws) = self.conns.get_mut(moved).and_then(Conn::ws_mut) {
                ws.index = index;
            }
        }
        if left.last_of_user && self.presence_on(&room) {
            self.broadcast(&room, Event::Leave { user: &user }, now);
        }
    }

    /// Presence notices are sent only while the room is small.
    fn presence_on(&self, room: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.members.len() <= self.config.limits.presence_limit)
    }

    /// Closes every WebSocket of a session with `code`.
    fn close_session_sockets(
        &mut self,
        handle: SessionHandle,
        code: u16,
        reason: &'static str,
        now: u64,
    ) {
        for (id, serial) in self.session_conns.remove(&handle).unwrap_or_default() {
            if self.conns.get(id).is_some_and(|c| c.serial == serial) {
                self.close_ws(id, CloseCode::from(code), reason, now);
            }
        }
    }

    // ------------------------------------------------------------------
    // Endings and deadlines

    /// From now on: discard input, flush the queue, then shut and linger.
    fn begin_closing(&mut self, id: ConnId, now: u64) {
        let close_timeout = self.config.limits.close_timeout.as_millis() as u64;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.phase = Phase::Closing;
        if conn.out.is_empty() {
            conn.phase = Phase::Lingering;
            self.actions.push_back(Action::ShutdownWrite(id));
        } else {
            self.mark_dirty(id);
        }
        self.set_deadline(id, now + close_timeout);
    }

    fn on_deadline(&mut self, id: ConnId, now: u64) {
        let Some(conn) = self.conns.get(id) else {
            return;
        };
        let peer = conn.peer;
        match conn.phase {
            Phase::Http { .. } => {
                info!("closed peer={peer} reason=\"handshake timeout\"");
                self.drop_conn(id, now);
            }
            Phase::Closing | Phase::Lingering => self.drop_conn(id, now),
            Phase::AwaitPassword { .. } | Phase::Ws(_) => {}
        }
    }

    /// The core ends a connection and tells the shell to drop the socket.
    fn drop_conn(&mut self, id: ConnId, now: u64) {
        if self.conns.contains(id) {
            self.forget(id, now);
            self.actions.push_back(Action::Close(id));
        }
    }

    /// Removes every trace of `id`.
    fn forget(&mut self, id: ConnId, now: u64) {
        self.leave_room(id, now);
        if let Some(conn) = self.conns.try_remove(id) {
            if let Phase::AwaitPassword { job, .. } = conn.phase {
                self.jobs.remove(&job);
            }
        }
    }

    fn set_deadline(&mut self, id: ConnId, at: u64) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.deadline = Some(at);
            self.timers.push(Reverse((at, id, conn.serial)));
        }
    }

    fn mark_dirty(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(id) {
            if !conn.dirty && !conn.out.is_empty() {
                conn.dirty = true;
                self.dirty.push(id);
            }
        }
    }
}

/// Reads a login form: `username`, `password`, and `grant_type=password`
/// when present.
fn read_login_form(req: &Request, body: &[u8]) -> Result<(String, String), &'static str> {
    let form_type = req
        .header("content-type")
        .ok()
        .flatten()
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !form_type.is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        return Err("expected Content-Type: application/x-www-form-urlencoded");
    }
    let form = Params::decode(body).map_err(|_| "repeated form field")?;
    if form.get("grant_type").is_some_and(|g| g != "password") {
        return Err("unsupported grant_type");
    }
    match (form.get("username"), form.get("password")) {
        (Some(u), Some(p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err("username and password are required"),
    }
}
