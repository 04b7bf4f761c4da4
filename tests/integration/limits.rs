//! Limits (PROTOCOL §2, §7): slow consumers, the handshake timeout and the
//! connection limit. Each server here is configured small so that the
//! limit is reached quickly, without timing anything.

use std::time::Duration;

use crate::common::{
    IO_TIMEOUT, TestServer, WsRequest, close, line_number, numbered_line, recv, recv_close,
    recv_text, send, try_ws_at, wait_for,
};
use wsgate::config::{PerUserPolicy, Rate};

#[test]
fn a_slow_consumer_is_closed_1013_and_nobody_else_loses_a_message() {
    const MESSAGES: usize = 400;
    const SIZE: usize = 32 * 1024;
    // 400 × 32 KiB = 12.5 MiB: far more than the kernel buffers of one
    // loopback connection (about 4 MiB send + the receive window) hold for a
    // client that never reads, so its queue must pass the 64 KiB cap.
    let server = TestServer::with(|c| {
        c.limits.max_queue_bytes = 64 * 1024;
        // why: the victim reads its close frame only after the flood; its
        // socket must not be dropped for lingering before that.
        c.limits.close_timeout = Duration::from_secs(60);
    });
    let mut sender = server.join("alice", "flood");
    let mut reader = server.join("bob", "flood");
    assert_eq!(recv_text(&mut sender), "System: bob joined the chat");
    let mut victim = server.join("carol", "flood");
    assert_eq!(recv_text(&mut sender), "System: carol joined the chat");
    assert_eq!(recv_text(&mut reader), "System: carol joined the chat");

    let left = "System: carol has left the chat";
    let reading = std::thread::spawn(move || {
        let mut numbers = Vec::with_capacity(MESSAGES);
        let mut notices = 0;
        while numbers.len() < MESSAGES {
            let text = recv_text(&mut reader);
            match line_number(&text) {
                Some(n) => {
                    assert_eq!(text.len(), "alice: ".len() + SIZE);
                    numbers.push(n);
                }
                None => {
                    assert_eq!(text, left);
                    notices += 1;
                }
            }
        }
        (numbers, notices)
    });

    // The sender reads its own echo before it sends the next line, so it
    // is never a slow consumer itself.
    let mut sender_notices = 0;
    for i in 0..MESSAGES {
        send(&mut sender, &numbered_line(i, SIZE));
        loop {
            let text = recv_text(&mut sender);
            match line_number(&text) {
                Some(n) => {
                    assert_eq!(n, i, "the sender's echo out of order");
                    break;
                }
                None => {
                    assert_eq!(text, left);
                    sender_notices += 1;
                }
            }
        }
    }
    let (numbers, reader_notices) = reading.join().expect("the reading client");
    assert_eq!(numbers, (0..MESSAGES).collect::<Vec<_>>());
    assert_eq!(reader_notices, 1, "the victim left exactly once");
    assert_eq!(sender_notices, 1);

    // The victim now reads: a gapless prefix of the flood, then 1013.
    let mut got = 0;
    let code = loop {
        match recv(&mut victim) {
            tungstenite::Message::Text(t) => {
                assert_eq!(line_number(t.as_str()), Some(got), "victim out of order");
                got += 1;
            }
            tungstenite::Message::Close(Some(frame)) => {
                break (u16::from(frame.code), frame.reason.as_str().to_string());
            }
            other => panic!("victim got {other:?}"),
        }
    };
    assert_eq!(code, (1013, "slow consumer".to_string()));
    assert!(got < MESSAGES, "the victim got everything ({got})");
}

#[test]
fn the_handshake_timeout_closes_incomplete_requests_only() {
    let server = TestServer::with(|c| c.limits.handshake_timeout = Duration::from_millis(500));
    let mut alice = server.join("alice", "lobby");

    // Half a request head; then nothing at all; then an idle keep-alive.
    let mut half = server.http();
    half.send(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webso");
    let mut silent = server.http();
    let mut idle = server.http();
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.response().status, 200);

    // Closed without a response (`closed_by_server` panics on any byte),
    // well within the read timeout.
    assert!(
        half.closed_by_server(),
        "half a head left open past {IO_TIMEOUT:?}"
    );
    assert!(silent.closed_by_server(), "a silent connection left open");
    assert!(idle.closed_by_server(), "an idle keep-alive left open");

    // The open WebSocket, older than the timeout by now, is not affected.
    send(&mut alice, "still fine");
    assert_eq!(recv_text(&mut alice), "alice: still fine");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    send(&mut bob, "me too");
    assert_eq!(recv_text(&mut alice), "bob: me too");
}

#[test]
fn the_connection_limit_answers_503_with_retry_after() {
    let server = TestServer::with(|c| c.limits.max_connections = 2);
    let mut alice = server.join("alice", "lobby");
    let bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");

    let token = server.token("carol");
    let r = WsRequest::new(&server, "/ws")
        .header("Authorization", &format!("Bearer {token}"))
        .refused(&server, 503, &token);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After on 503")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry >= 1);
    assert!(!r.detail().is_empty());
    // Plain HTTP is refused the same way.
    let r = server.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());

    // Nobody was let in: the room heard nothing.
    send(&mut alice, "still two");
    assert_eq!(recv_text(&mut alice), "alice: still two");

    // Once bob is gone there is room again.
    close(bob);
    assert_eq!(recv_text(&mut alice), "System: bob has left the chat");
    // (bob's socket is forgotten when the server reads its end of stream;
    // until then a newcomer may still be told 503.)
    let bearer = format!("Bearer {token}");
    let mut carol = None;
    wait_for("a free connection slot", IO_TIMEOUT, || {
        match try_ws_at(server.addr, "/ws", &[("Authorization", bearer.as_str())]) {
            Ok((ws, _)) => {
                carol = Some(ws);
                true
            }
            Err(tungstenite::Error::Http(r)) => {
                assert_eq!(r.status(), 503);
                false
            }
            Err(e) => panic!("upgrade failed: {e}"),
        }
    });
    let mut carol = carol.unwrap();
    assert_eq!(recv_text(&mut carol), "System: carol joined the chat");
    assert_eq!(recv_text(&mut alice), "System: carol joined the chat");
}

#[test]
fn idle_http_connections_count_toward_the_limit() {
    let server = TestServer::with(|c| c.limits.max_connections = 2);
    let first = server.connect();
    let second = server.connect();
    let r = server.exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 503);
    drop((first, second));
    wait_for("the idle connections to be forgotten", IO_TIMEOUT, || {
        server
            .exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .status
            == 200
    });
}

#[test]
fn upgrades_past_the_per_ip_rate_get_429() {
    let server = TestServer::with(|c| {
        // Three at once, then (practically) never again.
        c.limits.upgrade_rate = Some(Rate::new(0.001, 3.0));
    });
    let token = server.token("alice");
    let bearer = format!("Bearer {token}");
    let _first = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    // A refused attempt counts as an attempt.
    WsRequest::new(&server, "/ws").refused(&server, 401, "");
    let _third = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    let r = WsRequest::new(&server, "/ws")
        .header("Authorization", &bearer)
        .refused(&server, 429, &token);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry >= 1);
    // Plain HTTP is not an upgrade.
    assert_eq!(
        server
            .exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .status,
        200
    );
}

#[test]
fn failed_logins_past_the_per_ip_rate_get_429_before_any_check() {
    let server = TestServer::with(|c| {
        c.limits.failed_login_rate = Some(Rate::new(0.001, 2.0));
    });
    // Successes do not count.
    server.issue_token("alice", "wonderland");
    for _ in 0..2 {
        let r = server.post_form("/token", "username=alice&password=nope");
        assert_eq!(r.status, 401);
    }
    // Now even the right password is not looked at.
    for path in ["/token", "/login"] {
        let r = server.post_form(path, "username=alice&password=wonderland");
        assert_eq!(r.status, 429, "{path}: {}", r.text());
        assert!(r.header("retry-after").is_some(), "{path}");
        assert!(r.header("set-cookie").is_none());
    }
}

#[test]
fn a_user_at_the_connection_maximum_gets_429() {
    let server = TestServer::with(|c| c.limits.max_conns_per_user = 2);
    let bearer = format!("Bearer {}", server.token("alice"));
    let (first, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    let _second = server.ws("/ws?room=other", &[("Authorization", bearer.as_str())]);
    let r = WsRequest::new(&server, "/ws")
        .header("Authorization", &bearer)
        .refused(&server, 429, "");
    assert!(r.header("retry-after").is_some());
    // Other users are not affected, and a slot frees when one closes.
    let _bob = server.join("bob", "lobby");
    close(first);
    let _third = server.ws("/ws", &[("Authorization", bearer.as_str())]);
}

#[test]
fn evict_oldest_closes_the_oldest_connection_4409() {
    let server = TestServer::with(|c| {
        c.limits.max_conns_per_user = 2;
        c.per_user_policy = PerUserPolicy::EvictOldest;
    });
    let mut bob = server.join("bob", "lobby");
    let mut oldest = server.join("alice", "lobby");
    assert_eq!(recv_text(&mut bob), "System: alice joined the chat");
    let bearer = format!("Bearer {}", server.token("alice"));
    let (mut second, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    let (mut newest, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    assert_eq!(recv_close(&mut oldest).0, 4409);
    // alice is still in the room: no leave notice, and both others work.
    send(&mut newest, "replaced");
    assert_eq!(recv_text(&mut bob), "alice: replaced");
    assert_eq!(recv_text(&mut second), "alice: replaced");
    assert_eq!(recv_text(&mut newest), "alice: replaced");
}
