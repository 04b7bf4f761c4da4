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
