//! Counters for `GET /metrics`, rendered in the Prometheus text format
//! (version 0.0.4). Names say their unit; no label ever holds a user name,
//! an address or a credential.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Counters the core keeps as it works.
#[derive(Debug, Default)]
pub struct Metrics {
    /// TCP connections accepted.
    pub accepted: u64,
    /// WebSockets opened.
    pub upgrades: u64,
    /// Refused upgrades and HTTP requests, by status and reason.
    pub refusals: BTreeMap<(u16, &'static str), u64>,
    /// Chat messages received from clients.
    pub messages_in: u64,
    /// Frames queued to clients (one per receiver of a broadcast).
    pub messages_out: u64,
    /// Bytes read from sockets.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// WebSocket endings, by close code (`1006`: the peer vanished).
    pub closes: BTreeMap<u16, u64>,
    /// Successful and failed password checks.
    pub logins: [u64; 2],
}

/// Values read off the core's state when rendering.
#[derive(Debug)]
pub struct Gauges {
    /// Open connections of any kind.
    pub connections: usize,
    /// Open WebSockets.
    pub websockets: usize,
    /// Rooms with members.
    pub rooms: usize,
    /// Live sessions.
    pub sessions: usize,
}

impl Metrics {
    /// Counts a refusal.
    pub fn refused(&mut self, status: u16, reason: &'static str) {
        *self.refusals.entry((status, reason)).or_default() += 1;
    }

    /// Counts a WebSocket ending.
    pub fn closed(&mut self, code: u16) {
        *self.closes.entry(code).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let plain: [(&str, &str, &str, u64); 10] = [
            (
                "wsgate_connections",
                "gauge",
                "Open TCP connections of any kind.",
                g.connections as u64,
            ),
            (
                "wsgate_websockets",
                "gauge",
                "Open WebSocket connections.",
                g.websockets as u64,
            ),
            (
                "wsgate_rooms",
                "gauge",
                "Rooms with at least one member.",
                g.rooms as u64,
            ),
            (
                "wsgate_sessions",
                "gauge",
                "Live login sessions.",
                g.sessions as u64,
            ),
            (
                "wsgate_accepted_total",
                "counter",
                "TCP connections accepted.",
                self.accepted,
            ),
            (
                "wsgate_upgrades_total",
                "counter",
                "WebSocket upgrades completed.",
                self.upgrades,
            ),
            (
                "wsgate_messages_in_total",
                "counter",
                "Chat messages received.",
                self.messages_in,
            ),
            (
                "wsgate_messages_out_total",
                "counter",
                "Frames queued to clients.",
                self.messages_out,
            ),
            (
                "wsgate_bytes_in_total",
                "counter",
                "Bytes read from sockets.",
                self.bytes_in,
            ),
            (
                "wsgate_bytes_out_total",
                "counter",
                "Bytes written to sockets.",
                self.bytes_out,
            ),
        ];
        for (name, kind, help, value) in plain {
            family(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        family(
            &mut out,
            "wsgate_logins_total",
            "counter",
            "Password checks by result.",
        );
        let _ = writeln!(
            out,
            "wsgate_logins_total{{result=\"ok\"}} {}",
            self.logins[0]
        );
        let _ = writeln!(
            out,
            "wsgate_logins_total{{result=\"failed\"}} {}",
            self.logins[1]
        );
        family(
            &mut out,
            "wsgate_refusals_total",
            "counter",
            "Refused requests by status and reason.",
        );
        for ((status, reason), n) in &self.refusals {
            let _ = writeln!(
                out,
                "wsgate_refusals_total{{status=\"{status}\",reason=\"{reason}\"}} {n}"
            );
        }
        family(
            &mut out,
            "wsgate_closes_total",
            "counter",
            "WebSocket endings by close code.",
        );
        for (code, n) in &self.closes {
            let _ = writeln!(out, "wsgate_closes_total{{code=\"{code}\"}} {n}");
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_once() {
        let mut m = Metrics::default();
        m.refused(401, "invalid token");
        m.refused(401, "invalid token");
        m.closed(1009);
        let text = m.render(&Gauges {
            connections: 3,
            websockets: 2,
            rooms: 1,
            sessions: 0,
        });
        assert!(text.contains("\nwsgate_websockets 2\n"));
        assert!(
            text.contains("wsgate_refusals_total{status=\"401\",reason=\"invalid token\"} 2\n")
        );
        assert!(text.contains("wsgate_closes_total{code=\"1009\"} 1\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }
}
