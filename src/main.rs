//! `wsgate`: flags and `WSGATE_*` variables → a validated [`Config`] → run.
//!
//! Exit codes: 0 after a clean stop, 1 when the server fails at run time
//! (cannot bind, say), 2 for a usage or configuration error.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use wsgate::auth::jwt::MIN_SECRET_LEN;
use wsgate::auth::password::hash_password;
use wsgate::auth::users::Users;
use wsgate::auth::valid_role;
use wsgate::config::{Config, Origin, PerUserPolicy, Rate, SecretKey, parse_duration, parse_size};
use wsgate::shell::Gateway;

const HELP: &str = "\
wsgate — a WebSocket chat server that authenticates before it upgrades

USAGE:
    wsgate [OPTIONS]
    wsgate hash-password      read a password on stdin, print a users-file hash

OPTIONS (each also read from the environment variable shown):
    --listen ADDR           address to listen on [WSGATE_LISTEN] (default 127.0.0.1:8080)
    --users FILE            users file, NAME:ROLE:HASH a line [WSGATE_USERS]
                            (default: demo users alice/wonderland and bob/builder,
                            loopback addresses only)
    --secret-file PATH      token secrets, one a line, first signs [WSGATE_SECRET_FILE]
                            (or the secret itself in WSGATE_SECRET; default: random per run)
    --allowed-origin ORIGIN extra origin for cookie upgrades, repeatable
                            [WSGATE_ALLOWED_ORIGINS, comma-separated]
    --token-ttl DURATION    lifetime of issued tokens [WSGATE_TOKEN_TTL] (default 15m)
    --issuer ISS            required `iss` claim [WSGATE_ISSUER]
    --audience AUD          required `aud` claim [WSGATE_AUDIENCE]
    --session-ttl DURATION  absolute session lifetime [WSGATE_SESSION_TTL] (default 8h)
    --session-idle DURATION idle session timeout [WSGATE_SESSION_IDLE] (default 30m)
    --insecure-cookie       cookie without Secure/__Host- for plain HTTP [WSGATE_INSECURE_COOKIE=1]
    --max-connections N     open connections of any kind [WSGATE_MAX_CONNECTIONS] (default 10000)
    --max-conns-per-user N  live WebSockets per user [WSGATE_MAX_CONNS_PER_USER] (default 16)
    --max-conns-per-ip N    connections per client address (IPv6: per /64), 0 = unlimited
                            [WSGATE_MAX_CONNS_PER_IP] (default 1024)
    --max-unauth-conns-per-ip N
                            connections per client address not yet authenticated
                            (before the 101), 0 = unlimited [WSGATE_MAX_UNAUTH_CONNS_PER_IP] (default 64)
    --max-message SIZE      largest incoming WebSocket message [WSGATE_MAX_MESSAGE] (default 64KiB)
    --max-queue SIZE        a WebSocket's queue limit: over it for --slow-consumer-timeout
                            means close 1013 [WSGATE_MAX_QUEUE] (default 1MiB)
    --slow-consumer-timeout DURATION
                            how long a queue may stay over --max-queue [WSGATE_SLOW_CONSUMER_TIMEOUT]
                            (default 5s)
    --queue-budget SIZE     all queued bytes together; at it, input waits (backpressure)
                            [WSGATE_QUEUE_BUDGET] (default 256MiB)
    --per-user-policy P     reject-newest (429) or evict-oldest (4409) [WSGATE_PER_USER_POLICY]
    --presence-limit N      join/leave notices up to this room size [WSGATE_PRESENCE_LIMIT] (default 100)
    --send-roles LIST       comma-separated roles that may send [WSGATE_SEND_ROLES]
                            (default: every role but viewer)
    --allow-password-auth   accept Basic auth and ?username=&password= on /ws [WSGATE_ALLOW_PASSWORD_AUTH=1]
    --ping-interval DURATION ping every connection this often [WSGATE_PING_INTERVAL] (default 30s)
    --upgrade-rate N        upgrades per second per client IP, 0 = unlimited [WSGATE_UPGRADE_RATE] (default 10)
    --login-failures N      failed logins per minute per client IP, 0 = unlimited [WSGATE_LOGIN_FAILURES] (default 10)
    --message-rate N        chat messages per second per connection, 0 = unlimited [WSGATE_MESSAGE_RATE] (default 20)
    --drain-timeout DURATION on SIGTERM/SIGINT, time to flush queues [WSGATE_DRAIN_TIMEOUT] (default 5s)
    --echo                  conformance testing only: echo every message to its sender
                            instead of chatting [WSGATE_ECHO=1]
    --log LEVEL             error, warn, info, debug or trace [WSGATE_LOG] (default info)
    -h, --help              print this help
    -V, --version           print the version

DURATION is a whole number with an optional unit s, m, h or d (900, 15m, 8h).
SIZE is a whole number of bytes with an optional unit KiB, MiB or GiB (65536, 64KiB, 16MiB).
";

/// Flags and variables as given, before validation.
#[derive(Default)]
struct Args {
    hash_password: bool,
    listen: Option<String>,
    users: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    allowed_origins: Vec<String>,
    token_ttl: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    session_ttl: Option<String>,
    session_idle: Option<String>,
    insecure_cookie: bool,
    max_connections: Option<String>,
    max_conns_per_user: Option<String>,
    max_conns_per_ip: Option<String>,
    max_unauth_conns_per_ip: Option<String>,
    max_message: Option<String>,
    max_queue: Option<String>,
    slow_consumer_timeout: Option<String>,
    queue_budget: Option<String>,
    per_user_policy: Option<String>,
    presence_limit: Option<String>,
    send_roles: Option<String>,
    allow_password_auth: bool,
    ping_interval: Option<String>,
    upgrade_rate: Option<String>,
    login_failures: Option<String>,
    message_rate: Option<String>,
    drain_timeout: Option<String>,
    echo: bool,
    log: Option<String>,
}

/// A start-up error: printed, then exit code 2.
struct ConfigError(String);

impl<T: std::fmt::Display> From<T> for ConfigError {
    fn from(e: T) -> Self {
        ConfigError(e.to_string())
    }
}

fn parse_args() -> Result<Option<Args>, lexopt::Error> {
    use lexopt::prelude::*;
    let mut args = Args::default();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{HELP}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("wsgate {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Long("listen") => args.listen = Some(parser.value()?.string()?),
            Long("users") => args.users = Some(parser.value()?.into()),
            Long("secret-file") => args.secret_file = Some(parser.value()?.into()),
            Long("allowed-origin") => args.allowed_origins.push(parser.value()?.string()?),
            Long("token-ttl") => args.token_ttl = Some(parser.value()?.string()?),
            Long("issuer") => args.issuer = Some(parser.value()?.string()?),
            Long("audience") => args.audience = Some(parser.value()?.string()?),
            Long("session-ttl") => args.session_ttl = Some(parser.value()?.string()?),
            Long("session-idle") => args.session_idle = Some(parser.value()?.string()?),
            Long("insecure-cookie") => args.insecure_cookie = true,
            Long("max-connections") => args.max_connections = Some(parser.value()?.string()?),
            Long("presence-limit") => args.presence_limit = Some(parser.value()?.string()?),
            Long("max-conns-per-ip") => args.max_conns_per_ip = Some(parser.value()?.string()?),
            Long("max-unauth-conns-per-ip") => {
                args.max_unauth_conns_per_ip = Some(parser.value()?.string()?)
            }
            Long("max-message") => args.max_message = Some(parser.value()?.string()?),
            Long("max-queue") => args.max_queue = Some(parser.value()?.string()?),
            Long("slow-consumer-timeout") => {
                args.slow_consumer_timeout = Some(parser.value()?.string()?)
            }
            Long("queue-budget") => args.queue_budget = Some(parser.value()?.string()?),
            Long("max-conns-per-user") => args.max_conns_per_user = Some(parser.value()?.string()?),
            Long("per-user-policy") => args.per_user_policy = Some(parser.value()?.string()?),
            Long("send-roles") => args.send_roles = Some(parser.value()?.string()?),
            Long("allow-password-auth") => args.allow_password_auth = true,
            Long("ping-interval") => args.ping_interval = Some(parser.value()?.string()?),
            Long("upgrade-rate") => args.upgrade_rate = Some(parser.value()?.string()?),
            Long("login-failures") => args.login_failures = Some(parser.value()?.string()?),
            Long("message-rate") => args.message_rate = Some(parser.value()?.string()?),
            Long("drain-timeout") => args.drain_timeout = Some(parser.value()?.string()?),
            Long("echo") => args.echo = true,
            Long("log") => args.log = Some(parser.value()?.string()?),
            Value(v) if v == "hash-password" && !args.hash_password => args.hash_password = true,
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Some(args))
}

/// `--flag` wins over `WSGATE_NAME`.
fn pick(flag: Option<String>, var: &str) -> Option<String> {
    flag.or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
}

fn env_flag(var: &str) -> bool {
    matches!(std::env::var(var).as_deref(), Ok("1" | "true" | "yes"))
}

fn duration(value: Option<String>, name: &str) -> Result<Option<std::time::Duration>, ConfigError> {
    value
        .map(|v| {
            parse_duration(&v, false)
                .ok_or_else(|| ConfigError(format!("{name}: not a duration: {v:?}")))
        })
        .transpose()
}

fn size(value: Option<String>, name: &str) -> Result<Option<usize>, ConfigError> {
    value
        .map(|v| {
            parse_size(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{name}: not a size (bytes, or with KiB, MiB, GiB; at most 4GiB): {v:?}"
                ))
            })
        })
        .transpose()
}

/// A count where 0 means "no limit".
fn optional_count(value: Option<String>, name: &str) -> Result<Option<Option<usize>>, ConfigError> {
    value
        .map(|v| match v.parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(ConfigError(format!(
                "{name}: expected a whole number, got {v:?}"
            ))),
        })
        .transpose()
}

fn count(value: Option<String>, name: &str) -> Result<Option<usize>, ConfigError> {
    value
        .map(|v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError(format!(
                "{name}: expected a positive whole number, got {v:?}"
            ))),
        })
        .transpose()
}

/// A rate flag: `N` per `per_secs` seconds with bursts of `burst` × N;
/// `0` turns the limit off (`Some(None)`).
#[allow(clippy::type_complexity)]
fn rate(
    value: Option<String>,
    name: &str,
    per_secs: f64,
    burst: f64,
) -> Result<Option<Option<Rate>>, ConfigError> {
    let Some(v) = value else {
        return Ok(None);
    };
    match v.parse::<u32>() {
        Ok(0) => Ok(Some(None)),
        Ok(n) => Ok(Some(Some(Rate {
            per_sec: f64::from(n) / per_secs,
            burst: (f64::from(n) * burst).max(1.0),
        }))),
        Err(_) => Err(ConfigError(format!(
            "{name}: expected a whole number, got {v:?}"
        ))),
    }
}

/// Validates everything; the server starts only from a complete [`Config`].
fn configure(args: Args) -> Result<(Config, Users, bool), ConfigError> {
    let mut config = Config::default();
    if let Some(listen) = pick(args.listen, "WSGATE_LISTEN") {
        config.listen = listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError(format!("--listen: not an address: {listen:?}")))?;
    }
    let users_path = args
        .users
        .or_else(|| std::env::var_os("WSGATE_USERS").map(PathBuf::from));
    let demo = users_path.is_none();
    let users = match users_path {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ConfigError(format!("--users {}: {e}", path.display())))?;
            let users = Users::parse(&text)
                .map_err(|e| ConfigError(format!("--users {}: {e}", path.display())))?;
            if users.is_empty() {
                return Err(ConfigError(format!("--users {}: no users", path.display())));
            }
            users
        }
        None => {
            if !config.listen.ip().is_loopback() {
                return Err(ConfigError(
                    "the demo users (no --users) only serve loopback addresses; give --users FILE to listen on "
                        .to_string()
                        + &config.listen.to_string(),
                ));
            }
            Users::demo()
        }
    };
    if demo {
        log::warn!("no --users: serving the demo users alice/wonderland and bob/builder");
    }
    let secret_file = args
        .secret_file
        .or_else(|| std::env::var_os("WSGATE_SECRET_FILE").map(PathBuf::from));
    let secret_var = std::env::var("WSGATE_SECRET")
        .ok()
        .filter(|v| !v.is_empty());
    let mut random_secret = false;
    config.secrets = match (secret_file, secret_var) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "give the secret by WSGATE_SECRET or --secret-file, not both".into(),
            ));
        }
        (Some(path), None) => {
            let text = std::fs::read(&path)
                .map_err(|e| ConfigError(format!("--secret-file {}: {e}", path.display())))?;
            let secrets: Vec<SecretKey> = text
                .split(|&b| b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
                .filter(|line| !line.is_empty())
                .map(|line| SecretKey(line.to_vec()))
                .collect();
            if secrets.is_empty() {
                return Err(ConfigError(format!(
                    "--secret-file {}: no secret in it",
                    path.display()
                )));
            }
            secrets
        }
        (None, Some(var)) => vec![SecretKey(var.into_bytes())],
        (None, None) => {
            random_secret = true;
            let mut key = vec![0u8; 32];
            wsgate::auth::random_bytes(&mut key);
            vec![SecretKey(key)]
        }
    };
    for (i, s) in config.secrets.iter().enumerate() {
        if s.0.len() < MIN_SECRET_LEN {
            return Err(ConfigError(format!(
                "secret {} is {} bytes; at least {MIN_SECRET_LEN} are required",
                i + 1,
                s.0.len()
            )));
        }
    }
    let mut origins = args.allowed_origins;
    if origins.is_empty() {
        if let Ok(var) = std::env::var("WSGATE_ALLOWED_ORIGINS") {
            origins = var
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
    }
    for o in origins {
        config.allowed_origins.push(
            Origin::parse(&o)
                .ok_or_else(|| ConfigError(format!("--allowed-origin: not an origin: {o:?}")))?,
        );
    }
    if let Some(d) = duration(pick(args.token_ttl, "WSGATE_TOKEN_TTL"), "--token-ttl")? {
        config.token_ttl = d;
    }
    if let Some(d) = duration(
        pick(args.session_ttl, "WSGATE_SESSION_TTL"),
        "--session-ttl",
    )? {
        config.session_ttl = d;
    }
    if let Some(d) = duration(
        pick(args.session_idle, "WSGATE_SESSION_IDLE"),
        "--session-idle",
    )? {
        config.session_idle = d;
    }
    config.issuer = pick(args.issuer, "WSGATE_ISSUER");
    config.audience = pick(args.audience, "WSGATE_AUDIENCE");
    config.insecure_cookie = args.insecure_cookie || env_flag("WSGATE_INSECURE_COOKIE");
    if let Some(n) = count(
        pick(args.max_connections, "WSGATE_MAX_CONNECTIONS"),
        "--max-connections",
    )? {
        config.limits.max_connections = n;
    }
    if let Some(n) = count(
        pick(args.presence_limit, "WSGATE_PRESENCE_LIMIT"),
        "--presence-limit",
    )? {
        config.limits.presence_limit = n;
    }
    if let Some(n) = count(
        pick(args.max_conns_per_user, "WSGATE_MAX_CONNS_PER_USER"),
        "--max-conns-per-user",
    )? {
        config.limits.max_conns_per_user = n;
    }
    if let Some(n) = optional_count(
        pick(args.max_conns_per_ip, "WSGATE_MAX_CONNS_PER_IP"),
        "--max-conns-per-ip",
    )? {
        config.limits.max_conns_per_ip = n;
    }
    if let Some(n) = optional_count(
        pick(
            args.max_unauth_conns_per_ip,
            "WSGATE_MAX_UNAUTH_CONNS_PER_IP",
        ),
        "--max-unauth-conns-per-ip",
    )? {
        config.limits.max_unauth_per_ip = n;
    }
    if let Some(n) = size(
        pick(args.max_message, "WSGATE_MAX_MESSAGE"),
        "--max-message",
    )? {
        config.limits.max_message_bytes = n;
    }
    if let Some(n) = size(pick(args.max_queue, "WSGATE_MAX_QUEUE"), "--max-queue")? {
        config.limits.max_queue_bytes = n;
    }
    if let Some(n) = size(
        pick(args.queue_budget, "WSGATE_QUEUE_BUDGET"),
        "--queue-budget",
    )? {
        config.limits.queue_budget_bytes = n;
    }
    if let Some(d) = duration(
        pick(args.slow_consumer_timeout, "WSGATE_SLOW_CONSUMER_TIMEOUT"),
        "--slow-consumer-timeout",
    )? {
        config.limits.slow_consumer_timeout = d;
    }
    if config.limits.queue_budget_bytes < config.limits.max_queue_bytes {
        return Err(ConfigError(format!(
            "--queue-budget ({} bytes) is smaller than --max-queue ({} bytes)",
            config.limits.queue_budget_bytes, config.limits.max_queue_bytes
        )));
    }
    if let Some(p) = pick(args.per_user_policy, "WSGATE_PER_USER_POLICY") {
        config.per_user_policy = match p.as_str() {
            "reject-newest" => PerUserPolicy::RejectNewest,
            "evict-oldest" => PerUserPolicy::EvictOldest,
            _ => {
                return Err(ConfigError(format!(
                    "--per-user-policy: reject-newest or evict-oldest, not {p:?}"
                )));
            }
        };
    }
    if let Some(list) = pick(args.send_roles, "WSGATE_SEND_ROLES") {
        let roles: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
            return Err(ConfigError(format!("--send-roles: not a role: {bad:?}")));
        }
        config.send_roles = Some(roles);
    }
    config.allow_password_auth = args.allow_password_auth || env_flag("WSGATE_ALLOW_PASSWORD_AUTH");
    config.echo = args.echo || env_flag("WSGATE_ECHO");
    if config.echo {
        log::warn!(
            "--echo: messages are echoed to their sender, not chatted (conformance testing)"
        );
    }
    if let Some(d) = duration(
        pick(args.ping_interval, "WSGATE_PING_INTERVAL"),
        "--ping-interval",
    )? {
        config.ping_interval = d;
    }
    if let Some(d) = duration(
        pick(args.drain_timeout, "WSGATE_DRAIN_TIMEOUT"),
        "--drain-timeout",
    )? {
        config.limits.drain_timeout = d;
    }
    if let Some(r) = rate(
        pick(args.upgrade_rate, "WSGATE_UPGRADE_RATE"),
        "--upgrade-rate",
        1.0,
        2.0,
    )? {
        config.limits.upgrade_rate = r;
    }
    if let Some(r) = rate(
        pick(args.login_failures, "WSGATE_LOGIN_FAILURES"),
        "--login-failures",
        60.0,
        1.0,
    )? {
        config.limits.failed_login_rate = r;
    }
    if let Some(r) = rate(
        pick(args.message_rate, "WSGATE_MESSAGE_RATE"),
        "--message-rate",
        1.0,
        2.0,
    )? {
        config.limits.message_rate = r;
    }
    Ok((config, users, random_secret))
}

/// A minimal logger: one line a record on stderr, with a UTC timestamp.
struct StderrLogger;

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
        let _ = writeln!(
            io::stderr().lock(),
            "{}.{:03} {:5} {}",
            now.as_secs(),
            now.subsec_millis(),
            record.level(),
            record.args()
        );
    }

    fn flush(&self) {}
}

fn init_logging(level: Option<String>) -> Result<(), ConfigError> {
    let level = match level.as_deref() {
        None => log::LevelFilter::Info,
        Some(l) => l
            .parse()
            .map_err(|_| ConfigError(format!("--log: not a level: {l:?}")))?,
    };
    log::set_logger(&StderrLogger).map_err(|e| ConfigError(e.to_string()))?;
    log::set_max_level(level);
    Ok(())
}

/// `wsgate hash-password`: one line from stdin (the newline removed).
fn hash_password_command() -> ExitCode {
    if io::stdin().is_terminal() {
        eprint!("password: ");
    }
    let mut line = String::new();
    if let Err(e) = io::stdin().lock().read_line(&mut line) {
        eprintln!("wsgate: reading the password: {e}");
        return ExitCode::from(1);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("wsgate: empty password");
        return ExitCode::from(2);
    }
    println!("{}", hash_password(password));
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate: {e}\nTry 'wsgate --help'.");
            return ExitCode::from(2);
        }
    };
    if args.hash_password {
        return hash_password_command();
    }
    let log_level = pick(args.log.clone(), "WSGATE_LOG");
    if let Err(ConfigError(e)) = init_logging(log_level) {
        eprintln!("wsgate: {e}");
        return ExitCode::from(2);
    }
    let (config, users, random_secret) = match configure(args) {
        Ok(c) => c,
        Err(ConfigError(e)) => {
            eprintln!("wsgate: {e}");
            return ExitCode::from(2);
        }
    };
    if random_secret {
        log::warn!(
            "no WSGATE_SECRET or --secret-file: using a random secret; tokens won't survive a restart"
        );
    }
    let gateway = match Gateway::bind(config, Arc::new(users)).and_then(|mut g| {
        g.handle_signals()?;
        Ok(g)
    }) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("wsgate: cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    match gateway.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsgate: {e}");
            ExitCode::from(1)
        }
    }
}
