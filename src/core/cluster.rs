//! What the core and the Redis link (`crate::redis`, cargo feature
//! `redis`) say to each other: pure data. With `--redis`, a chat message is
//! not broadcast where it arrives: the core asks the link to store and
//! publish it ([`Publish`]), and every node, the sender's own included,
//! delivers it to its local members when Redis hands it back in its one
//! order ([`LinkEvent::Message`]).

/// A chat message to store and fan out through Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Publish {
    /// Names the answer ([`LinkEvent::Stored`], [`LinkEvent::Failed`]).
    pub id: u64,
    /// The room.
    pub room: String,
    /// The sender.
    pub from: String,
    /// The line.
    pub text: String,
    /// Milliseconds since the UNIX epoch, when the sender's node took it.
    pub ts: u64,
}

/// A message as Redis ordered it, from the subscription (every node, the
/// sender's own included).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivered {
    /// The room.
    pub room: String,
    /// The sender.
    pub from: String,
    /// The line.
    pub text: String,
    /// As in [`Publish::ts`].
    pub ts: u64,
    /// The room's sequence number, gapless in its epoch.
    pub seq: u64,
    /// The life of the room's sequence in Redis.
    pub epoch: u64,
}

/// What the link tells the core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// Both connections are ready (script loaded, subscribed): publishes
    /// work.
    Up,
    /// A connection was lost or stalled; the link reconnects with backoff
    /// by itself.
    Down {
        /// What happened (never a password).
        why: String,
    },
    /// Publish `id` was stored with this `seq`.
    Stored {
        /// The publish.
        id: u64,
        /// Its sequence number.
        seq: u64,
    },
    /// Publish `id` was not stored: refused at once while down
    /// (`unconfirmed: false`), or written and never answered before the
    /// connection failed (`unconfirmed: true`: it may still appear).
    Failed {
        /// The publish.
        id: u64,
        /// Whether it may still have been stored.
        unconfirmed: bool,
    },
    /// A message from the subscription.
    Message(Delivered),
}

use std::collections::HashMap;
use std::sync::Arc;

use log::info;

use super::chat::{Event, Reply, resume_json};
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
}

impl Cluster {
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
        // why cfg!: without the feature nothing can set it, and the
        // compiler then drops the cluster paths from the binary.
        cfg!(feature = "redis") && self.ctx.cluster.is_some()
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
        let Some(cluster) = self.ctx.cluster.as_mut() else {
            return;
        };
        match event {
            // The link logs both, with Redis's address.
            LinkEvent::Up => cluster.up = true,
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
        }
    }

    /// A message Redis ordered: to this node's members of its room (with
    /// Redis's `seq`, `epoch` and `ts`), into the local history, and to
    /// the observers.
    fn deliver(&mut self, m: &Delivered, now: Time) {
        match self.reg.adopt(&m.room, m.seq, m.epoch) {
            Adopted::NotHere => return,
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
            .map(|ws| Arc::clone(ws.principal.user_shared()));
        if let Some(user) = user {
            info!("unsent user={} why=\"{detail}\"", quoted(&user));
        }
        let text = Reply::Error("unavailable", detail).render(mode);
        self.send_to(id, &text, now);
    }
}
