//! The core's side of scale-out over Redis (`--redis`): what the core
//! and the link (`crate::redis`, cargo feature `redis`) say to each other
//! is the data of the `wsgate-redis` crate, re-exported here; with a link,
//! a chat message is not broadcast where it arrives: the core asks the
//! link to store and publish it ([`Publish`]), and every node, the
//! sender's own included, delivers it to its local members when Redis
//! hands it back in its one order ([`LinkEvent::Message`]).

pub use wsgate_redis::types::*;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use log::info;

use super::chat::{Event, Reply, resume_json};
use super::cluster_sessions::Waiter;
use super::conn::Conn;
use super::logfmt::quoted;
use super::rooms::Adopted;
use super::time::Time;
use super::{Action, ConnId, Server};
use crate::http::upgrade::Mode;

/// The most publishes awaiting Redis's answer at once; past it a sender
/// is told the chat is busy (no queue grows without bound).
pub const MAX_PENDING: usize = 4096;

/// The core's side of the link (with `--redis`).
#[derive(Debug, Default)]
pub struct Cluster {
    /// The link said [`LinkEvent::Up`] last (not [`LinkEvent::Down`]).
    pub up: bool,
    next_id: u64,
    /// Publishes awaiting their answer, and who sent each (`None`: the
    /// embedding program).
    pending: HashMap<u64, Option<ConnId>>,
    /// Publishes Redis did not confirm, for `/metrics`.
    pub failed: u64,
    /// Queries awaiting their answer, and who waits for each.
    queries: HashMap<u64, Waiter>,
    /// Joins awaiting Redis's count here, by `(room, user)`.
    pub joining: HashMap<(String, String), usize>,
    /// Joins Redis announced while one of `joining` awaited its count:
    /// the joiner, not yet a member then, is told when it opens.
    pub early_joins: HashSet<(String, String)>,
    /// A count in Redis may be wrong: count everything again
    /// (`Server::recount`) at the next sweep.
    pub recount: bool,
    /// Joins asked before the last recount and not yet answered: Redis
    /// may count them under this node's old life, which goes.
    pub stale_joins: HashSet<u64>,
    /// Rooms whose stream is being read for a resume here (how many
    /// reads), and the messages the subscription brought meanwhile while
    /// nobody here was in the room (they would be lost otherwise), at
    /// most `--history` of them.
    pub streaming: HashMap<String, (usize, VecDeque<Delivered>)>,
}

impl Cluster {
    /// A new query's id, awaited by `waiter`.
    pub(super) fn waiting_for(&mut self, waiter: Waiter) -> u64 {
        if let Waiter::Join(_, room, user) | Waiter::Counted(_, room, user) = &waiter {
            *(self.joining)
                .entry((room.clone(), user.to_string()))
                .or_default() += 1;
        }
        if let Waiter::Counted(_, room, _) = &waiter {
            self.streaming.entry(room.clone()).or_default().0 += 1;
        }
        self.next_id += 1;
        self.queries.insert(self.next_id, waiter);
        self.next_id
    }

    /// True when connection `conn` waits for query `id`.
    #[cfg(any(test, fuzzing))]
    pub(super) fn awaits(&self, id: u64, conn: ConnId) -> bool {
        match self.queries.get(&id) {
            Some(Waiter::Conn(c) | Waiter::Join(c, ..) | Waiter::Counted(c, ..)) => *c == conn,
            _ => false,
        }
    }

    /// Who waited for query `id` (no longer).
    pub(super) fn answered(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.queries.remove(&id)?;
        if let Waiter::Join(_, room, user) | Waiter::Counted(_, room, user) = &waiter {
            let key = (room.clone(), user.to_string());
            if let Some(n) = self.joining.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.joining.remove(&key);
                }
            }
        }
        Some(waiter)
    }

    /// The queries awaiting their answer, and who waits for each.
    pub(super) fn queries_waiting(&self) -> impl Iterator<Item = (u64, &Waiter)> {
        self.queries.iter().map(|(id, w)| (*id, w))
    }

    /// A read of `room`'s stream was answered: the messages the
    /// subscription brought meanwhile for nobody here.
    pub(super) fn stream_done(&mut self, room: &str) -> Vec<Delivered> {
        let Some((reads, kept)) = self.streaming.get_mut(room) else {
            return Vec::new();
        };
        *reads -= 1;
        let kept = kept.iter().cloned().collect();
        if *reads == 0 {
            self.streaming.remove(room);
        }
        kept
    }

    /// Publishes awaiting Redis's answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// Why a message could not go out, as its sender hears it.
const UNREACHABLE: &str = "not sent: the chat store (Redis) cannot be reached";
const UNCONFIRMED: &str =
    "not confirmed: the chat store (Redis) stopped answering; it may still appear";
const BUSY: &str = "not sent: too many messages are waiting for the chat store";

impl Server {
    /// True when chat goes through Redis (`--redis`).
    pub fn is_clustered(&self) -> bool {
        self.ctx.clustered()
    }

    /// Hands a chat line to Redis (cluster mode): it reaches the room,
    /// here and on every node, when Redis gives it back in its order. The
    /// sender (`None`: the embedding program) hears at once if it cannot
    /// go, and later if Redis does not confirm it.
    pub(super) fn publish(
        &mut self,
        sender: Option<ConnId>,
        room: &str,
        from: &str,
        text: &str,
        now: Time,
    ) {
        let Some(cluster) = self.ctx.cluster.as_mut() else {
            return;
        };
        let refusal = if !cluster.up {
            Some(UNREACHABLE)
        } else if cluster.pending.len() >= MAX_PENDING {
            Some(BUSY)
        } else {
            None
        };
        if let Some(detail) = refusal {
            cluster.failed += 1;
            if let Some(id) = sender {
                self.tell_unsent(id, detail, now);
            }
            return;
        }
        cluster.next_id += 1;
        let id = cluster.next_id;
        cluster.pending.insert(id, sender);
        self.actions.push_back(Action::Publish(Publish {
            id,
            room: room.to_string(),
            from: from.to_string(),
            text: text.to_string(),
            ts: now.as_millis(),
        }));
    }

    /// The Redis link reports `event`.
    pub fn handle_link(&mut self, event: LinkEvent, now: Time) {
        // why: a constant without the feature; what follows compiles away.
        if !self.is_clustered() {
            return;
        }
        let Some(cluster) = self.ctx.cluster.as_mut() else {
            return;
        };
        match event {
            // The link logs both, with Redis's address.
            LinkEvent::Up => {
                cluster.up = true;
                // Joins and leaves were not counted while it was down, and
                // this node may have been found dead meanwhile.
                self.recount();
                // A session may have ended while the link was down.
                self.touch_sessions(now);
            }
            LinkEvent::Down { .. } => {
                cluster.up = false;
                // why: what the subscription misses meanwhile never comes;
                // a resume must not be told that nothing is missing.
                self.reg.drop_all_history();
            }
            LinkEvent::Stored { id, .. } => {
                cluster.pending.remove(&id);
            }
            LinkEvent::Failed { id, unconfirmed } => {
                let sender = cluster.pending.remove(&id).flatten();
                cluster.failed += 1;
                if let Some(conn) = sender {
                    let detail = if unconfirmed {
                        UNCONFIRMED
                    } else {
                        UNREACHABLE
                    };
                    self.tell_unsent(conn, detail, now);
                }
            }
            LinkEvent::Message(message) => self.deliver(&message, now),
            LinkEvent::Answer { id, answer } => self.store_answered(id, answer, now),
            LinkEvent::Presence { room, user, joined } => {
                self.presence(&room, &user, joined, now);
            }
            LinkEvent::SessionsEnded { digests, why } => {
                self.handle_sessions_ended(&digests, why, now);
            }
        }
    }

    /// A message Redis ordered: to this node's members of its room (with
    /// Redis's `seq`, `epoch` and `ts`), into the local history, and to
    /// the observers.
    fn deliver(&mut self, m: &Delivered, now: Time) {
        match self.reg.adopt(&m.room, m.seq, m.epoch) {
            Adopted::NotHere => {
                // A resume here reads the room's stream: keep it for that.
                let keep = self.ctx.config.limits.history;
                if let Some(cluster) = self.ctx.cluster.as_mut() {
                    if let Some((_, kept)) = cluster.streaming.get_mut(&m.room) {
                        kept.push_back(m.clone());
                        if kept.len() > keep {
                            kept.pop_front();
                        }
                    }
                }
                return;
            }
            Adopted::Stale => return,
            Adopted::Follows => {}
            // The numbering broke (Redis restarted, or this node missed
            // messages): JSON clients hear it before the message, as a
            // resume that did not recover, so that none skips a `seq` it
            // thinks it has seen (PROTOCOL §4).
            Adopted::Renumbered => {
                let epoch = format!("{:016x}", m.epoch);
                let text = resume_json(&m.room, &epoch, m.seq.saturating_sub(1), false);
                self.send_to_json_members(&m.room, &text, now);
            }
        }
        let event = Event::Message {
            from: &m.from,
            text: &m.text,
        };
        self.broadcast_stamped(&m.room, event, Some((m.seq, m.ts)), now);
        for observer in &mut self.ctx.observers {
            observer.message(&m.room, &m.from, &m.text, m.seq);
        }
    }

    /// Sends `text` to each JSON-mode member of `room` here.
    fn send_to_json_members(&mut self, room: &str, text: &str, now: Time) {
        let mut json = Vec::new();
        self.reg.for_each_member(room, |conn| {
            if conn.ws().is_some_and(|ws| ws.mode == Mode::Json) {
                json.push(conn.id);
            }
        });
        for id in json {
            self.send_to(id, text, now);
        }
    }

    /// Tells `id` that its message did not go out (an error reply, as for
    /// any refused message).
    fn tell_unsent(&mut self, id: ConnId, detail: &'static str, now: Time) {
        let Some(mode) = self.reg.get(id).and_then(Conn::ws).map(|ws| ws.mode) else {
            return;
        };
        let user = self
            .reg
            .get(id)
            .and_then(Conn::ws)
            .map(|ws| Arc::clone(&ws.user));
        if let Some(user) = user {
            info!("unsent user={} why=\"{detail}\"", quoted(&user));
        }
        let text = Reply::Error("unavailable", detail).render(mode);
        self.send_to(id, &text, now);
    }
}
