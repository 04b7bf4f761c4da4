//! Presence and per-user limits across nodes (with `--redis`).
//!
//! Redis counts every WebSocket of every node: a WebSocket is counted
//! ([`Ask::Join`]) before it opens, which is where the per-user limit is
//! checked across nodes, and uncounted when it closes ([`Ask::Leave`]).
//! A user's first WebSocket in a room on any node, and their last, are
//! announced on the subscription ([`LinkEvent::Presence`]), in one order
//! with the room's messages, and every node tells its members: a node
//! does not announce joins and leaves itself. `/who` asks Redis
//! ([`Ask::Who`]).
//!
//! When the link comes back, a node counts everything again under a new
//! life ([`Ask::Register`]): joins and leaves refused while it was down
//! are then right, and its old life is removed like a dead node's. So is
//! a node that stops telling Redis it is alive (killed, cut off): its
//! users are removed within [`NODE_TIMEOUT_MS`] plus a heartbeat.
//!
//! [`LinkEvent::Presence`]: super::cluster::LinkEvent::Presence
//! [`NODE_TIMEOUT_MS`]: super::cluster::NODE_TIMEOUT_MS

use std::collections::BTreeMap;
use std::sync::Arc;

use super::chat::encode_text_frame;
use super::chat::{Event, Reply};
use super::cluster::{Answer, Ask, Query};
use super::cluster_sessions::Waiter;
use super::conn::{Conn, Counted, Phase, StoreStep};
use super::ending::Ending;
use super::time::Time;
use super::{Action, ConnId, RETRY_AFTER_SECS, Server};
use crate::auth::Principal;
use crate::config::PerUserPolicy;
use crate::http::response::{Part, Then};
use crate::http::upgrade::{Mode, Reject, Upgrade};

/// The refusal when the user holds `--max-conns-per-user` on all nodes.
const FULL: Reject = Reject::TooMany("too many connections for this user", RETRY_AFTER_SECS);

impl Server {
    /// With `--redis`, the last step before a WebSocket opens: count it
    /// in Redis, across nodes, then open it ([`Server::open_counted`]).
    /// While the link is down the limit is this node's alone (the count
    /// starts over when it comes back): a client need not wait for Redis
    /// to connect.
    pub(super) fn join_cluster(
        &mut self,
        id: ConnId,
        principal: Principal,
        upgrade: Upgrade,
        rest: &[u8],
        now: Time,
    ) {
        let user = Arc::clone(principal.user_shared());
        if !self.ctx.cluster.as_ref().is_some_and(|c| c.up) {
            return self.admit_here(id, principal, upgrade, rest, now);
        }
        let may_evict = self.ctx.config.per_user_policy == PerUserPolicy::EvictOldest
            && !self.reg.of_user(&user).is_empty();
        let ask = Ask::Join {
            room: upgrade.room.clone(),
            user: user.to_string(),
            max_per_user: self.ctx.config.limits.max_conns_per_user,
            may_evict,
        };
        let step = StoreStep::Join(Box::new((principal, upgrade)));
        if let Some(response) = self.start_query(id, ask, step, Then::Close, rest.to_vec(), now) {
            self.respond(id, &response, Then::Close, Part::Whole, now);
        }
    }

    /// Redis answered the count of a WebSocket about to open.
    pub(super) fn joined(
        &mut self,
        id: ConnId,
        (principal, upgrade): (Principal, Upgrade),
        answer: Answer,
        rest: &[u8],
        now: Time,
    ) {
        let heard = self.heard_join(&upgrade.room, principal.user());
        let rej = match answer {
            Answer::Joined { .. } if self.ctx.shutting_down => {
                self.uncount(&upgrade.room, principal.user());
                Reject::Unavailable("server shutting down", RETRY_AFTER_SECS)
            }
            Answer::Joined { evict } => {
                let counted = Counted {
                    principal,
                    upgrade,
                    evict,
                    heard,
                };
                let Some(ask) = self.stream_ask(&counted.upgrade) else {
                    return self.open_joined(id, counted, rest, now);
                };
                // The resume needs what this node did not keep.
                let (room, user) = (
                    counted.upgrade.room.clone(),
                    counted.principal.user_shared().clone(),
                );
                let step = StoreStep::Stream(Box::new(counted));
                if let Some(response) =
                    self.start_query(id, ask, step, Then::Close, rest.to_vec(), now)
                {
                    self.uncount(&room, &user);
                    self.respond(id, &response, Then::Close, Part::Whole, now);
                }
                return;
            }
            Answer::Full => FULL,
            _ => super::cluster_sessions::STORE_UNREACHABLE,
        };
        self.refuse_upgrade(id, rej, &upgrade, now);
    }

    /// Whether Redis announced `user`'s join in `room` while it awaited
    /// Redis (the flag is taken).
    fn heard_join(&mut self, room: &str, user: &str) -> bool {
        self.ctx
            .cluster
            .as_mut()
            .is_some_and(|c| (c.early_joins).remove(&(room.to_string(), user.to_string())))
    }

    /// What to ask Redis's stream for a resuming upgrade, unless this node
    /// can serve the resume itself (a room with members here, whose
    /// history holds everything after the client's `since`).
    fn stream_ask(&self, upgrade: &Upgrade) -> Option<Ask> {
        let resume = upgrade.resume.as_ref()?;
        if self.ctx.config.limits.history == 0 {
            return None;
        }
        let epoch = resume.epoch.as_deref();
        let here = (self.reg.rooms().get(&upgrade.room))
            .filter(|r| !r.members.is_empty())
            .is_some_and(|r| r.replay(resume.since, epoch, usize::MAX).recovered);
        (!here).then(|| Ask::Replay {
            room: upgrade.room.clone(),
            since: resume.since,
            epoch: epoch.and_then(|e| u64::from_str_radix(e, 16).ok()),
        })
    }

    /// Redis's stream came for a resuming WebSocket: what joins up with
    /// this node's history is kept (so that the resume, served from it,
    /// misses nothing Redis holds), then it opens. Without the stream it
    /// opens all the same: the resume then says what is missing.
    pub(super) fn streamed(
        &mut self,
        id: ConnId,
        mut counted: Counted,
        answer: Answer,
        rest: &[u8],
        now: Time,
    ) {
        counted.heard |= self.heard_join(&counted.upgrade.room, counted.principal.user());
        let meanwhile = (self.ctx.cluster.as_mut())
            .map(|c| c.stream_done(&counted.upgrade.room))
            .unwrap_or_default();
        if self.ctx.shutting_down {
            self.uncount(&counted.upgrade.room, counted.principal.user());
            let rej = Reject::Unavailable("server shutting down", RETRY_AFTER_SECS);
            return self.refuse_upgrade(id, rej, &counted.upgrade, now);
        }
        let room = counted.upgrade.room.clone();
        if let Answer::Stream {
            epoch,
            mut last,
            mut entries,
        } = answer
        {
            let room = &room;
            // What the subscription brought since the read, in order.
            for m in meanwhile {
                if m.epoch == epoch && m.seq == last + 1 {
                    last = m.seq;
                    entries.push(m);
                }
            }
            let frames: Vec<(u64, Box<[u8]>)> = (entries.iter())
                .filter(|m| m.room == *room && m.epoch == epoch)
                .map(|m| {
                    let event = Event::Message {
                        from: &m.from,
                        text: &m.text,
                    };
                    let mut frame = Vec::new();
                    encode_text_frame(event.json(room, m.seq, m.ts).as_bytes(), &mut frame);
                    (m.seq, frame.into_boxed_slice())
                })
                .collect();
            let (keep, cap) = (self.ctx.config.limits.history, self.history_cap());
            let before = self.budget_use();
            self.reg.backfill(room, epoch, last, frames, keep, cap);
            self.total_changed_from(before, now);
        }
        self.open_joined(id, counted, rest, now);
        // A room made for a caught-up resume that did not open after all.
        self.reg.forget_if_empty(&room);
    }

    /// Opens a WebSocket Redis counted: the user's oldest here closes
    /// first if it must make room, and the joiner hears its own join if
    /// Redis announced it before.
    fn open_joined(&mut self, id: ConnId, counted: Counted, rest: &[u8], now: Time) {
        let Counted {
            principal,
            upgrade,
            evict,
            heard,
        } = counted;
        let oldest = self.reg.of_user(principal.user()).first().copied();
        match oldest {
            Some(oldest) if evict => self.close_ws(oldest, Ending::Replaced, now),
            // Redis counted it over the limit for one to close here, and
            // none is left here (they closed meanwhile): over the limit.
            None if evict => {
                self.uncount(&upgrade.room, principal.user());
                return self.refuse_upgrade(id, FULL, &upgrade, now);
            }
            _ => {}
        }
        let (room, user) = (upgrade.room.clone(), Arc::clone(principal.user_shared()));
        self.open_counted(id, principal, upgrade, rest, now);
        // why: Redis's announcement of this join came before its answer,
        // when the joiner was not a member yet.
        if heard && self.is_websocket(id) && self.presence_on(&room) {
            self.send_event_to(id, &room, Event::Join { user: &user }, now);
        }
    }

    /// A WebSocket counted in Redis closed here: uncount it (if the link
    /// is down, the count starts over when it comes back).
    pub(super) fn uncount(&mut self, room: &str, user: &str) {
        if !self.is_clustered() {
            return;
        }
        let Some(cluster) = self.ctx.cluster.as_mut().filter(|c| c.up) else {
            return;
        };
        let id = cluster.waiting_for(Waiter::Count);
        self.actions.push_back(Action::Query(Query {
            id,
            ask: Ask::Leave {
                room: room.to_string(),
                user: user.to_string(),
            },
        }));
    }

    /// `/who` with `--redis`: Redis knows the room on every node; the
    /// answer goes to `id` when it comes.
    pub(super) fn ask_who(&mut self, id: ConnId, now: Time) {
        if !self.is_clustered() {
            return;
        }
        let Some(ws) = self.reg.get(id).and_then(Conn::ws) else {
            return;
        };
        let (room, mode) = (ws.room.to_string(), ws.mode);
        match self.ctx.cluster.as_mut().filter(|c| c.up) {
            Some(cluster) => {
                let query = cluster.waiting_for(Waiter::Who(id));
                self.actions.push_back(Action::Query(Query {
                    id: query,
                    ask: Ask::Who { room },
                }));
            }
            None => {
                let detail = "the chat store (Redis) cannot be reached";
                let text = Reply::Error("unavailable", detail).render(mode);
                self.send_to(id, &text, now);
            }
        }
    }

    /// Redis answered `/who` for `id`.
    pub(super) fn who_answered(&mut self, id: ConnId, answer: Answer, now: Time) {
        let Some(mode) = self.reg.get(id).and_then(Conn::ws).map(|ws| ws.mode) else {
            return;
        };
        let text = match answer {
            Answer::Users(users) => {
                let users: Vec<&str> = users.iter().map(String::as_str).collect();
                Reply::Who(users).render(mode)
            }
            _ => {
                let detail = "the chat store (Redis) cannot be reached";
                Reply::Error("unavailable", detail).render(mode)
            }
        };
        self.send_to(id, &text, now);
    }

    /// A count was refused or went unanswered: Redis may count wrong
    /// until this node counts everything again.
    pub(super) fn count_failed(&mut self) {
        if let Some(cluster) = self.ctx.cluster.as_mut() {
            cluster.recount = true;
        }
    }

    /// Counts everything here again, under a new life of this node in
    /// Redis ([`Ask::Register`]): when the link came back, or after a
    /// count went wrong.
    pub(super) fn recount(&mut self) {
        if !self.is_clustered() {
            return;
        }
        let mut counts: BTreeMap<(String, String), u32> = BTreeMap::new();
        for conn in self.reg.iter() {
            let key = match (conn.ws(), &conn.phase) {
                (Some(ws), _) => (ws.room.to_string(), ws.user.to_string()),
                // Counted, and reading its room's stream before it opens.
                (
                    None,
                    Phase::AwaitStore {
                        step: StoreStep::Stream(c),
                        ..
                    },
                ) => (c.upgrade.room.clone(), c.principal.user().to_string()),
                _ => continue,
            };
            *counts.entry(key).or_default() += 1;
        }
        let Some(cluster) = self.ctx.cluster.as_mut().filter(|c| c.up) else {
            return;
        };
        cluster.recount = false;
        // Joins in flight may be counted under the old life: when one is,
        // count again (see `store_answered`).
        let joins: Vec<u64> = (cluster.queries_waiting())
            .filter(|(_, w)| matches!(w, Waiter::Join(..)))
            .map(|(id, _)| id)
            .collect();
        cluster.stale_joins.extend(joins);
        let entries: Vec<(String, String, u32)> =
            counts.into_iter().map(|((r, u), n)| (r, u, n)).collect();
        // One ask, however long: the link splits it into commands, and
        // lets the old life go with the last.
        let ask = Ask::Register {
            entries,
            first: true,
        };
        let id = cluster.waiting_for(Waiter::Count);
        self.actions.push_back(Action::Query(Query { id, ask }));
    }

    /// Counts `entries` under this node's current life, on top of what it
    /// counts (a Join that landed in a life a recount let go).
    pub(super) fn register(&mut self, entries: Vec<(String, String, u32)>) {
        let Some(cluster) = self.ctx.cluster.as_mut().filter(|c| c.up) else {
            return;
        };
        let id = cluster.waiting_for(Waiter::Count);
        let ask = Ask::Register {
            entries,
            first: false,
        };
        self.actions.push_back(Action::Query(Query { id, ask }));
    }

    /// Redis announced that `user` joined or left `room` (on any node):
    /// the room's members here hear it.
    pub(super) fn presence(&mut self, room: &str, user: &str, joined: bool, now: Time) {
        if let Some(cluster) = self.ctx.cluster.as_mut() {
            let key = (room.to_string(), user.to_string());
            if joined && cluster.joining.contains_key(&key) {
                cluster.early_joins.insert(key);
            }
        }
        if !self.presence_on(room) {
            return;
        }
        let event = if joined {
            Event::Join { user }
        } else {
            Event::Leave { user }
        };
        self.broadcast(room, event, now);
    }

    /// Sends `event` in `room` to `id` alone (in its mode).
    fn send_event_to(&mut self, id: ConnId, room: &str, event: Event<'_>, now: Time) {
        let Some(mode) = self.reg.get(id).and_then(Conn::ws).map(|ws| ws.mode) else {
            return;
        };
        let text = match mode {
            Mode::Text => event.text(),
            Mode::Json => {
                let seq = self.reg.rooms().get(room).map_or(0, |r| r.seq);
                event.json(room, seq, now.as_millis())
            }
        };
        self.send_to(id, &text, now);
    }
}
