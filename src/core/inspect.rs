//! Read-only views of the core's private state, for the fuzz harness
//! ([`crate::fuzzing`]) and the unit tests (compiled only for `cfg(test)`
//! and `cfg(fuzzing)`).
//!
//! Nothing here changes the server; [`Server::check_consistency`] states
//! the bookkeeping invariants that no sequence of `handle_*` calls may
//! break, so a fuzzer can assert them after every step.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::conn::Phase;
use super::limits::{AddrKey, AddrLoad};
use super::{ConnId, Server};
use crate::auth::Credential;

impl Server {
    /// The ids of every connection the core holds, in slab order.
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.conns.iter().map(|(id, _)| id).collect()
    }

    /// The phase of `id` as a short name: `http`, `await-password`, `ws`,
    /// `closing` or `lingering`; `None` for an unknown id.
    pub fn phase_name(&self, id: ConnId) -> Option<&'static str> {
        self.conns.get(id).map(|c| match c.phase {
            Phase::Http { .. } => "http",
            Phase::AwaitPassword { .. } => "await-password",
            Phase::Ws(_) => "ws",
            Phase::Closing => "closing",
            Phase::Lingering => "lingering",
        })
    }

    /// The user of an open WebSocket `id`.
    pub fn user_of(&self, id: ConnId) -> Option<&str> {
        self.conns
            .get(id)
            .and_then(|c| c.ws())
            .map(|ws| ws.principal.user())
    }

    /// Checks the cross-references between connections, rooms, per-user
    /// and per-session lists and password jobs; the first broken one is
    /// described in the error.
    ///
    /// - every room member is an open WebSocket that names that room and
    ///   its own index in it, and every WebSocket still in a room is a
    ///   member of it (so no room holds a closed or closing connection,
    ///   and there are never more rooms than WebSockets);
    /// - every per-user and per-session entry is a live WebSocket of that
    ///   user (or session) with the same serial, still in its room, and
    ///   every WebSocket in a room is listed under its user;
    /// - no user holds more than `max_conns_per_user` WebSockets;
    /// - every connection waiting for a password has its job listed, under
    ///   its own id and serial;
    /// - every connection has a deadline, and a timer armed for it (at or
    ///   before it) is in the heap, so none can live forever;
    /// - the total of queued bytes is the sum of the queues, each settled;
    /// - what each address holds (connections, unauthenticated ones,
    ///   password checks) is exactly what the connections and jobs say,
    ///   with no idle entries;
    /// - the parked count and list match the parked connections, and each
    ///   parked one still has something to wait for (none is forgotten);
    ///   input is held only for parked WebSockets; at the budget its clock
    ///   runs;
    ///   only
    ///   open WebSockets have a slow-consumer clock, and their deadline
    ///   comes no later than its verdict.
    pub fn check_consistency(&self) -> Result<(), String> {
        self.check_flow()?;
        self.check_addresses()?;
        let mut members_seen: HashMap<&str, usize> = HashMap::new();
        let mut in_rooms = 0;
        for (id, conn) in &self.conns {
            let Some(deadline) = conn.deadline else {
                return Err(format!("connection {id} has no deadline"));
            };
            let armed = conn
                .armed
                .filter(|&at| at <= deadline)
                .ok_or_else(|| format!("connection {id} has no timer armed for its deadline"))?;
            let in_heap = self
                .timers
                .iter()
                .any(|Reverse(entry)| *entry == (armed.get(), id, conn.serial));
            if !in_heap {
                return Err(format!("connection {id}'s timer is not in the heap"));
            }
            if let Phase::AwaitPassword { job, .. } = conn.phase {
                let listed = self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.conn == id && j.serial == conn.serial);
                if !listed {
                    return Err(format!("connection {id} waits for an unlisted job"));
                }
            }
            let Some(ws) = conn.ws() else { continue };
            if ws.index == usize::MAX {
                continue;
            }
            in_rooms += 1;
            *members_seen.entry(ws.room.as_str()).or_default() += 1;
            let room = self
                .rooms
                .get(&ws.room)
                .ok_or_else(|| format!("connection {id} names a room that does not exist"))?;
            if room.members.get(ws.index) != Some(&id) {
                return Err(format!(
                    "connection {id} is not at its index {} in its room",
                    ws.index
                ));
            }
            let user = ws.principal.user();
            let listed = self
                .user_conns
                .get(user)
                .is_some_and(|l| l.contains(&(id, conn.serial)));
            if !listed {
                return Err(format!("connection {id} is missing from its user's list"));
            }
            if let Credential::Session { handle } = ws.principal.credential() {
                let listed = self
                    .session_conns
                    .get(handle)
                    .is_some_and(|l| l.contains(&(id, conn.serial)));
                if !listed {
                    return Err(format!(
                        "connection {id} is missing from its session's list"
                    ));
                }
            }
        }
        // Each member found above sits at a distinct index, so equal
        // counts mean the rooms hold nobody else.
        if self.rooms.len() != members_seen.len() {
            return Err(format!(
                "{} rooms, but WebSockets are in {}",
                self.rooms.len(),
                members_seen.len()
            ));
        }
        for (name, seen) in &members_seen {
            let members = self.rooms.get(name).map_or(0, |r| r.members.len());
            if members != *seen {
                return Err(format!("a room has {members} members, {seen} point at it"));
            }
        }
        let max_per_user = self.config.limits.max_conns_per_user;
        let mut listed = 0;
        for (user, list) in &self.user_conns {
            if list.len() > max_per_user {
                return Err(format!(
                    "a user holds {} WebSockets, limit {max_per_user}",
                    list.len()
                ));
            }
            for &(id, serial) in list {
                let ok = self.conns.get(id).is_some_and(|c| {
                    c.serial == serial
                        && c.ws().is_some_and(|ws| {
                            ws.principal.user() == &**user && ws.index != usize::MAX
                        })
                });
                if !ok {
                    return Err(format!("a user's list holds a stale connection {id}"));
                }
            }
            listed += list.len();
        }
        if listed != in_rooms {
            return Err(format!(
                "user lists hold {listed} connections, rooms {in_rooms}"
            ));
        }
        for (handle, list) in &self.session_conns {
            for &(id, serial) in list {
                let ok = self.conns.get(id).is_some_and(|c| {
                    c.serial == serial
                        && c.ws().is_some_and(|ws| {
                            ws.index != usize::MAX
                                && matches!(ws.principal.credential(),
                                    Credential::Session { handle: h } if h == handle)
                        })
                });
                if !ok {
                    return Err(format!("a session's list holds a stale connection {id}"));
                }
            }
        }
        Ok(())
    }

    fn check_flow(&self) -> Result<(), String> {
        let mut sum = 0;
        let mut parked = 0;
        for (id, conn) in &self.conns {
            if conn.out.accounted() != conn.out.len() {
                return Err(format!(
                    "connection {id}: queue {} but {} counted",
                    conn.out.len(),
                    conn.out.accounted()
                ));
            }
            sum += conn.out.len();
            if conn.parked {
                parked += 1;
                if !self.parked.contains(&id) {
                    return Err(format!("connection {id} is parked but not listed"));
                }
                // Parked with nothing to wait for: it would never be read
                // again.
                if !self.input_waits(conn) {
                    return Err(format!(
                        "connection {id} ({}) is parked for nothing: queue {}, total {}",
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
                .conns
                .get(id)
                .is_some_and(|c| (c.parked || resumes) && c.ws().is_some())
            {
                return Err(format!("input held for {id}, which will not resume"));
            }
        }
        let budget = self.config.limits.queue_budget_bytes;
        if self.queued_total >= budget && self.pressure_since.is_none() {
            return Err("at the budget, but its clock does not run".into());
        }
        let slow = self.config.limits.slow_consumer_timeout.as_millis() as u64;
        for (&id, &since) in &self.backlog {
            let Some(conn) = self.conns.get(id) else {
                return Err(format!("a slow-consumer clock for a gone connection {id}"));
            };
            if !conn.can_receive() {
                return Err(format!(
                    "a slow-consumer clock for a closing connection {id}"
                ));
            }
            if conn.deadline.is_none_or(|d| d.get() > since + slow) {
                return Err(format!("connection {id}'s verdict is not armed"));
            }
        }
        Ok(())
    }

    fn check_addresses(&self) -> Result<(), String> {
        let mut expected: HashMap<AddrKey, AddrLoad> = HashMap::new();
        for (_, conn) in &self.conns {
            let load = expected.entry(AddrKey::of(conn.peer.ip())).or_default();
            load.conns += 1;
            if !conn.authenticated {
                load.unauth += 1;
            }
        }
        for job in self.jobs.values() {
            expected.entry(job.addr).or_default().logins += 1;
        }
        if expected != self.per_addr {
            return Err(format!(
                "per-address loads {:?}, connections say {expected:?}",
                self.per_addr
            ));
        }
        Ok(())
    }
}
