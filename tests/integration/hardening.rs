//! Flow control and hardening, round 2 (issue "flow control and hardening,
//! round 2"): bursts are not slowness and the queue budget pauses input
//! instead of closing readers (PROTOCOL §7); unauthenticated connections
//! are capped per address (§2); login CSRF (§1); look-alike names (§3);
//! credentials and injected characters never reach the log (§2); bounded
//! `/metrics` series; `Host` checks (§1); fragments charged against the
//! message limit (§6).
//!
//! As in `adversarial`, each attack runs beside an innocent chat
//! ([`Bystanders`]) that must keep working. Nothing here asserts on elapsed
//! time: every wait is a bounded poll for an outcome.
//!
//! Not here: the per-address upgrade rate keyed by IPv6 /64. A test
//! machine's IPv6 loopback is `::1` alone, so two addresses of one /64
//! cannot be told apart from two /64s over real sockets; that belongs to a
//! core unit test with made-up addresses.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use socket2::{Domain, Protocol, Socket, Type};
use tungstenite::Message;
use wsgate::config::{Config, Origin};

use crate::bystanders::{Bystanders, token};
use crate::common::{
    HttpConn, HttpResponse, IO_TIMEOUT, SECRET, TestServer, Ws, WsRequest, client_frame, close,
    connect_from, connect_to, form_request, line_number, masked_frame, masked_text_frame, mint,
    now_ms, numbered_line, raw_ws, recv, recv_close, recv_text, send, sign_claims, wait_for, ws_at,
    ws_on,
};

/// A generous bound for waiting on the server (never a timed assertion).
const PATIENCE: Duration = Duration::from_secs(20);

/// The receive buffer asked for on a client that does not read (Linux
/// doubles it and enforces a minimum).
const TINY_RCVBUF: usize = 4096;

/// The segment size a client that does not read announces. The server's
/// kernel sizes its send buffer from it: with loopback's 64 KiB segments
/// that buffer takes about 3 MB for a client that reads nothing (measured),
/// with 536-byte segments about 100 KB, so what the server queues to such a
/// client stays in the server, where its limits apply.
const TINY_MSS: i32 = 536;

/// A server with the fixture's defaults, a short drain timeout (a failing
/// test should not wait for its sockets), then `tweak`.
fn server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(|c| {
        c.limits.drain_timeout = Duration::from_secs(1);
        tweak(c);
    })
}

// ----------------------------------------------------------------------
// Small helpers

/// A TCP connection to `addr` for a client that will not read: a tiny
/// receive buffer and a tiny segment size, both set before connecting
/// (see [`TINY_MSS`]), so that the kernels on both ends hold little of
/// what the server sends it.
fn stalling_stream(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .expect("a socket");
    socket.set_recv_buffer_size(TINY_RCVBUF).expect("SO_RCVBUF");
    set_tcp_maxseg(&socket, TINY_MSS);
    connected(socket, addr)
}

/// `TCP_MAXSEG`, through socket2 (no `unsafe` here).
fn set_tcp_maxseg(socket: &Socket, mss: i32) {
    socket
        .set_tcp_mss(mss as u32)
        .unwrap_or_else(|e| panic!("TCP_MAXSEG: {e}"));
}

fn connected(socket: Socket, addr: SocketAddr) -> TcpStream {
    socket
        .connect(&addr.into())
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// `user` in `room` over `stream`, its join notice read.
fn join_over(stream: TcpStream, user: &str, room: &str) -> Ws {
    let bearer = format!("Bearer {}", token(user));
    let (mut ws, _) = ws_on(
        stream,
        &format!("/ws?room={room}"),
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(
        recv_text(&mut ws),
        format!("System: {user} joined the chat")
    );
    ws
}

/// The text of `GET /metrics` from the server at `addr`, or `None` when it
/// refuses the request (at its connection limit). From 127.0.0.1.
fn metrics_at(addr: SocketAddr) -> Option<String> {
    let mut conn = HttpConn::new(connect_to(addr));
    conn.send(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = conn.response();
    (r.status == 200).then(|| r.text().to_string())
}

/// The value of the sample `series` (a name, with labels if any) in a
/// `/metrics` text; 0 when absent.
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

/// The samples of family `name` that carry labels: (labels, value).
fn labelled(text: &str, name: &str) -> Vec<(String, u64)> {
    let prefix = format!("{name}{{");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (labels, value) = rest.split_once("} ")?;
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A request with `Host` set to the server's address, closing after.
fn post(server: &TestServer, path: &str, body: &str, headers: &str) -> HttpResponse {
    server.exchange(&format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n{headers}Connection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    ))
}

/// Reads raw frames until a close frame; returns its code (`None` for an
/// empty close), skipping text frames.
fn raw_close_code(conn: &mut HttpConn) -> Option<u16> {
    loop {
        match conn.frame() {
            (0x8, payload) if payload.len() >= 2 => {
                return Some(u16::from_be_bytes([payload[0], payload[1]]));
            }
            (0x8, _) => return None,
            (0x1 | 0x9 | 0xA, _) => {}
            (op, _) => panic!("unexpected opcode {op:#x} before the close"),
        }
    }
}

/// The next chat text on `ws`, skipping `System:` notices.
fn recv_chat(ws: &mut Ws) -> String {
    loop {
        let text = recv_text(ws);
        if !text.starts_with("System: ") {
            return text;
        }
    }
}

// ----------------------------------------------------------------------
// 1. Bursts are not slowness; the budget pauses input

/// The line sender `name` sends in the burst: its name, then filler.
fn burst_line(name: &str, size: usize) -> String {
    let mut line = format!("{name}:");
    let fill = name.bytes().last().unwrap_or(b'x');
    line.extend(std::iter::repeat_n(
        char::from(b'a' + fill % 26),
        size - line.len(),
    ));
    line
}

#[test]
fn a_burst_of_32_large_lines_reaches_every_reader_and_only_the_stalled_one_is_closed_1013() {
    const SENDERS: usize = 32;
    const READERS: usize = 4;
    const SIZE: usize = 60_000;
    // 32 × 60 KB ≈ 1.9 MB to each of 37 members: almost twice the 1 MiB
    // queue limit at once for everyone, readers included.
    let server = server_with(|c| {
        c.limits.slow_consumer_timeout = Duration::from_secs(1);
        // why: the stalled client reads its close frame only once the
        // server has counted it; it must not be dropped for lingering first.
        c.limits.close_timeout = Duration::from_secs(30);
    });
    assert_eq!(wsgate::config::Limits::default().max_queue_bytes, 1 << 20);
    let by = Bystanders::start(server.addr, "lobby");
    let mut stalled = join_over(stalling_stream(server.addr), "stalled", "burst");
    let mut members: Vec<(String, bool, Ws)> = Vec::new();
    for i in 0..READERS {
        let name = format!("r{i}");
        let ws = server.join(&name, "burst");
        members.push((name, false, ws));
    }
    for i in 0..SENDERS {
        let name = format!("s{i:02}");
        let ws = server.join(&name, "burst");
        members.push((name, true, ws));
    }
    let senders: Vec<String> = (0..SENDERS).map(|i| format!("s{i:02}")).collect();

    // Each sender's frame goes out but for its last byte; the last bytes
    // go out together below, so that the server finds all 32 lines
    // complete at once (in one turn of its loop, as far as a loop can).
    let mut last_bytes = Vec::new();
    for (name, sends, ws) in &members {
        if *sends {
            let frame = masked_text_frame(&burst_line(name, SIZE));
            let mut writer = ws.get_ref().try_clone().expect("clone a socket");
            writer.write_all(&frame[..frame.len() - 1]).unwrap();
            last_bytes.push((writer, frame[frame.len() - 1]));
        }
    }
    let threads: Vec<JoinHandle<(String, Ws, Vec<String>)>> = members
        .into_iter()
        .map(|(name, _, mut ws)| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while got.len() < SENDERS {
                    match recv(&mut ws) {
                        Message::Text(t) if t.as_str().starts_with("System: ") => {}
                        Message::Text(t) => got.push(t.as_str().to_string()),
                        Message::Close(f) => panic!("fast reader {name} was closed: {f:?}"),
                        other => panic!("{name} got {other:?}"),
                    }
                }
                (name, ws, got)
            })
        })
        .collect();
    for (writer, byte) in &mut last_bytes {
        writer.write_all(&[*byte]).unwrap();
    }
    let mut fast = Vec::new();
    for t in threads {
        let (name, ws, got) = t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let mut from: Vec<&str> = got
            .iter()
            .map(|t| t.split_once(": ").expect("USER: LINE").0)
            .collect();
        for text in &got {
            let sender = text.split_once(": ").unwrap().0;
            assert!(
                *text == format!("{sender}: {}", burst_line(sender, SIZE)),
                "{name} got a damaged line from {sender} ({} bytes)",
                text.len()
            );
        }
        from.sort_unstable();
        assert_eq!(from, senders, "{name} did not get every line exactly once");
        fast.push((name, ws));
    }

    // The stalled client: closed 1013 once its queue stayed over the limit
    // for the slow-consumer timeout. It reads only once the server says so
    // (reading earlier would drain it): a prefix of the burst, then 1013.
    wait_for("the stalled client to be closed 1013", PATIENCE, || {
        metrics_at(server.addr)
            .is_some_and(|m| sample(&m, "wsgate_closes_total{by=\"server\",code=\"1013\"}") >= 1)
    });
    let mut lines = 0;
    let (code, reason) = loop {
        match recv(&mut stalled) {
            Message::Text(t) if t.as_str().starts_with("System: ") => {}
            Message::Text(_) => lines += 1,
            Message::Close(Some(f)) => break (u16::from(f.code), f.reason.to_string()),
            other => panic!("the stalled client got {other:?}"),
        }
    };
    assert_eq!((code, reason.as_str()), (1013, "slow consumer"));
    assert!(lines < SENDERS, "the stalled client got all {lines} lines");

    // Nobody else was closed: one more line reaches every fast member.
    send(&mut fast[0].1, "after the burst");
    let first = fast[0].0.clone();
    for (name, ws) in &mut fast {
        assert_eq!(
            recv_chat(ws),
            format!("{first}: after the burst"),
            "{name} after the burst"
        );
    }
    let m = metrics_at(server.addr).expect("metrics");
    assert_eq!(
        labelled(&m, "wsgate_closes_total")
            .iter()
            .filter(|(labels, _)| labels.starts_with("by=\"server\""))
            .map(|(labels, n)| (labels.as_str(), *n))
            .collect::<Vec<_>>(),
        [("by=\"server\",code=\"1013\"", 1)],
        "only the stalled client was closed by the server"
    );
    drop(fast);
    assert_eq!(by.finish(), Vec::<String>::new());
}

#[test]
fn one_10_mb_message_reaches_every_reader_of_the_room() {
    const READERS: usize = 4;
    const SIZE: usize = 10_000_000;
    let server = server_with(|c| c.limits.max_message_bytes = 16 << 20);
    let by = Bystanders::start(server.addr, "lobby");
    let big = Arc::new(numbered_line(7, SIZE));
    let expected = Arc::new(format!("alice: {big}"));
    let mut readers = Vec::new();
    for i in 0..READERS {
        let name = format!("r{i}");
        let mut ws = server.join(&name, "big");
        let expected = Arc::clone(&expected);
        readers.push(std::thread::spawn(move || {
            ws.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
            let text = recv_chat(&mut ws);
            assert!(
                text == *expected,
                "{name} got {} bytes, not the line",
                text.len()
            );
            ws
        }));
    }
    let mut alice = server.join("alice", "big");
    alice.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    alice.get_mut().set_write_timeout(Some(PATIENCE)).unwrap();
    send(&mut alice, &big);
    let echo = recv_chat(&mut alice);
    assert!(echo == *expected, "alice's echo: {} bytes", echo.len());
    let mut readers: Vec<Ws> = readers
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect();

    // Nobody was closed.
    send(&mut alice, "still here");
    assert_eq!(recv_chat(&mut alice), "alice: still here");
    for ws in &mut readers {
        assert_eq!(recv_chat(ws), "alice: still here");
    }
    let m = metrics_at(server.addr).expect("metrics");
    let server_closes: Vec<_> = labelled(&m, "wsgate_closes_total")
        .into_iter()
        .filter(|(labels, _)| labels.starts_with("by=\"server\""))
        .collect();
    assert!(server_closes.is_empty(), "{server_closes:?}");
    drop((alice, readers));
    assert_eq!(by.finish(), Vec::<String>::new());
}

#[test]
fn at_the_queue_budget_input_waits_and_nothing_is_lost() {
    const LINES: usize = 100;
    const SIZE: usize = 60 * 1024;
    const BUDGET: usize = 2 << 20;
    // 100 × 60 KiB ≈ 6 MiB to each of three members; a member that does
    // not read holds the whole budget by itself after about 35 lines.
    let server = server_with(|c| {
        c.limits.queue_budget_bytes = BUDGET;
        c.limits.max_queue_bytes = 1 << 20;
        // why: the pause below is a reader resting, not a slow consumer.
        c.limits.slow_consumer_timeout = Duration::from_secs(60);
    });
    // Backpressure stops every WebSocket's input, the bystanders' too: they
    // are delayed, not lost.
    let by = Bystanders::with_prompt(server.addr, "lobby", PATIENCE);
    let mut resting = join_over(stalling_stream(server.addr), "carol", "bp");
    resting.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
    let fast = server.join("bob", "bp");
    let alice = server.join("alice", "bp");
    let mut writer = alice.get_ref().try_clone().expect("clone alice's socket");
    writer.set_write_timeout(Some(PATIENCE)).unwrap();

    /// Reads `LINES` of alice's lines on `ws`, in order, skipping notices.
    fn read_all(ws: &mut Ws, who: &str) {
        let mut next = 0;
        while next < LINES {
            let text = recv_text(ws);
            if text.starts_with("System: ") {
                continue;
            }
            assert_eq!(line_number(&text), Some(next), "{who}: out of order");
            assert_eq!(text.len(), "alice: ".len() + SIZE, "{who}: line {next}");
            next += 1;
        }
    }
    let readers: Vec<JoinHandle<Ws>> = [("bob", fast), ("alice", alice)]
        .into_iter()
        .map(|(who, mut ws)| {
            std::thread::spawn(move || {
                ws.get_mut().set_read_timeout(Some(PATIENCE)).unwrap();
                read_all(&mut ws, who);
                ws
            })
        })
        .collect();
    let writing = std::thread::spawn(move || {
        for i in 0..LINES {
            writer
                .write_all(&masked_text_frame(&numbered_line(i, SIZE)))
                .unwrap_or_else(|e| panic!("alice's line {i}: {e}"));
        }
        writer
    });

    // carol rests; the queues (with the room's history, which counts in
    // the budget) fill to the budget and input pauses. The server still
    // answers /metrics on a new connection.
    let (mut paused, mut queued, mut most) = (0, 0, 0);
    wait_for("backpressure at the queue budget", PATIENCE, || {
        let m = metrics_at(server.addr).expect("/metrics during backpressure");
        paused = sample(&m, "wsgate_paused_inputs");
        queued = sample(&m, "wsgate_queued_bytes") + sample(&m, "wsgate_history_bytes");
        most = most.max(queued);
        paused > 0 && queued >= BUDGET as u64
    });
    // The total passes the budget by at most one line's fan-out (three
    // members; a frame head and `alice: ` on each).
    assert!(
        most as usize <= BUDGET + 3 * (SIZE + 64),
        "{most} bytes queued against a budget of {BUDGET}"
    );
    let m = metrics_at(server.addr).expect("/metrics during backpressure");
    assert_eq!(
        sample(&m, "wsgate_closes_total{by=\"server\",code=\"1013\"}"),
        0,
        "a reader was closed for the budget"
    );

    // carol reads again: every line arrives, in order, to everyone.
    read_all(&mut resting, "carol");
    let _writer = writing
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    let members: Vec<Ws> = readers
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        .collect();
    wait_for("the queues to drain", PATIENCE, || {
        metrics_at(server.addr).is_some_and(|m| sample(&m, "wsgate_paused_inputs") == 0)
    });
    drop(members);
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 2. Unauthenticated connections are capped per address

/// The source address 127.0.0.`n`.
fn local(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Connections that got an answer at once (refused: the answer, read to
/// the server's hang-up) and connections held open without a byte. Call
/// only after the server has accepted them all ([`open_idle`]).
fn sort_out(streams: Vec<TcpStream>) -> (Vec<HttpResponse>, Vec<TcpStream>) {
    let mut refused = Vec::new();
    let mut held = Vec::new();
    for stream in streams {
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        match stream.peek(&mut byte) {
            Ok(0) => panic!("a connection was closed without an answer"),
            Ok(_) => {
                stream.set_nonblocking(false).unwrap();
                let mut conn = HttpConn::new(stream);
                let r = conn.response();
                assert!(conn.closed_by_server(), "a refused connection left open");
                refused.push(r);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                stream.set_nonblocking(false).unwrap();
                held.push(stream);
            }
            Err(e) => panic!("peeking a connection: {e}"),
        }
    }
    (refused, held)
}

/// `n` connections from `source` that never send a byte, once the server
/// has accepted them all (and so answered those it refuses). Opened in
/// batches the listen backlog (128) holds, so that no SYN is dropped and
/// retried a second later: that delay could outlast the handshake timeout
/// of the first ones.
fn open_idle(addr: SocketAddr, source: Ipv4Addr, n: usize) -> Vec<TcpStream> {
    const BATCH: usize = 50;
    let mut streams = Vec::with_capacity(n);
    while streams.len() < n {
        let before = sample(
            &metrics_at(addr).expect("/metrics"),
            "wsgate_accepted_total",
        );
        let batch = BATCH.min(n - streams.len());
        streams.extend((0..batch).map(|_| connect_from(IpAddr::V4(source), addr)));
        // (+ 1: the /metrics request that asks.)
        wait_accepted(addr, before + batch as u64 + 1);
    }
    streams
}

/// Asserts a refusal: `status`, a `Retry-After` of whole seconds, close.
fn assert_refused(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.head);
    let retry = r.header("retry-after").expect("Retry-After");
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s > 0),
        "Retry-After: {retry}"
    );
    assert_eq!(r.header("connection"), Some("close"), "{}", r.head);
}

/// Waits until the server has accepted (and answered or held) everything
/// sent so far: `wsgate_accepted_total` reaches `n`. Returns the metrics.
fn wait_accepted(addr: SocketAddr, n: u64) -> String {
    let mut text = String::new();
    wait_for(
        &format!("{n} connections accepted"),
        PATIENCE,
        || match metrics_at(addr) {
            Some(m) if sample(&m, "wsgate_accepted_total") >= n => {
                text = m;
                true
            }
            _ => false,
        },
    );
    text
}

#[test]
fn ten_addresses_cannot_fill_the_server_without_logging_in() {
    const ADDRESSES: u8 = 10;
    const EACH: usize = 100;
    const CAP: usize = 64;
    // Ten addresses at the default cap hold 640 slots; the connection limit
    // is set above that, so that the cap, not the limit, is what stops
    // them. The limit itself is reached after, from one more address.
    const MAX: usize = 700;
    const BYSTANDERS: usize = 2;
    let server = server_with(|c| {
        c.limits.max_connections = MAX;
        c.limits.handshake_timeout = Duration::from_secs(5);
    });
    assert_eq!(
        wsgate::config::Limits::default().max_unauth_per_ip,
        Some(CAP),
        "the default cap"
    );
    let by = Bystanders::start(server.addr, "lobby");

    // 100 idle connections from each of 127.0.0.2 ..= 127.0.0.11, never a
    // byte sent: 64 held, 36 refused 429 at once.
    let mut idle: Vec<TcpStream> = Vec::new();
    for a in 0..ADDRESSES {
        let ip = local(2 + a);
        let (refused, held) = sort_out(open_idle(server.addr, ip, EACH));
        assert_eq!(held.len(), CAP, "{ip} holds {}", held.len());
        assert_eq!(refused.len(), EACH - CAP, "{ip}");
        for r in &refused {
            assert_refused(r, 429);
        }
        idle.extend(held);
    }
    // The refused hold no slot: the bystanders, 64 from each address, and
    // the /metrics request itself are all there is.
    let m = metrics_at(server.addr).expect("/metrics");
    let held = BYSTANDERS + CAP * ADDRESSES as usize;
    assert_eq!(sample(&m, "wsgate_connections"), held as u64 + 1);

    // Another address logs in and is served.
    let ip = local(12);
    let bearer = format!("Bearer {}", token("frank"));
    let (mut frank, _) = ws_on(
        connect_from(IpAddr::V4(ip), server.addr),
        "/ws?room=other",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(recv_text(&mut frank), "System: frank joined the chat");
    let mut health = HttpConn::new(connect_from(IpAddr::V4(ip), server.addr));
    health.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = health.response();
    assert_eq!((r.status, r.text()), (200, "ok"));

    drop(health);
    wait_for("the health check's slot to come back", PATIENCE, || {
        metrics_at(server.addr)
            .is_some_and(|m| sample(&m, "wsgate_connections") as usize == held + 2)
    });

    // The connection limit: more idle connections from 127.0.0.13 fill
    // it; past it, 503 at once, holding nothing. A request from 127.0.0.14
    // is answered 503 at accept, after all of those: then they are sorted.
    let more: Vec<TcpStream> = (0..CAP)
        .map(|_| connect_from(IpAddr::V4(local(13)), server.addr))
        .collect();
    let mut last = HttpConn::new(connect_from(IpAddr::V4(local(14)), server.addr));
    last.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_refused(&last.response(), 503);
    let (refused, more) = sort_out(more);
    assert!(!refused.is_empty(), "nobody was told 503");
    for r in &refused {
        assert_refused(r, 503);
    }
    assert!(
        !more.is_empty() && more.len() < MAX - held,
        "{} held from 127.0.0.13",
        more.len()
    );
    send(&mut frank, "at the limit");
    assert_eq!(recv_chat(&mut frank), "frank: at the limit");

    // The handshake timeout drops every idle connection; all comes back.
    wait_for("the idle connections to be dropped", PATIENCE, || {
        metrics_at(server.addr)
            .is_some_and(|m| sample(&m, "wsgate_connections") as usize <= BYSTANDERS + 1 + 1)
    });
    for mut s in idle.into_iter().chain(more) {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            other => panic!("an idle connection: {other:?}"),
        }
    }
    let bearer = format!("Bearer {}", token("grace"));
    let (mut grace, _) = ws_on(
        connect_from(IpAddr::V4(local(2)), server.addr),
        "/ws?room=other",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(recv_text(&mut grace), "System: grace joined the chat");
    assert_eq!(recv_text(&mut frank), "System: grace joined the chat");
    let (refused, again) = sort_out(open_idle(server.addr, local(2), CAP));
    assert_eq!((refused.len(), again.len()), (0, CAP));
    drop((frank, grace, again));
    assert_eq!(by.finish(), Vec::<String>::new());
}

#[test]
fn websockets_do_not_count_against_the_unauthenticated_cap() {
    const CAP: usize = 64;
    let server = server_with(|c| c.limits.max_conns_per_user = 100);
    let by = Bystanders::start(server.addr, "lobby");
    let ip = local(20);
    // 65 upgrades from one address, one after another: all open.
    let mut opened = Vec::new();
    for i in 0..=CAP {
        let stream = connect_from(IpAddr::V4(ip), server.addr);
        let bearer = format!("Bearer {}", token(&format!("u{i}")));
        let (mut ws, _) = ws_on(
            stream,
            &format!("/ws?room=many{}", i % 4),
            &[("Authorization", bearer.as_str())],
        );
        assert_eq!(recv_text(&mut ws), format!("System: u{i} joined the chat"));
        opened.push(ws);
    }
    // The cap still holds for connections that have not logged in.
    let (refused, held) = sort_out(open_idle(server.addr, ip, CAP + 2));
    assert_eq!(held.len(), CAP);
    assert_eq!(refused.len(), 2);
    for r in &refused {
        assert_refused(r, 429);
    }
    drop(opened);
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 3. Login CSRF

#[test]
fn state_changing_posts_from_foreign_or_null_origins_are_403() {
    let app = "https://app.example.com";
    let server = server_with(|c| c.allowed_origins = vec![Origin::parse(app).unwrap()]);
    let by = Bystanders::start(server.addr, "lobby");
    let form = "username=alice&password=wonderland";
    for origin in ["https://evil.example", "null"] {
        let r = post(&server, "/login", form, &format!("Origin: {origin}\r\n"));
        assert_eq!(r.status, 403, "/login from {origin}: {}", r.head);
        assert!(r.header("set-cookie").is_none(), "{}", r.head);
    }
    let own = server.origin();
    for headers in [
        String::new(),
        format!("Origin: {own}\r\n"),
        format!("Origin: {app}\r\n"),
    ] {
        let r = post(&server, "/login", form, &headers);
        assert_eq!(r.status, 204, "/login with {headers:?}: {}", r.head);
        assert!(
            r.header("set-cookie")
                .is_some_and(|c| c.starts_with("__Host-wsgate=")),
            "{}",
            r.head
        );
    }

    // A session with a live WebSocket.
    let r = post(&server, "/login", form, "");
    let sid = crate::common::session_id(&r);
    let cookie = format!("__Host-wsgate={sid}");
    let (mut ws, _) = server.ws(
        "/ws?room=csrf",
        &[("Cookie", cookie.as_str()), ("Origin", own.as_str())],
    );
    assert_eq!(recv_text(&mut ws), "System: alice joined the chat");
    let with_cookie = format!("Cookie: {cookie}\r\n");
    for origin in ["https://evil.example", "null"] {
        let r = post(
            &server,
            "/logout",
            "",
            &format!("{with_cookie}Origin: {origin}\r\n"),
        );
        assert_eq!(r.status, 403, "/logout from {origin}: {}", r.head);
        assert!(!r.mentions(&sid));
        let r = post(
            &server,
            "/ws-ticket",
            "",
            &format!("{with_cookie}Origin: {origin}\r\n"),
        );
        assert_eq!(r.status, 403, "/ws-ticket from {origin}: {}", r.head);
    }
    // The session survived: its WebSocket chats, a ticket is issued.
    send(&mut ws, "still logged in");
    assert_eq!(recv_text(&mut ws), "alice: still logged in");
    let r = post(&server, "/ws-ticket", "", &with_cookie);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.json()["ticket"].is_string());
    // A logout without Origin (no browser) is a logout.
    let r = post(&server, "/logout", "", &with_cookie);
    assert_eq!(r.status, 204, "{}", r.head);
    assert_eq!(recv_close(&mut ws), (4403, "logged out".to_string()));
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 4. Look-alike names

/// A token for `sub` signed with the server's secret, valid 10 minutes.
fn token_for_sub(sub: &str) -> String {
    sign_claims(json!({"sub": sub, "exp": now_ms() / 1000 + 600}))
}

#[test]
fn names_that_pass_for_system_are_refused_and_other_scripts_are_welcome() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    for name in [
        "System\u{34F}",
        "System\u{FE0F}",
        "\u{3164}System",
        "System\u{1D173}",
        "System\u{1BCA0}",
        "\u{FF33}\u{FF59}\u{FF53}\u{FF54}\u{FF45}\u{FF4D}",
        "Sy\u{17F}tem",
        "\u{405}\u{443}\u{455}t\u{435}m",
    ] {
        let token = token_for_sub(name);
        let bearer = format!("Bearer {token}");
        WsRequest::new(&server, "/ws?room=names")
            .header("Authorization", &bearer)
            .refused(&server, 401, &token);
    }
    for name in ["Jos\u{E9}", "\u{5F20}\u{4F1F}"] {
        let bearer = format!("Bearer {}", token_for_sub(name));
        let (mut ws, _) = server.ws("/ws?room=names", &[("Authorization", bearer.as_str())]);
        assert_eq!(
            recv_text(&mut ws),
            format!("System: {name} joined the chat")
        );
        close(ws);
    }
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 6, 7. The log of the real binary

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real binary on `127.0.0.1:0` with [`SECRET`] and no rate limits,
/// its stderr read as raw lines (a line that is not UTF-8 is a finding).
struct Binary {
    child: Running,
    addr: SocketAddr,
    lines: mpsc::Receiver<Vec<u8>>,
    forward: Option<JoinHandle<()>>,
}

impl Binary {
    fn start() -> Binary {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wsgate"));
        // why: as in the fixture, rate limits off: many upgrades come from
        // 127.0.0.1 here, and the bystanders tick faster than the default
        // message rate.
        cmd.env_clear()
            .args(["--listen", "127.0.0.1:0"])
            .args(["--upgrade-rate", "0", "--message-rate", "0"])
            .env("WSGATE_SECRET", std::str::from_utf8(SECRET).unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = Running(cmd.spawn().expect("spawn wsgate"));
        let stderr = child.0.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel::<Vec<u8>>();
        let forward = std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut seen = Vec::new();
        let addr = loop {
            let line = lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no \"listening on\" line; stderr: {seen:?}"));
            let text = String::from_utf8_lossy(&line).into_owned();
            seen.push(text.clone());
            if let Some((_, addr)) = text.split_once("listening on ") {
                break addr.trim().parse().expect("an address");
            }
        };
        Binary {
            child,
            addr,
            lines,
            forward: Some(forward),
        }
    }

    /// Stops the binary and returns every line it logged after start-up.
    fn log(mut self) -> Vec<Vec<u8>> {
        self.child.0.kill().expect("kill wsgate");
        self.child.0.wait().expect("wait for wsgate");
        if let Some(f) = self.forward.take() {
            f.join().unwrap();
        }
        self.lines.try_iter().collect()
    }
}

/// Sends `request` raw to `addr` and reads the response.
fn exchange_at(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut conn = HttpConn::new(connect_to(addr));
    conn.send(request);
    conn.response()
}

#[test]
fn credentials_in_any_query_shape_or_path_never_reach_the_log() {
    let bin = Binary::start();
    let addr = bin.addr;
    let by = Bystanders::start(addr, "lobby");
    let expired = mint("carol", "member", now_ms() - 7_200_000, 60);
    let bad = crate::common::craft_token(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(r#"{{"sub":"mallory","exp":{}}}"#, now_ms() / 1000 + 600),
        crate::common::OTHER_SECRET,
    );
    // A real ticket, from a bearer token.
    let valid = token("alice");
    let r = exchange_at(
        addr,
        format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {valid}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ticket = r.json()["ticket"].as_str().unwrap().to_string();

    let targets = [
        (format!("/ws?{expired}"), "/ws?[redacted]"),
        (format!("/ws?{expired}="), "/ws?[redacted]"),
        (
            format!("/ws?room=lobby&{expired}"),
            "/ws?room=lobby&[redacted]",
        ),
        (format!("/ws?room=lobby&{bad}"), "/ws?room=lobby&[redacted]"),
        (format!("/ws?{ticket}"), "/ws?[redacted]"),
        (format!("/ws/{expired}"), "/ws/[redacted]"),
        (format!("/ws/{bad}"), "/ws/[redacted]"),
    ];
    for (target, _) in &targets {
        let r = exchange_at(addr, WsRequest::to(addr, target).render().as_bytes());
        assert_eq!(r.status, 401, "{target}: {}", r.head);
    }
    let finished = by.finish();
    assert_eq!(finished, Vec::<String>::new());
    let log: Vec<String> = bin
        .log()
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let text = log.join("\n");
    for secret in [&expired, &bad, &ticket, &valid] {
        assert!(
            !text.contains(secret.as_str()),
            "the log holds a credential:\n{text}"
        );
        // Nor any of its parts (a JWT's signature alone is a secret).
        for part in secret.split('.').filter(|p| p.len() >= 16) {
            assert!(!text.contains(part), "the log holds part of a credential");
        }
    }
    let refused: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(" refused ") && l.contains("status=401"))
        .collect();
    assert_eq!(refused.len(), targets.len(), "{text}");
    for (line, (_, shown)) in refused.iter().zip(&targets) {
        assert!(
            line.contains(&format!("target=\"{shown}\"")),
            "expected target=\"{shown}\" in {line}"
        );
    }
}

/// A log line's fields: `key=value` or `key="quoted value"` (with `\"`
/// and `\\` escapes), in order; the timestamp and level come first as
/// fields without a key.
fn fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut key = String::new();
        let mut value = String::new();
        let mut in_value = false;
        while let Some(&c) = chars.peek() {
            if c == ' ' {
                break;
            }
            chars.next();
            if !in_value && c == '=' {
                in_value = true;
                if chars.peek() == Some(&'"') {
                    chars.next();
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => value.extend(chars.next()),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                }
            } else if in_value {
                value.push(c);
            } else {
                key.push(c);
            }
        }
        out.push((key, value));
    }
}

/// True for a character that must never appear raw in a log line.
fn breaks_a_line(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

#[test]
fn peer_values_in_log_lines_are_quoted_and_cannot_forge_fields_or_lines() {
    let bin = Binary::start();
    let addr = bin.addr;
    let by = Bystanders::start(addr, "lobby");
    let forged = "x peer=6.6.6.6 room=admin";
    let t = token_for_sub(forged);
    let (mut ws, _) = ws_at(addr, &format!("/ws?room=inj&token={t}"), &[]);
    assert_eq!(
        recv_text(&mut ws),
        format!("System: {forged} joined the chat")
    );
    close(ws);

    // Line breakers and bidi controls in queries, paths and headers,
    // percent-encoded and raw.
    let nasty = [
        "\u{2028}", "\u{2029}", "\u{85}", "\u{9B}", "\u{202E}", "\u{2066}",
    ];
    let bearer = format!("Bearer {}", token("alice"));
    let mut sent = 0;
    for c in nasty {
        let encoded: String = c.bytes().map(|b| format!("%{b:02X}")).collect();
        for target in [
            format!("/ws?room=lobby{encoded}&x={encoded}"),
            format!("/ws?room={encoded}"),
            format!("/ws{encoded}"),
            format!("/ws?room=lobby{c}&x={c}"),
            format!("/ws{c}"),
        ] {
            let request = WsRequest::to(addr, &target)
                .header("Authorization", &bearer)
                .header("Origin", &format!("http://a{c}b"))
                .header("User-Agent", &format!("ua{c}"));
            let mut conn = HttpConn::new(connect_to(addr));
            conn.send(request.render().as_bytes());
            // Whatever the answer (a refusal, or a hang-up for a head the
            // parser refuses), the server must not break its log.
            if !conn.hung_up() {
                let r = conn.response();
                assert_ne!(r.status, 101, "{target:?} was accepted");
            }
            sent += 1;
        }
        let r = exchange_at(
            addr,
            form_request(
                &format!("/login?x={encoded}"),
                "username=alice&password=wonderland",
                &format!("Origin: https://evil{encoded}.example\r\nConnection: close\r\n"),
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 403);
    }
    assert_eq!(sent, nasty.len() * 5);
    assert_eq!(by.finish(), Vec::<String>::new());

    let log = bin.log();
    for raw in &log {
        let line =
            std::str::from_utf8(raw).unwrap_or_else(|_| panic!("a log line is not UTF-8: {raw:?}"));
        assert!(
            !line.chars().any(breaks_a_line),
            "a raw line breaker or bidi control in the log: {line:?}"
        );
    }
    let log: Vec<String> = log
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    // The requests above were logged (as refusals), not skipped.
    let refused = log.iter().filter(|l| l.contains(" refused ")).count();
    assert!(refused >= 4 * nasty.len(), "{refused} refusals logged");
    let quoted = format!("user=\"{forged}\"");
    for event in ["open", "close"] {
        let lines: Vec<&String> = log
            .iter()
            .filter(|l| l.contains(&format!(" {event} ")) && l.contains(&quoted))
            .collect();
        assert_eq!(lines.len(), 1, "one {event} line for {forged:?}: {log:#?}");
        let f = fields(lines[0]);
        let peers: Vec<&(String, String)> = f.iter().filter(|(k, _)| k == "peer").collect();
        assert_eq!(peers.len(), 1, "{}", lines[0]);
        assert!(peers[0].1.starts_with("127.0.0.1:"), "{}", lines[0]);
        assert!(
            f.iter().any(|(k, v)| k == "user" && v == forged),
            "{}",
            lines[0]
        );
        assert!(!f.iter().any(|(k, v)| k == "room" && v == "admin"));
    }
}

// ----------------------------------------------------------------------
// 8. /metrics series are bounded

#[test]
fn peer_close_codes_cannot_create_metric_series() {
    const EACH: u16 = 140;
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let mut codes: Vec<Option<u16>> = Vec::new();
    codes.extend((0..EACH).map(|i| Some(3000 + i)));
    codes.extend((0..EACH).map(|i| Some(4000 + i)));
    // Valid RFC codes, and codes no endpoint may send (tungstenite refuses
    // them; the server answers them as a protocol error).
    codes.extend(
        [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 0, 999, 1004, 1005, 1006, 1015,
            1016, 2999, 5000, 65535,
        ]
        .map(Some),
    );
    codes.push(None);
    assert_eq!(codes.len(), 300);
    for (i, code) in codes.iter().enumerate() {
        let (mut writer, mut conn) = raw_ws(&server, &format!("c{}", i % 10), "codes");
        let payload = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
        writer.write_all(&masked_frame(0x8, &payload)).unwrap();
        let _ = raw_close_code(&mut conn);
    }
    // And one lost without a close frame (1006).
    let (writer, conn) = raw_ws(&server, "lost", "codes");
    drop((writer, conn));

    let mut text = String::new();
    wait_for("every ending to be counted", PATIENCE, || {
        text = metrics_at(server.addr).unwrap();
        let total: u64 = labelled(&text, "wsgate_closes_total")
            .iter()
            .map(|(_, n)| n)
            .sum();
        total >= 301
    });
    let series = labelled(&text, "wsgate_closes_total");
    let peer: Vec<(&str, u64)> = series
        .iter()
        .filter_map(|(l, n)| {
            Some((
                l.strip_prefix("by=\"peer\",code=\"")?.strip_suffix('"')?,
                *n,
            ))
        })
        .collect();
    assert!(peer.len() <= 7, "{series:?}");
    for (label, _) in &peer {
        assert!(
            ["1000", "1001", "1005", "1006", "1xxx", "3xxx", "4xxx"].contains(label),
            "a peer series {label}: {series:?}"
        );
    }
    assert!(peer.contains(&("3xxx", u64::from(EACH))), "{peer:?}");
    assert!(peer.contains(&("4xxx", u64::from(EACH))), "{peer:?}");
    assert!(peer.iter().any(|(l, _)| *l == "1006"), "{peer:?}");
    // Whatever the server counts as its own decisions are its own codes.
    let own = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 4401, 4403, 4409, 4429,
    ];
    for (labels, _) in &series {
        if let Some(code) = labels.strip_prefix("by=\"server\",code=\"") {
            let code: u16 = code.trim_end_matches('"').parse().unwrap();
            assert!(own.contains(&code), "a server series {code}: {series:?}");
        } else {
            assert!(labels.starts_with("by=\"peer\","), "{labels}");
        }
    }
    assert!(series.len() <= 7 + own.len(), "{series:?}");
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 9. Host is checked

#[test]
fn a_missing_repeated_or_malformed_host_is_400() {
    let server = server_with(|_| {});
    let by = Bystanders::start(server.addr, "lobby");
    let host = server.addr.to_string();
    let healthz = |host_lines: &str, version: &str| {
        server.exchange(&format!(
            "GET /healthz {version}\r\n{host_lines}Connection: close\r\n\r\n"
        ))
    };
    let r = healthz(&format!("Host: {host}\r\n"), "HTTP/1.1");
    assert_eq!(r.status, 200, "the control");
    for host_lines in [
        String::new(),
        format!("Host: {host}\r\nHost: {host}\r\n"),
        "Host: a b@c\r\n".to_string(),
    ] {
        let r = healthz(&host_lines, "HTTP/1.1");
        assert_eq!(
            r.status, 400,
            "GET /healthz with {host_lines:?}: {}",
            r.head
        );

        let t = token("mallory");
        let request = WsRequest::new(&server, "/ws?room=host")
            .without("Host")
            .header("Authorization", &format!("Bearer {t}"));
        let request = host_lines
            .split("\r\n")
            .filter_map(|l| l.split_once(": "))
            .fold(request, |r, (n, v)| r.header(n, v));
        request.refused(&server, 400, &t);
    }
    let r = healthz("", "HTTP/1.0");
    assert_eq!((r.status, r.text()), (200, "ok"), "HTTP/1.0 without Host");
    // The control: the same upgrade with one good Host opens.
    let ws = server.join("mallory", "host");
    close(ws);
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 10. Fragments count against the message limit

#[test]
fn thousands_of_empty_fragments_are_1009_and_fifty_are_a_message() {
    let server = server_with(|_| {});
    assert_eq!(
        wsgate::config::Limits::default().max_message_bytes,
        64 * 1024
    );
    let by = Bystanders::start(server.addr, "lobby");
    let mut watcher = server.join("walt", "frag");

    // 50 fragments: one message, broadcast whole.
    let (mut bob, mut bob_conn) = raw_ws(&server, "bob", "frag");
    assert_eq!(recv_text(&mut watcher), "System: bob joined the chat");
    let parts: Vec<String> = (0..50).map(|i| format!("p{i:02} ")).collect();
    let mut bytes = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        bytes.extend(client_frame(i == 49, opcode, part.as_bytes(), true));
    }
    bob.write_all(&bytes).unwrap();
    let whole = format!("bob: {}", parts.concat());
    assert_eq!(recv_text(&mut watcher), whole);
    assert_eq!(bob_conn.frame(), (0x1, whole.clone().into_bytes()));

    // 2,000 empty continuations: closed 1009.
    let (mut writer, mut conn) = raw_ws(&server, "mallory", "frag");
    assert_eq!(recv_text(&mut watcher), "System: mallory joined the chat");
    assert_eq!(
        bob_conn.frame(),
        (0x1, b"System: mallory joined the chat".to_vec())
    );
    let mut bytes = client_frame(false, 0x1, b"start", true);
    for _ in 0..2000 {
        bytes.extend(client_frame(false, 0x0, b"", true));
    }
    bytes.extend(client_frame(true, 0x0, b"end", true));
    // why: the server may close before it has read everything.
    let _ = writer.write_all(&bytes);
    assert_eq!(raw_close_code(&mut conn), Some(1009));
    assert_eq!(recv_text(&mut watcher), "System: mallory has left the chat");

    // bob's fragmented messages still go through.
    let mut again = client_frame(false, 0x1, b"once ", true);
    again.extend(client_frame(true, 0x0, b"more", true));
    bob.write_all(&again).unwrap();
    assert_eq!(recv_text(&mut watcher), "bob: once more");
    drop((bob, bob_conn, writer, conn));
    assert_eq!(by.finish(), Vec::<String>::new());
}

// ----------------------------------------------------------------------
// 9. Processes sharing a port (--reuse-port)

#[test]
fn a_draining_process_leaves_new_connections_to_the_others_on_its_port() {
    // The first process, alone on the port: carol (who does not read) and
    // alice join it, and alice's lines fill carol's queue, so that its
    // drain will wait (up to 5 s) for a queue that never empties.
    let first = TestServer::with(|c| {
        c.reuse_port = true;
        c.limits.slow_consumer_timeout = Duration::from_secs(60);
    });
    let addr = first.addr;
    let resting = join_over(stalling_stream(addr), "carol", "bp");
    let mut alice = first.join("alice", "bp");
    for i in 0..8 {
        send(&mut alice, &numbered_line(i, 60 * 1024));
    }
    let mut seen = 0;
    while seen < 8 {
        if line_number(&recv_text(&mut alice)).is_some() {
            seen += 1;
        }
    }
    // Without SO_REUSEPORT on both, the port is taken.
    let taken = wsgate::shell::Gateway::bind(
        {
            let mut c = Config::with_secret(SECRET);
            c.listen = addr;
            c
        },
        Arc::new(wsgate::auth::users::Users::demo()),
    );
    assert_eq!(
        taken.err().map(|e| e.kind()),
        Some(io::ErrorKind::AddrInUse)
    );
    let second = TestServer::with(|c| {
        c.reuse_port = true;
        c.listen = addr;
    });
    // The first begins to drain (alice hears 1001), and stays draining:
    // carol's queue holds it. Every new connection meanwhile is answered,
    // by the second: the first closed its listening socket at once, where
    // it would otherwise have taken its share of connections and never
    // accepted them.
    let draining = std::thread::spawn(move || drop(first));
    assert_eq!(recv_close(&mut alice).0, 1001);
    for _ in 0..40 {
        let r = second.exchange("GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!((r.status, r.text()), (200, "ok"));
    }
    assert!(
        !draining.is_finished(),
        "the first stopped draining early: the test proves nothing"
    );
    draining.join().unwrap();
    drop(resting);
}
