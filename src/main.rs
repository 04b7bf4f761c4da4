//! `wsgate`: flags and `WSGATE_*` variables → a validated [`Config`] → run.
//!
//! Every option is declared once, in [`OPTIONS`]: its flag, the name of its
//! value, its environment variable, the default `--help` shows, its help
//! text and its [`Kind`] (how the text is parsed and where it lands).
//! `--help`, the flag parser and the variable look-up all come from that
//! table. A flag wins over its variable, and the variable is read only when
//! the flag is absent; an empty variable counts as unset (an empty path is
//! an error), and one that is not UTF-8 is an error.
//!
//! After the table, start-up loads what is not a single setting: the users
//! file (without one, the demo users, on loopback addresses only) and the
//! secrets (`WSGATE_SECRET` or `--secret-file`, not both; without either,
//! a random secret and a warning). Then [`Config::validate`] has the last
//! word, and nothing here repeats its checks.
//!
//! Exit codes: 0 after a clean stop, 1 when the server fails at run time
//! (cannot bind, say), 2 for a usage or configuration error.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::Duration;

use wsgate::auth::password::hash_password;
use wsgate::auth::users::Users;
use wsgate::auth::valid_role;
use wsgate::config::{
    Config, MIN_SECRET_LEN, Origin, PerUserPolicy, Rate, RedisUrl, SecretKey, TlsFiles,
    parse_duration, parse_network, parse_size,
};
use wsgate::shell::Gateway;

/// What the options fill in: the library's [`Config`], and what only the
/// binary uses.
#[derive(Debug)]
struct Settings {
    config: Config,
    users: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    secret: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log: log::LevelFilter,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: Config::default(),
            users: None,
            secret_file: None,
            secret: None,
            tls_cert: None,
            tls_key: None,
            log: log::LevelFilter::Info,
        }
    }
}

/// Where an option's value goes (each fn names one field of [`Settings`]),
/// and how its text is parsed.
enum Kind {
    /// A duration ([`parse_duration`]), not zero.
    Duration(fn(&mut Settings) -> &mut Duration),
    /// A size in bytes ([`parse_size`]).
    Size(fn(&mut Settings) -> &mut usize),
    /// A positive whole number.
    Count(fn(&mut Settings) -> &mut usize),
    /// A whole number; `0` means no limit (`None`).
    Limit(fn(&mut Settings) -> &mut Option<usize>),
    /// `N` per `per_secs` seconds, bursts of `burst` × N (at least 1);
    /// `0` means no limit (`None`).
    Rate {
        field: fn(&mut Settings) -> &mut Option<Rate>,
        per_secs: f64,
        burst: f64,
    },
    /// A switch: the flag takes no value; the variable is on when `1`,
    /// `true` or `yes`.
    Switch(fn(&mut Settings) -> &mut bool),
    /// Any text.
    Text(fn(&mut Settings) -> &mut Option<String>),
    /// A path (not necessarily UTF-8; not empty).
    Path(fn(&mut Settings) -> &mut Option<PathBuf>),
    /// One item per flag, the flag repeatable; the variable holds a
    /// comma-separated list.
    Each(fn(&mut Settings, &str) -> Result<(), String>),
    /// Parsed and set by its own function.
    Custom(fn(&mut Settings, &str) -> Result<(), String>),
}

/// One option, declared once.
struct Opt {
    /// The long flag without `--`; empty for a variable with no flag.
    flag: &'static str,
    /// The value's name in `--help` (`DURATION`, `SIZE`, `N`…); empty for
    /// a switch.
    value: &'static str,
    /// The environment variable, read when the flag is absent: `WSGATE_`
    /// and the flag upper-cased with `-` → `_`, except
    /// `WSGATE_ALLOWED_ORIGINS` and `WSGATE_TRUSTED_PROXIES` (lists) and
    /// `WSGATE_SECRET` (no flag: a secret in the command line would show
    /// in `ps`).
    env: &'static str,
    /// The default as `--help` shows it: a value the option would accept
    /// when it is one (a test checks that it is the real default), else a
    /// word or two.
    default: &'static str,
    /// The help text; `--help` wraps it.
    help: &'static str,
    kind: Kind,
}

/// The most `--history` takes: more is taken for a typo (the bytes are
/// bounded by the queue budget either way).
const MAX_HISTORY: usize = 100_000;

/// Every option, in `--help` order.
static OPTIONS: &[Opt] = &[
    Opt {
        flag: "listen",
        value: "ADDR",
        env: "WSGATE_LISTEN",
        default: "127.0.0.1:8080",
        help: "address to listen on",
        kind: Kind::Custom(|s, v| {
            s.config.listen = v.parse().map_err(|_| {
                format!(
                    "not an address: {v:?}: give an IP address and a port, such as \
                     127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 (host names are not looked up)"
                )
            })?;
            Ok(())
        }),
    },
    Opt {
        flag: "users",
        value: "FILE",
        env: "WSGATE_USERS",
        default: "demo users",
        help: "users file, NAME:ROLE:HASH a line; the demo users alice/wonderland and \
               bob/builder serve loopback addresses only",
        kind: Kind::Path(|s| &mut s.users),
    },
    Opt {
        flag: "secret-file",
        value: "PATH",
        env: "WSGATE_SECRET_FILE",
        default: "random per run",
        help: "token secrets, one a line, each at least 32 bytes: the first signs, all verify",
        kind: Kind::Path(|s| &mut s.secret_file),
    },
    Opt {
        flag: "",
        value: "",
        env: "WSGATE_SECRET",
        default: "random per run",
        help: "the secret itself, not with --secret-file (no flag: it would show in ps)",
        kind: Kind::Text(|s| &mut s.secret),
    },
    Opt {
        flag: "allowed-origin",
        value: "ORIGIN",
        env: "WSGATE_ALLOWED_ORIGINS",
        default: "none",
        help: "extra origin for cookie upgrades, repeatable",
        kind: Kind::Each(|s, v| {
            let origin = Origin::parse(v).ok_or_else(|| {
                format!(
                    "not an origin: {v:?}: give scheme://host[:port], no path and no \
                     trailing /, such as https://chat.example or http://127.0.0.1:8080"
                )
            })?;
            s.config.allowed_origins.push(origin);
            Ok(())
        }),
    },
    Opt {
        flag: "token-ttl",
        value: "DURATION",
        env: "WSGATE_TOKEN_TTL",
        default: "15m",
        help: "lifetime of issued tokens",
        kind: Kind::Duration(|s| &mut s.config.token_ttl),
    },
    Opt {
        flag: "issuer",
        value: "ISS",
        env: "WSGATE_ISSUER",
        default: "unchecked",
        help: "required `iss` claim",
        kind: Kind::Text(|s| &mut s.config.issuer),
    },
    Opt {
        flag: "audience",
        value: "AUD",
        env: "WSGATE_AUDIENCE",
        default: "none",
        help: "required `aud` claim; without it, tokens carrying any `aud` are refused",
        kind: Kind::Text(|s| &mut s.config.audience),
    },
    Opt {
        flag: "session-ttl",
        value: "DURATION",
        env: "WSGATE_SESSION_TTL",
        default: "8h",
        help: "absolute session lifetime",
        kind: Kind::Duration(|s| &mut s.config.session_ttl),
    },
    Opt {
        flag: "session-idle",
        value: "DURATION",
        env: "WSGATE_SESSION_IDLE",
        default: "30m",
        help: "idle session timeout",
        kind: Kind::Duration(|s| &mut s.config.session_idle),
    },
    Opt {
        flag: "tls-cert",
        value: "FILE",
        env: "WSGATE_TLS_CERT",
        default: "none",
        help: "TLS certificate chain (PEM, leaf first): every endpoint is HTTPS and /ws is \
               WSS; with --tls-key; SIGHUP reloads both (build with --features tls)",
        kind: Kind::Path(|s| &mut s.tls_cert),
    },
    Opt {
        flag: "tls-key",
        value: "FILE",
        env: "WSGATE_TLS_KEY",
        default: "none",
        help: "TLS private key (PEM: PKCS#8, PKCS#1 or SEC1; ECDSA, RSA or Ed25519)",
        kind: Kind::Path(|s| &mut s.tls_key),
    },
    Opt {
        flag: "insecure-cookie",
        value: "",
        env: "WSGATE_INSECURE_COOKIE",
        default: "off",
        help: "cookie without Secure/__Host- for plain HTTP",
        kind: Kind::Switch(|s| &mut s.config.insecure_cookie),
    },
    Opt {
        flag: "no-ui",
        value: "",
        env: "WSGATE_NO_UI",
        default: "off",
        help: "do not serve the chat page at /",
        kind: Kind::Switch(|s| &mut s.config.no_ui),
    },
    Opt {
        flag: "redis",
        value: "URL",
        env: "WSGATE_REDIS",
        default: "none",
        help: "redis://[user:password@]host:port/db: processes sharing it form one chat \
               (needs a shared --secret-file; build with --features redis)",
        kind: Kind::Custom(|s, v| {
            // why: a build without the feature keeps no URL parser (the
            // size budget); it says what to do instead.
            if !cfg!(feature = "redis") {
                return Err(
                    "this wsgate was built without Redis; build with `--features redis`".into(),
                );
            }
            s.config.redis = Some(RedisUrl::parse(v).ok_or_else(|| {
                "not a Redis URL (say redis://127.0.0.1:6379/0, or \
                 redis://:PASSWORD@host:6379/0)"
                    .to_string()
            })?);
            Ok(())
        }),
    },
    Opt {
        flag: "reuse-port",
        value: "",
        env: "WSGATE_REUSE_PORT",
        default: "off",
        help: "listen with SO_REUSEPORT: processes on one host share the port",
        kind: Kind::Switch(|s| &mut s.config.reuse_port),
    },
    Opt {
        flag: "trusted-proxy",
        value: "CIDR",
        env: "WSGATE_TRUSTED_PROXIES",
        default: "none",
        help: "a proxy whose X-Forwarded-For (and PROXY header) names the client, repeatable",
        kind: Kind::Each(|s, v| {
            let net = parse_network(v).ok_or_else(|| {
                format!("not an address or network: {v:?} (say 10.0.0.0/8, 127.0.0.1 or ::1/128)")
            })?;
            s.config.trusted_proxies.push(net);
            Ok(())
        }),
    },
    Opt {
        flag: "proxy-protocol",
        value: "",
        env: "WSGATE_PROXY_PROTOCOL",
        default: "off",
        help: "trusted proxies send a PROXY protocol header (v1 or v2) first",
        kind: Kind::Switch(|s| &mut s.config.proxy_protocol),
    },
    Opt {
        flag: "max-connections",
        value: "N",
        env: "WSGATE_MAX_CONNECTIONS",
        default: "10000",
        help: "open connections of any kind",
        kind: Kind::Count(|s| &mut s.config.limits.max_connections),
    },
    Opt {
        flag: "max-conns-per-user",
        value: "N",
        env: "WSGATE_MAX_CONNS_PER_USER",
        default: "16",
        help: "live WebSockets per user",
        kind: Kind::Count(|s| &mut s.config.limits.max_conns_per_user),
    },
    Opt {
        flag: "max-conns-per-ip",
        value: "N",
        env: "WSGATE_MAX_CONNS_PER_IP",
        default: "1024",
        help: "connections per client address (IPv6: per /64)",
        kind: Kind::Limit(|s| &mut s.config.limits.max_conns_per_ip),
    },
    Opt {
        flag: "max-unauth-conns-per-ip",
        value: "N",
        env: "WSGATE_MAX_UNAUTH_CONNS_PER_IP",
        default: "64",
        help: "connections per client address not yet authenticated (before the 101)",
        kind: Kind::Limit(|s| &mut s.config.limits.max_unauth_per_ip),
    },
    Opt {
        flag: "max-message",
        value: "SIZE",
        env: "WSGATE_MAX_MESSAGE",
        default: "64KiB",
        help: "largest incoming WebSocket message",
        kind: Kind::Size(|s| &mut s.config.limits.max_message_bytes),
    },
    Opt {
        flag: "max-queue",
        value: "SIZE",
        env: "WSGATE_MAX_QUEUE",
        default: "1MiB",
        help: "a WebSocket's queue limit: over it for --slow-consumer-timeout means close 1013",
        kind: Kind::Size(|s| &mut s.config.limits.max_queue_bytes),
    },
    Opt {
        flag: "slow-consumer-timeout",
        value: "DURATION",
        env: "WSGATE_SLOW_CONSUMER_TIMEOUT",
        default: "5s",
        help: "how long a queue may stay over --max-queue",
        kind: Kind::Duration(|s| &mut s.config.limits.slow_consumer_timeout),
    },
    Opt {
        flag: "queue-budget",
        value: "SIZE",
        env: "WSGATE_QUEUE_BUDGET",
        default: "256MiB",
        help: "all queued bytes together, at least --max-queue; at it, input waits (backpressure)",
        kind: Kind::Size(|s| &mut s.config.limits.queue_budget_bytes),
    },
    Opt {
        flag: "per-user-policy",
        value: "P",
        env: "WSGATE_PER_USER_POLICY",
        default: "reject-newest",
        help: "past --max-conns-per-user: reject-newest (429) or evict-oldest (4409)",
        kind: Kind::Custom(|s, v| {
            s.config.per_user_policy = match v {
                "reject-newest" => PerUserPolicy::RejectNewest,
                "evict-oldest" => PerUserPolicy::EvictOldest,
                _ => return Err(format!("reject-newest or evict-oldest, not {v:?}")),
            };
            Ok(())
        }),
    },
    Opt {
        flag: "presence-limit",
        value: "N",
        env: "WSGATE_PRESENCE_LIMIT",
        default: "100",
        help: "join/leave notices up to this room size",
        kind: Kind::Count(|s| &mut s.config.limits.presence_limit),
    },
    Opt {
        flag: "history",
        value: "N",
        env: "WSGATE_HISTORY",
        default: "100",
        help: "messages each room keeps for clients that resume (JSON mode, since=SEQ); 0: none",
        kind: Kind::Custom(|s, v| {
            s.config.limits.history = v
                .parse()
                .ok()
                .filter(|&n| n <= MAX_HISTORY)
                .ok_or_else(|| format!("not a number from 0 to {MAX_HISTORY}: {v:?}"))?;
            Ok(())
        }),
    },
    Opt {
        flag: "send-roles",
        value: "LIST",
        env: "WSGATE_SEND_ROLES",
        default: "every role but viewer",
        help: "comma-separated roles that may send",
        kind: Kind::Custom(|s, v| {
            let roles: Vec<String> = (v.split(',').map(str::trim))
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect();
            if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
                return Err(format!("not a role: {bad:?}"));
            }
            s.config.send_roles = Some(roles);
            Ok(())
        }),
    },
    Opt {
        flag: "allow-password-auth",
        value: "",
        env: "WSGATE_ALLOW_PASSWORD_AUTH",
        default: "off",
        help: "accept Basic auth and ?username=&password= on /ws",
        kind: Kind::Switch(|s| &mut s.config.allow_password_auth),
    },
    Opt {
        flag: "ping-interval",
        value: "DURATION",
        env: "WSGATE_PING_INTERVAL",
        default: "30s",
        help: "ping every connection this often",
        kind: Kind::Duration(|s| &mut s.config.ping_interval),
    },
    Opt {
        flag: "upgrade-rate",
        value: "N",
        env: "WSGATE_UPGRADE_RATE",
        default: "10",
        help: "upgrades per second per client IP (bursts of 2N)",
        kind: Kind::Rate {
            field: |s| &mut s.config.limits.upgrade_rate,
            per_secs: 1.0,
            burst: 2.0,
        },
    },
    Opt {
        flag: "tls-handshake-rate",
        value: "N",
        env: "WSGATE_TLS_HANDSHAKE_RATE",
        default: "20",
        help: "TLS handshakes per second per client IP (bursts of 2N); past it a connection \
               is closed at accept",
        kind: Kind::Rate {
            field: |s| &mut s.config.limits.tls_handshake_rate,
            per_secs: 1.0,
            burst: 2.0,
        },
    },
    Opt {
        flag: "login-failures",
        value: "N",
        env: "WSGATE_LOGIN_FAILURES",
        default: "10",
        help: "failed logins per minute per client IP (bursts of N)",
        kind: Kind::Rate {
            field: |s| &mut s.config.limits.failed_login_rate,
            per_secs: 60.0,
            burst: 1.0,
        },
    },
    Opt {
        flag: "message-rate",
        value: "N",
        env: "WSGATE_MESSAGE_RATE",
        default: "20",
        help: "chat messages per second per connection (bursts of 2N)",
        kind: Kind::Rate {
            field: |s| &mut s.config.limits.message_rate,
            per_secs: 1.0,
            burst: 2.0,
        },
    },
    Opt {
        flag: "drain-timeout",
        value: "DURATION",
        env: "WSGATE_DRAIN_TIMEOUT",
        default: "5s",
        help: "on SIGTERM/SIGINT, time to flush queues",
        kind: Kind::Duration(|s| &mut s.config.limits.drain_timeout),
    },
    Opt {
        flag: "echo",
        value: "",
        env: "WSGATE_ECHO",
        default: "off",
        help: "conformance testing only: echo every message to its sender instead of chatting",
        kind: Kind::Switch(|s| &mut s.config.echo),
    },
    Opt {
        flag: "log",
        value: "LEVEL",
        env: "WSGATE_LOG",
        default: "info",
        help: "error, warn, info, debug or trace",
        kind: Kind::Custom(|s, v| {
            s.log = v.parse().map_err(|_| {
                format!("not a level: {v:?}: give error, warn, info, debug or trace")
            })?;
            Ok(())
        }),
    },
];

const HELP_HEAD: &str = "\
wsgate — a WebSocket chat server that authenticates before it upgrades

USAGE:
    wsgate [OPTIONS]
    wsgate hash-password      read a password on stdin, print a users-file hash

OPTIONS (each also read from the environment variable shown; a flag wins):
";

const HELP_TAIL: &str = "    -h, --help              print this help
    -V, --version           print the version

DURATION is a whole number with an optional unit s, m, h or d (900, 15m, 8h).
SIZE is a whole number of bytes with an optional unit KiB, MiB or GiB
(65536, 64KiB, 16MiB).
";

/// `--help`: [`HELP_HEAD`], each of [`OPTIONS`] wrapped to 80 columns,
/// [`HELP_TAIL`].
fn help() -> String {
    const INDENT: usize = 28;
    const WIDTH: usize = 80;
    let mut out = String::from(HELP_HEAD);
    for o in OPTIONS {
        let left = match (o.flag, o.value) {
            ("", _) => o.env.to_string(),
            (flag, "") => format!("--{flag}"),
            (flag, value) => format!("--{flag} {value}"),
        };
        let var = match o.kind {
            _ if o.flag.is_empty() => String::new(),
            Kind::Switch(_) => format!("[{}=1]", o.env),
            Kind::Each(_) => format!("[{}, comma-separated]", o.env),
            _ => format!("[{}]", o.env),
        };
        let default = match o.kind {
            Kind::Limit(_) | Kind::Rate { .. } => format!("(default {}; 0 = unlimited)", o.default),
            _ => format!("(default {})", o.default),
        };
        out.push_str("    ");
        out.push_str(&left);
        let mut col = 4 + left.chars().count();
        let words = o.help.split(' ').chain([var.as_str(), default.as_str()]);
        for (i, word) in words.filter(|w| !w.is_empty()).enumerate() {
            let len = word.chars().count();
            let full = if i == 0 {
                col >= INDENT
            } else {
                col + 1 + len > WIDTH
            };
            if full {
                out.push('\n');
                col = 0;
            }
            let pad = if col < INDENT { INDENT - col } else { 1 };
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(word);
            col += pad + len;
        }
        out.push('\n');
    }
    out.push_str(HELP_TAIL);
    out
}

impl Kind {
    /// Parses `value` and sets it in `s`; the error names no option (the
    /// caller prefixes the flag or the variable).
    fn apply(&self, s: &mut Settings, value: &OsStr, from_var: bool) -> Result<(), String> {
        if let Kind::Path(field) = self {
            if value.is_empty() {
                return Err("an empty path".into());
            }
            *field(s) = Some(PathBuf::from(value));
            return Ok(());
        }
        let v = value.to_str().ok_or("not valid UTF-8")?;
        match *self {
            Kind::Duration(field) => {
                *field(s) =
                    parse_duration(v, false).ok_or_else(|| match parse_duration(v, true) {
                        Some(_) => format!("{v:?}: must be more than zero"),
                        None => format!(
                            "not a duration: {v:?}: give a whole number of seconds, or one with a \
                         unit s, m, h or d, such as 900, 90s, 15m, 8h or 1d"
                        ),
                    })?
            }
            Kind::Size(field) => {
                *field(s) = parse_size(v).ok_or_else(|| {
                    format!("not a size (bytes, or with KiB, MiB, GiB; at most 4GiB): {v:?}")
                })?
            }
            Kind::Count(field) => match v.parse::<usize>() {
                Ok(n) if n > 0 => *field(s) = n,
                _ => return Err(format!("expected a positive whole number, got {v:?}")),
            },
            Kind::Limit(field) => match v.parse::<usize>() {
                Ok(n) => *field(s) = Some(n).filter(|&n| n > 0),
                Err(_) => return Err(format!("expected a whole number, got {v:?}")),
            },
            Kind::Rate {
                field,
                per_secs,
                burst,
            } => {
                let n = v
                    .parse::<u32>()
                    .map_err(|_| format!("expected a whole number, got {v:?}"))?;
                *field(s) = (n > 0)
                    .then(|| Rate::new(f64::from(n) / per_secs, (f64::from(n) * burst).max(1.0)));
            }
            Kind::Switch(field) => *field(s) = !from_var || matches!(v, "1" | "true" | "yes"),
            Kind::Text(field) => *field(s) = Some(v.to_string()),
            Kind::Each(set) if from_var => {
                for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    set(s, item)?;
                }
            }
            Kind::Each(set) | Kind::Custom(set) => set(s, v)?,
            Kind::Path(_) => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Help,
    Version,
    HashPassword,
    /// Run, with these flags given: (index into [`OPTIONS`], value), in
    /// order (a switch's value is empty).
    Run(Vec<(usize, OsString)>),
}

fn parse_args(mut parser: lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut given = Vec::new();
    let mut hash_password = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long(name) => {
                let found = OPTIONS
                    .iter()
                    .position(|o| !o.flag.is_empty() && o.flag == name);
                let Some(i) = found else {
                    return Err(arg.unexpected());
                };
                let value = if OPTIONS[i].value.is_empty() {
                    OsString::new()
                } else {
                    let value = parser.value()?;
                    // why: `--users --listen ADDR` would read `--listen` as
                    // the file and then stumble on ADDR; no value here
                    // starts with `--`.
                    if value.as_encoded_bytes().starts_with(b"--") {
                        return Err(lexopt::Error::Custom(
                            format!(
                                "--{} needs a value ({}), not the flag {}",
                                OPTIONS[i].flag,
                                OPTIONS[i].value,
                                value.to_string_lossy()
                            )
                            .into(),
                        ));
                    }
                    value
                };
                given.push((i, value));
            }
            Value(v) if v == "hash-password" && !hash_password => hash_password = true,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(if hash_password {
        Command::HashPassword
    } else {
        Command::Run(given)
    })
}

/// Applies every option: its flags in order when given, else its variable
/// (`var` reads one; an empty one counts as unset, but for a path it is an
/// error).
fn settings(
    given: &[(usize, OsString)],
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Settings, String> {
    let mut s = Settings::default();
    for (i, o) in OPTIONS.iter().enumerate() {
        let mut flagged = false;
        for (_, value) in given.iter().filter(|(j, _)| *j == i) {
            flagged = true;
            (o.kind.apply(&mut s, value, false)).map_err(|e| format!("--{}: {e}", o.flag))?;
        }
        if flagged {
            continue;
        }
        // why: an empty path variable stays an error (fail closed), not a
        // fall-back to the demo users or a random secret.
        let path = matches!(o.kind, Kind::Path(_));
        if let Some(value) = var(o.env).filter(|v| path || !v.is_empty()) {
            (o.kind.apply(&mut s, &value, true)).map_err(|e| format!("{}: {e}", o.env))?;
        }
    }
    Ok(s)
}

/// The users file, or the demo users when there is none (loopback only).
fn load_users(path: Option<&Path>, listen: SocketAddr) -> Result<Users, String> {
    let Some(path) = path else {
        if !listen.ip().is_loopback() {
            return Err(format!(
                "the demo users (no --users) only serve loopback addresses; \
                 give --users FILE to listen on {listen}"
            ));
        }
        log::warn!("no --users: serving the demo users alice/wonderland and bob/builder");
        return Ok(Users::demo());
    };
    let err = |e: &dyn std::fmt::Display| format!("--users {}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(&e))?;
    let users = Users::parse(&text).map_err(|e| err(&e))?;
    if users.is_empty() {
        return Err(err(&"no users"));
    }
    Ok(users)
}

/// The secrets, and whether they are one random secret made for this run.
fn load_secrets(
    file: Option<&Path>,
    var: Option<String>,
) -> Result<(Vec<SecretKey>, bool), String> {
    match (file, var) {
        (Some(_), Some(_)) => {
            Err("give the secret by WSGATE_SECRET or --secret-file, not both".into())
        }
        (Some(path), None) => {
            let text = std::fs::read(path)
                .map_err(|e| format!("--secret-file {}: {e}", path.display()))?;
            let lines: Vec<&[u8]> = (text.split(|&b| b == b'\n'))
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .collect();
            // Empty lines at the end are only the file's end.
            let used = lines
                .iter()
                .rposition(|l| !l.is_empty())
                .map_or(0, |i| i + 1);
            let mut secrets = Vec::new();
            for (i, line) in lines[..used].iter().enumerate() {
                // why: the first line signs, and apps mint with the first
                // line: an empty one (a stray newline at the top) would
                // make the server sign with another.
                if line.is_empty() {
                    return Err(format!(
                        "--secret-file {}: line {} is empty; every line is one secret \
                         (the first signs), so remove the empty lines",
                        path.display(),
                        i + 1
                    ));
                }
                if line.len() < MIN_SECRET_LEN {
                    return Err(format!(
                        "--secret-file {}: line {} is {} bytes; a secret needs at least \
                         {MIN_SECRET_LEN} (each line is one secret, its bytes as they are: \
                         not decoded from base64 or hex)",
                        path.display(),
                        i + 1,
                        line.len()
                    ));
                }
                secrets.push(SecretKey::new(*line));
            }
            if secrets.is_empty() {
                return Err(format!("--secret-file {}: no secret in it", path.display()));
            }
            Ok((secrets, false))
        }
        (None, Some(var)) if var.len() < MIN_SECRET_LEN => Err(format!(
            "WSGATE_SECRET is {} bytes; a secret needs at least {MIN_SECRET_LEN} (its bytes as \
             they are: not decoded from base64 or hex)",
            var.len()
        )),
        (None, Some(var)) => Ok((vec![SecretKey::new(var)], false)),
        (None, None) => {
            let mut key = vec![0u8; MIN_SECRET_LEN];
            wsgate::auth::random_bytes(&mut key);
            Ok((vec![SecretKey::new(key)], true))
        }
    }
}

/// Users and secrets loaded, then [`Config::validate`]: the server starts
/// only from a valid [`Config`]. Also says whether the secret is random.
fn configure(s: Settings) -> Result<(Config, Users, bool), String> {
    let mut config = s.config;
    config.tls = match (s.tls_cert, s.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles::new(cert, key)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let users = load_users(s.users.as_deref(), config.listen)?;
    let (secrets, random_secret) = load_secrets(s.secret_file.as_deref(), s.secret)?;
    if random_secret && config.redis.is_some() {
        return Err(
            "with --redis every process needs the same token secret: give \
                    --secret-file or WSGATE_SECRET"
                .into(),
        );
    }
    config.secrets = secrets;
    config.validate().map_err(|e| e.to_string())?;
    Ok((config, users, random_secret))
}

/// The logger: one line a record on stderr, with a UTC timestamp.
///
/// Lines logged on the event loop's thread (this program's main thread)
/// are kept and written together when the loop flushes the logger, which
/// it does before it writes to sockets and before it waits: a busy loop
/// pays a `write()` or two a turn, not one a line (stderr is unbuffered,
/// and a line formatted straight into it costs a `write()` per piece).
/// Past [`LOG_BUFFER`] bytes they are written at once, so memory stays
/// bounded. Lines from
/// any other thread (the password checker, the Redis link) are written at
/// once, one `write()` each: nothing flushes for them.
struct StderrLogger {
    kept: Mutex<Kept>,
}

/// The event loop's lines not yet written, and their time stamp's cache.
struct Kept {
    // why: a String, so that lines are formatted into it directly (an
    // `io::Write` target costs an adapter call a piece).
    bytes: String,
    stamp: Stamp,
}

/// What the event loop's lines may hold before they are written anyway.
const LOG_BUFFER: usize = 32 * 1024;

static LOGGER: StderrLogger = StderrLogger {
    kept: Mutex::new(Kept {
        bytes: String::new(),
        stamp: Stamp::new(),
    }),
};

thread_local! {
    /// This thread's lines wait for [`log::Log::flush`] (the event loop's).
    static KEEP_LINES: Cell<bool> = const { Cell::new(false) };
}

/// A line's time, [`Rfc3339`], with the date and the second formatted once
/// a second rather than once a line.
struct Stamp {
    second: u64,
    /// `YYYY-MM-DDTHH:MM:SS` of `second`.
    text: String,
}

impl Stamp {
    const fn new() -> Stamp {
        Stamp {
            second: u64::MAX,
            text: String::new(),
        }
    }

    /// Appends `now` (since the Unix epoch) as [`Rfc3339`] does.
    fn put(&mut self, out: &mut String, now: Duration) {
        if now.as_secs() != self.second {
            self.second = now.as_secs();
            self.text = Rfc3339(Duration::from_secs(self.second)).to_string();
            // Without `.000Z`.
            self.text.truncate(self.text.len() - 5);
        }
        let ms = now.subsec_millis();
        out.push_str(&self.text);
        for c in [
            '.',
            char::from(b'0' + (ms / 100) as u8),
            char::from(b'0' + (ms / 10 % 10) as u8),
            char::from(b'0' + (ms % 10) as u8),
            'Z',
        ] {
            out.push(c);
        }
    }

    /// Appends the whole line for `record`: time, level, message.
    fn line(&mut self, out: &mut String, now: Duration, record: &log::Record<'_>) {
        use std::fmt::Write as _;
        self.put(out, now);
        let _ = writeln!(out, " {:5} {}", record.level(), record.args());
    }
}

impl StderrLogger {
    /// Keeps the line for `record` for the next flush; true when what is
    /// kept has reached [`LOG_BUFFER`] and should be written now.
    fn keep(&self, now: Duration, record: &log::Record<'_>) -> bool {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let Kept { bytes, stamp } = &mut *kept;
        stamp.line(bytes, now, record);
        bytes.len() >= LOG_BUFFER
    }

    /// Writes what is kept to `out`, in one `write_all`. `try_lock` when
    /// `nonblocking` (a panic hook: the panicking thread may hold the
    /// lock).
    fn write_kept(&self, out: &mut impl Write, nonblocking: bool) {
        let mut kept = match self.kept.try_lock() {
            Ok(kept) => kept,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) if nonblocking => return,
            Err(TryLockError::WouldBlock) => {
                self.kept.lock().unwrap_or_else(PoisonError::into_inner)
            }
        };
        let bytes = &mut kept.bytes;
        if !bytes.is_empty() {
            let _ = out.write_all(bytes.as_bytes());
            bytes.clear();
            if bytes.capacity() > LOG_BUFFER * 2 {
                bytes.shrink_to(LOG_BUFFER);
            }
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) || !record.target().starts_with("wsgate") {
            return;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if !KEEP_LINES.with(Cell::get) {
            let mut line = String::new();
            Stamp::new().line(&mut line, now, record);
            let _ = io::stderr().lock().write_all(line.as_bytes());
        } else if self.keep(now, record) {
            self.write_kept(&mut io::stderr().lock(), false);
        }
    }

    fn flush(&self) {
        self.write_kept(&mut io::stderr().lock(), false);
    }
}

/// A time since the Unix epoch as RFC 3339 UTC with milliseconds:
/// `2026-12-02T03:04:05.678Z`.
// why: the one date wsgate prints; a date crate would cost more bytes
// than these lines (Howard Hinnant's days-to-civil algorithm).
struct Rfc3339(Duration);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0.as_secs();
        let (days, rest) = (secs / 86_400, secs % 86_400);
        // Days since 0000-03-01, in 400-year eras of 146,097 days.
        let z = days + 719_468;
        let (era, doe) = (z / 146_097, z % 146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = era * 400 + yoe + u64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rest / 3_600,
            rest % 3_600 / 60,
            rest % 60,
            self.0.subsec_millis()
        )
    }
}

/// `wsgate hash-password`: one line from stdin (the newline removed); on
/// a terminal it is asked for and typed without echo, as `passwd` does.
fn hash_password_command() -> ExitCode {
    let terminal = io::stdin().is_terminal();
    // On a terminal, twice (as passwd asks), since nothing is shown.
    let read = (|| {
        // why: echo off before the prompt shows, so that nothing typed
        // (or pasted) right after the prompt is echoed.
        let _quiet = terminal.then(NoEcho::on_stdin).transpose()?;
        let mut lines = io::stdin().lock().lines();
        let mut ask = |prompt: &str| {
            if terminal {
                eprint!("{prompt}");
            }
            lines.next().unwrap_or(Ok(String::new()))
        };
        let first = ask("password: ")?;
        let again = if terminal {
            ask("again: ")?
        } else {
            first.clone()
        };
        Ok::<_, io::Error>((first, again))
    })();
    let (line, again) = match read {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("wsgate: reading the password: {e}");
            return ExitCode::from(1);
        }
    };
    if line != again {
        eprintln!("wsgate: the two passwords differ; nothing printed");
        return ExitCode::from(2);
    }
    let password = line.strip_suffix('\r').unwrap_or(&line);
    if password.is_empty() {
        eprintln!("wsgate: empty password");
        return ExitCode::from(2);
    }
    println!("{}", hash_password(password));
    ExitCode::SUCCESS
}

/// The terminal on stdin without echo (the newline still echoed, as
/// `passwd` does), until dropped.
struct NoEcho(rustix::termios::Termios);

impl NoEcho {
    fn on_stdin() -> io::Result<NoEcho> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(io::stdin())?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(io::stdin(), OptionalActions::Now, &quiet)?;
        Ok(NoEcho(saved))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        let now = rustix::termios::OptionalActions::Now;
        let _ = rustix::termios::tcsetattr(io::stdin(), now, &self.0);
    }
}

/// Prints a start-up error; exit code 2.
fn usage_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("wsgate: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let given = match parse_args(lexopt::Parser::from_env()) {
        Ok(Command::Run(given)) => given,
        Ok(Command::Help) => {
            let _ = io::stdout().write_all(help().as_bytes());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("wsgate {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Command::HashPassword) => return hash_password_command(),
        Err(e) => return usage_error(format_args!("{e}\nTry 'wsgate --help'.")),
    };
    let settings = match settings(&given, &|name| std::env::var_os(name)) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = log::set_logger(&LOGGER) {
        return usage_error(e);
    }
    log::set_max_level(settings.log);
    let (config, users, random_secret) = match configure(settings) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    if random_secret {
        log::warn!(
            "no WSGATE_SECRET or --secret-file: using a random secret; tokens won't survive a restart"
        );
    }
    if config.echo {
        log::warn!(
            "--echo: messages are echoed to their sender, not chatted (conformance testing)"
        );
    }
    if let Some(net) = config.trusted_proxies.iter().find(|n| n.prefix_len() == 0) {
        log::warn!(
            "--trusted-proxy {net} trusts every peer: any client can name the address it counts under"
        );
    }
    let listen = config.listen;
    let gateway = match Gateway::bind(config, Arc::new(users)).and_then(|mut g| {
        g.handle_signals()?;
        Ok(g)
    }) {
        Ok(g) => g,
        Err(e) => {
            let hint = match e.kind() {
                io::ErrorKind::AddrInUse => {
                    "; another program (another wsgate?) holds it: stop it, or pick another \
                     port with --listen"
                }
                io::ErrorKind::PermissionDenied if listen.port() < 1024 => {
                    "; ports under 1024 need CAP_NET_BIND_SERVICE (see deploy/wsgate.service)"
                }
                io::ErrorKind::AddrNotAvailable => "; that address is not one of this machine's",
                _ => "",
            };
            eprintln!("wsgate: cannot listen on {listen}: {e}{hint}");
            return ExitCode::from(1);
        }
    };
    // why: from here the event loop runs on this thread and flushes the
    // logger before its writes and its waits; a panic writes what it kept
    // before the panic's own message.
    KEEP_LINES.with(|keep| keep.set(true));
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        LOGGER.write_kept(&mut io::stderr().lock(), true);
        report(info);
    }));
    let ran = gateway.run();
    log::logger().flush();
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts `write` calls (a `write()` system call each on stderr).
    #[derive(Default)]
    struct Counted {
        bytes: Vec<u8>,
        writes: usize,
    }

    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logger() -> StderrLogger {
        StderrLogger {
            kept: Mutex::new(Kept {
                bytes: String::new(),
                stamp: Stamp::new(),
            }),
        }
    }

    #[test]
    fn kept_log_lines_are_written_together_in_order() {
        let logger = logger();
        let mut out = Counted::default();
        // 2025-12-02T03:04:05, then every 20 ms.
        let base = Duration::from_secs(1_764_644_645);
        for i in 0..100 {
            let now = base + Duration::from_millis(i * 20);
            let full = logger.keep(
                now,
                &log::Record::builder()
                    .level(log::Level::Info)
                    .args(format_args!("line {i}"))
                    .build(),
            );
            assert!(!full);
        }
        assert_eq!(out.writes, 0);
        logger.write_kept(&mut out, false);
        assert_eq!(out.writes, 1, "one write for a turn's lines");
        let text = String::from_utf8(out.bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0], "2025-12-02T03:04:05.000Z INFO  line 0");
        assert_eq!(lines[3], "2025-12-02T03:04:05.060Z INFO  line 3");
        // The stamp's second moves on with the clock.
        assert_eq!(lines[99], "2025-12-02T03:04:06.980Z INFO  line 99");
        for (i, line) in lines.iter().enumerate() {
            let expected = Rfc3339(base + Duration::from_millis(i as u64 * 20)).to_string();
            assert_eq!(*line, format!("{expected} INFO  line {i}"));
        }
        // Nothing kept: nothing written.
        let mut again = Counted::default();
        logger.write_kept(&mut again, true);
        assert_eq!(again.writes, 0);
    }

    #[test]
    fn kept_log_lines_are_bounded() {
        let logger = logger();
        let long = "x".repeat(1000);
        let keep = || {
            logger.keep(
                Duration::ZERO,
                &log::Record::builder()
                    .level(log::Level::Warn)
                    .args(format_args!("{long}"))
                    .build(),
            )
        };
        // Each line: the 24-byte stamp, " WARN  ", the text, a newline.
        let line = 24 + 7 + long.len() + 1;
        let kept_before_full = (1..).find(|_| keep()).unwrap();
        assert_eq!(kept_before_full, LOG_BUFFER.div_ceil(line));
        let mut out = Counted::default();
        logger.write_kept(&mut out, false);
        assert_eq!(out.bytes.len(), kept_before_full * line);
        assert!(out.bytes.starts_with(b"1970-01-01T00:00:00.000Z WARN  xxx"));
    }

    /// A fake environment.
    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, String)> = (vars.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            (vars.iter())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into())
        }
    }

    /// Settings from `args` and the fake environment `vars`.
    fn parse(args: &[&str], vars: &[(&str, &str)]) -> Result<Settings, String> {
        match parse_args(lexopt::Parser::from_args(args)) {
            Ok(Command::Run(given)) => settings(&given, &env(vars)),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn opt(flag: &str) -> &'static Opt {
        OPTIONS.iter().find(|o| o.flag == flag).unwrap()
    }

    #[test]
    fn variables_are_named_after_their_flags() {
        for o in OPTIONS {
            let expected = match o.flag {
                // Documented exceptions (see `Opt::env`).
                "" => "WSGATE_SECRET".to_string(),
                "allowed-origin" => "WSGATE_ALLOWED_ORIGINS".to_string(),
                "trusted-proxy" => "WSGATE_TRUSTED_PROXIES".to_string(),
                flag => format!("WSGATE_{}", flag.to_ascii_uppercase().replace('-', "_")),
            };
            assert_eq!(o.env, expected, "--{}", o.flag);
        }
    }

    #[test]
    fn flags_and_variables_are_unique_and_values_named() {
        for (i, o) in OPTIONS.iter().enumerate() {
            for other in &OPTIONS[i + 1..] {
                assert!(o.flag != other.flag && o.env != other.env, "{}", o.env);
            }
            let switch = matches!(o.kind, Kind::Switch(_));
            assert_eq!(o.value.is_empty(), switch || o.flag.is_empty(), "{}", o.env);
            assert!(!o.help.is_empty() && !o.default.is_empty(), "{}", o.env);
            assert!(!["help", "version"].contains(&o.flag));
        }
    }

    #[test]
    fn help_lists_every_option_with_its_variable_and_default() {
        let help = help();
        for o in OPTIONS {
            let left = match (o.flag, o.value) {
                ("", _) => format!("\n    {} ", o.env),
                (flag, "") => format!("\n    --{flag} "),
                (flag, value) => format!("\n    --{flag} {value}"),
            };
            assert!(help.contains(&left), "{left:?} missing:\n{help}");
            if !o.flag.is_empty() {
                assert!(help.contains(&format!("[{}", o.env)), "{}", o.env);
            }
            assert!(
                help.contains(&format!("(default {}", o.default)),
                "{}",
                o.env
            );
        }
        for other in [
            "USAGE",
            "hash-password",
            "-h, --help",
            "-V, --version",
            "DURATION is",
        ] {
            assert!(help.contains(other), "{other}");
        }
        for line in help.lines() {
            assert!(line.chars().count() <= 80, "too long: {line:?}");
        }
    }

    #[test]
    fn the_defaults_shown_are_the_real_ones() {
        let default = format!("{:?}", Settings::default());
        // A default that is not a value the option takes: words only.
        let described = [
            "demo users",
            "random per run",
            "none",
            "unchecked",
            "every role but viewer",
            "off",
        ];
        for o in OPTIONS {
            let mut s = Settings::default();
            let same = o.kind.apply(&mut s, o.default.as_ref(), false).is_ok()
                && format!("{s:?}") == default;
            let numeric = matches!(
                o.kind,
                Kind::Duration(_)
                    | Kind::Size(_)
                    | Kind::Count(_)
                    | Kind::Limit(_)
                    | Kind::Rate { .. }
            );
            assert!(
                same || (!numeric && described.contains(&o.default)),
                "{}: the help says {:?}",
                o.env,
                o.default
            );
        }
    }

    #[test]
    fn a_flag_wins_over_its_variable() {
        let vars = [("WSGATE_TOKEN_TTL", "2h"), ("WSGATE_MAX_CONNECTIONS", "5")];
        let s = parse(&["--token-ttl", "1h"], &vars).unwrap();
        assert_eq!(s.config.token_ttl, Duration::from_secs(3600));
        assert_eq!(s.config.limits.max_connections, 5);
        // The last of a repeated flag wins; an empty variable is unset.
        let vars = [("WSGATE_LISTEN", ""), ("WSGATE_SESSION_TTL", "")];
        let s = parse(&["--session-ttl", "1h", "--session-ttl=2h"], &vars).unwrap();
        assert_eq!(s.config.session_ttl, Duration::from_secs(7200));
        assert_eq!(s.config.listen, Config::default().listen);
    }

    #[test]
    fn switches_take_no_value_and_their_variable_says_1() {
        let s = parse(&["--echo", "--insecure-cookie"], &[]).unwrap();
        assert!(s.config.echo && s.config.insecure_cookie);
        for (value, on) in [("1", true), ("true", true), ("yes", true), ("0", false)] {
            let s = parse(&[], &[("WSGATE_ALLOW_PASSWORD_AUTH", value)]).unwrap();
            assert_eq!(s.config.allow_password_auth, on, "{value}");
        }
        let e = parse_args(lexopt::Parser::from_args(["--echo=1"])).unwrap_err();
        assert!(e.to_string().contains("--echo"), "{e}");
    }

    #[test]
    fn origins_repeat_as_flags_and_list_in_the_variable() {
        let var = [("WSGATE_ALLOWED_ORIGINS", "http://a.test, https://b.test,")];
        let s = parse(&[], &var).unwrap();
        let origins: Vec<String> = (s.config.allowed_origins.iter())
            .map(ToString::to_string)
            .collect();
        assert_eq!(origins, ["http://a.test:80", "https://b.test:443"]);
        let flags = [
            "--allowed-origin",
            "http://c.test",
            "--allowed-origin=http://d.test",
        ];
        let s = parse(&flags, &var).unwrap();
        assert_eq!(s.config.allowed_origins.len(), 2);
        assert_eq!(s.config.allowed_origins[1].host, "d.test");
        let e = parse(&["--allowed-origin", "http://a,http://b"], &[]).unwrap_err();
        assert!(
            e.starts_with(
                "--allowed-origin: not an origin: \"http://a,http://b\": give scheme://host[:port]"
            ),
            "{e}"
        );
        let e = parse_args(lexopt::Parser::from_args(["--users", "--listen", "x"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--users needs a value (FILE), not the flag --listen"
        );
    }

    #[test]
    fn log_times_are_rfc3339_utc_with_milliseconds() {
        let at = |secs: u64, ms: u64| {
            Rfc3339(Duration::from_secs(secs) + Duration::from_millis(ms)).to_string()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_399, 999), "2000-02-28T23:59:59.999Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(951_868_800, 0), "2000-03-01T00:00:00.000Z");
        assert_eq!(at(1_709_164_800, 0), "2024-02-29T00:00:00.000Z");
        assert_eq!(at(1_796_178_070, 812), "2026-12-02T02:21:10.812Z");
        assert_eq!(at(4_102_444_799, 0), "2099-12-31T23:59:59.000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
        // Every day for 500 years: the date after a day's last second is
        // the next day, month and year roll over, and Feb 29 comes when
        // the Gregorian rule says.
        let mut last = at(0, 0);
        for day in 1..(500 * 366) {
            let next = at(day * 86_400, 0);
            assert!(next > last, "{next} after {last}");
            let (y, m, d) = (&next[0..4], &next[5..7], &next[8..10]);
            let year: u64 = y.parse().unwrap();
            let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
            if (m, d) == ("02", "29") {
                assert!(leap, "{next}");
            }
            last = next;
        }
    }

    #[test]
    fn trusted_proxies_are_networks_or_addresses() {
        let var = [("WSGATE_TRUSTED_PROXIES", "10.1.2.3/8, ::1")];
        let s = parse(&[], &var).unwrap();
        let nets: Vec<String> = (s.config.trusted_proxies.iter())
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128"]);
        let s = parse(&["--trusted-proxy", "127.0.0.1", "--proxy-protocol"], &var).unwrap();
        assert_eq!(s.config.trusted_proxies.len(), 1);
        assert!(s.config.proxy_protocol);
        assert!(
            s.config
                .is_trusted_proxy("::ffff:127.0.0.1".parse().unwrap())
        );
        assert!(!s.config.is_trusted_proxy("127.0.0.2".parse().unwrap()));
        let e = parse(&["--trusted-proxy", "nginx"], &[]).unwrap_err();
        assert_eq!(
            e,
            "--trusted-proxy: not an address or network: \"nginx\" \
             (say 10.0.0.0/8, 127.0.0.1 or ::1/128)"
        );
    }

    #[test]
    fn zero_means_unlimited_for_limits_and_rates() {
        let args = [
            "--max-conns-per-ip",
            "0",
            "--upgrade-rate",
            "0",
            "--login-failures",
            "6",
        ];
        let s = parse(&args, &[("WSGATE_MESSAGE_RATE", "1")]).unwrap();
        let l = &s.config.limits;
        assert_eq!((l.max_conns_per_ip, l.upgrade_rate), (None, None));
        let login = l.failed_login_rate.unwrap();
        assert_eq!((login.per_sec, login.burst), (0.1, 6.0));
        let message = l.message_rate.unwrap();
        assert_eq!((message.per_sec, message.burst), (1.0, 2.0));
    }

    #[test]
    fn errors_name_the_flag_or_the_variable_they_came_from() {
        /// Flags, variables, the error.
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case; 7] = [
            (
                &["--token-ttl", "soon"],
                &[],
                "--token-ttl: not a duration: \"soon\": give a whole number of seconds, or one \
                 with a unit s, m, h or d, such as 900, 90s, 15m, 8h or 1d",
            ),
            (
                &["--token-ttl", "0"],
                &[],
                "--token-ttl: \"0\": must be more than zero",
            ),
            (
                &[],
                &[("WSGATE_MAX_CONNECTIONS", "0")],
                "WSGATE_MAX_CONNECTIONS: expected a positive whole number, got \"0\"",
            ),
            (
                &["--max-queue", "1TiB"],
                &[],
                "--max-queue: not a size (bytes, or with KiB, MiB, GiB; at most 4GiB): \"1TiB\"",
            ),
            (
                &[],
                &[("WSGATE_LOG", "loud")],
                "WSGATE_LOG: not a level: \"loud\": give error, warn, info, debug or trace",
            ),
            (&["--users", ""], &[], "--users: an empty path"),
            (
                &[],
                &[("WSGATE_SECRET_FILE", "")],
                "WSGATE_SECRET_FILE: an empty path",
            ),
        ];
        for (args, vars, expected) in cases {
            assert_eq!(parse(args, vars).unwrap_err(), expected);
        }
        let e = parse(&[], &[("WSGATE_SEND_ROLES", "member,no way")]).unwrap_err();
        assert_eq!(e, "WSGATE_SEND_ROLES: not a role: \"no way\"");
        let e = parse(&[], &[("WSGATE_PER_USER_POLICY", "oldest")]).unwrap_err();
        assert!(e.starts_with("WSGATE_PER_USER_POLICY: reject-newest or evict-oldest"));
    }

    #[cfg(unix)]
    #[test]
    fn a_variable_that_is_not_utf8_is_refused_without_showing_it() {
        use std::os::unix::ffi::OsStringExt;
        let var = |_: &str| Some(OsString::from_vec(b"secret\xff-bytes".to_vec()));
        let e = settings(&[], &var).unwrap_err();
        assert_eq!(e, "WSGATE_LISTEN: not valid UTF-8");
        let mut s = Settings::default();
        let bytes = OsString::from_vec(b"\xffsecret".to_vec());
        let e = opt("").kind.apply(&mut s, &bytes, true).unwrap_err();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn the_command_line_picks_a_command() {
        let command = |args: &[&str]| parse_args(lexopt::Parser::from_args(args));
        assert!(matches!(
            command(&["--listen", "x", "-h"]),
            Ok(Command::Help)
        ));
        assert!(matches!(command(&["-V"]), Ok(Command::Version)));
        assert!(matches!(
            command(&["hash-password", "--echo"]),
            Ok(Command::HashPassword)
        ));
        for bad in [
            &["--frobnicate"][..],
            &["hash-password", "hash-password"],
            &["--listen"],
        ] {
            assert!(command(bad).is_err(), "{bad:?}");
        }
        let e = command(&["--frobnicate"]).unwrap_err().to_string();
        assert!(e.contains("--frobnicate"), "{e}");
        match command(&["--echo", "--max-queue", "2MiB"]) {
            Ok(Command::Run(given)) => {
                let flags: Vec<&str> = given.iter().map(|(i, _)| OPTIONS[*i].flag).collect();
                assert_eq!(flags, ["echo", "max-queue"]);
                assert_eq!(given[1].1, "2MiB");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_library_refuses_an_invalid_config_at_bind() {
        // Config::default() has no secret; bind says so before it binds.
        let e = Gateway::bind(Config::default(), Arc::new(Users::demo()))
            .err()
            .expect("no secret, no gateway");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let inner = e.get_ref().and_then(|e| e.downcast_ref());
        assert_eq!(inner, Some(&wsgate::config::ConfigError::NoSecret));
    }

    #[test]
    fn start_up_loads_secrets_and_validates() {
        const SECRET: &str = "a secret of at least thirty-two bytes";
        let vars = [("WSGATE_SECRET", SECRET)];
        let (config, _, random) = configure(parse(&[], &vars).unwrap()).unwrap();
        assert_eq!(config.secrets, [SecretKey::new(SECRET)]);
        assert!(!random);
        let (config, _, random) = configure(Settings::default()).unwrap();
        assert_eq!(config.secrets[0].0.len(), MIN_SECRET_LEN);
        assert!(random);

        let both = parse(&["--secret-file", "/nonexistent"], &vars).unwrap();
        let e = configure(both).unwrap_err();
        assert_eq!(
            e,
            "give the secret by WSGATE_SECRET or --secret-file, not both"
        );
        let short = parse(&[], &[("WSGATE_SECRET", "0123456789")]).unwrap();
        let e = configure(short).unwrap_err();
        assert_eq!(
            e,
            "WSGATE_SECRET is 10 bytes; a secret needs at least 32 (its bytes as they are: \
             not decoded from base64 or hex)"
        );
        let dir = std::env::temp_dir().join(format!("wsgate-secret-{}", std::process::id()));
        let from_file = |text: String| {
            std::fs::write(&dir, text).unwrap();
            let file = parse(&["--secret-file", dir.to_str().unwrap()], &[]).unwrap();
            configure(file).map(|(c, ..)| c.secrets)
        };
        let e = from_file(format!("{SECRET}\nshort\n")).unwrap_err();
        assert_eq!(
            e,
            format!(
                "--secret-file {}: line 2 is 5 bytes; a secret needs at least 32 (each line is \
                 one secret, its bytes as they are: not decoded from base64 or hex)",
                dir.display()
            )
        );
        // An empty line before a secret would change which one signs.
        let e = from_file(format!("\n{SECRET}\n")).unwrap_err();
        assert_eq!(
            e,
            format!(
                "--secret-file {}: line 1 is empty; every line is one secret (the first \
                 signs), so remove the empty lines",
                dir.display()
            )
        );
        // Trailing empty lines, and CRLF line ends, are fine.
        let secrets = from_file(format!("{SECRET}\r\n{SECRET}2\r\n\r\n\n")).unwrap();
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0], SecretKey::new(SECRET));
        let _ = std::fs::remove_file(&dir);
        let budget = parse(&["--max-queue", "2MiB", "--queue-budget", "1MiB"], &vars).unwrap();
        let e = configure(budget).unwrap_err();
        assert!(
            e.starts_with("--queue-budget (1048576 bytes) is smaller"),
            "{e}"
        );
        let public = parse(&["--listen", "0.0.0.0:80"], &vars).unwrap();
        let e = configure(public).unwrap_err();
        assert!(e.contains("give --users FILE"), "{e}");
    }
}
