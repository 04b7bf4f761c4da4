//! Open WebSockets: reading frames through tungstenite, chat (PROTOCOL §3,
//! §4), heartbeats and token expiry (§7), and every ending (§6).
//!
//! The handlers ([`Context::on_text`], [`Context::on_ws_timer`]) borrow the
//! context and the one WebSocket they work on (and the rooms, to read) and
//! return a [`Step`]; the server carries it out on the queues
//! ([`Server::take_step`]).

use super::peer::Peer;
use std::sync::Arc;
use std::time::Duration;

use log::info;
use tungstenite::Message;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::protocol::frame::coding::Data;

use super::chat::{self, Event, Reply, Request};
use super::conn::{Conn, Phase, Ws};
use super::context::Context;
use super::ending::Ending;
use super::logfmt::quoted;
use super::pipe::Pipe;
use super::rooms::Rooms;
use super::time::{Time, Timer};
use super::{ConnId, Server};
use crate::auth::Credential;
use crate::auth::session::SessionHandle;
use crate::http::upgrade::Mode;

/// Rate-limit strikes in a row before a sender is closed `4429`.
const MAX_STRIKES: u8 = 10;

/// What a WebSocket's message or timer calls for.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Nothing to send.
    Nothing,
    /// A text frame to this connection alone (its timers are re-armed
    /// after: `/refresh` moves them).
    Send(String),
    /// A chat line from this connection to its room.
    Broadcast(String),
    /// A ping to this connection.
    Ping,
    /// `/who`, asked of Redis (`--redis`).
    Who,
    /// End the connection ([`Ending::SlowConsumer`] drops its unsent
    /// frames first).
    Close(Ending),
}

impl Context {
    /// A text message on `ws` (from `peer`), with the rooms to read
    /// (`/who`): the rate limit, then the line or command.
    pub(super) fn on_text(
        &mut self,
        ws: &mut Ws,
        peer: Peer,
        rooms: &Rooms,
        text: &str,
        now: Time,
    ) -> Step {
        if !ws.can_write() {
            return Step::Nothing;
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
                return Step::Close(Ending::RateExceeded);
            }
            return Step::Send(Reply::Error("rate_limited", "rate limit exceeded").render(mode));
        }
        ws.strikes = ws.strikes.saturating_sub(1);
        let request = match mode {
            Mode::Json => chat::parse_json(text),
            Mode::Text => chat::parse_text(text),
        };
        let reply = match request {
            Ok(Request::Message(_)) if !ws.may_send => {
                Reply::Error("not_allowed", "not allowed to send")
            }
            Ok(Request::Message(line)) => return Step::Broadcast(line),
            Ok(Request::Command(command)) => {
                let user = &*ws.user;
                let answer = self
                    .observers
                    .iter_mut()
                    .find_map(|o| o.command(&ws.room, user, &command));
                match answer {
                    Some(text) if !text.chars().any(crate::auth::forbidden_in_line) => {
                        Reply::Answer(text)
                    }
                    _ => Reply::Error("unknown_command", "unknown command"),
                }
            }
            Ok(Request::Who) if self.clustered() => return Step::Who,
            Ok(Request::Who) => {
                let users = rooms.get(&ws.room).map(|r| r.users()).unwrap_or_default();
                Reply::Who(users)
            }
            Ok(Request::Refresh(token)) => self.refresh(ws, peer, &token, now),
            Err((code, detail)) => Reply::Error(code, detail),
        };
        Step::Send(reply.render(mode))
    }

    /// `/refresh TOKEN`: a valid token for the same user moves this
    /// connection's deadline; anything else changes nothing.
    fn refresh(&self, ws: &mut Ws, peer: Peer, token: &str, now: Time) -> Reply<'static> {
        let claims = match self.jwt.verify(token, now.as_millis()) {
            Ok(c) => c,
            Err(e) => {
                return Reply::Error("refresh_failed", e.public_reason());
            }
        };
        if !matches!(ws.credential, Credential::Token { .. }) {
            return Reply::Error("refresh_failed", "only token connections can refresh");
        }
        if claims.sub != *ws.user {
            return Reply::Error("refresh_failed", "token is for another user");
        }
        if claims
            .rooms
            .as_ref()
            .is_some_and(|r| !r.iter().any(|allowed| allowed.as_str() == &*ws.room))
        {
            return Reply::Error("refresh_failed", "room not allowed");
        }
        let exp_ms = claims.exp_ms;
        ws.credential = Credential::Token { exp_ms };
        ws.may_send = self.config.may_send(&claims.role);
        let config = &self.config;
        ws.set_expiry(
            Time::from_millis(exp_ms),
            config.token_leeway,
            config.expiry_warning,
            now,
        );
        info!("refreshed user={} peer={peer}", quoted(&claims.sub));
        Reply::Refreshed(exp_ms / 1000)
    }

    /// One of `ws`'s timers fired. An ending that is due (slow consumer,
    /// silence, expiry, in that order) closes it whichever timer it was; a
    /// warning or a ping is sent only if its own timer fired and is still
    /// due. `parked`: its input is not being read; `backlog_since`: its
    /// queue has been over the limit since then. The caller re-arms.
    pub(super) fn on_ws_timer(
        &self,
        ws: &mut Ws,
        timer: Timer,
        parked: bool,
        backlog_since: Option<Time>,
        now: Time,
    ) -> Step {
        let interval = self.config.ping_interval;
        let slow = self.config.limits.slow_consumer_timeout;
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
            return Step::Close(Ending::SlowConsumer);
        }
        if now >= ws.last_seen + interval.saturating_mul(2) {
            return Step::Close(Ending::PingTimeout);
        }
        if ws.expires.is_some_and(|e| now >= e.time()) {
            return Step::Close(match ws.credential {
                Credential::Session { .. } => Ending::SessionExpired,
                _ => Ending::TokenExpired,
            });
        }
        match timer {
            Timer::ExpiryWarning if ws.warn_at.is_some_and(|w| now >= w.time()) => {
                ws.warn_at = None;
                match ws.credential {
                    Credential::Token { exp_ms } => {
                        let left = Time::from_millis(exp_ms).since(now);
                        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                        Step::Send(Reply::Expiring(secs).render(ws.mode))
                    }
                    _ => Step::Nothing,
                }
            }
            Timer::Ping if now >= ws.next_ping => {
                // why: at least 1 ms on, whatever the config says (validate
                // refuses less, but `Server::new` does not validate): a
                // ping due now again would ping in a loop.
                ws.next_ping = now + interval.max(Duration::from_millis(1));
                Step::Ping
            }
            // The endings are handled above; a timer whose condition no
            // longer holds (a pong came, the queue drained) just re-arms.
            _ => Step::Nothing,
        }
    }
}

impl Server {
    /// Feeds bytes to tungstenite and acts on every complete message.
    pub(super) fn feed_ws(&mut self, id: ConnId, data: &[u8], now: Time) {
        let limit = self.ctx.config.limits.max_message_bytes;
        let Some(ws) = self.reg.get_mut(id).and_then(Conn::ws_mut) else {
            return;
        };
        // Fragments count against the message limit: frames up to the one
        // that goes past it are read, then the connection closes `1009`.
        let (mut input, too_big) = match super::fragments::feed(&mut ws.meter, data, limit) {
            Ok(()) => (data, false),
            Err(at) => (&data[..at], true),
        };
        // The code of the close frame the peer sent: tungstenite reports
        // the end of the handshake on the read right after it.
        let mut peer_close = None;
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
            let result = ws.protocol(&mut self.protocols).read(&mut pipe);
            // why: each ping queues a pong at once; a peer that floods pings
            // and never reads is judged by its queue like anyone else (and
            // its input waits while its queue is over the limit).
            self.queued_to(id, now);
            use tungstenite::Error as E;
            let step = match result {
                Ok(Message::Text(text)) if self.ctx.config.echo => {
                    self.echo(id, Data::Text, text.as_bytes(), now);
                    Step::Nothing
                }
                Ok(Message::Binary(data)) if self.ctx.config.echo => {
                    self.echo(id, Data::Binary, &data, now);
                    Step::Nothing
                }
                Ok(Message::Text(text)) => match self.reg.ws_and_rooms(id) {
                    Some((ws, peer, rooms)) => {
                        self.ctx.on_text(ws, peer, rooms, text.as_str(), now)
                    }
                    None => return,
                },
                Ok(Message::Binary(_)) => Step::Close(Ending::Binary),
                // tungstenite queued the reply; the next read flushes it
                // and reports `ConnectionClosed`.
                Ok(Message::Close(frame)) => {
                    peer_close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    Step::Nothing
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Step::Nothing,
                Err(E::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if too_big {
                        self.close_ws(id, Ending::TooBig, now);
                    } else if let Some(ws) = self.reg.get_mut(id).and_then(Conn::ws_mut) {
                        // why: an idle WebSocket keeps no tungstenite state.
                        ws.release(&mut self.protocols);
                    }
                    return;
                }
                Err(E::ConnectionClosed | E::AlreadyClosed) => {
                    return self.finish_ws(id, peer_close.unwrap_or(1005), now);
                }
                Err(E::Capacity(_)) => Step::Close(Ending::TooBig),
                Err(E::Utf8(_)) => Step::Close(Ending::InvalidUtf8),
                Err(_) => Step::Close(Ending::ProtocolError),
            };
            // After a close the connection is no longer a WebSocket, and
            // the loop ends at its top.
            self.take_step(id, step, now);
        }
    }

    /// Carries out what a WebSocket handler decided for `id`.
    fn take_step(&mut self, id: ConnId, step: Step, now: Time) {
        match step {
            Step::Nothing => {}
            Step::Send(text) => {
                self.send_to(id, &text, now);
                self.arm_ws(id);
            }
            Step::Broadcast(line) => {
                let Some(ws) = self.reg.get(id).and_then(Conn::ws) else {
                    return;
                };
                let (room, user) = (ws.room.clone(), Arc::clone(&ws.user));
                if self.is_clustered() {
                    return self.publish(Some(id), &room, &user, &line, now);
                }
                let event = Event::Message {
                    from: &user,
                    text: &line,
                };
                self.broadcast(&room, event, now);
                if !self.ctx.observers.is_empty() {
                    let seq = self.reg.rooms().get(&room).map_or(0, |r| r.seq);
                    for observer in &mut self.ctx.observers {
                        observer.message(&room, &user, &line, seq);
                    }
                }
            }
            Step::Ping => {
                let conn = &mut self.reg[id];
                if let Phase::Ws(ws) = &mut conn.phase {
                    let mut input: &[u8] = &[];
                    let mut pipe = Pipe {
                        input: &mut input,
                        out: &mut conn.out,
                    };
                    let held = ws.holds_protocol();
                    let ctx = ws.protocol(&mut self.protocols);
                    let _ = ctx.write(&mut pipe, Message::Ping(Default::default()));
                    let _ = ctx.flush(&mut pipe);
                    if !held {
                        // A fresh context that wrote a ping holds nothing.
                        ws.release(&mut self.protocols);
                    }
                }
                self.queued_to(id, now);
            }
            Step::Close(ending) => self.close_ws(id, ending, now),
            Step::Who => self.ask_who(id, now),
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

    /// A timer of WebSocket `id` fired: the handler decides, then the
    /// next timer is armed (unless the handler closed it).
    pub(super) fn on_ws_timer(&mut self, id: ConnId, timer: Timer, now: Time) {
        let backlog_since = self.backlog.get(&id).copied();
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        let parked = conn.parked;
        let Some(ws) = conn.ws_mut() else {
            return;
        };
        let step = self.ctx.on_ws_timer(ws, timer, parked, backlog_since, now);
        let ends = matches!(step, Step::Close(_));
        self.take_step(id, step, now);
        if !ends {
            self.arm_ws(id);
        }
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
        self.ctx.metrics.messages_out += 1;
        self.queued_to(id, now);
    }

    /// Bytes were queued to WebSocket `id`: count them and schedule the
    /// write; a queue past the hard ceiling closes `1013` at once, one past
    /// the limit starts its slow-consumer clock (judged in
    /// `Context::on_ws_timer`, after the writes of the turns in between).
    pub(super) fn queued_to(&mut self, id: ConnId, now: Time) {
        self.queue_changed(id, now);
        let Some(conn) = self.reg.get(id) else {
            return;
        };
        if !conn.can_receive() {
            return;
        }
        let limits = &self.ctx.config.limits;
        let len = conn.out.len();
        if len > limits.queue_ceiling() {
            self.close_ws(id, Ending::SlowConsumer, now);
        } else if len > limits.max_queue_bytes && !self.backlog.contains_key(&id) {
            self.backlog.insert(id, now);
            self.arm_ws(id);
        }
    }

    /// Sets the deadline of WebSocket `id` to the earliest of its timers:
    /// ping, silence, expiry, the expiry warning, the slow-consumer clock.
    pub(super) fn arm_ws(&mut self, id: ConnId) {
        let interval = self.ctx.config.ping_interval;
        let slow = self.ctx.config.limits.slow_consumer_timeout;
        let Some(ws) = self.reg.get(id).and_then(Conn::ws) else {
            return;
        };
        if !ws.can_write() {
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
        self.broadcast_stamped(room, event, None, now);
    }

    /// As [`Server::broadcast`]; a message `stamped` with its `seq` and
    /// `ts` already (Redis ordered it; the room adopted that `seq`) keeps
    /// them.
    pub(super) fn broadcast_stamped(
        &mut self,
        room: &str,
        event: Event<'_>,
        stamped: Option<(u64, u64)>,
        now: Time,
    ) {
        let message = matches!(event, Event::Message { .. });
        let seq = match stamped {
            Some((seq, _)) => Some(seq),
            None => self.reg.room_seq(room, message),
        };
        let Some(seq) = seq else {
            return;
        };
        let ts = stamped.map_or(now.as_millis(), |(_, ts)| ts);
        let cap = self.ctx.config.limits.max_queue_bytes;
        let ceiling = self.ctx.config.limits.queue_ceiling();
        let (mut text_ready, mut json_ready) = (false, false);
        let mut over = Vec::new();
        let total_before = self.budget_use();
        let (scratch, scratch_json) = (&mut self.scratch, &mut self.scratch_json);
        let (queued_total, dirty) = (&mut self.queued_total, &mut self.dirty);
        let (metrics, backlog) = (&mut self.ctx.metrics, &self.backlog);
        self.reg.for_each_member(room, |conn| {
            let mode = match conn.ws() {
                Some(ws) if ws.can_write() => ws.mode,
                _ => return,
            };
            let frame = match mode {
                Mode::Json => {
                    if !json_ready {
                        scratch_json.clear();
                        chat::encode_text_frame(event.json(room, seq, ts).as_bytes(), scratch_json);
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
        let keep = self.ctx.config.limits.history;
        if message && keep > 0 {
            if !json_ready {
                self.scratch_json.clear();
                let json = event.json(room, seq, ts);
                chat::encode_text_frame(json.as_bytes(), &mut self.scratch_json);
            }
            let cap = self.history_cap();
            self.reg.record(room, seq, &self.scratch_json, keep, cap);
        }
        self.total_changed_from(total_before, now);
        for member in over {
            self.queued_to(member, now);
        }
    }

    /// The server ends a WebSocket: a close frame with `code` after what is
    /// already queued, out of the room at once, then flush and hang up. A
    /// slow consumer's unsent frames are dropped first (the one partly
    /// written is finished).
    pub(super) fn close_ws(&mut self, id: ConnId, ending: Ending, now: Time) {
        let Some(conn) = self.reg.get_mut(id) else {
            return;
        };
        let Phase::Ws(ws) = &mut conn.phase else {
            return;
        };
        if ending == Ending::SlowConsumer {
            conn.out.drop_unsent_frames();
        }
        info!(
            "close user={} peer={} code={} reason=\"{}\"",
            quoted(&ws.user),
            conn.peer,
            ending.code(),
            ending.reason()
        );
        self.ctx.metrics.closed(ending.code());
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
        let _ = ws
            .protocol(&mut self.protocols)
            .close(&mut pipe, Some(frame));
        self.leave_room(id, now);
        self.begin_closing(id, now);
    }

    /// The peer completed a close handshake (tungstenite is done); its
    /// close frame said `code` (`1005`: none given).
    fn finish_ws(&mut self, id: ConnId, code: u16, now: Time) {
        if let Some(conn) = self.reg.get(id) {
            if let Some(ws) = conn.ws() {
                info!(
                    "close user={} peer={} code={code} reason=\"closed by peer\"",
                    quoted(&ws.user),
                    conn.peer
                );
                self.ctx.metrics.closed_by_peer(code);
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
            self.ctx.sessions.track_live(handle, false, now.as_millis());
        }
        if left.last_of_user {
            for observer in &mut self.ctx.observers {
                observer.left(&left.room, &left.user);
            }
        }
        if self.is_clustered() {
            // Redis announces leaves, to every node.
            return self.uncount(&left.room, &left.user);
        }
        if left.last_of_user && !self.ctx.shutting_down && self.presence_on(&left.room) {
            self.broadcast(&left.room, Event::Leave { user: &left.user }, now);
        }
    }

    /// Presence notices are sent only while the room is small, and never
    /// in echo mode (a conformance client expects its own messages only).
    pub(super) fn presence_on(&self, room: &str) -> bool {
        !self.ctx.config.echo
            && self
                .reg
                .rooms()
                .get(room)
                .is_some_and(|r| r.members.len() <= self.ctx.config.limits.presence_limit)
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
