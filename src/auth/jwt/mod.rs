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

/// The header [`JwtConfig::sign`] writes without a `kid`, and most
/// signers do: checked by comparing bytes, not parsed.
const CANONICAL_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

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
#[non_exhaustive]
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
#[non_exhaustive]
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
        // why: decoded into buffers on the stack when they fit (every
        // usual token), as the allocations were a good part of a
        // handshake's time in user space.
        let (mut header_buf, mut payload_buf, mut sig_buf) = ([0; 256], [0; 1024], [0; 64]);
        let mut spill = (Vec::new(), Vec::new(), Vec::new());
        let header = unbase64(header_b64, &mut header_buf, &mut spill.0)
            .map_err(|()| Invalid::HeaderEncoding)?;
        let payload = unbase64(payload_b64, &mut payload_buf, &mut spill.1)
            .map_err(|()| Invalid::PayloadEncoding)?;
        let sig = unbase64(sig_b64, &mut sig_buf, &mut spill.2)
            .map_err(|()| Invalid::SignatureEncoding)?;

        // Header: parsed before the signature check because it names the
        // algorithm and the key, and checked in full before any HMAC work.
        // why: the header almost every signer writes (ours included) is
        // these exact bytes, whose check is known: HS256, no key named.
        let candidates = if header == CANONICAL_HEADER.as_bytes() {
            self.candidates(None)?
        } else {
            let header = parse_object(
                header,
                Invalid::HeaderJson,
                Invalid::HeaderNotObject,
                Invalid::HeaderDuplicateName,
            )?;
            self.check_header(&header)?
        };

        // Signature, over the bytes exactly as received.
        if sig.len() != TAG_LEN {
            return Err(Invalid::SignatureLength);
        }
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        // why: every candidate is tried and the results ORed, so the time
        // taken does not say which of the secrets matched.
        let mut matched = Choice::from(0);
        for secret in &candidates {
            matched |= secret.tag(signing_input)[..].ct_eq(sig);
        }
        if !bool::from(matched) {
            return Err(Invalid::BadSignature);
        }

        // Payload: only now is attacker-chosen JSON parsed.
        let claims = parse_object(
            payload,
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
        let mut header = String::from(&CANONICAL_HEADER[..CANONICAL_HEADER.len() - 1]);
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
        self.candidates(header.get("kid"))
    }

    /// The secrets a token whose header names `kid` (or none) may be
    /// signed with.
    fn candidates(&self, kid: Option<&Value>) -> Result<Vec<&Secret>, Invalid> {
        let candidates: Vec<&Secret> = match kid {
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

/// Decodes base64url `b64` into `stack` when it fits, else into `spill`.
fn unbase64<'a>(b64: &str, stack: &'a mut [u8], spill: &'a mut Vec<u8>) -> Result<&'a [u8], ()> {
    match B64.decode_slice(b64, stack) {
        Ok(n) => Ok(&stack[..n]),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            *spill = B64.decode(b64).map_err(|_| ())?;
            Ok(spill)
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => Err(()),
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
#[non_exhaustive]
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
#[non_exhaustive]
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
#[non_exhaustive]
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
mod tests;
