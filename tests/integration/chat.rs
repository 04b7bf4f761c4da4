//! Chat over open WebSockets: text mode (PROTOCOL §3), JSON mode (§4) and
//! the close codes a client's own mistakes earn (§6).

use std::io::Write;

use serde_json::{Value, json};
use tungstenite::Message;

use crate::common::{
    TestServer, Ws, WsRequest, client_frame, close, masked_frame, masked_text_frame, now_ms,
    recv_close, recv_json, recv_text, send,
};

#[test]
fn three_clients_see_every_line_in_one_order() {
    let server = TestServer::start();
    let names = ["alice", "bob", "carol"];
    let mut clients: Vec<Ws> = Vec::new();
    for name in names {
        let ws = server.join(name, "lobby");
        for earlier in clients.iter_mut() {
            assert_eq!(
                recv_text(earlier),
                format!("System: {name} joined the chat")
            );
        }
        clients.push(ws);
    }
    let rounds = 5;
    for round in 0..rounds {
        for (i, ws) in clients.iter_mut().enumerate() {
            send(ws, &format!("line {round} from {}", names[i]));
        }
    }
    let seen: Vec<Vec<String>> = clients
        .iter_mut()
        .map(|ws| (0..rounds * names.len()).map(|_| recv_text(ws)).collect())
        .collect();
    // Everyone saw the same sequence ...
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    // ... holding every line once, `USER: LINE`, each sender's in the
    // order sent (the sender's own lines included).
    for name in names {
        let mine: Vec<&String> = seen[0]
            .iter()
            .filter(|l| l.starts_with(&format!("{name}: ")))
            .collect();
        let expected: Vec<String> = (0..rounds)
            .map(|r| format!("{name}: line {r} from {name}"))
            .collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}

#[test]
fn join_and_leave_notices_follow_a_users_first_and_last_connection() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob1 = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");

    // A second connection of bob: no notice to anyone, itself included.
    let bearer = format!("Bearer {}", server.token("bob"));
    let (mut bob2, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    send(&mut bob2, "from the second tab");
    for ws in [&mut alice, &mut bob1, &mut bob2] {
        assert_eq!(recv_text(ws), "bob: from the second tab");
    }
    send(&mut alice, "/who");
    assert_eq!(recv_text(&mut alice), "System: users: alice, bob");

    // bob's first connection leaves: bob is still there, no notice.
    close(bob1);
    send(&mut bob2, "one tab left");
    assert_eq!(recv_text(&mut alice), "bob: one tab left");
    assert_eq!(recv_text(&mut bob2), "bob: one tab left");

    // The last one leaves: the notice.
    close(bob2);
    assert_eq!(recv_text(&mut alice), "System: bob has left the chat");
    send(&mut alice, "/who");
    assert_eq!(recv_text(&mut alice), "System: users: alice");

    // A connection that just drops (no close handshake) counts as leaving.
    let carol = server.join("carol", "lobby");
    assert_eq!(recv_text(&mut alice), "System: carol joined the chat");
    drop(carol);
    assert_eq!(recv_text(&mut alice), "System: carol has left the chat");
}

#[test]
fn rooms_are_separate() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "red");
    let mut bob = server.join("bob", "blue");
    send(&mut alice, "in red");
    assert_eq!(recv_text(&mut alice), "alice: in red");
    send(&mut bob, "in blue");
    assert_eq!(recv_text(&mut bob), "bob: in blue");
    send(&mut alice, "/who");
    assert_eq!(recv_text(&mut alice), "System: users: alice");
}

#[test]
fn who_answers_the_sender_alone() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    send(&mut bob, "/who");
    assert_eq!(recv_text(&mut bob), "System: users: alice, bob");
    send(&mut bob, "after who");
    assert_eq!(recv_text(&mut bob), "bob: after who");
    // alice's next message is bob's line, not the answer to his /who.
    assert_eq!(recv_text(&mut alice), "bob: after who");
}

#[test]
fn unknown_commands_get_an_error_reply() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    for command in ["/nope", "/WHO", "/who?", "/", "/kick alice"] {
        send(&mut bob, command);
        assert_eq!(
            recv_text(&mut bob),
            "System: error: unknown command",
            "{command}"
        );
    }
    send(&mut bob, "done");
    assert_eq!(recv_text(&mut bob), "bob: done");
    assert_eq!(recv_text(&mut alice), "bob: done");
}

#[test]
fn lines_with_control_characters_are_refused_and_not_broadcast() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    for line in [
        "hi\nSystem: alice has left the chat",
        "carriage\rreturn",
        "nul\0byte",
        "escape \u{1b}[2J",
    ] {
        send(&mut bob, line);
        let reply = recv_text(&mut bob);
        assert!(reply.starts_with("System: error: "), "{line:?}: {reply}");
    }
    // A tab is fine.
    send(&mut bob, "tab\tseparated");
    assert_eq!(recv_text(&mut bob), "bob: tab\tseparated");
    assert_eq!(recv_text(&mut alice), "bob: tab\tseparated");
}

#[test]
fn a_binary_frame_closes_1003() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    bob.send(Message::binary(vec![1u8, 2, 3])).unwrap();
    let (code, reason) = recv_close(&mut bob);
    assert_eq!(code, 1003, "{reason}");
    assert!(!reason.is_empty());
    assert_eq!(recv_text(&mut alice), "System: bob has left the chat");
}

#[test]
fn messages_over_64_kib_close_1009() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    let mut bob = server.join("bob", "lobby");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    // Exactly at the limit is fine.
    let at_limit = "a".repeat(64 * 1024);
    send(&mut bob, &at_limit);
    assert_eq!(recv_text(&mut bob), format!("bob: {at_limit}"));
    assert_eq!(recv_text(&mut alice), format!("bob: {at_limit}"));
    // 70 KiB is not.
    send(&mut bob, &"b".repeat(70 * 1024));
    assert_eq!(recv_close(&mut bob).0, 1009);
    assert_eq!(recv_text(&mut alice), "System: bob has left the chat");
}

#[test]
fn invalid_utf8_closes_1007() {
    let server = TestServer::start();
    let mut ws = raw_alice(&server, "lobby");
    ws.get_mut()
        .write_all(&masked_frame(0x1, &[b'o', b'k', 0xff, 0xfe]))
        .unwrap();
    assert_eq!(recv_close(&mut ws).0, 1007);
}

/// alice's raw WebSocket in `room`, her join notice read.
fn raw_alice(server: &TestServer, room: &str) -> Ws {
    let token = server.token("alice");
    let mut conn = server.http();
    let request = WsRequest::new(server, &format!("/ws?room={room}&token={token}")).render();
    conn.send(request.as_bytes());
    assert_eq!(conn.response().status, 101);
    let mut ws = conn.into_websocket();
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    ws
}

#[test]
fn unmasked_client_frames_close_1002() {
    let server = TestServer::start();
    let mut ws = raw_alice(&server, "lobby");
    ws.get_mut()
        .write_all(&client_frame(true, 0x1, b"naked", false))
        .unwrap();
    assert_eq!(recv_close(&mut ws).0, 1002);
}

#[test]
fn fragmented_messages_are_one_line() {
    let server = TestServer::start();
    let mut bob = server.join("bob", "frag");
    let mut alice = raw_alice(&server, "frag");
    assert_eq!(recv_text(&mut bob), "System: alice joined the chat");
    let mut bytes = client_frame(false, 0x1, b"in ", true);
    // A ping between the fragments is allowed (RFC 6455 §5.4).
    bytes.extend(client_frame(true, 0x9, b"p", true));
    bytes.extend(client_frame(false, 0x0, b"three ", true));
    bytes.extend(client_frame(true, 0x0, b"parts", true));
    alice.get_mut().write_all(&bytes).unwrap();
    for ws in [&mut alice, &mut bob] {
        assert_eq!(recv_text(ws), "alice: in three parts");
    }
}

#[test]
fn frames_sent_with_the_request_head_are_not_lost() {
    let server = TestServer::start();
    let mut bob = server.join("bob", "early");
    let token = server.token("alice");
    let mut bytes = WsRequest::new(&server, "/ws?room=early")
        .header("Authorization", &format!("Bearer {token}"))
        .render()
        .into_bytes();
    bytes.extend(masked_text_frame("early bird"));
    bytes.extend(masked_text_frame("second worm"));
    let mut conn = server.http();
    conn.send(&bytes); // one write: head and two frames
    let r = conn.response();
    assert_eq!(r.status, 101, "{}", r.head);
    let mut alice = conn.into_websocket();
    for ws in [&mut alice, &mut bob] {
        assert_eq!(recv_text(ws), "System: alice joined the chat");
        assert_eq!(recv_text(ws), "alice: early bird");
        assert_eq!(recv_text(ws), "alice: second worm");
    }
}

#[test]
fn json_mode_speaks_json_with_gapless_seq() {
    let server = TestServer::start();
    let token = server.token("alice");
    let bearer = format!("Bearer {token}");
    let (mut alice, response) = server.ws(
        "/ws?room=js",
        &[
            ("Authorization", bearer.as_str()),
            ("Sec-WebSocket-Protocol", "chat.v2, wsgate.json"),
        ],
    );
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("wsgate.json")
    );
    assert_eq!(
        recv_json(&mut alice),
        json!({"type": "join", "room": "js", "user": "alice"})
    );
    // bob in text mode, same room.
    let mut bob = server.join("bob", "js");
    assert_eq!(
        recv_json(&mut alice),
        json!({"type": "join", "room": "js", "user": "bob"})
    );

    let before = now_ms();
    send(&mut alice, r#"{"type":"message","text":"one"}"#);
    send(&mut bob, "two");
    send(
        &mut alice,
        r#"{"type":"message","text":"thr\u00e9e \"quoted\""}"#,
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = recv_json(&mut alice);
        assert_eq!(m["type"], json!("message"), "{m}");
        assert_eq!(m["room"], json!("js"));
        let ts = m["ts"].as_u64().expect("ts is a number");
        assert!(ts + 60_000 >= before && ts <= now_ms() + 60_000, "ts {ts}");
        got.push((
            m["seq"].as_u64().expect("seq is a number"),
            m["from"].as_str().unwrap().to_string(),
            m["text"].as_str().unwrap().to_string(),
        ));
    }
    let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // bob's line and alice's two, alice's in her order.
    let mut texts: Vec<&str> = got.iter().map(|g| g.2.as_str()).collect();
    assert!(texts.contains(&"two"));
    texts.retain(|t| *t != "two");
    assert_eq!(texts, ["one", "thrée \"quoted\""]);
    // bob sees the same lines in text mode, in the same order.
    for (_, from, text) in &got {
        assert_eq!(recv_text(&mut bob), format!("{from}: {text}"));
    }

    // who, errors, leave.
    send(&mut alice, r#"{"type":"who"}"#);
    assert_eq!(
        recv_json(&mut alice),
        json!({"type": "who", "users": ["alice", "bob"]})
    );
    for bad in [
        "not json",
        "[1,2]",
        r#"{"type":"nope"}"#,
        r#"{"type":"message"}"#,
        r#"{"type":"message","text":"a\nb"}"#,
    ] {
        send(&mut alice, bad);
        let e = recv_json(&mut alice);
        assert_eq!(e["type"], json!("error"), "{bad}: {e}");
        assert!(e["code"].is_string() && e["detail"].is_string(), "{e}");
    }
    send(&mut bob, "four");
    let m = recv_json(&mut alice);
    assert_eq!(
        (m["seq"].clone(), m["text"].clone()),
        (json!(4), json!("four"))
    );
    close(bob);
    assert_eq!(
        recv_json(&mut alice),
        json!({"type": "leave", "room": "js", "user": "bob"})
    );
}

#[test]
fn seq_counts_per_room() {
    let server = TestServer::start();
    let json_ws = |room: &str, user: &str| {
        let bearer = format!("Bearer {}", server.token(user));
        let (mut ws, _) = server.ws(
            &format!("/ws?room={room}"),
            &[
                ("Authorization", bearer.as_str()),
                ("Sec-WebSocket-Protocol", "wsgate.json"),
            ],
        );
        assert_eq!(recv_json(&mut ws)["type"], json!("join"));
        ws
    };
    let mut a = json_ws("one", "alice");
    let mut b = json_ws("two", "bob");
    let seq_of = |ws: &mut Ws, text: &str| -> Value {
        send(ws, &json!({"type": "message", "text": text}).to_string());
        recv_json(ws)["seq"].clone()
    };
    assert_eq!(seq_of(&mut a, "a1"), json!(1));
    assert_eq!(seq_of(&mut a, "a2"), json!(2));
    assert_eq!(seq_of(&mut b, "b1"), json!(1));
    assert_eq!(seq_of(&mut a, "a3"), json!(3));
}

#[test]
fn a_json_client_that_drops_resumes_without_gap_or_duplicate() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "resume");
    let bearer = format!("Bearer {}", server.token("bob"));
    let json_bob = |query: &str| {
        server.ws(
            &format!("/ws?room=resume{query}"),
            &[
                ("Authorization", bearer.as_str()),
                ("Sec-WebSocket-Protocol", "wsgate.json"),
            ],
        )
    };
    send(&mut alice, "one");
    let (mut bob, _) = json_bob("&since=0");
    let resume = recv_json(&mut bob);
    assert_eq!(
        (resume["type"].as_str(), resume["recovered"].as_bool()),
        (Some("resume"), Some(true))
    );
    let epoch = resume["epoch"].as_str().unwrap().to_string();
    assert_eq!(recv_json(&mut bob)["text"], "one");
    // Bob's connection drops (no close handshake); Alice goes on.
    drop(bob);
    for line in ["two", "three"] {
        send(&mut alice, line);
    }
    // Once Alice reads her own "three", the server has numbered it.
    while recv_text(&mut alice) != "alice: three" {}
    let (mut bob, _) = json_bob(&format!("&since=1&epoch={epoch}"));
    send(&mut alice, "four");
    let resume = recv_json(&mut bob);
    assert_eq!(
        resume,
        json!({"type": "resume", "room": "resume", "epoch": epoch, "seq": 3, "recovered": true})
    );
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = recv_json(&mut bob);
        if m["type"] == "message" {
            got.push((
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            ));
        }
    }
    let want: Vec<(u64, String)> = [(2, "two"), (3, "three"), (4, "four")]
        .map(|(s, t)| (s, t.to_string()))
        .to_vec();
    assert_eq!(got, want);
}
