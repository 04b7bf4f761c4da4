//! Connection life (PROTOCOL §3, §6, §7): heartbeats, token expiry and
//! `/refresh`, roles that may not send, the message rate, and presence
//! notices in large rooms.

use std::time::Duration;

use serde_json::json;
use tungstenite::Message;

use crate::common::{
    IO_TIMEOUT, TestServer, WsRequest, mint, now_ms, recv, recv_close, recv_json, recv_text, send,
    wait_for,
};
use wsgate::config::Rate;

#[test]
fn silent_connections_are_pinged_then_closed_1001() {
    let server = TestServer::with(|c| c.ping_interval = Duration::from_millis(300));
    // A client that answers pings (tungstenite does, on every read).
    let mut bob = server.join("bob", "lobby");
    let answering = std::thread::spawn(move || {
        let mut pings = 0;
        // Four pings take 1.2 s: two intervals twice over, so had the pongs
        // not counted, bob would have been closed on the way.
        while pings < 4 {
            match recv_any(&mut bob) {
                Message::Ping(_) => pings += 1,
                Message::Text(_) => {}
                other => panic!("bob got {other:?}"),
            }
        }
        send(&mut bob, "alive");
        loop {
            match recv_any(&mut bob) {
                Message::Text(t) if t.as_str() == "bob: alive" => return,
                Message::Text(_) | Message::Ping(_) => {}
                other => panic!("bob got {other:?}"),
            }
        }
    });

    // A client that reads but never writes, pongs included.
    let token = server.token("alice");
    let mut conn = server.http();
    conn.send(
        WsRequest::new(&server, &format!("/ws?token={token}"))
            .render()
            .as_bytes(),
    );
    assert_eq!(conn.response().status, 101);
    let mut pings = 0;
    let close = loop {
        match conn.frame() {
            (0x1, _) => {}
            (0x9, _) => pings += 1,
            (0x8, payload) => break payload,
            (op, _) => panic!("unexpected opcode {op}"),
        }
    };
    assert!(pings >= 1, "closed without a ping first");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001);
    assert_eq!(&close[2..], b"ping timeout");
    answering.join().expect("the answering client stayed open");
}

/// Like `recv`, but pings are returned too.
fn recv_any(ws: &mut crate::common::Ws) -> Message {
    match ws.read() {
        Ok(m) => m,
        Err(e) => panic!("reading: {e}"),
    }
}

#[test]
fn token_connections_are_warned_then_closed_4401_at_exp() {
    let server = TestServer::with(|c| c.token_leeway = Duration::ZERO);
    // Two more seconds to live: the 30 s warning is due at once.
    let token = mint("alice", "member", now_ms(), 2);
    let (mut ws, _) = server.ws(&format!("/ws?token={token}"), &[]);
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    let warning = recv_text(&mut ws);
    let secs = warning
        .strip_prefix("System: token expires in ")
        .and_then(|rest| rest.strip_suffix("s, send /refresh TOKEN"))
        .unwrap_or_else(|| panic!("{warning}"));
    assert!(secs.parse::<u64>().unwrap() <= 2, "{warning}");
    assert_eq!(recv_close(&mut ws), (4401, "token expired".to_string()));

    // The same in JSON mode.
    let token = mint("bob", "member", now_ms(), 2);
    let (mut ws, _) = server.ws(
        &format!("/ws?room=js&token={token}"),
        &[("Sec-WebSocket-Protocol", "wsgate.json")],
    );
    assert_eq!(recv_json(&mut ws)["type"], json!("join"));
    let expiring = recv_json(&mut ws);
    assert_eq!(expiring["type"], json!("expiring"), "{expiring}");
    assert!(
        expiring["in"].as_u64().is_some_and(|s| s <= 2),
        "{expiring}"
    );
    assert_eq!(recv_close(&mut ws).0, 4401);
}

#[test]
fn refresh_moves_the_deadline() {
    let server = TestServer::with(|c| c.token_leeway = Duration::ZERO);
    let short = mint("alice", "member", now_ms(), 2);
    let old_exp_ms = (now_ms() / 1000 + 2) * 1000;
    let (mut ws, _) = server.ws(&format!("/ws?token={short}"), &[]);
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    assert!(recv_text(&mut ws).starts_with("System: token expires in "));

    let expired = mint("alice", "member", now_ms() - 7_200_000, 60);
    for (what, line) in [
        (
            "another user's token",
            format!("/refresh {}", server.token("bob")),
        ),
        ("an expired token", format!("/refresh {expired}")),
        ("garbage", "/refresh not.a.token".to_string()),
        ("no token", "/refresh".to_string()),
    ] {
        send(&mut ws, &line);
        let reply = recv_text(&mut ws);
        assert!(reply.starts_with("System: error: "), "{what}: {reply}");
        assert!(!reply.contains(&expired), "{what}: echoes the token");
    }
    send(&mut ws, &format!("/refresh {}", server.token("alice")));
    assert_eq!(recv_text(&mut ws), "System: token refreshed");

    // Past the old deadline, the connection is still open.
    wait_for(
        "the first token's exp to pass",
        Duration::from_secs(5),
        || now_ms() > old_exp_ms + 500,
    );
    send(&mut ws, "still here");
    assert_eq!(recv_text(&mut ws), "alice: still here");
}

#[test]
fn json_refresh_answers_refreshed_with_the_new_exp() {
    let server = TestServer::start();
    let bearer = format!("Bearer {}", server.token("alice"));
    let (mut ws, _) = server.ws(
        "/ws",
        &[
            ("Authorization", bearer.as_str()),
            ("Sec-WebSocket-Protocol", "wsgate.json"),
        ],
    );
    assert_eq!(recv_json(&mut ws)["type"], json!("join"));
    let issued_at = now_ms();
    let fresh = mint("alice", "member", issued_at, 3600);
    send(
        &mut ws,
        &json!({"type": "refresh", "token": fresh}).to_string(),
    );
    assert_eq!(
        recv_json(&mut ws),
        json!({"type": "refreshed", "exp": issued_at / 1000 + 3600})
    );
    send(
        &mut ws,
        &json!({"type": "refresh", "token": "nope"}).to_string(),
    );
    assert_eq!(recv_json(&mut ws)["type"], json!("error"));
}

#[test]
fn viewers_may_not_send() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let viewer = mint("vera", "viewer", now_ms(), 600);
    let (mut vera, _) = server.ws(&format!("/ws?token={viewer}"), &[]);
    assert_eq!(recv_text(&mut vera), "System: vera joined the chat");
    assert_eq!(recv_text(&mut alice), "System: vera joined the chat");
    send(&mut vera, "can I talk?");
    assert!(recv_text(&mut vera).starts_with("System: error: "));
    // ... but may ask who is there, and hears everyone.
    send(&mut vera, "/who");
    assert_eq!(recv_text(&mut vera), "System: users: alice, vera");
    send(&mut alice, "after vera");
    assert_eq!(recv_text(&mut alice), "alice: after vera");
    assert_eq!(recv_text(&mut vera), "alice: after vera");
}

#[test]
fn configured_send_roles_replace_the_default() {
    let server = TestServer::with(|c| c.send_roles = Some(vec!["admin".into()]));
    let admin = mint("ada", "admin", now_ms(), 600);
    let (mut ada, _) = server.ws(&format!("/ws?token={admin}"), &[]);
    assert_eq!(recv_text(&mut ada), "System: ada joined the chat");
    let mut alice = server.join("alice", "lobby");
    assert_eq!(recv_text(&mut ada), "System: alice joined the chat");
    send(&mut alice, "member speaking");
    assert!(recv_text(&mut alice).starts_with("System: error: "));
    send(&mut ada, "admin speaking");
    assert_eq!(recv_text(&mut ada), "ada: admin speaking");
    assert_eq!(recv_text(&mut alice), "ada: admin speaking");
}

#[test]
fn senders_past_the_message_rate_get_errors_then_4429() {
    let server = TestServer::with(|c| {
        // Three at once, then (practically) never again.
        c.limits.message_rate = Some(Rate::new(0.001, 3.0));
    });
    let mut bob = server.join("bob", "lobby");
    let mut alice = server.join("alice", "lobby");
    assert_eq!(recv_text(&mut bob), "System: alice joined the chat");
    for i in 0..3 {
        send(&mut alice, &format!("burst {i}"));
        assert_eq!(recv_text(&mut alice), format!("alice: burst {i}"));
    }
    send(&mut alice, "one too many");
    assert_eq!(recv_text(&mut alice), "System: error: rate limit exceeded");
    let mut errors = 1;
    let code = loop {
        assert!(errors < 100, "never closed for exceeding the rate");
        send(&mut alice, "and more");
        match recv(&mut alice) {
            Message::Text(t) => {
                assert_eq!(t.as_str(), "System: error: rate limit exceeded");
                errors += 1;
            }
            Message::Close(Some(f)) => break u16::from(f.code),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 4429);
    // bob heard the burst and the leave notice, nothing refused.
    for i in 0..3 {
        assert_eq!(recv_text(&mut bob), format!("alice: burst {i}"));
    }
    assert_eq!(recv_text(&mut bob), "System: alice has left the chat");
}

#[test]
fn presence_notices_stop_past_the_presence_limit() {
    let server = TestServer::with(|c| c.limits.presence_limit = 2);
    let mut alice = server.join("alice", "big");
    let mut bob = server.join("bob", "big");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    // The third member makes the room larger than the limit: no notice.
    let bearer = format!("Bearer {}", server.token("carol"));
    let (mut carol, _) = server.ws("/ws?room=big", &[("Authorization", bearer.as_str())]);
    send(&mut carol, "quietly in");
    for ws in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(recv_text(ws), "carol: quietly in");
    }
    send(&mut carol, "/who");
    assert_eq!(recv_text(&mut carol), "System: users: alice, bob, carol");
}

#[test]
fn sessions_past_their_ttl_open_nothing() {
    let server = TestServer::with(|c| c.session_ttl = Duration::from_secs(1));
    let r = server.post_form("/login", "username=alice&password=wonderland");
    assert_eq!(r.status, 204);
    assert!(
        r.header("set-cookie").unwrap().ends_with("Max-Age=1"),
        "{}",
        r.head
    );
    let sid = crate::common::session_id(&r);
    let started = now_ms();
    wait_for("the session's TTL to pass", IO_TIMEOUT, || {
        now_ms() > started + 1500
    });
    WsRequest::new(&server, "/ws")
        .header("Cookie", &format!("__Host-wsgate={sid}"))
        .header("Origin", &server.origin())
        .refused(&server, 401, &sid);
}

#[test]
fn stopping_closes_every_websocket_1001() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    send(&mut bob, "last words");
    // Once bob has his echo, alice's copy is queued too.
    assert_eq!(recv_text(&mut bob), "bob: last words");
    server.request_stop();
    // What was queued before the stop still arrives, then 1001, and no
    // leave notices in between.
    assert_eq!(recv_text(&mut alice), "bob: last words");
    for ws in [&mut alice, &mut bob] {
        assert_eq!(recv_close(ws), (1001, "server shutting down".to_string()));
    }
}
