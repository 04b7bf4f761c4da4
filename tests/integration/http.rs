//! The plain HTTP endpoints (PROTOCOL §1): `/healthz`, `/token`, routing
//! errors, keep-alive and the size limits of a request.
//!
//! Every response read by [`HttpConn::response`] is also checked for a
//! single `Content-Length` and `Cache-Control: no-store`.

use serde_json::json;

use crate::common::{
    HttpConn, SECRET, TestServer, form_request, jwt_with, now_ms, recv_text, send,
};

#[test]
fn healthz_answers_ok() {
    let server = TestServer::start();
    let r = server.exchange("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok");
    assert_eq!(r.header("content-length"), Some("2"));
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{}",
        r.head
    );
    // HTTP/1.1 keeps the connection by default.
    assert_eq!(r.header("connection"), None, "{}", r.head);
}

#[test]
fn healthz_head_has_length_but_no_body() {
    let server = TestServer::start();
    let mut conn = server.http();
    conn.send(b"HEAD /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    let r = conn.head_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("2"));
    // Had a body been sent, it would be read here as the next "response".
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    let next = conn.response();
    assert_eq!((next.status, next.text()), (200, "ok"));
}

#[test]
fn token_endpoint_issues_a_token_that_opens_a_websocket() {
    let server = TestServer::start();
    let r = server.post_form(
        "/token",
        "grant_type=password&username=alice&password=wonderland",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["token_type"], json!("bearer"));
    assert_eq!(
        body["expires_in"],
        json!(900),
        "default token TTL is 15 min"
    );
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    let claims = jwt_with(SECRET).verify(&token, now_ms()).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.role.as_str()),
        ("alice", "member")
    );

    let bearer = format!("Bearer {token}");
    let (mut ws, _) = server.ws("/ws", &[("Authorization", bearer.as_str())]);
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    send(&mut ws, "hello from a /token token");
    assert_eq!(recv_text(&mut ws), "alice: hello from a /token token");
}

#[test]
fn token_endpoint_without_grant_type_works_for_bob() {
    let server = TestServer::start();
    let token = server.issue_token("bob", "builder");
    let claims = jwt_with(SECRET).verify(&token, now_ms()).unwrap();
    assert_eq!(claims.sub, "bob");
}

#[test]
fn bad_credentials_are_401_with_bearer_challenge() {
    let server = TestServer::start();
    for body in [
        "username=alice&password=wrong",
        "username=alice&password=builder",
        "username=mallory&password=wonderland",
        "username=alice&password=",
    ] {
        let r = server.post_form("/token", body);
        assert_eq!(r.status, 401, "{body}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{body}");
        assert_eq!(
            r.json(),
            json!({"detail": "Incorrect username or password"})
        );
    }
}

#[test]
fn malformed_login_forms_are_400() {
    let server = TestServer::start();
    let form = |body: &str| form_request("/token", body, "Connection: close\r\n");
    let typed = |content_type: &str, body: &str| {
        let header = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        format!(
            "POST /token HTTP/1.1\r\nHost: t\r\n{header}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("missing password", form("username=alice")),
        ("missing username", form("password=wonderland")),
        ("empty username", form("username=&password=wonderland")),
        ("empty body", form("")),
        (
            "duplicate password",
            form("username=alice&password=wonderland&password=x"),
        ),
        (
            "duplicate username",
            form("username=alice&username=bob&password=wonderland"),
        ),
        (
            "grant_type=other",
            form("grant_type=client_credentials&username=alice&password=wonderland"),
        ),
        (
            "JSON content type",
            typed(
                "application/json",
                r#"{"username":"alice","password":"wonderland"}"#,
            ),
        ),
        (
            "plain text content type",
            typed("text/plain", "username=alice&password=wonderland"),
        ),
        (
            "no content type",
            typed("", "username=alice&password=wonderland"),
        ),
    ];
    for path in ["/token", "/login"] {
        for (what, request) in &cases {
            let request = request.replacen("/token", path, 1);
            let r = server.exchange(&request);
            assert_eq!(r.status, 400, "{path} {what}: {}", r.text());
            assert!(!r.detail().is_empty(), "{what}");
            assert!(r.header("set-cookie").is_none(), "{what}");
        }
    }
}

#[test]
fn unknown_paths_are_404_json() {
    let server = TestServer::start();
    for request in [
        "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "GET /healthz/extra HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /tokens HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /wsx HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let r = server.exchange(request);
        assert_eq!(r.status, 404, "{request:?}");
        assert_eq!(r.json(), json!({"detail": "not found"}), "{request:?}");
    }
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let server = TestServer::start();
    for (request, allow) in [
        ("GET /token HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("GET /login HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("GET /logout HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        ("DELETE /token HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        (
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET, HEAD",
        ),
        (
            "PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET, HEAD",
        ),
        (
            "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET",
        ),
    ] {
        let r = server.exchange(request);
        assert_eq!(r.status, 405, "{request:?}");
        assert_eq!(r.header("allow"), Some(allow), "{request:?}");
        assert!(!r.detail().is_empty());
    }
}

#[test]
fn keep_alive_carries_several_requests() {
    let server = TestServer::start();
    let mut conn = server.http();
    // One after the other ...
    for _ in 0..2 {
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
        let r = conn.response();
        assert_eq!((r.status, r.text()), (200, "ok"));
    }
    // ... pipelined in one write, a password check in the middle ...
    let mut batch = form_request("/token", "username=bob&password=builder", "").into_bytes();
    batch.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
    batch.extend_from_slice(b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n");
    conn.send(&batch);
    let token = conn.response();
    assert_eq!(token.status, 200, "{}", token.text());
    assert_eq!(token.json()["token_type"], json!("bearer"));
    assert_eq!(conn.response().status, 200);
    assert_eq!(conn.response().status, 404);
    // ... and `Connection: close` ends it after the response.
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let last = conn.response();
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
    assert!(conn.closed_by_server());
}

#[test]
fn http_1_0_closes_after_the_response() {
    let server = TestServer::start();
    let mut conn = server.http();
    conn.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = conn.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(conn.closed_by_server());
}

#[test]
fn body_is_read_by_content_length_and_capped() {
    let server = TestServer::start();
    let cap = 8 * 1024;
    // Exactly at the cap: read and judged (no credentials in it: 400).
    let at_cap = format!("x={}", "a".repeat(cap - 2));
    let r = server.post_form("/token", &at_cap);
    assert_eq!(r.status, 400, "{}", r.text());

    // One byte over: 413 as soon as the head is in, without waiting for
    // the body.
    let mut conn = server.http();
    conn.send(
        format!(
            "POST /token HTTP/1.1\r\nHost: t\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            cap + 1
        )
        .as_bytes(),
    );
    let r = conn.response();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(!r.detail().is_empty());
    assert!(conn.closed_by_server());
}

#[test]
fn expect_100_continue_is_honoured() {
    let server = TestServer::start();
    let body = "username=alice&password=wonderland";
    let mut conn = server.http();
    conn.send(
        format!(
            "POST /token HTTP/1.1\r\nHost: t\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(conn.response().status, 100);
    conn.send(body.as_bytes());
    let r = conn.response();
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn chunked_bodies_are_refused_not_misread() {
    let server = TestServer::start();
    let r = server.exchange(
        "POST /token HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\r\n\
         22\r\nusername=alice&password=wonderland\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 411, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn oversized_request_heads_are_431() {
    let server = TestServer::start();
    // One header line longer than the 8 KiB head limit.
    let mut conn = server.http();
    conn.send(
        format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Filler: {}\r\n\r\n",
            "a".repeat(9 * 1024)
        )
        .as_bytes(),
    );
    let r = conn.response();
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(conn.closed_by_server());

    // Too many headers (the default limit is 64).
    let many: String = (0..80).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = server.exchange(&format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n"));
    assert_eq!(r.status, 431);

    // A head just under the limit is fine.
    let r = server.exchange(&format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(7 * 1024)
    ));
    assert_eq!(r.status, 200);
}

#[test]
fn garbage_request_lines_are_400() {
    let server = TestServer::start();
    for request in [
        "HELLO\r\n\r\n",
        "GET http://example.com/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    ] {
        let mut conn = server.http();
        conn.send(request.as_bytes());
        let r = conn.response();
        assert_eq!(r.status, 400, "{request:?}");
        assert!(conn.closed_by_server(), "{request:?}");
    }
}

#[test]
fn metrics_are_prometheus_text() {
    let server = TestServer::start();
    let mut alice = server.join("alice", "lobby");
    send(&mut alice, "counted");
    assert_eq!(recv_text(&mut alice), "alice: counted");
    let token = server.token("bob");
    let r = server.exchange(&format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    assert_eq!(r.status, 400);

    let r = server.exchange("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{}",
        r.head
    );
    let text = r.text();
    assert!(!text.contains(&token));
    let mut typed = std::collections::HashSet::new();
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap_or("");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
        } else if line.starts_with("# HELP ") {
        } else {
            assert!(!line.starts_with('#'), "{line}");
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
                "{line}"
            );
            let family = ["_total", "_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(
                typed.contains(family) || typed.contains(name),
                "sample before its TYPE: {line}"
            );
            samples += 1;
        }
    }
    assert!(samples > 0, "{text}");

    let r = server.exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn every_response_has_length_and_no_store() {
    // `HttpConn::response` asserts both headers on every response; this
    // test walks one request per status the server sends.
    let server = TestServer::start();
    let mut statuses = Vec::new();
    for request in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        form_request("/token", "username=alice&password=wonderland", ""),
        form_request("/login", "username=alice&password=wonderland", ""),
        "POST /logout HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_string(),
        form_request("/token", "username=alice", ""),
        form_request("/token", "username=alice&password=nope", ""),
        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "GET /token HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".to_string(),
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .to_string(),
    ] {
        let mut conn = HttpConn::new(server.connect());
        conn.send(request.as_bytes());
        statuses.push(conn.response().status);
    }
    assert_eq!(statuses, [200, 200, 204, 204, 400, 401, 404, 405, 413, 401]);
}

/// The shell skips the read that would only say "nothing more" after a
/// read that did not fill its buffer; a request whose hang-up came with
/// it must still be answered and the socket closed (the hang-up raises no
/// event of its own after that read).
#[test]
fn a_request_and_its_hang_up_together_are_answered_and_closed() {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    let server = TestServer::start();
    for _ in 0..20 {
        let mut stream = server.connect();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        // Ends only at the server's end of stream (the socket's read
        // timeout fails the test otherwise).
        stream.read_to_end(&mut answer).unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
        assert!(text.ends_with("\r\n\r\nok"), "{text}");
    }
}

/// Bytes that come in pieces, each read short, are all read: a request
/// head sent a byte at a time is answered.
#[test]
fn a_request_sent_a_byte_at_a_time_is_answered() {
    use std::io::Write;
    let server = TestServer::start();
    let (mut writer, mut conn) = crate::common::raw(&server);
    for byte in b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n" {
        writer.write_all(&[*byte]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let r = conn.response();
    assert_eq!((r.status, r.text()), (200, "ok"));
}

/// A final answer (here a forged token's `401`) leaves in the same TCP
/// segment as the server's FIN (on Linux the shell holds that last write
/// with `MSG_MORE` for the shutdown that follows it): once the whole answer
/// is read, its end of stream is there too. Were the held write never
/// shut, the answer would come only at TCP's probe timer, without its FIN,
/// and the last read would say "nothing yet".
#[cfg(target_os = "linux")]
#[test]
fn a_refusal_and_its_end_of_stream_arrive_together() {
    use std::io::{ErrorKind, Read, Write};
    let server = TestServer::start();
    let request = crate::common::WsRequest::new(&server, "/ws?token=forged").render();
    for _ in 0..20 {
        let mut stream = server.connect();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        // The whole answer: its head, then `Content-Length` bytes.
        let whole = loop {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "end of stream before the whole answer: {answer:?}");
            answer.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&answer).into_owned();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("a Content-Length")
                .parse()
                .unwrap();
            if answer.len() >= end + 4 + length {
                break text;
            }
        };
        assert!(whole.starts_with("HTTP/1.1 401 "), "{whole}");
        stream.set_nonblocking(true).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => panic!("{n} bytes after the answer"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                panic!("the answer came without its end of stream")
            }
            Err(e) => panic!("{e}"),
        }
    }
}
