//! Sessions and tickets shared through Redis (with `--redis`), so that a
//! login on one node works on every node, a ticket works once across all
//! of them, and a logout anywhere closes the session's WebSockets
//! everywhere.
//!
//! Redis is the store: every cookie and ticket is looked up there, and the
//! connection waits for the answer in [`Phase::AwaitStore`] (as it waits
//! for a password check), so the event loop never blocks. A node keeps a
//! copy of a session only while its WebSockets use it
//! ([`SessionStore::adopt`](crate::auth::session::SessionStore::adopt)):
//! that copy ties the sockets to the session, and ends them when Redis
//! announces the session's end ([`LinkEvent::SessionsEnded`]) or, on the
//! periodic touch that keeps a used session from idling out in Redis, no
//! longer has it ([`Ask::TouchSessions`]).
//!
//! [`LinkEvent::SessionsEnded`]: super::cluster::LinkEvent::SessionsEnded

use std::sync::Arc;
use std::time::Duration;

use log::info;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cluster::{Answer, Ask, Digest, Ended, Query, SessionClock, SessionRecord};
use super::conn::{Cors, Phase, StoreStep};
use super::context::Context;
use super::ending::Ending;
use super::logfmt::quoted;
use super::requests::{Detail, Routed};
use super::tickets::{TICKET_TTL, TicketRefusal};
use super::time::{Time, Timer, millis};
use super::{Action, ConnId, RETRY_AFTER_SECS, Server};
use crate::auth::secret_id::digest_of;
use crate::auth::{Credential, Principal, valid_role, valid_user_name};
use crate::http::response::{Part, Response, Then};
use crate::http::upgrade::{Carrier, Reject};

/// The longest a connection waits for the session store. The link answers
/// every query within its reply timeout (10 s); this only guards against
/// one that does not.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(15);

/// The refusal while the session store cannot answer.
pub const STORE_UNREACHABLE: Reject =
    Reject::Unavailable("session store unreachable", RETRY_AFTER_SECS);

/// Who waits for a query's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Waiter {
    /// A connection, in [`Phase::AwaitStore`].
    Conn(ConnId),
    /// A connection, in [`Phase::AwaitStore`], whose WebSocket is being
    /// counted in `room` for `user` ([`Ask::Join`]): if it is gone when
    /// the count comes, it is uncounted.
    Join(ConnId, String, Arc<str>),
    /// As `Join`, for a WebSocket Redis counted already (reading the
    /// stream for its resume): if it is gone, it is uncounted.
    Counted(ConnId, String, Arc<str>),
    /// The periodic touch of the sessions in use here.
    Touch,
    /// `/who` from a WebSocket.
    Who(ConnId),
    /// A count that nobody waits for ([`Ask::Leave`], [`Ask::Register`]):
    /// only a failure matters.
    Count,
}

/// What a ticket holds in Redis: enough to admit its bearer on any node.
#[derive(Serialize, Deserialize)]
struct TicketPayload {
    /// The user.
    u: String,
    /// The role.
    r: String,
    /// The rooms the credential allows, if it limits them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<Vec<String>>,
    /// A token's `exp`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<u64>,
    /// A session's digest (hex) and creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<(String, u64)>,
}

/// 64 lowercase hex digits.
fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of 64 hex digits.
fn unhex(text: &str) -> Option<Digest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        digest[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

impl Context {
    /// True when sessions, tickets and chat go through Redis.
    pub(super) fn clustered(&self) -> bool {
        // why cfg!: without the feature nothing can set it, and the
        // compiler then drops the cluster paths from the binary.
        cfg!(feature = "redis") && self.cluster.is_some()
    }

    /// The session limits every question to Redis carries.
    pub(super) fn session_clock(&self, now: Time) -> SessionClock {
        SessionClock {
            now_ms: now.as_millis(),
            ttl_ms: millis(self.config.session_ttl),
            idle_ms: millis(self.config.session_idle),
        }
    }

    /// `POST /login` succeeded, with `--redis`: store the session in
    /// Redis; the cookie is sent once it is stored.
    pub(super) fn login_shared(&mut self, user: &str, role: &str, cors: Cors, now: Time) -> Routed {
        let (cookie, digest) = self.sessions.new_id();
        let ask = Ask::CreateSession {
            digest,
            record: SessionRecord {
                user: user.to_string(),
                role: role.to_string(),
                created_ms: now.as_millis(),
            },
            clock: self.session_clock(now),
            max_per_user: self.config.limits.max_sessions_per_user,
        };
        let user = user.to_string();
        Routed::Ask(ask, StoreStep::Login { cookie, user, cors })
    }

    /// A ticket for `principal` (issued from the session `session`, if
    /// any): counted here against the per-user and overall limits, and,
    /// with `--redis`, stored in Redis before it is sent.
    pub(super) fn issue_ticket(
        &mut self,
        principal: Principal,
        session: Option<(Digest, u64)>,
        cors: Cors,
        peer: super::peer::Peer,
        now: Time,
    ) -> Routed {
        let user = principal.user().to_string();
        let payload = self
            .clustered()
            .then(|| ticket_payload(&principal, session));
        let ticket = match self.tickets.issue(principal, now) {
            Ok(ticket) => ticket,
            Err(TicketRefusal::Full) => {
                let rej = Reject::Unavailable("too many tickets outstanding", RETRY_AFTER_SECS);
                return Routed::Respond(rej.response());
            }
            Err(TicketRefusal::TooManyForUser) => {
                let secs = TICKET_TTL.as_secs();
                return Routed::Respond(
                    Response::detail(429, "too many tickets for this user")
                        .header("Retry-After", secs.to_string()),
                );
            }
        };
        match payload {
            Some(payload) => {
                let ask = Ask::IssueTicket {
                    digest: digest_of(ticket.as_bytes()),
                    payload,
                    session: session.map(|(digest, _)| digest),
                    clock: self.session_clock(now),
                };
                Routed::Ask(ask, StoreStep::Ticket { ticket, user, cors })
            }
            None => Routed::Respond(ticket_issued(&ticket, &user, peer)),
        }
    }

    /// The principal a ticket's payload names; a session's copy is held
    /// here from now on.
    fn ticket_principal(&mut self, payload: &str, now: Time) -> Option<Principal> {
        let p: TicketPayload = serde_json::from_str(payload).ok()?;
        if !valid_user_name(&p.u) || !valid_role(&p.r) {
            return None;
        }
        let credential = match (p.t, p.s) {
            (Some(exp_ms), None) => Credential::Token { exp_ms },
            (None, Some((digest, created))) => {
                let digest = unhex(&digest)?;
                let handle = (self.sessions).adopt(digest, &p.u, &p.r, created, now.as_millis());
                Credential::Session { handle }
            }
            (None, None) => Credential::Password,
            (Some(_), Some(_)) => return None,
        };
        Some(Principal::new(p.u, p.r, p.m, credential))
    }

    /// The principal of a session Redis holds; its copy is held here from
    /// now on. `None` if what Redis holds is not a valid name and role.
    fn session_principal(
        &mut self,
        digest: Digest,
        record: SessionRecord,
        now: Time,
    ) -> Option<Principal> {
        if !valid_user_name(&record.user) || !valid_role(&record.role) {
            return None;
        }
        let handle = self.sessions.adopt(
            digest,
            &record.user,
            &record.role,
            record.created_ms,
            now.as_millis(),
        );
        Some(Principal::new(
            record.user,
            record.role,
            None,
            Credential::Session { handle },
        ))
    }
}

/// A ticket's payload (see [`TicketPayload`]).
fn ticket_payload(principal: &Principal, session: Option<(Digest, u64)>) -> String {
    let (t, s) = match (principal.credential(), session) {
        (&Credential::Token { exp_ms }, _) => (Some(exp_ms), None),
        (_, Some((digest, created))) => (None, Some((hex(&digest), created))),
        _ => (None, None),
    };
    let payload = TicketPayload {
        u: principal.user().to_string(),
        r: principal.role().to_string(),
        m: principal.rooms().map(<[String]>::to_vec),
        t,
        s,
    };
    serde_json::to_string(&payload).unwrap_or_default()
}

/// The `200` that hands a ticket out.
pub(super) fn ticket_issued(ticket: &str, user: &str, peer: super::peer::Peer) -> Response {
    info!("ticket issued user={} peer={peer}", quoted(user));
    Response::json(
        200,
        &json!({ "ticket": ticket, "expires_in": TICKET_TTL.as_secs() }),
    )
}

impl Server {
    /// Asks Redis `ask` for `id`, which waits (its input held) in
    /// [`Phase::AwaitStore`] until [`Server::handle_link`] brings the
    /// answer. A refusal to send at once (the link is down) when the store
    /// cannot be asked.
    pub(super) fn start_query(
        &mut self,
        id: ConnId,
        ask: Ask,
        step: StoreStep,
        then: Then,
        rest: Vec<u8>,
        now: Time,
    ) -> Option<Response> {
        let cors = step.cors();
        // why `clustered`: a constant without the feature (the paths that
        // ask compile away), as in each entry point of this module.
        let up = self.ctx.clustered() && self.ctx.cluster.as_ref().is_some_and(|c| c.up);
        let Some(cluster) = self.ctx.cluster.as_mut().filter(|_| up) else {
            let peer = self.reg[id].peer;
            let target = step.target();
            self.ctx
                .log_refusal(peer, STORE_UNREACHABLE, &target, Detail::default());
            return Some(self.ctx.with_cors(cors, STORE_UNREACHABLE.response()));
        };
        let waiter = match &step {
            StoreStep::Join(join) => {
                let (principal, upgrade) = &**join;
                Waiter::Join(id, upgrade.room.clone(), principal.user_shared().clone())
            }
            StoreStep::Stream(counted) => Waiter::Counted(
                id,
                counted.upgrade.room.clone(),
                counted.principal.user_shared().clone(),
            ),
            _ => Waiter::Conn(id),
        };
        let query = cluster.waiting_for(waiter);
        let conn = &mut self.reg[id];
        let mut held = rest;
        if let Phase::Http { buf, .. } = &mut conn.phase {
            held.extend_from_slice(buf);
        }
        conn.phase = Phase::AwaitStore {
            query,
            step,
            then,
            rest: held,
        };
        self.set_deadline(id, now + STORE_TIMEOUT, Timer::StoreQuery);
        self.actions
            .push_back(Action::Query(Query { id: query, ask }));
        None
    }

    /// Redis answered query `id`.
    pub(super) fn store_answered(&mut self, query: u64, answer: Answer, now: Time) {
        let Some(cluster) = self.ctx.cluster.as_mut() else {
            return;
        };
        let stale = cluster.stale_joins.remove(&query) && matches!(answer, Answer::Joined { .. });
        let Some(waiter) = cluster.answered(query) else {
            return;
        };
        if let (true, Waiter::Join(conn, room, user)) = (stale, &waiter) {
            // Counted under the life the recount let go (and so gone with
            // it): count it again now, under the new one, if it opens.
            let opens = (self.reg.get(*conn)).is_some_and(
                |c| matches!(c.phase, Phase::AwaitStore { query: q, .. } if q == query),
            );
            if opens {
                let entries = vec![(room.clone(), user.to_string(), 1)];
                self.register(entries);
            }
        }
        let (id, join) = match waiter {
            Waiter::Touch => {
                if let Answer::Missing(gone) = answer {
                    self.sessions_ended(&gone, Ending::SessionExpired, now);
                }
                return;
            }
            Waiter::Who(id) => return self.who_answered(id, answer, now),
            Waiter::Count => {
                if answer == Answer::Unavailable {
                    self.count_failed();
                }
                return;
            }
            Waiter::Conn(id) => (id, None),
            Waiter::Join(id, room, user) => (id, Some((room, user, false))),
            Waiter::Counted(id, room, user) => (id, Some((room, user, true))),
        };
        if answer == Answer::Unavailable && join.as_ref().is_some_and(|j| !j.2) {
            // It may have been counted all the same.
            self.count_failed();
        }
        // The connection may have timed out waiting, or be gone.
        let waits = (self.reg.get(id))
            .is_some_and(|c| matches!(c.phase, Phase::AwaitStore { query: q, .. } if q == query));
        if !waits {
            if let Some((room, user, counted)) = join {
                let key = (room.clone(), user.to_string());
                if let Some(cluster) = self.ctx.cluster.as_mut() {
                    if counted {
                        cluster.stream_done(&room);
                    }
                    // A sibling that still waits keeps the flag.
                    if !cluster.joining.contains_key(&key) {
                        cluster.early_joins.remove(&key);
                    }
                }
                // (A stale count went with the old life: nothing to undo.)
                if counted || (matches!(answer, Answer::Joined { .. }) && !stale) {
                    self.uncount(&room, &user);
                }
            }
            return;
        }
        let conn = &mut self.reg[id];
        let Phase::AwaitStore {
            step, then, rest, ..
        } = std::mem::replace(&mut conn.phase, Phase::Closing)
        else {
            return;
        };
        let peer = conn.peer;
        let then = if self.ctx.shutting_down {
            Then::Close
        } else {
            then
        };
        let cors = step.cors();
        let target = step.target();
        let refuse = |ctx: &mut Context, rej: Reject, carrier: Option<&'static str>| {
            ctx.log_refusal(peer, rej, &target, Detail::carrier(carrier));
            Routed::Respond(rej.response())
        };
        let routed = match (step, answer) {
            (StoreStep::Upgrade(upgrade), answer) => {
                return self.upgrade_answered(id, *upgrade, answer, &rest, now);
            }
            (StoreStep::Join(join), answer) => return self.joined(id, *join, answer, &rest, now),
            (StoreStep::Stream(counted), answer) => {
                return self.streamed(id, *counted, answer, &rest, now);
            }
            (StoreStep::Ticket { ticket, .. }, answer) if answer != Answer::Done => {
                // Not stored: it counts against nobody's limit here.
                let _ = self.ctx.tickets.redeem(&ticket, now);
                match answer {
                    Answer::Session(None) => refuse(
                        &mut self.ctx,
                        Reject::Unauthorized("unknown or expired session"),
                        Some("cookie"),
                    ),
                    _ => refuse(&mut self.ctx, STORE_UNREACHABLE, None),
                }
            }
            (_, Answer::Unavailable) => refuse(&mut self.ctx, STORE_UNREACHABLE, None),
            (StoreStep::Login { cookie, user, .. }, Answer::Done) => {
                info!("login user={} peer={peer}", quoted(&user));
                let max_age = millis(self.ctx.config.session_ttl) / 1000;
                Routed::Respond(
                    Response::empty(204).header("Set-Cookie", self.ctx.cookie(&cookie, max_age)),
                )
            }
            (StoreStep::Logout { digests, .. }, Answer::Done) => {
                info!("logout peer={peer}");
                // why here too: the announcement comes on the other
                // connection, which may be down.
                self.sessions_ended(&digests, Ending::LoggedOut, now);
                Routed::Respond(Response::empty(204).header("Set-Cookie", self.ctx.cookie("", 0)))
            }
            (StoreStep::TicketSession { digest, .. }, Answer::Session(Some(record))) => {
                let session = Some((digest, record.created_ms));
                match self.ctx.session_principal(digest, record, now) {
                    Some(principal) => self.ctx.issue_ticket(principal, session, cors, peer, now),
                    None => refuse(
                        &mut self.ctx,
                        Reject::Unauthorized("unknown or expired session"),
                        Some("cookie"),
                    ),
                }
            }
            (StoreStep::Ticket { ticket, user, .. }, Answer::Done) => {
                Routed::Respond(ticket_issued(&ticket, &user, peer))
            }
            (StoreStep::TicketSession { .. } | StoreStep::Ticket { .. }, Answer::Session(None)) => {
                refuse(
                    &mut self.ctx,
                    Reject::Unauthorized("unknown or expired session"),
                    Some("cookie"),
                )
            }
            // Not an answer this query can have.
            _ => refuse(&mut self.ctx, STORE_UNREACHABLE, None),
        };
        let routed = routed.map_response(|r| self.ctx.with_cors(cors, r));
        self.reg[id].phase = Phase::Http {
            buf: rest,
            sent_continue: false,
        };
        if self.take_routed(id, routed, then, Part::Whole, now) && then == Then::KeepAlive {
            self.process_http(id, now);
        }
    }

    /// The store answered for an upgrade with a cookie or a ticket: open
    /// the WebSocket, or refuse it.
    fn upgrade_answered(
        &mut self,
        id: ConnId,
        upgrade: crate::http::upgrade::Upgrade,
        answer: Answer,
        rest: &[u8],
        now: Time,
    ) {
        let principal = match (&upgrade.carrier, answer) {
            _ if self.ctx.shutting_down => Err(Reject::Unavailable(
                "server shutting down",
                RETRY_AFTER_SECS,
            )),
            (_, Answer::Unavailable) => Err(STORE_UNREACHABLE),
            (Carrier::Cookie(sid), Answer::Session(Some(record))) => {
                let digest = digest_of(sid);
                (self.ctx.session_principal(digest, record, now))
                    .ok_or(Reject::Unauthorized("unknown or expired session"))
            }
            (Carrier::Cookie(_), _) => Err(Reject::Unauthorized("unknown or expired session")),
            (Carrier::Ticket(ticket), Answer::Ticket(Some(payload))) => {
                // Issued here, it also leaves this node's count.
                let _ = self.ctx.tickets.redeem(ticket, now);
                self.ctx
                    .ticket_principal(&payload, now)
                    .filter(|p| self.ctx.credential_live(p, now))
                    .ok_or(Reject::Unauthorized("unknown or expired ticket"))
            }
            (_, _) => Err(Reject::Unauthorized("unknown or expired ticket")),
        };
        match principal {
            Ok(principal) => self.admit(id, principal, upgrade, rest, now),
            Err(rej) => self.refuse_upgrade(id, rej, &upgrade, now),
        }
    }

    /// A connection waited for the store longer than [`STORE_TIMEOUT`].
    pub(super) fn store_timed_out(&mut self, id: ConnId, now: Time) {
        if !self.ctx.clustered() {
            return;
        }
        let (peer, step) = match &self.reg[id].phase {
            // why the waiter stays: the link answers every query, and a
            // late count must find nobody waiting, to be undone.
            Phase::AwaitStore { step, .. } => {
                (self.reg[id].peer, Some((step.cors(), step.target())))
            }
            _ => (self.reg[id].peer, None),
        };
        let (cors, target) = step.unwrap_or_else(|| (Cors::default(), "-".into()));
        let rej = Reject::Unavailable("session store timed out", RETRY_AFTER_SECS);
        self.ctx.log_refusal(peer, rej, &target, Detail::default());
        let response = self.ctx.with_cors(cors, rej.response());
        self.respond(id, &response, Then::Close, Part::Whole, now);
    }

    /// Sessions ended (on any node, or missing from Redis): their
    /// WebSockets here close, and their copies are forgotten.
    pub(super) fn sessions_ended(&mut self, digests: &[Digest], ending: Ending, now: Time) {
        for digest in digests {
            if let Some(handle) = self.ctx.sessions.handle_of_digest(digest) {
                self.ctx.sessions.remove(handle);
                self.close_session_sockets(handle, ending, now);
            }
        }
    }

    /// Redis announced the end of sessions.
    pub(super) fn handle_sessions_ended(&mut self, digests: &[Digest], why: Ended, now: Time) {
        let ending = match why {
            Ended::LoggedOut => Ending::LoggedOut,
            Ended::Evicted => Ending::SessionExpired,
        };
        self.sessions_ended(digests, ending, now);
    }

    /// Refreshes in Redis the idle limit of every session that WebSockets
    /// here use, and learns which of them ended meanwhile (a logout while
    /// the link was down).
    pub(super) fn touch_sessions(&mut self, now: Time) {
        if !self.ctx.clustered() {
            return;
        }
        let digests = self.ctx.sessions.in_use();
        let clock = self.ctx.session_clock(now);
        let Some(cluster) = self.ctx.cluster.as_mut().filter(|c| c.up) else {
            return;
        };
        if digests.is_empty() {
            return;
        }
        let id = cluster.waiting_for(Waiter::Touch);
        self.actions.push_back(Action::Query(Query {
            id,
            ask: Ask::TouchSessions { digests, clock },
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_hex() {
        let digest = digest_of(b"a session id");
        let text = hex(&digest);
        assert_eq!(text.len(), 64);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(unhex(&text), Some(digest));
        assert_eq!(unhex(&text[1..]), None);
        assert_eq!(unhex(&format!("{}zz", &text[2..])), None);
    }
}
