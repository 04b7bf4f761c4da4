//! Plain HTTP requests (PROTOCOL §1): tokens, logins, tickets, logout,
//! health and metrics. Upgrades are handed to `handshake`.
//!
//! [`Server::process_http`] reads requests out of a connection's buffer;
//! [`Context::route`] decides each one without touching any connection
//! and returns a [`Routed`], which the server carries out.

use super::peer::Peer;
use crate::http::proxied;

use log::info;
use serde_json::json;

use super::cluster::Ask;
use super::conn::{Cors, PasswordCheck, Phase, Purpose, StoreStep};
use super::context::Context;
use super::ending::Ending;
use super::logfmt::quoted;
use super::metrics::Gauges;
use super::time::{Time, Timer};
use super::{Action, ConnId, PasswordJob, RETRY_AFTER_SECS, Server};
use crate::auth::secret_id::digest_of;
use crate::auth::session::SessionHandle;
use crate::auth::users::VerifiedUser;
use crate::http::params::{Params, cookie_values};
use crate::http::response::session_cookie;
use crate::http::response::{Part, Then};
use crate::http::upgrade::{self, Reject};
use crate::http::{self as http, BodyLengthError, Method, Request, Response};
use crate::http::{cors, ui};

/// Password checks one client address may have waiting at once.
const MAX_PENDING_LOGINS_PER_IP: usize = 4;

/// What a plain HTTP request calls for.
#[derive(Debug)]
pub(super) enum Routed {
    /// Answer with this.
    Respond(Response),
    /// Close the WebSockets of these sessions (they ended: a logout, or a
    /// login that evicted the user's oldest), then answer.
    EndSessions(Response, Vec<SessionHandle>, Ending),
    /// Check a password off the event loop; the answer comes after.
    CheckPassword {
        user: String,
        password: String,
        purpose: Purpose,
    },
    /// Ask the session store in Redis (`--redis`); the answer comes after
    /// (its response carries its own CORS, by the step).
    Ask(Ask, StoreStep),
}

impl Routed {
    /// The same, its answer (if it has one now) changed by `f`.
    pub(super) fn map_response(self, f: impl FnOnce(Response) -> Response) -> Routed {
        match self {
            Routed::Respond(r) => Routed::Respond(f(r)),
            Routed::EndSessions(r, ended, ending) => Routed::EndSessions(f(r), ended, ending),
            waits @ (Routed::CheckPassword { .. } | Routed::Ask(..)) => waits,
        }
    }
}

/// What a `refused` log line says beyond the reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Detail {
    /// The credential's kind (`token`, `cookie`, `password`…), when known.
    pub carrier: Option<&'static str>,
    /// The check that refused it, for the operator (never the credential).
    pub why: Option<&'static str>,
}

impl Detail {
    /// Only the credential's kind, if known.
    pub fn carrier(carrier: Option<&'static str>) -> Detail {
        Detail { carrier, why: None }
    }
}

impl Context {
    /// Decides a plain HTTP request from `peer` (`gauges`: the server's
    /// load, for `/metrics`).
    pub(super) fn route(
        &mut self,
        req: &Request,
        body: &[u8],
        peer: Peer,
        gauges: &Gauges,
        now: Time,
    ) -> Routed {
        let allow = |methods: &'static str| {
            Response::detail(405, "method not allowed").header("Allow", methods)
        };
        let cors = Cors(cors::allowed_origin(req, &self.config.allowed_origins));
        if let Some(origin) = cors.0.filter(|_| cors::is_preflight(req)) {
            return Routed::Respond(cors::preflight(&self.config.allowed_origins[origin]));
        }
        if let Some(asset) = ui::asset(&req.path).filter(|_| !self.config.no_ui) {
            return Routed::Respond(match req.method {
                Method::Get | Method::Head => {
                    let accepted: Vec<&str> = req
                        .header_values("accept-encoding")
                        .map(|v| std::str::from_utf8(v).unwrap_or(""))
                        .collect();
                    asset.response(
                        (!accepted.is_empty())
                            .then(|| accepted.join(","))
                            .as_deref(),
                    )
                }
                _ => allow("GET, HEAD"),
            });
        }
        let routed = match (req.path.as_str(), req.method) {
            ("/healthz", Method::Get | Method::Head) => Routed::Respond(match &self.cluster {
                Some(cluster) if !cluster.up => Response::text(503, "redis unreachable"),
                _ => Response::text(200, "ok"),
            }),
            ("/metrics", Method::Get | Method::Head) => Routed::Respond(
                Response::empty(200)
                    .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    .with_body(self.metrics.render(gauges).into_bytes()),
            ),
            ("/healthz" | "/metrics", _) => Routed::Respond(allow("GET, HEAD")),
            ("/login" | "/logout", Method::Post) if self.foreign_origin(req) => {
                Routed::Respond(self.refused_cross_site(req, peer))
            }
            ("/token" | "/login", Method::Post) => {
                let purpose = if req.path == "/token" {
                    Purpose::Token(cors)
                } else {
                    Purpose::Login(cors)
                };
                match read_login_form(req, body) {
                    Ok((user, password)) => Routed::CheckPassword {
                        user,
                        password,
                        purpose,
                    },
                    Err(detail) => {
                        let rej = Reject::BadRequest(detail);
                        self.log_refusal(peer, rej, &req.path, Detail::default());
                        Routed::Respond(rej.response())
                    }
                }
            }
            ("/ws-ticket", Method::Post) => self.ws_ticket(req, peer, cors, now),
            ("/logout", Method::Post) => self.logout(req, peer, cors),
            ("/token" | "/login" | "/logout" | "/ws-ticket", _) => Routed::Respond(allow("POST")),
            _ => Routed::Respond(Response::detail(404, "not found")),
        };
        routed.map_response(|r| self.with_cors(cors, r))
    }

    /// `response` as a page of the `--allowed-origin` that `cors` names
    /// may read it (CORS); unchanged for every other origin.
    pub(super) fn with_cors(&self, cors: Cors, response: Response) -> Response {
        match cors.0.and_then(|i| self.config.allowed_origins.get(i)) {
            Some(origin) => cors::allow(response, origin),
            None => response,
        }
    }

    /// True when a browser sent `req` from a page the server does not
    /// trust: an `Origin` that is present and neither the server's own
    /// (same host, `https` off loopback unless `--insecure-cookie`) nor an
    /// `--allowed-origin`; `null` included. No `Origin` at all is a
    /// non-browser client, which cannot be made to send a request by a
    /// page. The login-CSRF check of `/login`, `/logout` and cookie
    /// `/ws-ticket` (PROTOCOL §1).
    fn foreign_origin(&self, req: &Request) -> bool {
        upgrade::check_post_origin(req, &self.upgrade_policy()).is_err()
    }

    /// The `403` for a state-changing request from a foreign origin.
    fn refused_cross_site(&mut self, req: &Request, peer: Peer) -> Response {
        self.log_origin(req, peer);
        let rej = Reject::Forbidden("origin not allowed");
        self.log_refusal(peer, rej, &req.path, Detail::default());
        rej.response()
    }

    /// Says in the log which rule refused the `Origin` of `req`, and what
    /// it was (quoted): `origin refused peer=… origin="…" host="…"
    /// why="…"`, beside the `refused` line, so that an operator can tell a
    /// missing port from a trailing `/` or `localhost` from `127.0.0.1`.
    pub(super) fn log_origin(&self, req: &Request, peer: Peer) {
        let Err(why) = upgrade::origin_rule(req, &self.upgrade_policy()) else {
            return;
        };
        let shown = |name| match req.header(name) {
            Ok(Some(v)) => quoted(v).to_string(),
            _ => "-".to_string(),
        };
        info!(
            "origin refused peer={peer} origin={} host={} why=\"{why}\"",
            shown("origin"),
            shown("host")
        );
    }

    /// Logs a refused request and counts it in `/metrics`: the one place
    /// that writes the `refused` line, `refused peer=… status=…
    /// reason="…" target=…` (the target [`quoted`]: a peer chose it), with
    /// ` carrier=KIND` when the credential's kind is known and `
    /// why="…"` when the check that refused it is (a token's: the client
    /// hears only the class). The caller sends the answer
    /// ([`Reject::response`]).
    pub(super) fn log_refusal(&mut self, peer: Peer, rej: Reject, target: &str, detail: Detail) {
        let carrier = detail
            .carrier
            .map(|c| format!(" carrier={c}"))
            .unwrap_or_default();
        let why = detail
            .why
            .map(|w| format!(" why=\"{w}\""))
            .unwrap_or_default();
        info!(
            "refused peer={peer} status={} reason=\"{}\" target={}{carrier}{why}",
            rej.status(),
            rej.reason(),
            quoted(target)
        );
        self.metrics.refused(rej.status(), rej.reason());
    }

    /// Why a password check may not start now, if it may not: the peer's
    /// address has `in_flight` checks waiting (or failed too often), or
    /// the helper has `pending` checks in all. A refusal is logged and
    /// counted; the failure bucket is charged when the check starts (so
    /// parallel guesses count), and a success refunds it.
    fn password_check_refusal(
        &mut self,
        purpose: &Purpose,
        peer: Peer,
        in_flight: usize,
        pending: usize,
        now: Time,
    ) -> Option<Reject> {
        let refusal = if in_flight >= MAX_PENDING_LOGINS_PER_IP {
            Reject::TooMany("too many logins in progress", RETRY_AFTER_SECS)
        } else if pending >= self.config.limits.max_pending_logins {
            Reject::Unavailable("too many logins in progress", RETRY_AFTER_SECS)
        } else if let Err(secs) = self.failed_logins.take(peer.key(), now) {
            Reject::TooMany("too many failed logins", secs)
        } else {
            return None;
        };
        let (target, carrier) = match purpose {
            Purpose::Token(_) => ("/token".to_string(), None),
            Purpose::Login(_) => ("/login".to_string(), None),
            Purpose::Upgrade(upgrade) => (format!("/ws?room={}", upgrade.room), Some("password")),
        };
        self.log_refusal(peer, refusal, &target, Detail::carrier(carrier));
        Some(refusal)
    }

    /// The answer to a checked password for `/token` or `/login`: `user`
    /// is `None` for a wrong name or password.
    pub(super) fn logged_in(
        &mut self,
        user: Option<&VerifiedUser>,
        purpose: &Purpose,
        peer: Peer,
        now: Time,
    ) -> Routed {
        let routed = match user {
            None => {
                info!("login failed peer={peer} reason=\"wrong name or password\"");
                Routed::Respond(
                    Response::detail(401, "Incorrect username or password")
                        .header("WWW-Authenticate", "Bearer"),
                )
            }
            Some(user) if matches!(purpose, Purpose::Token(_)) => {
                Routed::Respond(self.issue_token(user, peer, now))
            }
            Some(user) if self.clustered() => {
                self.login_shared(user.name(), user.role(), purpose.cors(), now)
            }
            Some(user) => self.login(user, peer, now),
        };
        routed.map_response(|r| self.with_cors(purpose.cors(), r))
    }

    /// `POST /token` succeeded.
    fn issue_token(&self, user: &VerifiedUser, peer: Peer, now: Time) -> Response {
        let ttl = self.config.token_ttl.as_secs();
        let token = self
            .jwt
            .issue(user.name(), user.role(), now.as_millis(), ttl);
        info!("token issued user={} peer={peer}", quoted(user.name()));
        Response::json(
            200,
            &json!({ "access_token": token, "token_type": "bearer", "expires_in": ttl }),
        )
    }

    /// `POST /login` succeeded: a fresh session and its cookie; sessions
    /// it evicted (the user's oldest, past `--max-sessions-per-user`) end.
    fn login(&mut self, user: &VerifiedUser, peer: Peer, now: Time) -> Routed {
        let (id, _handle, evicted) =
            self.sessions
                .create(user.name(), user.role(), now.as_millis());
        info!("login user={} peer={peer}", quoted(user.name()));
        let max_age = self.sessions.max_age_secs();
        let response = Response::empty(204).header("Set-Cookie", self.cookie(&id, max_age));
        Routed::EndSessions(response, evicted, Ending::SessionExpired)
    }

    /// The `Set-Cookie` value that sets (or, empty with `max_age` 0,
    /// clears) the session cookie.
    pub(super) fn cookie(&self, value: &str, max_age: u64) -> String {
        let (name, secure) = (self.config.cookie_name(), !self.config.insecure_cookie);
        session_cookie(name, value, secure, max_age)
    }

    /// `POST /logout`: end the session; its sockets close `4403` (with
    /// `--redis`, on every node, and the answer waits for Redis).
    fn logout(&mut self, req: &Request, peer: Peer, cors: Cors) -> Routed {
        let name = self.config.cookie_name();
        if self.clustered() {
            let digests: Vec<_> = cookie_values(req.header_values("cookie"), name)
                .into_iter()
                .map(digest_of)
                .collect();
            if !digests.is_empty() {
                let step = StoreStep::Logout {
                    digests: digests.clone(),
                    cors,
                };
                return Routed::Ask(Ask::EndSessions { digests }, step);
            }
        }
        let mut ended = Vec::new();
        for cookie in cookie_values(req.header_values("cookie"), name) {
            if let Some(handle) = self.sessions.handle_of(cookie) {
                self.sessions.remove(handle);
                info!("logout peer={peer}");
                ended.push(handle);
            }
        }
        let response = Response::empty(204).header("Set-Cookie", self.cookie("", 0));
        Routed::EndSessions(response, ended, Ending::LoggedOut)
    }

    /// `POST /ws-ticket`: a single-use ticket for the session (with an
    /// allowed `Origin`) or the bearer token's user.
    fn ws_ticket(&mut self, req: &Request, peer: Peer, cors: Cors, now: Time) -> Routed {
        let unauthorized = |reason: &'static str| {
            Routed::Respond(
                Response::detail(401, reason)
                    .header("WWW-Authenticate", "Bearer error=\"invalid_token\""),
            )
        };
        let more = || Routed::Respond(Response::detail(400, "more than one credential"));
        let mut authz = req.header_values("authorization");
        let (principal, session) = match (authz.next(), authz.next()) {
            (Some(_), Some(_)) => return more(),
            (Some(value), None) => {
                let token = match upgrade::bearer_token(value) {
                    Ok(token) => token,
                    Err(rej) => return unauthorized(rej.reason()),
                };
                match self.jwt.verify(token, now.as_millis()) {
                    Ok(claims) => (claims.into_principal(), None),
                    Err(e) => return unauthorized(e.public_reason()),
                }
            }
            (None, _) => {
                let cookies = cookie_values(req.header_values("cookie"), self.config.cookie_name());
                let [sid] = cookies.as_slice() else {
                    return match cookies.len() {
                        0 => unauthorized("missing credentials"),
                        _ => more(),
                    };
                };
                // A cookie is ambient: a foreign page must not get a ticket
                // (login CSRF; the ticket itself it could not read anyway).
                if self.foreign_origin(req) {
                    return Routed::Respond(self.refused_cross_site(req, peer));
                }
                if self.clustered() {
                    let digest = digest_of(sid);
                    let clock = self.session_clock(now);
                    let ask = Ask::LookupSession { digest, clock };
                    return Routed::Ask(ask, StoreStep::TicketSession { digest, cors });
                }
                match self.sessions.lookup(sid, now.as_millis()) {
                    Ok(p) => (p, None),
                    Err(_) => return unauthorized("unknown or expired session"),
                }
            }
        };
        self.issue_ticket(principal, session, cors, peer, now)
    }
}

impl Server {
    /// Handles every complete request in the buffer of `id`.
    pub(super) fn process_http(&mut self, id: ConnId, now: Time) {
        let limits = &self.ctx.config.limits;
        let (max_headers, max_head, max_body) = (
            limits.max_headers,
            limits.max_head_bytes,
            limits.max_body_bytes,
        );
        loop {
            let Some(conn) = self.reg.get(id) else {
                return;
            };
            // why: answers the peer has not read yet must not pile up
            // without bound (their own cap, and the budget of all queues);
            // the rest waits until `handle_written`.
            if self.http_waits(conn) {
                return;
            }
            let Phase::Http { buf, .. } = &self.reg[id].phase else {
                return;
            };
            let (req, head_len) = match http::parse_head(buf, max_headers, max_head) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return,
                Err(e) => {
                    let rej = match e.status() {
                        431 => Reject::HeadTooLarge(e.phrase()),
                        _ => Reject::BadRequest(e.phrase()),
                    };
                    return self.refuse(id, rej, "-", Detail::default(), now);
                }
            };
            // RFC 9112 §3.2: exactly one valid Host, or 400.
            if let Err(e) = req.check_host() {
                return self.refuse(
                    id,
                    Reject::BadRequest(e.phrase()),
                    "-",
                    Detail::default(),
                    now,
                );
            }
            if let Some(rej) = self.take_forwarded(id, &req, now) {
                let response = rej.response();
                return self.respond(id, &response, Then::Close, Part::Whole, now);
            }
            let conn = &mut self.reg[id];
            let Phase::Http { buf, sent_continue } = &mut conn.phase else {
                return;
            };
            let then = if req.keep_alive() && !self.ctx.shutting_down {
                Then::KeepAlive
            } else {
                Then::Close
            };
            let part = if req.method == Method::Head {
                Part::Head
            } else {
                Part::Whole
            };
            if upgrade::is_upgrade_path(&req.path) && part == Part::Head {
                let response = Reject::MethodNotAllowed.response();
                return self.respond(id, &response, Then::Close, Part::Head, now);
            }
            if upgrade::is_upgrade_path(&req.path) {
                let rest = buf.split_off(head_len);
                buf.clear();
                return self.start_upgrade(id, &req, rest, now);
            }
            let body_len = match req.body_length() {
                Ok(n) if n > max_body => {
                    let response = Response::detail(413, "request body too large");
                    return self.respond(id, &response, Then::Close, part, now);
                }
                Ok(n) => n,
                Err(e) => {
                    let response = match e {
                        BodyLengthError::TransferEncoding => {
                            Response::detail(411, "send the body with Content-Length")
                        }
                        BodyLengthError::Invalid => Response::detail(400, "bad Content-Length"),
                    };
                    return self.respond(id, &response, Then::Close, part, now);
                }
            };
            if buf.len() < head_len + body_len {
                if !*sent_continue && req.has_token("expect", "100-continue") {
                    *sent_continue = true;
                    Response::continue_100().write_to(
                        conn.out.tail(),
                        Then::KeepAlive,
                        Part::Whole,
                    );
                    self.queue_changed(id, now);
                }
                return;
            }
            let body: Vec<u8> = buf.drain(..head_len + body_len).skip(head_len).collect();
            *sent_continue = false;
            let peer = conn.peer;
            let gauges = self.gauges();
            let routed = self.ctx.route(&req, &body, peer, &gauges, now);
            if !self.take_routed(id, routed, then, part, now) || then == Then::Close {
                return;
            }
        }
    }

    /// A request on connection `id` from a trusted proxy names its client
    /// in `X-Forwarded-For` (only a trusted proxy's header is read; see
    /// [`proxied::forwarded_client`]): the connection counts under the
    /// client from now on, and a new client passes the per-address limits
    /// as at accept, or is refused. Each request may name another client
    /// (a proxy may reuse a connection).
    // why: only for trusted proxies; kept out of the loop that calls it.
    #[inline(never)]
    fn take_forwarded(&mut self, id: ConnId, req: &Request, now: Time) -> Option<Reject> {
        let conn = self.reg.get(id)?;
        let hop = conn.via.as_ref()?.hop?;
        let config = &self.ctx.config;
        if !config.is_trusted_proxy(hop.ip()) {
            return None;
        }
        let client = proxied::forwarded_client(req, hop, |ip| config.is_trusted_proxy(ip));
        let client = self.ctx.peer(client);
        let fresh = client.key() != conn.peer.key();
        let load = self.reg.load(client.key());
        self.reg.rekey(id, client);
        if fresh {
            self.ctx.proxied_refusal(client, load, false, now)
        } else {
            None
        }
    }

    /// Carries out what [`Context::route`] (or a checked password) decided
    /// for `id`: false when the answer waits for a password check.
    pub(super) fn take_routed(
        &mut self,
        id: ConnId,
        routed: Routed,
        then: Then,
        part: Part,
        now: Time,
    ) -> bool {
        let response = match routed {
            Routed::Respond(response) => response,
            Routed::EndSessions(response, ended, ending) => {
                for handle in ended {
                    self.close_session_sockets(handle, ending, now);
                }
                response
            }
            Routed::Ask(ask, step) => {
                match self.start_query(id, ask, step, then, Vec::new(), now) {
                    Some(response) => response,
                    // The store was asked; the rest waits for its answer.
                    None => return false,
                }
            }
            Routed::CheckPassword {
                user,
                password,
                purpose,
            } => {
                let check = PasswordCheck {
                    user,
                    password,
                    purpose,
                    then,
                    rest: Vec::new(),
                };
                match self.start_password_check(id, check, now) {
                    Some(response) => response,
                    // A password check is under way; the rest waits for it.
                    None => return false,
                }
            }
        };
        self.respond(id, &response, then, part, now);
        true
    }

    /// Queues a password check for `id`; answers at once (`429`, `503`) when
    /// the peer's IP failed too often or too many checks are waiting.
    pub(super) fn start_password_check(
        &mut self,
        id: ConnId,
        check: PasswordCheck,
        now: Time,
    ) -> Option<Response> {
        let PasswordCheck {
            user,
            password,
            purpose,
            then,
            rest,
        } = check;
        let peer = self.reg[id].peer;
        let key = peer.key();
        let in_flight = self.reg.load(key).logins;
        if let Some(rej) =
            self.ctx
                .password_check_refusal(&purpose, peer, in_flight, self.jobs.len(), now)
        {
            return Some(self.ctx.with_cors(purpose.cors(), rej.response()));
        }
        let job = self.next_job;
        self.next_job += 1;
        let conn = &mut self.reg[id];
        // why: the leftover of the request buffer (pipelined requests)
        // waits with the job.
        let mut held = rest;
        if let Phase::Http { buf, .. } = &mut conn.phase {
            held.extend_from_slice(buf);
        }
        conn.phase = Phase::AwaitPassword {
            job,
            purpose,
            then,
            rest: held,
        };
        self.jobs.insert(
            job,
            super::Job {
                conn: id,
                addr: key,
            },
        );
        self.reg.login_started(key);
        self.set_deadline(id, now + super::PASSWORD_TIMEOUT, Timer::PasswordCheck);
        self.actions.push_back(Action::CheckPassword(PasswordJob {
            job,
            user,
            password,
        }));
        None
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

#[cfg(test)]
mod tests {
    use crate::testkit::{
        Harness, capture_logs, form_post, stop_capturing_logs, take_log_lines, upgrade_request,
    };

    /// The `refused` lines logged while `f` runs; `None` when another
    /// logger was installed first.
    fn refusals(h: &mut Harness, f: impl FnOnce(&mut Harness)) -> Option<Vec<String>> {
        if !capture_logs() {
            return None;
        }
        take_log_lines();
        f(h);
        let lines = take_log_lines();
        stop_capturing_logs();
        Some(
            lines
                .into_iter()
                .filter(|l| l.starts_with("refused "))
                .collect(),
        )
    }

    /// Every refusal, whichever path refused it, is one line of the same
    /// shape: `refused peer=… status=… reason="…" target="…"`.
    #[test]
    fn every_refusal_logs_one_line_of_one_shape() {
        let mut h = Harness::new(|c| c.allow_password_auth = true);
        h.hold_passwords = true;
        let Some(lines) = refusals(&mut h, |h| {
            // The login form (400), a foreign origin (403), `Server::refuse`.
            h.request(&form_post("/login", "username="));
            let cross = form_post("/login", "username=alice&password=wonderland").replacen(
                "\r\n",
                "\r\nOrigin: https://evil.example\r\n",
                1,
            );
            h.request(&cross);
            h.request(&upgrade_request("/ws?room=dev", ""));
            // Password checks past the per-address limit (429), from a
            // form and from an upgrade.
            for _ in 0..4 {
                let id = h.connect();
                h.send(id, form_post("/token", "username=a&password=b").as_bytes());
            }
            h.request(&form_post("/token", "username=a&password=b"));
            h.request(&upgrade_request("/ws?room=dev&username=a&password=b", ""));
        }) else {
            return;
        };
        let shapes: Vec<String> = lines
            .iter()
            .map(|l| {
                let (_, rest) = l.split_once(" status=").expect(l);
                format!("status={rest}")
            })
            .collect();
        assert_eq!(
            shapes,
            [
                "status=400 reason=\"username and password are required\" target=\"/login\"",
                "status=403 reason=\"origin not allowed\" target=\"/login\"",
                "status=401 reason=\"missing credentials\" target=\"/ws?room=dev\"",
                "status=429 reason=\"too many logins in progress\" target=\"/token\"",
                "status=429 reason=\"too many logins in progress\" target=\"/ws?room=dev\" \
                 carrier=password",
            ]
        );
        for line in &lines {
            assert!(line.starts_with("refused peer=127.0.0.1:"), "{line}");
        }
        let metrics = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").1.body;
        for series in [
            "{status=\"400\",reason=\"username and password are required\"} 1\n",
            "{status=\"403\",reason=\"origin not allowed\"} 1\n",
            "{status=\"429\",reason=\"too many logins in progress\"} 2\n",
        ] {
            assert!(metrics.contains(series), "{series} in\n{metrics}");
        }
    }
}
