//! `GET /ws` (PROTOCOL §2, §5): every refusal is a real HTTP response before
//! any WebSocket exists, and each token carrier opens one.

use serde_json::json;

use crate::common::{
    ACCEPT, OTHER_SECRET, TestServer, WsRequest, jwt_with, mint, now_ms, recv_text, send,
    sign_claims,
};

/// The exact challenge of every `401` refusal.
const CHALLENGE: &str = "Bearer error=\"invalid_token\"";

fn bearer_request(server: &TestServer, target: &str, token: &str) -> WsRequest {
    WsRequest::new(server, target).header("Authorization", &format!("Bearer {token}"))
}

#[test]
fn bearer_upgrade_answers_101_with_the_accept_key() {
    let server = TestServer::start();
    let token = server.token("alice");
    let mut conn = server.http();
    conn.send(bearer_request(&server, "/ws", &token).render().as_bytes());
    let r = conn.response();
    assert_eq!(r.status, 101, "{}", r.head);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert_eq!(r.header("connection"), Some("Upgrade"));
    assert_eq!(r.header("sec-websocket-accept"), Some(ACCEPT));
    assert_eq!(r.header("sec-websocket-protocol"), None, "text mode");
    let mut ws = conn.into_websocket();
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    send(&mut ws, "over a hand-made handshake");
    assert_eq!(recv_text(&mut ws), "alice: over a hand-made handshake");
}

#[test]
fn each_token_carrier_opens_a_websocket() {
    let server = TestServer::start();
    let (a, b, c) = (
        server.token("alice"),
        server.token("bob"),
        server.token("carol"),
    );
    let bearer = format!("Bearer {a}");
    let (mut alice, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    assert_eq!(recv_text(&mut alice), "System: alice joined the chat");

    let (mut bob, _) = server.ws(&format!("/ws/{b}"), &[]);
    assert_eq!(recv_text(&mut bob), "System: bob joined the chat");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");

    let (mut carol, _) = server.ws(&format!("/ws?token={c}"), &[]);
    assert_eq!(recv_text(&mut carol), "System: carol joined the chat");
    assert_eq!(recv_text(&mut alice), "System: carol joined the chat");
    assert_eq!(recv_text(&mut bob), "System: carol joined the chat");

    send(&mut carol, "three carriers");
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(recv_text(ws), "carol: three carriers");
    }
}

#[test]
fn tokens_from_the_token_endpoint_work_in_path_and_query() {
    let server = TestServer::start();
    let token = server.issue_token("bob", "builder");
    let (mut by_path, _) = server.ws(&format!("/ws/{token}"), &[]);
    assert_eq!(recv_text(&mut by_path), "System: bob joined the chat");
    let (mut by_query, _) = server.ws(&format!("/ws?room=dev&token={token}"), &[]);
    assert_eq!(recv_text(&mut by_query), "System: bob joined the chat");
    send(&mut by_query, "in dev");
    assert_eq!(recv_text(&mut by_query), "bob: in dev");
    send(&mut by_path, "in lobby");
    assert_eq!(recv_text(&mut by_path), "bob: in lobby");
}

#[test]
fn invalid_handshakes_are_400() {
    let server = TestServer::start();
    let token = server.token("alice");
    let good = bearer_request(&server, "/ws", &token);
    let cases = [
        ("no Upgrade", good.clone().without("Upgrade")),
        ("no Connection", good.clone().without("Connection")),
        (
            "Connection without upgrade",
            good.clone().set("Connection", "keep-alive"),
        ),
        ("Upgrade: h2c", good.clone().set("Upgrade", "h2c")),
        ("no key", good.clone().without("Sec-WebSocket-Key")),
        (
            "short key",
            good.clone().set("Sec-WebSocket-Key", "c2hvcnQ="),
        ),
        (
            "key not base64",
            good.clone()
                .set("Sec-WebSocket-Key", "!!not base64 at all!!"),
        ),
        ("HTTP/1.0", good.clone().version("HTTP/1.0")),
        (
            "two keys",
            good.clone()
                .header("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
        ),
    ];
    for (what, request) in cases {
        let r = request.refused(&server, 400, &token);
        assert!(!r.detail().is_empty(), "{what}");
    }
}

#[test]
fn other_methods_on_ws_are_405() {
    let server = TestServer::start();
    let token = server.token("alice");
    for method in ["POST", "PUT", "DELETE"] {
        let r = bearer_request(&server, "/ws", &token)
            .method(method)
            .refused(&server, 405, &token);
        assert_eq!(r.header("allow"), Some("GET"), "{method}");
    }
}

#[test]
fn head_on_ws_gets_a_405_without_body() {
    let server = TestServer::start();
    let mut conn = server.http();
    conn.send(
        WsRequest::new(&server, "/ws")
            .method("HEAD")
            .render()
            .as_bytes(),
    );
    let r = conn.head_response();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    // The next thing after the head must be the close, not a body.
    assert!(conn.closed_by_server());
}

#[test]
fn other_websocket_versions_are_426() {
    let server = TestServer::start();
    let token = server.token("alice");
    for request in [
        bearer_request(&server, "/ws", &token).set("Sec-WebSocket-Version", "8"),
        bearer_request(&server, "/ws", &token).without("Sec-WebSocket-Version"),
    ] {
        let r = request.refused(&server, 426, &token);
        assert_eq!(r.header("sec-websocket-version"), Some("13"), "{}", r.head);
    }
}

#[test]
fn more_than_one_credential_is_400() {
    let server = TestServer::start();
    let token = server.token("alice");
    let other = server.token("bob");
    let cases = [
        (
            "bearer and query",
            bearer_request(&server, &format!("/ws?token={other}"), &token),
        ),
        (
            "bearer and path",
            bearer_request(&server, &format!("/ws/{other}"), &token),
        ),
        (
            "path and query",
            WsRequest::new(&server, &format!("/ws/{token}?token={other}")),
        ),
        (
            "query token repeated",
            WsRequest::new(&server, &format!("/ws?token={token}&token={token}")),
        ),
        (
            "query token repeated, one name encoded",
            WsRequest::new(&server, &format!("/ws?token={token}&%74oken={other}")),
        ),
        (
            "two Authorization headers",
            bearer_request(&server, "/ws", &token)
                .header("Authorization", &format!("Bearer {other}")),
        ),
        (
            "token and ticket",
            WsRequest::new(&server, &format!("/ws?token={token}&ticket=abc")),
        ),
    ];
    for (what, request) in cases {
        let r = request.refused(&server, 400, &token);
        assert!(!r.mentions(&other), "{what}: echoes the second token");
        assert!(!r.detail().is_empty(), "{what}");
    }
}

#[test]
fn bad_room_names_are_400() {
    let server = TestServer::start();
    let token = server.token("alice");
    let long = "r".repeat(65);
    for room in [
        "",
        "has%20space",
        "caf%C3%A9",
        "a/b",
        "semi;colon",
        long.as_str(),
    ] {
        bearer_request(&server, &format!("/ws?room={room}"), &token).refused(&server, 400, &token);
    }
    bearer_request(&server, "/ws?room=a&room=b", &token).refused(&server, 400, &token);
    // The longest and the oddest allowed names do open.
    let bearer = format!("Bearer {token}");
    for room in ["r".repeat(64), "A-z_0.9".to_string()] {
        let (mut ws, _) = server.ws(
            &format!("/ws?room={room}"),
            &[("Authorization", bearer.as_str())],
        );
        assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    }
}

#[test]
fn missing_or_bad_credentials_are_401_invalid_token() {
    let server = TestServer::start();
    let now = now_ms();
    let forged = jwt_with(OTHER_SECRET).issue("alice", "member", now, 900);
    let good = server.token("alice");
    let parts: Vec<&str> = good.split('.').collect();
    let (head, payload) = (parts[0], parts[1]);
    let cut_signature = format!("{head}.{payload}.");
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let as_system = sign_claims(json!({"sub": "System", "exp": now / 1000 + 600}));
    let not_yet =
        sign_claims(json!({"sub": "alice", "nbf": now / 1000 + 3600, "exp": now / 1000 + 7200}));
    let no_exp = sign_claims(json!({"sub": "alice"}));
    let cases: Vec<(&str, WsRequest, String)> = vec![
        (
            "no credential",
            WsRequest::new(&server, "/ws"),
            String::new(),
        ),
        (
            "bad signature",
            bearer_request(&server, "/ws", &forged),
            forged.clone(),
        ),
        (
            "signature cut off",
            WsRequest::new(&server, &format!("/ws/{cut_signature}")),
            cut_signature.clone(),
        ),
        (
            "alg none",
            WsRequest::new(&server, &format!("/ws?token={alg_none}")),
            alg_none.clone(),
        ),
        (
            "garbage",
            bearer_request(&server, "/ws", "not-a-jwt-at-all"),
            "not-a-jwt-at-all".into(),
        ),
        (
            "three garbage parts",
            WsRequest::new(&server, "/ws?token=aaaa.bbbb.cccc"),
            "aaaa.bbbb.cccc".into(),
        ),
        (
            "sub is System",
            bearer_request(&server, "/ws", &as_system),
            as_system.clone(),
        ),
        (
            "nbf in the future",
            bearer_request(&server, "/ws", &not_yet),
            not_yet.clone(),
        ),
        (
            "no exp",
            bearer_request(&server, "/ws", &no_exp),
            no_exp.clone(),
        ),
        (
            "empty bearer",
            WsRequest::new(&server, "/ws").header("Authorization", "Bearer"),
            String::new(),
        ),
        (
            "unknown scheme",
            WsRequest::new(&server, "/ws").header("Authorization", &format!("Token {good}")),
            good.clone(),
        ),
        (
            "basic auth (not enabled)",
            WsRequest::new(&server, "/ws")
                .header("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA=="),
            "YWxpY2U6d29uZGVybGFuZA==".into(),
        ),
        (
            "query password (not enabled)",
            WsRequest::new(&server, "/ws?username=alice&password=wonderland"),
            "wonderland".into(),
        ),
    ];
    for (what, request, secret) in cases {
        let r = request.refused(&server, 401, &secret);
        assert_eq!(r.header("www-authenticate"), Some(CHALLENGE), "{what}");
        let detail = r.detail();
        assert_ne!(detail, "token expired", "{what}");
        assert!(
            !detail.contains("signature"),
            "{what}: names the check: {detail}"
        );
    }
    // The token-shaped ones say "invalid token" and nothing more specific.
    let r = bearer_request(&server, "/ws", &forged).refused(&server, 401, &forged);
    assert_eq!(r.detail(), "invalid token");
}

#[test]
fn expired_token_is_401_token_expired() {
    let server = TestServer::start();
    // Issued two hours ago for one hour: well past the 30 s leeway.
    let expired = mint("alice", "member", now_ms() - 2 * 3600 * 1000, 3600);
    for request in [
        bearer_request(&server, "/ws", &expired),
        WsRequest::new(&server, &format!("/ws?token={expired}")),
        WsRequest::new(&server, &format!("/ws/{expired}")),
    ] {
        let r = request.refused(&server, 401, &expired);
        assert_eq!(r.header("www-authenticate"), Some(CHALLENGE));
        assert_eq!(r.detail(), "token expired");
    }
}

#[test]
fn tokens_limited_to_rooms_are_403_elsewhere() {
    let server = TestServer::start();
    let exp = now_ms() / 1000 + 600;
    let token = sign_claims(json!({"sub": "alice", "exp": exp, "rooms": ["dev"]}));
    let r = WsRequest::new(&server, &format!("/ws?token={token}")).refused(&server, 403, &token);
    assert!(!r.detail().is_empty());
    WsRequest::new(&server, &format!("/ws?room=ops&token={token}")).refused(&server, 403, &token);
    let (mut ws, _) = server.ws(&format!("/ws?room=dev&token={token}"), &[]);
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
}

#[test]
fn oversized_upgrade_head_is_431() {
    let server = TestServer::start();
    let token = server.token("alice");
    bearer_request(&server, "/ws", &token)
        .header("X-Filler", &"f".repeat(9 * 1024))
        .refused(&server, 431, &token);
}

#[test]
fn refused_upgrades_never_join_the_room() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let expired = mint("bob", "member", now_ms() - 2 * 3600 * 1000, 60);
    bearer_request(&server, "/ws", &expired).refused(&server, 401, &expired);
    bearer_request(&server, "/ws", &server.token("bob"))
        .set("Sec-WebSocket-Version", "7")
        .refused(&server, 426, "");
    // The next thing alice hears is carol, not bob.
    let _carol = server.join("carol", "lobby");
    assert_eq!(recv_text(&mut alice), "System: carol joined the chat");
    send(&mut alice, "who is here?");
    assert_eq!(recv_text(&mut alice), "alice: who is here?");
    send(&mut alice, "/who");
    assert_eq!(recv_text(&mut alice), "System: users: alice, carol");
}

#[test]
fn password_upgrades_work_only_when_enabled() {
    let server = TestServer::with(|c| c.allow_password_auth = true);
    // Basic, alice:wonderland.
    let (mut alice, _) = server.ws(
        "/ws",
        &[("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA==")],
    );
    assert_eq!(recv_text(&mut alice), "System: alice joined the chat");
    let (mut bob, _) = server.ws("/ws?username=bob&password=builder", &[]);
    assert_eq!(recv_text(&mut bob), "System: bob joined the chat");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    for request in [
        // alice:builder
        WsRequest::new(&server, "/ws").header("Authorization", "Basic YWxpY2U6YnVpbGRlcg=="),
        WsRequest::new(&server, "/ws?username=bob&password=wonderland"),
        WsRequest::new(&server, "/ws?username=nobody&password=builder"),
    ] {
        let r = request.refused(&server, 401, "");
        assert!(!r.mentions("builder") && !r.mentions("wonderland"));
        assert!(!r.mentions("YWxpY2U6YnVpbGRlcg=="));
    }
    // Half a pair, or a password beside a token, is malformed.
    WsRequest::new(&server, "/ws?username=bob").refused(&server, 400, "");
    let token = server.token("bob");
    WsRequest::new(
        &server,
        &format!("/ws?username=bob&password=builder&token={token}"),
    )
    .refused(&server, 400, &token);
}
