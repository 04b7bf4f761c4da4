//! The floor: a deliberately empty WebSocket server, the least a handshake
//! can cost on this machine (issue 13). `scripts/bench.sh` runs it beside
//! wsgate in the `handshake` workload and prints wsgate ÷ floor in
//! handshakes per server-CPU-second: how much of wsgate's per-handshake
//! cost is its own, since the kernel's share (accept, TCP, epoll, close)
//! is the same for both.
//!
//! It is a measuring stick, not a server: do not run it for anything else.
//! It accepts on loopback, reads until the blank line that ends the
//! request head (finding `\r\n\r\n` is all the parsing it does), writes a
//! canned `101`, answers a close frame with a close frame, and hangs up at
//! the client's FIN. What it skips: the request line, headers, the
//! `Sec-WebSocket-Key` (its `Sec-WebSocket-Accept` is fixed: the answer to
//! the key `examples/loadgen` always sends, and loadgen checks only the
//! status anyway), the token, rooms, limits, timers, logging, frames other
//! than close, and a 101 the socket does not take at once (the connection
//! is dropped; a fresh loopback socket always takes 129 bytes). Nothing is
//! allocated per connection beyond its slab slot.
//!
//!   cargo build --release --example floor
//!   target/release/examples/floor --listen 127.0.0.1:9001
#![forbid(unsafe_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// The accept value for loadgen's fixed key `dGhlIHNhbXBsZSBub25jZQ==`
/// (RFC 6455's example).
const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
/// A close frame without a status code.
const CLOSE: &[u8] = b"\x88\x00";
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

struct Conn {
    stream: TcpStream,
    /// Bytes of `\r\n\r\n` matched so far; 4 once the 101 is sent.
    matched: u8,
}

fn main() {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("a valid address");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse())) {
            ("--listen", Some(Ok(addr))) => listen = addr,
            _ => {
                eprintln!("usage: floor [--listen ADDR]   (default 127.0.0.1:0)");
                std::process::exit(2);
            }
        }
    }
    let mut listener = TcpListener::bind(listen).expect("bind");
    let addr = listener.local_addr().expect("local address");
    eprintln!("listening on {addr}");
    let mut poll = Poll::new().expect("poll");
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .expect("register the listener");
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            panic!("poll: {e}");
        }
        for event in &events {
            if event.token() == LISTENER {
                // Edge-triggered: accept until the queue is empty.
                while let Ok((stream, _)) = listener.accept() {
                    let entry = conns.vacant_entry();
                    let mut conn = Conn { stream, matched: 0 };
                    let token = Token(entry.key());
                    if poll
                        .registry()
                        .register(&mut conn.stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        entry.insert(conn);
                    }
                }
                continue;
            }
            let id = event.token().0;
            if let Some(conn) = conns.get_mut(id) {
                if !serve(conn, &mut buf) {
                    // Dropping the stream closes it (mio deregisters it).
                    conns.remove(id);
                }
            }
        }
    }
}

/// Reads what `conn` has (until `WouldBlock`); false when it is to be
/// hung up: the client's FIN, a close frame (answered), an error.
fn serve(conn: &mut Conn, buf: &mut [u8]) -> bool {
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let mut rest = &buf[..n];
        if conn.matched < 4 {
            // Find the end of the head, possibly split across reads.
            let Some(i) = rest.iter().position(|&b| {
                conn.matched = if b == HEAD_END[conn.matched as usize] {
                    conn.matched + 1
                } else {
                    u8::from(b == b'\r')
                };
                conn.matched == 4
            }) else {
                continue;
            };
            if conn.stream.write(RESPONSE).ok() != Some(RESPONSE.len()) {
                return false;
            }
            rest = &rest[i + 1..];
        }
        // After the 101: a close frame's first byte is 0x88 (FIN, opcode 8),
        // looked for only at the start of a read. Anything else is ignored.
        if rest.first() == Some(&0x88) {
            let _ = conn.stream.write(CLOSE);
            return false;
        }
    }
}
