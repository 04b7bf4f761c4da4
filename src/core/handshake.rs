//! The upgrade (PROTOCOL §2): rate limit, handshake, one credential,
//! authentication, per-user limit, then the `101` and the room.
//!
//! [`Context::authenticate`] decides who the request is (or why not)
//! without touching any connection, and [`Context::admission`] whether
//! that principal may open this WebSocket now; the server carries out
//! what they return ([`Server::start_upgrade`], [`Server::admit`]).

use super::peer::Peer;
use super::requests::Detail;
use std::sync::Arc;

use log::info;

use super::authenticate::Verdict;
use super::chat::Event;
use super::cluster::Ask;
use super::conn::{At, PasswordCheck, Purpose, StoreStep, Ws};
use super::context::Context;
use super::ending::Ending;
use super::limits::Bucket;
use super::logfmt::quoted;
use super::time::Time;
use super::{ConnId, RETRY_AFTER_SECS, Server};
use crate::auth::secret_id::digest_of;
use crate::auth::{Credential, Principal, valid_role, valid_user_name};
use crate::config::PerUserPolicy;
use crate::http::response::{Part, Then};
use crate::http::upgrade::{self, Carrier, Mode, Reject, Resume, Upgrade};
use crate::http::{Request, Response};

/// Who an upgrade request is, as far as the request itself tells.
#[derive(Debug)]
pub(super) enum Authenticated {
    /// Open the WebSocket for this principal (if [`Context::admission`]
    /// agrees).
    Admit(Principal, Upgrade),
    /// The credential is a user name and password: check it off the event
    /// loop first.
    CheckPassword {
        user: String,
        password: String,
        upgrade: Upgrade,
    },
    /// The credential is a session cookie or a ticket, and Redis holds
    /// them (`--redis`): ask it first.
    Ask(Ask, Upgrade),
    /// Refuse; the credential's kind and the failed check when known.
    Refuse(Reject, Detail),
}

/// What [`Context::admission`] lets through.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Admission {
    /// The user's oldest WebSocket, to close `4409` to make room
    /// (`--per-user-policy evict-oldest`).
    pub evict: Option<ConnId>,
}

impl Context {
    /// A request to `/ws` from `peer`: the per-address upgrade rate, the
    /// handshake's rules, the embedding program's authenticators, then the
    /// one built-in credential (token, ticket, session cookie, or a
    /// password to check).
    pub(super) fn authenticate(&mut self, req: &Request, peer: Peer, now: Time) -> Authenticated {
        use Authenticated::Refuse;
        if let Err(secs) = self.upgrade_ips.take(peer.key(), now) {
            return Refuse(
                Reject::TooMany("too many upgrades", secs),
                Detail::default(),
            );
        }
        let handshake = match upgrade::handshake(req) {
            Ok(h) => h,
            Err(rej) => return Refuse(rej, Detail::default()),
        };
        for authenticator in &self.authenticators {
            match authenticator.authenticate(req, peer.addr) {
                Verdict::Pass => continue,
                Verdict::Refuse(reason) => {
                    return Refuse(
                        Reject::Unauthorized(reason),
                        Detail::carrier(Some("custom")),
                    );
                }
                Verdict::Accept(identity) => {
                    if !valid_user_name(&identity.user) || !valid_role(&identity.role) {
                        return Refuse(
                            Reject::Unauthorized("invalid identity"),
                            Detail::carrier(Some("custom")),
                        );
                    }
                    let principal = Principal::new(
                        identity.user,
                        identity.role,
                        identity.rooms,
                        Credential::Custom,
                    );
                    return Authenticated::Admit(principal, handshake.with(Carrier::Custom));
                }
            }
        }
        let carrier = match upgrade::credential(req, &handshake.query, &self.upgrade_policy()) {
            Ok(c) => c,
            Err(rej) => {
                if let Reject::Forbidden(_) = rej {
                    self.log_origin(req, peer);
                }
                return Refuse(rej, Detail::default());
            }
        };
        let kind = carrier.kind();
        if self.clustered() {
            let clock = self.session_clock(now);
            let ask = match &carrier {
                Carrier::Cookie(sid) => Some(Ask::LookupSession {
                    digest: digest_of(sid),
                    clock,
                }),
                Carrier::Ticket(t) => Some(Ask::RedeemTicket {
                    digest: digest_of(t.as_bytes()),
                    clock,
                }),
                _ => None,
            };
            if let Some(ask) = ask {
                return Authenticated::Ask(ask, handshake.with(carrier));
            }
        }
        let mut why = None;
        let principal = match &carrier {
            Carrier::Bearer(t) | Carrier::Path(t) | Carrier::Query(t) => self
                .jwt
                .verify(t, now.as_millis())
                .map(|c| c.into_principal())
                .map_err(|e| {
                    why = Some(e.detail());
                    Reject::Unauthorized(e.public_reason())
                }),
            Carrier::Cookie(sid) => self
                .sessions
                .lookup(sid, now.as_millis())
                .map_err(|_| Reject::Unauthorized("unknown or expired session")),
            // why: the credential a ticket was issued from may have ended
            // since (logout, session or token expiry): check it again.
            Carrier::Ticket(t) => match self.tickets.redeem(t, now) {
                Some(p) if self.credential_live(&p, now) => Ok(p),
                _ => Err(Reject::Unauthorized("unknown or expired ticket")),
            },
            Carrier::Password { user, password } => {
                return Authenticated::CheckPassword {
                    user: user.clone(),
                    password: password.clone(),
                    upgrade: handshake.with(carrier),
                };
            }
            Carrier::Custom => Err(Reject::Unauthorized("invalid credentials")),
        };
        match principal {
            Ok(p) => Authenticated::Admit(p, handshake.with(carrier)),
            Err(rej) => Refuse(
                rej,
                Detail {
                    carrier: Some(kind),
                    why,
                },
            ),
        }
    }

    /// True while the credential behind `principal` still holds.
    pub(super) fn credential_live(&self, principal: &Principal, now: Time) -> bool {
        match *principal.credential() {
            Credential::Token { exp_ms } => {
                now < Time::from_millis(exp_ms) + self.config.token_leeway
            }
            Credential::Session { handle } => self.sessions.is_live(handle, now.as_millis()),
            Credential::Password | Credential::Custom => true,
        }
    }

    /// May `principal` open this WebSocket now? Its rooms, then the
    /// per-user limit against `live`, the user's open WebSockets (oldest
    /// first).
    pub(super) fn admission(
        &self,
        principal: &Principal,
        upgrade: &Upgrade,
        live: &[ConnId],
    ) -> Result<Admission, Reject> {
        if principal
            .rooms()
            .is_some_and(|rooms| !rooms.contains(&upgrade.room))
        {
            return Err(Reject::Forbidden("room not allowed"));
        }
        if live.len() < self.config.limits.max_conns_per_user {
            return Ok(Admission { evict: None });
        }
        match self.config.per_user_policy {
            PerUserPolicy::RejectNewest => Err(Reject::TooMany(
                "too many connections for this user",
                RETRY_AFTER_SECS,
            )),
            PerUserPolicy::EvictOldest => Ok(Admission {
                evict: live.first().copied(),
            }),
        }
    }

    /// Starts a new WebSocket's clocks: the first ping, the credential's
    /// end (a token's `exp` plus leeway, with its warning; a session's
    /// absolute limit), the message-rate bucket.
    fn start_clocks(&self, ws: &mut Ws, now: Time) {
        let config = &self.config;
        ws.next_ping = now + config.ping_interval;
        match ws.credential {
            Credential::Token { exp_ms } => {
                ws.set_expiry(
                    Time::from_millis(exp_ms),
                    config.token_leeway,
                    config.expiry_warning,
                    now,
                );
            }
            // why: a live socket keeps a session from idling out, so only
            // its absolute limit can end it, at that exact time.
            Credential::Session { handle } => {
                ws.expires = self
                    .sessions
                    .expires_at(handle)
                    .map(|ms| At::new(Time::from_millis(ms)));
            }
            Credential::Password | Credential::Custom => {}
        }
        ws.bucket = config.limits.message_rate.map(|r| Bucket::full(r, now));
    }
}

impl Server {
    /// A request to `/ws` on `id`: authenticate, then admit, refuse, or
    /// start a password check (`rest`: bytes that came after the head).
    pub(super) fn start_upgrade(&mut self, id: ConnId, req: &Request, rest: Vec<u8>, now: Time) {
        let peer = self.reg[id].peer;
        match self.ctx.authenticate(req, peer, now) {
            Authenticated::Admit(principal, upgrade) => {
                self.admit(id, principal, upgrade, &rest, now);
            }
            Authenticated::CheckPassword {
                user,
                password,
                upgrade,
            } => {
                let check = PasswordCheck {
                    user,
                    password,
                    purpose: Purpose::Upgrade(Box::new(upgrade)),
                    then: Then::Close,
                    rest,
                };
                if let Some(response) = self.start_password_check(id, check, now) {
                    self.respond(id, &response, Then::Close, Part::Whole, now);
                }
            }
            Authenticated::Ask(ask, upgrade) => {
                let step = StoreStep::Upgrade(Box::new(upgrade));
                if let Some(response) = self.start_query(id, ask, step, Then::Close, rest, now) {
                    self.respond(id, &response, Then::Close, Part::Whole, now);
                }
            }
            Authenticated::Refuse(rej, carrier) => {
                self.refuse(id, rej, &req.redacted_target(), carrier, now);
            }
        }
    }

    /// Opens the WebSocket for an authenticated principal, if
    /// [`Context::admission`] agrees: the `101`, the room, the clocks, and
    /// any frames that came right behind the request head.
    /// A client resuming in `room` gets the `resume` message and what it
    /// missed, before anything else is queued to it (PROTOCOL §4): with its
    /// queue at most `--max-queue` (a replay never makes a slow consumer),
    /// and within what is left of the queue budget (resumers that do not
    /// read cannot hold more than the budget).
    fn replay(&mut self, id: ConnId, room: &str, user: &str, resume: &Resume) {
        let limits = &self.ctx.config.limits;
        let max_queue = limits.max_queue_bytes;
        // why: what this connection queued is not yet in the total.
        let unsettled = self.reg.get(id).map_or(0, |c| c.out.len());
        let budget_left = (limits.queue_budget_bytes).saturating_sub(self.budget_use() + unsettled);
        let epoch = resume.epoch.as_deref();
        let Some((recovered, sent)) =
            self.reg
                .replay(id, room, resume.since, epoch, max_queue, budget_left)
        else {
            return;
        };
        self.ctx.metrics.resumed[usize::from(!recovered)] += 1;
        self.ctx.metrics.messages_out += sent as u64 + 1;
        info!(
            "resume user={} room={} since={} replayed={sent} recovered={recovered}",
            quoted(user),
            quoted(room),
            resume.since
        );
    }

    pub(super) fn admit(
        &mut self,
        id: ConnId,
        principal: Principal,
        upgrade: Upgrade,
        rest: &[u8],
        now: Time,
    ) {
        if self.is_clustered() {
            // why no WebSockets of the user here: Redis counts them on
            // every node (`join_cluster`); only the room is checked here.
            if let Err(rej) = self.ctx.admission(&principal, &upgrade, &[]) {
                return self.refuse_upgrade(id, rej, &upgrade, now);
            }
            return self.join_cluster(id, principal, upgrade, rest, now);
        }
        self.admit_here(id, principal, upgrade, rest, now);
    }

    /// Refuses an authenticated upgrade (the room, the limit, the store):
    /// logged with its room and its credential's kind.
    pub(super) fn refuse_upgrade(&mut self, id: ConnId, rej: Reject, upgrade: &Upgrade, now: Time) {
        let target = format!("/ws?room={}", upgrade.room);
        let kind = upgrade.carrier.kind();
        self.refuse(id, rej, &target, Detail::carrier(Some(kind)), now);
    }

    /// [`Server::admit`] by this node's count alone.
    pub(super) fn admit_here(
        &mut self,
        id: ConnId,
        principal: Principal,
        upgrade: Upgrade,
        rest: &[u8],
        now: Time,
    ) {
        let live = self.reg.of_user(principal.user());
        let admission = match self.ctx.admission(&principal, &upgrade, live) {
            Ok(admission) => admission,
            Err(rej) => return self.refuse_upgrade(id, rej, &upgrade, now),
        };
        if let Some(oldest) = admission.evict {
            self.close_ws(oldest, Ending::Replaced, now);
        }
        self.open_counted(id, principal, upgrade, rest, now);
    }

    /// Opens the WebSocket, its admission decided: the `101`, the room,
    /// the clocks, and any frames that came right behind the request
    /// head.
    pub(super) fn open_counted(
        &mut self,
        id: ConnId,
        principal: Principal,
        upgrade: Upgrade,
        rest: &[u8],
        now: Time,
    ) {
        let kind = upgrade.carrier.kind();
        let user = Arc::clone(principal.user_shared());
        let protocol = match upgrade.mode {
            Mode::Json => Some(upgrade::JSON_PROTOCOL),
            Mode::Text => None,
        };
        let conn = &mut self.reg[id];
        Response::switching_protocols(&upgrade.accept, protocol).write_to(
            conn.out.tail(),
            Then::KeepAlive,
            Part::Whole,
        );
        conn.out.begin_frames();
        let via = (conn.via.as_ref()).map_or(String::new(), |v| format!(" via={}", v.proxy));
        info!(
            "open user={} peer={}{via} room={} mode={} carrier={kind}",
            quoted(&user),
            conn.peer,
            quoted(&upgrade.room),
            upgrade.mode.name(),
        );
        self.ctx.metrics.upgrades += 1;
        if let Credential::Session { handle } = principal.credential() {
            self.ctx.sessions.track_live(*handle, true, now.as_millis());
        }
        let room = upgrade.room.clone();
        let resume = upgrade.resume;
        let may_send = self.ctx.config.may_send(principal.role());
        let Some(first) = (self.reg).open(id, principal, may_send, upgrade.room, upgrade.mode, now)
        else {
            return;
        };
        if let Some(ws) = self.reg[id].ws_mut() {
            self.ctx.start_clocks(ws, now);
        }
        self.arm_ws(id);
        if let Some(resume) = resume {
            self.replay(id, &room, &user, &resume);
        }
        // why: answers to pipelined requests may still be queued ahead of
        // the 101; a queue already over the limit starts its clock now.
        self.queued_to(id, now);
        if first {
            for observer in &mut self.ctx.observers {
                observer.joined(&room, &user);
            }
        }
        // why not clustered: Redis announces joins, to every node.
        if first && !self.is_clustered() && self.presence_on(&room) {
            self.broadcast(&room, Event::Join { user: &user }, now);
        }
        if !rest.is_empty() {
            // Frames that came in one read with the request are input like
            // any other: at the budget (or with a queue over its limit)
            // they wait.
            if self.input_waits(&self.reg[id]) {
                self.hold_input(id, rest);
            } else {
                self.feed_ws(id, rest, now);
            }
        }
    }
}
