//! Logging in and what it yields: the `/token` endpoint and bad logins,
//! the password check that runs off the loop (input held behind it, a
//! stuck check answered `503`), the session cookie (fresh ids, the
//! allowed origins it needs), logout and session expiry closing live
//! sockets, and WebSocket tickets (single use, short lived, dying with
//! the session or token they came from). Login rates and the per-user
//! ticket cap are in `limits`.

use serde_json::json;

use super::{json_body, login};
use crate::testkit::{Harness, capture_logs, form_post, stop_capturing_logs, take_log_lines};

const ORIGIN: &str = "Origin: http://127.0.0.1:8080\r\n";

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
    let claims = h.jwt.verify(token, h.now.as_millis()).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.role.as_str()),
        ("alice", "member")
    );
    assert_eq!(claims.exp_ms, h.now.as_secs() * 1000 + 900_000);
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

/// A session lifetime too long to count in milliseconds is forever, not
/// whatever is left after the count wraps.
#[test]
fn an_enormous_session_lifetime_saturates() {
    let mut h = Harness::new(|c| {
        c.session_ttl = std::time::Duration::from_secs(u64::MAX / 1000 + 1);
        c.session_idle = std::time::Duration::MAX;
    });
    let (_, r) = h.request(&form_post("/login", "username=alice&password=wonderland"));
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(!cookie.ends_with("Max-Age=0"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();
    h.advance(60_000);
    let (_, up) = h.upgrade("/ws", &format!("Cookie: {pair}\r\n{ORIGIN}"));
    assert_eq!(up.status, 101);
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
fn an_origin_refusal_says_in_the_log_which_rule_and_what_came() {
    let mut h = Harness::default();
    let c = login(&mut h, "bob", "builder");
    let logging = capture_logs();
    let cases = [
        (
            "",
            "origin=- host=\"127.0.0.1:8080\" why=\"no Origin header\"",
        ),
        (
            "Origin: http://127.0.0.1:8080/\r\n",
            "origin=\"http://127.0.0.1:8080/\" host=\"127.0.0.1:8080\" why=\"not scheme://host[:port]",
        ),
        (
            "Origin: http://127.0.0.1\r\n",
            "origin=\"http://127.0.0.1\" host=\"127.0.0.1:8080\" why=\"not an --allowed-origin, \
             and not the same host and port as Host\"",
        ),
        (
            "Origin: http://localhost:8080\r\n",
            "origin=\"http://localhost:8080\" host=\"127.0.0.1:8080\" why=\"not an --allowed-origin",
        ),
    ];
    for (origin, logged) in cases {
        take_log_lines();
        let r = h.upgrade("/ws", &format!("Cookie: {c}\r\n{origin}")).1;
        assert_eq!(r.status, 403, "{origin}");
        assert!(
            r.body.contains("origin not allowed"),
            "the body stays a class"
        );
        assert!(!r.body.contains("why"), "{}", r.body);
        let lines = take_log_lines();
        if logging {
            let line = lines
                .iter()
                .find(|l| l.starts_with("origin refused "))
                .unwrap();
            assert!(line.contains(logged), "{line}\n wanted {logged}");
        }
    }
    // A login from a foreign page says the same.
    take_log_lines();
    let post = form_post("/login", "username=bob&password=builder")
        .replace("Host:", "Origin: http://evil.example\r\nHost:");
    assert_eq!(h.request(&post).1.status, 403);
    let lines = take_log_lines();
    stop_capturing_logs();
    if logging {
        assert!(
            lines.iter().any(|l| l.starts_with("origin refused ")
                && l.contains("origin=\"http://evil.example\"")),
            "{lines:?}"
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
