//! Our own HS256 JSON Web Token verifier and signer (PROTOCOL §5).
//!
//! Read these first: RFC 7515 (JWS, compact serialisation, §5.2 for the
//! validation steps), RFC 7519 (JWT claims, §4.1 for `exp`/`nbf`/`iat`/
//! `iss`/`aud`, §7.2 for validation), RFC 8725 (JWT best current
//! practice: algorithm pinning, no `none`, no key material from the token)
//! and RFC 4648 §5 (base64url).
//!
//! Deliberately hand-rolled on `hmac` + `sha2` + `base64` + `serde_json`: we
//! accept exactly one algorithm, one serialisation and one key type, so a
//! general JWT library would be mostly attack surface. The rules:
//!
//! 1. `token.len()` is bounded ([`JwtConfig::max_token_len`]) before any
//!    decoding.
//! 2. Exactly three `.`-separated parts, each canonical unpadded base64url;
//!    the signature part is not empty.
//! 3. The header is a JSON object without duplicate names whose `alg` is the
//!    string `"HS256"`, whose `typ` is absent or `"JWT"`, that has no `crit`
//!    and none of `jwk`, `jku`, `x5u`, `x5c`. A `kid` (a string) selects the
//!    configured secrets with that kid; without one every secret is tried.
//! 4. HMAC-SHA256 over the received `header.payload` bytes matches under one
//!    of those secrets, compared in constant time. Only then is the payload
//!    JSON parsed.
//! 5. The payload is a JSON object without duplicate names (at any depth),
//!    with a numeric `exp` in the future and `nbf`/`iat` not in the future
//!    (all within [`JwtConfig::leeway_secs`]), `iss`/`aud` exactly equal to
//!    the configured values, and — for [`JwtConfig::verify`] — a `sub` that is
//!    a valid user name, an optional valid `role` and optional valid `rooms`.
//!
//! A claim of the wrong type (`null` included) is a refusal, never "claim
//! absent".
//!
//! Contract: after [`JwtConfig::decode_verified`] or [`JwtConfig::verify`]
//! returns, nothing about the token can panic: every input is either
//! accepted or refused with a [`TokenError`].

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use super::{
    Credential, DEFAULT_ROLE, Principal, random_bytes, valid_role, valid_room_name, valid_user_name,
};

/// Minimum secret length in bytes; the server refuses to start with a
/// shorter one (PROTOCOL §5). 32 bytes is the HMAC-SHA256 output size, the
/// minimum RFC 7518 §3.2 requires for HS256.
pub const MIN_SECRET_LEN: usize = 32;

/// Default clock-skew allowance, in seconds, for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// Default upper bound on a token's length in bytes (4 KiB); a longer token
/// is refused before anything in it is decoded.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 4096;

/// The length of an HMAC-SHA256 tag, in bytes.
const TAG_LEN: usize = 32;

/// Strict base64url: the URL-safe alphabet, no padding accepted or produced,
/// non-zero trailing bits refused, so every byte string has exactly one
/// accepted encoding (RFC 7515 §2, RFC 4648 §3.5).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

type HmacSha256 = Hmac<Sha256>;

/// One HMAC-SHA256 key, optionally named by a `kid`.
///
/// Holds the keyed HMAC state rather than the raw bytes (HMAC's inner and
/// outer pads, computed once), so verifying does not re-key per token. Its
/// `Debug` shows the `kid` and the key length, never the key.
#[derive(Clone)]
pub struct Secret {
    mac: HmacSha256,
    len: usize,
    kid: Option<String>,
}

impl Secret {
    /// A secret from `key`, named `kid` when given.
    ///
    /// # Errors
    /// [`SecretError::TooShort`] when `key` is shorter than
    /// [`MIN_SECRET_LEN`] bytes.
    pub fn new(key: Vec<u8>, kid: Option<String>) -> Result<Secret, SecretError> {
        if key.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort { len: key.len() });
        }
        Ok(Secret::from_key(&key, kid))
    }

    /// A fresh secret of [`MIN_SECRET_LEN`] random bytes from the operating
    /// system, without a `kid`: tokens signed with it die with the process.
    ///
    /// # Panics
    /// When the OS has no randomness to give (see [`random_bytes`]).
    pub fn random() -> Secret {
        let mut key = [0u8; MIN_SECRET_LEN];
        random_bytes(&mut key);
        Secret::from_key(&key, None)
    }

    /// The name that selects this secret from a token's `kid` header.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn from_key(key: &[u8], kid: Option<String>) -> Secret {
        // why: HMAC takes keys of any length (RFC 2104 §2: longer ones are
        // hashed first), so this cannot fail; the key is ours, not a peer's.
        let mac = <HmacSha256 as KeyInit>::new_from_slice(key)
            .expect("HMAC-SHA256 accepts keys of any length");
        Secret {
            mac,
            len: key.len(),
            kid,
        }
    }

    /// HMAC-SHA256 of `input` under this key.
    fn tag(&self, input: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        Mac::update(&mut mac, input);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("kid", &self.kid)
            .field("key", &format_args!("[redacted; {} bytes]", self.len))
            .finish()
    }
}

/// Why a [`Secret`] could not be made; a start-up (configuration) error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretError {
    /// The key has fewer than [`MIN_SECRET_LEN`] bytes.
    TooShort {
        /// The length of the key that was given, in bytes.
        len: usize,
    },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::TooShort { len } => write!(
                f,
                "JWT secret is {len} bytes; at least {MIN_SECRET_LEN} are required"
            ),
        }
    }
}

impl std::error::Error for SecretError {}

/// Verification and signing settings.
///
/// Several secrets allow rotation: the first one signs, all of them verify
/// (restricted to those with a matching `kid` when the token names one).
#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// The keys. The first signs; all verify. Empty: every token is refused
    /// and [`JwtConfig::sign`] panics.
    pub secrets: Vec<Secret>,
    /// When set, the `iss` claim must be present and exactly this string.
    /// Default: `None` (any string `iss` is accepted).
    pub issuer: Option<String>,
    /// When set, the `aud` claim must be this string, or an array of strings
    /// containing it. When not set, a token carrying `aud` is refused
    /// (RFC 7519 §4.1.3). Default: `None`.
    pub audience: Option<String>,
    /// Clock-skew allowance in seconds for `exp`, `nbf` and `iat`.
    /// Default: [`DEFAULT_LEEWAY_SECS`] (30 s).
    pub leeway_secs: u64,
    /// The longest token accepted, in bytes; a longer one is refused before
    /// it is decoded. Default: [`DEFAULT_MAX_TOKEN_LEN`] (4 KiB).
    pub max_token_len: usize,
}

impl JwtConfig {
    /// Settings with these secrets and every other field at its default.
    pub fn new(secrets: Vec<Secret>) -> JwtConfig {
        JwtConfig {
            secrets,
            issuer: None,
            audience: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// Checks structure, header, signature and the `exp`/`nbf`/`iat`/`iss`/
    /// `aud` claims of `token` at time `now_ms` (milliseconds since the UNIX
    /// epoch); returns the payload object.
    ///
    /// # Errors
    /// [`TokenError::Expired`] when only the time has run out (the signature
    /// and everything before it were good); [`TokenError::Invalid`] for any
    /// other failed check.
    pub fn decode_verified(
        &self,
        token: &str,
        now_ms: u64,
    ) -> Result<Map<String, Value>, TokenError> {
        let (claims, exp_ms) = self.decode(token, now_ms)?;
        self.check_expiry(exp_ms, now_ms)?;
        Ok(claims)
    }

    /// Everything [`JwtConfig::decode_verified`] checks but `exp` against the
    /// clock; returns the payload and `exp` in milliseconds.
    fn decode(&self, token: &str, now_ms: u64) -> Result<(Map<String, Value>, u64), Invalid> {
        if token.len() > self.max_token_len {
            return Err(Invalid::TooLong);
        }

        // Structure: exactly three canonical base64url parts.
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Invalid::PartCount);
        };
        if sig_b64.is_empty() {
            return Err(Invalid::EmptySignature);
        }
        let header = B64
            .decode(header_b64)
            .map_err(|_| Invalid::HeaderEncoding)?;
        let payload = B64
            .decode(payload_b64)
            .map_err(|_| Invalid::PayloadEncoding)?;
        let sig = B64
            .decode(sig_b64)
            .map_err(|_| Invalid::SignatureEncoding)?;

        // Header: parsed before the signature check because it names the
        // algorithm and the key, and checked in full before any HMAC work.
        let header = parse_object(
            &header,
            Invalid::HeaderJson,
            Invalid::HeaderNotObject,
            Invalid::HeaderDuplicateName,
        )?;
        let candidates = self.check_header(&header)?;

        // Signature, over the bytes exactly as received.
        if sig.len() != TAG_LEN {
            return Err(Invalid::SignatureLength);
        }
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        // why: every candidate is tried and the results ORed, so the time
        // taken does not say which of the secrets matched.
        let mut matched = Choice::from(0);
        for secret in &candidates {
            matched |= secret.tag(signing_input)[..].ct_eq(&sig[..]);
        }
        if !bool::from(matched) {
            return Err(Invalid::BadSignature);
        }

        // Payload: only now is attacker-chosen JSON parsed.
        let claims = parse_object(
            &payload,
            Invalid::PayloadJson,
            Invalid::PayloadNotObject,
            Invalid::PayloadDuplicateName,
        )?;
        let exp_ms = self.check_registered_claims(&claims, now_ms)?;
        Ok((claims, exp_ms))
    }

    /// Refuses a token whose `exp` plus leeway is not after `now_ms`.
    ///
    /// why: checked after every other check, so `Expired` (which tells the
    /// client to refresh and retry) is only said of a token that would
    /// otherwise have been accepted.
    fn check_expiry(&self, exp_ms: u64, now_ms: u64) -> Result<(), TokenError> {
        let leeway_ms = self.leeway_secs.saturating_mul(1000);
        if now_ms >= exp_ms.saturating_add(leeway_ms) {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// Everything [`JwtConfig::decode_verified`] checks, plus the claims the
    /// server uses: `sub` (a string that passes [`valid_user_name`]), `role`
    /// (optional; a string that passes [`valid_role`]; default
    /// [`DEFAULT_ROLE`]) and `rooms` (optional; an array of strings, each
    /// passing [`valid_room_name`]).
    ///
    /// # Errors
    /// As [`JwtConfig::decode_verified`], and [`TokenError::Invalid`] when
    /// one of those claims is missing, mistyped or not valid.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Claims, TokenError> {
        let (claims, exp_ms) = self.decode(token, now_ms)?;

        let sub = match claims.get("sub") {
            None => return Err(Invalid::SubMissing.into()),
            Some(Value::String(s)) if valid_user_name(s) => s.clone(),
            Some(Value::String(_)) => return Err(Invalid::SubInvalid.into()),
            Some(_) => return Err(Invalid::SubType.into()),
        };
        let role = match claims.get("role") {
            None => DEFAULT_ROLE.to_owned(),
            Some(Value::String(r)) if valid_role(r) => r.clone(),
            Some(Value::String(_)) => return Err(Invalid::RoleInvalid.into()),
            Some(_) => return Err(Invalid::RoleType.into()),
        };
        let rooms = match claims.get("rooms") {
            None => None,
            Some(Value::Array(items)) => {
                let mut rooms = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(r) if valid_room_name(r) => rooms.push(r.clone()),
                        Value::String(_) => return Err(Invalid::RoomInvalid.into()),
                        _ => return Err(Invalid::RoomsType.into()),
                    }
                }
                Some(rooms)
            }
            Some(_) => return Err(Invalid::RoomsType.into()),
        };
        self.check_expiry(exp_ms, now_ms)?;

        Ok(Claims {
            sub,
            role,
            rooms,
            exp_ms,
        })
    }

    /// Signs `payload` with the first secret and returns the compact token.
    ///
    /// The header is `{"alg":"HS256","typ":"JWT"}`, with `"kid"` added when
    /// the first secret has one. `payload` is signed as given: nothing is
    /// added or checked.
    ///
    /// # Panics
    /// When no secret is configured (a start-up mistake, not a peer's).
    pub fn sign(&self, payload: &Map<String, Value>) -> String {
        let secret = self
            .secrets
            .first()
            .expect("JwtConfig::sign needs at least one secret");
        let mut header = String::from(r#"{"alg":"HS256","typ":"JWT""#);
        if let Some(kid) = secret.kid() {
            header.push_str(r#","kid":"#);
            header.push_str(&Value::from(kid).to_string());
        }
        header.push('}');
        // why: a Map<String, Value> always serialises (string keys, finite
        // numbers, writing into a Vec); the payload is ours, not a peer's.
        let payload = serde_json::to_vec(payload).expect("a JSON object always serialises");

        let mut token = B64.encode(header);
        token.push('.');
        B64.encode_string(payload, &mut token);
        let tag = secret.tag(token.as_bytes());
        token.push('.');
        B64.encode_string(tag, &mut token);
        token
    }

    /// A token for the `/token` endpoint: `sub`, `role`, `iat` = now and
    /// `exp` = now + `ttl_secs` (whole seconds, `now_ms` rounded down), plus
    /// `iss` / `aud` when configured, signed with the first secret.
    ///
    /// # Panics
    /// When no secret is configured, as [`JwtConfig::sign`].
    pub fn issue(&self, sub: &str, role: &str, now_ms: u64, ttl_secs: u64) -> String {
        debug_assert!(valid_user_name(sub), "issue() for an invalid user name");
        debug_assert!(valid_role(role), "issue() for an invalid role");
        let iat = now_ms / 1000;
        let mut payload = Map::new();
        payload.insert("sub".into(), sub.into());
        payload.insert("role".into(), role.into());
        payload.insert("iat".into(), iat.into());
        payload.insert("exp".into(), iat.saturating_add(ttl_secs).into());
        if let Some(iss) = &self.issuer {
            payload.insert("iss".into(), iss.as_str().into());
        }
        if let Some(aud) = &self.audience {
            payload.insert("aud".into(), aud.as_str().into());
        }
        self.sign(&payload)
    }

    /// Checks the parsed header and returns the secrets to try.
    fn check_header(&self, header: &Map<String, Value>) -> Result<Vec<&Secret>, Invalid> {
        // why: `alg` pinned to one value defeats `none` and algorithm
        // confusion (RFC 8725 §2.1, §3.1); case and type must match too.
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(Invalid::Alg);
        }
        match header.get("typ") {
            None => {}
            Some(Value::String(t)) if t == "JWT" => {}
            Some(_) => return Err(Invalid::Typ),
        }
        // why: `crit` names extensions we must understand or refuse
        // (RFC 7515 §4.1.11); we understand none.
        if header.contains_key("crit") {
            return Err(Invalid::Crit);
        }
        // why: we never take key material from the token; a header offering
        // it signals someone hoping a verifier will (RFC 8725 §3.10).
        if ["jwk", "jku", "x5u", "x5c"]
            .iter()
            .any(|name| header.contains_key(*name))
        {
            return Err(Invalid::KeyHeader);
        }
        let candidates: Vec<&Secret> = match header.get("kid") {
            None => self.secrets.iter().collect(),
            Some(Value::String(kid)) => {
                let named: Vec<&Secret> = self
                    .secrets
                    .iter()
                    .filter(|s| s.kid() == Some(kid.as_str()))
                    .collect();
                if named.is_empty() {
                    return Err(Invalid::UnknownKid);
                }
                named
            }
            Some(_) => return Err(Invalid::KidType),
        };
        if candidates.is_empty() {
            return Err(Invalid::NoSecret);
        }
        Ok(candidates)
    }

    /// `exp` (its form only), `nbf`, `iat`, `iss`, `aud` (RFC 7519 §4.1);
    /// returns `exp` in milliseconds.
    fn check_registered_claims(
        &self,
        claims: &Map<String, Value>,
        now_ms: u64,
    ) -> Result<u64, Invalid> {
        let leeway_ms = self.leeway_secs.saturating_mul(1000);

        let exp_ms = match claims.get("exp") {
            None => return Err(Invalid::ExpMissing),
            Some(v) => numeric_date_ms(v).ok_or(Invalid::ExpType)?,
        };
        if let Some(v) = claims.get("nbf") {
            let nbf_ms = numeric_date_ms(v).ok_or(Invalid::NbfType)?;
            if nbf_ms > now_ms.saturating_add(leeway_ms) {
                return Err(Invalid::NotYetValid);
            }
        }
        if let Some(v) = claims.get("iat") {
            let iat_ms = numeric_date_ms(v).ok_or(Invalid::IatType)?;
            if iat_ms > now_ms.saturating_add(leeway_ms) {
                return Err(Invalid::IssuedInFuture);
            }
        }

        match (claims.get("iss"), &self.issuer) {
            (None, None) => {}
            (None, Some(_)) => return Err(Invalid::IssMissing),
            (Some(Value::String(iss)), want) => {
                if want.as_ref().is_some_and(|want| want != iss) {
                    return Err(Invalid::IssMismatch);
                }
            }
            (Some(_), _) => return Err(Invalid::IssType),
        }

        match (claims.get("aud"), &self.audience) {
            (None, None) => {}
            (None, Some(_)) => return Err(Invalid::AudMissing),
            // why: RFC 7519 §4.1.3: a recipient that does not identify
            // itself with a value in `aud` must reject the token.
            (Some(_), None) => return Err(Invalid::AudUnexpected),
            (Some(Value::String(aud)), Some(want)) => {
                if aud != want {
                    return Err(Invalid::AudMismatch);
                }
            }
            (Some(Value::Array(auds)), Some(want)) => {
                let mut found = false;
                for aud in auds {
                    match aud {
                        Value::String(aud) => found |= aud == want,
                        _ => return Err(Invalid::AudType),
                    }
                }
                if !found {
                    return Err(Invalid::AudMismatch);
                }
            }
            (Some(_), Some(_)) => return Err(Invalid::AudType),
        }
        Ok(exp_ms)
    }
}

/// A NumericDate (RFC 7519 §2) in milliseconds: a non-negative JSON number,
/// integer or not, times 1000, saturating, fractions of a millisecond
/// dropped. `None` for anything else (a string, `null`, a negative number).
fn numeric_date_ms(v: &Value) -> Option<u64> {
    let Value::Number(n) = v else { return None };
    if let Some(secs) = n.as_u64() {
        return Some(secs.saturating_mul(1000));
    }
    let secs = n.as_f64()?;
    if secs.is_finite() && secs >= 0.0 {
        // why: `as` saturates (and floors a non-negative value); no panic.
        Some((secs * 1000.0) as u64)
    } else {
        None
    }
}

/// Parses `bytes` as a JSON object in which no object, at any depth, repeats
/// a name; the three errors are those to report for bad JSON, a non-object
/// and a repeated name.
fn parse_object(
    bytes: &[u8],
    bad_json: Invalid,
    not_object: Invalid,
    duplicate: Invalid,
) -> Result<Map<String, Value>, Invalid> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(Strict(_)) => Err(not_object),
        // why: syntax, EOF and recursion-limit errors are classified as
        // such by serde_json; a `Data` error can only come from our visitor,
        // which raises one for a repeated name.
        Err(e) if e.classify() == serde_json::error::Category::Data => Err(duplicate),
        Err(_) => Err(bad_json),
    }
}

/// A JSON value parsed without tolerating duplicate object names.
///
/// serde_json's own `Map` keeps the last of two equal names, so
/// `{"sub":"alice","sub":"bob"}` would silently mean `bob` to us and perhaps
/// `alice` to another parser; we refuse such documents instead (RFC 8259
/// §4: names SHOULD be unique; RFC 7515 §4: parsers MUST reject or keep the last).
/// Nesting depth is bounded by serde_json's recursion limit (128).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        // serde_json never hands over a non-finite float (an overflowing
        // literal is a syntax error), but refuse one all the same.
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom("duplicate object name"));
            }
            let Strict(value) = access.next_value()?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

/// The claims of a verified token that the server uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// `sub`: the user; a valid user name.
    pub sub: String,
    /// `role`, or [`DEFAULT_ROLE`] when the token names none.
    pub role: String,
    /// `rooms`: the only rooms this token may join, when present (an empty
    /// list allows none).
    pub rooms: Option<Vec<String>>,
    /// `exp` in milliseconds since the UNIX epoch (saturating).
    pub exp_ms: u64,
}

impl Claims {
    /// The authenticated identity these claims prove, with a
    /// [`Credential::Token`] that expires at `exp_ms`.
    pub fn into_principal(self) -> Principal {
        Principal::new(
            self.sub,
            self.role,
            self.rooms,
            Credential::Token {
                exp_ms: self.exp_ms,
            },
        )
    }
}

/// Why a token was refused.
///
/// `Display` is the public class only — `token expired` or `invalid token` —
/// never which check failed and never the token (PROTOCOL §2); both map to
/// HTTP `401` with `WWW-Authenticate: Bearer error="invalid_token"`.
/// [`TokenError::detail`] names the failed check for debug logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Well formed and correctly signed, but `exp` (plus leeway) has passed.
    Expired,
    /// Refused by the check named inside.
    Invalid(Invalid),
}

impl TokenError {
    /// The public class of the refusal: `token expired` or `invalid token`.
    pub fn public_reason(&self) -> &'static str {
        match self {
            TokenError::Expired => "token expired",
            TokenError::Invalid(_) => "invalid token",
        }
    }

    /// A short lowercase phrase naming the failed check, for debug logs
    /// (never shown to the peer).
    pub fn detail(&self) -> &'static str {
        match self {
            TokenError::Expired => "token expired",
            TokenError::Invalid(why) => why.detail(),
        }
    }

    /// The HTTP status of a refused upgrade or request: always `401`.
    pub fn http_status(&self) -> u16 {
        401
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.public_reason())
    }
}

impl std::error::Error for TokenError {}

impl From<Invalid> for TokenError {
    fn from(why: Invalid) -> Self {
        TokenError::Invalid(why)
    }
}

/// The check that refused an invalid token; one variant per check. Carries
/// nothing from the token. For logs only: see [`TokenError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// Longer than [`JwtConfig::max_token_len`].
    TooLong,
    /// Not exactly three `.`-separated parts.
    PartCount,
    /// The signature part is empty (an unsigned token).
    EmptySignature,
    /// The header part is not canonical unpadded base64url.
    HeaderEncoding,
    /// The payload part is not canonical unpadded base64url.
    PayloadEncoding,
    /// The signature part is not canonical unpadded base64url.
    SignatureEncoding,
    /// The header is not JSON.
    HeaderJson,
    /// The header is JSON but not an object.
    HeaderNotObject,
    /// The header repeats a name.
    HeaderDuplicateName,
    /// `alg` is not the string `"HS256"`.
    Alg,
    /// `typ` is present and not the string `"JWT"`.
    Typ,
    /// The header has `crit`.
    Crit,
    /// The header offers key material (`jwk`, `jku`, `x5u` or `x5c`).
    KeyHeader,
    /// `kid` is not a string.
    KidType,
    /// No configured secret has the token's `kid`.
    UnknownKid,
    /// No secret is configured.
    NoSecret,
    /// The signature is not 32 bytes long.
    SignatureLength,
    /// The signature matches under no candidate secret.
    BadSignature,
    /// The payload is not JSON.
    PayloadJson,
    /// The payload is JSON but not an object.
    PayloadNotObject,
    /// The payload repeats a name, at any depth.
    PayloadDuplicateName,
    /// No `exp`.
    ExpMissing,
    /// `exp` is not a non-negative number.
    ExpType,
    /// `nbf` is not a non-negative number.
    NbfType,
    /// `nbf` is later than now plus leeway.
    NotYetValid,
    /// `iat` is not a non-negative number.
    IatType,
    /// `iat` is later than now plus leeway.
    IssuedInFuture,
    /// An issuer is configured and the token has no `iss`.
    IssMissing,
    /// `iss` is not a string.
    IssType,
    /// `iss` is not exactly the configured issuer.
    IssMismatch,
    /// An audience is configured and the token has no `aud`.
    AudMissing,
    /// `aud` is neither a string nor an array of strings.
    AudType,
    /// `aud` does not name the configured audience exactly.
    AudMismatch,
    /// The token has `aud` and no audience is configured.
    AudUnexpected,
    /// No `sub`.
    SubMissing,
    /// `sub` is not a string.
    SubType,
    /// `sub` is not a valid user name (empty, `System`, has `:`…).
    SubInvalid,
    /// `role` is not a string.
    RoleType,
    /// `role` is not a valid role name.
    RoleInvalid,
    /// `rooms` is not an array of strings.
    RoomsType,
    /// An entry of `rooms` is not a valid room name.
    RoomInvalid,
}

impl Invalid {
    /// A short lowercase phrase naming the check, for debug logs.
    pub fn detail(self) -> &'static str {
        match self {
            Invalid::TooLong => "token too long",
            Invalid::PartCount => "not three parts",
            Invalid::EmptySignature => "empty signature",
            Invalid::HeaderEncoding => "header not base64url",
            Invalid::PayloadEncoding => "payload not base64url",
            Invalid::SignatureEncoding => "signature not base64url",
            Invalid::HeaderJson => "header not json",
            Invalid::HeaderNotObject => "header not an object",
            Invalid::HeaderDuplicateName => "duplicate json name in header",
            Invalid::Alg => "alg not HS256",
            Invalid::Typ => "typ not JWT",
            Invalid::Crit => "crit header present",
            Invalid::KeyHeader => "key-bearing header present",
            Invalid::KidType => "kid not a string",
            Invalid::UnknownKid => "unknown kid",
            Invalid::NoSecret => "no secret configured",
            Invalid::SignatureLength => "signature not 32 bytes",
            Invalid::BadSignature => "bad signature",
            Invalid::PayloadJson => "payload not json",
            Invalid::PayloadNotObject => "payload not an object",
            Invalid::PayloadDuplicateName => "duplicate json name in payload",
            Invalid::ExpMissing => "exp missing",
            Invalid::ExpType => "exp not a number",
            Invalid::NbfType => "nbf not a number",
            Invalid::NotYetValid => "nbf in the future",
            Invalid::IatType => "iat not a number",
            Invalid::IssuedInFuture => "iat in the future",
            Invalid::IssMissing => "iss missing",
            Invalid::IssType => "iss not a string",
            Invalid::IssMismatch => "iss mismatch",
            Invalid::AudMissing => "aud missing",
            Invalid::AudType => "aud not a string or array of strings",
            Invalid::AudMismatch => "aud mismatch",
            Invalid::AudUnexpected => "aud present but none configured",
            Invalid::SubMissing => "sub missing",
            Invalid::SubType => "sub not a string",
            Invalid::SubInvalid => "sub not a valid user name",
            Invalid::RoleType => "role not a string",
            Invalid::RoleInvalid => "role not a valid role",
            Invalid::RoomsType => "rooms not an array of strings",
            Invalid::RoomInvalid => "rooms has an invalid room name",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
    const OTHER_KEY: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
    /// The virtual clock: 2023-11-14T22:13:20Z.
    const NOW_S: u64 = 1_700_000_000;
    const NOW: u64 = NOW_S * 1000;
    const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    // RFC 7515 Appendix A.1.
    const RFC_KEY: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const RFC_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_EXP: u64 = 1_300_819_380;

    fn secret(key: &[u8], kid: Option<&str>) -> Secret {
        Secret::new(key.to_vec(), kid.map(str::to_owned)).expect("test keys are long enough")
    }

    fn cfg() -> JwtConfig {
        JwtConfig::new(vec![secret(KEY, None)])
    }

    fn rfc_cfg() -> JwtConfig {
        let key = B64
            .decode(RFC_KEY)
            .expect("the RFC key is canonical base64url");
        assert_eq!(key.len(), 64);
        JwtConfig::new(vec![Secret::new(key, None).expect("64 bytes")])
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        B64.encode(bytes)
    }

    /// HMAC-SHA256 of `input`, computed here independently of [`Secret`].
    fn mac_b64(key: &[u8], input: &str) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("any length");
        Mac::update(&mut mac, input.as_bytes());
        b64(mac.finalize().into_bytes())
    }

    /// `h.p.sig` with a correct signature over exactly these (maybe bad) parts.
    fn sign_parts(key: &[u8], h: &str, p: &str) -> String {
        let input = format!("{h}.{p}");
        let sig = mac_b64(key, &input);
        format!("{input}.{sig}")
    }

    /// A correctly signed token from raw header and payload JSON text.
    fn raw(header: &str, payload: &str) -> String {
        sign_parts(KEY, &b64(header), &b64(payload))
    }

    /// Payload JSON: `sub` alice, `exp` an hour from NOW, then `extra`.
    fn claims(extra: &str) -> String {
        format!(r#"{{"sub":"alice","exp":{}{extra}}}"#, NOW_S + 3600)
    }

    /// A good token with `extra` claims appended.
    fn good(extra: &str) -> String {
        raw(HS, &claims(extra))
    }

    fn refused(cfg: &JwtConfig, token: &str) -> Invalid {
        match cfg.verify(token, NOW) {
            Err(TokenError::Invalid(why)) => why,
            other => panic!("{token:?}: expected Invalid, got {other:?}"),
        }
    }

    /// Changes the last character's lowest bit: for a part whose length is
    /// not a multiple of 4 that bit is a trailing (must-be-zero) bit.
    fn dirty_trailing_bits(part: &str) -> String {
        assert_ne!(part.len() % 4, 0, "{part:?} has no trailing bits");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = part.as_bytes()[part.len() - 1];
        let idx = alphabet.iter().position(|&c| c == last).expect("base64url");
        assert_eq!(idx & 1, 0, "canonical encodings have zero trailing bits");
        let mut out = part[..part.len() - 1].to_owned();
        out.push(char::from(alphabet[idx | 1]));
        out
    }

    fn parts(token: &str) -> (String, String, String) {
        let v: Vec<&str> = token.split('.').collect();
        assert_eq!(v.len(), 3);
        (v[0].to_owned(), v[1].to_owned(), v[2].to_owned())
    }

    // --- RFC 7515 Appendix A.1 ------------------------------------------

    #[test]
    fn rfc7515_a1_accepted_before_exp() {
        let cfg = rfc_cfg();
        let payload = cfg
            .decode_verified(RFC_TOKEN, (RFC_EXP - 1) * 1000)
            .expect("the RFC example verifies");
        assert_eq!(payload.get("iss"), Some(&Value::from("joe")));
        assert_eq!(payload.get("exp"), Some(&Value::from(RFC_EXP)));
        assert_eq!(
            payload.get("http://example.com/is_root"),
            Some(&Value::Bool(true))
        );
    }

    #[test]
    fn rfc7515_a1_leeway_edges() {
        let cfg = rfc_cfg();
        assert_eq!(cfg.leeway_secs, 30);
        let at = |ms: u64| cfg.decode_verified(RFC_TOKEN, ms).map(|_| ());
        assert_eq!(at(RFC_EXP * 1000), Ok(()));
        assert_eq!(at((RFC_EXP + 29) * 1000), Ok(()));
        assert_eq!(at((RFC_EXP + 30) * 1000 - 1), Ok(()));
        assert_eq!(at((RFC_EXP + 30) * 1000), Err(TokenError::Expired));
        assert_eq!(at((RFC_EXP + 31) * 1000), Err(TokenError::Expired));
        assert_eq!(at(u64::MAX), Err(TokenError::Expired));

        let strict = JwtConfig {
            leeway_secs: 0,
            ..rfc_cfg()
        };
        assert_eq!(
            strict
                .decode_verified(RFC_TOKEN, RFC_EXP * 1000 - 1)
                .map(|_| ()),
            Ok(())
        );
        assert_eq!(
            strict
                .decode_verified(RFC_TOKEN, RFC_EXP * 1000)
                .map(|_| ()),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn rfc7515_a1_verify_wants_sub() {
        let cfg = rfc_cfg();
        for now in [(RFC_EXP - 1) * 1000, (RFC_EXP + 3600) * 1000] {
            // Missing `sub` is reported even once expired: `Expired` is only
            // said of a token that would otherwise pass.
            assert_eq!(
                cfg.verify(RFC_TOKEN, now),
                Err(TokenError::Invalid(Invalid::SubMissing))
            );
        }
    }

    #[test]
    fn rfc7515_a1_issuer() {
        let now = (RFC_EXP - 1) * 1000;
        let with = |iss: &str| JwtConfig {
            issuer: Some(iss.to_owned()),
            ..rfc_cfg()
        };
        assert!(with("joe").decode_verified(RFC_TOKEN, now).is_ok());
        for other in ["jo", "joe ", "Joe", "joel", ""] {
            assert_eq!(
                with(other).decode_verified(RFC_TOKEN, now),
                Err(TokenError::Invalid(Invalid::IssMismatch)),
                "{other:?}"
            );
        }
    }

    #[test]
    fn rfc7515_a1_every_signature_char_matters() {
        let cfg = rfc_cfg();
        let now = (RFC_EXP - 1) * 1000;
        let (h, p, sig) = parts(RFC_TOKEN);

        // First character: 'd' -> 'e' keeps the encoding canonical.
        let flipped = format!("{h}.{p}.e{}", &sig[1..]);
        assert_eq!(
            cfg.decode_verified(&flipped, now),
            Err(TokenError::Invalid(Invalid::BadSignature))
        );

        for i in 0..sig.len() {
            for c in ['A', 'g', 'k', '0', '-', '_'] {
                let mut s = sig.clone().into_bytes();
                if s[i] == c as u8 {
                    continue;
                }
                s[i] = c as u8;
                let token = format!("{h}.{p}.{}", String::from_utf8(s).expect("ascii"));
                match cfg.decode_verified(&token, now) {
                    Err(TokenError::Invalid(
                        Invalid::BadSignature | Invalid::SignatureEncoding,
                    )) => {}
                    other => panic!("signature char {i} -> {c:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn rfc7515_a1_wrong_key() {
        let now = (RFC_EXP - 1) * 1000;
        assert_eq!(
            cfg().decode_verified(RFC_TOKEN, now),
            Err(TokenError::Invalid(Invalid::BadSignature))
        );
    }

    // --- signing, issuing, rotation ---------------------------------------

    #[test]
    fn sign_round_trip() {
        let cfg = cfg();
        let mut payload = Map::new();
        payload.insert("sub".into(), "alice".into());
        payload.insert("exp".into(), (NOW_S + 60).into());
        payload.insert("rooms".into(), serde_json::json!(["lobby", "dev"]));
        payload.insert(
            "x-custom".into(),
            serde_json::json!({"nested": [1, 2.5, null]}),
        );
        let token = cfg.sign(&payload);

        // The header is exactly as documented; the tag is a plain HMAC.
        let (h, p, sig) = parts(&token);
        assert_eq!(B64.decode(&h).expect("b64"), HS.as_bytes());
        assert_eq!(sig, mac_b64(KEY, &format!("{h}.{p}")));

        assert_eq!(cfg.decode_verified(&token, NOW), Ok(payload));
        let claims = cfg.verify(&token, NOW).expect("verifies");
        assert_eq!(
            claims,
            Claims {
                sub: "alice".into(),
                role: DEFAULT_ROLE.into(),
                rooms: Some(vec!["lobby".into(), "dev".into()]),
                exp_ms: (NOW_S + 60) * 1000,
            }
        );
    }

    #[test]
    fn sign_with_kid_names_it_in_the_header() {
        let cfg = JwtConfig::new(vec![
            secret(KEY, Some("2024-\"q\"")),
            secret(OTHER_KEY, None),
        ]);
        let token = cfg.sign(&serde_json::from_str(&claims("")).expect("json"));
        let (h, _, _) = parts(&token);
        let header: Value = serde_json::from_slice(&B64.decode(h).expect("b64")).expect("json");
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "2024-\"q\""})
        );
        assert_eq!(cfg.verify(&token, NOW).map(|c| c.sub), Ok("alice".into()));
    }

    #[test]
    fn issue_carries_the_claims() {
        let cfg = JwtConfig {
            issuer: Some("https://chat.example".into()),
            audience: Some("wsgate".into()),
            ..cfg()
        };
        let token = cfg.issue("alice", "admin", NOW + 999, 600);
        let payload = cfg.decode_verified(&token, NOW).expect("verifies");
        assert_eq!(
            payload.get("iss"),
            Some(&Value::from("https://chat.example"))
        );
        assert_eq!(payload.get("aud"), Some(&Value::from("wsgate")));
        assert_eq!(payload.get("iat"), Some(&Value::from(NOW_S)));
        assert_eq!(payload.get("exp"), Some(&Value::from(NOW_S + 600)));

        let claims = cfg.verify(&token, NOW).expect("verifies");
        assert_eq!(claims.role, "admin");
        assert_eq!(claims.exp_ms, (NOW_S + 600) * 1000);
        assert_eq!(
            cfg.verify(&token, (NOW_S + 630) * 1000),
            Err(TokenError::Expired)
        );

        let principal = claims.into_principal();
        assert_eq!(principal.user(), "alice");
        assert_eq!(principal.role(), "admin");
        assert_eq!(principal.rooms(), None);
        assert_eq!(
            principal.credential(),
            &Credential::Token {
                exp_ms: (NOW_S + 600) * 1000
            }
        );
    }

    #[test]
    fn issue_without_iss_or_aud_configured() {
        let cfg = cfg();
        let token = cfg.issue("bob", DEFAULT_ROLE, NOW, 60);
        let payload = cfg.decode_verified(&token, NOW).expect("verifies");
        assert!(!payload.contains_key("iss"));
        assert!(!payload.contains_key("aud"));
        // A verifier expecting an issuer refuses it.
        let picky = JwtConfig {
            issuer: Some("x".into()),
            ..cfg.clone()
        };
        assert_eq!(refused(&picky, &token), Invalid::IssMissing);
    }

    #[test]
    fn rotation() {
        let old_only = JwtConfig::new(vec![secret(OTHER_KEY, None)]);
        let token = old_only.issue("alice", "member", NOW, 60);

        let both = JwtConfig::new(vec![secret(KEY, None), secret(OTHER_KEY, None)]);
        assert!(both.verify(&token, NOW).is_ok());
        // The first secret signs.
        let fresh = both.issue("alice", "member", NOW, 60);
        assert!(cfg().verify(&fresh, NOW).is_ok());
        assert_eq!(refused(&old_only, &fresh), Invalid::BadSignature);

        assert_eq!(refused(&cfg(), &token), Invalid::BadSignature);
    }

    #[test]
    fn kid_selects_among_secrets() {
        let k1 = JwtConfig::new(vec![secret(KEY, Some("k1"))]);
        let k2 = JwtConfig::new(vec![secret(OTHER_KEY, Some("k2"))]);
        let both = JwtConfig::new(vec![secret(KEY, Some("k1")), secret(OTHER_KEY, Some("k2"))]);

        let by_k2 = k2.issue("alice", "member", NOW, 60);
        assert!(both.verify(&by_k2, NOW).is_ok());
        assert_eq!(refused(&k1, &by_k2), Invalid::UnknownKid);

        // `kid` restricts: naming k1 but signing with k2's key fails even
        // though k2's key is configured.
        let lying = sign_parts(
            OTHER_KEY,
            &b64(r#"{"alg":"HS256","kid":"k1"}"#),
            &b64(claims("")),
        );
        assert_eq!(refused(&both, &lying), Invalid::BadSignature);

        let unknown = raw(r#"{"alg":"HS256","kid":"k3"}"#, &claims(""));
        assert_eq!(refused(&both, &unknown), Invalid::UnknownKid);

        // Without a kid every secret is tried.
        let anonymous = sign_parts(OTHER_KEY, &b64(HS), &b64(claims("")));
        assert!(both.verify(&anonymous, NOW).is_ok());
    }

    #[test]
    fn no_secret_configured() {
        let empty = JwtConfig::new(Vec::new());
        assert_eq!(refused(&empty, &good("")), Invalid::NoSecret);
        assert_eq!(
            refused(&empty, &raw(r#"{"alg":"HS256","kid":"a"}"#, &claims(""))),
            Invalid::UnknownKid
        );
    }

    // --- header -------------------------------------------------------------

    #[test]
    fn only_hs256() {
        let cfg = cfg();
        assert!(
            cfg.verify(&raw(r#"{"alg":"HS256"}"#, &claims("")), NOW)
                .is_ok()
        );
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"NONE"}"#,
            r#"{"alg":"nOnE"}"#,
            r#"{"alg":""}"#,
            r#"{"alg":"HS384"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"ES256"}"#,
            r#"{"alg":"PS256"}"#,
            r#"{"alg":"EdDSA"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"Hs256"}"#,
            r#"{"alg":"HS256 "}"#,
            r#"{"alg":" HS256"}"#,
            r#"{"alg":"HS256\u0000"}"#,
            r#"{"alg":256}"#,
            r#"{"alg":null}"#,
            r#"{"alg":true}"#,
            r#"{"alg":["HS256"]}"#,
            r#"{"alg":{"name":"HS256"}}"#,
            r#"{"typ":"JWT"}"#,
            r#"{}"#,
            r#"{"ALG":"HS256"}"#,
        ] {
            // Correctly signed: only the alg check can refuse these.
            assert_eq!(
                refused(&cfg, &raw(header, &claims(""))),
                Invalid::Alg,
                "{header}"
            );
        }
        // The classic unsigned `none` token.
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims("")));
        assert_eq!(refused(&cfg, &unsigned), Invalid::EmptySignature);
    }

    #[test]
    fn header_rules() {
        use Invalid::*;
        let cfg = cfg();
        let cases: &[(&str, Option<Invalid>)] = &[
            (r#"{"alg":"HS256","typ":"JWT"}"#, None),
            (r#"{"alg":"HS256"}"#, None),
            (r#"{"typ":"JWT","alg":"HS256"}"#, None),
            (r#" { "alg" : "HS256" } "#, None),
            (r#"{"alg":"HS256","cty":"x","unknown":{"a":1}}"#, None),
            (r#"{"alg":"HS256","typ":"at+jwt"}"#, Some(Typ)),
            (r#"{"alg":"HS256","typ":"jwt"}"#, Some(Typ)),
            (r#"{"alg":"HS256","typ":"JWS"}"#, Some(Typ)),
            (r#"{"alg":"HS256","typ":""}"#, Some(Typ)),
            (r#"{"alg":"HS256","typ":null}"#, Some(Typ)),
            (r#"{"alg":"HS256","typ":["JWT"]}"#, Some(Typ)),
            (r#"{"alg":"HS256","crit":["exp"]}"#, Some(Crit)),
            (r#"{"alg":"HS256","crit":[]}"#, Some(Crit)),
            (r#"{"alg":"HS256","crit":null}"#, Some(Crit)),
            (r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#, Some(Crit)),
            (
                r#"{"alg":"HS256","jwk":{"kty":"oct","k":"AAAA"}}"#,
                Some(KeyHeader),
            ),
            (
                r#"{"alg":"HS256","jku":"https://evil.example/k"}"#,
                Some(KeyHeader),
            ),
            (
                r#"{"alg":"HS256","x5u":"https://evil.example/c"}"#,
                Some(KeyHeader),
            ),
            (r#"{"alg":"HS256","x5c":["MIIB"]}"#, Some(KeyHeader)),
            (r#"{"alg":"HS256","jwk":null}"#, Some(KeyHeader)),
            (r#"{"alg":"HS256","kid":5}"#, Some(KidType)),
            (r#"{"alg":"HS256","kid":null}"#, Some(KidType)),
            (r#"{"alg":"HS256","kid":"any"}"#, Some(UnknownKid)),
            (r#"["HS256"]"#, Some(HeaderNotObject)),
            (r#""HS256""#, Some(HeaderNotObject)),
            ("null", Some(HeaderNotObject)),
            ("5", Some(HeaderNotObject)),
            (r#"{"alg":"none","alg":"HS256"}"#, Some(HeaderDuplicateName)),
            (
                r#"{"alg":"HS256","alg":"HS256"}"#,
                Some(HeaderDuplicateName),
            ),
            (
                r#"{"alg":"HS256","a\u006cg":"none"}"#,
                Some(HeaderDuplicateName),
            ),
            (
                r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#,
                Some(HeaderDuplicateName),
            ),
            (r#"{"alg":"HS256""#, Some(HeaderJson)),
            (r#"{"alg":"HS256"}x"#, Some(HeaderJson)),
            (r#"{"alg":'HS256'}"#, Some(HeaderJson)),
            (r#"{"alg":"HS256",}"#, Some(HeaderJson)),
            ("", Some(HeaderJson)),
        ];
        for (header, want) in cases {
            let got = cfg.verify(&raw(header, &claims("")), NOW).err();
            assert_eq!(got, want.map(TokenError::Invalid), "{header}");
        }
        // Non-UTF-8 header bytes.
        let token = sign_parts(KEY, &b64(b"{\"alg\":\"HS256\xff\"}"), &b64(claims("")));
        assert_eq!(refused(&cfg, &token), HeaderJson);
    }

    // --- structure and encoding --------------------------------------------

    #[test]
    fn structure() {
        use Invalid::*;
        let cfg = cfg();
        let token = good("");
        let (h, p, sig) = parts(&token);
        let tag = B64.decode(&sig).expect("b64");
        let cases: Vec<(String, Invalid)> = vec![
            (String::new(), PartCount),
            (".".into(), PartCount),
            (format!("{h}.{p}"), PartCount),
            (h.clone(), PartCount),
            (format!("{token}."), PartCount),
            (format!("{token}.{sig}"), PartCount),
            (format!("{h}.{p}.{sig}.{sig}.{sig}"), PartCount),
            ("..".into(), EmptySignature),
            (format!("{h}.{p}."), EmptySignature),
            (format!(".{p}.{sig}"), HeaderJson),
            (format!("{h}..{sig}"), BadSignature),
            (format!(" {token}"), HeaderEncoding),
            (format!("{token} "), SignatureEncoding),
            (format!("{token}\n"), SignatureEncoding),
            (format!("{h}.{p}.{sig}\r\n"), SignatureEncoding),
            (format!("{h}\t.{p}.{sig}"), HeaderEncoding),
            (
                format!("{h}.{} {}.{sig}", &p[..4], &p[4..]),
                PayloadEncoding,
            ),
            (format!("{h}.{p}.{}", b64(&tag[..16])), SignatureLength),
            (format!("{h}.{p}.{}", b64(&tag[..31])), SignatureLength),
            (
                format!("{h}.{p}.{}", b64([&tag[..], &tag[..]].concat())),
                SignatureLength,
            ),
            (format!("{h}.{p}.{}", b64([0u8; 64])), SignatureLength),
            (format!("{h}.{p}.{}", b64([0u8; 31])), SignatureLength),
            (format!("{h}.{p}.{}", b64([0u8; 33])), SignatureLength),
            (format!("{h}.{p}.{}", b64([0u8; 32])), BadSignature),
            (
                format!("{h}.{p}.{}", dirty_trailing_bits(&sig)),
                SignatureEncoding,
            ),
            (format!("{h}.{p}.{sig}="), SignatureEncoding),
            (
                format!("{h}.{p}.{}", &sig[..sig.len() - 2]),
                SignatureEncoding,
            ),
            (format!("{h}.{p}.A"), SignatureEncoding),
            (format!("{h}.{p}.{}", "%".repeat(43)), SignatureEncoding),
        ];
        for (token, want) in &cases {
            assert_eq!(refused(&cfg, token), *want, "{token:?}");
        }
        // One character cut off: 42 characters are either non-canonical or
        // 31 bytes; refused either way.
        let cut = format!("{h}.{p}.{}", &sig[..42]);
        assert!(matches!(
            refused(&cfg, &cut),
            SignatureEncoding | SignatureLength
        ));
    }

    /// A payload JSON whose length is 1 mod 3, so its base64 has padding
    /// and trailing bits.
    fn payload_1_mod_3() -> String {
        let mut json = claims("");
        while json.len() % 3 != 1 {
            json.insert(json.len() - 1, ' ');
        }
        json
    }

    #[test]
    fn padding_refused() {
        let cfg = cfg();
        let json = payload_1_mod_3();
        let unpadded = b64(&json);
        assert!(
            cfg.verify(&sign_parts(KEY, &b64(HS), &unpadded), NOW)
                .is_ok()
        );

        let padded = base64::engine::general_purpose::URL_SAFE.encode(&json);
        assert_eq!(padded, format!("{unpadded}=="));
        // Correctly signed over the padded text: only the encoding is wrong.
        let token = sign_parts(KEY, &b64(HS), &padded);
        assert_eq!(refused(&cfg, &token), Invalid::PayloadEncoding);
        let token = sign_parts(KEY, &b64(HS), &format!("{unpadded}="));
        assert_eq!(refused(&cfg, &token), Invalid::PayloadEncoding);
        let token = sign_parts(KEY, &format!("{}=", b64(r#"{"alg":"HS256"} "#)), &unpadded);
        assert_eq!(refused(&cfg, &token), Invalid::HeaderEncoding);
    }

    #[test]
    fn non_canonical_trailing_bits_refused() {
        let cfg = cfg();
        let json = payload_1_mod_3();
        let dirty = dirty_trailing_bits(&b64(&json));
        // The lenient decoder would read the very same bytes...
        let lenient = GeneralPurpose::new(
            &alphabet::URL_SAFE,
            base64::engine::general_purpose::NO_PAD.with_decode_allow_trailing_bits(true),
        );
        assert_eq!(lenient.decode(&dirty).expect("lenient"), json.as_bytes());
        // ...we refuse the second spelling.
        let token = sign_parts(KEY, &b64(HS), &dirty);
        assert_eq!(refused(&cfg, &token), Invalid::PayloadEncoding);
    }

    #[test]
    fn standard_alphabet_refused() {
        use base64::engine::general_purpose::STANDARD_NO_PAD;
        let cfg = cfg();
        // Find a payload whose standard encoding uses `+` or `/`.
        let mut filler = String::new();
        let json = loop {
            let json = claims(&format!(r#","x":"{filler}""#));
            if STANDARD_NO_PAD.encode(&json) != b64(&json) {
                break json;
            }
            filler.push_str("?>");
        };
        let std = STANDARD_NO_PAD.encode(&json);
        assert!(std.contains(['+', '/']));
        assert!(
            cfg.verify(&sign_parts(KEY, &b64(HS), &b64(&json)), NOW)
                .is_ok()
        );
        let token = sign_parts(KEY, &b64(HS), &std);
        assert_eq!(refused(&cfg, &token), Invalid::PayloadEncoding);

        // And in the signature: a tag whose base64url uses `-` or `_`,
        // written in the standard alphabet instead.
        let mut n = 0u32;
        let token = loop {
            let token = good(&format!(r#","n":{n}"#));
            if parts(&token).2.contains(['-', '_']) {
                break token;
            }
            n += 1;
        };
        assert!(cfg.verify(&token, NOW).is_ok());
        let (h, p, sig) = parts(&token);
        let std_sig = sig.replace('-', "+").replace('_', "/");
        assert_eq!(
            std_sig,
            STANDARD_NO_PAD.encode(B64.decode(&sig).expect("b64"))
        );
        let token = format!("{h}.{p}.{std_sig}");
        assert_eq!(refused(&cfg, &token), Invalid::SignatureEncoding);
    }

    #[test]
    fn length_limit_comes_first() {
        let token = good("");
        let exact = JwtConfig {
            max_token_len: token.len(),
            ..cfg()
        };
        assert!(exact.verify(&token, NOW).is_ok());
        let short = JwtConfig {
            max_token_len: token.len() - 1,
            ..cfg()
        };
        assert_eq!(refused(&short, &token), Invalid::TooLong);

        // Checked before anything is decoded.
        assert_eq!(
            refused(&cfg(), &"%".repeat(DEFAULT_MAX_TOKEN_LEN + 1)),
            Invalid::TooLong
        );
        assert_eq!(
            refused(&cfg(), &"%".repeat(DEFAULT_MAX_TOKEN_LEN)),
            Invalid::PartCount
        );
        let big = good(&format!(
            r#","pad":"{}""#,
            "x".repeat(DEFAULT_MAX_TOKEN_LEN)
        ));
        assert_eq!(refused(&cfg(), &big), Invalid::TooLong);
    }

    #[test]
    fn signature_checked_before_payload_is_parsed() {
        let cfg = cfg();
        let bad_json = b64("{not json");
        assert_eq!(
            refused(&cfg, &sign_parts(OTHER_KEY, &b64(HS), &bad_json)),
            Invalid::BadSignature
        );
        assert_eq!(
            refused(&cfg, &sign_parts(KEY, &b64(HS), &bad_json)),
            Invalid::PayloadJson
        );
        // The header, though, is read first.
        assert_eq!(
            refused(&cfg, &sign_parts(OTHER_KEY, &b64("{not json"), &bad_json)),
            Invalid::HeaderJson
        );
        assert_eq!(
            refused(
                &cfg,
                &sign_parts(OTHER_KEY, &b64(r#"{"alg":"none"}"#), &bad_json)
            ),
            Invalid::Alg
        );
    }

    #[test]
    fn mutations_are_refused_and_never_panic() {
        let cfg = cfg();
        let token = good(r#","role":"admin","rooms":["lobby"]"#);
        assert!(cfg.verify(&token, NOW).is_ok());
        for i in 0..token.len() {
            assert!(cfg.verify(&token[..i], NOW).is_err(), "prefix {i}");
            for c in ['A', 'z', '0', '-', '_', '.', '=', '+', '/', ' ', 'é', '\0'] {
                let mut mutated = token[..i].to_owned();
                mutated.push(c);
                mutated.push_str(&token[i + 1..]);
                if mutated != token {
                    assert!(cfg.verify(&mutated, NOW).is_err(), "{i} -> {c:?}");
                }
            }
        }
    }

    // --- payload --------------------------------------------------------------

    #[test]
    fn payload_shape() {
        use Invalid::*;
        let cfg = cfg();
        let exp = NOW_S + 3600;
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: Vec<(String, Option<Invalid>)> = vec![
            (claims(""), None),
            (format!(" {} \n", claims("")), None),
            (claims(&format!(r#","deep":{deep_ok}"#)), None),
            (claims(&format!(r#","deep":{too_deep}"#)), Some(PayloadJson)),
            ("[]".into(), Some(PayloadNotObject)),
            (r#""alice""#.into(), Some(PayloadNotObject)),
            ("5".into(), Some(PayloadNotObject)),
            ("null".into(), Some(PayloadNotObject)),
            (String::new(), Some(PayloadJson)),
            ("{".into(), Some(PayloadJson)),
            (format!("{}x", claims("")), Some(PayloadJson)),
            (format!("{}{{}}", claims("")), Some(PayloadJson)),
            (claims(r#","n":1e400"#), Some(PayloadJson)),
            (claims(r#","n":NaN"#), Some(PayloadJson)),
            (claims(r#","s":"\ud800""#), Some(PayloadJson)),
            (
                format!(r#"{{"sub":"alice","sub":"bob","exp":{exp}}}"#),
                Some(PayloadDuplicateName),
            ),
            (
                format!(r#"{{"sub":"alice","exp":{exp},"exp":1}}"#),
                Some(PayloadDuplicateName),
            ),
            (
                format!(r#"{{"sub":"alice","s\u0075b":"bob","exp":{exp}}}"#),
                Some(PayloadDuplicateName),
            ),
            (claims(r#","x":{"k":1,"k":2}"#), Some(PayloadDuplicateName)),
            (
                claims(r#","x":[{"a":{"k":1,"k":1}}]"#),
                Some(PayloadDuplicateName),
            ),
            (claims(r#","x":{"k":1},"y":{"k":1}"#), None),
        ];
        for (payload, want) in &cases {
            let got = cfg.verify(&raw(HS, payload), NOW).err();
            assert_eq!(got, want.map(TokenError::Invalid), "{payload}");
        }
        // Non-UTF-8 payload bytes.
        let token = sign_parts(KEY, &b64(HS), &b64(b"{\"sub\":\"al\xffce\"}"));
        assert_eq!(refused(&cfg, &token), PayloadJson);
    }

    #[test]
    fn claim_types_and_values() {
        use Invalid::*;
        let cfg = cfg();
        let exp = NOW_S + 3600;
        let cases: Vec<(String, Invalid)> = vec![
            (format!(r#"{{"exp":{exp}}}"#), SubMissing),
            (r#"{"sub":"alice"}"#.into(), ExpMissing),
            (r#"{"sub":"alice","exp":"2000000000"}"#.into(), ExpType),
            (r#"{"sub":"alice","exp":null}"#.into(), ExpType),
            (r#"{"sub":"alice","exp":true}"#.into(), ExpType),
            (r#"{"sub":"alice","exp":[2000000000]}"#.into(), ExpType),
            (r#"{"sub":"alice","exp":-1}"#.into(), ExpType),
            (r#"{"sub":"alice","exp":-0.5}"#.into(), ExpType),
            (format!(r#"{{"sub":5,"exp":{exp}}}"#), SubType),
            (format!(r#"{{"sub":null,"exp":{exp}}}"#), SubType),
            (format!(r#"{{"sub":["alice"],"exp":{exp}}}"#), SubType),
            (format!(r#"{{"sub":"","exp":{exp}}}"#), SubInvalid),
            (format!(r#"{{"sub":"System","exp":{exp}}}"#), SubInvalid),
            (format!(r#"{{"sub":"sYsTeM","exp":{exp}}}"#), SubInvalid),
            (format!(r#"{{"sub":"a:b","exp":{exp}}}"#), SubInvalid),
            (format!(r#"{{"sub":" alice","exp":{exp}}}"#), SubInvalid),
            (format!(r#"{{"sub":"al\nice","exp":{exp}}}"#), SubInvalid),
            (
                format!(r#"{{"sub":"{}","exp":{exp}}}"#, "x".repeat(65)),
                SubInvalid,
            ),
            (claims(r#","role":[]"#), RoleType),
            (claims(r#","role":null"#), RoleType),
            (claims(r#","role":1"#), RoleType),
            (claims(r#","role":"""#), RoleInvalid),
            (claims(r#","role":"ad min""#), RoleInvalid),
            (claims(r#","role":"admin:x""#), RoleInvalid),
            (claims(r#","rooms":"lobby""#), RoomsType),
            (claims(r#","rooms":null"#), RoomsType),
            (claims(r#","rooms":{"lobby":true}"#), RoomsType),
            (claims(r#","rooms":["lobby",5]"#), RoomsType),
            (claims(r#","rooms":[null]"#), RoomsType),
            (claims(r#","rooms":["lobby","bad room"]"#), RoomInvalid),
            (claims(r#","rooms":[""]"#), RoomInvalid),
            (claims(r#","nbf":"0""#), NbfType),
            (claims(r#","nbf":null"#), NbfType),
            (claims(r#","nbf":-5"#), NbfType),
            (claims(r#","iat":"0""#), IatType),
            (claims(r#","iat":{}"#), IatType),
            (claims(r#","iss":5"#), IssType),
            (claims(r#","iss":null"#), IssType),
            (claims(r#","aud":"wsgate""#), AudUnexpected),
            (claims(r#","aud":[]"#), AudUnexpected),
            (claims(r#","aud":null"#), AudUnexpected),
        ];
        for (payload, want) in &cases {
            assert_eq!(refused(&cfg, &raw(HS, payload)), *want, "{payload}");
        }
    }

    #[test]
    fn role_and_rooms() {
        let cfg = cfg();
        let check = |extra: &str| cfg.verify(&good(extra), NOW).expect("verifies");
        let plain = check("");
        assert_eq!(plain.role, "member");
        assert_eq!(plain.rooms, None);
        assert_eq!(check(r#","role":"viewer""#).role, "viewer");
        assert_eq!(check(r#","rooms":[]"#).rooms, Some(Vec::new()));
        assert_eq!(
            check(r#","rooms":["lobby","dev-1","a.b_c"]"#).rooms,
            Some(vec!["lobby".into(), "dev-1".into(), "a.b_c".into()])
        );
        assert_eq!(check(r#","jti":"x","other":[1,{}]"#).sub, "alice");
    }

    #[test]
    fn exp_forms() {
        let cfg = cfg();
        let exp_ms = |exp: &str| {
            cfg.verify(&raw(HS, &format!(r#"{{"sub":"a","exp":{exp}}}"#)), NOW)
                .map(|c| c.exp_ms)
        };
        assert_eq!(exp_ms("2000000000"), Ok(2_000_000_000_000));
        assert_eq!(exp_ms("2000000000.0"), Ok(2_000_000_000_000));
        assert_eq!(exp_ms("2000000000.5"), Ok(2_000_000_000_500));
        assert_eq!(exp_ms("2000000000.0009"), Ok(2_000_000_000_000));
        assert_eq!(exp_ms("2e9"), Ok(2_000_000_000_000));
        assert_eq!(exp_ms("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(exp_ms("1e300"), Ok(u64::MAX));
        assert_eq!(exp_ms("100000000000000000000000"), Ok(u64::MAX));
        assert_eq!(exp_ms("0"), Err(TokenError::Expired));
        assert_eq!(exp_ms("-0.0"), Err(TokenError::Expired));
        assert_eq!(exp_ms(&(NOW_S - 31).to_string()), Err(TokenError::Expired));
        assert_eq!(exp_ms(&(NOW_S - 30).to_string()), Err(TokenError::Expired));
        assert_eq!(exp_ms(&(NOW_S - 29).to_string()), Ok((NOW_S - 29) * 1000));
        // No overflow with extreme settings.
        let odd = JwtConfig {
            leeway_secs: u64::MAX,
            ..cfg.clone()
        };
        assert!(odd.verify(&good(""), u64::MAX - 1).is_ok());
        assert_eq!(odd.verify(&good(""), u64::MAX), Err(TokenError::Expired));
        assert!(cfg.verify(&good(""), 0).is_ok());
    }

    #[test]
    fn nbf_and_iat() {
        let cfg = cfg();
        let at = |claim: &str, secs: u64| {
            cfg.verify(&good(&format!(r#","{claim}":{secs}"#)), NOW)
                .map(|_| ())
        };
        for (claim, why) in [
            ("nbf", Invalid::NotYetValid),
            ("iat", Invalid::IssuedInFuture),
        ] {
            assert_eq!(at(claim, 0), Ok(()), "{claim}");
            assert_eq!(at(claim, NOW_S - 100), Ok(()), "{claim}");
            assert_eq!(at(claim, NOW_S), Ok(()), "{claim}");
            assert_eq!(at(claim, NOW_S + 29), Ok(()), "{claim}");
            assert_eq!(at(claim, NOW_S + 30), Ok(()), "{claim}");
            assert_eq!(at(claim, NOW_S + 31), Err(why.into()), "{claim}");
            assert_eq!(at(claim, NOW_S + 86_400), Err(why.into()), "{claim}");
        }
        let float = good(r#","nbf":1700000030.001"#);
        assert_eq!(refused(&cfg, &float), Invalid::NotYetValid);
    }

    #[test]
    fn issuer_exact_match() {
        use Invalid::*;
        let cfg = JwtConfig {
            issuer: Some("https://issuer.example".into()),
            ..cfg()
        };
        let cases: &[(&str, Option<Invalid>)] = &[
            (r#","iss":"https://issuer.example""#, None),
            ("", Some(IssMissing)),
            (r#","iss":"https://issuer.example/""#, Some(IssMismatch)),
            (r#","iss":"https://issuer.example.evil""#, Some(IssMismatch)),
            (r#","iss":"issuer.example""#, Some(IssMismatch)),
            (r#","iss":"HTTPS://ISSUER.EXAMPLE""#, Some(IssMismatch)),
            (r#","iss":"""#, Some(IssMismatch)),
            (r#","iss":["https://issuer.example"]"#, Some(IssType)),
            (r#","iss":null"#, Some(IssType)),
        ];
        for (extra, want) in cases {
            let got = cfg.verify(&good(extra), NOW).err();
            assert_eq!(got, want.map(TokenError::Invalid), "{extra}");
        }
        // Without an issuer configured any string is fine.
        assert!(
            self::tests::cfg()
                .verify(&good(r#","iss":"whoever""#), NOW)
                .is_ok()
        );
    }

    #[test]
    fn audience_exact_match() {
        use Invalid::*;
        let cfg = JwtConfig {
            audience: Some("wsgate".into()),
            ..cfg()
        };
        let cases: &[(&str, Option<Invalid>)] = &[
            (r#","aud":"wsgate""#, None),
            (r#","aud":["wsgate"]"#, None),
            (r#","aud":["other","wsgate"]"#, None),
            ("", Some(AudMissing)),
            (r#","aud":"wsgate2""#, Some(AudMismatch)),
            (r#","aud":"wsg""#, Some(AudMismatch)),
            (r#","aud":"WSGATE""#, Some(AudMismatch)),
            (r#","aud":"wsgate other""#, Some(AudMismatch)),
            (r#","aud":["wsgateX","xwsgate"]"#, Some(AudMismatch)),
            (r#","aud":["wsg","gate",""]"#, Some(AudMismatch)),
            (r#","aud":"""#, Some(AudMismatch)),
            (r#","aud":[]"#, Some(AudMismatch)),
            (r#","aud":5"#, Some(AudType)),
            (r#","aud":null"#, Some(AudType)),
            (r#","aud":{"wsgate":true}"#, Some(AudType)),
            (r#","aud":["wsgate",5]"#, Some(AudType)),
            (r#","aud":[["wsgate"]]"#, Some(AudType)),
        ];
        for (extra, want) in cases {
            let got = cfg.verify(&good(extra), NOW).err();
            assert_eq!(got, want.map(TokenError::Invalid), "{extra}");
        }
    }

    // --- errors and secrets ---------------------------------------------------

    const ALL: &[Invalid] = {
        use Invalid::*;
        &[
            TooLong,
            PartCount,
            EmptySignature,
            HeaderEncoding,
            PayloadEncoding,
            SignatureEncoding,
            HeaderJson,
            HeaderNotObject,
            HeaderDuplicateName,
            Alg,
            Typ,
            Crit,
            KeyHeader,
            KidType,
            UnknownKid,
            NoSecret,
            SignatureLength,
            BadSignature,
            PayloadJson,
            PayloadNotObject,
            PayloadDuplicateName,
            ExpMissing,
            ExpType,
            NbfType,
            NotYetValid,
            IatType,
            IssuedInFuture,
            IssMissing,
            IssType,
            IssMismatch,
            AudMissing,
            AudType,
            AudMismatch,
            AudUnexpected,
            SubMissing,
            SubType,
            SubInvalid,
            RoleType,
            RoleInvalid,
            RoomsType,
            RoomInvalid,
        ]
    };

    #[test]
    fn token_error_display_is_the_public_class_only() {
        assert_eq!(TokenError::Expired.to_string(), "token expired");
        assert_eq!(TokenError::Expired.http_status(), 401);
        let mut details = std::collections::HashSet::new();
        for &why in ALL {
            let e = TokenError::Invalid(why);
            assert_eq!(e.to_string(), "invalid token");
            assert_eq!(e.http_status(), 401);
            let detail = e.detail();
            assert!(
                detail.starts_with(|c: char| c.is_ascii_lowercase()),
                "{detail}"
            );
            assert!(details.insert(detail), "two checks share {detail:?}");
        }

        // Real refusals: neither Display nor Debug carries the token.
        let token = good(r#","role":"","secretive":"hunter2""#);
        let (h, p, sig) = parts(&token);
        for e in [
            cfg().verify(&token, NOW).unwrap_err(),
            cfg().verify(&format!("{token}x"), NOW).unwrap_err(),
            rfc_cfg().verify(&token, NOW).unwrap_err(),
            cfg().verify(&good(""), u64::MAX).unwrap_err(),
        ] {
            for shown in [e.to_string(), format!("{e:?}"), e.detail().to_owned()] {
                for part in [&token, &h, &p, &sig, &"hunter2".to_owned()] {
                    assert!(!shown.contains(part.as_str()), "{shown:?}");
                }
            }
        }
    }

    #[test]
    fn secrets() {
        assert_eq!(
            Secret::new(vec![1; 31], None).unwrap_err(),
            SecretError::TooShort { len: 31 }
        );
        assert_eq!(
            Secret::new(Vec::new(), Some("k".into())).unwrap_err(),
            SecretError::TooShort { len: 0 }
        );
        let msg = SecretError::TooShort { len: 31 }.to_string();
        assert!(msg.contains("31") && msg.contains("32"), "{msg}");
        assert!(Secret::new(vec![1; 32], None).is_ok());
        assert!(Secret::new(vec![1; 200], None).is_ok());

        // Two random secrets are different keys.
        let a = JwtConfig::new(vec![Secret::random()]);
        let b = JwtConfig::new(vec![Secret::random()]);
        let token = a.issue("alice", "member", NOW, 60);
        assert!(a.verify(&token, NOW).is_ok());
        assert_eq!(refused(&b, &token), Invalid::BadSignature);
        assert_eq!(Secret::random().kid(), None);
    }

    #[test]
    fn secret_debug_hides_the_key() {
        let key = b"super-secret-key-material-123456".to_vec();
        let s = Secret::new(key.clone(), Some("k1".into())).expect("32 bytes");
        let cfg = JwtConfig::new(vec![s.clone()]);
        for shown in [format!("{s:?}"), format!("{s:#?}"), format!("{cfg:?}")] {
            assert!(shown.contains("k1"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
            assert!(!shown.contains("super"), "{shown}");
            // Nor as a byte list ("[115, 117, ...") or in hex.
            assert!(!shown.contains("115, 117"), "{shown}");
            assert!(!shown.contains("7375706572"), "{shown}");
        }
    }
}
