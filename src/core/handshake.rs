//! The upgrade (PROTOCOL §2): rate limit, handshake, one credential,
//! authentication, per-user limit, then the `101` and the room.

use std::sync::Arc;

use log::{debug, info};

use super::authenticate::Verdict;
use super::chat::Event;
use super::conn::{At, PasswordCheck, Purpose};
use super::ending::Ending;
use super::limits::{AddrKey, Bucket};
use super::logfmt::quoted;
use super::time::Time;
use super::{ConnId, RETRY_AFTER_SECS, Server};
use crate::auth::{Credential, Principal, valid_role, valid_user_name};
use crate::config::PerUserPolicy;
use crate::http::response::{Part, Then};
use crate::http::upgrade::{self, Carrier, Mode, Reject, Upgrade};
use crate::http::{Request, Response};

impl Server {
    /// A request to `/ws`: validate, authenticate, and open or refuse.
    pub(super) fn start_upgrade(&mut self, id: ConnId, req: &Request, rest: Vec<u8>, now: Time) {
        let peer = self.reg[id].peer;
        let target = req.redacted_target();
        if let Err(secs) = self.upgrade_ips.take(AddrKey::of(peer.ip()), now) {
            return self.refuse(
                id,
                Reject::TooMany("too many upgrades", secs),
                &target,
                None,
                now,
            );
        }
        let handshake = match upgrade::handshake(req) {
            Ok(h) => h,
            Err(rej) => return self.refuse(id, rej, &target, None, now),
        };
        for authenticator in &self.authenticators {
            match authenticator.authenticate(req, peer) {
                Verdict::Pass => continue,
                Verdict::Refuse(reason) => {
                    return self.refuse(
                        id,
                        Reject::Unauthorized(reason),
                        &target,
                        Some("custom"),
                        now,
                    );
                }
                Verdict::Accept(identity) => {
                    if !valid_user_name(&identity.user) || !valid_role(&identity.role) {
                        let rej = Reject::Unauthorized("invalid identity");
                        return self.refuse(id, rej, &target, Some("custom"), now);
                    }
                    let principal = Principal::new(
                        identity.user,
                        identity.role,
                        identity.rooms,
                        Credential::Custom,
                    );
                    return self.admit(id, principal, handshake.with(Carrier::Custom), &rest, now);
                }
            }
        }
        let policy = self.upgrade_policy();
        let carrier = match upgrade::credential(req, &handshake.query, &policy) {
            Ok(c) => c,
            Err(rej) => return self.refuse(id, rej, &target, None, now),
        };
        let kind = carrier.kind();
        let principal = match &carrier {
            Carrier::Bearer(t) | Carrier::Path(t) | Carrier::Query(t) => self
                .jwt
                .verify(t, now.as_millis())
                .map(|c| c.into_principal())
                .map_err(|e| {
                    debug!("token refused peer={peer}: {}", e.detail());
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
                let check = PasswordCheck {
                    user: user.clone(),
                    password: password.clone(),
                    purpose: Purpose::Upgrade(Box::new(handshake.with(carrier))),
                    then: Then::Close,
                    rest,
                };
                if let Some(response) = self.start_password_check(id, check, now) {
                    self.respond(id, &response, Then::Close, Part::Whole, now);
                }
                return;
            }
            Carrier::Custom => Err(Reject::Unauthorized("invalid credentials")),
        };
        match principal {
            Ok(p) => self.admit(id, p, handshake.with(carrier), &rest, now),
            Err(rej) => self.refuse(id, rej, &target, Some(kind), now),
        }
    }

    /// True while the credential behind `principal` still holds.
    fn credential_live(&self, principal: &Principal, now: Time) -> bool {
        match *principal.credential() {
            Credential::Token { exp_ms } => {
                now < Time::from_millis(exp_ms) + self.config.token_leeway
            }
            Credential::Session { handle } => self.sessions.is_live(handle, now.as_millis()),
            Credential::Password | Credential::Custom => true,
        }
    }

    /// Opens the WebSocket for an authenticated principal: room and
    /// per-user checks, the `101`, the room, and any frames that came
    /// right behind the request head.
    pub(super) fn admit(
        &mut self,
        id: ConnId,
        principal: Principal,
        upgrade: Upgrade,
        rest: &[u8],
        now: Time,
    ) {
        let target = format!("/ws?room={}", upgrade.room);
        let kind = upgrade.carrier.kind();
        if principal
            .rooms()
            .is_some_and(|rooms| !rooms.contains(&upgrade.room))
        {
            return self.refuse(
                id,
                Reject::Forbidden("room not allowed"),
                &target,
                Some(kind),
                now,
            );
        }
        let user = Arc::clone(principal.user_shared());
        let live = self.reg.of_user(&user).len();
        if live >= self.config.limits.max_conns_per_user {
            match self.config.per_user_policy {
                PerUserPolicy::RejectNewest => {
                    let rej =
                        Reject::TooMany("too many connections for this user", RETRY_AFTER_SECS);
                    return self.refuse(id, rej, &target, Some(kind), now);
                }
                PerUserPolicy::EvictOldest => {
                    if let Some(&oldest) = self.reg.of_user(&user).first() {
                        self.close_ws(oldest, Ending::Replaced, now);
                    }
                }
            }
        }
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
        info!(
            "open user={} peer={} room={} mode={} carrier={kind}",
            quoted(&user),
            conn.peer,
            quoted(&upgrade.room),
            upgrade.mode.name(),
        );
        self.metrics.upgrades += 1;
        if let Credential::Session { handle } = principal.credential() {
            self.sessions.track_live(*handle, true, now.as_millis());
        }
        let room = upgrade.room.clone();
        let Some(first) = self.reg.open(
            id,
            principal,
            upgrade.room,
            upgrade.mode,
            self.ws_config,
            now,
        ) else {
            return;
        };
        let interval = self.config.ping_interval;
        let expires_at = match self.reg[id]
            .ws()
            .map(|ws| ws.principal.credential().clone())
        {
            // why: a live socket keeps a session from idling out, so only
            // its absolute limit can end it, at that exact time.
            Some(Credential::Session { handle }) => self.sessions.expires_at(handle),
            _ => None,
        };
        let rate = self.config.limits.message_rate;
        let config = &self.config;
        if let Some(ws) = self.reg[id].ws_mut() {
            ws.next_ping = now + interval;
            match *ws.principal.credential() {
                Credential::Token { exp_ms } => {
                    ws.set_expiry(
                        Time::from_millis(exp_ms),
                        config.token_leeway,
                        config.expiry_warning,
                        now,
                    );
                }
                Credential::Session { .. } => {
                    ws.expires = expires_at.map(|ms| At::new(Time::from_millis(ms)))
                }
                Credential::Password | Credential::Custom => {}
            }
            ws.bucket = rate.map(|r| Bucket::full(r, now));
        }
        self.arm_ws(id);
        // why: answers to pipelined requests may still be queued ahead of
        // the 101; a queue already over the limit starts its clock now.
        self.queued_to(id, now);
        if first {
            for observer in &mut self.observers {
                observer.joined(&room, &user);
            }
        }
        if first && self.presence_on(&room) {
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
