//! The WebSocket opening handshake (RFC 6455 §4.2.1) and the credential it
//! carries (PROTOCOL §2).
//!
//! [`validate`] decides everything that can be decided from the request
//! alone: is this a valid upgrade, which mode, which room, and which single
//! credential. Checking that credential (signature, session, ticket) is the
//! core's job; a [`Reject`] from either becomes an HTTP response before any
//! WebSocket exists.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::params::{Params, cookie_values};
use super::{Method, Request, Response};
use crate::auth::valid_room_name;
use crate::config::Origin;

/// The subprotocol that selects JSON mode.
pub const JSON_PROTOCOL: &str = "wsgate.json";

/// How a WebSocket's messages are written (PROTOCOL §3, §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Lines of text: `USER: LINE` (the default).
    Text,
    /// One JSON object a frame (`Sec-WebSocket-Protocol: wsgate.json`).
    Json,
}

impl Mode {
    /// The name logs use.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Text => "text",
            Mode::Json => "json",
        }
    }
}

/// The room a connection joins when it names none.
pub const DEFAULT_ROOM: &str = "lobby";

/// The one credential an upgrade request carries.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Carrier {
    /// `Authorization: Bearer JWT`.
    Bearer(String),
    /// Path `/ws/JWT`.
    Path(String),
    /// Query `?token=JWT`.
    Query(String),
    /// Query `?ticket=T`.
    Ticket(String),
    /// The session cookie; the `Origin` was already checked.
    Cookie(Vec<u8>),
    /// `Authorization: Basic` or `?username=&password=` (opt-in only).
    Password {
        /// The user name as sent.
        user: String,
        /// The password as sent.
        password: String,
    },
    /// Accepted by an embedding program's authenticator.
    Custom,
}

impl Carrier {
    /// What kind of carrier this is, for logs (never the credential).
    pub fn kind(&self) -> &'static str {
        match self {
            Carrier::Bearer(_) => "bearer",
            Carrier::Path(_) => "path",
            Carrier::Query(_) => "query",
            Carrier::Ticket(_) => "ticket",
            Carrier::Cookie(_) => "cookie",
            Carrier::Password { .. } => "password",
            Carrier::Custom => "custom",
        }
    }
}

impl fmt::Debug for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Carrier::{}([redacted])", self.kind())
    }
}

/// A valid upgrade request, credential not yet checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Upgrade {
    /// The `Sec-WebSocket-Accept` value for the `101`.
    pub accept: String,
    /// Text mode, or JSON mode when `wsgate.json` was offered.
    pub mode: Mode,
    /// The room to join.
    pub room: String,
    /// What a resuming client saw last (`since`, `epoch`), if it says.
    pub resume: Option<Resume>,
    /// The credential.
    pub carrier: Carrier,
}

/// A JSON-mode client resuming (PROTOCOL §4): it has seen the room's
/// messages up to `since` (0: none), numbered in `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resume {
    /// The last `seq` the client has.
    pub since: u64,
    /// The epoch that `since` counts in, as the server gave it.
    pub epoch: Option<String>,
}

/// The longest `epoch` taken (the server's are 16 characters).
pub const MAX_EPOCH_LEN: usize = 64;

/// Why an upgrade was refused; each maps to exactly one HTTP status.
///
/// The public text says what class of thing was wrong, never which check
/// of a signature failed, and never echoes a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reject {
    /// `400`: not a valid upgrade, or a malformed one.
    BadRequest(&'static str),
    /// `405`: `/ws` asked with another method than `GET`.
    MethodNotAllowed,
    /// `426`: `Sec-WebSocket-Version` is not 13.
    Version,
    /// `401`: no credential, or one that does not check out.
    Unauthorized(&'static str),
    /// `403`: authenticated, but not allowed (origin, room).
    Forbidden(&'static str),
    /// `431`: the request head is too large or has too many headers.
    HeadTooLarge(&'static str),
    /// `429`: too many attempts or connections; retry after the seconds given.
    TooMany(&'static str, u64),
    /// `503`: the server is at a limit; retry after the seconds given.
    Unavailable(&'static str, u64),
}

impl Reject {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Reject::BadRequest(_) => 400,
            Reject::MethodNotAllowed => 405,
            Reject::Version => 426,
            Reject::Unauthorized(_) => 401,
            Reject::Forbidden(_) => 403,
            Reject::HeadTooLarge(_) => 431,
            Reject::TooMany(..) => 429,
            Reject::Unavailable(..) => 503,
        }
    }

    /// The short public phrase.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::BadRequest(r)
            | Reject::Unauthorized(r)
            | Reject::Forbidden(r)
            | Reject::HeadTooLarge(r)
            | Reject::TooMany(r, _)
            | Reject::Unavailable(r, _) => r,
            Reject::MethodNotAllowed => "method not allowed",
            Reject::Version => "unsupported websocket version",
        }
    }

    /// The HTTP response that carries this refusal.
    pub fn response(self) -> Response {
        let r = Response::detail(self.status(), self.reason());
        match self {
            Reject::MethodNotAllowed => r.header("Allow", "GET"),
            Reject::Version => r.header("Sec-WebSocket-Version", "13"),
            Reject::Unauthorized(_) => {
                r.header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
            }
            Reject::TooMany(_, secs) | Reject::Unavailable(_, secs) => {
                r.header("Retry-After", secs.to_string())
            }
            _ => r,
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

/// What [`validate`] needs to know of the configuration.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct UpgradePolicy<'a> {
    /// Accept `Authorization: Basic` and `?username=&password=`.
    pub allow_password_auth: bool,
    /// The session cookie's name.
    pub cookie_name: &'a str,
    /// Origins allowed besides the request's own host.
    pub allowed_origins: &'a [Origin],
    /// A same-host `Origin` must be `https` (the cookie is `Secure`), except
    /// on loopback hosts, which browsers treat as secure over plain HTTP.
    /// Off with `--insecure-cookie`.
    pub require_https: bool,
}

impl<'a> UpgradePolicy<'a> {
    /// The defaults: no password upgrades, no extra origins, `https`
    /// required for a same-host origin, the cookie named `cookie_name`.
    pub fn new(cookie_name: &'a str) -> UpgradePolicy<'a> {
        UpgradePolicy {
            allow_password_auth: false,
            cookie_name,
            allowed_origins: &[],
            require_https: true,
        }
    }
}

/// True when `path` is the upgrade endpoint (`/ws` or `/ws/TOKEN`).
pub fn is_upgrade_path(path: &str) -> bool {
    path == "/ws" || path.starts_with("/ws/")
}

/// A valid WebSocket handshake, before its credential is looked at.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Handshake {
    /// The `Sec-WebSocket-Accept` value for the `101`.
    pub accept: String,
    /// Text mode, or JSON mode when `wsgate.json` was offered.
    pub mode: Mode,
    /// The room to join.
    pub room: String,
    /// What a resuming client saw last.
    pub resume: Option<Resume>,
    /// The decoded query.
    pub query: Params,
}

impl Handshake {
    /// The upgrade, once a credential is known.
    pub fn with(self, carrier: Carrier) -> Upgrade {
        Upgrade {
            accept: self.accept,
            mode: self.mode,
            room: self.room,
            resume: self.resume,
            carrier,
        }
    }
}

/// Validates an upgrade request to `/ws` or `/ws/TOKEN` and picks out its
/// single credential.
pub fn validate(req: &Request, policy: &UpgradePolicy<'_>) -> Result<Upgrade, Reject> {
    let handshake = handshake(req)?;
    let carrier = credential(req, &handshake.query, policy)?;
    Ok(handshake.with(carrier))
}

/// Checks the WebSocket handshake itself (RFC 6455 §4.2.1), the mode and
/// the room.
pub fn handshake(req: &Request) -> Result<Handshake, Reject> {
    if req.method != Method::Get {
        return Err(Reject::MethodNotAllowed);
    }
    if req.minor_version < 1
        || !req.has_token("upgrade", "websocket")
        || !req.has_token("connection", "upgrade")
    {
        return Err(Reject::BadRequest("not a websocket upgrade"));
    }
    let key = match req.header("sec-websocket-key") {
        // why: into the stack (a 16-byte key is 24 characters; anything
        // longer is too long for the buffer, and refused).
        Ok(Some(k)) if STANDARD.decode_slice(k, &mut [0; 18]) == Ok(16) => k,
        _ => return Err(Reject::BadRequest("bad Sec-WebSocket-Key")),
    };
    if req.header("sec-websocket-version") != Ok(Some("13")) {
        return Err(Reject::Version);
    }
    let json = req.header_values("sec-websocket-protocol").any(|v| {
        v.split(|&b| b == b',')
            .any(|p| p.trim_ascii() == JSON_PROTOCOL.as_bytes())
    });
    let mode = if json { Mode::Json } else { Mode::Text };
    let query = match &req.query {
        Some(q) => Params::decode(q.as_bytes())
            .map_err(|_| Reject::BadRequest("repeated query parameter"))?,
        None => Params::default(),
    };
    let room = query.get("room").unwrap_or(DEFAULT_ROOM).to_string();
    if !valid_room_name(&room) {
        return Err(Reject::BadRequest("invalid room name"));
    }
    let resume = resume(&query, mode)?;
    Ok(Handshake {
        accept: accept_key(key.as_bytes()),
        mode,
        room,
        resume,
        query,
    })
}

/// Reads `since` and `epoch` (JSON mode only; `since` decimal digits, an
/// epoch at most [`MAX_EPOCH_LEN`] characters of `A-Za-z0-9-_.:`).
fn resume(query: &Params, mode: Mode) -> Result<Option<Resume>, Reject> {
    let (since, epoch) = match (query.get("since"), query.get("epoch")) {
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err(Reject::BadRequest("epoch needs since")),
        (Some(since), epoch) => (since, epoch),
    };
    if mode != Mode::Json {
        return Err(Reject::BadRequest(
            "since needs the wsgate.json subprotocol",
        ));
    }
    let since = Some(since)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or(Reject::BadRequest("invalid since"))?;
    let epoch_ok = |e: &&str| {
        !e.is_empty()
            && e.len() <= MAX_EPOCH_LEN
            && e.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    let epoch = match epoch {
        Some(e) => Some(
            Some(e)
                .filter(epoch_ok)
                .ok_or(Reject::BadRequest("invalid epoch"))?,
        ),
        None => None,
    };
    Ok(Some(Resume {
        since,
        epoch: epoch.map(str::to_string),
    }))
}

/// Finds exactly one credential (PROTOCOL §2); a cookie only with an
/// allowed `Origin`.
pub fn credential(
    req: &Request,
    query: &Params,
    policy: &UpgradePolicy<'_>,
) -> Result<Carrier, Reject> {
    let mut found: Vec<Carrier> = Vec::new();
    let mut authz = req.header_values("authorization");
    if let Some(value) = authz.next() {
        if authz.next().is_some() {
            return Err(Reject::BadRequest("more than one credential"));
        }
        found.push(authorization(value, policy)?);
    }
    if let Some(token) = req.path.strip_prefix("/ws/") {
        if token.is_empty() || token.contains('/') {
            return Err(Reject::Unauthorized("invalid token"));
        }
        found.push(Carrier::Path(token.to_string()));
    }
    if let Some(token) = query.get("token") {
        found.push(Carrier::Query(token.to_string()));
    }
    if let Some(ticket) = query.get("ticket") {
        found.push(Carrier::Ticket(ticket.to_string()));
    }
    match (query.get("username"), query.get("password")) {
        (None, None) => {}
        (Some(user), Some(password)) if policy.allow_password_auth => {
            found.push(Carrier::Password {
                user: user.to_string(),
                password: password.to_string(),
            });
        }
        (Some(_), Some(_)) => return Err(Reject::Unauthorized("password authentication disabled")),
        _ => return Err(Reject::BadRequest("username and password go together")),
    }
    match found.len() {
        1 => return Ok(found.remove(0)),
        0 => {}
        _ => return Err(Reject::BadRequest("more than one credential")),
    }
    let cookies = cookie_values(req.header_values("cookie"), policy.cookie_name);
    match cookies.as_slice() {
        [] => Err(Reject::Unauthorized("missing credentials")),
        [one] => {
            check_origin(req, policy)?;
            Ok(Carrier::Cookie(one.to_vec()))
        }
        _ => Err(Reject::BadRequest("more than one credential")),
    }
}

/// Splits an `Authorization` value into its scheme and the credentials
/// after the first space, both trimmed (RFC 9110 §11.4: `auth-scheme SP
/// token68`). A value that is not UTF-8 holds no valid credential: `401
/// invalid token`.
fn split_authorization(value: &[u8]) -> Result<(&str, &str), Reject> {
    let text = std::str::from_utf8(value)
        .map_err(|_| Reject::Unauthorized("invalid token"))?
        .trim();
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    Ok((scheme, rest.trim()))
}

/// The token of an `Authorization: Bearer TOKEN` value (RFC 6750 §2.1),
/// the one reading of it for every endpoint (`/ws`, `/ws-ticket`).
///
/// The scheme is matched without regard to case; the token must be
/// non-empty and hold no whitespace (`Bearer a b` is refused, not read as
/// `a b`). Any other scheme is `401 unsupported authorization scheme`; a
/// missing or malformed token is `401 invalid token`.
pub fn bearer_token(value: &[u8]) -> Result<&str, Reject> {
    let (scheme, token) = split_authorization(value)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Reject::Unauthorized("unsupported authorization scheme"));
    }
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(Reject::Unauthorized("invalid token"));
    }
    Ok(token)
}

/// Reads an `Authorization` header value: `Basic` (when allowed), else
/// [`bearer_token`].
fn authorization(value: &[u8], policy: &UpgradePolicy<'_>) -> Result<Carrier, Reject> {
    let (scheme, rest) = split_authorization(value)?;
    if scheme.eq_ignore_ascii_case("basic") {
        if !policy.allow_password_auth {
            return Err(Reject::Unauthorized("password authentication disabled"));
        }
        let decoded = STANDARD
            .decode(rest)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or(Reject::BadRequest("malformed basic credentials"))?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or(Reject::BadRequest("malformed basic credentials"))?;
        return Ok(Carrier::Password {
            user: user.to_string(),
            password: password.to_string(),
        });
    }
    bearer_token(value).map(|token| Carrier::Bearer(token.to_string()))
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455
/// §4.2.2): base64 of the SHA-1 of the key and the protocol's GUID.
pub fn accept_key(key: &[u8]) -> String {
    use sha1::Digest;
    let mut sha1 = sha1::Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    STANDARD.encode(sha1.finalize())
}

/// A cookie is sent by browsers on cross-site requests too, so a cookie
/// upgrade needs an allowed `Origin` (cross-site WebSocket hijacking).
pub fn check_origin(req: &Request, policy: &UpgradePolicy<'_>) -> Result<(), Reject> {
    origin_rule(req, policy).map_err(|_| Reject::Forbidden("origin not allowed"))
}

/// As [`check_origin`], but an `Err` says which rule refused the `Origin`,
/// for the operator's log line (the client only ever hears "origin not
/// allowed").
pub fn origin_rule(req: &Request, policy: &UpgradePolicy<'_>) -> Result<(), &'static str> {
    let origin = match req.header("origin") {
        Ok(Some("null")) => return Err("a null Origin (a sandboxed page, a file, a redirect)"),
        Ok(Some(o)) => {
            Origin::parse(o).ok_or("not scheme://host[:port] (no path, not even a trailing /)")?
        }
        Ok(None) => return Err("no Origin header"),
        Err(()) => return Err("more than one Origin header, or not UTF-8"),
    };
    if policy.allowed_origins.contains(&origin) {
        return Ok(());
    }
    let host = match req.header("host") {
        Ok(Some(host)) => host,
        _ => return Err("no single Host header to compare it with"),
    };
    if !origin.is_same_host(host) {
        return Err("not an --allowed-origin, and not the same host and port as Host");
    }
    if origin.scheme != "https" && policy.require_https && !origin.is_loopback() {
        return Err("http:// off loopback: use https, or --insecure-cookie for testing");
    }
    Ok(())
}

/// The login-CSRF rule for state-changing `POST`s a browser may send with
/// or for a cookie (`/login`, `/logout`, `/ws-ticket` with a cookie): a
/// request without `Origin` comes from a non-browser client and passes;
/// with one, it must pass [`check_origin`] (`null` never does).
pub fn check_post_origin(req: &Request, policy: &UpgradePolicy<'_>) -> Result<(), Reject> {
    match req.header_values("origin").next() {
        None => Ok(()),
        Some(_) => check_origin(req, policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(target: &str, extra: &str) -> Request {
        let text = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        parse_head(text.as_bytes(), 64, 8192).unwrap().unwrap().0
    }

    fn check(target: &str, extra: &str) -> Result<Upgrade, Reject> {
        let allowed = [Origin::parse("https://app.example.com").unwrap()];
        validate(
            &request(target, extra),
            &UpgradePolicy {
                allow_password_auth: false,
                cookie_name: "__Host-wsgate",
                allowed_origins: &allowed,
                require_https: true,
            },
        )
    }

    #[test]
    fn the_accept_key_is_rfc_6455s() {
        // RFC 6455 §1.3's example, and tungstenite's own answer.
        let key = b"dGhlIHNhbXBsZSBub25jZQ==";
        assert_eq!(accept_key(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            accept_key(key),
            tungstenite::handshake::derive_accept_key(key)
        );
    }

    #[test]
    fn accepts_each_carrier() {
        let u = check("/ws", "Authorization: Bearer a.b.c\r\n").unwrap();
        assert_eq!(u.carrier, Carrier::Bearer("a.b.c".into()));
        // RFC 6455 §1.3's example key.
        assert_eq!(u.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(u.room, "lobby");
        assert_eq!(u.mode, Mode::Text);
        assert_eq!(
            check("/ws/a.b.c", "").unwrap().carrier,
            Carrier::Path("a.b.c".into())
        );
        assert_eq!(
            check("/ws?token=a.b.c&room=dev", "").unwrap().carrier,
            Carrier::Query("a.b.c".into())
        );
        assert_eq!(
            check("/ws?ticket=T", "").unwrap().carrier,
            Carrier::Ticket("T".into())
        );
        let c = check(
            "/ws",
            "Cookie: __Host-wsgate=SID\r\nOrigin: http://127.0.0.1:8080\r\n",
        )
        .unwrap();
        assert_eq!(c.carrier, Carrier::Cookie(b"SID".to_vec()));
        let j = check(
            "/ws?room=dev",
            "Authorization: Bearer t\r\nSec-WebSocket-Protocol: chat, wsgate.json\r\n",
        )
        .unwrap();
        assert_eq!(j.mode, Mode::Json);
        assert_eq!(j.room, "dev");
    }

    #[test]
    fn handshake_refusals() {
        let base = |extra: &str, drop: &str| {
            let text = format!(
                "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
                 Authorization: Bearer t\r\n{extra}\r\n"
            )
            .replace(drop, "");
            let req = parse_head(text.as_bytes(), 64, 8192).unwrap().unwrap().0;
            validate(
                &req,
                &UpgradePolicy {
                    allow_password_auth: false,
                    cookie_name: "c",
                    allowed_origins: &[],
                    require_https: true,
                },
            )
            .map(|_| ())
        };
        assert_eq!(base("", ""), Ok(()));
        let key_line = format!("Sec-WebSocket-Key: {KEY}\r\n");
        for drop in [
            "Upgrade: websocket\r\n",
            "Connection: Upgrade\r\n",
            key_line.as_str(),
        ] {
            assert_eq!(base("", drop).unwrap_err().status(), 400, "{drop}");
        }
        assert_eq!(
            base("", "Sec-WebSocket-Version: 13\r\n"),
            Err(Reject::Version)
        );
        assert_eq!(
            base("", "Sec-WebSocket-Version: 13").unwrap_err().status(),
            426
        );
        assert_eq!(
            base("Sec-WebSocket-Version: 8\r\n", "").unwrap_err(),
            Reject::Version
        );
        // A key that is not 16 bytes of base64.
        let short = "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let req = parse_head(short.as_bytes(), 64, 8192).unwrap().unwrap().0;
        let policy = UpgradePolicy {
            allow_password_auth: false,
            cookie_name: "c",
            allowed_origins: &[],
            require_https: true,
        };
        assert_eq!(validate(&req, &policy).unwrap_err().status(), 400);
        let post = short.replace("GET", "POST");
        let req = parse_head(post.as_bytes(), 64, 8192).unwrap().unwrap().0;
        assert_eq!(
            validate(&req, &policy).unwrap_err(),
            Reject::MethodNotAllowed
        );
    }

    #[test]
    fn exactly_one_credential() {
        let two = [
            ("/ws/a.b.c", "Authorization: Bearer t\r\n"),
            ("/ws?token=a&ticket=b", ""),
            ("/ws?token=a&token=b", ""),
            ("/ws?token=a", "Authorization: Bearer t\r\n"),
            (
                "/ws",
                "Authorization: Bearer t\r\nAuthorization: Bearer t\r\n",
            ),
            (
                "/ws",
                "Cookie: __Host-wsgate=a\r\nCookie: __Host-wsgate=b\r\nOrigin: http://127.0.0.1:8080\r\n",
            ),
        ];
        for (target, extra) in two {
            assert_eq!(
                check(target, extra).unwrap_err().status(),
                400,
                "{target} {extra}"
            );
        }
        // A cookie beside another credential is ignored, origin and all.
        let u = check(
            "/ws?token=t",
            "Cookie: __Host-wsgate=a\r\nOrigin: https://evil.example\r\n",
        )
        .unwrap();
        assert_eq!(u.carrier, Carrier::Query("t".into()));
        assert_eq!(
            check("/ws", "").unwrap_err(),
            Reject::Unauthorized("missing credentials")
        );
        assert_eq!(
            check("/ws", "Authorization: Digest x\r\n")
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            check("/ws", "Authorization: Basic YTpi\r\n")
                .unwrap_err()
                .status(),
            401
        );
        assert_eq!(
            check("/ws?username=a&password=b", "").unwrap_err().status(),
            401
        );
        assert_eq!(
            check("/ws?room=bad%20name&token=t", "")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            check(&format!("/ws?room={}&token=t", "a".repeat(65)), "")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn cookie_needs_an_allowed_origin() {
        let cookie = "Cookie: __Host-wsgate=SID\r\n";
        let ok = |origin: &str| check("/ws", &format!("{cookie}Origin: {origin}\r\n")).map(|_| ());
        assert_eq!(ok("http://127.0.0.1:8080"), Ok(()));
        assert_eq!(ok("https://app.example.com"), Ok(()));
        assert_eq!(ok("https://app.example.com:443"), Ok(()));
        for bad in [
            "null",
            "http://127.0.0.1:8081",
            "http://127.0.0.1",
            "https://app.example.com.evil.net",
            "https://evil.net",
            "http://app.example.com",
            "http://127.0.0.1:8080/",
            "",
        ] {
            assert_eq!(
                ok(bad),
                Err(Reject::Forbidden("origin not allowed")),
                "{bad:?}"
            );
        }
        assert_eq!(
            check("/ws", cookie).map(|_| ()),
            Err(Reject::Forbidden("origin not allowed"))
        );
    }

    #[test]
    fn a_same_host_origin_must_be_https_off_loopback() {
        let text = |origin: &str| {
            format!(
                "GET /ws HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
                 Sec-WebSocket-Version: 13\r\nCookie: c=SID\r\nOrigin: {origin}\r\n\r\n"
            )
        };
        let check = |origin: &str, require_https: bool| {
            let req = parse_head(text(origin).as_bytes(), 64, 8192)
                .unwrap()
                .unwrap()
                .0;
            let policy = UpgradePolicy {
                allow_password_auth: false,
                cookie_name: "c",
                allowed_origins: &[],
                require_https,
            };
            validate(&req, &policy).map(|_| ())
        };
        assert_eq!(check("https://chat.example", true), Ok(()));
        assert_eq!(
            check("http://chat.example", true),
            Err(Reject::Forbidden("origin not allowed"))
        );
        assert_eq!(check("http://chat.example", false), Ok(()));
        // Loopback pages are secure contexts over plain HTTP.
        assert!(
            Origin::parse("http://localhost:8080")
                .unwrap()
                .is_loopback()
        );
        assert!(
            Origin::parse("http://127.0.0.1:8080")
                .unwrap()
                .is_loopback()
        );
        assert!(Origin::parse("http://[::1]:8080").unwrap().is_loopback());
        assert!(
            !Origin::parse("http://127.0.0.1.evil.example")
                .unwrap()
                .is_loopback()
        );
    }

    #[test]
    fn password_carriers_when_allowed() {
        let req = request("/ws?username=alice&password=wonder%20land", "");
        let policy = UpgradePolicy {
            allow_password_auth: true,
            cookie_name: "c",
            allowed_origins: &[],
            require_https: true,
        };
        assert_eq!(
            validate(&req, &policy).unwrap().carrier,
            Carrier::Password {
                user: "alice".into(),
                password: "wonder land".into()
            }
        );
        // "alice:wonderland"
        let req = request("/ws", "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n");
        assert_eq!(
            validate(&req, &policy).unwrap().carrier,
            Carrier::Password {
                user: "alice".into(),
                password: "wonderland".into()
            }
        );
    }

    #[test]
    fn bearer_token_table() {
        const INVALID: Reject = Reject::Unauthorized("invalid token");
        const SCHEME: Reject = Reject::Unauthorized("unsupported authorization scheme");
        let table: &[(&[u8], Result<&str, Reject>)] = &[
            (b"Bearer a.b.c", Ok("a.b.c")),
            (b"bearer a.b.c", Ok("a.b.c")),
            (b"BEARER a.b.c", Ok("a.b.c")),
            (b"  Bearer   a.b.c  ", Ok("a.b.c")),
            (b"Bearer a.b.c\t", Ok("a.b.c")),
            // Inner whitespace: refused, never read as one token.
            (b"Bearer a b", Err(INVALID)),
            (b"Bearer a.b\tc", Err(INVALID)),
            (b"Bearer a\xc2\xa0b", Err(INVALID)),
            // No token.
            (b"Bearer", Err(INVALID)),
            (b"Bearer ", Err(INVALID)),
            (b"Bearer    ", Err(INVALID)),
            (b"", Err(SCHEME)),
            // Not UTF-8.
            (b"Bearer a\xffb", Err(INVALID)),
            // Other schemes, and a tab where the space belongs.
            (b"Basic YTpi", Err(SCHEME)),
            (b"Digest x", Err(SCHEME)),
            (b"Bearer\ta.b.c", Err(SCHEME)),
            (b"Bearerx a.b.c", Err(SCHEME)),
            (b"a.b.c", Err(SCHEME)),
        ];
        for (value, want) in table {
            assert_eq!(
                bearer_token(value),
                *want,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn an_upgrade_reads_bearer_tokens_as_bearer_token_does() {
        for (value, want) in [
            ("Bearer a.b.c", Ok(Carrier::Bearer("a.b.c".into()))),
            ("Bearer a b", Err(Reject::Unauthorized("invalid token"))),
            ("Bearer", Err(Reject::Unauthorized("invalid token"))),
            (
                "Token a.b.c",
                Err(Reject::Unauthorized("unsupported authorization scheme")),
            ),
        ] {
            let got = check("/ws", &format!("Authorization: {value}\r\n")).map(|u| u.carrier);
            assert_eq!(got, want, "{value:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let text = format!("{:?}", Carrier::Bearer("SECRET".into()));
        assert!(!text.contains("SECRET"));
    }
}
