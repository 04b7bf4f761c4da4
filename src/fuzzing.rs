//! Fuzz entry points, one per target, shared by the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` and by `cargo test`, which replays every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the
//! same functions on stable (compiled only for `cfg(test)` and
//! `cfg(fuzzing)`).
//!
//! Each entry point takes arbitrary bytes and asserts properties; a panic
//! is a bug in the code under test or in a property stated here:
//!
//! - [`request_head`]: the request-head parser and the upgrade checks
//!   (handshake, the one credential, log redaction);
//! - [`jwt`]: the HS256 verifier, both on raw bytes (anything it accepts
//!   was signed with a configured key) and on tokens built from
//!   fuzzer-chosen claims (its verdict equals an independent model's);
//! - [`params`]: query, form and cookie decoding and query redaction;
//! - [`core_ops`]: the sans-IO core driven through [`crate::testkit`] by a
//!   sequence of operations, with its invariants checked after each one.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD,
};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::auth::jwt::{DEFAULT_MAX_TOKEN_LEN, JwtConfig, Secret, TokenError};
use crate::auth::users::{Users, VerifiedUser};
use crate::auth::{
    MAX_ROOM_NAME_LEN, MAX_USER_NAME_LEN, valid_role, valid_room_name, valid_user_name,
};
use crate::config::{Config, Origin, PerUserPolicy};
use crate::core::ConnId;
use crate::http::params::{DuplicateName, Params, cookie_values, redact_query};
use crate::http::upgrade::{self, Carrier, Reject, UpgradePolicy};
use crate::http::{self, Method, Request};
use crate::testkit::{
    Harness, capture_logs, client_frame, form_post, stop_capturing_logs, take_log_lines,
    upgrade_request,
};

// ----------------------------------------------------------------------
// request_head

/// The request-head parser and the upgrade checks.
///
/// Properties: a complete head's length is within the input and no strict
/// prefix of it is refused (a head dribbled byte by byte is never refused
/// early); tighter limits never accept what looser ones refuse; the
/// redacted target shows `[redacted]` for every credential parameter and
/// for a path token; [`upgrade::validate`] is [`upgrade::handshake`] then
/// [`upgrade::credential`]; and the credential found agrees with an
/// independent count of the credentials in the request (exactly one, a
/// cookie only with an allowed `Origin`, a password only when allowed).
pub fn request_head(data: &[u8]) {
    let parsed = http::parse_head(data, 64, 8192);
    if let Ok(Some((_, small_len))) = http::parse_head(data, 4, 256) {
        assert!(
            matches!(&parsed, Ok(Some((_, len))) if *len == small_len),
            "tighter limits accepted a head the default limits do not"
        );
    }
    let Ok(Some((req, len))) = parsed else {
        return;
    };
    assert!(
        len > 0 && len <= data.len(),
        "head length {len} out of range"
    );
    for cut in [len - 1, len / 2] {
        assert!(
            matches!(http::parse_head(&data[..cut], 64, 8192), Ok(None)),
            "a prefix ({cut} of {len} bytes) of a complete head is not `Partial`"
        );
    }
    assert!(req.path.starts_with('/') && !req.path.contains('?'));
    for (name, _) in &req.headers {
        assert_eq!(
            *name,
            name.to_ascii_lowercase(),
            "header names are lowercased"
        );
    }
    let _ = (req.keep_alive(), req.body_length(), req.header("host"));
    check_redacted_target(&req);

    let handshake = upgrade::handshake(&req);
    match &handshake {
        Ok(h) => {
            assert!(req.method == Method::Get && req.minor_version >= 1);
            assert!(valid_room_name(&h.room), "room {:?} accepted", h.room);
            assert_eq!(h.accept.len(), 28, "an accept key is 20 bytes in base64");
        }
        Err(rej) => assert!(matches!(rej.status(), 400 | 405 | 426), "{rej}"),
    }
    let allowed = [Origin::parse("https://app.example.com").expect("a valid origin")];
    let policies = [
        UpgradePolicy {
            allow_password_auth: false,
            cookie_name: "__Host-wsgate",
            allowed_origins: &[],
            require_https: true,
        },
        UpgradePolicy {
            allow_password_auth: true,
            cookie_name: "wsgate",
            allowed_origins: &allowed,
            require_https: false,
        },
    ];
    for policy in &policies {
        let validated = upgrade::validate(&req, policy).map(|u| u.carrier);
        let Ok(h) = &handshake else {
            assert_eq!(validated.err(), handshake.as_ref().err().copied());
            continue;
        };
        let carrier = upgrade::credential(&req, &h.query, policy);
        assert_eq!(validated, carrier, "validate is handshake then credential");
        check_credential(&req, &h.query, policy, &carrier);
    }
}

/// The path token and every credential parameter of the query read
/// `[redacted]`; everything else is as sent.
fn check_redacted_target(req: &Request) {
    let redacted = req.redacted_target();
    let (path, query) = match redacted.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (redacted.as_str(), None),
    };
    if req.path.starts_with("/ws/") {
        assert_eq!(path, "/ws/[redacted]");
    } else {
        assert_eq!(path, req.path);
    }
    assert_eq!(query.is_some(), req.query.is_some());
    if let (Some(original), Some(redacted)) = (&req.query, query) {
        check_redacted_query(original, redacted);
    }
}

/// The redacted query keeps nothing but a well-formed `room` piece of the
/// original: it is empty (a query of empty pieces), `[redacted]`,
/// `room=NAME` or `room=NAME&[redacted]`.
fn check_redacted_query(original: &str, redacted: &str) {
    let (room, rest) = match redacted.split_once('&') {
        Some((room, rest)) => (Some(room), Some(rest)),
        None if redacted.starts_with("room=") => (Some(redacted), None),
        None => (None, Some(redacted)),
    };
    if let Some(room) = room {
        let name = room.strip_prefix("room=").expect("a room piece");
        assert!(crate::auth::valid_room_name(name), "{room:?} kept");
        assert!(original.split('&').any(|p| p == room), "{room:?} invented");
    }
    match rest {
        None => {}
        Some("[redacted]") => {}
        Some("") => assert!(room.is_none() && original.split('&').all(str::is_empty)),
        Some(other) => panic!("the log keeps {other:?} of {original:?}"),
    }
}

/// Compares the credential found with an independent reading of the
/// request.
fn check_credential(
    req: &Request,
    query: &Params,
    policy: &UpgradePolicy<'_>,
    found: &Result<Carrier, Reject>,
) {
    let authorization = req.header_values("authorization").count();
    let path_token = req.path.starts_with("/ws/");
    let query_token = query.get("token").is_some();
    let ticket = query.get("ticket").is_some();
    let password = query.get("username").is_some() || query.get("password").is_some();
    let sources = authorization
        + usize::from(path_token)
        + usize::from(query_token)
        + usize::from(ticket)
        + usize::from(password);
    let cookies = cookie_values(req.header_values("cookie"), policy.cookie_name);
    let carrier = match found {
        Err(rej) => {
            assert!(matches!(rej.status(), 400 | 401 | 403), "{rej}");
            if sources == 0 && cookies.is_empty() {
                assert_eq!(*rej, Reject::Unauthorized("missing credentials"));
            }
            return;
        }
        Ok(carrier) => carrier,
    };
    assert!(sources <= 1, "{sources} credentials accepted as one");
    match carrier {
        Carrier::Bearer(t) => {
            assert_eq!(authorization, 1);
            assert!(!t.is_empty() && !t.contains(char::is_whitespace));
        }
        Carrier::Path(t) => {
            assert!(!t.is_empty() && !t.contains('/'));
            assert_eq!(req.path, format!("/ws/{t}"));
        }
        Carrier::Query(t) => assert_eq!(query.get("token"), Some(t.as_str())),
        Carrier::Ticket(t) => assert_eq!(query.get("ticket"), Some(t.as_str())),
        Carrier::Password { user, password } => {
            assert!(
                policy.allow_password_auth,
                "a password carrier while disabled"
            );
            let from_query = query.get("username") == Some(user.as_str())
                && query.get("password") == Some(password.as_str());
            assert!(from_query || authorization == 1);
        }
        Carrier::Cookie(value) => {
            assert_eq!(sources, 0, "a cookie judged beside another credential");
            assert_eq!(cookies, [value.as_slice()]);
            let origin = req
                .header("origin")
                .ok()
                .flatten()
                .and_then(Origin::parse)
                .expect("a cookie upgrade without a valid Origin");
            let same_host = req
                .header("host")
                .ok()
                .flatten()
                .is_some_and(|host| origin.is_same_host(host));
            let secure = origin.scheme == "https" || origin.is_loopback() || !policy.require_https;
            assert!(
                policy.allowed_origins.contains(&origin) || (same_host && secure),
                "a cookie upgrade from a foreign or plain-HTTP origin"
            );
        }
        Carrier::Custom => panic!("credential() never makes a custom carrier"),
    }
}

// ----------------------------------------------------------------------
// params

/// Query, form and cookie decoding, and query redaction.
///
/// Properties: [`Params::decode`] agrees with `form_urlencoded` pair by
/// pair and refuses exactly the first repeated name; a decoded map encoded
/// again decodes to the same map; [`redact_query`] redacts every
/// credential value, keeps every name, and is idempotent; every value
/// [`cookie_values`] returns is a slice of its input holding no `;`.
pub fn params(data: &[u8]) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    let mut seen = HashSet::new();
    let first_repeat = pairs
        .iter()
        .find(|(n, _)| !seen.insert(n.as_str()))
        .map(|(n, _)| n.clone());
    match Params::decode(data) {
        Ok(decoded) => {
            assert_eq!(first_repeat, None, "a repeated name was accepted");
            for (name, value) in &pairs {
                assert_eq!(decoded.get(name), Some(value.as_str()));
            }
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            assert_eq!(Params::decode(encoded.as_bytes()), Ok(decoded));
        }
        Err(DuplicateName(name)) => assert_eq!(Some(name), first_repeat),
    }

    let text = String::from_utf8_lossy(data);
    let redacted = redact_query(&text);
    check_redacted_query(&text, &redacted);
    assert_eq!(redact_query(&redacted), redacted, "redaction is idempotent");

    // Cookies: `NAME\0HEADER\nHEADER...`, or the session cookie's name.
    let (name, headers) = match data.iter().position(|&b| b == 0) {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => ("__Host-wsgate".to_string(), data),
    };
    let start = headers.as_ptr() as usize;
    let end = start + headers.len();
    let values = cookie_values(headers.split(|&b| b == b'\n'), &name);
    for value in &values {
        let at = value.as_ptr() as usize;
        assert!(
            value.is_empty() || (at >= start && at + value.len() <= end),
            "a cookie value is not a slice of its header"
        );
        assert!(!value.contains(&b';') && !value.contains(&b'\n'));
    }
    assert!(values.len() <= headers.iter().filter(|&&b| b == b'=').count());
}

// ----------------------------------------------------------------------
// jwt

/// The verifier's first key (it also holds the RFC 7515 A.1 key).
const JWT_KEY: &[u8] = b"wsgate-fuzzing-jwt-key-0123456789abcdef";

/// A key the verifier does not hold.
const WRONG_KEY: &[u8] = b"wsgate-fuzzing-wrong-key-0123456789abcdef";

/// RFC 7515 Appendix A.1's HMAC key, base64url.
const RFC7515_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// RFC 7515 Appendix A.1's token expires at this time (UNIX seconds).
const RFC7515_EXP: u64 = 1_300_819_380;

/// The verifier's clock, in whole seconds: a minute before the RFC
/// example expires, so that it is accepted.
const JWT_NOW_S: u64 = RFC7515_EXP - 60;

/// The verifier's clock in milliseconds (half a second past
/// [`JWT_NOW_S`], so millisecond arithmetic matters).
const JWT_NOW: u64 = JWT_NOW_S * 1000 + 500;

/// The verifier's leeway, in milliseconds (its default).
const JWT_LEEWAY_MS: u64 = 30_000;

struct JwtFixture {
    config: JwtConfig,
    /// The configured keys, for the independent HMAC check.
    keys: [Vec<u8>; 2],
}

fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rfc = URL_SAFE_NO_PAD
            .decode(RFC7515_KEY)
            .expect("the RFC key is base64url");
        let secrets = [JWT_KEY.to_vec(), rfc.clone()]
            .into_iter()
            .map(|k| Secret::new(k, None).expect("long enough"))
            .collect();
        let config = JwtConfig::new(secrets);
        assert_eq!(config.leeway_secs * 1000, JWT_LEEWAY_MS);
        JwtFixture {
            config,
            keys: [JWT_KEY.to_vec(), rfc],
        }
    })
}

/// The HS256 verifier (with two keys: [`JWT_KEY`] and RFC 7515 A.1's).
///
/// The input is checked twice: as a token itself (lossily UTF-8), where
/// anything accepted must carry a correct HMAC, recomputed here, under a
/// configured key, over canonical base64url parts, with `alg` `HS256`;
/// and as the recipe for a token built from fuzzer-chosen header and
/// claims (duplicates, escaped names, wrong types, edge times, broken
/// encodings and signatures), whose verdict (accepted, expired or invalid)
/// must equal the one an independent model of PROTOCOL §5 gives.
pub fn jwt(data: &[u8]) {
    let fixture = jwt_fixture();
    check_token(fixture, &String::from_utf8_lossy(data), None);
    let (token, expected) = build_token(data);
    check_token(fixture, &token, expected);
}

/// A verdict, without the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Expired,
    Invalid,
}

fn verdict<T>(result: &Result<T, TokenError>) -> Verdict {
    match result {
        Ok(_) => Verdict::Accepted,
        Err(TokenError::Expired) => Verdict::Expired,
        Err(TokenError::Invalid(_)) => Verdict::Invalid,
    }
}

/// What [`JwtConfig::decode_verified`] and [`JwtConfig::verify`] should say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    decoded: Verdict,
    verified: Verdict,
}

fn check_token(fixture: &JwtFixture, token: &str, expected: Option<Expected>) {
    let decoded = fixture.config.decode_verified(token, JWT_NOW);
    let verified = fixture.config.verify(token, JWT_NOW);
    if let Some(expected) = expected {
        let actual = Expected {
            decoded: verdict(&decoded),
            verified: verdict(&verified),
        };
        assert_eq!(
            actual, expected,
            "verdicts differ from the model for {token:?}: {decoded:?} / {verified:?}"
        );
    }
    if verified.is_ok() {
        assert!(
            decoded.is_ok(),
            "verify accepted what decode_verified refused"
        );
    }
    if matches!(decoded, Err(TokenError::Invalid(_))) {
        assert!(matches!(verified, Err(TokenError::Invalid(_))));
    }
    if let Ok(claims) = &decoded {
        check_signed(fixture, token, claims);
    }
    if let Ok(claims) = &verified {
        assert!(valid_user_name(&claims.sub));
        let payload = decoded.as_ref().expect("checked above");
        assert_eq!(payload.get("sub"), Some(&Value::from(claims.sub.as_str())));
    }
}

/// An accepted token, checked without the verifier's code: canonical
/// base64url parts, `alg` `HS256`, a correct HMAC under a configured key,
/// the payload the verifier returned, and not expired.
fn check_signed(fixture: &JwtFixture, token: &str, claims: &Map<String, Value>) {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    assert!(token.len() <= DEFAULT_MAX_TOKEN_LEN);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token without three parts");
    let mut raw = Vec::new();
    for part in &parts {
        assert!(
            part.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "accepted a part outside the base64url alphabet: {part:?}"
        );
        let bytes = LENIENT
            .decode(part)
            .expect("accepted a part that is no base64");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&bytes),
            *part,
            "non-canonical base64url"
        );
        raw.push(bytes);
    }
    let header: Value = serde_json::from_slice(&raw[0]).expect("accepted a header that is no JSON");
    assert_eq!(header.get("alg"), Some(&Value::from("HS256")));
    for name in ["crit", "jwk", "jku", "x5u", "x5c", "kid"] {
        assert!(header.get(name).is_none(), "accepted a header with {name}");
    }
    let input = &token.as_bytes()[..parts[0].len() + 1 + parts[1].len()];
    assert!(
        fixture.keys.iter().any(|key| hmac(key, input) == raw[2]),
        "accepted a token that no configured key signed"
    );
    let payload: Value =
        serde_json::from_slice(&raw[1]).expect("accepted a payload that is no JSON");
    assert_eq!(payload.as_object(), Some(claims));
    let exp = claims.get("exp").and_then(|v| v.as_f64()).expect("an exp");
    assert!(exp * 1000.0 + JWT_LEEWAY_MS as f64 > JWT_NOW as f64);
}

fn hmac(key: &[u8], input: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    Mac::update(&mut mac, input);
    mac.finalize().into_bytes().to_vec()
}

/// Fuzz bytes read one at a time; zeros once they run out.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn peek(&self) -> u8 {
        self.data.get(self.pos).copied().unwrap_or(0)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()]
    }

    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
}

/// A JSON value as the model sees it; written out by [`J::write`].
#[derive(Clone, Debug)]
enum J {
    Str(String),
    /// A number, as written.
    Num(String),
    Bool(bool),
    Null,
    Arr(Vec<J>),
    Obj(Vec<Member>),
}

/// An object member; `escaped` writes the name's first character as a
/// `\u` escape (the same name to a JSON parser).
#[derive(Clone, Debug)]
struct Member {
    name: String,
    escaped: bool,
    value: J,
}

fn member(name: &str, value: J) -> Member {
    Member {
        name: name.to_string(),
        escaped: false,
        value,
    }
}

fn s(text: &str) -> J {
    J::Str(text.to_string())
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Str(text) => out.push_str(&Value::from(text.as_str()).to_string()),
            J::Num(text) => out.push_str(text),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Null => out.push_str("null"),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, m) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let quoted = Value::from(m.name.as_str()).to_string();
                    match m.name.chars().next() {
                        Some(first) if m.escaped && first.is_ascii() => {
                            let rest = Value::from(&m.name[1..]).to_string();
                            out.push_str(&format!("\"\\u{:04x}{}", u32::from(first), &rest[1..]));
                        }
                        _ => out.push_str(&quoted),
                    }
                    out.push(':');
                    m.value.write(out);
                }
                out.push('}');
            }
        }
    }

    /// True when some object, at any depth, repeats a name.
    fn has_duplicate(&self) -> bool {
        match self {
            J::Arr(items) => items.iter().any(J::has_duplicate),
            J::Obj(members) => {
                let mut names = HashSet::new();
                members
                    .iter()
                    .any(|m| !names.insert(m.name.as_str()) || m.value.has_duplicate())
            }
            _ => false,
        }
    }

    /// A NumericDate (RFC 7519 §2) in milliseconds, as PROTOCOL §5 reads
    /// it: a non-negative number, fractions allowed, saturating.
    fn date_ms(&self) -> Option<u64> {
        let J::Num(text) = self else { return None };
        if let Ok(secs) = text.parse::<u64>() {
            return Some(secs.saturating_mul(1000));
        }
        if let Ok(secs) = text.parse::<i64>() {
            return u64::try_from(secs).ok().map(|s| s.saturating_mul(1000));
        }
        let secs: f64 = text.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
    }
}

fn get<'a>(members: &'a [Member], name: &str) -> Option<&'a J> {
    members.iter().find(|m| m.name == name).map(|m| &m.value)
}

/// One of the header's or payload's parts: modelled JSON, or raw bytes
/// whose verdict the model only knows when they are no JSON object.
enum Part {
    Json(J),
    Raw(Vec<u8>),
}

impl Part {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Part::Json(j) => {
                let mut out = String::new();
                j.write(&mut out);
                out.into_bytes()
            }
            Part::Raw(bytes) => bytes.clone(),
        }
    }

    /// `Some(false)` when no verifier may accept this part, `None` when
    /// the model cannot tell; otherwise the members to check.
    fn members(&self) -> Result<&[Member], Option<bool>> {
        match self {
            Part::Json(J::Obj(members)) if !J::Obj(members.clone()).has_duplicate() => Ok(members),
            Part::Json(_) => Err(Some(false)),
            Part::Raw(bytes) => match serde_json::from_slice::<Value>(bytes) {
                Ok(Value::Object(_)) => Err(None),
                _ => Err(Some(false)),
            },
        }
    }
}

/// A number of seconds from [`JWT_NOW_S`], around the leeway's edges.
fn near_now(r: &mut Reader<'_>) -> i64 {
    JWT_NOW_S as i64 + i64::from(r.byte()) - 128
}

fn date_value(r: &mut Reader<'_>) -> J {
    match r.byte() % 12 {
        0..=3 => J::Num(near_now(r).to_string()),
        4 => J::Num(format!("{}.5", near_now(r))),
        5 => J::Num((JWT_NOW_S + 3600).to_string()),
        6 => J::Num("-1".into()),
        7 => J::Num("-0".into()),
        8 => J::Num("1e300".into()),
        9 => s("1300819380"),
        10 => J::Null,
        _ => J::Num(
            r.pick(&[
                "0",
                "18446744073709551615",
                "18446744073709551616",
                "1.5e9",
                "0.0001",
                "1E3",
            ])
            .into(),
        ),
    }
}

fn any_value(r: &mut Reader<'_>, depth: u8) -> J {
    let choice = if depth == 0 {
        r.byte() % 5
    } else {
        r.byte() % 8
    };
    match choice {
        0 => {
            let n = usize::from(r.byte() % 8);
            J::Str(String::from_utf8_lossy(r.bytes(n)).into_owned())
        }
        1 => J::Num(r.byte().to_string()),
        2 => J::Bool(r.byte() & 1 == 1),
        3 => J::Null,
        4 => J::Str("x".repeat(usize::from(r.byte()) * 24)),
        5 => J::Arr((0..r.byte() % 3).map(|_| any_value(r, depth - 1)).collect()),
        _ => J::Obj(
            (0..r.byte() % 3)
                .map(|_| {
                    let name = r.pick(&["a", "b", "sub", "a"]);
                    member(name, any_value(r, depth - 1))
                })
                .collect(),
        ),
    }
}

fn value_for(name: &str, r: &mut Reader<'_>) -> J {
    let strings = |r: &mut Reader<'_>, items: &[&str]| match r.byte() % 8 {
        0 => J::Num("5".into()),
        1 => J::Null,
        _ => s(r.pick(items)),
    };
    match name {
        "exp" | "nbf" | "iat" => date_value(r),
        "sub" => strings(
            r,
            &[
                "alice",
                "bob",
                "System",
                "system",
                "",
                "a:b",
                " lead",
                "trail ",
                "tab\there",
                "ünïcode",
                &"x".repeat(64),
                &"x".repeat(65),
            ],
        ),
        "role" => strings(
            r,
            &[
                "member",
                "viewer",
                "admin",
                "",
                "bad role",
                &"r".repeat(32),
                &"r".repeat(33),
            ],
        ),
        "rooms" => match r.byte() % 8 {
            0 => J::Arr(vec![]),
            1 => J::Arr(vec![s("lobby")]),
            2 => J::Arr(vec![s("lobby"), s("dev")]),
            3 => J::Arr(vec![s("bad room")]),
            4 => s("lobby"),
            5 => J::Arr(vec![J::Num("5".into())]),
            6 => J::Arr(vec![J::Str("r".repeat(64)), J::Str("r".repeat(65))]),
            _ => J::Null,
        },
        "iss" => strings(r, &["joe", ""]),
        "aud" => match r.byte() % 3 {
            0 => s("wsgate"),
            1 => J::Arr(vec![s("wsgate")]),
            _ => J::Num("1".into()),
        },
        "alg" => strings(
            r,
            &[
                "HS256",
                "HS256",
                "none",
                "None",
                "NONE",
                "hs256",
                "HS384",
                "HS512",
                "RS256",
                "ES256",
                "",
                "HS256 ",
                "HS256\u{0}",
            ],
        ),
        "typ" => strings(r, &["JWT", "JWT", "jwt", "at+jwt", ""]),
        "kid" => strings(r, &["k1", ""]),
        "crit" => J::Arr(vec![s("exp")]),
        "jwk" => J::Obj(vec![member("kty", s("oct"))]),
        "jku" | "x5u" => s("https://attacker.example/keys"),
        "x5c" => J::Arr(vec![s("MIIB")]),
        _ => any_value(r, 2),
    }
}

const HEADER_NAMES: [&str; 10] = [
    "alg", "typ", "kid", "crit", "jwk", "jku", "x5u", "x5c", "cty", "b64",
];

const CLAIM_NAMES: [&str; 11] = [
    "sub",
    "exp",
    "nbf",
    "iat",
    "iss",
    "aud",
    "role",
    "rooms",
    "http://example.com/is_root",
    "nested",
    "pad",
];

/// Sets, adds, repeats or removes one member.
fn mutate(members: &mut Vec<Member>, names: &[&str], r: &mut Reader<'_>) {
    match r.byte() % 5 {
        0 | 1 => {
            let name = r.pick(names);
            let value = value_for(name, r);
            match members.iter_mut().find(|m| m.name == name) {
                Some(m) => m.value = value,
                None => members.push(member(name, value)),
            }
        }
        2 if !members.is_empty() => {
            let i = usize::from(r.byte()) % members.len();
            let mut copy = members[i].clone();
            copy.escaped = r.byte() & 1 == 1;
            if r.byte() & 1 == 1 {
                copy.value = value_for(&copy.name, r);
            }
            members.push(copy);
        }
        3 if !members.is_empty() => {
            let i = usize::from(r.byte()) % members.len();
            members[i].escaped = true;
        }
        4 if !members.is_empty() => {
            let i = usize::from(r.byte()) % members.len();
            members.remove(i);
        }
        _ => {}
    }
}

/// The header and payload checks of PROTOCOL §5, decided on the model:
/// `Err(Some(false))` invalid, `Err(None)` unknown, `Ok(exp_ms)` valid for
/// `decode_verified`, with whether `verify`'s claim checks also pass.
fn model_claims(header: &Part, payload: &Part) -> Result<(u64, bool), Option<bool>> {
    let header = header.members()?;
    let alg_ok = matches!(get(header, "alg"), Some(J::Str(a)) if a == "HS256");
    let typ_ok = match get(header, "typ") {
        None => true,
        Some(J::Str(t)) => t == "JWT",
        Some(_) => false,
    };
    let forbidden = ["crit", "jwk", "jku", "x5u", "x5c", "kid"]
        .iter()
        .any(|n| get(header, n).is_some());
    let claims = payload.members();
    if !alg_ok || !typ_ok || forbidden {
        return Err(Some(false));
    }
    let claims = claims?;
    let not_future = |name: &str| match get(claims, name) {
        None => true,
        Some(v) => v
            .date_ms()
            .is_some_and(|ms| ms <= JWT_NOW.saturating_add(JWT_LEEWAY_MS)),
    };
    let exp = get(claims, "exp").and_then(J::date_ms);
    let iss_ok = matches!(get(claims, "iss"), None | Some(J::Str(_)));
    let aud_ok = get(claims, "aud").is_none();
    let (Some(exp), true, true, true, true) =
        (exp, not_future("nbf"), not_future("iat"), iss_ok, aud_ok)
    else {
        return Err(Some(false));
    };
    let sub_ok = matches!(get(claims, "sub"), Some(J::Str(s)) if valid_user_name(s));
    let role_ok = match get(claims, "role") {
        None => true,
        Some(J::Str(r)) => valid_role(r),
        Some(_) => false,
    };
    let rooms_ok = match get(claims, "rooms") {
        None => true,
        Some(J::Arr(items)) => items
            .iter()
            .all(|i| matches!(i, J::Str(r) if valid_room_name(r))),
        Some(_) => false,
    };
    Ok((exp, sub_ok && role_ok && rooms_ok))
}

/// Builds a token from the fuzz bytes; returns it with the model's
/// verdicts, when the model knows them.
fn build_token(data: &[u8]) -> (String, Option<Expected>) {
    let mut r = Reader::new(data);
    let mut header = vec![member("alg", s("HS256")), member("typ", s("JWT"))];
    let mut claims = vec![
        member("sub", s("alice")),
        member("exp", J::Num((JWT_NOW_S + 3600).to_string())),
    ];
    for _ in 0..r.byte() % 4 {
        mutate(&mut header, &HEADER_NAMES, &mut r);
    }
    for _ in 0..r.byte() % 8 {
        mutate(&mut claims, &CLAIM_NAMES, &mut r);
    }
    let shape = r.byte();
    let header = match shape % 16 {
        15 => Part::Json(J::Arr(vec![J::Obj(header)])),
        14 => {
            let n = usize::from(r.byte() % 32);
            Part::Raw(r.bytes(n).to_vec())
        }
        _ => Part::Json(J::Obj(header)),
    };
    let payload = match shape >> 4 {
        15 => Part::Json(s("alice")),
        14 => {
            let n = usize::from(r.byte());
            Part::Raw(r.bytes(n).to_vec())
        }
        _ => Part::Json(J::Obj(claims)),
    };
    let encoding = r.byte();
    let signature = r.byte();

    let mut clean = true;
    let mut h64 = URL_SAFE_NO_PAD.encode(header.bytes());
    let mut p64 = URL_SAFE_NO_PAD.encode(payload.bytes());
    // A quarter of the tokens have their encoding broken in some way.
    if encoding & 0xc0 == 0 {
        if encoding & 1 != 0 {
            h64.push('=');
            clean = false;
        }
        if encoding & 2 != 0 {
            p64.push_str("==");
            clean = false;
        }
        if encoding & 4 != 0 && h64.len() % 4 != 0 && !h64.ends_with('=') {
            h64 = dirty_trailing_bits(&h64);
            clean = false;
        }
        if encoding & 8 != 0 && p64.len() % 4 != 0 && !p64.ends_with('=') {
            p64 = dirty_trailing_bits(&p64);
            clean = false;
        }
        if encoding & 16 != 0 {
            let standard = |t: &str| t.replace('-', "+").replace('_', "/");
            let (h, p) = (standard(&h64), standard(&p64));
            clean &= h == h64 && p == p64;
            (h64, p64) = (h, p);
        }
        if encoding & 32 != 0 {
            p64.push(' ');
            clean = false;
        }
    }
    let input = format!("{h64}.{p64}");
    let sign = |key: &[u8], input: &str| URL_SAFE_NO_PAD.encode(hmac(key, input.as_bytes()));
    let token = match signature % 16 {
        8 => {
            let key = URL_SAFE_NO_PAD.decode(RFC7515_KEY).expect("base64url");
            format!("{input}.{}", sign(&key, &input))
        }
        9 => {
            clean = false;
            format!("{input}.{}", sign(WRONG_KEY, &input))
        }
        10 => {
            clean = false;
            let mut sig = sign(JWT_KEY, &input);
            sig.pop();
            format!("{input}.{sig}")
        }
        11 => {
            clean = false;
            format!("{input}.")
        }
        12 => {
            clean = false;
            format!("{input}.{}.{}", sign(JWT_KEY, &input), h64)
        }
        13 => {
            clean = false;
            input.clone()
        }
        14 => {
            clean = false;
            format!("{input}.{}", sign(JWT_KEY, &h64))
        }
        15 => {
            clean = false;
            format!("{input}.{}=", sign(JWT_KEY, &input))
        }
        _ => format!("{input}.{}", sign(JWT_KEY, &input)),
    };
    clean &= token.len() <= DEFAULT_MAX_TOKEN_LEN;

    let invalid = Expected {
        decoded: Verdict::Invalid,
        verified: Verdict::Invalid,
    };
    let expected = match model_claims(&header, &payload) {
        _ if !clean => Some(invalid),
        Err(Some(_)) => Some(invalid),
        Err(None) => None,
        Ok((exp_ms, claims_ok)) => {
            let time = if JWT_NOW >= exp_ms.saturating_add(JWT_LEEWAY_MS) {
                Verdict::Expired
            } else {
                Verdict::Accepted
            };
            Some(Expected {
                decoded: time,
                verified: if claims_ok { time } else { Verdict::Invalid },
            })
        }
    };
    (token, expected)
}

/// Sets the lowest bit of the last character of an unpadded base64url
/// text whose length is not a multiple of 4: a trailing bit, which a
/// canonical encoding leaves zero.
fn dirty_trailing_bits(part: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = part.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        if let Some(i) = ALPHABET.iter().position(|c| c == last) {
            *last = ALPHABET[i | 1];
        }
    }
    String::from_utf8(bytes).expect("ASCII")
}

// ----------------------------------------------------------------------
// core_ops

/// The core driven by a sequence of operations.
///
/// The first byte picks configuration switches (password upgrades,
/// per-user policy, rate limits, cookie name, presence limit, echo mode,
/// per-user limit, ping interval); limits are small so that they are hit. Each
/// following operation is an opcode byte and its arguments:
///
/// | op | arguments | what |
/// | --- | --- | --- |
/// | 0 | | accept a connection |
/// | 1 | c, n, n bytes | raw bytes on connection c |
/// | 2 | c, a, b | an upgrade request (carrier, user, room, token kind, subprotocol, origin, dribbled, frames behind it) |
/// | 3 | c, a | an HTTP request (`/token`, `/login`, `/ws-ticket`, `/logout`, health, metrics, `HEAD`, `100-continue`, pipelined, dribbled) |
/// | 4 | c, a, n, n bytes | one client frame (opcode, FIN, RSV bits, mask) with that payload |
/// | 5 | c, a | a chat message from a dictionary (lines, commands, JSON, refresh, too long, fragments, ping, close, binary) |
/// | 6 | c, n | the last bytes sent on c again, n times in one read |
/// | 7 | c | the peer hangs up (c < 128) or shuts its write half |
/// | 8 | c | the peer stops (or resumes) reading |
/// | 9, 10, 11 | n | time: n × 50 ms, n × 5 s (both stop at every deadline), or a jump of n minutes |
/// | 12 | n | the password thread finishes up to n + 1 checks |
/// | 13 | | shutdown |
/// | 14 | n | accept n % 16 connections from four addresses (two in one IPv6 /64) |
/// | 15 | c, n | a peer that does not read takes 16 × n bytes (a short write) |
///
/// `c` selects among the connections the simulated shell holds (a fresh
/// one is accepted when there is none). The table is the format of every
/// checked-in `core_ops` input: changing it changes what they do, so
/// re-minimise the regression inputs (`cargo fuzz tmin`) after a change.
/// After every operation:
///
/// - the shell and the core agree on which connections exist (none
///   forgotten without an [`crate::core::Action::Close`], none dropped and still held);
/// - at most `max_connections` connections (a refused accept holds none,
///   and its answer is a well-formed `429` or `503`);
/// - every queue within the hard ceiling plus the slack of one frame,
///   one close frame and one HTTP response (see [`queue_bound`]), and the
///   server's total of queued bytes is exactly the sum of the queues;
/// - everything a peer receives before a `101` parses as HTTP responses,
///   each with `Content-Length` and `Cache-Control: no-store`, so no
///   WebSocket frame reaches a connection that is not open and
///   authenticated; every open WebSocket whose peer reads has received its
///   `101`;
/// - the rooms, per-user and per-session lists and password jobs are
///   consistent, no user exceeds `max_conns_per_user`, and every
///   connection has a deadline with a timer armed for it
///   ([`crate::core::Server::check_consistency`]); never more rooms than
///   WebSockets;
/// - no log line holds a token, password, session id or ticket that the
///   operations sent, and no refusal body echoes one.
///
/// At the end the server is shut down, pending password checks finish and
/// every peer reads: after twice the close timeout no connection is left.
pub fn core_ops(data: &[u8]) {
    let _ = Driver::run(data);
}

/// Bugs the fuzzer found that are not fixed yet. Each is tolerated by one
/// check, narrowly, so that fuzzing can go on past it; the fix sets its
/// flag to false, and its input under `fuzz/regressions/core_ops/` then
/// proves the fix.
mod known {
    /// The queue cap is checked once per `handle_bytes` for the pongs
    /// tungstenite queues, not after each frame: a peer that does not
    /// read and sends a read's worth of pings overshoots the cap by that
    /// much before it is closed `1013` (`ping-flood-overshoot`). Tolerated:
    /// a closed connection's excess up to its largest single read.
    pub const PONGS_CAPPED_PER_READ: bool = false;
}

/// The most operations one input runs.
const MAX_OPS: usize = 160;

/// The largest HTTP response the server writes (`/metrics` with every
/// refusal reason and close code listed, about 5 KiB, is the largest);
/// checked on every response the peers read.
const MAX_HTTP_RESPONSE: usize = 8 * 1024;

/// The most a connection's queue may hold.
///
/// The core checks the hard ceiling after it queues a message, and closes
/// with `1013` past it (dropping the unsent frames); then it queues one
/// close frame and nothing more. So a queue at most holds: the ceiling,
/// plus the largest single frame queued while the queue was still within
/// it, plus one close frame, plus one HTTP response (the `101` that
/// precedes the frames). An HTTP connection's answers stop at their own
/// cap plus one response. The largest frame is the largest of:
///
/// - a text-mode line `USER: LINE`: a name of at most
///   [`MAX_USER_NAME_LEN`] bytes, `": "` and a line of at most
///   `max_message_bytes`;
/// - a JSON-mode message: the line JSON-escaped (at most 2 bytes a byte:
///   control characters other than tab are refused), the name escaped
///   likewise, the room, `seq` and `ts` (20 digits each) and 59 bytes of
///   names and punctuation;
/// - a `who` reply in JSON: 23 bytes plus, for each of at most
///   `max_connections` users, an escaped name, quotes and a comma;
///
/// with a frame header of 2, 4 or 10 bytes. A close frame is at most
/// 2 + 125 bytes.
fn queue_bound(config: &Config) -> usize {
    let limits = &config.limits;
    let line = limits.max_message_bytes;
    let text = MAX_USER_NAME_LEN + 2 + line;
    let json = 2 * line + 2 * MAX_USER_NAME_LEN + MAX_ROOM_NAME_LEN + 2 * 20 + 59;
    let who = 23 + limits.max_connections * (2 * MAX_USER_NAME_LEN + 3);
    let payload = text.max(json).max(who);
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    let ws = limits.queue_ceiling() + header + payload + (2 + 125) + MAX_HTTP_RESPONSE;
    ws.max(limits.max_http_queue_bytes + MAX_HTTP_RESPONSE)
}

/// Password checks answered at once: the demo users' passwords are
/// checked for real (once per process; 600,000 PBKDF2 rounds), every
/// other pair is wrong without asking (the demo table holds no other
/// user), so a fuzzer does not spend a third of a second per login.
fn check_password(user: &str, password: &str) -> Option<VerifiedUser> {
    static ALICE: OnceLock<Option<VerifiedUser>> = OnceLock::new();
    static BOB: OnceLock<Option<VerifiedUser>> = OnceLock::new();
    match (user, password) {
        ("alice", "wonderland") => ALICE
            .get_or_init(|| Users::demo().check(user, password))
            .clone(),
        ("bob", "builder") => BOB
            .get_or_init(|| Users::demo().check(user, password))
            .clone(),
        _ => None,
    }
}

/// The users tokens are made for.
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// Client frame opcodes.
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

fn text_frame(text: &str) -> Vec<u8> {
    client_frame(TEXT, true, 0, true, text.as_bytes())
}

/// What a run reached, for the tests that check the harness gets deep.
#[derive(Debug, Default)]
struct Reached {
    /// Most WebSockets open at once.
    websockets: usize,
    /// Text messages the peers' clients read (the first 64 kept).
    texts: Vec<String>,
    /// Statuses of the HTTP responses the peers read.
    statuses: HashSet<u16>,
    /// Close codes the peers' clients read.
    closes: HashSet<u16>,
}

/// A simulated shell around [`Harness`]: it holds the sockets, parses
/// what each peer reads, and answers password checks when told to.
struct Driver {
    h: Harness,
    /// Connections the shell holds a socket for.
    live: Vec<ConnId>,
    /// Peers that have read a `101`: their WebSocket client is on.
    upgraded: HashSet<ConnId>,
    /// What was last sent on each connection, for op 6.
    last_sent: HashMap<ConnId, Vec<u8>>,
    /// The most bytes handed to the core at once, per connection.
    largest_read: HashMap<ConnId, usize>,
    /// Peers that shut their write half: they send nothing more.
    eof: HashSet<ConnId>,
    /// Session ids from `Set-Cookie`, tickets from `/ws-ticket`.
    cookies: Vec<String>,
    tickets: Vec<String>,
    /// Credentials the operations sent or received: never in a log line.
    secrets: HashSet<String>,
    /// Every raw byte the fuzzer sent: a credential it spelled out itself
    /// may be logged as any other text.
    raw: Vec<u8>,
    logs: bool,
    bound: usize,
    reached: Reached,
}

impl Driver {
    fn run(data: &[u8]) -> Reached {
        let mut r = Reader::new(data);
        let switches = r.byte();
        let mut h = Harness::new(|c| {
            let l = &mut c.limits;
            l.max_connections = 8;
            l.max_queue_bytes = 4096;
            l.max_http_queue_bytes = 2048;
            l.queue_budget_bytes = 24 * 1024;
            l.max_message_bytes = 1024;
            l.max_head_bytes = 2048;
            l.max_body_bytes = 256;
            l.handshake_timeout = std::time::Duration::from_secs(1);
            l.close_timeout = std::time::Duration::from_secs(2);
            l.max_tickets = 4;
            l.max_pending_logins = 2;
            l.max_sessions_per_user = 2;
            c.session_ttl = std::time::Duration::from_secs(600);
            c.session_idle = std::time::Duration::from_secs(120);
            c.allow_password_auth = switches & 1 != 0;
            if switches & 2 != 0 {
                c.per_user_policy = PerUserPolicy::EvictOldest;
            }
            if switches & 4 != 0 {
                l.message_rate = None;
            }
            if switches & 8 != 0 {
                l.upgrade_rate = None;
            }
            c.insecure_cookie = switches & 16 != 0;
            c.echo = switches & 0x30 == 0x30;
            l.max_conns_per_ip = Some(5);
            l.presence_limit = if switches & 32 != 0 { 1 } else { 3 };
            l.max_conns_per_user = if switches & 64 != 0 { 1 } else { 2 };
            if switches & 128 != 0 {
                c.ping_interval = std::time::Duration::from_secs(5);
            }
        });
        // The "helper thread" answers password checks only at op 12.
        h.hold_passwords = true;
        let bound = queue_bound(h.server.config());
        let mut d = Driver {
            h,
            live: Vec::new(),
            upgraded: HashSet::new(),
            last_sent: HashMap::new(),
            largest_read: HashMap::new(),
            eof: HashSet::new(),
            cookies: Vec::new(),
            tickets: Vec::new(),
            secrets: ["wonderland", "builder", "not-the-password"]
                .map(String::from)
                .into(),
            raw: Vec::new(),
            logs: capture_logs(),
            bound,
            reached: Reached::default(),
        };
        for _ in 0..MAX_OPS {
            if r.done() {
                break;
            }
            d.op(&mut r);
            d.observe();
        }
        d.finish();
        if d.logs {
            stop_capturing_logs();
        }
        d.reached
    }

    /// The connection argument `c`: one of the held connections.
    fn target(&mut self, r: &mut Reader<'_>) -> Option<ConnId> {
        let c = usize::from(r.byte());
        if self.live.is_empty() {
            self.accept();
        }
        (!self.live.is_empty()).then(|| self.live[c % self.live.len()])
    }

    fn op(&mut self, r: &mut Reader<'_>) {
        match r.byte() % 16 {
            0 => self.accept(),
            1 => {
                let id = self.target(r);
                let n = usize::from(r.byte());
                let bytes = r.bytes(n).to_vec();
                self.raw.extend_from_slice(&bytes);
                if let Some(id) = id {
                    self.send(id, &bytes, 0);
                }
            }
            2 => {
                let id = self.target(r);
                let (a, b) = (r.byte(), r.byte());
                if let Some(id) = id {
                    self.upgrade(id, a, b);
                }
            }
            3 => {
                let id = self.target(r);
                let a = r.byte();
                if let Some(id) = id {
                    self.http(id, a);
                }
            }
            4 => {
                let id = self.target(r);
                let a = r.byte();
                let n = usize::from(r.byte());
                let payload = r.bytes(n).to_vec();
                self.raw.extend_from_slice(&payload);
                let frame = client_frame(a & 0x0f, a & 0x10 == 0, a >> 5, a & 0x80 == 0, &payload);
                if let Some(id) = id {
                    self.send(id, &frame, 0);
                }
            }
            5 => {
                let id = self.target(r);
                let a = r.byte();
                if let Some(id) = id {
                    self.chat(id, a);
                }
            }
            6 => {
                let id = self.target(r);
                let n = usize::from(r.byte());
                if let Some(id) = id {
                    let last = self.last_sent.get(&id).cloned().unwrap_or_default();
                    let bytes = last.repeat(n);
                    if !bytes.is_empty() {
                        self.read(id, &bytes);
                    }
                }
            }
            7 => {
                let half = r.peek() & 0x80 != 0;
                if let Some(id) = self.target(r) {
                    if half {
                        self.h.half_close(id);
                        self.eof.insert(id);
                    } else {
                        self.h.hang_up(id);
                        self.live.retain(|&c| c != id);
                    }
                }
            }
            8 => {
                if let Some(id) = self.target(r) {
                    let stalled = self.h.peer(id).stalled;
                    self.h.stall(id, !stalled);
                }
            }
            9 => self.h.advance(u64::from(r.byte()) * 50),
            10 => self.h.advance(u64::from(r.byte()) * 5_000),
            11 => self.h.jump(u64::from(r.byte()) * 60_000),
            12 => {
                for _ in 0..=r.byte() % 4 {
                    self.finish_job();
                }
            }
            13 => self.shutdown(),
            14 => {
                const FROM: [&str; 4] = ["127.0.0.1", "127.0.0.2", "2001:db8::1", "2001:db8::2"];
                for i in 0..usize::from(r.byte() % 16) {
                    let ip = FROM[i % FROM.len()].parse().expect("an address");
                    self.sync_live();
                    match self.h.connect_from(ip) {
                        Some(id) => self.accepted(id),
                        None => self.refused(),
                    }
                }
            }
            _ => {
                let id = self.target(r);
                let n = usize::from(r.byte()) * 16;
                if let Some(id) = id {
                    self.short_read(id, n);
                }
            }
        }
    }

    /// A peer that does not read takes `n` bytes all the same: a short
    /// write.
    fn short_read(&mut self, id: ConnId, n: usize) {
        if !self.h.peer(id).stalled {
            return;
        }
        let pending = self.h.server.pending(id);
        let bytes = pending[..n.min(pending.len())].to_vec();
        if !bytes.is_empty() {
            self.h.peer(id).received.extend_from_slice(&bytes);
            let now = self.h.now;
            self.h.server.handle_written(id, bytes.len(), now);
            self.h.pump();
        }
    }

    fn shutdown(&mut self) {
        let now = self.h.now;
        self.h.server.handle_shutdown(now);
        self.h.pump();
    }

    fn accept(&mut self) {
        self.sync_live();
        match self.h.try_connect() {
            Some(id) => self.accepted(id),
            None => self.refused(),
        }
    }

    /// A socket the core refused at accept: its one answer is a complete
    /// `429` or `503`, and the core holds nothing for it.
    fn refused(&mut self) {
        let Some(r) = self.h.refusal() else {
            return;
        };
        assert!(matches!(r.status, 429 | 503), "refused with {}", r.status);
        assert!(r.header("retry-after").is_some());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("connection"), Some("close"));
        self.reached.statuses.insert(r.status);
    }

    /// A new socket: whatever the shell knew of the id is gone.
    fn accepted(&mut self, id: ConnId) {
        self.live.push(id);
        self.upgraded.remove(&id);
        self.eof.remove(&id);
        self.last_sent.remove(&id);
        self.largest_read.remove(&id);
    }

    /// Forgets the sockets the core told the shell to drop.
    fn sync_live(&mut self) {
        let h = &mut self.h;
        self.live.retain(|&id| !h.peer(id).dropped);
    }

    /// Sends `bytes` on `id`, in pieces of `chunk` bytes (all at once when
    /// 0).
    fn send(&mut self, id: ConnId, bytes: &[u8], chunk: usize) {
        let size = if chunk == 0 {
            bytes.len().max(1)
        } else {
            chunk
        };
        for piece in bytes.chunks(size) {
            self.read(id, piece);
        }
        self.last_sent.insert(id, bytes.to_vec());
    }

    /// The core reads `bytes` from the peer of `id` at once (unless the
    /// peer shut its write half).
    fn read(&mut self, id: ConnId, bytes: &[u8]) {
        if self.eof.contains(&id) {
            return;
        }
        let largest = self.largest_read.entry(id).or_default();
        *largest = (*largest).max(bytes.len());
        self.h.send(id, bytes);
    }

    /// The oldest held password check finishes.
    fn finish_job(&mut self) {
        if !self.h.held.is_empty() {
            let job = self.h.held.remove(0);
            let verified = check_password(&job.user, &job.password);
            let now = self.h.now;
            self.h
                .server
                .handle_password_checked(job.job, verified, now);
            self.h.pump();
        }
    }

    fn secret(&mut self, text: &str) -> String {
        self.secrets.insert(text.to_string());
        text.to_string()
    }

    /// A token of kind `kind` (0–7) for `user`.
    fn token(&mut self, user: &str, kind: u8) -> String {
        let now_s = self.h.now / 1000;
        let token = match kind % 8 {
            0 => self.h.token(user, 3600),
            1 => self.h.token(user, 5),
            2 => self.h.token_with(json!({"sub": user, "exp": now_s - 3600})),
            3 => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "rooms": ["dev"]})),
            4 => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "role": "viewer"})),
            5 => {
                let secret = Secret::new(WRONG_KEY.to_vec(), None).expect("long enough");
                JwtConfig::new(vec![secret]).issue(user, "member", self.h.now, 3600)
            }
            6 => self.h.token(user, 60),
            _ => self
                .h
                .token_with(json!({"sub": user, "exp": now_s + 3600, "nbf": now_s + 600})),
        };
        self.secret(&token)
    }

    /// Op 2: an upgrade request.
    fn upgrade(&mut self, id: ConnId, a: u8, b: u8) {
        let user = USERS[usize::from(a >> 3) % USERS.len()];
        let room = ["", "dev", "x", "bad%20room"][usize::from(a >> 5) % 4];
        let token = self.token(user, (b >> 1) & 7);
        let mut query: Vec<String> = Vec::new();
        if !room.is_empty() {
            query.push(format!("room={room}"));
        }
        let mut path = "/ws".to_string();
        let mut extra = String::new();
        match a % 8 {
            0 => extra.push_str(&format!("Authorization: Bearer {token}\r\n")),
            1 => path = format!("/ws/{token}"),
            2 => query.push(format!("token={token}")),
            3 => {
                let name = self.h.server.config().cookie_name();
                let sid = self
                    .cookies
                    .last()
                    .cloned()
                    .unwrap_or_else(|| "no-such-session".into());
                extra.push_str(&format!("Cookie: {name}={sid}\r\n"));
                match (b >> 4) & 3 {
                    0 => extra.push_str("Origin: http://127.0.0.1:8080\r\n"),
                    1 => extra.push_str("Origin: https://evil.example\r\n"),
                    2 => extra.push_str("Origin: null\r\n"),
                    _ => {}
                }
            }
            4 => {
                let ticket = self
                    .tickets
                    .pop()
                    .unwrap_or_else(|| "no-such-ticket".into());
                query.push(format!("ticket={ticket}"));
            }
            5 => {
                let password = if b & 0x10 == 0 {
                    "wonderland"
                } else {
                    "not-the-password"
                };
                query.push(format!("username=alice&password={password}"));
            }
            6 => {
                let basic = self.secret(&STANDARD.encode("alice:wonderland"));
                extra.push_str(&format!("Authorization: Basic {basic}\r\n"));
            }
            _ => {
                extra.push_str(&format!("Authorization: Bearer {token}\r\n"));
                query.push(format!("token={token}"));
            }
        }
        if b & 1 != 0 {
            extra.push_str("Sec-WebSocket-Protocol: wsgate.json\r\n");
        }
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        };
        let mut bytes = upgrade_request(&target, &extra).into_bytes();
        if b & 0x80 != 0 {
            bytes.extend(text_frame("right behind the head"));
        }
        let chunk = if b & 0x40 != 0 { 7 } else { 0 };
        self.send(id, &bytes, chunk);
    }

    /// Op 3: a plain HTTP request.
    fn http(&mut self, id: ConnId, a: u8) {
        let host = "Host: 127.0.0.1:8080\r\n";
        let name = self.h.server.config().cookie_name();
        let sid = self
            .cookies
            .last()
            .cloned()
            .unwrap_or_else(|| "no-such-session".into());
        let cookie = format!("Cookie: {name}={sid}\r\nOrigin: http://127.0.0.1:8080\r\n");
        let request = match a % 12 {
            0 => form_post("/token", "username=alice&password=wonderland"),
            1 => form_post("/token", "username=alice&password=not-the-password"),
            2 => form_post(
                "/login",
                "username=alice&password=wonderland&grant_type=password",
            ),
            3 => form_post("/login", "username=bob&password=builder"),
            4 => {
                let token = self.token(USERS[usize::from(a >> 6)], 0);
                format!(
                    "POST /ws-ticket HTTP/1.1\r\n{host}Authorization: Bearer {token}\r\n\
                     Content-Length: 0\r\n\r\n"
                )
            }
            5 => format!("POST /ws-ticket HTTP/1.1\r\n{host}{cookie}Content-Length: 0\r\n\r\n"),
            6 => format!("POST /logout HTTP/1.1\r\n{host}{cookie}Content-Length: 0\r\n\r\n"),
            7 => format!("GET /healthz HTTP/1.1\r\n{host}\r\n"),
            8 => format!("GET /metrics HTTP/1.1\r\n{host}\r\n"),
            9 => format!("HEAD /healthz HTTP/1.1\r\n{host}\r\n"),
            10 => {
                let body = "username=bob&password=builder";
                let head = format!(
                    "POST /token HTTP/1.1\r\n{host}Expect: 100-continue\r\n\
                     Content-Type: application/x-www-form-urlencoded\r\n\
                     Content-Length: {}\r\n\r\n",
                    body.len()
                );
                self.send(id, head.as_bytes(), 0);
                self.send(id, body.as_bytes(), 0);
                return;
            }
            _ => format!("GET /healthz HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
        };
        let mut bytes = request.into_bytes();
        if a & 0x10 != 0 {
            bytes = bytes.repeat(2);
        }
        let chunk = match a >> 5 {
            0 => 0,
            k => 1 << (k - 1),
        };
        self.send(id, &bytes, chunk);
    }

    /// Op 5: a chat message from the dictionary.
    fn chat(&mut self, id: ConnId, a: u8) {
        let user = self.h.server.user_of(id).unwrap_or("alice").to_string();
        let other = if user == "alice" { "bob" } else { "alice" };
        let max = self.h.server.config().limits.max_message_bytes;
        let frames = match a % 16 {
            0 => text_frame("hello"),
            1 => text_frame("/who"),
            2 => {
                let token = self.token(&user, 0);
                text_frame(&format!("/refresh {token}"))
            }
            3 => {
                let token = self.token(other, 0);
                text_frame(&format!("/refresh {token}"))
            }
            4 => text_frame("/refresh not.a.token"),
            5 => text_frame(r#"{"type":"message","text":"hi \"there\"\t!"}"#),
            6 => text_frame(r#"{"type":"who"}"#),
            7 => {
                let token = self.token(&user, 6);
                text_frame(&json!({"type": "refresh", "token": token}).to_string())
            }
            // The longest line, all quotes: the most JSON escaping.
            8 => text_frame(
                &json!({"type": "message", "text": "\"".repeat(max / 2 - 40)}).to_string(),
            ),
            9 => text_frame(&"x".repeat(max + 1)),
            10 => text_frame("a\u{1}b"),
            11 => text_frame("/nope"),
            12 => {
                let mut f = client_frame(TEXT, false, 0, true, b"frag");
                f.extend(client_frame(0x0, true, 0, true, b"ment"));
                f
            }
            13 => client_frame(PING, true, 0, true, &[b'p'; 125]),
            14 => client_frame(CLOSE, true, 0, true, &1000u16.to_be_bytes()),
            _ => client_frame(BINARY, true, 0, true, b"\x00\x01"),
        };
        // A raw-text line as long as allowed, for text mode.
        let frames = if a % 16 == 8 && a & 0x10 != 0 {
            text_frame(&"\"".repeat(max))
        } else {
            frames
        };
        self.send(id, &frames, 0);
    }

    /// Reads what every peer received, then checks the invariants.
    fn observe(&mut self) {
        for id in self.live.clone() {
            if self.upgraded.contains(&id) {
                for message in self.h.messages(id) {
                    match message {
                        tungstenite::Message::Text(t) if self.reached.texts.len() < 64 => {
                            self.reached.texts.push(t.as_str().to_string());
                        }
                        tungstenite::Message::Close(Some(frame)) => {
                            self.reached.closes.insert(u16::from(frame.code));
                        }
                        _ => {}
                    }
                }
            } else {
                self.read_responses(id);
            }
        }
        self.sync_live();
        self.check();
    }

    /// Takes complete HTTP responses off what `id` received, up to a
    /// `101`; anything else before a `101` is a bug.
    fn read_responses(&mut self, id: ConnId) {
        loop {
            let received = &self.h.peer(id).received;
            if received.is_empty() {
                return;
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let head_len = match response.parse(received) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return,
                Err(e) => panic!(
                    "connection {id} received bytes that are no HTTP response before any 101 \
                     ({e}): {:?}",
                    String::from_utf8_lossy(&received[..received.len().min(80)])
                ),
            };
            let status = response.code.unwrap_or(0);
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            self.reached.statuses.insert(status);
            if status == 100 || status == 101 {
                self.h.peer(id).received.drain(..head_len);
                if status == 101 {
                    self.upgraded.insert(id);
                    self.h.make_client(id);
                    self.h.pump();
                    return;
                }
                continue;
            }
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("a {status} response without Content-Length"));
            assert_eq!(
                header("cache-control").as_deref(),
                Some("no-store"),
                "a {status} response without Cache-Control: no-store"
            );
            let set_cookie = header("set-cookie");
            let rest = &received[head_len..];
            // A response to HEAD has no body: another response follows.
            let body_len = if length > 0 && rest.starts_with(b"HTTP/1.1 ") {
                0
            } else if length > 0 && b"HTTP/1.1 ".starts_with(rest) {
                return;
            } else {
                length
            };
            if rest.len() < body_len {
                return;
            }
            let body = String::from_utf8_lossy(&rest[..body_len]).into_owned();
            assert!(
                head_len + body_len <= MAX_HTTP_RESPONSE,
                "a response past the bound"
            );
            self.h.peer(id).received.drain(..head_len + body_len);
            if status >= 300 {
                for secret in &self.secrets {
                    assert!(
                        !body.contains(secret.as_str()),
                        "a {status} body echoes a credential"
                    );
                }
            }
            if let Some(sid) = set_cookie
                .as_deref()
                .and_then(|c| c.split(';').next())
                .and_then(|c| c.split_once('='))
                .map(|(_, v)| v.to_string())
                .filter(|v| !v.is_empty())
            {
                self.secret(&sid);
                self.cookies.push(sid);
            }
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&body) {
                if let Some(Value::String(ticket)) = map.get("ticket") {
                    let ticket = self.secret(ticket);
                    self.tickets.push(ticket);
                }
                if let Some(Value::String(token)) = map.get("access_token") {
                    self.secret(token);
                }
            }
        }
    }

    fn check(&mut self) {
        let server = &self.h.server;
        let limits = &server.config().limits;
        assert!(server.connections() <= limits.max_connections);
        let mut held = server.conn_ids();
        let mut live = self.live.clone();
        held.sort_unstable();
        live.sort_unstable();
        assert_eq!(
            held, live,
            "the core and the shell disagree on the connections"
        );
        for &id in &held {
            let queued = server.queued(id);
            let closed = matches!(server.phase_name(id), Some("closing" | "lingering"));
            let tolerated = if known::PONGS_CAPPED_PER_READ && closed {
                self.largest_read.get(&id).copied().unwrap_or(0)
            } else {
                0
            };
            assert!(
                queued <= self.bound + tolerated,
                "connection {id} ({:?}) queues {queued} bytes, bound {}",
                server.phase_name(id),
                self.bound
            );
        }
        let websockets = server.websockets();
        self.reached.websockets = self.reached.websockets.max(websockets);
        assert!(server.rooms() <= websockets);
        if let Err(e) = server.check_consistency() {
            panic!("inconsistent core: {e}");
        }
        for &id in &held {
            let open = self.h.server.is_websocket(id);
            let peer = self.h.peer(id);
            if open && !peer.stalled && !peer.dropped {
                assert!(
                    self.upgraded.contains(&id),
                    "an open WebSocket {id} without a 101"
                );
            }
        }
        if self.logs {
            for line in take_log_lines() {
                check_log_line(&line);
                for secret in &self.secrets {
                    if line.contains(secret.as_str()) && !contains(&self.raw, secret.as_bytes()) {
                        panic!("a log line holds a credential: {line:?}");
                    }
                }
            }
        }
    }

    /// Shutdown, pending checks, everyone reads; then nothing may be left.
    fn finish(&mut self) {
        self.shutdown();
        self.observe();
        while !self.h.held.is_empty() {
            self.finish_job();
            self.observe();
        }
        for id in self.live.clone() {
            if self.h.peer(id).stalled {
                self.h.stall(id, false);
            }
        }
        self.observe();
        let close = self.h.server.config().limits.close_timeout.as_millis() as u64;
        self.h.advance(2 * close + 1000);
        self.observe();
        let server = &self.h.server;
        let left: Vec<_> = server
            .conn_ids()
            .into_iter()
            .map(|id| (id, server.phase_name(id)))
            .collect();
        assert!(
            left.is_empty(),
            "connections outlive the shutdown: {left:?}"
        );
    }
}

/// A log line is one line of `key=value` fields: no control, separator,
/// bidirectional or invisible character appears raw, and no key appears
/// twice (a peer-controlled value cannot forge a field: values are quoted,
/// see [`crate::core::quoted`]).
pub fn check_log_line(line: &str) {
    for c in line.chars() {
        assert!(
            !(c.is_control() || crate::auth::forbidden_in_line(c) || crate::auth::is_invisible(c)),
            "a raw {c:?} in a log line: {line:?}"
        );
    }
    let mut keys = HashSet::new();
    let mut rest = line;
    while !rest.is_empty() {
        let token_end = rest.find([' ', '"']).unwrap_or(rest.len());
        let (token, after) = rest.split_at(token_end);
        if let Some(key) = token
            .strip_suffix('=')
            .or_else(|| token.split_once('=').map(|(k, _)| k))
        {
            assert!(
                keys.insert(key.to_string()),
                "key {key:?} twice in {line:?}"
            );
        }
        rest = after;
        if let Some(quoted) = rest.strip_prefix('"') {
            // Skip the quoted value, escapes included.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap_or_else(|| panic!("an unterminated quote in {line:?}"));
            rest = &quoted[end + 1..];
        }
        rest = rest.trim_start_matches(' ');
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Runs `target` on every file of `fuzz/corpus/NAME/` (which must not
    /// be empty) and `fuzz/regressions/NAME/` (when present).
    fn replay(name: &str, target: fn(&[u8])) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut count = 0;
        let mut failed = Vec::new();
        for (dir, required) in [("corpus", true), ("regressions", false)] {
            let dir = root.join(dir).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                assert!(!required, "no {}", dir.display());
                continue;
            };
            let mut paths: Vec<_> = entries
                .map(|e| e.expect("a directory entry").path())
                .collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).expect("a readable corpus file");
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(path.display().to_string());
                }
                count += 1;
            }
        }
        assert!(count > 0, "no corpus for {name} under {}", root.display());
        assert!(failed.is_empty(), "{name} fails on {failed:#?}");
    }

    #[test]
    fn replay_request_head() {
        replay("request_head", request_head);
    }

    #[test]
    fn replay_jwt() {
        replay("jwt", jwt);
    }

    #[test]
    fn replay_params() {
        replay("params", params);
    }

    #[test]
    fn replay_core_ops() {
        replay("core_ops", core_ops);
    }

    /// Builds `core_ops` inputs.
    #[derive(Default)]
    struct Ops(Vec<u8>);

    impl Ops {
        fn new(switches: u8) -> Ops {
            Ops(vec![switches])
        }
        fn op(mut self, bytes: &[u8]) -> Ops {
            self.0.extend_from_slice(bytes);
            self
        }
        fn accept(self) -> Ops {
            self.op(&[0])
        }
        fn raw(self, c: u8, bytes: &[u8]) -> Ops {
            self.op(&[1, c, bytes.len() as u8]).op(bytes)
        }
        fn upgrade(self, c: u8, a: u8, b: u8) -> Ops {
            self.op(&[2, c, a, b])
        }
        fn http(self, c: u8, a: u8) -> Ops {
            self.op(&[3, c, a])
        }
        fn frame(self, c: u8, a: u8, payload: &[u8]) -> Ops {
            self.op(&[4, c, a, payload.len() as u8]).op(payload)
        }
        fn chat(self, c: u8, a: u8) -> Ops {
            self.op(&[5, c, a])
        }
        fn repeat(self, c: u8, n: u8) -> Ops {
            self.op(&[6, c, n])
        }
        fn hang_up(self, c: u8) -> Ops {
            self.op(&[7, c])
        }
        fn stall(self, c: u8) -> Ops {
            self.op(&[8, c])
        }
        fn wait_s(self, n: u8) -> Ops {
            self.op(&[10, n])
        }
        fn jump_min(self, n: u8) -> Ops {
            self.op(&[11, n])
        }
        fn passwords(self) -> Ops {
            self.op(&[12, 3])
        }
        fn shutdown(self) -> Ops {
            self.op(&[13])
        }
        fn accept_many(self, n: u8) -> Ops {
            self.op(&[14, n])
        }
        fn short_read(self, c: u8, n: u8) -> Ops {
            self.op(&[15, c, n])
        }
        fn half_close(self, c: u8) -> Ops {
            self.op(&[7, c | 0x80])
        }
    }

    /// Upgrade argument `a`: carrier (0 bearer … 7 two credentials), user
    /// index, room index.
    fn up(carrier: u8, user: u8, room: u8) -> u8 {
        carrier | (user << 3) | (room << 5)
    }

    /// Meaningful `core_ops` inputs: each reaches a state the fuzzer
    /// should start from.
    fn core_seeds() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "chat",
                Ops::new(0)
                    .accept()
                    .upgrade(0, up(0, 0, 0), 0)
                    .accept()
                    .upgrade(1, up(1, 1, 0), 0)
                    .chat(0, 0)
                    .chat(1, 1)
                    .chat(0, 12)
                    .hang_up(1)
                    .0,
            ),
            (
                "json",
                Ops::new(4)
                    .accept()
                    .upgrade(0, up(2, 0, 1), 1)
                    .accept()
                    .upgrade(1, up(0, 1, 1), 1)
                    .chat(0, 5)
                    .chat(1, 6)
                    .chat(0, 7)
                    .chat(1, 8)
                    .0,
            ),
            (
                "login-ticket",
                Ops::new(8)
                    .accept()
                    .http(0, 2)
                    .passwords()
                    .http(0, 5)
                    .accept()
                    .upgrade(1, up(4, 0, 0), 0)
                    .chat(1, 0)
                    .0,
            ),
            (
                "cookie-logout",
                Ops::new(8)
                    .accept()
                    .http(0, 3)
                    .passwords()
                    .accept()
                    .upgrade(1, up(3, 1, 0), 0)
                    .accept()
                    .upgrade(2, up(3, 1, 0), 0x10)
                    .http(0, 6)
                    .0,
            ),
            (
                "slow-consumer",
                Ops::new(4)
                    .accept()
                    .upgrade(0, up(0, 0, 0), 0)
                    .accept()
                    .upgrade(1, up(0, 1, 0), 0)
                    .stall(1)
                    .chat(0, 8)
                    .short_read(1, 100)
                    .repeat(0, 8)
                    .short_read(1, 3)
                    .0,
            ),
            (
                "expiry",
                Ops::new(128)
                    .accept()
                    .upgrade(0, up(0, 2, 0), 2)
                    .wait_s(2)
                    .chat(0, 3)
                    .wait_s(8)
                    .accept()
                    .upgrade(1, up(0, 2, 0), 0xc)
                    .chat(1, 2)
                    .jump_min(5)
                    .0,
            ),
            (
                "ping-timeout",
                Ops::new(128)
                    .accept()
                    .upgrade(0, up(1, 3, 2), 0)
                    .stall(0)
                    .wait_s(4)
                    .0,
            ),
            (
                "password-upgrade-shutdown",
                Ops::new(1)
                    .accept()
                    .upgrade(0, up(5, 0, 0), 0)
                    .accept()
                    .upgrade(1, up(6, 0, 1), 0x80)
                    .shutdown()
                    .passwords()
                    .0,
            ),
            (
                "pipelined-dribble",
                Ops::new(0)
                    .accept()
                    .http(0, 7 | 0x10)
                    .http(0, 9 | 0x20)
                    .http(0, 10)
                    .http(0, 8 | 0x40)
                    .raw(0, b"GET /nope HTTP/1.1\r\n\r\n")
                    .http(0, 11)
                    .0,
            ),
            (
                "limits",
                Ops::new(64)
                    .accept_many(12)
                    .upgrade(0, up(0, 0, 0), 0)
                    .upgrade(1, up(0, 0, 0), 0)
                    .upgrade(2, up(7, 0, 0), 0)
                    .upgrade(3, up(0, 0, 3), 0)
                    .wait_s(1)
                    .0,
            ),
            (
                "half-close",
                Ops::new(0)
                    .accept()
                    .stall(0)
                    .http(0, 7)
                    .half_close(0)
                    .stall(0)
                    .accept()
                    .upgrade(1, up(0, 0, 0), 0)
                    .half_close(1)
                    .0,
            ),
            (
                "echo",
                Ops::new(0x34)
                    .accept()
                    .upgrade(0, up(0, 0, 0), 0)
                    .chat(0, 0)
                    .chat(0, 15)
                    .chat(0, 9)
                    .0,
            ),
            (
                "frames",
                Ops::new(4)
                    .accept()
                    .upgrade(0, up(0, 0, 0), 0)
                    .frame(0, 0x81, b"unmasked")
                    .accept()
                    .upgrade(1, up(0, 1, 0), 0)
                    .frame(1, 0x09, b"ping")
                    .repeat(1, 40)
                    .frame(1, 0x23, b"")
                    .0,
            ),
        ]
    }

    #[test]
    fn core_ops_reaches_chat() {
        let reached = Driver::run(&core_seeds()[0].1);
        assert_eq!(reached.websockets, 2);
        assert!(
            reached.texts.iter().any(|t| t == "alice: hello"),
            "{reached:?}"
        );
        assert!(
            reached
                .texts
                .iter()
                .any(|t| t.starts_with("System: users: "))
        );
        assert!(
            reached.texts.iter().any(|t| t == "alice: fragment"),
            "{reached:?}"
        );
        assert!(reached.closes.contains(&1001), "{reached:?}");
    }

    #[test]
    fn core_ops_reaches_tickets_cookies_and_limits() {
        let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
        let reached = Driver::run(&seeds["login-ticket"]);
        assert!(reached.statuses.contains(&204) && reached.statuses.contains(&101));
        assert!(
            reached.texts.iter().any(|t| t == "alice: hello"),
            "{reached:?}"
        );
        let reached = Driver::run(&seeds["cookie-logout"]);
        assert!(reached.closes.contains(&4403), "{reached:?}");
        let reached = Driver::run(&seeds["limits"]);
        for status in [503, 429, 400] {
            assert!(reached.statuses.contains(&status), "{status}: {reached:?}");
        }
        let reached = Driver::run(&seeds["expiry"]);
        assert!(reached.closes.contains(&4401), "{reached:?}");
        let reached = Driver::run(&seeds["echo"]);
        assert!(reached.texts.iter().any(|t| t == "hello"), "{reached:?}");
        assert!(reached.closes.contains(&1009), "{reached:?}");
    }

    /// Meaningful request heads.
    fn head_seeds() -> Vec<(&'static str, Vec<u8>)> {
        let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
        let up = |target: &str, extra: &str| upgrade_request(target, extra).into_bytes();
        vec![
            ("bearer", up("/ws", &format!("Authorization: Bearer {token}\r\n"))),
            ("path", up(&format!("/ws/{token}"), "")),
            ("query", up(&format!("/ws?room=dev&token={token}"), "Sec-WebSocket-Protocol: chat, wsgate.json\r\n")),
            ("ticket", up("/ws?ticket=abc&room=x", "")),
            (
                "cookie",
                up("/ws", "Cookie: a=1; __Host-wsgate=SID; wsgate=\"q\"\r\nOrigin: http://127.0.0.1:8080\r\n"),
            ),
            ("cookie-foreign", up("/ws", "Cookie: wsgate=SID\r\nOrigin: https://app.example.com:443\r\n")),
            ("basic", up("/ws", "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n")),
            ("password", up("/ws?username=alice&password=wonder%20land", "")),
            ("two", up("/ws?token=a&%74oken=b", "Authorization: Bearer t\r\n")),
            (
                "token-post",
                form_post("/token", "username=alice&password=wonderland").into_bytes(),
            ),
            ("healthz", b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec()),
            ("head", b"HEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec()),
            (
                "expect",
                b"POST /login HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
            ),
            ("version", b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 8\r\n\r\n".to_vec()),
        ]
    }

    fn jwt_seeds() -> Vec<(&'static str, Vec<u8>)> {
        const RFC_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let config = JwtConfig::new(vec![Secret::new(JWT_KEY.to_vec(), None).expect("long")]);
        let sign = |claims: Value| match claims {
            Value::Object(map) => config.sign(&map).into_bytes(),
            _ => unreachable!(),
        };
        let exp = JWT_NOW_S + 3600;
        vec![
            ("rfc7515-a1", RFC_TOKEN.as_bytes().to_vec()),
            ("alice", sign(json!({"sub": "alice", "exp": exp}))),
            (
                "expired",
                sign(json!({"sub": "alice", "exp": JWT_NOW_S - 31})),
            ),
            (
                "rooms-role",
                sign(
                    json!({"sub": "bob", "exp": exp, "role": "viewer", "rooms": ["lobby", "dev"], "iat": JWT_NOW_S, "nbf": JWT_NOW_S}),
                ),
            ),
            (
                "none",
                b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.".to_vec(),
            ),
            // Recipes for built tokens: header and claim mutations.
            ("recipe-dup-sub", vec![0, 3, 2, 0, 1, 1, 0, 0, 0x22, 0, 0]),
            ("recipe-alg-none", vec![1, 0, 0, 2, 2, 0, 0x22, 0x40, 0]),
            (
                "recipe-exp-edge",
                vec![0, 2, 0, 1, 0, 98, 0, 2, 0, 0x22, 0x40, 0],
            ),
            ("recipe-rooms", vec![0, 2, 0, 7, 6, 0, 6, 1, 0x22, 0x40, 8]),
            ("recipe-escaped", vec![0, 1, 3, 0, 0x22, 0x40, 0]),
            ("recipe-encoding", vec![0, 0, 0x22, 0x0f, 0]),
        ]
    }

    fn params_seeds() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "login",
                b"username=al%20ice&password=a+b%26c&&grant_type=password".to_vec(),
            ),
            ("duplicate", b"token=a&%74oken=b".to_vec()),
            (
                "secrets",
                b"room=dev&token=x&ticket&password=p=q&username=u".to_vec(),
            ),
            ("utf8", "name=%C3%BC%FF&t%6Fken=%".as_bytes().to_vec()),
            (
                "cookies",
                b"__Host-wsgate\0a=1; __Host-wsgate=ID1;b=\"q\"\n__Host-wsgate=\"ID2\"\n;;=;x"
                    .to_vec(),
            ),
        ]
    }

    /// Writes the seed corpora (`cargo test --lib write_seed_corpora --
    /// --ignored`); the fuzzer's own finds are added with `cargo fuzz cmin`.
    #[test]
    #[ignore = "writes into fuzz/corpus"]
    fn write_seed_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let sets = [
            ("request_head", head_seeds()),
            ("jwt", jwt_seeds()),
            ("params", params_seeds()),
            ("core_ops", core_seeds()),
        ];
        for (target, seeds) in sets {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).expect("a corpus directory");
            for (name, data) in seeds {
                std::fs::write(dir.join(format!("seed-{name}")), data).expect("a seed file");
            }
        }
    }

    #[test]
    fn seeds_pass() {
        for (_, data) in head_seeds() {
            request_head(&data);
        }
        for (_, data) in jwt_seeds() {
            jwt(&data);
        }
        for (_, data) in params_seeds() {
            params(&data);
        }
        for (_, data) in core_seeds() {
            core_ops(&data);
        }
    }

    #[test]
    fn rfc7515_example_is_accepted_and_recipes_reach_acceptance() {
        let (_, rfc) = &jwt_seeds()[0];
        let token = std::str::from_utf8(rfc).expect("ASCII");
        assert!(jwt_fixture().config.decode_verified(token, JWT_NOW).is_ok());
        let (token, expected) = build_token(&[]);
        assert_eq!(
            expected,
            Some(Expected {
                decoded: Verdict::Accepted,
                verified: Verdict::Accepted
            })
        );
        assert!(jwt_fixture().config.verify(&token, JWT_NOW).is_ok());
    }
}
