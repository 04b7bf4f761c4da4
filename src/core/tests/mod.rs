//! Unit tests of the core on a virtual clock, grouped by what they drive:
//! plain HTTP, the upgrade's refusals and carriers, chat, limits, endings.

use serde_json::{Value, json};
use tungstenite::Message;

use crate::testkit::{Harness, form_post, upgrade_request};

mod embedding;
mod flow;
mod hardening;

/// Logs in with the form and returns the cookie pair (`__Host-wsgate=ID`).
fn login(h: &mut Harness, user: &str, password: &str) -> String {
    let (_, r) = h.request(&form_post(
        "/login",
        &format!("username={user}&password={password}"),
    ));
    assert_eq!(r.status, 204, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age="),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert!(pair.starts_with("__Host-wsgate="));
    pair.to_string()
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).expect("a JSON body")
}

mod http {
    use super::*;

    #[test]
    fn healthz_404_405() {
        let mut h = Harness::default();
        let (_, r) = h.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let (_, r) = h.request("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 404);
        assert_eq!(json_body(&r.body)["detail"], "not found");
        let (_, r) = h.request("GET /token HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
        let (_, r) = h.request("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let mut h = Harness::default();
        let id = h.connect();
        h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(h.response(id).unwrap().status, 200);
        assert_eq!(h.response(id).unwrap().status, 404);
        let last = h.response(id).unwrap();
        assert_eq!(
            (last.status, last.header("connection")),
            (200, Some("close"))
        );
        assert!(h.peer(id).shut, "write half shut after the final response");
    }

    #[test]
    fn a_head_arriving_byte_by_byte_is_parsed() {
        let mut h = Harness::default();
        let id = h.connect();
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" {
            h.send(id, &[*b]);
        }
        assert_eq!(h.response(id).unwrap().status, 200);
    }

    #[test]
    fn token_endpoint() {
        let mut h = Harness::default();
        let (_, r) = h.request(&form_post(
            "/token",
            "username=alice&password=wonderland&grant_type=password",
        ));
        assert_eq!(r.status, 200, "{}", r.body);
        let body = json_body(&r.body);
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 900);
        let token = body["access_token"].as_str().unwrap();
        let claims = h.jwt.verify(token, h.now).unwrap();
        assert_eq!(
            (claims.sub.as_str(), claims.role.as_str()),
            ("alice", "member")
        );
        assert_eq!(claims.exp_ms, h.now / 1000 * 1000 + 900_000);
        // The token opens a WebSocket.
        let (_, up) = h.upgrade("/ws", &format!("Authorization: Bearer {token}\r\n"));
        assert_eq!(up.status, 101);
    }

    #[test]
    fn bad_logins() {
        let mut h = Harness::default();
        for body in [
            "username=alice&password=wrong",
            "username=mallory&password=wonderland",
        ] {
            let (_, r) = h.request(&form_post("/token", body));
            assert_eq!(r.status, 401);
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            assert_eq!(
                json_body(&r.body),
                json!({"detail": "Incorrect username or password"})
            );
            assert!(!r.body.contains("wonderland") && !r.body.contains("wrong"));
        }
        for body in [
            "username=alice",
            "password=x",
            "username=&password=x",
            "username=alice&password=wonderland&password=x",
            "username=alice&password=wonderland&grant_type=client_credentials",
        ] {
            let (_, r) = h.request(&form_post("/login", body));
            assert_eq!(r.status, 400, "{body}");
            assert!(json_body(&r.body)["detail"].is_string());
        }
        let json_post = "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(h.request(json_post).1.status, 400);
    }

    #[test]
    fn body_limits() {
        let mut h = Harness::default();
        let big = "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9000\r\n\r\n";
        assert_eq!(h.request(big).1.status, 413);
        let chunked = "POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(h.request(chunked).1.status, 411);
        let bad_len =
            "POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
        assert_eq!(h.request(bad_len).1.status, 400);
    }

    #[test]
    fn a_body_is_read_by_content_length_across_reads() {
        let mut h = Harness::default();
        let id = h.connect();
        let req = form_post("/token", "username=alice&password=wonderland");
        let (head, body) = req.split_at(req.len() - 10);
        h.send(id, head.as_bytes());
        assert!(
            h.response(id).is_none(),
            "no answer before the body is complete"
        );
        h.send(id, body.as_bytes());
        assert_eq!(h.response(id).unwrap().status, 200);
    }

    #[test]
    fn expect_continue_gets_100_first() {
        let mut h = Harness::default();
        let id = h.connect();
        let body = "username=alice&password=wonderland";
        h.send(
            id,
            format!(
                "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(h.response(id).unwrap().status, 100);
        h.send(id, body.as_bytes());
        assert_eq!(h.response(id).unwrap().status, 200);
    }

    #[test]
    fn oversized_and_malformed_heads() {
        let mut h = Harness::default();
        let id = h.connect();
        h.send(
            id,
            format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "a".repeat(9000)).as_bytes(),
        );
        let r = h.response(id).unwrap();
        assert_eq!((r.status, r.header("connection")), (431, Some("close")));
        let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            h.request(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n"))
                .1
                .status,
            431
        );
        assert_eq!(h.request("\x16\x03\x01 hello\r\n\r\n").1.status, 400);
    }

    #[test]
    fn handshake_timeout_closes_without_a_word() {
        let mut h = Harness::default();
        let id = h.connect();
        h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        h.advance(9_999);
        assert!(!h.peer(id).dropped);
        h.advance(1);
        assert!(h.peer(id).dropped);
        assert!(h.peer(id).received.is_empty());
        assert_eq!(h.server.connections(), 0);
    }

    #[test]
    fn keep_alive_idle_connection_times_out_too() {
        let mut h = Harness::default();
        let id = h.connect();
        h.advance(9_000);
        h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.response(id).unwrap().status, 200);
        // The next head gets a fresh 10 s.
        h.advance(9_000);
        assert!(!h.peer(id).dropped);
        h.advance(1_000);
        assert!(h.peer(id).dropped);
    }

    #[test]
    fn final_response_then_shutdown_then_linger_timeout() {
        let mut h = Harness::default();
        let (id, r) = h.request("GET /healthz HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(h.peer(id).shut && !h.peer(id).dropped);
        // Input during the linger is discarded.
        h.send(id, b"garbage");
        assert!(h.peer(id).received.is_empty());
        h.advance(5_000);
        assert!(h.peer(id).dropped);
        assert_eq!(h.server.connections(), 0);
    }

    #[test]
    fn connection_limit_answers_503_without_taking_a_slot() {
        let mut h = Harness::new(|c| c.limits.max_connections = 2);
        h.connect();
        h.connect();
        // However many come: each is answered 503 at once, none is held.
        for _ in 0..100 {
            assert_eq!(h.try_connect(), None);
            let r = h.refusal().unwrap();
            assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
            assert_eq!(r.header("connection"), Some("close"));
        }
        assert_eq!(h.server.connections(), 2);
    }
}

mod upgrade {
    use super::*;

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
    fn refusals_before_any_websocket() {
        let mut h = Harness::default();
        let good = h.token("alice", 60);
        let expired = h.token_with(json!({"sub": "alice", "exp": h.now / 1000 - 31}));
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
    fn not_an_upgrade_or_wrong_version() {
        let mut h = Harness::default();
        let t = h.token("alice", 60);
        let (_, r) = h.request(&format!("GET /ws?token={t} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 400);
        let req =
            upgrade_request(&format!("/ws?token={t}"), "").replace("Version: 13", "Version: 8");
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
        let exp = h.now / 1000 - 29;
        let t = h.token_with(json!({"sub": "alice", "exp": exp}));
        assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 101);
        h.advance(1_000);
        assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 401);
    }

    #[test]
    fn rooms_claim_limits_rooms() {
        let mut h = Harness::default();
        let t = h.token_with(json!({"sub": "alice", "exp": h.now / 1000 + 60, "rooms": ["dev"]}));
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

    #[test]
    fn password_upgrade_is_off_by_default() {
        let mut h = Harness::default();
        let (_, r) = h.upgrade("/ws?username=alice&password=wonderland", "");
        assert_eq!(r.status, 401);
        let (_, r) = h.upgrade("/ws", "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n");
        assert_eq!(r.status, 401);
    }
}

mod session {
    use super::*;

    const ORIGIN: &str = "Origin: http://127.0.0.1:8080\r\n";

    #[test]
    fn login_cookie_upgrade_and_fresh_ids() {
        let mut h = Harness::default();
        let (_, r) = h.request(&form_post("/login", "username=alice&password=wonderland"));
        assert!(r.header("set-cookie").unwrap().ends_with("Max-Age=28800"));
        let a = login(&mut h, "alice", "wonderland");
        let b = login(&mut h, "alice", "wonderland");
        assert_ne!(a, b);
        let (id, r) = h.upgrade("/ws", &format!("Cookie: {a}\r\n{ORIGIN}"));
        assert_eq!(r.status, 101);
        h.say(id, "hello");
        assert_eq!(
            h.texts(id),
            vec!["System: alice joined the chat", "alice: hello"]
        );
    }

    #[test]
    fn cookie_needs_an_allowed_origin() {
        let mut h = Harness::new(|c| {
            c.allowed_origins
                .push(crate::config::Origin::parse("https://app.example").unwrap())
        });
        let c = login(&mut h, "bob", "builder");
        for (origin, status) in [
            ("", 403),
            ("Origin: null\r\n", 403),
            ("Origin: https://evil.example\r\n", 403),
            ("Origin: http://127.0.0.1:8080.evil.example\r\n", 403),
            ("Origin: http://127.0.0.1:8081\r\n", 403),
            ("Origin: https://app.example\r\n", 101),
            (ORIGIN, 101),
        ] {
            assert_eq!(
                h.upgrade("/ws", &format!("Cookie: {c}\r\n{origin}"))
                    .1
                    .status,
                status,
                "{origin}"
            );
        }
    }

    #[test]
    fn logout_closes_live_sockets_4403() {
        let mut h = Harness::default();
        let c = login(&mut h, "alice", "wonderland");
        let (ws, _) = h.upgrade("/ws", &format!("Cookie: {c}\r\n{ORIGIN}"));
        let bob = h.open("bob");
        h.texts(bob);
        let (_, r) = h.request(&format!(
            "POST /logout HTTP/1.1\r\nHost: x\r\nCookie: {c}\r\n\r\n"
        ));
        assert_eq!(r.status, 204);
        assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
        assert_eq!(h.close_frame(ws), Some((4403, "logged out".into())));
        assert_eq!(h.texts(bob), vec!["System: alice has left the chat"]);
        // The cookie is dead now.
        assert_eq!(
            h.upgrade("/ws", &format!("Cookie: {c}\r\n{ORIGIN}"))
                .1
                .status,
            401
        );
        // Logout without a session is still a 204.
        assert_eq!(
            h.request("POST /logout HTTP/1.1\r\nHost: x\r\n\r\n")
                .1
                .status,
            204
        );
    }

    #[test]
    fn expired_session_closes_sockets_4401() {
        let mut h = Harness::new(|c| c.session_ttl = std::time::Duration::from_secs(120));
        let c = login(&mut h, "alice", "wonderland");
        let (ws, _) = h.upgrade("/ws", &format!("Cookie: {c}\r\n{ORIGIN}"));
        h.advance(119_999);
        assert_eq!(h.close_frame(ws), None);
        h.advance(1);
        assert_eq!(h.close_frame(ws), Some((4401, "session expired".into())));
    }
}

mod chat {
    use super::*;

    #[test]
    fn three_users_see_every_line_in_order() {
        let mut h = Harness::default();
        let a = h.open("alice");
        let b = h.open("bob");
        let c = h.open("carol");
        assert_eq!(
            h.texts(a),
            vec![
                "System: alice joined the chat",
                "System: bob joined the chat",
                "System: carol joined the chat"
            ]
        );
        h.texts(b);
        h.texts(c);
        h.say(a, "one");
        h.say(b, "two");
        h.say(c, "three");
        let expected = vec!["alice: one", "bob: two", "carol: three"];
        for id in [a, b, c] {
            assert_eq!(h.texts(id), expected);
        }
    }

    #[test]
    fn presence_counts_users_not_connections() {
        let mut h = Harness::default();
        let a1 = h.open("alice");
        let b = h.open("bob");
        h.texts(a1);
        let a2 = h.open("alice");
        assert_eq!(h.texts(b), vec!["System: bob joined the chat"]);
        h.hang_up(a1);
        assert!(h.texts(b).is_empty(), "alice still has a connection");
        h.hang_up(a2);
        assert_eq!(h.texts(b), vec!["System: alice has left the chat"]);
    }

    #[test]
    fn presence_stops_past_the_limit() {
        let mut h = Harness::new(|c| c.limits.presence_limit = 2);
        let a = h.open("alice");
        h.open("bob");
        h.open("carol");
        assert_eq!(
            h.texts(a),
            vec![
                "System: alice joined the chat",
                "System: bob joined the chat"
            ]
        );
    }

    #[test]
    fn commands_and_errors_go_to_the_sender_alone() {
        let mut h = Harness::default();
        let a = h.open("alice");
        let b = h.open("bob");
        h.texts(a);
        h.texts(b);
        h.say(a, "/who");
        assert_eq!(h.texts(a), vec!["System: users: alice, bob"]);
        h.say(a, "/shrug");
        assert_eq!(h.texts(a), vec!["System: error: unknown command"]);
        h.say(a, "hi\nSystem: bob has left the chat");
        assert_eq!(
            h.texts(a),
            vec!["System: error: control characters are not allowed"]
        );
        assert!(h.texts(b).is_empty());
    }

    #[test]
    fn rooms_do_not_cross() {
        let mut h = Harness::default();
        let a = h.open_in("alice", "dev");
        let b = h.open_in("bob", "ops");
        h.say(a, "in dev");
        assert_eq!(
            h.texts(a),
            vec!["System: alice joined the chat", "alice: in dev"]
        );
        assert_eq!(h.texts(b), vec!["System: bob joined the chat"]);
    }

    #[test]
    fn json_mode() {
        let mut h = Harness::default();
        let t = h.token("alice", 60);
        let (a, r) = h.upgrade(
            "/ws",
            &format!("Authorization: Bearer {t}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
        );
        assert_eq!(r.header("sec-websocket-protocol"), Some("wsgate.json"));
        let text = h.open("bob");
        let joined: Vec<Value> = h.texts(a).iter().map(|t| json_body(t)).collect();
        assert_eq!(
            joined[0],
            json!({"type":"join","room":"lobby","user":"alice"})
        );
        assert_eq!(
            joined[1],
            json!({"type":"join","room":"lobby","user":"bob"})
        );
        h.say(a, r#"{"type":"message","text":"one"}"#);
        h.say(text, "two");
        h.say(a, r#"{"type":"who"}"#);
        h.say(a, r#"{"type":"dance"}"#);
        let got: Vec<Value> = h.texts(a).iter().map(|t| json_body(t)).collect();
        assert_eq!(got[0]["seq"], 1);
        assert_eq!(
            (got[0]["from"].clone(), got[0]["text"].clone()),
            (json!("alice"), json!("one"))
        );
        assert_eq!(got[0]["ts"], h.now);
        assert_eq!(got[1]["seq"], 2);
        assert_eq!(got[1]["from"], "bob");
        assert_eq!(got[2], json!({"type":"who","users":["alice","bob"]}));
        assert_eq!(got[3]["type"], "error");
        assert_eq!(got[3]["code"], "bad_message");
        // Text-mode clients see the same messages as text.
        assert!(
            h.texts(text)
                .ends_with(&["alice: one".to_string(), "bob: two".to_string()])
        );
    }
}

mod frames {
    use super::*;

    fn closed_with(h: &mut Harness, id: crate::core::ConnId) -> u16 {
        h.close_frame(id).expect("a close frame").0
    }

    #[test]
    fn binary_is_refused_1003() {
        let mut h = Harness::default();
        let a = h.open("alice");
        h.ws_send(a, Message::binary(vec![1, 2, 3]));
        assert_eq!(closed_with(&mut h, a), 1003);
    }

    #[test]
    fn too_big_1009_before_buffering_it() {
        let mut h = Harness::default();
        let a = h.open("alice");
        // Only the header of a 1 GiB frame: refused at once.
        h.send(a, &[0x81, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(closed_with(&mut h, a), 1009);
        let b = h.open("bob");
        h.say(b, &"x".repeat(64 * 1024 + 1));
        assert_eq!(closed_with(&mut h, b), 1009);
        let c = h.open("carol");
        h.say(c, &"x".repeat(64 * 1024));
        assert!(h.texts(c).iter().any(|t| t.len() == 64 * 1024 + 7));
    }

    #[test]
    fn protocol_violations() {
        let cases: [(&str, &[u8], u16); 5] = [
            ("unmasked", &[0x81, 0x02, b'h', b'i'], 1002),
            ("reserved bits", &[0xC1, 0x80, 0, 0, 0, 0], 1002),
            ("reserved opcode", &[0x83, 0x80, 0, 0, 0, 0], 1002),
            ("continuation first", &[0x80, 0x80, 0, 0, 0, 0], 1002),
            ("bad utf-8", &[0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28], 1007),
        ];
        for (name, bytes, code) in cases {
            let mut h = Harness::default();
            let a = h.open("alice");
            h.send(a, bytes);
            assert_eq!(closed_with(&mut h, a), code, "{name}");
            assert_eq!(h.server.websockets(), 0, "{name}");
        }
    }

    #[test]
    fn ping_is_answered_in_order() {
        let mut h = Harness::default();
        let a = h.open("alice");
        h.texts(a);
        h.ws_send(a, Message::Ping(vec![7].into()));
        let got = h.messages(a);
        assert_eq!(got, vec![Message::Pong(vec![7].into())]);
    }

    #[test]
    fn client_close_is_answered_and_the_socket_released() {
        let mut h = Harness::default();
        let a = h.open("alice");
        let b = h.open("bob");
        h.texts(b);
        h.ws_send(a, Message::Close(None));
        assert!(h.messages(a).iter().any(|m| matches!(m, Message::Close(_))));
        assert!(h.peer(a).shut);
        assert_eq!(h.texts(b), vec!["System: alice has left the chat"]);
        h.hang_up(a);
        assert_eq!(h.server.connections(), 1);
    }
}

mod limits {
    use super::*;

    #[test]
    fn slow_consumer_is_closed_1013_and_nobody_else_loses_a_line() {
        let mut h = Harness::new(|c| c.limits.max_queue_bytes = 16 * 1024);
        let slow = h.open("slow");
        let fast = h.open("fast");
        let talker = h.open("talker");
        h.texts(fast);
        h.stall(slow, true);
        let line = "y".repeat(1000);
        for _ in 0..40 {
            h.say(talker, &line);
        }
        // Over the limit, but not yet judged: the clock runs.
        assert!(h.server.is_websocket(slow));
        h.advance(4_999);
        assert!(h.server.is_websocket(slow));
        h.advance(1);
        assert!(!h.server.is_websocket(slow), "closed once 5 s passed");
        // Its unsent messages went with it.
        assert!(h.server.queued(slow) < 200, "{}", h.server.queued(slow));
        let got = h.texts(fast);
        let lines = got
            .iter()
            .filter(|t| **t == format!("talker: {line}"))
            .count();
        assert_eq!(lines, 40, "every line reached the reading client");
        let left: Vec<_> = got.iter().filter(|t| !t.starts_with("talker: ")).collect();
        assert_eq!(left, vec!["System: slow has left the chat"]);
        // The slow one gets the close frame once it reads.
        h.stall(slow, false);
        let msgs = h.messages(slow);
        assert!(matches!(msgs.last(), Some(Message::Close(Some(f))) if u16::from(f.code) == 1013));
    }

    #[test]
    fn a_stalled_slow_consumer_is_dropped_after_the_close_timeout() {
        let mut h = Harness::new(|c| c.limits.max_queue_bytes = 4 * 1024);
        let slow = h.open("slow");
        let talker = h.open("talker");
        h.stall(slow, true);
        for _ in 0..10 {
            h.say(talker, &"z".repeat(1000));
        }
        assert!(!h.peer(slow).dropped);
        // 5 s to the slow-consumer verdict, 5 s more for the close frame.
        h.advance(5_000);
        assert!(!h.server.is_websocket(slow));
        assert!(!h.peer(slow).dropped);
        h.advance(5_000);
        assert!(h.peer(slow).dropped);
        assert_eq!(h.server.connections(), 1);
    }

    #[test]
    fn input_while_a_password_is_checked_is_held_and_bounded() {
        let mut h = Harness::default();
        let id = h.connect();
        // Two pipelined requests: the second waits for the first's check.
        let mut bytes = form_post("/token", "username=alice&password=wonderland").into_bytes();
        bytes.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        h.send(id, &bytes);
        assert_eq!(h.response(id).unwrap().status, 200);
        assert_eq!(h.response(id).unwrap().status, 200);
    }

    #[test]
    fn a_stuck_password_check_is_answered_503() {
        let mut h = Harness::default();
        h.hold_passwords = true;
        let id = h.connect();
        h.send(
            id,
            form_post("/token", "username=alice&password=wonderland").as_bytes(),
        );
        h.advance(29_999);
        assert!(h.response(id).is_none());
        h.advance(1);
        let r = h.response(id).unwrap();
        assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
        // A late answer finds nobody waiting.
        let job = h.held.pop().unwrap();
        h.server.handle_password_checked(job.job, None, h.now);
        h.pump();
        assert!(h.response(id).is_none());
    }

    #[test]
    fn pipelined_requests_beyond_one_read_are_all_answered() {
        let mut h = Harness::default();
        let id = h.connect();
        let one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        h.send(id, one.repeat(1000).as_bytes());
        for _ in 0..1000 {
            assert_eq!(h.response(id).expect("every request answered").status, 200);
        }
    }

    #[test]
    fn the_timer_heap_stays_small_under_keep_alive() {
        let mut h = Harness::default();
        let id = h.connect();
        for _ in 0..500 {
            h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(h.response(id).unwrap().status, 200);
        }
        assert!(
            h.server.timer_entries() <= 2,
            "{}",
            h.server.timer_entries()
        );
        h.advance(10_000);
        assert!(h.peer(id).dropped, "the idle timeout still fires");
    }

    #[test]
    fn every_slot_is_given_back() {
        let mut h = Harness::default();
        let ids: Vec<_> = (0..5).map(|i| h.open(&format!("u{i}"))).collect();
        let half = h.connect();
        h.send(half, b"GET /ws HT");
        for id in ids {
            h.hang_up(id);
        }
        h.advance(10_000);
        assert_eq!(h.server.connections(), 0);
        assert_eq!(h.server.rooms(), 0);
    }
}

mod lifecycle {
    use super::*;
    use crate::config::{PerUserPolicy, Rate};
    use crate::core::{Authenticate, Identity, Verdict};

    fn viewer_token(h: &Harness) -> String {
        h.jwt.issue("vic", "viewer", h.now, 600)
    }

    #[test]
    fn viewers_may_not_send() {
        let mut h = Harness::default();
        let bob = h.open("bob");
        let t = viewer_token(&h);
        let (vic, _) = h.upgrade(&format!("/ws?token={t}"), "");
        h.texts(bob);
        h.texts(vic);
        h.say(vic, "hello");
        assert_eq!(h.texts(vic), vec!["System: error: not allowed to send"]);
        assert!(h.texts(bob).is_empty());
        h.say(vic, "/who");
        assert_eq!(h.texts(vic), vec!["System: users: bob, vic"]);
    }

    #[test]
    fn send_roles_are_configurable() {
        let mut h = Harness::new(|c| c.send_roles = Some(vec!["viewer".into()]));
        let t = viewer_token(&h);
        let (vic, _) = h.upgrade(&format!("/ws?token={t}"), "");
        let alice = h.open("alice");
        h.texts(vic);
        h.say(alice, "hi");
        assert_eq!(
            h.texts(alice).last().unwrap(),
            "System: error: not allowed to send"
        );
        h.say(vic, "hi");
        assert_eq!(h.texts(alice), vec!["vic: hi"]);
    }

    #[test]
    fn token_connections_are_warned_then_closed_4401() {
        let mut h = Harness::default();
        let a = h.open("bob");
        let t = h.token("alice", 120);
        let (id, _) = h.upgrade(&format!("/ws?token={t}"), "");
        h.texts(id);
        h.advance(89_000);
        assert!(h.texts(id).is_empty());
        h.advance(1_000);
        assert_eq!(
            h.texts(id),
            vec!["System: token expires in 30s, send /refresh TOKEN"]
        );
        // exp + 30 s leeway.
        h.advance(59_999);
        assert_eq!(h.close_frame(id), None);
        h.advance(1);
        assert_eq!(h.close_frame(id), Some((4401, "token expired".into())));
        assert_eq!(
            h.texts(a).last().unwrap(),
            "System: alice has left the chat"
        );
    }

    #[test]
    fn refresh_moves_the_deadline_and_only_for_the_same_user() {
        let mut h = Harness::default();
        let t = h.token("alice", 60);
        let (id, _) = h.upgrade(&format!("/ws?token={t}"), "");
        h.texts(id);
        let other = h.token("bob", 3600);
        h.say(id, &format!("/refresh {other}"));
        assert_eq!(
            h.texts(id),
            vec!["System: error: token is for another user"]
        );
        h.say(id, "/refresh not.a.token");
        assert_eq!(h.texts(id), vec!["System: error: invalid token"]);
        let fresh = h.token("alice", 3600);
        h.say(id, &format!("/refresh {fresh}"));
        assert_eq!(h.texts(id), vec!["System: token refreshed"]);
        h.advance(600_000);
        assert_eq!(h.close_frame(id), None, "still open after the old exp");
        h.say(id, "still here");
        assert_eq!(h.texts(id), vec!["alice: still here"]);
    }

    #[test]
    fn a_failed_refresh_changes_nothing() {
        let mut h = Harness::default();
        let t = h.token("alice", 60);
        let (id, _) = h.upgrade(&format!("/ws?token={t}"), "");
        let other = h.token("bob", 3600);
        h.say(id, &format!("/refresh {other}"));
        h.advance(90_000);
        assert_eq!(h.close_frame(id), Some((4401, "token expired".into())));
    }

    #[test]
    fn json_mode_expiry_and_refresh() {
        let mut h = Harness::default();
        let t = h.token("alice", 40);
        let (id, _) = h.upgrade(
            &format!("/ws?token={t}"),
            "Sec-WebSocket-Protocol: wsgate.json\r\n",
        );
        h.texts(id);
        h.advance(10_000);
        let got: Vec<Value> = h.texts(id).iter().map(|t| json_body(t)).collect();
        assert_eq!(got, vec![json!({"type":"expiring","in":30})]);
        let fresh = h.token("alice", 600);
        h.say(id, &json!({"type":"refresh","token":fresh}).to_string());
        let got = json_body(&h.texts(id)[0]);
        assert_eq!(got, json!({"type":"refreshed","exp":h.now / 1000 + 600}));
    }

    #[test]
    fn silent_connections_are_closed_1001_and_answering_ones_live() {
        let mut h = Harness::default();
        let lively = h.open("alice");
        let silent = h.open("bob");
        h.stall(silent, true);
        h.advance(59_999);
        h.stall(silent, false);
        assert_eq!(h.close_frame(silent), None);
        h.stall(silent, true);
        h.advance(60_000);
        h.stall(silent, false);
        assert_eq!(h.close_frame(silent), Some((1001, "ping timeout".into())));
        h.advance(600_000);
        assert_eq!(h.close_frame(lively), None, "pongs keep it alive");
        assert!(h.server.is_websocket(lively));
    }

    #[test]
    fn per_user_limit_rejects_the_newest() {
        let mut h = Harness::new(|c| c.limits.max_conns_per_user = 2);
        h.open("alice");
        h.open("alice");
        let t = h.token("alice", 60);
        let (_, r) = h.upgrade(&format!("/ws?token={t}"), "");
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
        h.open("bob");
    }

    #[test]
    fn per_user_limit_can_evict_the_oldest_4409() {
        let mut h = Harness::new(|c| {
            c.limits.max_conns_per_user = 2;
            c.per_user_policy = PerUserPolicy::EvictOldest;
        });
        let first = h.open("alice");
        let second = h.open("alice");
        let third = h.open("alice");
        assert_eq!(
            h.close_frame(first),
            Some((4409, "replaced by a newer connection".into()))
        );
        assert_eq!(h.close_frame(second), None);
        h.say(third, "hi");
        assert_eq!(h.texts(second).last().unwrap(), "alice: hi");
    }

    #[test]
    fn upgrades_per_ip_are_limited_429() {
        let mut h = Harness::new(|c| {
            c.limits.upgrade_rate = Some(Rate {
                per_sec: 1.0,
                burst: 2.0,
            });
        });
        h.open("alice");
        h.open("bob");
        let t = h.token("carol", 60);
        let (_, r) = h.upgrade(&format!("/ws?token={t}"), "");
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
        h.advance(1_000);
        assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 101);
    }

    #[test]
    fn failed_logins_per_ip_are_limited_429() {
        let mut h = Harness::new(|c| {
            c.limits.failed_login_rate = Some(Rate {
                per_sec: 1.0 / 60.0,
                burst: 2.0,
            });
        });
        for _ in 0..2 {
            assert_eq!(
                h.request(&form_post("/token", "username=alice&password=nope"))
                    .1
                    .status,
                401
            );
        }
        let (_, r) = h.request(&form_post("/token", "username=alice&password=wonderland"));
        assert_eq!((r.status, r.header("retry-after")), (429, Some("60")));
        h.advance(60_000);
        assert_eq!(
            h.request(&form_post("/token", "username=alice&password=wonderland"))
                .1
                .status,
            200
        );
    }

    #[test]
    fn message_rate_errors_then_closes_4429() {
        let mut h = Harness::new(|c| {
            c.limits.message_rate = Some(Rate {
                per_sec: 1.0,
                burst: 2.0,
            })
        });
        let a = h.open("alice");
        let b = h.open("bob");
        h.texts(a);
        h.texts(b);
        h.say(a, "1");
        h.say(a, "2");
        h.say(a, "3");
        assert_eq!(
            h.texts(a),
            vec!["alice: 1", "alice: 2", "System: error: rate limit exceeded"]
        );
        assert_eq!(h.texts(b), vec!["alice: 1", "alice: 2"]);
        for _ in 0..9 {
            h.say(a, "flood");
        }
        assert_eq!(
            h.close_frame(a),
            Some((4429, "message rate exceeded".into()))
        );
        assert!(h.texts(b).iter().all(|t| !t.contains("flood")));
    }

    #[test]
    fn tickets_are_single_use_and_short_lived() {
        let mut h = Harness::default();
        let t = h.token("alice", 600);
        let ticket_of = |h: &mut Harness| {
            let (_, r) = h.request(&format!(
                "POST /ws-ticket HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n"
            ));
            assert_eq!(r.status, 200, "{}", r.body);
            let body = json_body(&r.body);
            assert_eq!(body["expires_in"], 30);
            body["ticket"].as_str().unwrap().to_string()
        };
        let ticket = ticket_of(&mut h);
        let (id, r) = h.upgrade(&format!("/ws?ticket={ticket}"), "");
        assert_eq!(r.status, 101);
        h.say(id, "via ticket");
        assert_eq!(h.texts(id).last().unwrap(), "alice: via ticket");
        assert_eq!(
            h.upgrade(&format!("/ws?ticket={ticket}"), "").1.status,
            401,
            "single use"
        );
        let late = ticket_of(&mut h);
        h.advance(30_000);
        assert_eq!(
            h.upgrade(&format!("/ws?ticket={late}"), "").1.status,
            401,
            "expired"
        );
        let (_, r) = h.request("POST /ws-ticket HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }

    #[test]
    fn session_tickets_need_the_origin_and_die_with_the_session() {
        let mut h = Harness::default();
        let cookie = login(&mut h, "alice", "wonderland");
        let (_, r) = h.request(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nOrigin: https://evil.example\r\n\r\n"
        ));
        assert_eq!(r.status, 403);
        // Without an Origin it is no browser: allowed (PROTOCOL §1).
        let (_, r) = h.request(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\n\r\n"
        ));
        assert_eq!(r.status, 200);
        let (_, r) = h.request(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\nOrigin: http://127.0.0.1:8080\r\n\r\n"
        ));
        assert_eq!(r.status, 200);
        let ticket = json_body(&r.body)["ticket"].as_str().unwrap().to_string();
        let (ws, r) = h.upgrade(&format!("/ws?ticket={ticket}"), "");
        assert_eq!(r.status, 101);
        h.request(&format!(
            "POST /logout HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
        ));
        assert_eq!(h.close_frame(ws), Some((4403, "logged out".into())));
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

    #[test]
    fn shutdown_delivers_the_queue_then_1001() {
        let mut h = Harness::default();
        let a = h.open("alice");
        let b = h.open("bob");
        h.texts(a);
        h.stall(b, true);
        h.say(a, "last words");
        h.server.handle_shutdown(h.now);
        h.pump();
        h.stall(b, false);
        let msgs = h.messages(b);
        let texts: Vec<_> = msgs
            .iter()
            .filter_map(|m| m.to_text().ok())
            .filter(|t| !t.is_empty())
            .collect();
        assert!(texts.contains(&"alice: last words"), "{texts:?}");
        assert!(
            matches!(msgs.last(), Some(Message::Close(Some(f))) if u16::from(f.code) == 1001 && f.reason == "server shutting down")
        );
        assert_eq!(
            h.close_frame(a),
            Some((1001, "server shutting down".into()))
        );
        assert_eq!(h.try_connect(), None, "no new connections while draining");
        h.advance(5_000);
        assert_eq!(h.server.connections(), 0);
    }

    #[test]
    fn metrics_count_what_happened() {
        let mut h = Harness::default();
        h.open("alice");
        h.upgrade("/ws?token=bad", "");
        let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 200);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        assert!(r.body.contains("\nwsgate_websockets 1\n"), "{}", r.body);
        assert!(r.body.contains("wsgate_upgrades_total 1\n"));
        assert!(
            r.body
                .contains("wsgate_refusals_total{status=\"401\",reason=\"invalid token\"} 1\n")
        );
        assert!(!r.body.contains("alice"));
    }

    struct ApiKeys;

    impl Authenticate for ApiKeys {
        fn authenticate(
            &self,
            request: &crate::http::Request,
            _peer: std::net::SocketAddr,
        ) -> Verdict {
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
}

/// Regressions from the adversarial review.
mod review {
    use super::*;
    use crate::core::AddrKey;
    use std::net::IpAddr;

    #[test]
    fn pipelining_without_reading_is_bounded() {
        let mut h = Harness::default();
        let id = h.connect();
        h.stall(id, true);
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
        h.send(id, &req);
        let queued = h.server.queued(id);
        let cap = h.server.config().limits.max_http_queue_bytes;
        assert!(cap <= 256 * 1024);
        assert!(queued < cap + 8192, "answers stop at their cap: {queued}");
        // Keep sending without reading: the input stays unread (in the
        // kernel), nothing more is answered or buffered.
        for _ in 0..20 {
            h.send(id, &req);
        }
        assert_eq!(h.server.queued(id), queued);
        assert!(h.server.paused_inputs() == 1);
        // Never read: the keep-alive deadline ends it.
        h.advance(10_000);
        assert!(h.peer(id).dropped);
    }

    #[test]
    fn sixty_non_readers_pipelining_metrics_pin_little_memory() {
        let mut h = Harness::default();
        let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
        for _ in 0..60 {
            let id = h.connect();
            h.stall(id, true);
            h.send(id, &req);
        }
        let total = h.server.queued_total();
        // Was 64 MiB (60 x the 1 MiB WebSocket cap).
        assert!(total < 60 * (64 * 1024 + 8192), "{total}");
    }

    #[test]
    fn pipelined_answers_resume_as_the_peer_reads() {
        let mut h = Harness::new(|c| c.limits.max_queue_bytes = 4 * 1024);
        let id = h.connect();
        h.stall(id, true);
        h.send(id, &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200));
        h.stall(id, false);
        for _ in 0..200 {
            assert_eq!(h.response(id).expect("all 200 answered").status, 200);
        }
    }

    #[test]
    fn a_ping_flood_from_a_non_reader_is_closed_1013() {
        let mut h = Harness::new(|c| c.limits.max_queue_bytes = 8 * 1024);
        let a = h.open("alice");
        let b = h.open("bob");
        h.stall(a, true);
        for _ in 0..200 {
            h.ws_send(a, Message::Ping(vec![0; 125].into()));
        }
        // Its input waits while its own queue is over the limit: the pongs
        // stop there (plus one read's worth).
        assert!(h.server.queued(a) < 8 * 1024 + 16 * 1024 + 256);
        assert!(h.server.is_websocket(a));
        h.say(b, "still here");
        assert_eq!(h.texts(b).last().unwrap(), "bob: still here");
        assert_eq!(h.server.paused_inputs(), 1, "its input waits");
        h.advance(5_000);
        assert!(!h.server.is_websocket(a));
        // Closing, it is read again (and its input discarded), so that its
        // end of stream is seen.
        assert_eq!(h.server.paused_inputs(), 0);
        h.server.check_consistency().unwrap();
        h.stall(a, false);
        assert_eq!(h.close_frame(a).map(|f| f.0), Some(1013));
    }

    #[test]
    fn abandoned_password_checks_still_count() {
        let mut h = Harness::default();
        h.hold_passwords = true;
        for _ in 0..4 {
            let id = h.connect();
            h.send(
                id,
                form_post("/token", "username=alice&password=guess").as_bytes(),
            );
            h.hang_up(id);
        }
        let (_, r) = h.request(&form_post("/token", "username=alice&password=guess"));
        assert_eq!(
            (r.status, json_body(&r.body)["detail"].clone()),
            (429, json!("too many logins in progress"))
        );
        // Answered late, the failures still count against the address.
        for job in std::mem::take(&mut h.held) {
            h.server.handle_password_checked(job.job, None, h.now);
        }
        h.hold_passwords = false;
        assert_eq!(
            h.request(&form_post("/token", "username=alice&password=wonderland"))
                .1
                .status,
            200
        );
    }

    #[test]
    fn parallel_guesses_are_charged_when_they_start() {
        let mut h = Harness::new(|c| {
            c.limits.failed_login_rate = Some(crate::config::Rate {
                per_sec: 1.0 / 60.0,
                burst: 3.0,
            });
        });
        h.hold_passwords = true;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let id = h.connect();
            h.send(
                id,
                form_post("/token", "username=alice&password=guess").as_bytes(),
            );
            statuses.push(h.response(id).map(|r| r.status));
        }
        assert_eq!(statuses, vec![None, None, None, Some(429)]);
    }

    #[test]
    fn a_session_ticket_dies_with_the_session() {
        let mut h = Harness::default();
        let cookie = login(&mut h, "alice", "wonderland");
        let (_, r) = h.request(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\nOrigin: http://127.0.0.1:8080\r\n\r\n"
        ));
        let ticket = json_body(&r.body)["ticket"].as_str().unwrap().to_string();
        h.request(&format!(
            "POST /logout HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n"
        ));
        let (_, r) = h.upgrade(&format!("/ws?ticket={ticket}"), "");
        assert_eq!(
            (r.status, json_body(&r.body)["detail"].clone()),
            (401, json!("unknown or expired ticket"))
        );
    }

    #[test]
    fn a_token_ticket_dies_with_the_token() {
        let mut h = Harness::new(|c| c.token_leeway = std::time::Duration::ZERO);
        let ticket_for = |h: &mut Harness, ttl: u64| {
            let t = h.token("alice", ttl);
            let (_, r) = h.request(&format!(
                "POST /ws-ticket HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n"
            ));
            json_body(&r.body)["ticket"].as_str().unwrap().to_string()
        };
        let short = ticket_for(&mut h, 5);
        let long = ticket_for(&mut h, 600);
        h.jump(6_000);
        assert_eq!(
            h.upgrade(&format!("/ws?ticket={short}"), "").1.status,
            401,
            "its token expired"
        );
        assert_eq!(h.upgrade(&format!("/ws?ticket={long}"), "").1.status, 101);
    }

    #[test]
    fn tickets_per_user_are_capped() {
        let mut h = Harness::default();
        let t = h.token("alice", 600);
        let req =
            format!("POST /ws-ticket HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n");
        for _ in 0..32 {
            assert_eq!(h.request(&req).1.status, 200);
        }
        let (_, r) = h.request(&req);
        assert_eq!((r.status, r.header("retry-after")), (429, Some("30")));
        h.advance(30_000);
        assert_eq!(
            h.request(&req).1.status,
            200,
            "expired tickets free their slots"
        );
    }

    #[test]
    fn a_half_closed_request_is_still_answered() {
        let mut h = Harness::default();
        let id = h.connect();
        h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        h.half_close(id);
        assert_eq!(h.response(id).unwrap().status, 200);
        assert!(h.peer(id).dropped);
        let id = h.connect();
        h.send(
            id,
            form_post("/token", "username=alice&password=wonderland").as_bytes(),
        );
        h.half_close(id);
        assert_eq!(h.response(id).unwrap().status, 200);
        assert!(h.peer(id).dropped);
        assert_eq!(h.server.connections(), 0);
    }

    #[test]
    fn a_half_closed_websocket_is_gone() {
        let mut h = Harness::default();
        let a = h.open("alice");
        let b = h.open("bob");
        h.texts(b);
        h.half_close(a);
        assert!(h.peer(a).dropped);
        assert_eq!(h.texts(b), vec!["System: alice has left the chat"]);
    }

    #[test]
    fn no_password_upgrade_opens_during_shutdown() {
        let mut h = Harness::new(|c| c.allow_password_auth = true);
        h.hold_passwords = true;
        let id = h.connect();
        h.send(
            id,
            crate::testkit::upgrade_request("/ws?username=alice&password=wonderland", "")
                .as_bytes(),
        );
        h.server.handle_shutdown(h.now);
        h.hold_passwords = false;
        let job = h.held.pop().unwrap();
        let verified = crate::auth::users::Users::demo().check(&job.user, &job.password);
        h.server.handle_password_checked(job.job, verified, h.now);
        h.pump();
        assert_eq!(h.response(id).unwrap().status, 503);
        assert_eq!(h.server.websockets(), 0);
    }

    #[test]
    fn commands_are_rate_limited_too() {
        let mut h = Harness::new(|c| {
            c.limits.message_rate = Some(crate::config::Rate {
                per_sec: 1.0,
                burst: 2.0,
            })
        });
        let a = h.open("alice");
        h.texts(a);
        for _ in 0..3 {
            h.say(a, "/who");
        }
        assert_eq!(
            h.texts(a).last().unwrap(),
            "System: error: rate limit exceeded"
        );
    }

    #[test]
    fn connections_per_address_are_capped() {
        let mut h = Harness::new(|c| c.limits.max_conns_per_ip = Some(2));
        let ip: IpAddr = [10, 0, 0, 1].into();
        h.connect_from(ip).unwrap();
        h.connect_from(ip).unwrap();
        assert_eq!(h.connect_from(ip), None, "refused at accept");
        let r = h.refusal().unwrap();
        assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
        assert_eq!(h.server.connections(), 2, "the refused one holds no slot");
        assert!(h.connect_from([10, 0, 0, 2].into()).is_some());
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(AddrKey::of(v6a), AddrKey::of(v6b), "one /64");
        assert_ne!(
            AddrKey::of(v6a),
            AddrKey::of("2001:db8:1:3::1".parse().unwrap())
        );
        assert_eq!(
            AddrKey::of("::ffff:10.0.0.1".parse().unwrap()),
            AddrKey::of(ip)
        );
    }

    #[test]
    fn the_peers_close_code_is_counted() {
        let mut h = Harness::default();
        let a = h.open("alice");
        h.ws_send(
            a,
            Message::Close(Some(tungstenite::protocol::CloseFrame {
                code: 4000.into(),
                reason: "bye".into(),
            })),
        );
        let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            r.body
                .contains("wsgate_closes_total{by=\"peer\",code=\"4xxx\"} 1"),
            "{}",
            r.body
        );
    }

    #[test]
    fn names_with_invisible_characters_are_refused() {
        let mut h = Harness::default();
        let t = h.token_with(json!({"sub": "System\u{200B}", "exp": h.now / 1000 + 60}));
        assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 401);
    }
}
