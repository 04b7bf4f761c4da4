//! Scale-out through a real `redis-server` (feature `redis`): two wsgate
//! nodes on one Redis are one chat — a message sent on either reaches the
//! room's members on both, in one order, with one gapless `seq`; a message
//! sent while Redis is unreachable is refused to its sender in words; the
//! link's state shows in `/healthz` and `/metrics`; after Redis restarts
//! the nodes reconnect by themselves (a new epoch, `seq` from 1).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{TestServer, form_request, recv_close, recv_json, recv_text, send, wait_for};
use wsgate::config::RedisUrl;

/// A `redis-server` of the test's own on a free loopback port, killed by
/// PID when dropped.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    /// `None` (skipped) where `redis-server` is missing, except in CI.
    fn start() -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have redis-server"
            );
            eprintln!("skipped: redis-server is missing");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis { child: None, port };
        redis.spawn();
        Some(redis)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn node(&self) -> TestServer {
        let url = format!("redis://127.0.0.1:{}/0", self.port);
        let server = TestServer::with(|c| c.redis = RedisUrl::parse(&url));
        wait_for("the node's Redis link", Duration::from_secs(10), || {
            healthz(&server) == 200
        });
        server
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn healthz(server: &TestServer) -> u16 {
    server
        .exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .status
}

/// A JSON-mode member of `room` on `server`.
fn json_member(server: &TestServer, user: &str, room: &str) -> crate::common::Ws {
    let bearer = format!("Bearer {}", server.token(user));
    let (mut ws, _) = server.ws(
        &format!("/ws?room={room}"),
        &[
            ("Authorization", bearer.as_str()),
            ("Sec-WebSocket-Protocol", "wsgate.json"),
        ],
    );
    assert_eq!(recv_json(&mut ws)["type"], "join");
    ws
}

/// The next `n` chat messages `ws` reads, as (seq, from, text).
fn messages(ws: &mut crate::common::Ws, n: usize) -> Vec<(u64, String, String)> {
    let mut got = Vec::new();
    while got.len() < n {
        let m: Value = recv_json(ws);
        if m["type"] == "message" {
            got.push((
                m["seq"].as_u64().unwrap(),
                m["from"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
            ));
        }
    }
    got
}

#[test]
fn two_nodes_are_one_chat_in_one_order() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (redis.node(), redis.node());
    let mut alice = json_member(&a, "alice", "crowd");
    let mut bob = json_member(&b, "bob", "crowd");
    // Both send at once, from their own threads, on their own nodes.
    let sender = |mut ws: crate::common::Ws, who: &'static str| {
        std::thread::spawn(move || {
            for i in 0..20 {
                send(
                    &mut ws,
                    &format!(r#"{{"type":"message","text":"{who} {i}"}}"#),
                );
            }
            ws
        })
    };
    let (ta, tb) = (sender(alice, "a"), sender(bob, "b"));
    alice = ta.join().unwrap();
    bob = tb.join().unwrap();
    let seen_a = messages(&mut alice, 40);
    let seen_b = messages(&mut bob, 40);
    assert_eq!(seen_a, seen_b, "one order for everyone");
    let seqs: Vec<u64> = seen_a.iter().map(|m| m.0).collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>(), "gapless");
    // Each sender's own lines keep their order.
    for who in ["a", "b"] {
        let mine: Vec<&str> = (seen_a.iter())
            .filter(|m| m.2.starts_with(who))
            .map(|m| m.2.as_str())
            .collect();
        let want: Vec<String> = (0..20).map(|i| format!("{who} {i}")).collect();
        assert_eq!(mine, want);
    }
    // Text mode on a third node hears the same.
    let c = redis.node();
    let mut carol = c.join("carol", "crowd");
    send(&mut bob, r#"{"type":"message","text":"hi carol"}"#);
    assert_eq!(recv_text(&mut carol), "bob: hi carol");
}

#[test]
fn without_redis_a_message_is_refused_in_words_and_the_link_comes_back() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let (a, b) = (redis.node(), redis.node());
    let mut alice = a.join("alice", "lobby");
    let mut bob = json_member(&b, "bob", "lobby");
    send(&mut alice, "before");
    // Bob's join on B is announced to alice on A, before or after her own
    // line: the two come from different nodes.
    let mut line = recv_text(&mut alice);
    while line == "System: bob joined the chat" || line == "System: alice joined the chat" {
        line = recv_text(&mut alice);
    }
    assert_eq!(line, "alice: before");
    let before = messages(&mut bob, 1);
    assert_eq!(before[0].0, 1);

    redis.kill();
    wait_for(
        "the node to see Redis gone",
        Duration::from_secs(15),
        || healthz(&a) == 503,
    );
    send(&mut alice, "into the void");
    assert_eq!(
        recv_text(&mut alice),
        "System: error: not sent: the chat store (Redis) cannot be reached"
    );
    let m = a.exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(m.text().contains("\nwsgate_redis_up 0\n"), "{}", m.text());
    // The sockets stay open while Redis is away.
    redis.spawn();
    for node in [&a, &b] {
        wait_for("the link back up", Duration::from_secs(15), || {
            healthz(node) == 200
        });
    }
    send(&mut alice, "after");
    // The restarted Redis had forgotten who was here: the nodes counted
    // their users again, and their joins were announced anew.
    let mut line = recv_text(&mut alice);
    while line.starts_with("System: ") && line.ends_with(" joined the chat") {
        line = recv_text(&mut alice);
    }
    assert_eq!(line, "alice: after");
    let after = messages(&mut bob, 1);
    // A restarted Redis (no persistence) is a new life of the room.
    assert_eq!((after[0].0, after[0].2.as_str()), (1, "after"));
}

/// Opens a text-mode WebSocket on `server` with the session cookie `sid`.
fn cookie_member(server: &TestServer, sid: &str, room: &str) -> crate::common::Ws {
    let cookie = format!("__Host-wsgate={sid}");
    let origin = server.origin();
    let (ws, _) = server.ws(
        &format!("/ws?room={room}"),
        &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
    );
    ws
}

/// `POST /ws-ticket` on `server` with the session cookie `sid`.
fn ticket(server: &TestServer, sid: &str) -> crate::common::HttpResponse {
    server.exchange(&format!(
        "POST /ws-ticket HTTP/1.1\r\nHost: {}\r\nCookie: __Host-wsgate={sid}\r\n\
         Origin: {}\r\nConnection: close\r\n\r\n",
        server.addr,
        server.origin()
    ))
}

#[test]
fn a_login_ticket_and_logout_span_the_nodes() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (redis.node(), redis.node());
    // A login on A opens a WebSocket on B.
    let sid = a.login("alice", "wonderland");
    let mut on_b = cookie_member(&b, &sid, "lobby");
    assert_eq!(recv_text(&mut on_b), "System: alice joined the chat");
    let mut on_a = cookie_member(&a, &sid, "lobby");
    // A ticket asked of B opens a WebSocket on A, once: not again on A,
    // nor on B.
    let r = ticket(&b, &sid);
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json()["ticket"].as_str().unwrap().to_string();
    let target = format!("/ws?room=lobby&ticket={t}");
    let (mut by_ticket, _) = a.ws(&target, &[]);
    for node in [&a, &b] {
        let refused = crate::common::WsRequest::new(node, &target).refused(node, 401, &t);
        assert_eq!(refused.detail(), "unknown or expired ticket");
    }
    // A logout on A closes the session's WebSockets on both nodes with
    // 4403, the ticket's one included, and the cookie is dead on B.
    // (No Origin: a client that is not a browser.)
    let r = a.exchange(&form_request(
        "/logout",
        "",
        &format!("Cookie: __Host-wsgate={sid}\r\n"),
    ));
    assert_eq!(r.status, 204, "{}", r.text());
    for ws in [&mut on_b, &mut on_a, &mut by_ticket] {
        assert_eq!(recv_close(ws).0, 4403);
    }
    assert_eq!(ticket(&b, &sid).status, 401);
}

/// A node as a process of its own (so that it can be killed), on
/// `127.0.0.1:0`, with the test secret and no rate limits; killed by PID
/// when dropped.
struct Process {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Process {
    fn start(redis: &Redis) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .env_clear()
            .args(["--listen", "127.0.0.1:0"])
            .args(["--upgrade-rate", "0", "--message-rate", "0"])
            .args(["--redis", &format!("redis://127.0.0.1:{}/0", redis.port)])
            .env(
                "WSGATE_SECRET",
                std::str::from_utf8(crate::common::SECRET).unwrap(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsgate");
        let lines = crate::common::lines_of(child.stderr.take().unwrap());
        let addr = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a \"listening on\" line");
            if let Some((_, addr)) = line.split_once("listening on ") {
                break addr.trim().parse().expect("an address");
            }
        };
        // why drain: a full pipe would block the node's logging.
        std::thread::spawn(move || for _ in lines {});
        let node = Process { child, addr };
        wait_for("the process's Redis link", Duration::from_secs(10), || {
            let mut conn = crate::common::HttpConn::new(crate::common::connect_to(node.addr));
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            conn.response().status == 200
        });
        node
    }

    /// SIGKILL: no goodbye to Redis.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The next `join` or `leave` `ws` reads (other messages skipped), as
/// (type, user), within `within`.
fn presence(ws: &mut crate::common::Ws, within: Duration) -> (String, String) {
    let deadline = Instant::now() + within;
    loop {
        assert!(Instant::now() < deadline, "no join or leave in {within:?}");
        let m: Value = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str(t.as_str()).unwrap(),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => panic!("reading: {e}"),
        };
        if m["type"] == "join" || m["type"] == "leave" {
            return (
                m["type"].as_str().unwrap().to_string(),
                m["user"].as_str().unwrap().to_string(),
            );
        }
    }
}

/// `who` on `ws`: the users, sorted.
fn who(ws: &mut crate::common::Ws) -> Vec<String> {
    send(ws, r#"{"type":"who"}"#);
    loop {
        let m = recv_json(ws);
        if m["type"] == "who" {
            return serde_json::from_value(m["users"].clone()).unwrap();
        }
    }
}

#[test]
fn presence_spans_the_nodes_and_a_killed_nodes_users_leave_within_12_s() {
    let Some(redis) = Redis::start() else { return };
    let a = redis.node();
    let mut doomed = Process::start(&redis);
    let mut alice = json_member(&a, "alice", "crowd");
    let bearer = format!("Bearer {}", a.token("bob"));
    let (mut bob, _) = crate::common::ws_at(
        doomed.addr,
        "/ws?room=crowd",
        &[
            ("Authorization", bearer.as_str()),
            ("Sec-WebSocket-Protocol", "wsgate.json"),
        ],
    );
    // Bob's join is announced on A; bob hears his own once.
    assert_eq!(
        presence(&mut alice, Duration::from_secs(5)),
        ("join".into(), "bob".into())
    );
    assert_eq!(
        presence(&mut bob, Duration::from_secs(5)),
        ("join".into(), "bob".into())
    );
    assert_eq!(who(&mut alice), ["alice", "bob"]);
    assert_eq!(who(&mut bob), ["alice", "bob"]);
    // The per-user limit counts both nodes (16 by default): A refuses
    // bob's 17th WebSocket, his others being on the process.
    let mut more = Vec::new();
    for _ in 0..15 {
        let (ws, _) = crate::common::ws_at(
            doomed.addr,
            "/ws?room=other",
            &[("Authorization", bearer.as_str())],
        );
        more.push(ws);
    }
    let refused = crate::common::WsRequest::new(&a, "/ws?room=crowd")
        .header("Authorization", &bearer)
        .refused(&a, 429, "");
    assert_eq!(refused.detail(), "too many connections for this user");
    // The process dies without a word: bob leaves within 12 s.
    let killed = Instant::now();
    doomed.kill();
    assert_eq!(
        presence(&mut alice, Duration::from_secs(20)),
        ("leave".into(), "bob".into())
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(14), "bob left after {took:?}");
    assert_eq!(who(&mut alice), ["alice"]);
    // And his WebSockets no longer count.
    let (_, r) = a.ws("/ws?room=crowd", &[("Authorization", bearer.as_str())]);
    assert_eq!(r.status(), 101);
    drop(more);
}

#[test]
fn a_client_resumes_on_another_node_from_redis_stream() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (redis.node(), redis.node());
    let mut alice = json_member(&a, "alice", "lobby");
    for i in 1..=5 {
        send(
            &mut alice,
            &format!(r#"{{"type":"message","text":"m{i}"}}"#),
        );
    }
    let seen = messages(&mut alice, 5);
    let epoch = {
        let bearer = format!("Bearer {}", a.token("probe"));
        let (mut probe, _) = a.ws(
            "/ws?room=lobby&since=5",
            &[
                ("Authorization", bearer.as_str()),
                ("Sec-WebSocket-Protocol", "wsgate.json"),
            ],
        );
        recv_json(&mut probe)["epoch"].as_str().unwrap().to_string()
    };
    assert_eq!(seen[1].0, 2);
    // Carol had seen 2 (on A) and comes back on B, which nobody in the
    // room has used: B reads the rest from Redis.
    let bearer = format!("Bearer {}", b.token("carol"));
    let (mut carol, _) = b.ws(
        &format!("/ws?room=lobby&since=2&epoch={epoch}"),
        &[
            ("Authorization", bearer.as_str()),
            ("Sec-WebSocket-Protocol", "wsgate.json"),
        ],
    );
    let head = recv_json(&mut carol);
    assert_eq!(
        (
            head["type"].as_str(),
            head["seq"].as_u64(),
            head["recovered"].as_bool()
        ),
        (Some("resume"), Some(5), Some(true)),
        "{head}"
    );
    let got: Vec<(u64, String)> = messages(&mut carol, 3)
        .into_iter()
        .map(|m| (m.0, m.2))
        .collect();
    assert_eq!(got, [(3, "m3".into()), (4, "m4".into()), (5, "m5".into())]);
    // And the live stream follows, with no gap.
    send(&mut alice, r#"{"type":"message","text":"m6"}"#);
    assert_eq!(messages(&mut carol, 1)[0].0, 6);
}

#[test]
fn a_redis_stalled_for_5_s_loses_nothing() {
    let Some(redis) = Redis::start() else { return };
    let (a, b) = (redis.node(), redis.node());
    let mut alice = json_member(&a, "alice", "lobby");
    let mut bob = json_member(&b, "bob", "lobby");
    let pid = redis.child.as_ref().unwrap().id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    send(
        &mut alice,
        r#"{"type":"message","text":"during the stall"}"#,
    );
    std::thread::sleep(Duration::from_secs(5));
    signal("-CONT");
    // Late, not lost: both nodes deliver it, and the sockets stayed.
    for ws in [&mut alice, &mut bob] {
        let got = messages(ws, 1);
        assert_eq!((got[0].0, got[0].2.as_str()), (1, "during the stall"));
    }
    assert_eq!(healthz(&a), 200);
}
