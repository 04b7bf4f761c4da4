//! Open WebSockets: reading frames through tungstenite, chat (PROTOCOL §3,
//! §4), heartbeats and token expiry (§7), and every ending (§6).

use std::time::Duration;

use log::info;
use tungstenite::Message;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::Data;

use super::chat::{self, Event, Reply, Request};
use super::conn::{Conn, Phase};
use super::ending::Ending;
use super::logfmt::quoted;
use super::pipe::Pipe;
use super::time::{Time, Timer};
use super::{ConnId, Server};
use crate::auth::Credential;
use crate::auth::session::SessionHandle;
use crate::http::upgrade::Mode;

/// Rate-limit strikes in a row before a sender is closed `4429`.
const MAX_STRIKES: u32 = 10;

impl Server {
    /// Feeds bytes to tungstenite and acts on every complete message.
    pub(super) fn feed_ws(&mut self, id: ConnId, data: &[u8], now: Time) {
        let limit = self.config.limits.max_message_bytes;
        let Some(ws) = self.reg.get_mut(id).and_then(Conn::ws_mut) else {
            return;
        };
        // Fragments count against the message limit: frames up to the one
        // that goes past it are read, then the connection closes `1009`.
        let (mut input, too_big) = match super::fragments::feed(&mut ws.meter, data, limit) {
            Ok(()) => (data, false),
            Err(at) => (&data[..at], true),
        };
        loop {
            let Some(conn) = self.reg.get_mut(id) else {
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
            // why: each ping queues a pong at once; a peer that floods pings
            // and never reads is judged by its queue like anyone else (and
            // its input waits while its queue is over the limit).
            self.queued_to(id, now);
            use tungstenite::Error as E;
            match result {
                Ok(Message::Text(text)) if self.config.echo => {
                    self.echo(id, Data::Text, text.as_bytes(), now)
                }
                Ok(Message::Binary(data)) if self.config.echo => {
                    self.echo(id, Data::Binary, &data, now)
                }
                Ok(Message::Text(text)) => self.on_text(id, text.as_str(), now),
                Ok(Message::Binary(_)) => {
                    return self.close_ws(id, Ending::Binary, now);
                }
                // tungstenite queued the reply; the next read flushes it
                // and reports `ConnectionClosed`.
                Ok(Message::Close(frame)) => {
                    if let Some(ws) = self.reg.get_mut(id).and_then(Conn::ws_mut) {
                        ws.peer_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    }
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(E::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if too_big {
                        self.close_ws(id, Ending::TooBig, now);
                    }
                    return;
                }
                Err(E::ConnectionClosed | E::AlreadyClosed) => return self.finish_ws(id, now),
                Err(E::Capacity(_)) => {
                    return self.close_ws(id, Ending::TooBig, now);
                }
                Err(E::Utf8(_)) => {
                    return self.close_ws(id, Ending::InvalidUtf8, now);
                }
                Err(_) => return self.close_ws(id, Ending::ProtocolError, now),
            }
        }
    }

    /// Echo mode (conformance testing): the message goes back unchanged.
    fn echo(&mut self, id: ConnId, kind: Data, payload: &[u8], now: Time) {
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        if !conn.can_receive() {
            return;
        }
        chat::encode_frame(kind, payload, conn.out.tail());
        self.queued_to(id, now);
    }

    /// A text message from `id`.
    fn on_text(&mut self, id: ConnId, text: &str, now: Time) {
        let Some(ws) = self.reg.get_mut(id).and_then(Conn::ws_mut) else {
            return;
        };
        if !ws.ctx.can_write() {
            return;
        }
        self.metrics.messages_in += 1;
        let mode = ws.mode;
        // why: every message costs a token, commands included (`/who`
        // sorts the room, `/refresh` costs an HMAC).
        let limited = self
            .config
            .limits
            .message_rate
            .zip(ws.bucket.as_mut())
            .is_some_and(|(rate, bucket)| bucket.take(rate, now).is_err());
        if limited {
            ws.strikes += 1;
            if ws.strikes >= MAX_STRIKES {
                return self.close_ws(id, Ending::RateExceeded, now);
            }
            let reply = Reply::Error("rate_limited", "rate limit exceeded").render(mode);
            return self.send_to(id, &reply, now);
        }
        ws.strikes = ws.strikes.saturating_sub(1);
        let request = match mode {
            Mode::Json => chat::parse_json(text),
            Mode::Text => chat::parse_text(text),
        };
        let reply = match request {
            Ok(Request::Message(_)) if !self.config.may_send(ws.principal.role()) => {
                Reply::Error("not_allowed", "not allowed to send")
            }
            Ok(Request::Message(line)) => {
                let (room, user) = (
                    ws.room.clone(),
                    std::sync::Arc::clone(ws.principal.user_shared()),
                );
                self.broadcast(
                    &room,
                    Event::Message {
                        from: &user,
                        text: &line,
                    },
                    now,
                );
                if !self.observers.is_empty() {
                    let seq = self.reg.rooms().get(&room).map_or(0, |r| r.seq);
                    for observer in &mut self.observers {
                        observer.message(&room, &user, &line, seq);
                    }
                }
                return;
            }
            Ok(Request::Command(command)) => {
                let (room, user) = (ws.room.clone(), ws.principal.user().to_string());
                let answer = self
                    .observers
                    .iter_mut()
                    .find_map(|o| o.command(&room, &user, &command));
                match answer {
                    Some(text) if !text.chars().any(crate::auth::forbidden_in_line) => {
                        Reply::Answer(text)
                    }
                    _ => Reply::Error("unknown_command", "unknown command"),
                }
            }
            Ok(Request::Who) => {
                let room = ws.room.clone();
                let users = self
                    .reg
                    .rooms()
                    .get(&room)
                    .map(|r| r.users())
                    .unwrap_or_default();
                let text = Reply::Who(users).render(mode);
                return self.send_to(id, &text, now);
            }
            Ok(Request::Refresh(token)) => self.refresh(id, &token, now),
            Err((code, detail)) => Reply::Error(code, detail),
        };
        self.send_to(id, &reply.render(mode), now);
    }

    /// `/refresh TOKEN`: a valid token for the same user moves this
    /// connection's deadline; anything else changes nothing.
    fn refresh(&mut self, id: ConnId, token: &str, now: Time) -> Reply<'static> {
        let claims = match self.jwt.verify(token, now.as_millis()) {
            Ok(c) => c,
            Err(e) => {
                return Reply::Error("refresh_failed", e.public_reason());
            }
        };
        let Some(ws) = self.reg.get_mut(id).and_then(Conn::ws_mut) else {
            return Reply::Error("refresh_failed", "not open");
        };
        if !matches!(ws.principal.credential(), Credential::Token { .. }) {
            return Reply::Error("refresh_failed", "only token connections can refresh");
        }
        if claims.sub != ws.principal.user() {
            return Reply::Error("refresh_failed", "token is for another user");
        }
        if claims.rooms.as_ref().is_some_and(|r| !r.contains(&ws.room)) {
            return Reply::Error("refresh_failed", "room not allowed");
        }
        let exp_ms = claims.exp_ms;
        ws.principal.refresh(exp_ms, claims.role, claims.rooms);
        let config = &self.config;
        ws.set_expiry(
            Time::from_millis(exp_ms),
            config.token_leeway,
            config.expiry_warning,
            now,
        );
        self.arm_ws(id);
        info!(
            "refreshed user={} peer={}",
            quoted(&claims.sub),
            self.reg[id].peer
        );
        Reply::Refreshed(exp_ms / 1000)
    }

    /// One of this WebSocket's timers fired. An ending that is due (slow
    /// consumer, silence, expiry, in that order) closes it whichever timer
    /// it was; a warning or a ping is sent only if its own timer fired and
    /// is still due. Then the next one is armed.
    pub(super) fn on_ws_timer(&mut self, id: ConnId, timer: Timer, now: Time) {
        let interval = self.config.ping_interval;
        let slow = self.config.limits.slow_consumer_timeout;
        let backlog_since = self.backlog.get(&id).copied();
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        let parked = conn.parked;
        let Some(ws) = conn.ws_mut() else {
            return;
        };
        if parked {
            // why: its input is not being read (flow control); silence the
            // server imposes is not the peer's.
            ws.last_seen = now;
        }
        // why: whatever fired, an ending that is due wins, in this order,
        // so a late wake-up (a stalled process) sends no warning or ping
        // ahead of the close.
        if backlog_since.is_some_and(|since| now >= since + slow) {
            // The writes of every turn since the queue passed the limit
            // have had their chance; it is still over: not draining.
            return self.close_slow(id, now);
        }
        if now >= ws.last_seen + interval.saturating_mul(2) {
            return self.close_ws(id, Ending::PingTimeout, now);
        }
        if ws.expires.is_some_and(|e| now >= e.time()) {
            let ending = match ws.principal.credential() {
                Credential::Session { .. } => Ending::SessionExpired,
                _ => Ending::TokenExpired,
            };
            return self.close_ws(id, ending, now);
        }
        let mut warning = None;
        let mut ping = false;
        match timer {
            Timer::ExpiryWarning if ws.warn_at.is_some_and(|w| now >= w.time()) => {
                ws.warn_at = None;
                if let Credential::Token { exp_ms } = *ws.principal.credential() {
                    let left = Time::from_millis(exp_ms).since(now);
                    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                    warning = Some(Reply::Expiring(secs).render(ws.mode));
                }
            }
            Timer::Ping if now >= ws.next_ping => {
                // why: at least 1 ms on, whatever the config says (validate
                // refuses less, but `Server::new` does not validate): a
                // ping due now again would ping in a loop.
                ws.next_ping = now + interval.max(Duration::from_millis(1));
                ping = true;
            }
            // The endings are handled above; a timer whose condition no
            // longer holds (a pong came, the queue drained) just re-arms.
            _ => {}
        }
        if ping {
            let conn = &mut self.reg[id];
            if let Phase::Ws(ws) = &mut conn.phase {
                let mut input: &[u8] = &[];
                let mut pipe = Pipe {
                    input: &mut input,
                    out: &mut conn.out,
                };
                let _ = ws.ctx.write(&mut pipe, Message::Ping(Default::default()));
                let _ = ws.ctx.flush(&mut pipe);
            }
            self.queued_to(id, now);
        }
        if let Some(text) = warning {
            self.send_to(id, &text, now);
        }
        self.arm_ws(id);
    }

    /// Queues one text frame to `id` alone.
    pub(super) fn send_to(&mut self, id: ConnId, text: &str, now: Time) {
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        if !conn.can_receive() {
            return;
        }
        chat::encode_text_frame(text.as_bytes(), conn.out.tail());
        self.metrics.messages_out += 1;
        self.queued_to(id, now);
    }

    /// Bytes were queued to WebSocket `id`: count them and schedule the
    /// write; a queue past the hard ceiling closes `1013` at once, one past
    /// the limit starts its slow-consumer clock (judged in
    /// `on_ws_deadline`, after the writes of the turns in between).
    pub(super) fn queued_to(&mut self, id: ConnId, now: Time) {
        self.queue_changed(id, now);
        let Some(conn) = self.reg.get(id) else {
            return;
        };
        if !conn.can_receive() {
            return;
        }
        let limits = &self.config.limits;
        let len = conn.out.len();
        if len > limits.queue_ceiling() {
            self.close_slow(id, now);
        } else if len > limits.max_queue_bytes && !self.backlog.contains_key(&id) {
            self.backlog.insert(id, now);
            self.arm_ws(id);
        }
    }

    /// Closes a slow consumer `1013`: its unsent frames are dropped (the
    /// one partly written is finished), the close frame follows.
    pub(super) fn close_slow(&mut self, id: ConnId, now: Time) {
        if let Some(conn) = self.reg.get_mut(id) {
            conn.out.drop_unsent_frames();
        }
        self.close_ws(id, Ending::SlowConsumer, now);
    }

    /// Sets the deadline of WebSocket `id` to the earliest of its timers:
    /// ping, silence, expiry, the expiry warning, the slow-consumer clock.
    pub(super) fn arm_ws(&mut self, id: ConnId) {
        let interval = self.config.ping_interval;
        let slow = self.config.limits.slow_consumer_timeout;
        let Some(ws) = self.reg.get(id).and_then(Conn::ws) else {
            return;
        };
        if !ws.ctx.can_write() {
            return;
        }
        let mut next = ws.next_timer(interval);
        if let Some(&since) = self.backlog.get(&id) {
            // why: `<=`: on a tie the slow-consumer verdict comes first.
            if since + slow <= next.0 {
                next = (since + slow, Timer::SlowConsumer);
            }
        }
        self.set_deadline(id, next.0, next.1);
    }

    /// Writes one event into the queue of every member of `room`: encoded
    /// once per mode, copied into each queue. Members whose queue passes
    /// the cap are closed `1013` afterwards; nobody else waits for them.
    pub(super) fn broadcast(&mut self, room: &str, event: Event<'_>, now: Time) {
        let message = matches!(event, Event::Message { .. });
        let Some(seq) = self.reg.room_seq(room, message) else {
            return;
        };
        let cap = self.config.limits.max_queue_bytes;
        let ceiling = self.config.limits.queue_ceiling();
        let (mut text_ready, mut json_ready) = (false, false);
        let mut over = Vec::new();
        let total_before = self.queued_total;
        let (scratch, scratch_json) = (&mut self.scratch, &mut self.scratch_json);
        let (queued_total, dirty) = (&mut self.queued_total, &mut self.dirty);
        let (metrics, backlog) = (&mut self.metrics, &self.backlog);
        self.reg.for_each_member(room, |conn| {
            let mode = match conn.ws() {
                Some(ws) if ws.ctx.can_write() => ws.mode,
                _ => return,
            };
            let frame = match mode {
                Mode::Json => {
                    if !json_ready {
                        scratch_json.clear();
                        chat::encode_text_frame(
                            event.json(room, seq, now.as_millis()).as_bytes(),
                            scratch_json,
                        );
                        json_ready = true;
                    }
                    &*scratch_json
                }
                Mode::Text => {
                    if !text_ready {
                        scratch.clear();
                        chat::encode_text_frame(event.text().as_bytes(), scratch);
                        text_ready = true;
                    }
                    &*scratch
                }
            };
            conn.out.push(frame);
            let (before, after) = conn.out.settle();
            *queued_total = *queued_total + after - before;
            metrics.messages_out += 1;
            if !conn.dirty {
                conn.dirty = true;
                dirty.push(conn.id);
            }
            // why: a burst may take a queue past the limit; that is judged
            // after the writes (slow-consumer clock), not here. Only the
            // hard ceiling closes at once.
            if after > cap && (after > ceiling || !backlog.contains_key(&conn.id)) {
                over.push(conn.id);
            }
        });
        self.total_changed_from(total_before, now);
        for member in over {
            self.queued_to(member, now);
        }
    }

    /// The server ends a WebSocket: a close frame with `code` after what is
    /// already queued, out of the room at once, then flush and hang up.
    pub(super) fn close_ws(&mut self, id: ConnId, ending: Ending, now: Time) {
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        let Phase::Ws(ws) = &mut conn.phase else {
            return;
        };
        info!(
            "close user={} peer={} code={} reason=\"{}\"",
            quoted(ws.principal.user()),
            conn.peer,
            ending.code(),
            ending.reason()
        );
        self.metrics.closed(ending.code());
        let mut input: &[u8] = &[];
        let mut pipe = Pipe {
            input: &mut input,
            out: &mut conn.out,
        };
        let frame = CloseFrame {
            code: ending.close_code(),
            reason: ending.reason().into(),
        };
        // An error here means the close handshake already happened.
        let _ = ws.ctx.close(&mut pipe, Some(frame));
        self.leave_room(id, now);
        self.begin_closing(id, now);
    }

    /// The peer completed a close handshake (tungstenite is done).
    fn finish_ws(&mut self, id: ConnId, now: Time) {
        if let Some(conn) = self.reg.get(id) {
            if let Some(ws) = conn.ws() {
                let code = ws.peer_close.unwrap_or(1005);
                info!(
                    "close user={} peer={} code={code} reason=\"closed by peer\"",
                    quoted(ws.principal.user()),
                    conn.peer
                );
                self.metrics.closed_by_peer(code);
            }
        }
        self.leave_room(id, now);
        self.begin_closing(id, now);
    }

    /// Takes a WebSocket out of its room, its session's and its user's
    /// lists (the registry does), telling the room when that was the
    /// user's last connection there. The phase stays `Ws` until the caller
    /// changes it.
    pub(super) fn leave_room(&mut self, id: ConnId, now: Time) {
        let Some(left) = self.reg.leave(id) else {
            return;
        };
        if let Some(handle) = left.session {
            self.sessions.track_live(handle, false, now.as_millis());
        }
        if left.last_of_user {
            for observer in &mut self.observers {
                observer.left(&left.room, &left.user);
            }
        }
        if left.last_of_user && !self.shutting_down && self.presence_on(&left.room) {
            self.broadcast(&left.room, Event::Leave { user: &left.user }, now);
        }
    }

    /// Presence notices are sent only while the room is small, and never
    /// in echo mode (a conformance client expects its own messages only).
    pub(super) fn presence_on(&self, room: &str) -> bool {
        !self.config.echo
            && self
                .reg
                .rooms()
                .get(room)
                .is_some_and(|r| r.members.len() <= self.config.limits.presence_limit)
    }

    /// Closes every WebSocket of a session with `code`.
    pub(super) fn close_session_sockets(
        &mut self,
        handle: SessionHandle,
        ending: Ending,
        now: Time,
    ) {
        for id in self.reg.of_session(handle) {
            self.close_ws(id, ending, now);
        }
    }
}
