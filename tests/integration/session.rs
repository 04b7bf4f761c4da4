//! Login sessions (PROTOCOL §1, §2 carrier 5, §6): the cookie, the
//! `Origin` check that guards cookie upgrades, and logout closing `4403`.

use crate::common::{TestServer, WsRequest, form_request, recv_close, recv_text, send, session_id};

/// Cookie-carrying upgrade request from `origin` (none when empty).
fn cookie_request(server: &TestServer, sid: &str, origin: &str) -> WsRequest {
    let r = WsRequest::new(server, "/ws").header("Cookie", &format!("__Host-wsgate={sid}"));
    if origin.is_empty() {
        r
    } else {
        r.header("Origin", origin)
    }
}

#[test]
fn login_sets_a_fresh_host_cookie_each_time() {
    let server = TestServer::start();
    let r = server.post_form("/login", "username=alice&password=wonderland");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert_eq!(r.header_count("set-cookie"), 1);
    let cookie = r.header("set-cookie").unwrap();
    let id = session_id(&r);
    assert_eq!(
        cookie,
        format!("__Host-wsgate={id}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"),
        "default session TTL is 8 h"
    );
    // At least 128 random bits, in a cookie-safe alphabet.
    assert!(id.len() >= 22, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{id}"
    );

    // A second login, even one presenting the first cookie, gets a new id.
    let again = server.exchange(&form_request(
        "/login",
        "username=alice&password=wonderland",
        &format!("Cookie: __Host-wsgate={id}\r\n"),
    ));
    assert_eq!(again.status, 204);
    let second = session_id(&again);
    assert_ne!(second, id);
    let third = server.login("bob", "builder");
    assert!(third != id && third != second);
}

#[test]
fn login_with_bad_credentials_is_401_without_cookie() {
    let server = TestServer::start();
    for body in [
        "username=alice&password=builder",
        "username=nobody&password=x",
    ] {
        let r = server.post_form("/login", body);
        assert_eq!(r.status, 401, "{body}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.detail(), "Incorrect username or password");
        assert!(r.header("set-cookie").is_none());
    }
}

#[test]
fn cookie_upgrade_from_the_same_origin_works() {
    let server = TestServer::start();
    let sid = server.login("alice", "wonderland");
    let cookie = format!("__Host-wsgate={sid}");
    let origin = server.origin();
    let (mut ws, _) = server.ws(
        "/ws?room=cookies",
        &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
    );
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    send(&mut ws, "by cookie");
    assert_eq!(recv_text(&mut ws), "alice: by cookie");
    // Other cookies around ours do not matter.
    let crowded = format!("theme=dark; {cookie}; lang=en");
    let (mut second, _) = server.ws(
        "/ws?room=cookies",
        &[("Cookie", crowded.as_str()), ("Origin", origin.as_str())],
    );
    send(&mut second, "second tab");
    assert_eq!(recv_text(&mut second), "alice: second tab");
}

#[test]
fn cookie_upgrades_from_other_origins_are_403() {
    let server = TestServer::start();
    let sid = server.login("alice", "wonderland");
    let port = server.addr.port();
    let origins = [
        "http://evil.example".to_string(),
        "null".to_string(),
        format!("http://127.0.0.1.evil.example:{port}"),
        format!("http://evil.example/{}", server.addr),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://user@127.0.0.1:{port}"),
        "http://127.0.0.1".to_string(),
    ];
    for origin in &origins {
        let r = cookie_request(&server, &sid, origin).refused(&server, 403, &sid);
        assert_eq!(r.detail(), "origin not allowed", "{origin}");
    }
    // No Origin at all.
    let r = cookie_request(&server, &sid, "").refused(&server, 403, &sid);
    assert_eq!(r.detail(), "origin not allowed");
    // Two Origin headers, one of them right.
    cookie_request(&server, &sid, &server.origin())
        .header("Origin", "http://evil.example")
        .refused(&server, 403, &sid);
}

#[test]
fn configured_extra_origins_are_allowed_exactly() {
    let server = TestServer::with(|c| {
        c.allowed_origins = vec![wsgate::config::Origin::parse("https://app.example.com").unwrap()];
    });
    let sid = server.login("bob", "builder");
    let cookie = format!("__Host-wsgate={sid}");
    let (mut ws, _) = server.ws(
        "/ws",
        &[
            ("Cookie", cookie.as_str()),
            ("Origin", "https://app.example.com"),
        ],
    );
    assert_eq!(recv_text(&mut ws), "System: bob joined the chat");
    for origin in [
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.example",
        "https://evil-app.example.com",
    ] {
        cookie_request(&server, &sid, origin).refused(&server, 403, &sid);
    }
}

#[test]
fn unknown_sessions_are_401() {
    let server = TestServer::start();
    let made_up = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let r = cookie_request(&server, made_up, &server.origin()).refused(&server, 401, made_up);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    // A real session id under another cookie name is no credential.
    let sid = server.login("alice", "wonderland");
    WsRequest::new(&server, "/ws")
        .header("Cookie", &format!("wsgate={sid}"))
        .header("Origin", &server.origin())
        .refused(&server, 401, &sid);
}

#[test]
fn two_session_cookies_are_400() {
    let server = TestServer::start();
    let sid = server.login("alice", "wonderland");
    cookie_request(&server, &sid, &server.origin())
        .header("Cookie", "__Host-wsgate=other")
        .refused(&server, 400, &sid);
}

#[test]
fn a_token_beside_a_cookie_decides_alone() {
    let server = TestServer::start();
    let sid = server.login("alice", "wonderland");
    let cookie = format!("__Host-wsgate={sid}");
    // Valid token + cookie from a foreign origin: judged by the token.
    let bearer = format!("Bearer {}", server.token("bob"));
    let (mut ws, _) = server.ws(
        "/ws",
        &[
            ("Cookie", cookie.as_str()),
            ("Origin", "http://evil.example"),
            ("Authorization", bearer.as_str()),
        ],
    );
    assert_eq!(recv_text(&mut ws), "System: bob joined the chat");
    // Bad token + a good cookie from the right origin: still the token's call.
    cookie_request(&server, &sid, &server.origin())
        .header("Authorization", "Bearer not.a.token")
        .refused(&server, 401, &sid);
}

#[test]
fn logout_closes_the_sessions_websockets_with_4403() {
    let server = TestServer::start();
    let sid = server.login("alice", "wonderland");
    let other_sid = server.login("alice", "wonderland");
    let origin = server.origin();
    let open = |sid: &str| {
        let cookie = format!("__Host-wsgate={sid}");
        server
            .ws(
                "/ws?room=logout",
                &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
            )
            .0
    };
    let mut first = open(&sid);
    assert_eq!(recv_text(&mut first), "System: alice joined the chat");
    let mut second = open(&sid);
    let mut kept = open(&other_sid);
    let mut bob = server.join("bob", "logout");
    for ws in [&mut first, &mut second, &mut kept] {
        assert_eq!(recv_text(ws), "System: bob joined the chat");
    }

    let r = server.exchange(&format!(
        "POST /logout HTTP/1.1\r\nHost: t\r\nCookie: __Host-wsgate={sid}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 204);
    let expired = r.header("set-cookie").expect("the cookie is expired");
    assert!(expired.starts_with("__Host-wsgate=;"), "{expired}");
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert!(!r.mentions(&sid));

    for ws in [&mut first, &mut second] {
        assert_eq!(recv_close(ws), (4403, "logged out".to_string()));
    }
    // The other session of the same user and bob stay, and alice is still
    // in the room (through `kept`), so no leave notice was sent.
    send(&mut kept, "still here");
    assert_eq!(recv_text(&mut kept), "alice: still here");
    assert_eq!(recv_text(&mut bob), "alice: still here");
    // The ended session opens nothing any more.
    cookie_request(&server, &sid, &server.origin()).refused(&server, 401, &sid);
}

#[test]
fn logout_without_a_session_is_204() {
    let server = TestServer::start();
    for extra in [
        "",
        "Cookie: __Host-wsgate=no-such-session\r\n",
        "Cookie: a=b\r\n",
    ] {
        let r = server.exchange(&format!(
            "POST /logout HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: 0\r\n\r\n"
        ));
        assert_eq!(r.status, 204, "{extra:?}");
        assert!(r.body.is_empty());
    }
}

#[test]
fn too_many_sessions_end_the_oldest_with_4401() {
    let server = TestServer::with(|c| c.limits.max_sessions_per_user = 2);
    let oldest = server.login("bob", "builder");
    let origin = server.origin();
    let cookie = format!("__Host-wsgate={oldest}");
    let (mut ws, _) = server.ws(
        "/ws",
        &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
    );
    assert_eq!(recv_text(&mut ws), "System: bob joined the chat");
    let _second = server.login("bob", "builder");
    let _third = server.login("bob", "builder");
    assert_eq!(recv_close(&mut ws).0, 4401);
    cookie_request(&server, &oldest, &origin).refused(&server, 401, &oldest);
}

#[test]
fn insecure_cookies_drop_secure_and_the_host_prefix() {
    let server = TestServer::with(|c| c.insecure_cookie = true);
    let r = server.post_form("/login", "username=alice&password=wonderland");
    assert_eq!(r.status, 204);
    let cookie = r.header("set-cookie").unwrap();
    let id = cookie
        .strip_prefix("wsgate=")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{cookie}"));
    assert_eq!(
        cookie,
        format!("wsgate={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800")
    );
    let origin = server.origin();
    let plain = format!("wsgate={id}");
    let (mut ws, _) = server.ws(
        "/ws",
        &[("Cookie", plain.as_str()), ("Origin", origin.as_str())],
    );
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    // The secure name is not this server's cookie.
    cookie_request(&server, id, &origin).refused(&server, 401, id);
}
