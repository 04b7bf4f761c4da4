//! `POST /ws-ticket` (PROTOCOL §1, §2 carrier 4): a single-use, 30-second
//! ticket, so that no long-lived credential sits in a URL.

use serde_json::json;

use crate::common::{HttpResponse, TestServer, WsRequest, mint, now_ms, recv_text};

fn ticket_request(server: &TestServer, headers: &str) -> HttpResponse {
    server.exchange(&format!(
        "POST /ws-ticket HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: 0\r\n\
         Connection: close\r\n\r\n",
        server.addr
    ))
}

/// The ticket out of a `200` answer, after checking its shape.
fn ticket_of(r: &HttpResponse) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["expires_in"], json!(30), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    let ticket = body["ticket"]
        .as_str()
        .expect("a string ticket")
        .to_string();
    assert!(ticket.len() >= 22, "at least 128 bits: {ticket}");
    ticket
}

#[test]
fn a_ticket_from_a_bearer_token_opens_one_websocket_once() {
    let server = TestServer::start();
    let token = server.token("alice");
    let r = ticket_request(&server, &format!("Authorization: Bearer {token}\r\n"));
    assert!(!r.mentions(&token));
    let ticket = ticket_of(&r);
    let (mut ws, _) = server.ws(&format!("/ws?room=t&ticket={ticket}"), &[]);
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    // Single use.
    let r = WsRequest::new(&server, &format!("/ws?room=t&ticket={ticket}"))
        .refused(&server, 401, &ticket);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    // Two tickets are two different values.
    let again = ticket_of(&ticket_request(
        &server,
        &format!("Authorization: Bearer {token}\r\n"),
    ));
    assert_ne!(again, ticket);
}

#[test]
fn a_ticket_from_a_session_needs_an_allowed_origin_or_none() {
    let server = TestServer::start();
    let sid = server.login("bob", "builder");
    let cookie = format!("Cookie: __Host-wsgate={sid}\r\n");
    let ticket = ticket_of(&ticket_request(
        &server,
        &format!("{cookie}Origin: {}\r\n", server.origin()),
    ));
    for origin in ["Origin: http://evil.example\r\n", "Origin: null\r\n"] {
        let r = ticket_request(&server, &format!("{cookie}{origin}"));
        assert_eq!(r.status, 403, "{origin:?}");
        assert!(!r.mentions(&sid));
    }
    // No Origin at all is no browser (PROTOCOL §1): a ticket.
    let r = ticket_request(&server, &cookie);
    assert_eq!(r.status, 200);
    let (mut ws, _) = server.ws(&format!("/ws?ticket={ticket}"), &[]);
    assert_eq!(recv_text(&mut ws), "System: bob joined the chat");
}

#[test]
fn tickets_need_a_valid_credential() {
    let server = TestServer::start();
    let expired = mint("alice", "member", now_ms() - 7_200_000, 60);
    for (what, headers, secret) in [
        ("nothing", String::new(), String::new()),
        (
            "expired token",
            format!("Authorization: Bearer {expired}\r\n"),
            expired.clone(),
        ),
        (
            "garbage token",
            "Authorization: Bearer nope\r\n".to_string(),
            String::new(),
        ),
        (
            "unknown session",
            format!(
                "Cookie: __Host-wsgate=no-such-session\r\nOrigin: {}\r\n",
                server.origin()
            ),
            String::new(),
        ),
    ] {
        let r = ticket_request(&server, &headers);
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{what}: {}",
            r.head
        );
        assert!(secret.is_empty() || !r.mentions(&secret), "{what}");
    }
    // A made-up ticket opens nothing.
    WsRequest::new(
        &server,
        "/ws?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .refused(&server, 401, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    // Wrong method.
    let r = server.exchange("GET /ws-ticket HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

/// `/ws-ticket` reads `Authorization` exactly as `/ws` does (one parser,
/// `http::upgrade::bearer_token`): the same status and reason for each
/// value, a valid token only when it stands alone after `Bearer `.
#[test]
fn ws_ticket_and_ws_read_a_bearer_header_alike() {
    let server = TestServer::start();
    let token = server.token("alice");
    let values: Vec<(Vec<u8>, u16, &str)> = vec![
        (format!("Bearer {token}").into_bytes(), 0, ""),
        (format!("bearer {token}").into_bytes(), 0, ""),
        (
            format!("Bearer {token} x").into_bytes(),
            401,
            "invalid token",
        ),
        (b"Bearer".to_vec(), 401, "invalid token"),
        (b"Bearer a\xffb".to_vec(), 401, "invalid token"),
        (
            format!("Token {token}").into_bytes(),
            401,
            "unsupported authorization scheme",
        ),
    ];
    for (value, status, reason) in values {
        let shown = String::from_utf8_lossy(&value).into_owned();
        let head = |line: &str| {
            let mut bytes = line.as_bytes().to_vec();
            bytes.extend_from_slice(b"Authorization: ");
            bytes.extend_from_slice(&value);
            bytes.extend_from_slice(b"\r\n");
            bytes
        };
        let mut ticket = server.http();
        let mut request = head(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n",
            server.addr
        ));
        request.extend_from_slice(b"\r\n");
        ticket.send(&request);
        let t = ticket.response();
        let upgrade = WsRequest::new(&server, "/ws").render();
        let (first, rest) = upgrade.split_once("\r\n").unwrap();
        let mut request = head(&format!("{first}\r\n"));
        request.extend_from_slice(rest.as_bytes());
        let mut ws = server.http();
        ws.send(&request);
        let u = ws.response();
        if status == 0 {
            assert_eq!((t.status, u.status), (200, 101), "{shown:?}");
            continue;
        }
        for r in [&t, &u] {
            assert_eq!(r.status, status, "{shown:?}: {}", r.head);
            assert_eq!(r.json()["detail"], json!(reason), "{shown:?}");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer error=\"invalid_token\""),
                "{shown:?}"
            );
        }
    }
}
