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
    /// Resuming clients (`since=`) that missed nothing, and that did.
    pub resumed: [u64; 2],
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
    /// WebSocket endings the server decided, by close code (a fixed set:
    /// only the codes the server itself sends).
    pub server_closes: BTreeMap<u16, u64>,
    /// WebSocket endings the peer decided, by [`PeerCode`] group: a peer
    /// picks its code, so it never picks a series.
    pub peer_closes: [u64; PeerCode::ALL.len()],
    /// Password checks that succeeded.
    pub logins_ok: u64,
    /// Password checks that failed.
    pub logins_failed: u64,
    /// TLS connections that failed (in the handshake, or a bad record or
    /// a fatal alert after it), by class (a fixed set the shell names).
    pub tls_failures: BTreeMap<&'static str, u64>,
}

/// Values read off the core's state when rendering.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Open connections of any kind.
    pub connections: usize,
    /// Open WebSockets.
    pub websockets: usize,
    /// Rooms with members.
    pub rooms: usize,
    /// Live sessions.
    pub sessions: usize,
    /// Bytes queued to all connections.
    pub queued_bytes: usize,
    /// Connections whose input is not read for now (backpressure).
    pub paused_inputs: usize,
    /// Messages the rooms keep for clients that resume.
    pub history_messages: usize,
    /// What they count against the queue budget, in bytes.
    pub history_bytes: usize,
    /// With `--redis`: whether the link is up, publishes awaiting their
    /// answer, and publishes not stored (refused or unconfirmed).
    pub redis: Option<(bool, usize, u64)>,
}

/// The groups a peer's close code is counted under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCode {
    /// `1000` normal closure.
    Normal,
    /// `1001` going away.
    Away,
    /// `1005`: a close frame without a code.
    NoCode,
    /// `1006`: no close frame at all, the connection was lost.
    Lost,
    /// Any other code of RFC 6455's range (1002–2999).
    OtherRfc,
    /// 3000–3999, registered with IANA.
    Registered,
    /// 4000–4999, private use.
    Private,
}

impl PeerCode {
    /// Every group, in the order counted.
    pub const ALL: [PeerCode; 7] = [
        PeerCode::Normal,
        PeerCode::Away,
        PeerCode::NoCode,
        PeerCode::Lost,
        PeerCode::OtherRfc,
        PeerCode::Registered,
        PeerCode::Private,
    ];

    /// The group of `code`.
    pub fn of(code: u16) -> PeerCode {
        match code {
            1000 => PeerCode::Normal,
            1001 => PeerCode::Away,
            1005 => PeerCode::NoCode,
            1006 => PeerCode::Lost,
            3000..=3999 => PeerCode::Registered,
            4000..=4999 => PeerCode::Private,
            _ => PeerCode::OtherRfc,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            PeerCode::Normal => "1000",
            PeerCode::Away => "1001",
            PeerCode::NoCode => "1005",
            PeerCode::Lost => "1006",
            PeerCode::OtherRfc => "1xxx",
            PeerCode::Registered => "3xxx",
            PeerCode::Private => "4xxx",
        }
    }
}

impl Metrics {
    /// Counts a refusal.
    pub fn refused(&mut self, status: u16, reason: &'static str) {
        *self.refusals.entry((status, reason)).or_default() += 1;
    }

    /// Counts a WebSocket the server closed with `code`.
    pub fn closed(&mut self, code: u16) {
        *self.server_closes.entry(code).or_default() += 1;
    }

    /// Counts a WebSocket the peer closed with `code` (grouped).
    pub fn closed_by_peer(&mut self, code: u16) {
        let group = PeerCode::of(code);
        if let Some(i) = PeerCode::ALL.iter().position(|&g| g == group) {
            self.peer_closes[i] += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let plain: [(&str, &str, &str, u64); 16] = [
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
                "wsgate_queued_bytes",
                "gauge",
                "Bytes queued to all connections, not yet written.",
                g.queued_bytes as u64,
            ),
            (
                "wsgate_paused_inputs",
                "gauge",
                "Connections whose input waits for queues to drain (backpressure).",
                g.paused_inputs as u64,
            ),
            (
                "wsgate_history_messages",
                "gauge",
                "Messages rooms keep for clients that resume.",
                g.history_messages as u64,
            ),
            (
                "wsgate_history_bytes",
                "gauge",
                "Bytes of history, counted against the queue budget.",
                g.history_bytes as u64,
            ),
            (
                "wsgate_resumed_total",
                "counter",
                "Clients that resumed (since=) and missed nothing.",
                self.resumed[0],
            ),
            (
                "wsgate_resumed_with_gap_total",
                "counter",
                "Clients that resumed and were told recovered:false.",
                self.resumed[1],
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
        if let Some((up, pending, failed)) = g.redis {
            for (name, kind, help, value) in [
                (
                    "wsgate_redis_up",
                    "gauge",
                    "1 while the Redis link is up.",
                    u64::from(up),
                ),
                (
                    "wsgate_redis_pending",
                    "gauge",
                    "Messages awaiting Redis's answer.",
                    pending as u64,
                ),
                (
                    "wsgate_redis_unsent_total",
                    "counter",
                    "Messages not stored: refused while Redis was unreachable, or unconfirmed.",
                    failed,
                ),
            ] {
                family(&mut out, name, kind, help);
                let _ = writeln!(out, "{name} {value}");
            }
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
            self.logins_ok
        );
        let _ = writeln!(
            out,
            "wsgate_logins_total{{result=\"failed\"}} {}",
            self.logins_failed
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
            "WebSocket endings by who decided (server or peer) and close code; \
             peer codes are grouped (1xxx, 3xxx, 4xxx).",
        );
        for (code, n) in &self.server_closes {
            let _ = writeln!(
                out,
                "wsgate_closes_total{{by=\"server\",code=\"{code}\"}} {n}"
            );
        }
        for (group, n) in PeerCode::ALL.iter().zip(self.peer_closes) {
            if n > 0 {
                let code = group.label();
                let _ = writeln!(
                    out,
                    "wsgate_closes_total{{by=\"peer\",code=\"{code}\"}} {n}"
                );
            }
        }
        if !self.tls_failures.is_empty() {
            family(
                &mut out,
                "wsgate_tls_failures_total",
                "counter",
                "TLS connections that failed, by class (not_tls, incompatible, alert, \
                 protocol, eof, timeout).",
            );
            for (class, n) in &self.tls_failures {
                let _ = writeln!(out, "wsgate_tls_failures_total{{class=\"{class}\"}} {n}");
            }
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
        m.closed_by_peer(1000);
        let text = m.render(&Gauges {
            connections: 3,
            websockets: 2,
            rooms: 1,
            sessions: 0,
            queued_bytes: 10,
            history_messages: 0,
            history_bytes: 0,
            redis: None,
            paused_inputs: 0,
        });
        assert!(text.contains("\nwsgate_websockets 2\n"));
        assert!(
            text.contains("wsgate_refusals_total{status=\"401\",reason=\"invalid token\"} 2\n")
        );
        assert!(text.contains("wsgate_closes_total{by=\"server\",code=\"1009\"} 1\n"));
        assert!(text.contains("wsgate_closes_total{by=\"peer\",code=\"1000\"} 1\n"));
        assert!(text.contains("\nwsgate_queued_bytes 10\n"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
    }

    #[test]
    fn peer_codes_cannot_choose_series() {
        let mut m = Metrics::default();
        for code in 0..=u16::MAX {
            m.closed_by_peer(code);
        }
        let gauges = Gauges {
            connections: 0,
            websockets: 0,
            rooms: 0,
            sessions: 0,
            queued_bytes: 0,
            history_messages: 0,
            history_bytes: 0,
            redis: None,
            paused_inputs: 0,
        };
        let text = m.render(&gauges);
        let series = text
            .lines()
            .filter(|l| l.starts_with("wsgate_closes_total{"))
            .count();
        assert_eq!(series, PeerCode::ALL.len());
        assert!(text.contains("wsgate_closes_total{by=\"peer\",code=\"4xxx\"} 1000\n"));
        assert_eq!(PeerCode::of(4999), PeerCode::Private);
        assert_eq!(PeerCode::of(2999), PeerCode::OtherRfc);
        assert_eq!(PeerCode::of(5000), PeerCode::OtherRfc);
    }
}
