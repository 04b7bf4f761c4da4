//! Settings: every default, what happens when a limit is hit, and
//! [`Config::validate`], the one place that says whether a [`Config`] can
//! run.
//!
//! `main.rs` turns flags and `WSGATE_*` variables into a [`Config`] and
//! validates it; [`crate::shell::Gateway::bind`] validates again, so an
//! embedder's [`Config`] is checked too and the core only ever sees valid
//! values. This module depends on nothing else inside the crate.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
pub use wsgate_redis::RedisUrl;

pub use ipnet::IpNet;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the server needs to run.
///
/// [`Config::default()`] is **not** valid by itself: it has no secret, and
/// there is no safe default for one. Set [`Config::secrets`] to at least
/// one secret of [`MIN_SECRET_LEN`] or more random bytes (the `wsgate`
/// binary takes it from `WSGATE_SECRET` or `--secret-file`, or makes a
/// random one per run). [`Config::validate`] lists every rule;
/// [`crate::shell::Gateway::bind`] refuses a config it rejects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// HMAC secrets for tokens: the first signs, all verify (rotation).
    /// Each at least [`MIN_SECRET_LEN`] bytes. Default: none, which
    /// [`Config::validate`] refuses (the `wsgate` binary, given no secret,
    /// makes one random secret per run).
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
    /// Do not serve the chat page (`/`, `/app.js`, `/style.css` are then
    /// `404`). Default off: the page is served.
    pub no_ui: bool,
    /// TLS on the listening port: every endpoint is HTTPS and `/ws` is
    /// WSS (needs the cargo feature `tls`). Default: none, plain TCP.
    pub tls: Option<TlsFiles>,
    /// Scale-out: the Redis that several wsgate processes share, to form
    /// one chat (needs the cargo feature `redis`; README "Scale-out").
    /// Default: none, one process is the whole chat.
    pub redis: Option<RedisUrl>,
    /// Listen with `SO_REUSEPORT`, so that several processes on one host
    /// share the port (the kernel spreads connections across them).
    /// Default off.
    pub reuse_port: bool,
    /// Peers whose word on the client's address is taken (README
    /// "Behind a proxy"): from a peer in one of these networks, the client
    /// address comes from `X-Forwarded-For` (the rightmost entry that is
    /// not itself a trusted proxy) and, with [`Config::proxy_protocol`],
    /// from the PROXY protocol header. Per-address limits never apply to
    /// a trusted proxy's own address. Default: none (those headers are
    /// ignored from everyone).
    pub trusted_proxies: Vec<IpNet>,
    /// Connections from [`Config::trusted_proxies`] must begin with a
    /// PROXY protocol header (v1 or v2), before TLS and HTTP; one that
    /// does not is refused. Never read from any other peer. Default off.
    pub proxy_protocol: bool,
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
    /// Seeds the core's random generator (session ids, tickets). `None`
    /// (the default): seeded by the operating system at start. A fixed
    /// seed makes a run replay exactly (tests, fuzzing) — and makes its
    /// session ids predictable, so never set it in production.
    pub random_seed: Option<u64>,
    /// Resource limits.
    pub limits: Limits,
}

/// What happens when a user already has `max_conns_per_user` connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PerUserPolicy {
    /// The new upgrade is refused `429` (the default).
    RejectNewest,
    /// The user's oldest connection is closed `4409` and the new one opens.
    EvictOldest,
}

/// A token bucket's refill rate and size.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// The most tokens the bucket holds (the burst allowed).
    pub burst: f64,
}

impl Rate {
    /// `per_sec` tokens a second, at most `burst` at once.
    pub fn new(per_sec: f64, burst: f64) -> Rate {
        Rate { per_sec, burst }
    }
}

impl Config {
    /// The defaults, with `secret` as the one token secret: a valid config
    /// when the secret has at least [`MIN_SECRET_LEN`] bytes. Change any
    /// field after (`config.listen = …`).
    pub fn with_secret(secret: impl Into<Vec<u8>>) -> Config {
        Config {
            secrets: vec![SecretKey::new(secret)],
            ..Config::default()
        }
    }
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
            no_ui: false,
            tls: None,
            redis: None,
            reuse_port: false,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            session_ttl: Duration::from_secs(8 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            send_roles: None,
            allow_password_auth: false,
            ping_interval: Duration::from_secs(30),
            expiry_warning: Duration::from_secs(30),
            per_user_policy: PerUserPolicy::RejectNewest,
            echo: false,
            random_seed: None,
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// True when `ip` is in one of [`Config::trusted_proxies`] (an
    /// IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

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

    /// Checks that the server can run with this config; the first problem
    /// found is the error.
    ///
    /// # Errors
    /// - [`ConfigError::TlsNotBuilt`] when `tls` is set in a build
    ///   without the cargo feature `tls`;
    /// - [`ConfigError::ProxyProtocolUntrusted`] when `proxy_protocol` is
    ///   on and `trusted_proxies` is empty;
    /// - [`ConfigError::NoSecret`] when `secrets` is empty (as in
    ///   [`Config::default()`]);
    /// - [`ConfigError::SecretTooShort`] for a secret under [`MIN_SECRET_LEN`]
    ///   bytes;
    /// - [`ConfigError::UnderOneMillisecond`] for `token_ttl`,
    ///   `session_ttl`, `session_idle`, `ping_interval` or
    ///   `limits.handshake_timeout` under 1 ms (the core counts time in
    ///   milliseconds: a shorter span would be zero);
    /// - [`ConfigError::Zero`] for a zero that would stop the server from doing
    ///   its job: `limits.max_connections`,
    ///   `limits.max_head_bytes`, `limits.max_headers`,
    ///   `limits.max_message_bytes`, `limits.max_queue_bytes`,
    ///   `limits.queue_budget_bytes`, `limits.max_http_queue_bytes`,
    ///   `limits.max_conns_per_user`, `limits.max_tracked_ips`,
    ///   `limits.max_sessions_per_user`, and `Some(0)` for
    ///   `limits.max_conns_per_ip` or `limits.max_unauth_per_ip` (`None` is
    ///   how to say unlimited);
    /// - [`ConfigError::MessageTooLarge`] for `limits.max_message_bytes` above
    ///   [`MAX_MESSAGE_BYTES`];
    /// - [`ConfigError::QueueBudgetTooSmall`] when `limits.queue_budget_bytes` is
    ///   under `limits.max_queue_bytes`;
    /// - [`ConfigError::BadRate`] for a rate whose `per_sec` is not a positive
    ///   number or whose `burst` is under 1 (no request could ever pass;
    ///   `None` is how to say unlimited).
    ///
    /// Zero is fine where it only switches something off or makes it
    /// immediate: `token_leeway`, `expiry_warning`, `limits.max_body_bytes`
    /// (form logins get `413`), `limits.read_buffer_bytes` (the default),
    /// `limits.presence_limit` (no join/leave notices), `limits.max_tickets`
    /// (`/ws-ticket` answers `503`), `limits.max_pending_logins` (password
    /// checks answer `503`), `limits.slow_consumer_timeout`,
    /// `limits.drain_timeout` and `limits.close_timeout`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls.is_some() && !cfg!(feature = "tls") {
            return Err(ConfigError::TlsNotBuilt);
        }
        if self.redis.is_some() && !cfg!(feature = "redis") {
            return Err(ConfigError::RedisNotBuilt);
        }
        if self.proxy_protocol && self.trusted_proxies.is_empty() {
            return Err(ConfigError::ProxyProtocolUntrusted);
        }
        if self.secrets.is_empty() {
            return Err(ConfigError::NoSecret);
        }
        if let Some((index, s)) =
            (self.secrets.iter().enumerate()).find(|(_, s)| s.0.len() < MIN_SECRET_LEN)
        {
            let len = s.0.len();
            return Err(ConfigError::SecretTooShort { index, len });
        }
        let l = &self.limits;
        let durations = [
            ("token_ttl", self.token_ttl),
            ("session_ttl", self.session_ttl),
            ("session_idle", self.session_idle),
            ("ping_interval", self.ping_interval),
            ("limits.handshake_timeout", l.handshake_timeout),
        ];
        if let Some((field, _)) = durations
            .iter()
            .find(|(_, d)| *d < Duration::from_millis(1))
        {
            return Err(ConfigError::UnderOneMillisecond { field });
        }
        let counts = [
            ("limits.max_connections", l.max_connections),
            ("limits.max_head_bytes", l.max_head_bytes),
            ("limits.max_headers", l.max_headers),
            ("limits.max_message_bytes", l.max_message_bytes),
            ("limits.max_queue_bytes", l.max_queue_bytes),
            ("limits.queue_budget_bytes", l.queue_budget_bytes),
            ("limits.max_http_queue_bytes", l.max_http_queue_bytes),
            ("limits.max_conns_per_user", l.max_conns_per_user),
            ("limits.max_tracked_ips", l.max_tracked_ips),
            ("limits.max_sessions_per_user", l.max_sessions_per_user),
            ("limits.max_conns_per_ip", l.max_conns_per_ip.unwrap_or(1)),
            ("limits.max_unauth_per_ip", l.max_unauth_per_ip.unwrap_or(1)),
        ];
        if let Some((field, _)) = counts.iter().find(|(_, n)| *n == 0) {
            return Err(ConfigError::Zero { field });
        }
        if l.max_message_bytes > MAX_MESSAGE_BYTES {
            let bytes = l.max_message_bytes;
            return Err(ConfigError::MessageTooLarge { bytes });
        }
        if l.queue_budget_bytes < l.max_queue_bytes {
            return Err(ConfigError::QueueBudgetTooSmall {
                budget: l.queue_budget_bytes,
                queue: l.max_queue_bytes,
            });
        }
        let rates = [
            ("limits.upgrade_rate", l.upgrade_rate),
            ("limits.tls_handshake_rate", l.tls_handshake_rate),
            ("limits.failed_login_rate", l.failed_login_rate),
            ("limits.message_rate", l.message_rate),
        ];
        let usable = |r: &Rate| r.per_sec > 0.0 && r.per_sec.is_finite() && r.burst >= 1.0;
        if let Some((field, _)) =
            (rates.iter()).find(|(_, r)| r.as_ref().is_some_and(|r| !usable(r)))
        {
            return Err(ConfigError::BadRate { field });
        }
        Ok(())
    }
}

/// A network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`) or a single
/// address (`127.0.0.1`, `::1`), host bits cleared; `None` for anything
/// else. (The addresses are std's to parse.)
pub fn parse_network(text: &str) -> Option<IpNet> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let prefix: u8 = match prefix {
        None if ip.is_ipv4() => 32,
        None => 128,
        Some(p) if (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok()?
        }
        Some(_) => return None,
    };
    // why: peers are compared as IPv4 when IPv4-mapped
    // (`Config::is_trusted_proxy`); so is a mapped network.
    let (ip, prefix) = match ip {
        IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
            (ip.to_canonical(), prefix - 96)
        }
        _ => (ip, prefix),
    };
    IpNet::new(ip, prefix).ok().map(|net| net.trunc())
}

/// The fewest bytes a token secret may have: the HMAC-SHA256 output size,
/// the minimum RFC 7518 §3.2 requires for HS256. The same as
/// `auth::jwt::MIN_SECRET_LEN`, which `Gateway::bind` asserts at compile
/// time (this module depends on nothing else in the crate).
pub const MIN_SECRET_LEN: usize = 32;

/// The largest [`Limits::max_message_bytes`] [`Config::validate`] accepts:
/// 4 GiB − 1, the largest size [`parse_size`] gives (and so the largest
/// `--max-message`).
pub const MAX_MESSAGE_BYTES: usize = u32::MAX as usize;

/// Why [`Config::validate`] refused a [`Config`]. Its `Display` says what
/// to change; it never shows a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// [`Config::tls`] is set but the library was built without the cargo
    /// feature `tls`.
    TlsNotBuilt,
    /// [`Config::redis`] is set, but the crate was built without the
    /// `redis` feature.
    RedisNotBuilt,
    /// [`Config::proxy_protocol`] is on but [`Config::trusted_proxies`]
    /// is empty: no peer could send the header.
    ProxyProtocolUntrusted,
    /// [`Config::secrets`] is empty, as in [`Config::default()`].
    NoSecret,
    /// The secret at `index` (from 0) of [`Config::secrets`] is `len`
    /// bytes, under [`MIN_SECRET_LEN`].
    SecretTooShort {
        /// Its place in [`Config::secrets`], from 0.
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// A setting that must be positive is zero; `field` is its path in
    /// [`Config`] (`"limits.max_connections"`).
    Zero {
        /// The setting's path in [`Config`].
        field: &'static str,
    },
    /// A span that must be positive is under 1 ms, the core's resolution;
    /// `field` is its path in [`Config`] (`"ping_interval"`).
    UnderOneMillisecond {
        /// The setting's path in [`Config`].
        field: &'static str,
    },
    /// [`Limits::max_message_bytes`] is over [`MAX_MESSAGE_BYTES`].
    MessageTooLarge {
        /// The value given.
        bytes: usize,
    },
    /// [`Limits::queue_budget_bytes`] is under [`Limits::max_queue_bytes`]:
    /// one connection's queue could hold the whole budget.
    QueueBudgetTooSmall {
        /// [`Limits::queue_budget_bytes`].
        budget: usize,
        /// [`Limits::max_queue_bytes`].
        queue: usize,
    },
    /// A [`Rate`] that could never let anything through: `per_sec` not a
    /// positive number, or `burst` under 1.
    BadRate {
        /// The setting's path in [`Config`].
        field: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::TlsNotBuilt => write!(
                f,
                "TLS was asked for (--tls-cert, --tls-key) but this wsgate was built without \
                 it; build with `--features tls`"
            ),
            ConfigError::RedisNotBuilt => write!(
                f,
                "Redis was asked for (--redis) but this wsgate was built without it; \
                 build with `--features redis`"
            ),
            ConfigError::ProxyProtocolUntrusted => write!(
                f,
                "the PROXY protocol was asked for (--proxy-protocol) but no proxy is trusted; \
                 name the proxies' addresses with --trusted-proxy CIDR"
            ),
            ConfigError::NoSecret => write!(
                f,
                "no token secret: Config::secrets is empty (Config::default() has none); \
                 give at least one secret of {MIN_SECRET_LEN} or more random bytes \
                 (wsgate: WSGATE_SECRET or --secret-file)"
            ),
            ConfigError::SecretTooShort { index, len } => write!(
                f,
                "secret {} is {len} bytes; at least {MIN_SECRET_LEN} are required",
                index + 1
            ),
            ConfigError::Zero { field } => write!(f, "{field} is 0; it must be positive"),
            ConfigError::UnderOneMillisecond { field } => {
                write!(f, "{field} is under 1 ms; it must be at least 1 ms")
            }
            ConfigError::MessageTooLarge { bytes } => write!(
                f,
                "limits.max_message_bytes (--max-message) is {bytes} bytes; \
                 at most {MAX_MESSAGE_BYTES} are allowed"
            ),
            ConfigError::QueueBudgetTooSmall { budget, queue } => write!(
                f,
                "--queue-budget ({budget} bytes) is smaller than --max-queue ({queue} bytes) \
                 (limits.queue_budget_bytes, limits.max_queue_bytes)"
            ),
            ConfigError::BadRate { field } => write!(
                f,
                "{field}: per_sec must be a positive number and burst at least 1 \
                 (None means unlimited)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Where the TLS certificate chain and private key are read from (PEM),
/// at start and again on `SIGHUP` (see README "TLS").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1: ECDSA, RSA or Ed25519).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The pair at these paths.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// Resource limits. Each says its default and what happens when it is hit.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    /// Capacity of the WebSocket read buffer allocated with each
    /// tungstenite context, and the most tungstenite takes from the input
    /// per step. A WebSocket holds a context only while a frame or a
    /// message spans reads (idle ones hold none, and give theirs to one
    /// spare the next reader takes), so this is paid by those WebSockets
    /// and the spare, not by every connection. Default 0: nothing is
    /// allocated until a frame arrives, and the buffer grows to hold the
    /// frame being read (up to the message cap); tungstenite's own default
    /// is 128 KiB. Larger values trade memory for fewer steps on large
    /// messages.
    pub read_buffer_bytes: usize,
    /// Join and leave notices are sent only while a room has at most this
    /// many connections, since N joins to a room of N cost N² deliveries.
    /// Default 100.
    pub presence_limit: usize,
    /// Messages each room keeps for clients that resume (JSON mode,
    /// `since=SEQ`, PROTOCOL §4). Default 100; 0 keeps none. All rooms'
    /// history together is held to a quarter of
    /// [`Limits::queue_budget_bytes`] (the oldest messages go first) and
    /// counts in that budget.
    pub history: usize,
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
    /// TLS handshakes per client IP, with [`Config::tls`]: 20 a second,
    /// bursts of 40 (each costs the event loop a key exchange and a
    /// signature). Past it the connection is closed at accept, without a
    /// word. `None`: unlimited.
    pub tls_handshake_rate: Option<Rate>,
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
            history: 100,
            max_conns_per_user: 16,
            max_conns_per_ip: Some(1024),
            max_unauth_per_ip: Some(64),
            upgrade_rate: Some(Rate {
                per_sec: 10.0,
                burst: 20.0,
            }),
            tls_handshake_rate: Some(Rate {
                per_sec: 20.0,
                burst: 40.0,
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
#[non_exhaustive]
pub struct SecretKey(pub Vec<u8>);

impl SecretKey {
    /// A secret of these bytes (at least [`MIN_SECRET_LEN`] for a valid
    /// config).
    pub fn new(bytes: impl Into<Vec<u8>>) -> SecretKey {
        SecretKey(bytes.into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey([redacted; {} bytes])", self.0.len())
    }
}

/// A web origin: scheme, host and port, compared exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

impl Origin {
    /// The origin as browsers write it (the HTML standard's ASCII
    /// serialization): the scheme's default port left out. What CORS'
    /// `Access-Control-Allow-Origin` must equal.
    pub fn serialized(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            format!("{}://{}", self.scheme, self.host)
        } else {
            self.to_string()
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
    fn networks_parse_as_cidr_or_one_address() {
        for (text, net) in [
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("127.0.0.1", "127.0.0.1/32"),
            ("::1", "::1/128"),
            ("2001:db8::7/32", "2001:db8::/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::ffff:127.0.0.1", "127.0.0.1/32"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ] {
            assert_eq!(parse_network(text).unwrap().to_string(), net, "{text}");
        }
        for bad in [
            "",
            "nginx",
            "10.0.0.0/",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "[::1]",
            "localhost",
        ] {
            assert_eq!(parse_network(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_proxy_protocol_needs_a_trusted_proxy() {
        let mut c = Config {
            secrets: vec![SecretKey(vec![7; MIN_SECRET_LEN])],
            proxy_protocol: true,
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e, ConfigError::ProxyProtocolUntrusted);
        assert!(e.to_string().contains("--trusted-proxy"), "{e}");
        c.trusted_proxies.push(parse_network("10.0.0.0/8").unwrap());
        assert_eq!(c.validate(), Ok(()));
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

    /// A valid config: the default with one secret of the minimum length.
    fn valid() -> Config {
        Config {
            secrets: vec![SecretKey(vec![7; MIN_SECRET_LEN])],
            ..Config::default()
        }
    }

    #[test]
    fn the_default_with_a_secret_is_valid() {
        assert_eq!(valid().validate(), Ok(()));
        let mut c = valid();
        c.limits.max_conns_per_ip = None;
        c.limits.max_unauth_per_ip = None;
        c.limits.upgrade_rate = None;
        c.limits.failed_login_rate = None;
        c.limits.message_rate = None;
        c.limits.presence_limit = 0;
        c.limits.max_body_bytes = 0;
        c.limits.max_tickets = 0;
        c.limits.max_pending_logins = 0;
        c.limits.drain_timeout = Duration::ZERO;
        c.limits.slow_consumer_timeout = Duration::ZERO;
        c.limits.close_timeout = Duration::ZERO;
        c.token_leeway = Duration::ZERO;
        c.expiry_warning = Duration::ZERO;
        c.limits.max_message_bytes = MAX_MESSAGE_BYTES;
        c.limits.queue_budget_bytes = c.limits.max_queue_bytes;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_default_has_no_secret_and_the_error_says_what_to_do() {
        let e = Config::default().validate().unwrap_err();
        assert_eq!(e, ConfigError::NoSecret);
        let text = e.to_string();
        for hint in ["Config::secrets", "32", "WSGATE_SECRET", "--secret-file"] {
            assert!(text.contains(hint), "{text}");
        }
    }

    #[test]
    fn a_short_secret_is_refused_without_showing_it() {
        let mut c = valid();
        c.secrets
            .push(SecretKey(b"only-31-bytes-of-secret-0123456".to_vec()));
        let e = c.validate().unwrap_err();
        assert_eq!(e, ConfigError::SecretTooShort { index: 1, len: 31 });
        let text = e.to_string();
        assert_eq!(text, "secret 2 is 31 bytes; at least 32 are required");
    }

    #[test]
    fn zeros_that_stop_the_server_are_refused() {
        type Tweak = fn(&mut Config);
        let cases: [(&str, Tweak); 12] = [
            ("limits.max_connections", |c| c.limits.max_connections = 0),
            ("limits.max_head_bytes", |c| c.limits.max_head_bytes = 0),
            ("limits.max_headers", |c| c.limits.max_headers = 0),
            ("limits.max_message_bytes", |c| {
                c.limits.max_message_bytes = 0
            }),
            ("limits.max_queue_bytes", |c| c.limits.max_queue_bytes = 0),
            ("limits.queue_budget_bytes", |c| {
                c.limits.queue_budget_bytes = 0
            }),
            ("limits.max_http_queue_bytes", |c| {
                c.limits.max_http_queue_bytes = 0
            }),
            ("limits.max_conns_per_user", |c| {
                c.limits.max_conns_per_user = 0
            }),
            ("limits.max_tracked_ips", |c| c.limits.max_tracked_ips = 0),
            ("limits.max_sessions_per_user", |c| {
                c.limits.max_sessions_per_user = 0
            }),
            ("limits.max_conns_per_ip", |c| {
                c.limits.max_conns_per_ip = Some(0)
            }),
            ("limits.max_unauth_per_ip", |c| {
                c.limits.max_unauth_per_ip = Some(0)
            }),
        ];
        for (field, tweak) in cases {
            let mut c = valid();
            tweak(&mut c);
            let e = c.validate().unwrap_err();
            assert_eq!(e, ConfigError::Zero { field }, "{field}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }

    /// The core counts time in milliseconds: a span under 1 ms would be
    /// zero there (a ping interval of 0 pings in a loop).
    #[test]
    fn spans_under_a_millisecond_are_refused() {
        type Tweak = fn(&mut Config, Duration);
        let cases: [(&str, Tweak); 5] = [
            ("token_ttl", |c, d| c.token_ttl = d),
            ("session_ttl", |c, d| c.session_ttl = d),
            ("session_idle", |c, d| c.session_idle = d),
            ("ping_interval", |c, d| c.ping_interval = d),
            ("limits.handshake_timeout", |c, d| {
                c.limits.handshake_timeout = d
            }),
        ];
        for (field, tweak) in cases {
            for short in [Duration::ZERO, Duration::from_micros(999)] {
                let mut c = valid();
                tweak(&mut c, short);
                let e = c.validate().unwrap_err();
                assert_eq!(e, ConfigError::UnderOneMillisecond { field }, "{field}");
                assert!(e.to_string().starts_with(field), "{e}");
            }
            let mut c = valid();
            tweak(&mut c, Duration::from_millis(1));
            assert_eq!(c.validate(), Ok(()), "{field} at 1 ms");
        }
    }

    #[test]
    fn a_huge_message_limit_is_refused() {
        let mut c = valid();
        c.limits.max_message_bytes = MAX_MESSAGE_BYTES + 1;
        // why: on a 32-bit target no usize is over the maximum.
        if c.limits.max_message_bytes > MAX_MESSAGE_BYTES {
            let e = c.validate().unwrap_err();
            assert_eq!(e, ConfigError::MessageTooLarge { bytes: 1 << 32 });
            assert!(e.to_string().contains("--max-message"), "{e}");
        }
    }

    #[test]
    fn the_budget_must_hold_one_queue() {
        let mut c = valid();
        c.limits.queue_budget_bytes = c.limits.max_queue_bytes - 1;
        let e = c.validate().unwrap_err();
        assert_eq!(
            e,
            ConfigError::QueueBudgetTooSmall {
                budget: (1 << 20) - 1,
                queue: 1 << 20
            }
        );
        assert_eq!(
            e.to_string(),
            "--queue-budget (1048575 bytes) is smaller than --max-queue (1048576 bytes) \
             (limits.queue_budget_bytes, limits.max_queue_bytes)"
        );
    }

    #[test]
    fn rates_that_let_nothing_through_are_refused() {
        for (per_sec, burst) in [
            (0.0, 5.0),
            (-1.0, 5.0),
            (f64::NAN, 5.0),
            (f64::INFINITY, 5.0),
            (1.0, 0.5),
            (1.0, f64::NAN),
        ] {
            let mut c = valid();
            c.limits.message_rate = Some(Rate { per_sec, burst });
            let e = c.validate().unwrap_err();
            let field = "limits.message_rate";
            assert_eq!(e, ConfigError::BadRate { field }, "{per_sec} {burst}");
        }
        let mut c = valid();
        c.limits.upgrade_rate = Some(Rate {
            per_sec: 0.001,
            burst: 1.0,
        });
        assert_eq!(c.validate(), Ok(()));
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
