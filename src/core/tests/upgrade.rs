//! The WebSocket upgrade: each credential carrier that opens one (bearer
//! header, path, query, password when allowed, custom authenticators
//! chained before the built-in checks), the refusals answered before any
//! WebSocket exists (missing, expired, forged or repeated credentials,
//! reserved names, not an upgrade, wrong version or method), the expiry
//! leeway at the upgrade, the `rooms` claim, and frames sent in the same
//! read as the request head.

use serde_json::json;

use super::json_body;
use crate::core::{Authenticate, Identity, Verdict};
use crate::testkit::{Harness, upgrade_request};

#[test]
fn each_token_carrier_opens() {
    let mut h = Harness::default();
    let t = h.token("alice", 60);
    for (target, extra) in [
        ("/ws".to_string(), format!("Authorization: Bearer {t}\r\n")),
        (format!("/ws/{t}"), String::new()),
        (format!("/ws?token={t}"), String::new()),
    ] {
        let (_, r) = h.upgrade(&target, &extra);
        assert_eq!(r.status, 101, "{target}: {}", r.body);
        assert_eq!(
            r.header("sec-websocket-accept"),
            Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
        assert_eq!(r.header("sec-websocket-protocol"), None);
    }
    assert_eq!(h.server.websockets(), 3);
}

#[test]
fn password_upgrade_is_off_by_default() {
    let mut h = Harness::default();
    let (_, r) = h.upgrade("/ws?username=alice&password=wonderland", "");
    assert_eq!(r.status, 401);
    let (_, r) = h.upgrade("/ws", "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n");
    assert_eq!(r.status, 401);
}

#[test]
fn password_upgrades_when_allowed() {
    let mut h = Harness::new(|c| c.allow_password_auth = true);
    let (id, r) = h.upgrade("/ws?username=alice&password=wonderland", "");
    assert_eq!(r.status, 101);
    h.say(id, "pw");
    assert_eq!(h.texts(id).last().unwrap(), "alice: pw");
    let (_, r) = h.upgrade("/ws", "Authorization: Basic Ym9iOmJ1aWxkZXI=\r\n");
    assert_eq!(r.status, 101);
    let (_, r) = h.upgrade("/ws?username=alice&password=nope", "");
    assert_eq!(r.status, 401);
}

struct ApiKeys;

impl Authenticate for ApiKeys {
    fn authenticate(&self, request: &crate::http::Request, _peer: std::net::SocketAddr) -> Verdict {
        match request.header("x-api-key") {
            Ok(Some("k-123")) => Verdict::Accept(Identity {
                user: "robot".into(),
                role: "member".into(),
                rooms: None,
            }),
            Ok(Some(_)) => Verdict::Refuse("unknown api key"),
            _ => Verdict::Pass,
        }
    }
}

#[test]
fn custom_authenticators_chain_before_the_built_in_checks() {
    let mut h = Harness::default();
    h.server.add_authenticator(Box::new(ApiKeys));
    let (id, r) = h.upgrade("/ws", "X-Api-Key: k-123\r\n");
    assert_eq!(r.status, 101);
    h.say(id, "beep");
    assert_eq!(h.texts(id).last().unwrap(), "robot: beep");
    let (_, r) = h.upgrade("/ws", "X-Api-Key: nope\r\n");
    assert_eq!(
        (r.status, json_body(&r.body)["detail"].clone()),
        (401, json!("unknown api key"))
    );
    // Without the header, the built-in checks decide.
    h.open("alice");
}

#[test]
fn refusals_before_any_websocket() {
    let mut h = Harness::default();
    let good = h.token("alice", 60);
    let expired = h.token_with(json!({"sub": "alice", "exp": h.now.as_secs() - 31}));
    let forged = {
        let mut t = good.clone();
        t.pop();
        t.push(if good.ends_with('A') { 'B' } else { 'A' });
        t
    };
    let cases: Vec<(String, String, u16, &str)> = vec![
        ("/ws".into(), String::new(), 401, "missing credentials"),
        (
            "/ws".into(),
            format!("Authorization: Bearer {expired}\r\n"),
            401,
            "token expired",
        ),
        (
            "/ws".into(),
            format!("Authorization: Bearer {forged}\r\n"),
            401,
            "invalid token",
        ),
        (
            "/ws?token=garbage".into(),
            String::new(),
            401,
            "invalid token",
        ),
        (
            format!("/ws/{good}?token={good}"),
            String::new(),
            400,
            "more than one credential",
        ),
        (
            format!("/ws?token={good}&token={good}"),
            String::new(),
            400,
            "repeated query parameter",
        ),
        (
            format!("/ws?token={good}&room=a%20b"),
            String::new(),
            400,
            "invalid room name",
        ),
        (
            "/ws?ticket=nope".into(),
            String::new(),
            401,
            "unknown or expired ticket",
        ),
        (
            "/ws".into(),
            "Cookie: __Host-wsgate=nope\r\nOrigin: http://127.0.0.1:8080\r\n".into(),
            401,
            "unknown or expired session",
        ),
        (
            "/ws".into(),
            "Cookie: __Host-wsgate=nope\r\nOrigin: https://evil.example\r\n".into(),
            403,
            "origin not allowed",
        ),
    ];
    for (target, extra, status, detail) in cases {
        let (id, r) = h.upgrade(&target, &extra);
        assert_eq!(r.status, status, "{target} {extra}");
        assert_eq!(json_body(&r.body)["detail"], detail, "{target}");
        assert!(!r.body.contains(&good) && !r.body.contains(&expired));
        if status == 401 {
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer error=\"invalid_token\"")
            );
        }
        assert!(h.peer(id).shut, "a refusal closes the connection");
    }
    assert_eq!(h.server.websockets(), 0);
}

#[test]
fn names_with_invisible_characters_are_refused() {
    let mut h = Harness::default();
    let t = h.token_with(json!({"sub": "System\u{200B}", "exp": h.now.as_secs() + 60}));
    assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 401);
}

#[test]
fn not_an_upgrade_or_wrong_version() {
    let mut h = Harness::default();
    let t = h.token("alice", 60);
    let (_, r) = h.request(&format!("GET /ws?token={t} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(r.status, 400);
    let req = upgrade_request(&format!("/ws?token={t}"), "").replace("Version: 13", "Version: 8");
    let (_, r) = h.request(&req);
    assert_eq!(
        (r.status, r.header("sec-websocket-version")),
        (426, Some("13"))
    );
    let req = upgrade_request(&format!("/ws?token={t}"), "").replace("GET", "POST");
    let (_, r) = h.request(&req);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}

#[test]
fn expiry_leeway_edges() {
    let mut h = Harness::default();
    let exp = h.now.as_secs() - 29;
    let t = h.token_with(json!({"sub": "alice", "exp": exp}));
    assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 101);
    h.advance(1_000);
    assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 401);
}

#[test]
fn rooms_claim_limits_rooms() {
    let mut h = Harness::default();
    let t = h.token_with(json!({"sub": "alice", "exp": h.now.as_secs() + 60, "rooms": ["dev"]}));
    let (_, r) = h.upgrade(&format!("/ws?token={t}"), "");
    assert_eq!(
        (r.status, json_body(&r.body)["detail"].clone()),
        (403, json!("room not allowed"))
    );
    assert_eq!(
        h.upgrade(&format!("/ws?token={t}&room=dev"), "").1.status,
        101
    );
}

#[test]
fn frames_right_behind_the_head_are_not_lost() {
    let mut h = Harness::default();
    let watcher = h.open("bob");
    h.texts(watcher);
    let t = h.token("alice", 60);
    // A masked text frame "hi" (RFC 6455 §5.7 style), sent in the
    // same read as the request head.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    let mut bytes = upgrade_request(&format!("/ws?token={t}"), "").into_bytes();
    bytes.extend_from_slice(&frame);
    let id = h.connect();
    h.send(id, &bytes);
    assert_eq!(h.response(id).unwrap().status, 101);
    h.make_client(id);
    assert_eq!(
        h.texts(id),
        vec!["System: alice joined the chat", "alice: hi"]
    );
    assert_eq!(
        h.texts(watcher),
        vec!["System: alice joined the chat", "alice: hi"]
    );
}
