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
                Err(TokenError::Invalid(Invalid::BadSignature | Invalid::SignatureEncoding)) => {}
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

/// Parts are decoded on the stack when they fit; longer ones still decode
/// (and are judged) exactly as the short ones.
#[test]
fn parts_longer_than_the_stack_buffers_decode_the_same() {
    let mut cfg = cfg();
    cfg.max_token_len = 16 * 1024;
    // A payload of about 3 KiB, past the 1 KiB buffer.
    let padding = "p".repeat(3000);
    let token = raw(HS, &claims(&format!(r#","pad":"{padding}""#)));
    let payload = cfg.decode_verified(&token, NOW).expect("verifies");
    assert_eq!(payload["pad"], Value::String(padding));
    // A header past its 256-byte buffer, with an unknown member.
    let header = format!(r#"{{"alg":"HS256","typ":"JWT","x":"{}"}}"#, "h".repeat(400));
    assert!(cfg.decode_verified(&raw(&header, &claims("")), NOW).is_ok());
    // A signature past its 64-byte buffer is the wrong length, not a
    // decoding failure.
    let (h, p, _) = parts(&raw(HS, &claims("")));
    let long_sig = b64([7u8; 100]);
    assert_eq!(
        cfg.decode_verified(&format!("{h}.{p}.{long_sig}"), NOW),
        Err(TokenError::Invalid(Invalid::SignatureLength))
    );
    // Bad base64 past a buffer is still bad base64.
    let bad = format!("{}!", "A".repeat(2000));
    assert_eq!(
        cfg.decode_verified(&format!("{h}.{bad}.{}", b64([0u8; 32])), NOW),
        Err(TokenError::Invalid(Invalid::PayloadEncoding))
    );
}

/// The canonical header is recognised by its bytes; the same header
/// written any other way is parsed, and both are judged alike.
#[test]
fn the_canonical_header_and_its_spellings_are_judged_alike() {
    let two = JwtConfig::new(vec![secret(OTHER_KEY, Some("old")), secret(KEY, None)]);
    for header in [
        HS,
        r#"{ "alg": "HS256", "typ": "JWT" }"#,
        r#"{"typ":"JWT","alg":"HS256"}"#,
    ] {
        let token = raw(header, &claims(""));
        assert!(two.decode_verified(&token, NOW).is_ok(), "{header}");
        // Signed with neither secret: refused, whichever way it is written.
        let forged = sign_parts(
            b"not-a-configured-secret-0123456789",
            &b64(header),
            &b64(claims("")),
        );
        assert_eq!(
            two.decode_verified(&forged, NOW),
            Err(TokenError::Invalid(Invalid::BadSignature)),
            "{header}"
        );
    }
    // It is the header the signer writes without a `kid`.
    assert_eq!(HS, CANONICAL_HEADER);
}
