//! The `jwt` target: the HS256 verifier, on the input as a token and on a
//! token built from the input as a recipe, whose verdict an independent
//! model of PROTOCOL §5 ([`model_claims`]) predicts.

use std::collections::HashSet;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::auth::jwt::{DEFAULT_MAX_TOKEN_LEN, JwtConfig, Secret, TokenError};
use crate::auth::{valid_role, valid_room_name, valid_user_name};

use super::{Reader, WRONG_KEY};

/// The verifier's first key (it also holds the RFC 7515 A.1 key).
pub(super) const JWT_KEY: &[u8] = b"wsgate-fuzzing-jwt-key-0123456789abcdef";

/// RFC 7515 Appendix A.1's HMAC key, base64url.
const RFC7515_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";

/// RFC 7515 Appendix A.1's token expires at this time (UNIX seconds).
const RFC7515_EXP: u64 = 1_300_819_380;

/// The verifier's clock, in whole seconds: a minute before the RFC
/// example expires, so that it is accepted.
pub(super) const JWT_NOW_S: u64 = RFC7515_EXP - 60;

/// The verifier's clock in milliseconds (half a second past
/// [`JWT_NOW_S`], so millisecond arithmetic matters).
pub(super) const JWT_NOW: u64 = JWT_NOW_S * 1000 + 500;

/// The verifier's leeway, in milliseconds (its default).
const JWT_LEEWAY_MS: u64 = 30_000;

pub(super) struct JwtFixture {
    pub(super) config: JwtConfig,
    /// The configured keys, for the independent HMAC check.
    keys: [Vec<u8>; 2],
}

pub(super) fn jwt_fixture() -> &'static JwtFixture {
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
pub(super) enum Verdict {
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
pub(super) struct Expected {
    pub(super) decoded: Verdict,
    pub(super) verified: Verdict,
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
pub(super) fn build_token(data: &[u8]) -> (String, Option<Expected>) {
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
