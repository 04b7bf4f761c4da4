//! Adversarial tests (issue 5, item 4): each attack gets its documented
//! answer (an HTTP status before the upgrade, PROTOCOL §2; a close code
//! after it, §6), and an innocent pair of clients, connected to the same
//! server throughout, keeps chatting: [`Bystanders`] sends a numbered line
//! every 30 ms or so during and after the attack, and each must reach
//! the other bystander, in order, within [`PROMPT`] of being sent. That is
//! a liveness check with a generous timeout, not a timed assertion.
//!
//! Read with RFC 6455 §10, RFC 9112 §6 and §11 (request smuggling), RFC
//! 8725 and the OWASP WebSocket cheat sheet at hand. The servers here are
//! configured small (see [`small`]) so that limits are reached quickly.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::Message;
use wsgate::config::Config;

use crate::bystanders::Bystanders;
use crate::common::{
    HttpConn, IO_TIMEOUT, TestServer, Ws, WsRequest, client_frame, line_number, masked_frame,
    masked_text_frame, numbered_line, raw, raw_ws, recv, recv_close, recv_text, send, try_ws_at,
    wait_for,
};

/// The handshake timeout of the servers here.
const HANDSHAKE: Duration = Duration::from_millis(500);

/// The outgoing queue cap of the servers here.
const QUEUE_CAP: usize = 64 * 1024;

/// The adversarial baseline: a short handshake timeout and a small queue
/// cap (the fixture already turns the rate limits off).
fn small(c: &mut Config) {
    c.limits.handshake_timeout = HANDSHAKE;
    c.limits.max_queue_bytes = QUEUE_CAP;
    // why: a test that fails with sockets still open should not wait the
    // default 5 s for them when the fixture stops the server.
    c.limits.drain_timeout = Duration::from_secs(1);
}

/// A server with [`small`] limits, then `tweak`.
fn server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(|c| {
        small(c);
        tweak(c);
    })
}

// ----------------------------------------------------------------------
// Small helpers

/// The sample `name` (without labels) from `GET /metrics`; `None` when the
/// server refuses the request (at its connection limit).
fn metric(server: &TestServer, name: &str) -> Option<u64> {
    let r = server.exchange("GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    if r.status != 200 {
        return None;
    }
    let value = r
        .text()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok());
    Some(value.unwrap_or_else(|| panic!("no {name} in /metrics")))
}

/// Waits until the server holds at most `n` connections besides the one
/// asking for `/metrics`.
fn wait_connections_at_most(server: &TestServer, n: u64) {
    wait_for(&format!("at most {n} connections"), IO_TIMEOUT, || {
        metric(server, "wsgate_connections").is_some_and(|c| c <= n + 1)
    });
}

/// A bearer upgrade request for `user` to `room`.
fn upgrade_request(server: &TestServer, user: &str, room: &str) -> WsRequest {
    WsRequest::new(server, &format!("/ws?room={room}"))
        .header("Authorization", &format!("Bearer {}", server.token(user)))
}

/// How a connection that the server may drop without a word ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// An HTTP response with this status (`429` and `503` carry
    /// `Retry-After`).
    Status(u16),
    /// Closed (end of stream or reset) before any byte.
    Dropped,
}

/// Reads the server's first move on `stream`: a response or a hang-up.
fn outcome(stream: TcpStream) -> (Outcome, Option<HttpConn>) {
    let mut conn = HttpConn::new(stream);
    if conn.hung_up() {
        return (Outcome::Dropped, None);
    }
    let r = conn.response();
    if [429, 503].contains(&r.status) {
        assert!(
            r.header("retry-after").is_some(),
            "{} without Retry-After",
            r.status
        );
    }
    (Outcome::Status(r.status), Some(conn))
}

/// True when the server has closed `stream` (end of stream or reset)
/// without sending a byte; false when it is still open after `wait`.
fn closed_silently(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!(
            "the server answered {:?} where it should hang up",
            byte[0] as char
        ),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(_) => true,
    }
}

// ----------------------------------------------------------------------
// Request heads

#[test]
fn oversized_heads_and_too_many_headers_are_431() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let token = server.token("mallory");

    // One long header in a head that is complete ...
    let filler = "f".repeat(9 * 1024);
    let r = upgrade_request(&server, "mallory", "lobby")
        .header("X-Filler", &filler)
        .refused(&server, 431, &token);
    assert!(!r.detail().is_empty());
    // ... and in one that never ends: answered as soon as the limit is
    // passed, not at the handshake timeout (which closes without a word).
    let mut conn = server.http();
    conn.send(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}").as_bytes());
    let r = conn.response();
    assert_eq!(r.status, 431);
    assert!(conn.closed_by_server());
    // A token too long for the head is a 431, not a 401, and not echoed.
    let huge_token = format!("{token}{}", "A".repeat(9 * 1024));
    WsRequest::new(&server, "/ws")
        .header("Authorization", &format!("Bearer {huge_token}"))
        .refused(&server, 431, &huge_token);
    // A mebibyte of headers in one write.
    let (mut writer, mut conn) = raw(&server);
    let mut big = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    while big.len() < 1024 * 1024 {
        big.extend_from_slice(format!("X-Filler-{}: {}\r\n", big.len(), "a".repeat(50)).as_bytes());
    }
    // why: the server may answer before it has read it all; it discards
    // the rest, so the write completes either way.
    let _ = writer.write_all(&big);
    assert_eq!(conn.response().status, 431);
    assert!(conn.closed_by_server());

    // Too many headers: 65 and 500 small ones.
    for count in [65, 500] {
        let mut request = upgrade_request(&server, "mallory", "lobby");
        for i in 0..count - 6 {
            request = request.header(&format!("X-H{i}"), "v");
        }
        request.refused(&server, 431, &token);
    }
    // 64 headers in all are fine: the five of the upgrade, the credential
    // and 58 more.
    let mut request = upgrade_request(&server, "mallory", "lobby");
    for i in 0..58 {
        request = request.header(&format!("X-H{i}"), "v");
    }
    let mut conn = server.http();
    conn.send(request.render().as_bytes());
    let r = conn.response();
    assert_eq!(r.status, 101, "{}", r.head);
    let mut mallory = conn.into_websocket();
    assert_eq!(recv_text(&mut mallory), "System: mallory joined the chat");
    drop(mallory);
    by.wait_heard("System: mallory has left the chat");

    assert_eq!(
        by.finish(),
        [
            "System: mallory joined the chat",
            "System: mallory has left the chat"
        ]
    );
}

#[test]
fn a_dribbled_head_is_answered_when_complete_in_time_and_closed_when_not() {
    let timeout = Duration::from_secs(2);
    let server = server_with(|c| c.limits.handshake_timeout = timeout);
    let by = Bystanders::start(server.addr, "lobby");

    // Slow but complete within the timeout: one byte a write, about 1 ms
    // apart (some 400 bytes), answered and working.
    let request = upgrade_request(&server, "mallory", "lobby").render();
    let (mut writer, mut conn) = raw(&server);
    writer.set_nodelay(true).unwrap();
    for byte in request.as_bytes() {
        writer.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = conn.response();
    assert_eq!(r.status, 101, "{}", r.head);
    let mut mallory = conn.into_websocket();
    assert_eq!(recv_text(&mut mallory), "System: mallory joined the chat");
    send(&mut mallory, "slow but complete");
    by.wait_heard("mallory: slow but complete");
    drop((mallory, writer));
    by.wait_heard("System: mallory has left the chat");

    // Never complete: a header line, or a body, that grows by one byte
    // every 100 ms. Each byte is progress, but the deadline is the
    // handshake timeout from the accept, so both are closed near it,
    // without a response. Give up at three times the timeout.
    let head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ".to_vec();
    let body = b"POST /token HTTP/1.1\r\nHost: t\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
        .to_vec();
    let mut dribblers: Vec<(&str, TcpStream, bool)> = Vec::new();
    for (what, start) in [("head", head), ("body", body)] {
        let mut stream = server.connect();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&start).unwrap();
        dribblers.push((what, stream, false));
    }
    let started = Instant::now();
    while dribblers.iter().any(|d| !d.2) {
        assert!(
            started.elapsed() < 3 * timeout,
            "still open after {:?} of dribbling (handshake timeout {timeout:?}): {:?}",
            started.elapsed(),
            dribblers
                .iter()
                .filter(|d| !d.2)
                .map(|d| d.0)
                .collect::<Vec<_>>()
        );
        for (_, stream, closed) in dribblers.iter_mut().filter(|d| !d.2) {
            *closed = stream.write_all(b"a").is_err()
                || closed_silently(stream, Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(
        by.finish(),
        [
            "System: mallory joined the chat",
            "mallory: slow but complete",
            "System: mallory has left the chat"
        ]
    );
}

#[test]
fn hundreds_of_unfinished_requests_are_closed_at_the_handshake_timeout() {
    const HALF_OPEN: usize = 300;
    // why: all from one address; the per-address cap on unauthenticated
    // connections has its own test.
    let server = server_with(|c| c.limits.max_unauth_per_ip = None);
    let by = Bystanders::start(server.addr, "lobby");
    let accepted = metric(&server, "wsgate_accepted_total").unwrap();

    // A third say nothing, a third send half an upgrade head, a third
    // half a login body.
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let mut stream = server.connect();
        let start: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upg",
            _ => {
                b"POST /token HTTP/1.1\r\nHost: t\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\n\
                username=alice&pass"
            }
        };
        stream.write_all(start).unwrap();
        half_open.push(stream);
    }
    // The server took every one of them (one more: the /metrics request).
    let now_accepted = metric(&server, "wsgate_accepted_total").unwrap();
    assert!(
        now_accepted > accepted + HALF_OPEN as u64,
        "accepted {accepted} -> {now_accepted}"
    );
    // Each is closed without a response ...
    for (i, stream) in half_open.iter_mut().enumerate() {
        assert!(
            closed_silently(stream, IO_TIMEOUT),
            "half-open connection {i} still open after {IO_TIMEOUT:?} (handshake timeout {HANDSHAKE:?})"
        );
    }
    // ... and forgotten: only the bystanders are left.
    wait_connections_at_most(&server, 2);
    assert_eq!(metric(&server, "wsgate_websockets"), Some(2));

    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// Frames (RFC 6455 §5, §10.7)

/// A masked frame header announcing `len` payload bytes, with none of
/// them.
fn header_only(len: u64) -> Vec<u8> {
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0x37, 0xfa, 0x21, 0x3d]);
    frame
}

/// A masked frame with `bits` (RSV1 0x40, RSV2 0x20, RSV3 0x10) set.
fn with_reserved_bits(bits: u8) -> Vec<u8> {
    let mut frame = masked_text_frame("reserved bits");
    frame[0] |= bits;
    frame
}

/// Frames concatenated.
fn frames(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn malformed_frames_get_their_close_codes() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let fragment = |fin: bool, opcode: u8, payload: &[u8]| client_frame(fin, opcode, payload, true);
    let kib = [b'k'; 1024];
    let mut endless = fragment(false, 0x1, &kib);
    for _ in 0..100 {
        endless.extend(fragment(false, 0x0, &kib));
    }
    let close_with = |code: u16, reason: &[u8]| {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        masked_frame(0x8, &payload)
    };
    let (protocol, utf8, too_big) = (
        Some("protocol error"),
        Some("invalid utf-8"),
        Some("message too big"),
    );
    let mut cases: Vec<(String, Vec<u8>, u16, Option<&str>)> = vec![
        // RFC 6455 §5.1: a client MUST mask.
        (
            "unmasked text".into(),
            client_frame(true, 0x1, b"naked", false),
            1002,
            protocol,
        ),
        (
            "unmasked ping".into(),
            client_frame(true, 0x9, b"naked", false),
            1002,
            protocol,
        ),
        // §5.2: RSV bits without an extension.
        ("RSV1".into(), with_reserved_bits(0x40), 1002, protocol),
        ("RSV2".into(), with_reserved_bits(0x20), 1002, protocol),
        ("RSV3".into(), with_reserved_bits(0x10), 1002, protocol),
        // §5.5: control frames are at most 125 bytes and never fragmented.
        (
            "ping of 126 bytes".into(),
            masked_frame(0x9, &[b'p'; 126]),
            1002,
            protocol,
        ),
        (
            "pong of 126 bytes".into(),
            masked_frame(0xA, &[b'p'; 126]),
            1002,
            protocol,
        ),
        (
            "close of 126 bytes".into(),
            close_with(1000, &[b'c'; 124]),
            1002,
            protocol,
        ),
        (
            "fragmented ping".into(),
            fragment(false, 0x9, b"p"),
            1002,
            protocol,
        ),
        (
            "fragmented close".into(),
            fragment(false, 0x8, &[3, 232]),
            1002,
            protocol,
        ),
        // §5.4: continuations belong to a started message, and a new
        // message waits until the last one ends.
        (
            "orphan continuation".into(),
            fragment(true, 0x0, b"orphan"),
            1002,
            protocol,
        ),
        (
            "orphan unfinished continuation".into(),
            fragment(false, 0x0, b"orphan"),
            1002,
            protocol,
        ),
        (
            "text inside a fragmented text".into(),
            frames(&[fragment(false, 0x1, b"one "), fragment(true, 0x1, b"two")]),
            1002,
            protocol,
        ),
        // §5.5.1: a one-byte close body is no code.
        (
            "close with one byte".into(),
            masked_frame(0x8, &[3]),
            1002,
            protocol,
        ),
        // §7.1.5, §7.4: 1005 and codes under 1000 never go on the wire
        // (tungstenite answers these itself, with its own reason).
        ("close code 1005".into(), close_with(1005, b""), 1002, None),
        ("close code 999".into(), close_with(999, b""), 1002, None),
        // §8.1: text is UTF-8, checked across fragments too.
        (
            "invalid byte".into(),
            masked_frame(0x1, b"ok\xff"),
            1007,
            utf8,
        ),
        (
            "overlong slash".into(),
            masked_frame(0x1, b"\xc0\xaf"),
            1007,
            utf8,
        ),
        (
            "surrogate".into(),
            masked_frame(0x1, b"\xed\xa0\x80"),
            1007,
            utf8,
        ),
        (
            "above U+10FFFF".into(),
            masked_frame(0x1, b"\xf4\x90\x80\x80"),
            1007,
            utf8,
        ),
        (
            "invalid across fragments".into(),
            frames(&[fragment(false, 0x1, b"ok\xc3"), fragment(true, 0x0, b"(")]),
            1007,
            utf8,
        ),
        (
            "truncated at the last fragment".into(),
            frames(&[
                fragment(false, 0x1, b"euro "),
                fragment(true, 0x0, b"\xe2\x82"),
            ]),
            1007,
            utf8,
        ),
        // §10.4: limits, decided from the header before any payload.
        (
            "length 2^63-1, header only".into(),
            header_only(i64::MAX as u64),
            1009,
            too_big,
        ),
        (
            "length 1 GiB, header only".into(),
            header_only(1 << 30),
            1009,
            too_big,
        ),
        (
            "length 64 KiB + 1, header only".into(),
            header_only(64 * 1024 + 1),
            1009,
            too_big,
        ),
        ("endless 1 KiB continuations".into(), endless, 1009, too_big),
        // Not an attack, but its own ending.
        (
            "binary".into(),
            masked_frame(0x2, b"\x00\x01"),
            1003,
            Some("binary frames not accepted"),
        ),
    ];
    for opcode in (0x3..=0x7).chain(0xB..=0xF) {
        cases.push((
            format!("reserved opcode {opcode:#x}"),
            masked_frame(opcode, b"?"),
            1002,
            protocol,
        ));
    }

    for (i, (what, bytes, code, reason)) in cases.iter().enumerate() {
        let mut mallory = server.join("mallory", "lobby");
        mallory.get_mut().write_all(bytes).unwrap();
        let (got, got_reason) = recv_close(&mut mallory);
        assert_eq!(got, *code, "{what}: closed {got} {got_reason:?}");
        if let Some(reason) = reason {
            assert_eq!(got_reason, *reason, "{what}");
        }
        by.wait_heard_times("System: mallory has left the chat", i + 1);
    }

    let heard = by.finish();
    let expected: Vec<&str> = cases
        .iter()
        .flat_map(|_| {
            [
                "System: mallory joined the chat",
                "System: mallory has left the chat",
            ]
        })
        .collect();
    assert_eq!(heard, expected);
}

#[test]
fn text_split_inside_a_character_is_fine() {
    // The other side of the UTF-8 cases above: a valid character cut in
    // two by a fragment boundary must not be refused.
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let mut mallory = server.join("mallory", "lobby");
    let bytes = frames(&[
        client_frame(false, 0x1, b"caf\xc3", true),
        client_frame(false, 0x0, b"\xa9 \xe2", true),
        client_frame(true, 0x0, b"\x82\xac", true),
    ]);
    mallory.get_mut().write_all(&bytes).unwrap();
    by.wait_heard("mallory: café €");
    drop(mallory);
    by.wait_heard("System: mallory has left the chat");
    assert_eq!(
        by.finish(),
        [
            "System: mallory joined the chat",
            "mallory: café €",
            "System: mallory has left the chat"
        ]
    );
}

#[test]
fn a_compression_offer_is_never_accepted() {
    // A decompression bomb needs permessage-deflate (RFC 7692); the
    // server must not agree to it, and a "compressed" frame (RSV1) is a
    // protocol error.
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let bearer = format!("Bearer {}", server.token("mallory"));
    let (mut mallory, response) = server.ws(
        "/ws",
        &[
            ("Authorization", bearer.as_str()),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame",
            ),
        ],
    );
    assert!(
        response.headers().get("sec-websocket-extensions").is_none(),
        "{response:?}"
    );
    assert_eq!(recv_text(&mut mallory), "System: mallory joined the chat");
    mallory
        .get_mut()
        .write_all(&with_reserved_bits(0x40))
        .unwrap();
    assert_eq!(
        recv_close(&mut mallory),
        (1002, "protocol error".to_string())
    );
    by.wait_heard("System: mallory has left the chat");
    assert_eq!(
        by.finish(),
        [
            "System: mallory joined the chat",
            "System: mallory has left the chat"
        ]
    );
}

// ----------------------------------------------------------------------
// Floods

/// The payload of ping `n`: 125 bytes (the most a control frame holds).
fn ping_payload(n: usize) -> Vec<u8> {
    format!("{n:0>125}").into_bytes()
}

/// The ping number in a pong's payload.
fn pong_number(payload: &[u8]) -> usize {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("pong payload {:?}", String::from_utf8_lossy(payload)))
}

/// `count` masked pings numbered from `first`, in one buffer.
fn pings(first: usize, count: usize) -> Vec<u8> {
    (first..first + count)
        .flat_map(|n| client_frame(true, 0x9, &ping_payload(n), true))
        .collect()
}

#[test]
fn a_ping_flood_gets_its_pongs_and_spares_the_room() {
    const PINGS: usize = 5000;
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let (mut writer, mut conn) = raw_ws(&server, "mallory", "lobby");
    // Reads while the flood is written, as a well-behaved flooder would.
    // RFC 6455 §5.5.3 lets the server answer only the latest of several
    // pings, so pongs may skip numbers but never go back, and the last
    // ping is answered.
    let reader = std::thread::spawn(move || {
        let (mut last, mut pongs) = (None, 0);
        while last != Some(PINGS - 1) {
            match conn.frame() {
                (0xA, payload) => {
                    let n = pong_number(&payload);
                    assert!(last.is_none_or(|l| n > l), "pong {n} after pong {last:?}");
                    last = Some(n);
                    pongs += 1;
                }
                (0x1 | 0x9, _) => {}
                (opcode, payload) => panic!(
                    "the flooder got opcode {opcode:#x} {:?}",
                    String::from_utf8_lossy(&payload)
                ),
            }
        }
        (conn, pongs)
    });
    // Thousands of pings in a few writes.
    for chunk in 0..5 {
        writer.write_all(&pings(chunk * 1000, 1000)).unwrap();
    }
    let (mut conn, pongs) = reader
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert!(pongs > 0);
    // The flooder is still an ordinary member.
    writer
        .write_all(&masked_text_frame("done pinging"))
        .unwrap();
    loop {
        match conn.frame() {
            (0x1, text) if text == b"mallory: done pinging" => break,
            (0x1 | 0x9 | 0xA, _) => {}
            (opcode, _) => panic!("opcode {opcode:#x}"),
        }
    }
    by.wait_heard("mallory: done pinging");
    drop((writer, conn));
    by.wait_heard("System: mallory has left the chat");
    assert_eq!(
        by.finish(),
        [
            "System: mallory joined the chat",
            "mallory: done pinging",
            "System: mallory has left the chat"
        ]
    );
}

#[test]
fn a_ping_flooder_that_does_not_read_is_closed_1013() {
    // 40 MiB of pings would make about as many bytes of pongs: far more
    // than the kernel buffers of a loopback connection whose reader does
    // not read (about 10 MiB) plus the 64 KiB queue limit. Once the queue
    // is over the limit the server stops reading the pings (the flooder's
    // writes block), and a second later closes it 1013; then it discards
    // the rest of the flood.
    const CHUNK: usize = 2000;
    const CHUNKS: usize = 160;
    let server = server_with(|c| {
        // why: the flooder reads its close frame only after the flood; its
        // socket must not be dropped for lingering before that.
        c.limits.close_timeout = Duration::from_secs(30);
        c.limits.slow_consumer_timeout = Duration::from_secs(1);
    });
    let by = Bystanders::start(server.addr, "lobby");
    // why: alone in its room, so that only pongs fill its queue (a
    // broadcast to it would meet the cap on its own).
    let (mut writer, mut conn) = raw_ws(&server, "mallory", "pings");
    let mut sent = 0;
    for chunk in 0..CHUNKS {
        // A failed write means the server hung up: fine, read on.
        if writer.write_all(&pings(chunk * CHUNK, CHUNK)).is_err() {
            break;
        }
        sent += CHUNK;
    }
    // Now read: pongs, then the close frame.
    let mut last = None;
    let code = loop {
        assert!(
            last != Some(sent - 1),
            "all {sent} pings were answered: about {} KiB of pongs were queued for a \
             client that did not read, past the {} KiB cap, and no 1013 came",
            sent * 127 / 1024,
            QUEUE_CAP / 1024
        );
        match conn.frame() {
            (0xA, payload) => last = Some(pong_number(&payload)),
            (0x8, payload) => break u16::from_be_bytes([payload[0], payload[1]]),
            (0x1 | 0x9, _) => {}
            (opcode, _) => panic!("opcode {opcode:#x}"),
        }
    };
    assert_eq!(code, 1013);
    drop((writer, conn));
    assert_eq!(by.finish(), Vec::<String>::new());
}

#[test]
fn a_command_flooder_that_does_not_read_is_closed_1013() {
    // Like pongs, replies to the sender alone (`/who`, 10 bytes in, 24
    // out) obey the queue limit. 1,000,000 of them would be about 23 MiB
    // of replies, more than the kernel holds for a client that does not
    // read: the server stops reading the commands, then closes it 1013.
    const COMMANDS: usize = 1_000_000;
    const CHUNK: usize = 10_000;
    let server = server_with(|c| {
        c.limits.close_timeout = Duration::from_secs(30);
        c.limits.slow_consumer_timeout = Duration::from_secs(1);
    });
    let by = Bystanders::start(server.addr, "lobby");
    let (mut writer, mut conn) = raw_ws(&server, "mallory", "commands");
    let chunk: Vec<u8> = (0..CHUNK).flat_map(|_| masked_text_frame("/who")).collect();
    for _ in 0..COMMANDS / CHUNK {
        if writer.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut replies = 0;
    let code = loop {
        match conn.frame() {
            (0x1, text) => {
                assert_eq!(text, b"System: users: mallory");
                replies += 1;
            }
            (0x8, payload) => break u16::from_be_bytes([payload[0], payload[1]]),
            (0x9, _) => {}
            (opcode, _) => panic!("opcode {opcode:#x}"),
        }
    };
    assert_eq!(code, 1013, "after {replies} replies");
    assert!(replies < COMMANDS);
    drop((writer, conn));
    assert_eq!(by.finish(), Vec::<String>::new());
}

/// Reads `stream` to its end (end of stream or reset): every byte the
/// server sent. Panics when the server neither sends nor hangs up within
/// the read timeout.
fn read_to_hang_up(mut stream: TcpStream) -> Vec<u8> {
    let (mut all, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server neither sent nor hung up within {IO_TIMEOUT:?}")
            }
            Err(_) => return all,
        }
    }
}

/// The `wsgate_accepted_total` of every `/metrics` answer in `bytes`.
fn accepted_counts(bytes: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.strip_prefix("wsgate_accepted_total ")?.parse().ok())
        .collect()
}

/// What a pipelining client saw.
struct Pipelined {
    /// The `wsgate_accepted_total` of each answer, in order.
    counts: Vec<u64>,
    /// Of a client that did not read: the request bytes the server had
    /// read when it stopped reading, and `wsgate_queued_bytes` then.
    stopped_at: Option<(u64, u64)>,
}

/// Pipelines `count` requests `GET /metrics` on a new connection. A
/// client that `reads` reads the answers (on a thread) as they come; one
/// that does not reads nothing until the server has stopped taking its
/// requests in. Either way it then reads everything the server sends until
/// it hangs up.
fn pipeline_metrics(server: &TestServer, count: usize, reads: bool) -> Pipelined {
    let bytes_in = metric(server, "wsgate_bytes_in_total").unwrap();
    let mut stream = server.connect();
    let reader = stream.try_clone().expect("clone the socket");
    let reading = reads.then(|| {
        let reader = reader.try_clone().expect("clone the socket");
        std::thread::spawn(move || read_to_hang_up(reader))
    });
    let requests = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(count);
    // A client that does not read writes from a thread: once the kernel's
    // buffers are full its writes wait for the server to read again.
    let writer = std::thread::spawn(move || {
        // why: a server that disconnects us may make this write fail.
        let _ = stream.write_all(requests.as_bytes());
        stream
    });
    let (bytes, stopped_at) = match reading {
        Some(thread) => {
            let bytes = thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            drop(writer.join());
            (bytes, None)
        }
        None => {
            let mut before = bytes_in;
            wait_for("the server to stop reading", IO_TIMEOUT, || {
                std::thread::sleep(Duration::from_millis(50));
                let now = metric(server, "wsgate_bytes_in_total").unwrap();
                // (The bystanders and these polls add a few hundred bytes.)
                let settled = now < before + 1000;
                before = now;
                settled
            });
            let queued = metric(server, "wsgate_queued_bytes").unwrap();
            let read_in = before - bytes_in;
            let bytes = read_to_hang_up(reader);
            drop(writer.join());
            (bytes, Some((read_in, queued)))
        }
    };
    Pipelined {
        counts: accepted_counts(&bytes),
        stopped_at,
    }
}

#[test]
fn pipelined_requests_from_a_client_that_does_not_read_are_bounded() {
    // `GET /metrics` asks 34 bytes for some 2 KB of answer. README: a
    // client's unread answers queue up to their cap (64 KiB), then wsgate
    // stops reading its requests (they wait in the kernel) until it
    // reads; nothing is dropped.
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");

    // A few: every answer, in order (each rendered no earlier than the
    // one before); the idle connection then times out.
    const FEW: usize = 2_500;
    let few = pipeline_metrics(&server, FEW, false);
    assert_eq!(few.counts.len(), FEW, "answers to pipelined requests");
    assert!(few.counts.windows(2).all(|w| w[0] <= w[1]), "out of order");

    // Many (about 40 MB of answers), not reading: the server stops
    // reading the requests with its queue at the cap (the rest of them
    // and what the kernel holds wait), then serves every one once the
    // client reads.
    const MANY: usize = 20_000;
    let many = pipeline_metrics(&server, MANY, false);
    let (read_in, queued) = many.stopped_at.unwrap();
    let request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".len() as u64;
    assert!(
        read_in < MANY as u64 * request / 2,
        "the server read {read_in} bytes of requests from a client that did not read"
    );
    assert!(
        queued <= (64 + 8) * 1024,
        "{queued} bytes queued while the client did not read"
    );
    assert_eq!(many.counts.len(), MANY, "every request answered in the end");
    assert!(many.counts.windows(2).all(|w| w[0] <= w[1]), "out of order");
    // The same flood from a client that reads as the answers come is
    // served in full.
    assert_eq!(pipeline_metrics(&server, MANY, true).counts.len(), MANY);

    assert_eq!(by.finish(), Vec::<String>::new());
}

#[test]
fn a_client_that_stops_reading_is_closed_1013_and_the_room_gets_everything() {
    // 160 lines of 60 KiB: about 9.4 MiB to every member, more than the
    // kernel holds for a client that does not read.
    const LINES: usize = 160;
    const SIZE: usize = 60 * 1024;
    let server = server_with(|c| c.limits.close_timeout = Duration::from_secs(30));
    let by = Bystanders::start(server.addr, "flood");
    let mut victim = server.join("carol", "flood");
    let mut alice = server.join("alice", "flood");
    // alice reads her own echo before the next line: never slow herself.
    for i in 0..LINES {
        send(&mut alice, &numbered_line(i, SIZE));
        while line_number(&recv_text(&mut alice)) != Some(i) {}
    }
    by.wait_heard("System: carol has left the chat");

    // The victim, reading at last: a gapless prefix of the flood, then 1013.
    let mut got = 0;
    let code = loop {
        match recv(&mut victim) {
            Message::Text(t) if t.as_str().starts_with("alice: ") => {
                assert_eq!(line_number(t.as_str()), Some(got), "victim out of order");
                got += 1;
            }
            Message::Text(_) => {}
            Message::Close(Some(f)) => break (u16::from(f.code), f.reason.as_str().to_string()),
            other => panic!("victim got {other:?}"),
        }
    };
    assert_eq!(code, (1013, "slow consumer".to_string()));
    assert!(got < LINES, "the victim got all {got} lines");

    // erin got every line, in order, and the notices.
    let heard = by.finish();
    let numbers: Vec<usize> = heard.iter().filter_map(|l| line_number(l)).collect();
    assert_eq!(numbers, (0..LINES).collect::<Vec<_>>());
    let notices: Vec<&String> = heard.iter().filter(|l| line_number(l).is_none()).collect();
    assert_eq!(
        notices,
        [
            "System: carol joined the chat",
            "System: alice joined the chat",
            "System: carol has left the chat"
        ]
    );
}

/// What became of a flood of upgrades.
struct Flood {
    /// WebSockets that opened.
    opened: Vec<Ws>,
    /// Connections refused with an HTTP status (still open), by status.
    refused: Vec<(u16, HttpConn)>,
    /// Connections dropped without a word.
    dropped: usize,
}

/// `count` valid upgrades at once, each a different user, into `room`.
fn flood(server: &TestServer, count: usize, room: &str) -> Flood {
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = server.connect();
        let request = upgrade_request(server, &format!("m{i}"), room).render();
        // why: a connection past the refusal slack is dropped at once,
        // and writing to it may fail.
        let _ = stream.write_all(request.as_bytes());
        streams.push(stream);
    }
    let mut flood = Flood {
        opened: Vec::new(),
        refused: Vec::new(),
        dropped: 0,
    };
    for stream in streams {
        match outcome(stream) {
            (Outcome::Status(101), Some(conn)) => {
                let mut ws = conn.into_websocket();
                let joined = recv_text(&mut ws);
                assert!(joined.ends_with(" joined the chat"), "{joined}");
                flood.opened.push(ws);
            }
            (Outcome::Status(status), Some(conn)) => flood.refused.push((status, conn)),
            (Outcome::Dropped, _) => flood.dropped += 1,
            (other, None) => panic!("{other:?}"),
        }
    }
    flood
}

/// Joins `user` to the lobby as soon as the server has a slot again
/// (until then it answers `429` or `503`, or drops the connection).
fn join_when_free(server: &TestServer, user: &str) -> Ws {
    let bearer = format!("Bearer {}", server.token(user));
    let mut joined = None;
    wait_for("a free connection slot", IO_TIMEOUT, || {
        match try_ws_at(server.addr, "/ws", &[("Authorization", bearer.as_str())]) {
            Ok((ws, _)) => {
                joined = Some(ws);
                true
            }
            Err(tungstenite::Error::Http(r)) => {
                assert!([429, 503].contains(&r.status().as_u16()), "{r:?}");
                false
            }
            // Past the refusal slack a connection is dropped without a
            // word, until the server has read the flood's hang-ups.
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                false
            }
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::HandshakeIncomplete,
            )) => false,
            Err(e) => panic!("upgrade failed: {e}"),
        }
    });
    let mut ws = joined.unwrap();
    assert_eq!(
        recv_text(&mut ws),
        format!("System: {user} joined the chat")
    );
    ws
}

#[test]
fn a_connection_flood_past_the_limit_is_refused_and_the_slots_come_back() {
    const MAX: usize = 20;
    const FLOOD: usize = 100;
    let server = server_with(|c| c.limits.max_connections = MAX);
    let by = Bystanders::start(server.addr, "lobby");

    let f = flood(&server, FLOOD, "flood");
    assert!(
        !f.opened.is_empty() && f.opened.len() <= MAX - 2,
        "{} flooders opened WebSockets beside the 2 bystanders (limit {MAX})",
        f.opened.len()
    );
    assert!(f.refused.iter().all(|(status, _)| *status == 503));
    assert!(!f.refused.is_empty(), "nobody was told 503");
    assert_eq!(f.opened.len() + f.refused.len() + f.dropped, FLOOD);

    // The flood ends; the slots come back.
    drop(f);
    let _frank = join_when_free(&server, "frank");
    by.wait_heard("System: frank joined the chat");
    wait_connections_at_most(&server, 3);
    assert_eq!(by.finish(), ["System: frank joined the chat"]);
}

#[test]
fn a_connection_flood_from_one_address_is_refused_429() {
    const CAP: usize = 20;
    const FLOOD: usize = 60;
    let server = server_with(|c| c.limits.max_conns_per_ip = Some(CAP));
    let by = Bystanders::start(server.addr, "lobby");

    // Everything here comes from 127.0.0.1, the bystanders included.
    let f = flood(&server, FLOOD, "flood");
    assert!(
        !f.opened.is_empty() && f.opened.len() <= CAP - 2,
        "{} flooders opened WebSockets beside the 2 bystanders (cap {CAP})",
        f.opened.len()
    );
    assert_eq!(f.dropped, 0);
    assert_eq!(f.opened.len() + f.refused.len(), FLOOD);
    assert!(f.refused.iter().all(|(status, _)| *status == 429));

    drop(f);
    let _frank = join_when_free(&server, "frank");
    by.wait_heard("System: frank joined the chat");
    wait_connections_at_most(&server, 3);
    assert_eq!(by.finish(), ["System: frank joined the chat"]);
}

#[test]
fn an_abrupt_end_mid_frame_gives_the_slot_back_and_tells_the_room() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let half_frame = {
        let frame = masked_text_frame(&"h".repeat(100));
        frame[..frame.len() / 2].to_vec()
    };

    // A reset: closing a socket with unread input makes the kernel send RST
    // (RFC 9293 §3.6.1), and the room's lines arrive unread.
    let mut mallory = server.join("mallory", "lobby");
    mallory.get_mut().write_all(&half_frame).unwrap();
    let mut byte = [0u8; 1];
    assert!(mallory.get_ref().peek(&mut byte).unwrap() > 0);
    drop(mallory);
    by.wait_heard("System: mallory has left the chat");

    // An end of stream mid-frame.
    let mut trudy = server.join("trudy", "lobby");
    trudy.get_mut().write_all(&half_frame).unwrap();
    trudy.get_ref().shutdown(Shutdown::Write).unwrap();
    by.wait_heard("System: trudy has left the chat");
    drop(trudy);

    // A reset right after the 101, the upgrade and half a frame in one
    // write.
    let (mut writer, conn) = raw(&server);
    let mut bytes = upgrade_request(&server, "oscar", "lobby")
        .render()
        .into_bytes();
    bytes.extend_from_slice(&half_frame);
    writer.write_all(&bytes).unwrap();
    assert!(writer.peek(&mut byte).unwrap() > 0);
    drop((writer, conn));
    by.wait_heard("System: oscar has left the chat");

    // Every slot is back.
    wait_connections_at_most(&server, 2);
    assert_eq!(metric(&server, "wsgate_websockets"), Some(2));
    assert_eq!(
        by.finish(),
        [
            "System: mallory joined the chat",
            "System: mallory has left the chat",
            "System: trudy joined the chat",
            "System: trudy has left the chat",
            "System: oscar joined the chat",
            "System: oscar has left the chat"
        ]
    );
}

// ----------------------------------------------------------------------
// Credentials and origins (PROTOCOL §2)

#[test]
fn duplicate_or_conflicting_credentials_are_refused() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let token = server.token("mallory");
    let other = server.token("trudy");
    let sid = server.login("alice", "wonderland");
    let cookie = format!("__Host-wsgate={sid}");
    let origin = server.origin();
    let ticket = {
        let r = server.exchange(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["ticket"].as_str().unwrap().to_string()
    };
    let ws = |target: &str| WsRequest::new(&server, target);
    let bearer = |t: &str| format!("Bearer {t}");
    let bad_request = [
        (
            "two Authorization headers",
            ws("/ws")
                .header("Authorization", &bearer(&token))
                .header("Authorization", &bearer(&token)),
        ),
        (
            "Authorization twice, names in other cases",
            ws("/ws")
                .header("Authorization", &bearer(&token))
                .header("authorization", &bearer(&other)),
        ),
        (
            "bearer and basic",
            ws("/ws")
                .header("Authorization", &bearer(&token))
                .header("Authorization", "Basic YWxpY2U6d29uZGVybGFuZA=="),
        ),
        (
            "bearer and query token",
            ws(&format!("/ws?token={other}")).header("Authorization", &bearer(&token)),
        ),
        (
            "bearer and path token",
            ws(&format!("/ws/{other}")).header("Authorization", &bearer(&token)),
        ),
        (
            "query token twice",
            ws(&format!("/ws?token={token}&token={token}")),
        ),
        (
            "query token twice, differing",
            ws(&format!("/ws?token={token}&token={other}")),
        ),
        (
            "path and query token",
            ws(&format!("/ws/{token}?token={token}")),
        ),
        (
            "an empty query token beside a bearer",
            ws("/ws?token=").header("Authorization", &bearer(&token)),
        ),
        (
            "ticket and token",
            ws(&format!("/ws?ticket={ticket}&token={token}")),
        ),
        (
            "ticket twice",
            ws(&format!("/ws?ticket={ticket}&ticket={ticket}")),
        ),
        (
            "ticket and bearer",
            ws(&format!("/ws?ticket={ticket}")).header("Authorization", &bearer(&token)),
        ),
        (
            "two Cookie headers with the session",
            ws("/ws")
                .header("Cookie", &cookie)
                .header("Cookie", &cookie)
                .header("Origin", &origin),
        ),
        (
            "the session twice in one Cookie header",
            ws("/ws")
                .header("Cookie", &format!("{cookie}; {cookie}"))
                .header("Origin", &origin),
        ),
    ];
    for (what, request) in &bad_request {
        let r = request.refused(&server, 400, &token);
        for secret in [&other, &sid, &ticket] {
            assert!(!r.mentions(secret), "{what}: echoes a credential");
        }
    }
    // One header holding two bearer tokens is no token at all.
    for value in [
        format!("Bearer {token}, Bearer {other}"),
        format!("Bearer {token} {other}"),
    ] {
        let r = ws("/ws")
            .header("Authorization", &value)
            .refused(&server, 401, &token);
        assert!(!r.mentions(&other));
    }
    // A cookie beside a bearer: the bearer alone decides, both ways.
    ws("/ws")
        .header("Cookie", &cookie)
        .header("Origin", &origin)
        .header("Authorization", "Bearer not.a.token")
        .refused(&server, 401, &sid);
    let evil = "http://evil.example";
    let trudy = bearer(&other);
    let (mut ws_trudy, _) = server.ws(
        "/ws",
        &[
            ("Cookie", cookie.as_str()),
            ("Origin", evil),
            ("Authorization", trudy.as_str()),
        ],
    );
    assert_eq!(recv_text(&mut ws_trudy), "System: trudy joined the chat");
    drop(ws_trudy);
    by.wait_heard("System: trudy has left the chat");

    // None of the refused ones joined.
    assert_eq!(
        by.finish(),
        [
            "System: trudy joined the chat",
            "System: trudy has left the chat"
        ]
    );
}

#[test]
fn cookie_upgrades_from_foreign_null_look_alike_or_missing_origins_are_403() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let sid = server.login("alice", "wonderland");
    let cookie = format!("__Host-wsgate={sid}");
    let port = server.addr.port();
    let here = server.origin();
    let cookie_upgrade = || WsRequest::new(&server, "/ws").header("Cookie", &cookie);
    let origins = [
        "http://evil.example".to_string(),
        "null".to_string(),
        "NULL".to_string(),
        String::new(),
        format!("http://127.0.0.1:{port}.evil.example"),
        format!("http://127.0.0.1:{port}@evil.example"),
        format!("http://evil.example@127.0.0.1:{port}"),
        format!("http://evil.example#@127.0.0.1:{port}"),
        format!("http://127.0.0.1.evil.example:{port}"),
        format!("http://127.0.0.1.:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://127.0.0.1:{port}0"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
        format!("http://2130706433:{port}"),
        format!("http://0x7f.0.0.1:{port}"),
        format!("ws://127.0.0.1:{port}"),
        format!("file://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{port}/chat"),
        format!("{here}, http://evil.example"),
        format!("http://evil.example, {here}"),
        format!("//127.0.0.1:{port}"),
        format!("127.0.0.1:{port}"),
    ];
    for origin in &origins {
        let r = cookie_upgrade()
            .header("Origin", origin)
            .refused(&server, 403, &sid);
        assert_eq!(r.detail(), "origin not allowed", "{origin:?}");
    }
    // No Origin; the old draft's header instead; the right one twice with
    // a wrong one.
    cookie_upgrade().refused(&server, 403, &sid);
    cookie_upgrade()
        .header("Sec-WebSocket-Origin", &here)
        .refused(&server, 403, &sid);
    cookie_upgrade()
        .header("Origin", &here)
        .header("Origin", "http://evil.example")
        .refused(&server, 403, &sid);

    // The same request from the server's own origin does open.
    let (mut alice, _) = server.ws(
        "/ws",
        &[("Cookie", cookie.as_str()), ("Origin", here.as_str())],
    );
    assert_eq!(recv_text(&mut alice), "System: alice joined the chat");
    drop(alice);
    by.wait_heard("System: alice has left the chat");
    assert_eq!(
        by.finish(),
        [
            "System: alice joined the chat",
            "System: alice has left the chat"
        ]
    );
}

// ----------------------------------------------------------------------
// Request smuggling and malformed heads (RFC 9112 §2.2, §5, §6.3, §11.2)

#[test]
fn smuggling_shaped_requests_are_refused_and_the_connection_closed() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let login = "username=alice&password=wonderland";
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let len = login.len();
    let chunked = format!("{len:x}\r\n{login}\r\n0\r\n\r\n");
    let cases: Vec<(&str, String, &[u16])> = vec![
        (
            "Transfer-Encoding and Content-Length",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Transfer-Encoding: chunked\r\n\
                 Content-Length: {}\r\n\r\n{chunked}",
                chunked.len()
            ),
            &[400, 411],
        ),
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "POST /login HTTP/1.1\r\nHost: t\r\n{form}Content-Length: {len}\r\n\
                 Transfer-Encoding: chunked\r\n\r\n{chunked}"
            ),
            &[400, 411],
        ),
        (
            "Transfer-Encoding: identity, chunked",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Transfer-Encoding: identity, chunked\r\n\
                 \r\n{chunked}"
            ),
            &[400, 411],
        ),
        (
            "Transfer-Encoding with a space before the colon",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Transfer-Encoding : chunked\r\n\
                 Content-Length: {len}\r\n\r\n{login}"
            ),
            &[400],
        ),
        (
            "Transfer-Encoding folded onto the next line",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Transfer-Encoding:\r\n chunked\r\n\
                 Content-Length: {len}\r\n\r\n{login}"
            ),
            &[400],
        ),
        (
            "Content-Length with a plus sign",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Content-Length: +{len}\r\n\r\n{login}"
            ),
            &[400],
        ),
        (
            "Content-Length negative",
            format!("POST /token HTTP/1.1\r\nHost: t\r\n{form}Content-Length: -1\r\n\r\n{login}"),
            &[400],
        ),
        (
            "Content-Length with a space inside",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Content-Length: {} {}\r\n\r\n{login}",
                len / 10,
                len % 10
            ),
            &[400],
        ),
        (
            "Content-Length as a list",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Content-Length: {len}, {len}\r\n\r\n{login}"
            ),
            &[400],
        ),
        (
            "two Content-Lengths",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Content-Length: {len}\r\n\
                 Content-Length: {}\r\n\r\n{login}",
                len + 1
            ),
            &[400],
        ),
        (
            "Content-Length in hex",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Content-Length: 0x{len:x}\r\n\r\n{login}"
            ),
            &[400],
        ),
        (
            "a space inside a header name",
            format!(
                "POST /token HTTP/1.1\r\nHost: t\r\n{form}Content Length: {len}\r\n\r\n{login}"
            ),
            &[400],
        ),
        (
            "a folded header",
            "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "a folded Authorization on the upgrade",
            format!(
                "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                 Authorization: Bearer\r\n {}\r\n\r\n",
                server.token("mallory")
            ),
            &[400],
        ),
        (
            "NUL after the target",
            "GET /healthz\0 HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "NUL inside the target",
            "GET /heal\0thz HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "NUL after the method",
            "GET\0/healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "NUL in a header value",
            "GET /healthz HTTP/1.1\r\nHost: t\0evil\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "NUL in a header name",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nHo\0st: t\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "a bare CR ending the request line",
            "GET /healthz HTTP/1.1\rHost: t\r\n\r\n".to_string(),
            &[400],
        ),
        (
            "two spaces in the request line",
            "GET  /healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            &[400],
        ),
    ];
    for (what, request, statuses) in &cases {
        let mut conn = server.http();
        // A second request rides behind each one: it must never be
        // answered, whatever the server made of the first.
        conn.send(format!("{request}GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let r = conn.response();
        assert!(
            statuses.contains(&r.status),
            "{what}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert!(!r.mentions("access_token"), "{what}: a login was parsed");
        assert!(
            r.header("set-cookie").is_none(),
            "{what}: a login was parsed"
        );
        assert_eq!(r.header("connection"), Some("close"), "{what}: {}", r.head);
        assert!(conn.closed_by_server(), "{what}: left open");
    }
    // The server still logs people in.
    server.issue_token("alice", "wonderland");
    assert_eq!(by.finish(), Vec::<String>::new());
}
