//! Read-only views of the core's private state, for the fuzz harness
//! ([`crate::fuzzing`]) and the unit tests (compiled only for `cfg(test)`
//! and `cfg(fuzzing)`).
//!
//! Nothing here changes the server; [`Server::check_consistency`] states
//! the bookkeeping invariants that no sequence of `handle_*` calls may
//! break, so a fuzzer can assert them after every step.

use std::collections::HashMap;

use super::conn::Phase;
use super::limits::AddrKey;
use super::{ConnId, Server};

impl Server {
    /// The ids of every connection the core holds, in slab order.
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.reg.ids()
    }

    /// The phase of `id` as a short name: `http`, `await-password`, `ws`,
    /// `closing` or `lingering`; `None` for an unknown id.
    pub fn phase_name(&self, id: ConnId) -> Option<&'static str> {
        self.reg.get(id).map(|c| c.phase.name())
    }

    /// The user of an open WebSocket `id`.
    pub fn user_of(&self, id: ConnId) -> Option<&str> {
        self.reg.get(id).and_then(|c| c.ws()).map(|ws| &*ws.user)
    }

    /// True while WebSocket `id` holds tungstenite state of its own (an
    /// idle one holds none).
    pub fn holds_protocol(&self, id: ConnId) -> bool {
        self.reg
            .get(id)
            .and_then(|c| c.ws())
            .is_some_and(|ws| ws.holds_protocol())
    }

    /// The epoch of `room`, while it is kept.
    pub fn room_epoch(&self, room: &str) -> Option<String> {
        self.reg.rooms().get(room).map(|r| r.epoch_text())
    }

    /// Checks the bookkeeping invariants that no sequence of `handle_*`
    /// calls may break; the first broken one is described in the error:
    ///
    /// - the registry's own (rooms, per-user and per-session lists, per
    ///   address, timers: [`super::registry::Registry::check`]), with the
    ///   password checks in flight per address;
    /// - the rooms' history (`Rooms::check`): consecutive numbers, within
    ///   `--history` a room and a quarter of the budget in all, no room
    ///   kept empty;
    /// - no user holds more than `max_conns_per_user` WebSockets;
    /// - every connection waiting for a password has its job listed;
    /// - the total of queued bytes is the sum of the queues, each settled;
    /// - an open WebSocket holds tungstenite's state only while a frame or
    ///   a message spans reads (it has a fragment meter) or a close is
    ///   under way;
    /// - the parked count and list match the parked connections, and each
    ///   parked one still has something to wait for (none is forgotten);
    ///   input is held only for WebSockets that will resume; at the budget
    ///   its clock runs; only open WebSockets have a slow-consumer clock,
    ///   and their deadline comes no later than its verdict.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut logins: HashMap<AddrKey, usize> = HashMap::new();
        for job in self.jobs.values() {
            *logins.entry(job.addr).or_default() += 1;
        }
        self.reg.check(&logins)?;
        let keep = self.ctx.config.limits.history;
        self.reg.rooms().check(keep, self.history_cap())?;
        self.check_flow()?;
        let max_per_user = self.ctx.config.limits.max_conns_per_user;
        for conn in self.reg.iter() {
            if let Phase::AwaitPassword { job, .. } = conn.phase {
                if self.jobs.get(&job).is_none_or(|j| j.conn != conn.id) {
                    return Err(format!(
                        "connection {:?} waits for an unlisted job",
                        conn.id
                    ));
                }
            }
            if let Phase::AwaitStore { query, .. } = conn.phase {
                if !(self.ctx.cluster.as_ref()).is_some_and(|c| c.awaits(query, conn.id)) {
                    return Err(format!(
                        "connection {:?} waits for an unlisted query",
                        conn.id
                    ));
                }
            }
            if let Some(ws) = conn.ws() {
                let n = self.reg.of_user(&ws.user).len();
                if n > max_per_user {
                    return Err(format!("a user holds {n} WebSockets, limit {max_per_user}"));
                }
            }
        }
        Ok(())
    }

    fn check_flow(&self) -> Result<(), String> {
        let mut sum = 0;
        let mut parked = 0;
        for conn in self.reg.iter() {
            let id = conn.id;
            if conn.out.accounted() != conn.out.len() {
                return Err(format!(
                    "connection {id:?}: queue {} but {} counted",
                    conn.out.len(),
                    conn.out.accounted()
                ));
            }
            sum += conn.out.len();
            // why: an idle WebSocket gives tungstenite's state back; one
            // that keeps it with no frame or message spanning reads, and
            // no close under way, holds a quarter of a connection's memory
            // for nothing.
            if let Some(ws) = conn.ws() {
                if ws.holds_protocol() && ws.meter.is_none() && ws.can_write() {
                    return Err(format!(
                        "connection {id:?} is idle but holds tungstenite's state"
                    ));
                }
            }
            if conn.parked {
                parked += 1;
                if !self.parked.contains(&id) {
                    return Err(format!("connection {id:?} is parked but not listed"));
                }
                // Parked with nothing to wait for: it would never be read
                // again.
                if !self.input_waits(conn) {
                    return Err(format!(
                        "connection {id:?} ({}) is parked for nothing: queue {}, total {}",
                        self.phase_name(id).unwrap_or("?"),
                        conn.out.len(),
                        self.queued_total
                    ));
                }
            }
        }
        if sum != self.queued_total {
            return Err(format!(
                "queues hold {sum}, total says {}",
                self.queued_total
            ));
        }
        if parked != self.parked_count {
            return Err(format!("{parked} parked, count says {}", self.parked_count));
        }
        for &id in self.held.keys() {
            // Held input is read again when the connection resumes: it
            // must be waiting for that.
            let resumes = self.actions.contains(&super::Action::Resume(id));
            if !self
                .reg
                .get(id)
                .is_some_and(|c| (c.parked || resumes) && c.ws().is_some())
            {
                return Err(format!("input held for {id:?}, which will not resume"));
            }
        }
        let budget = self.ctx.config.limits.queue_budget_bytes;
        if self.budget_use() >= budget && self.pressure_since.is_none() {
            return Err("at the budget, but its clock does not run".into());
        }
        let slow = self.ctx.config.limits.slow_consumer_timeout;
        for (&id, &since) in &self.backlog {
            let Some(conn) = self.reg.get(id) else {
                return Err(format!(
                    "a slow-consumer clock for a gone connection {id:?}"
                ));
            };
            if !conn.can_receive() {
                return Err(format!(
                    "a slow-consumer clock for a closing connection {id:?}"
                ));
            }
            if conn.deadline.is_none_or(|d| d.time() > since + slow) {
                return Err(format!("connection {id:?}'s verdict is not armed"));
            }
        }
        Ok(())
    }
}
