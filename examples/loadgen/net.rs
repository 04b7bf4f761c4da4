//! The client side: many non-blocking WebSocket clients on one mio loop.
//!
//! Each client connects (optionally from a chosen 127.x source address, so
//! that tens of thousands of connections do not run out of ephemeral
//! ports), sends one upgrade request, reads the response head, then speaks
//! just enough RFC 6455 to count what arrives: server frames are parsed in
//! place out of one shared read buffer, pings are answered, and client
//! text frames are masked as the RFC requires.
//!
//! With [`Pool::set_tls`], every client speaks TLS (a non-blocking rustls
//! `ClientConnection` per client): the upgrade request waits in rustls
//! until the handshake is done, each socket read is fed to rustls whole
//! (one `read()` of up to 256 KiB, as in plain mode) and what it decrypts
//! goes through the same WebSocket parsing; queued frames are encrypted
//! as one record per flush where they fit.

use std::io::{self, BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, SockRef, Socket, Type};

/// Size of the shared read buffer: one `read()` takes up to this much.
const READ_BUF: usize = 256 * 1024;

/// Where a client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect in progress; the request is written once it completes.
    Connecting,
    /// Request written; waiting for the response head.
    AwaitHead,
    /// `101` received: a WebSocket.
    Open,
}

/// What happened to a client; the workload decides what to do next.
pub trait Handler {
    /// The `101` arrived, `latency` after the connect began.
    fn on_open(&mut self, _id: usize, _latency: Duration) {}
    /// The server answered with another status, or the connection failed
    /// before a response (`status` 0).
    fn on_refused(&mut self, _id: usize, _status: u16) {}
    /// A text frame arrived; `now_us` is the generator clock when the
    /// `read()` that carried it returned.
    fn on_text(&mut self, _id: usize, _payload: &[u8], _now_us: u64) {}
    /// The server closed the WebSocket (close frame code, or `None` for a
    /// plain end of stream or a reset).
    fn on_closed(&mut self, _id: usize, _code: Option<u16>) {}
    /// An open WebSocket ended without a close frame; called just before
    /// `on_closed(id, None)`. `how` is `"eof"` (the peer's FIN), `"reset"`
    /// (ECONNRESET) or `"error"` (another socket error).
    fn on_stream_end(&mut self, _id: usize, _how: &'static str) {}
}

struct Client {
    stream: TcpStream,
    phase: Phase,
    /// Bytes of an incomplete head or frame, kept until the rest arrives.
    inbuf: Vec<u8>,
    /// Bytes not yet accepted by the socket (with TLS: plaintext not yet
    /// accepted by rustls).
    out: Vec<u8>,
    started: Instant,
    tls: Option<Box<rustls::ClientConnection>>,
}

/// Many clients of one server, on one mio `Poll`.
pub struct Pool {
    poll: Poll,
    events: Events,
    clients: Slab<Client>,
    buf: Vec<u8>,
    target: SocketAddr,
    host: String,
    /// The generator's clock: every timestamp is microseconds since this.
    pub epoch: Instant,
    mask_state: u32,
    /// Connections that failed to connect, by `io::ErrorKind`, for the report.
    pub connect_errors: u64,
    /// Frames that broke the protocol (masked server frames, bad lengths),
    /// and TLS errors.
    pub protocol_errors: u64,
    /// Set by [`Pool::set_tls`]: every client opened after it speaks TLS.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// Plaintext decrypted from one read (TLS only).
    plain: Vec<u8>,
    /// What the first TLS handshake negotiated ("TLSv1_3
    /// TLS13_AES_256_GCM_SHA384 X25519"), for the report.
    pub tls_negotiated: Option<String>,
}

/// The `n`th source address: 127.0.0.2, 127.0.0.3, … then on into
/// 127.0.1.x and so on, skipping .0 and .255 host parts. 127.0.0.1 (where
/// the server usually listens) is left alone.
pub fn source_addr(n: usize) -> IpAddr {
    let n = n + 1; // 127.0.0.2 is n = 0
    let hi = n / 254;
    let lo = n % 254 + 1;
    IpAddr::V4(Ipv4Addr::new(127, (hi >> 8) as u8, hi as u8, lo as u8))
}

impl Pool {
    /// A pool of clients for the server at `target`.
    pub fn new(target: SocketAddr, capacity: usize) -> io::Result<Pool> {
        Ok(Pool {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            clients: Slab::with_capacity(capacity),
            buf: vec![0; READ_BUF],
            host: target.to_string(),
            target,
            epoch: Instant::now(),
            mask_state: 0x9e37_79b9,
            connect_errors: 0,
            protocol_errors: 0,
            tls: None,
            plain: Vec::new(),
            tls_negotiated: None,
        })
    }

    /// Makes every client opened from now on speak TLS with `config`,
    /// checking the server's certificate against `name`.
    pub fn set_tls(&mut self, config: Arc<rustls::ClientConfig>, name: ServerName<'static>) {
        self.plain = Vec::with_capacity(READ_BUF + 16 * 1024);
        self.tls = Some((config, name));
    }

    /// Microseconds since [`Pool::epoch`].
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Number of clients held (any phase).
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// The phase of client `id`, if it exists.
    pub fn phase(&self, id: usize) -> Option<Phase> {
        self.clients.get(id).map(|c| c.phase)
    }

    /// Starts a client: connect from `source` (or the kernel's choice),
    /// then send `GET {path}` as an upgrade. Returns its id.
    pub fn open(&mut self, source: Option<IpAddr>, path: &str) -> io::Result<usize> {
        self.open_with(source, path, "")
    }

    /// [`Pool::open`] with `extra` header lines (each ending in `\r\n`,
    /// e.g. `Sec-WebSocket-Protocol: wsgate.json\r\n`) in the request.
    pub fn open_with(
        &mut self,
        source: Option<IpAddr>,
        path: &str,
        extra: &str,
    ) -> io::Result<usize> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if let Some(ip) = source {
            socket.bind(&SocketAddr::new(ip, 0).into())?;
        }
        match socket.connect(&self.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) => {} // EINPROGRESS
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                self.connect_errors += 1;
                return Err(e);
            }
        }
        // why: created (and its ClientHello's key share generated) before
        // the socket is registered, so a failure leaves nothing behind.
        let tls = match &self.tls {
            Some((config, name)) => Some(Box::new(
                rustls::ClientConnection::new(Arc::clone(config), name.clone())
                    .map_err(io::Error::other)?,
            )),
            None => None,
        };
        let mut stream = TcpStream::from_std(socket.into());
        let entry = self.clients.vacant_entry();
        let id = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n",
            self.host
        );
        entry.insert(Client {
            stream,
            phase: Phase::Connecting,
            inbuf: Vec::new(),
            out: request.into_bytes(),
            started: Instant::now(),
            tls,
        });
        Ok(id)
    }

    /// Drops client `id`. With `reset`, an abortive close (RST, no
    /// TIME_WAIT); otherwise an orderly FIN.
    pub fn close(&mut self, id: usize, reset: bool) {
        if let Some(mut c) = self.clients.try_remove(id) {
            if reset {
                let _ = SockRef::from(&c.stream).set_linger(Some(Duration::ZERO));
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Queues one masked text frame on client `id` (not yet written; see
    /// [`Pool::flush`]).
    pub fn queue_text(&mut self, id: usize, payload: &[u8]) {
        // xorshift: masking keys need not be strong here, only present.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        if let Some(c) = self.clients.get_mut(id) {
            encode_masked(0x1, payload, x.to_be_bytes(), &mut c.out);
        }
    }

    /// Writes what is queued on client `id`, as far as the socket takes it.
    pub fn flush(&mut self, id: usize) {
        if let Some(c) = self.clients.get_mut(id) {
            if c.phase != Phase::Connecting {
                write_out(c);
            }
        }
    }

    /// Waits for events (at most `timeout`) and handles them.
    pub fn poll_once<H: Handler>(&mut self, handler: &mut H, timeout: Option<Duration>) {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => panic!("poll failed: {e}"),
        }
        // why: collected first, because handling an event needs `&mut self`
        // while `self.events` is borrowed by the iterator.
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        for (id, readable, writable) in ready {
            if writable {
                self.on_writable(id, handler);
            }
            if readable {
                self.on_readable(id, handler);
            }
        }
    }

    /// Reads client `id` now, as if it had just become readable: for a
    /// client whose socket was left unread for a while (its readiness edge
    /// may have been taken by an earlier poll).
    pub fn read_now<H: Handler>(&mut self, id: usize, handler: &mut H) {
        self.on_readable(id, handler);
    }

    fn on_writable<H: Handler>(&mut self, id: usize, handler: &mut H) {
        let Some(c) = self.clients.get_mut(id) else {
            return;
        };
        if c.phase == Phase::Connecting {
            match c.stream.take_error() {
                Ok(None) => {}
                _ => return self.fail(id, handler),
            }
            match c.stream.peer_addr() {
                Ok(_) => c.phase = Phase::AwaitHead,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => return self.fail(id, handler),
            }
        }
        if !write_out(c) {
            self.fail(id, handler);
        }
    }

    fn fail<H: Handler>(&mut self, id: usize, handler: &mut H) {
        self.fail_as(id, "error", handler);
    }

    /// Ends client `id` after its stream ended `how` (see
    /// [`Handler::on_stream_end`]).
    fn fail_as<H: Handler>(&mut self, id: usize, how: &'static str, handler: &mut H) {
        if let Some(c) = self.clients.get(id) {
            match c.phase {
                Phase::Connecting => {
                    self.connect_errors += 1;
                    handler.on_refused(id, 0);
                }
                Phase::AwaitHead => handler.on_refused(id, 0),
                Phase::Open => {
                    handler.on_stream_end(id, how);
                    handler.on_closed(id, None);
                }
            }
            self.close(id, false);
        }
    }

    fn on_readable<H: Handler>(&mut self, id: usize, handler: &mut H) {
        loop {
            let Some(c) = self.clients.get_mut(id) else {
                return;
            };
            if c.phase == Phase::Connecting {
                // Readable before writable: an error (refused) or data; let
                // the writable path decide.
                if let Ok(Some(_)) | Err(_) = c.stream.take_error() {
                    return self.fail(id, handler);
                }
                return;
            }
            let n = match c.stream.read(&mut self.buf) {
                Ok(0) => return self.fail_as(id, "eof", handler),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return self.fail_as(id, "reset", handler);
                }
                Err(_) => return self.fail(id, handler),
            };
            let now_us = self.epoch.elapsed().as_micros() as u64;
            let mut close_notify = false;
            let data: &[u8] = match c.tls.as_deref_mut() {
                None => &self.buf[..n],
                Some(tls) => {
                    match tls_feed(tls, &self.buf[..n], &mut self.plain) {
                        Ok(closed) => close_notify = closed,
                        Err(()) => {
                            self.protocol_errors += 1;
                            return self.fail(id, handler);
                        }
                    }
                    if self.tls_negotiated.is_none() && !tls.is_handshaking() {
                        let known = |v: Option<String>| v.unwrap_or_else(|| "?".into());
                        self.tls_negotiated = Some(format!(
                            "{} {} {}",
                            known(tls.protocol_version().map(|v| format!("{v:?}"))),
                            known(
                                tls.negotiated_cipher_suite()
                                    .map(|s| format!("{:?}", s.suite()))
                            ),
                            known(
                                tls.negotiated_key_exchange_group()
                                    .map(|g| format!("{:?}", g.name()))
                            ),
                        ));
                    }
                    &self.plain
                }
            };
            // With TLS: the client's Finished, and the request rustls held
            // until the handshake was done.
            if c.tls.as_ref().is_some_and(|t| t.wants_write()) && !write_out(c) {
                return self.fail(id, handler);
            }
            match deliver(c, id, data, now_us, handler, &mut self.protocol_errors) {
                Delivered::More => {}
                Delivered::Ended => {
                    self.close(id, false);
                    return;
                }
            }
            if close_notify {
                return self.fail_as(id, "eof", handler);
            }
            // why: a short read drained the socket's receive queue, and on
            // Linux every later arrival raises a new edge; skipping the read
            // that would only say `WouldBlock` halves the generator's
            // syscalls (tokio does the same). With TLS, rustls was given
            // the whole read and all it decrypted was taken out, so nothing
            // waits there either.
            if n < self.buf.len() {
                return;
            }
        }
    }
}

/// What [`deliver`] left of a client.
enum Delivered {
    /// Still there: read on.
    More,
    /// Refused or closed (the handler was told): drop it.
    Ended,
}

/// Handles `data` (plaintext) that arrived on client `c`: the response
/// head, then frames.
fn deliver<H: Handler>(
    c: &mut Client,
    id: usize,
    mut data: &[u8],
    now_us: u64,
    handler: &mut H,
    protocol_errors: &mut u64,
) -> Delivered {
    if c.phase == Phase::AwaitHead {
        c.inbuf.extend_from_slice(data);
        let Some(end) = find_head_end(&c.inbuf) else {
            if c.inbuf.len() > 16 * 1024 {
                handler.on_refused(id, 0);
                return Delivered::Ended;
            }
            return Delivered::More;
        };
        let status = parse_status(&c.inbuf);
        if status != 101 {
            handler.on_refused(id, status);
            return Delivered::Ended;
        }
        c.phase = Phase::Open;
        handler.on_open(id, c.started.elapsed());
        let rest = c.inbuf.split_off(end);
        c.inbuf = rest;
        data = &[];
    }
    // Frames: parse in place when nothing is left over from the
    // previous read, else append and parse the joined bytes.
    let mut pongs: Vec<Vec<u8>> = Vec::new();
    let mut closed: Option<Option<u16>> = None;
    let mut bad = false;
    let mut on_frame = |op: u8, payload: &[u8]| match op {
        0x1 => handler.on_text(id, payload, now_us),
        0x8 => {
            let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
            closed = Some(code);
        }
        0x9 => pongs.push(payload.to_vec()),
        0x0 | 0x2 | 0xA => {}
        _ => bad = true,
    };
    if c.inbuf.is_empty() {
        let used = parse_frames(data, &mut on_frame);
        if used < data.len() {
            c.inbuf.extend_from_slice(&data[used..]);
        }
    } else {
        c.inbuf.extend_from_slice(data);
        let used = parse_frames(&c.inbuf, &mut on_frame);
        c.inbuf.drain(..used);
    }
    if bad {
        *protocol_errors += 1;
    }
    if let Some(code) = closed {
        handler.on_closed(id, code);
        return Delivered::Ended;
    }
    if !pongs.is_empty() {
        for p in pongs {
            encode_masked(0xA, &p, [1, 2, 3, 4], &mut c.out);
        }
        write_out(c);
    }
    Delivered::More
}

/// Gives `wire` (one socket read) to rustls and collects what it
/// decrypts into `plain` (cleared first). `Ok(true)` when the server sent
/// `close_notify`; `Err` on a TLS error.
fn tls_feed(
    tls: &mut rustls::ClientConnection,
    mut wire: &[u8],
    plain: &mut Vec<u8>,
) -> Result<bool, ()> {
    plain.clear();
    let mut closed = false;
    // why: rustls takes at most a few KiB per `read_tls` and holds at most
    // 16 KiB of plaintext, so the read is fed in pieces, each decrypted
    // and taken out before the next.
    while !wire.is_empty() {
        tls.read_tls(&mut wire).map_err(|_| ())?;
        tls.process_new_packets().map_err(|_| ())?;
        let mut reader = tls.reader();
        loop {
            match reader.fill_buf() {
                Ok([]) => {
                    closed = true;
                    break;
                }
                Ok(chunk) => {
                    let k = chunk.len();
                    plain.extend_from_slice(chunk);
                    reader.consume(k);
                }
                Err(_) => break, // WouldBlock: all of it taken
            }
        }
        if closed {
            break;
        }
    }
    Ok(closed)
}

/// Writes as much of `c.out` as the socket takes; false on a hard error.
/// With TLS, `c.out` goes to rustls (which encrypts it, or holds it until
/// the handshake is done) and what rustls has to send goes to the socket.
fn write_out(c: &mut Client) -> bool {
    if let Some(tls) = c.tls.as_deref_mut() {
        loop {
            let mut took = 0;
            if !c.out.is_empty() {
                match tls.writer().write(&c.out) {
                    Ok(n) => took = n,
                    Err(_) => return false,
                }
                c.out.drain(..took);
            }
            while tls.wants_write() {
                match tls.write_tls(&mut c.stream) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            if c.out.is_empty() || took == 0 {
                return true;
            }
        }
    }
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The status code of an HTTP response head (0 when unreadable).
fn parse_status(head: &[u8]) -> u16 {
    // "HTTP/1.1 101 ..."
    head.get(9..12)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// Calls `f(opcode, payload)` for each complete unmasked frame at the
/// start of `data`; returns the bytes consumed.
pub fn parse_frames(data: &[u8], mut f: impl FnMut(u8, &[u8])) -> usize {
    let mut pos = 0;
    loop {
        let rest = &data[pos..];
        if rest.len() < 2 {
            return pos;
        }
        let op = rest[0] & 0x0f;
        let (len, header) = match rest[1] & 0x7f {
            126 => {
                if rest.len() < 4 {
                    return pos;
                }
                (u16::from_be_bytes([rest[2], rest[3]]) as usize, 4)
            }
            127 => {
                if rest.len() < 10 {
                    return pos;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        // A server never masks; a masked frame is reported as a bad opcode.
        let masked = rest[1] & 0x80 != 0;
        let header = header + if masked { 4 } else { 0 };
        if rest.len() < header + len {
            return pos;
        }
        f(if masked { 0xF } else { op }, &rest[header..header + len]);
        pos += header + len;
    }
}

/// Appends a final masked frame with opcode `op` to `out`.
pub fn encode_masked(op: u8, payload: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
    out.push(0x80 | op);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}
