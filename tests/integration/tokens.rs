//! Which JWTs open a WebSocket (PROTOCOL §5), seen from the wire: tokens
//! made by hand, each refused `401` with nothing but `invalid token` or
//! `token expired` to say why.

use serde_json::json;

use crate::common::{
    SECRET, TestServer, WsRequest, craft_token, jwt_with, now_ms, recv_text, sign_claims,
};
use wsgate::config::SecretKey;

const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

fn now_s() -> u64 {
    now_ms() / 1000
}

/// Opens a WebSocket with `token` as a bearer; panics when refused.
fn opens(server: &TestServer, token: &str, user: &str) {
    let bearer = format!("Bearer {token}");
    let (mut ws, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    assert_eq!(
        recv_text(&mut ws),
        format!("System: {user} joined the chat")
    );
}

/// The token is refused `401` with exactly `detail`.
fn refused(server: &TestServer, what: &str, token: &str, detail: &str) {
    let r = WsRequest::new(server, "/ws")
        .header("Authorization", &format!("Bearer {token}"))
        .refused(server, 401, token);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\""),
        "{what}"
    );
    assert_eq!(r.detail(), detail, "{what}");
}

#[test]
fn headers_other_than_plain_hs256_are_refused() {
    let server = TestServer::start();
    let payload = format!(r#"{{"sub":"alice","exp":{}}}"#, now_s() + 600);
    opens(&server, &craft_token(HS256, &payload, SECRET), "alice");
    opens(
        &server,
        &craft_token(r#"{"alg":"HS256"}"#, &payload, SECRET),
        "alice",
    );
    for (what, header) in [
        ("alg none", r#"{"alg":"none","typ":"JWT"}"#),
        ("alg HS512", r#"{"alg":"HS512","typ":"JWT"}"#),
        ("alg RS256", r#"{"alg":"RS256","typ":"JWT"}"#),
        ("alg in lowercase", r#"{"alg":"hs256","typ":"JWT"}"#),
        ("alg not a string", r#"{"alg":["HS256"]}"#),
        ("no alg", r#"{"typ":"JWT"}"#),
        ("typ other", r#"{"alg":"HS256","typ":"at+jwt"}"#),
        ("typ not a string", r#"{"alg":"HS256","typ":1}"#),
        ("crit", r#"{"alg":"HS256","crit":["exp"]}"#),
        ("header an array", r#"["HS256"]"#),
        ("header not JSON", "alg=HS256"),
        ("duplicate alg", r#"{"alg":"none","alg":"HS256"}"#),
    ] {
        refused(
            &server,
            what,
            &craft_token(header, &payload, SECRET),
            "invalid token",
        );
    }
    // `alg: none` with no signature at all.
    let unsigned = craft_token(r#"{"alg":"none"}"#, &payload, SECRET);
    let unsigned = format!("{}.", unsigned.rsplit_once('.').unwrap().0);
    refused(&server, "unsigned", &unsigned, "invalid token");
}

#[test]
fn payloads_must_hold_well_typed_claims() {
    let server = TestServer::start();
    let (now, exp) = (now_s(), now_s() + 600);
    for (what, payload) in [
        ("no sub", format!(r#"{{"exp":{exp}}}"#)),
        ("empty sub", format!(r#"{{"sub":"","exp":{exp}}}"#)),
        ("sub a number", format!(r#"{{"sub":7,"exp":{exp}}}"#)),
        ("sub null", format!(r#"{{"sub":null,"exp":{exp}}}"#)),
        (
            "sub with a colon",
            format!(r#"{{"sub":"a:b","exp":{exp}}}"#),
        ),
        (
            "sub with a newline",
            format!(r#"{{"sub":"a\nb","exp":{exp}}}"#),
        ),
        ("sub System", format!(r#"{{"sub":"system","exp":{exp}}}"#)),
        ("no exp", r#"{"sub":"alice"}"#.to_string()),
        (
            "exp a string",
            format!(r#"{{"sub":"alice","exp":"{exp}"}}"#),
        ),
        ("exp null", r#"{"sub":"alice","exp":null}"#.to_string()),
        (
            "duplicate sub",
            format!(r#"{{"sub":"bob","sub":"alice","exp":{exp}}}"#),
        ),
        (
            "duplicate exp",
            format!(r#"{{"sub":"alice","exp":1,"exp":{exp}}}"#),
        ),
        (
            "nbf in the future",
            format!(r#"{{"sub":"alice","exp":{exp},"nbf":{}}}"#, now + 300),
        ),
        (
            "iat in the future",
            format!(r#"{{"sub":"alice","exp":{exp},"iat":{}}}"#, now + 300),
        ),
        (
            "nbf a string",
            format!(r#"{{"sub":"alice","exp":{exp},"nbf":"0"}}"#),
        ),
        (
            "role a number",
            format!(r#"{{"sub":"alice","exp":{exp},"role":1}}"#),
        ),
        (
            "rooms a string",
            format!(r#"{{"sub":"alice","exp":{exp},"rooms":"lobby"}}"#),
        ),
        (
            "aud when none is configured",
            format!(r#"{{"sub":"alice","exp":{exp},"aud":"x"}}"#),
        ),
        ("payload an array", format!(r#"["alice",{exp}]"#)),
        ("payload not JSON", "sub=alice".to_string()),
    ] {
        refused(
            &server,
            what,
            &craft_token(HS256, &payload, SECRET),
            "invalid token",
        );
    }
    // Claims the server does not know are fine, as are past nbf/iat.
    let extra =
        format!(r#"{{"sub":"alice","exp":{exp},"nbf":{now},"iat":{now},"jti":"x","scope":["a"]}}"#);
    opens(&server, &craft_token(HS256, &extra, SECRET), "alice");
}

#[test]
fn encodings_must_be_canonical() {
    let server = TestServer::start();
    let good = sign_claims(json!({"sub": "alice", "exp": now_s() + 600}));
    opens(&server, &good, "alice");
    let (rest, sig) = good.rsplit_once('.').unwrap();
    // A 32-byte signature is 43 base64url characters; the last one carries
    // two unused bits. Setting one gives the same bytes, non-canonically.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.as_bytes()[sig.len() - 1];
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    let twin = ALPHABET[index ^ 1] as char;
    let non_canonical = format!("{rest}.{}{twin}", &sig[..sig.len() - 1]);
    let padded = format!("{good}=");
    let standard_alphabet = good.replace('-', "+").replace('_', "/");
    let mut cases = vec![
        ("non-canonical last character", non_canonical),
        ("padding", padded),
        ("four parts", format!("{good}.x")),
        ("two parts", rest.to_string()),
        (
            "signature of another token",
            format!("{rest}.{}", "A".repeat(43)),
        ),
    ];
    if standard_alphabet != good {
        cases.push(("standard base64 alphabet", standard_alphabet));
    }
    for (what, token) in cases {
        refused(&server, what, &token, "invalid token");
    }
}

#[test]
fn tokens_over_4_kib_are_refused() {
    let server = TestServer::start();
    let exp = now_s() + 600;
    let sized =
        |filler: usize| sign_claims(json!({"sub": "alice", "exp": exp, "pad": "p".repeat(filler)}));
    let small = sized(2000);
    assert!(small.len() < 4096);
    opens(&server, &small, "alice");
    let big = sized(3200);
    assert!(big.len() > 4096 && big.len() < 6000, "{}", big.len());
    refused(&server, "over 4 KiB", &big, "invalid token");
}

#[test]
fn expiry_allows_the_leeway_and_no_more() {
    let server = TestServer::start();
    let now = now_s();
    // Expired 5 s ago: within the default 30 s leeway.
    opens(
        &server,
        &sign_claims(json!({"sub": "alice", "exp": now - 5})),
        "alice",
    );
    // Expired 5 minutes ago: refused as expired, not as invalid.
    refused(
        &server,
        "expired",
        &sign_claims(json!({"sub": "alice", "exp": now - 300})),
        "token expired",
    );
    // An expired token with a bad signature is just invalid.
    let forged = jwt_with(crate::common::OTHER_SECRET).sign(
        json!({"sub": "alice", "exp": now - 300})
            .as_object()
            .unwrap(),
    );
    refused(&server, "expired and forged", &forged, "invalid token");
}

#[test]
fn every_configured_secret_verifies_and_the_first_signs() {
    const NEW: &[u8] = b"a-brand-new-secret-of-at-least-32-bytes!";
    let server = TestServer::with(|c| {
        c.secrets = vec![
            SecretKey::new(NEW.to_vec()),
            SecretKey::new(SECRET.to_vec()),
        ];
    });
    let exp = now_s() + 600;
    let claims = json!({"sub": "alice", "exp": exp});
    let claims = claims.as_object().unwrap();
    opens(&server, &jwt_with(SECRET).sign(claims), "alice");
    opens(&server, &jwt_with(NEW).sign(claims), "alice");
    refused(
        &server,
        "a third secret",
        &jwt_with(crate::common::OTHER_SECRET).sign(claims),
        "invalid token",
    );
    let issued = server.issue_token("bob", "builder");
    assert_eq!(jwt_with(NEW).verify(&issued, now_ms()).unwrap().sub, "bob");
    assert!(jwt_with(SECRET).verify(&issued, now_ms()).is_err());
}

#[test]
fn issuer_and_audience_match_exactly_when_configured() {
    let server = TestServer::with(|c| {
        c.issuer = Some("https://auth.example".into());
        c.audience = Some("chat".into());
    });
    let exp = now_s() + 600;
    let with = |extra: serde_json::Value| {
        let mut claims = json!({"sub": "alice", "exp": exp});
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sign_claims(claims)
    };
    opens(
        &server,
        &with(json!({"iss": "https://auth.example", "aud": "chat"})),
        "alice",
    );
    for (what, extra) in [
        ("neither", json!({})),
        ("no aud", json!({"iss": "https://auth.example"})),
        ("no iss", json!({"aud": "chat"})),
        (
            "iss prefix",
            json!({"iss": "https://auth.example.evil", "aud": "chat"}),
        ),
        (
            "iss substring",
            json!({"iss": "https://auth.exampl", "aud": "chat"}),
        ),
        (
            "aud substring",
            json!({"iss": "https://auth.example", "aud": "chatroom"}),
        ),
        (
            "iss wrong type",
            json!({"iss": ["https://auth.example"], "aud": "chat"}),
        ),
    ] {
        refused(&server, what, &with(extra), "invalid token");
    }
    // Tokens from /token carry both, and open.
    let issued = server.issue_token("bob", "builder");
    opens(&server, &issued, "bob");
}
