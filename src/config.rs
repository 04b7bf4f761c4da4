//! Validated settings: every default, and what happens when a limit is hit.
//!
//! `main.rs` turns flags and `WSGATE_*` variables into a [`Config`]; the
//! core only ever sees validated values. This module depends on nothing
//! else inside the crate.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the server needs to run, already validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// HMAC secrets for tokens: the first signs, all verify (rotation).
    /// Each at least 32 bytes. Default: one random secret per run.
    pub secrets: Vec<SecretKey>,
    /// Lifetime of tokens issued by `POST /token`. Default 15 minutes.
    pub token_ttl: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default 30 s.
    pub token_leeway: Duration,
    /// Required `iss` claim, when set. Default: not checked.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set. Default: tokens carrying `aud` are refused.
    pub audience: Option<String>,
    /// Origins allowed to upgrade with the session cookie, besides the
    /// same host as the request's `Host`. Default: none.
    pub allowed_origins: Vec<Origin>,
    /// Drop `Secure` and the `__Host-` prefix from the session cookie, for
    /// plain-HTTP testing off localhost. Default off.
    pub insecure_cookie: bool,
    /// Absolute lifetime of a login session (also the cookie's `Max-Age`).
    /// Default 8 hours.
    pub session_ttl: Duration,
    /// A session with no request and no live connection for this long
    /// expires. Default 30 minutes.
    pub session_idle: Duration,
    /// Roles allowed to send chat lines. `None` (the default): every role
    /// but `viewer`.
    pub send_roles: Option<Vec<String>>,
    /// Accept `Authorization: Basic` and `?username=&password=` on the
    /// upgrade. Default off: a password in a URL ends up in logs and
    /// histories.
    pub allow_password_auth: bool,
    /// The server pings every connection this often, and closes `1001` one
    /// that sent nothing for two intervals. Default 30 s.
    pub ping_interval: Duration,
    /// A token connection is told this long before its `exp` that it should
    /// refresh. Default 30 s.
    pub expiry_warning: Duration,
    /// Conformance testing only: every WebSocket message (text or binary) is
    /// echoed to its sender instead of chatted. Default off.
    pub echo: bool,
    /// What a user's connection past `max_conns_per_user` does.
    pub per_user_policy: PerUserPolicy,
    /// Resource limits.
    pub limits: Limits,
}

/// What happens when a user already has `max_conns_per_user` connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PerUserPolicy {
    /// The new upgrade is refused `429` (the default).
    RejectNewest,
    /// The user's oldest connection is closed `4409` and the new one opens.
    EvictOldest,
}

/// A token bucket's refill rate and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// The most tokens the bucket holds (the burst allowed).
    pub burst: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secrets: Vec::new(),
            token_ttl: Duration::from_secs(15 * 60),
            token_leeway: Duration::from_secs(30),
            issuer: None,
            audience: None,
            allowed_origins: Vec::new(),
            insecure_cookie: false,
            session_ttl: Duration::from_secs(8 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            send_roles: None,
            allow_password_auth: false,
            ping_interval: Duration::from_secs(30),
            expiry_warning: Duration::from_secs(30),
            per_user_policy: PerUserPolicy::RejectNewest,
            echo: false,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// True when `role` may send chat lines.
    pub fn may_send(&self, role: &str) -> bool {
        match &self.send_roles {
            Some(roles) => roles.iter().any(|r| r == role),
            None => role != "viewer",
        }
    }

    /// The session cookie's name: `__Host-wsgate`, or `wsgate` with
    /// [`Config::insecure_cookie`] (browsers refuse `__Host-` without `Secure`).
    pub fn cookie_name(&self) -> &'static str {
        if self.insecure_cookie {
            "wsgate"
        } else {
            "__Host-wsgate"
        }
    }
}

/// Resource limits. Each says its default and what happens when it is hit.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Open connections of any kind (HTTP and WebSocket). Default 10,000
    /// (this machine's open-file limit is 20,000). Past it a new
    /// connection gets `503` with `Retry-After`, written at once, and is
    /// closed without taking a slot.
    pub max_connections: usize,
    /// Bytes of an HTTP request head (request line and headers). Default
    /// 8 KiB. Past it: `431`, then close.
    pub max_head_bytes: usize,
    /// Headers in one request head. Default 64. Past it: `431`.
    pub max_headers: usize,
    /// Bytes of a request body (login forms). Default 8 KiB. Past it: `413`.
    pub max_body_bytes: usize,
    /// A request head (or the next one on a kept-alive connection) must be
    /// complete within this time. Default 10 s. Past it: closed without a
    /// response.
    pub handshake_timeout: Duration,
    /// Bytes of one incoming WebSocket message (and of one frame). Every
    /// fragment past a message's first [`FREE_FRAGMENTS`] also counts
    /// [`FRAGMENT_OVERHEAD`] bytes against it, so a message of thousands
    /// of empty fragments is refused like a large one. Default 64 KiB.
    /// Past it: close `1009`.
    pub max_message_bytes: usize,
    /// The queue limit: bytes queued to one WebSocket and not yet written.
    /// Default 1 MiB. A burst may take a queue past it; what counts is
    /// whether the peer drains it. While its queue is over the limit the
    /// connection's own input is not read (its pings and commands wait);
    /// a queue that stays over the limit for [`Limits::slow_consumer_timeout`]
    /// is closed `1013` "slow consumer", its unsent messages dropped at
    /// once. Nobody else waits for it. See also [`Limits::queue_ceiling`].
    pub max_queue_bytes: usize,
    /// How long a WebSocket's queue may stay over `max_queue_bytes`,
    /// judged after each write attempt, before it is closed `1013`.
    /// Default 5 s.
    pub slow_consumer_timeout: Duration,
    /// Bytes queued to all connections together. Default 256 MiB. At it,
    /// no WebSocket input is read (the senders' TCP windows fill:
    /// backpressure) and pipelined HTTP requests wait, until writes bring
    /// the total back under it; nobody is closed for it. The total can
    /// pass it by at most one message's fan-out to a room.
    pub queue_budget_bytes: usize,
    /// Bytes of HTTP answers queued to a connection that has not upgraded.
    /// Default 64 KiB. At it, the connection's further pipelined requests
    /// wait (and its input is not read) until the peer reads.
    pub max_http_queue_bytes: usize,
    /// Capacity of the WebSocket read buffer allocated per connection when
    /// it opens, and the most tungstenite takes from the input per step.
    /// Default 0: nothing is allocated until a frame arrives, and the buffer
    /// grows to hold the frame being read (up to the message cap). An idle
    /// connection then costs no read buffer at all (tungstenite's own
    /// default is 128 KiB). Larger values trade memory for fewer steps on
    /// large messages.
    pub read_buffer_bytes: usize,
    /// Join and leave notices are sent only while a room has at most this
    /// many connections, since N joins to a room of N cost N² deliveries.
    /// Default 100.
    pub presence_limit: usize,
    /// Connections of any kind from one client address (an IPv6 /64
    /// counts as one). Default 1,024. Past it: `429` with `Retry-After`,
    /// written at once; the refused connection holds no slot. `None`:
    /// unlimited.
    pub max_conns_per_ip: Option<usize>,
    /// Connections from one client address (an IPv6 /64 counts as one)
    /// that have not authenticated yet: everything before the `101`
    /// (handshakes, logins, plain HTTP requests, idle keep-alive
    /// connections). Default 64, far below `max_connections`, so a few
    /// addresses cannot take every slot without a credential. Past it:
    /// `429` with `Retry-After`, written at once; the refused connection
    /// holds no slot. `None`: unlimited.
    pub max_unauth_per_ip: Option<usize>,
    /// Live WebSockets one user may hold. Default 16. Past it: `429`, or
    /// with [`PerUserPolicy::EvictOldest`] the oldest is closed `4409`.
    pub max_conns_per_user: usize,
    /// Upgrade attempts per client IP: 10 a second, bursts of 20. Past it:
    /// `429` with `Retry-After`. `None`: unlimited.
    pub upgrade_rate: Option<Rate>,
    /// Failed logins (and failed password upgrades) per client IP: 10 a
    /// minute, bursts of 10. Past it, logins from that IP get `429` with
    /// `Retry-After` before any password is checked. `None`: unlimited.
    pub failed_login_rate: Option<Rate>,
    /// Chat messages per connection: 20 a second, bursts of 40. Past it:
    /// `error: rate limit exceeded`; after 10 such strikes in a row close
    /// `4429`. `None`: unlimited.
    pub message_rate: Option<Rate>,
    /// Client IPs tracked for the per-IP limits. Default 100,000; past it
    /// the stalest entries are forgotten.
    pub max_tracked_ips: usize,
    /// Unused `/ws-ticket` tickets held at once. Default 10,000. Past it:
    /// `503`.
    pub max_tickets: usize,
    /// On SIGTERM/SIGINT, how long queued output may take to drain before
    /// the process exits anyway. Default 5 s.
    pub drain_timeout: Duration,
    /// Password checks waiting for the helper thread. Default 64. Past it:
    /// `503` with `Retry-After`.
    pub max_pending_logins: usize,
    /// Live sessions one user may hold; a login past it ends the user's
    /// oldest session (its sockets closed `4401`). Default 16.
    pub max_sessions_per_user: usize,
    /// After the server starts closing a connection (close frame or final
    /// HTTP response queued), how long it waits for the queue to drain and
    /// the peer to hang up before it drops the socket. Default 5 s.
    pub close_timeout: Duration,
}

/// Bytes each fragment past a message's first [`FREE_FRAGMENTS`] counts
/// against [`Limits::max_message_bytes`] on top of its payload: about what
/// a frame costs to read, so that a message's cost, not only its payload,
/// is bounded. 65,536 fragments of 64 bytes (Autobahn 9.3.1) then count
/// 8 MiB; at the default 64 KiB limit a message holds at most 1,087 empty
/// fragments.
pub const FRAGMENT_OVERHEAD: usize = 64;

/// Fragments of one message that cost nothing beyond their payload.
pub const FREE_FRAGMENTS: usize = 64;

impl Limits {
    /// The hard per-connection ceiling: a queue that reaches it is closed
    /// `1013` at once, drained or not. It is 16 times `max_queue_bytes`
    /// (16 MiB by default), and always room for two of the largest
    /// messages beyond the queue limit, so that no single burst a fast
    /// reader can absorb reaches it.
    pub fn queue_ceiling(&self) -> usize {
        let frame = self.max_message_bytes.saturating_add(14);
        self.max_queue_bytes
            .saturating_mul(16)
            .max(self.max_queue_bytes.saturating_add(frame.saturating_mul(2)))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_head_bytes: 8 * 1024,
            max_headers: 64,
            max_body_bytes: 8 * 1024,
            handshake_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            max_queue_bytes: 1024 * 1024,
            slow_consumer_timeout: Duration::from_secs(5),
            queue_budget_bytes: 256 * 1024 * 1024,
            max_http_queue_bytes: 64 * 1024,
            read_buffer_bytes: 0,
            presence_limit: 100,
            max_conns_per_user: 16,
            max_conns_per_ip: Some(1024),
            max_unauth_per_ip: Some(64),
            upgrade_rate: Some(Rate {
                per_sec: 10.0,
                burst: 20.0,
            }),
            failed_login_rate: Some(Rate {
                per_sec: 10.0 / 60.0,
                burst: 10.0,
            }),
            message_rate: Some(Rate {
                per_sec: 20.0,
                burst: 40.0,
            }),
            max_tracked_ips: 100_000,
            max_tickets: 10_000,
            drain_timeout: Duration::from_secs(5),
            max_pending_logins: 64,
            max_sessions_per_user: 16,
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// An HMAC secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub Vec<u8>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey([redacted; {} bytes])", self.0.len())
    }
}

/// A web origin: scheme, host and port, compared exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `http` or `https`, lowercase.
    pub scheme: String,
    /// The host, lowercase (IPv6 literals keep their brackets).
    pub host: String,
    /// The port; the scheme's default when the origin names none.
    pub port: u16,
}

impl Origin {
    /// Parses an `Origin` header value or an `--allowed-origin` flag:
    /// `scheme://host[:port]` with no path, query, user info or trailing
    /// slash. `null` and every other scheme are refused.
    pub fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            Some(p) => p,
            None => default_port,
        };
        Some(Origin { scheme, host, port })
    }

    /// True when the host is `localhost` (or below it), a 127.0.0.0/8
    /// address or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.ends_with(".localhost")
            || self.host == "[::1]"
            || self
                .host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// True when this origin names the host that a request's `Host` header
    /// names, with the port that header gives (or the scheme's default).
    pub fn is_same_host(&self, host_header: &str) -> bool {
        match split_host_port(host_header) {
            Some((host, port)) => {
                let default = if self.scheme == "https" { 443 } else { 80 };
                host == self.host && port.unwrap_or(default) == self.port
            }
            None => false,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Splits `host[:port]` (IPv6 literals in brackets) and lowercases the host.
/// Refuses empty hosts, user info, paths and anything but host characters.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return None;
        }
        (format!("[{}]", inner), after)
    } else {
        let end = text.find(':').unwrap_or(text.len());
        let host = &text[..end];
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return None;
        }
        (host.to_string(), &text[end..])
    };
    let port = match port {
        "" => None,
        p => {
            let digits = p.strip_prefix(':')?;
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            Some(digits.parse().ok()?)
        }
    };
    Some((host.to_ascii_lowercase(), port))
}

/// Parses a duration: a whole number with an optional unit `s`, `m`, `h`
/// or `d` (`900`, `900s`, `15m`, `8h`). Refuses zero only when `allow_zero`
/// is false.
pub fn parse_duration(text: &str, allow_zero: bool) -> Option<Duration> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    if secs == 0 && !allow_zero {
        return None;
    }
    Some(Duration::from_secs(secs))
}

/// Parses a size in bytes: a whole number with an optional binary unit
/// `KiB`, `MiB` or `GiB` (also `K`, `M`, `G`; `B` or none for bytes):
/// `65536`, `64KiB`, `16MiB`. Refuses zero and sizes past `u32::MAX`.
pub fn parse_size(text: &str) -> Option<usize> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return None,
    };
    let bytes = n.checked_mul(scale)?;
    if bytes == 0 || bytes > u64::from(u32::MAX) {
        return None;
    }
    usize::try_from(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Some(65_536));
        assert_eq!(parse_size("64KiB"), Some(65_536));
        assert_eq!(parse_size("64K"), Some(65_536));
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("100B"), Some(100));
        for bad in [
            "", "0", "0MiB", "5GiB", "1.5MiB", "1 MiB", "MiB", "1mb", "-1",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_ceiling_fits_two_large_messages() {
        let mut l = Limits::default();
        assert_eq!(l.queue_ceiling(), 16 << 20);
        l.max_message_bytes = 16 << 20;
        assert!(l.queue_ceiling() >= l.max_queue_bytes + 2 * (16 << 20));
    }

    #[test]
    fn origins_parse_and_normalise() {
        let o = Origin::parse("HTTPS://Example.COM").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "example.com", 443)
        );
        assert_eq!(Origin::parse("http://127.0.0.1:8080").unwrap().port, 8080);
        assert_eq!(Origin::parse("http://[::1]:9").unwrap().host, "[::1]");
        for bad in [
            "null",
            "",
            "file://x",
            "http://",
            "http://a/b",
            "http://a:",
            "http://a:99999",
            "http://u@a",
            "http://a b",
            "http://a:8080/",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn same_host_compares_host_and_port_exactly() {
        let o = Origin::parse("http://127.0.0.1:8080").unwrap();
        assert!(o.is_same_host("127.0.0.1:8080"));
        assert!(!o.is_same_host("127.0.0.1:8081"));
        assert!(!o.is_same_host("127.0.0.1"));
        assert!(!o.is_same_host("127.0.0.10:8080"));
        let s = Origin::parse("https://chat.example.com").unwrap();
        assert!(s.is_same_host("chat.example.com"));
        assert!(s.is_same_host("CHAT.example.com:443"));
        assert!(!s.is_same_host("chat.example.com.evil.net"));
        assert!(!s.is_same_host("evil.net"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("900", false), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("15m", false), Some(Duration::from_secs(900)));
        assert_eq!(
            parse_duration("8h", false),
            Some(Duration::from_secs(28_800))
        );
        assert_eq!(
            parse_duration("1d", false),
            Some(Duration::from_secs(86_400))
        );
        assert_eq!(parse_duration("0", false), None);
        assert_eq!(parse_duration("0s", true), Some(Duration::ZERO));
        for bad in ["", "m", "5x", "-5", "1.5h", "5 m", "99999999999999999999"] {
            assert_eq!(parse_duration(bad, true), None, "{bad:?}");
        }
    }
}
