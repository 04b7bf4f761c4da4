//! The fixture: a server on `127.0.0.1:0` in a thread of the test process,
//! token minting with the server's secret, a raw HTTP client (so refusals
//! can be asserted byte for byte) and a WebSocket client on tungstenite.
//!
//! Every socket made here has a read and a write timeout of
//! [`IO_TIMEOUT`]: a server that fails to answer fails the test instead of
//! hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Response as WsResponse;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::Role;
use tungstenite::{HandshakeError, Message, WebSocket};

use wsgate::auth::jwt::{JwtConfig, Secret};
use wsgate::auth::users::Users;
use wsgate::config::Config;
use wsgate::shell::{Gateway, StopHandle};

/// The token secret every test server uses (at least 32 bytes).
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

/// A different secret of valid length, for "bad signature" tokens.
pub const OTHER_SECRET: &[u8] = b"fedcba9876543210fedcba9876543210-evil";

/// Read and write timeout of every test socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// RFC 6455 §1.3's example key, and the accept value it must produce.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`KEY`].
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A client WebSocket over a blocking loopback socket.
pub type Ws = WebSocket<TcpStream>;

/// Milliseconds since the UNIX epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A signer/verifier with `secret`.
pub fn jwt_with(secret: &[u8]) -> JwtConfig {
    JwtConfig::new(vec![
        Secret::new(secret.to_vec(), None).expect("test secrets are long enough"),
    ])
}

/// A token for `sub` with `role`, issued at `now_ms`, living `ttl_secs`,
/// signed with the servers' [`SECRET`].
pub fn mint(sub: &str, role: &str, now_ms: u64, ttl_secs: u64) -> String {
    jwt_with(SECRET).issue(sub, role, now_ms, ttl_secs)
}

/// A JWT made by hand: `header` and `payload` as given (any JSON, or
/// none), signed HS256 with `secret`. For tokens the signer would never
/// make.
pub fn craft_token(header: &str, payload: &str, secret: &[u8]) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, KeyInit, Mac};
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(payload));
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    token
}

/// Signs an arbitrary claims object with [`SECRET`].
pub fn sign_claims(claims: Value) -> String {
    let Value::Object(map) = claims else {
        panic!("claims must be a JSON object");
    };
    jwt_with(SECRET).sign(&map)
}

/// Polls `done` until it returns true; panics with `what` after `timeout`.
/// The only sleeping in the suite: waiting for the server, never timing it.
pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The lines of `pipe` (a child's stdout or stderr) as they come, read on
/// a thread of their own; the receiver ends when the pipe does.
pub fn lines_of(pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A running server; dropping it stops the event loop and joins it.
pub struct TestServer {
    /// The bound address.
    pub addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// A server with the default configuration (demo users, [`SECRET`]).
    pub fn start() -> TestServer {
        TestServer::with(|_| {})
    }

    /// A server whose configuration `tweak` adjusts first. Before that it
    /// listens on `127.0.0.1:0`, uses [`SECRET`] and has no per-IP or
    /// per-connection rate limits; everything else is the default.
    pub fn with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::with_secret(SECRET);
        config.listen = "127.0.0.1:0".parse().unwrap();
        // why: every test client comes from 127.0.0.1 and most tests open
        // many connections and send bursts; the rate limits have tests of
        // their own that switch them back on.
        config.limits.upgrade_rate = None;
        config.limits.tls_handshake_rate = None;
        config.limits.failed_login_rate = None;
        config.limits.message_rate = None;
        tweak(&mut config);
        // why: the gateway is built on its own thread (it need not be
        // `Send`); the address and the stop handle come back by channel.
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wsgate-test-server".into())
            .spawn(move || {
                let gw = Gateway::bind(config, Arc::new(Users::demo()))?;
                let addr = gw.local_addr()?;
                if ready_tx.send((addr, gw.stop_handle())).is_err() {
                    return Ok(());
                }
                gw.run()
            })
            .expect("spawn the server thread");
        let Ok((addr, stop)) = ready.recv() else {
            match thread.join() {
                Ok(Err(e)) => panic!("the test server did not start: {e}"),
                _ => panic!("the test server thread died before it started"),
            }
        };
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Asks the server to stop gracefully, as SIGTERM does; `Drop` still
    /// joins its thread.
    pub fn request_stop(&self) {
        self.stop.stop();
    }

    /// A fresh member token for `user`, valid 15 minutes.
    pub fn token(&self, user: &str) -> String {
        mint(user, "member", now_ms(), 900)
    }

    /// The origin a browser on this server's own page would send.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new TCP connection with both timeouts set.
    pub fn connect(&self) -> TcpStream {
        connect_to(self.addr)
    }

    /// A raw HTTP connection (for keep-alive and refusals).
    pub fn http(&self) -> HttpConn {
        HttpConn::new(self.connect())
    }

    /// Sends `request` as is on a new connection and reads one response.
    pub fn exchange(&self, request: &str) -> HttpResponse {
        let mut conn = self.http();
        conn.send(request.as_bytes());
        conn.response()
    }

    /// `POST path` with a form body (closing the connection after).
    pub fn post_form(&self, path: &str, body: &str) -> HttpResponse {
        self.exchange(&form_request(path, body, "Connection: close\r\n"))
    }

    /// `POST /token` as `user`; returns the access token.
    pub fn issue_token(&self, user: &str, password: &str) -> String {
        let r = self.post_form("/token", &format!("username={user}&password={password}"));
        assert_eq!(r.status, 200, "POST /token: {}", r.text());
        r.json()["access_token"]
            .as_str()
            .expect("access_token is a string")
            .to_string()
    }

    /// `POST /login` as `user`; returns the session id from `Set-Cookie`.
    pub fn login(&self, user: &str, password: &str) -> String {
        let r = self.post_form("/login", &format!("username={user}&password={password}"));
        assert_eq!(r.status, 204, "POST /login: {}", r.text());
        session_id(&r)
    }

    /// A tungstenite client handshake to `target` (`/ws?...`) with extra
    /// headers; it must succeed.
    pub fn ws(&self, target: &str, headers: &[(&str, &str)]) -> (Ws, WsResponse) {
        ws_at(self.addr, target, headers)
    }

    /// `user` in room `room` (text mode, bearer token); its own join
    /// notice is read and checked.
    pub fn join(&self, user: &str, room: &str) -> Ws {
        let bearer = format!("Bearer {}", self.token(user));
        let (mut ws, _) = self.ws(
            &format!("/ws?room={room}"),
            &[("Authorization", bearer.as_str())],
        );
        assert_eq!(
            recv_text(&mut ws),
            format!("System: {user} joined the chat")
        );
        ws
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => panic!("the server loop failed: {e}"),
                    Err(_) => panic!("the server thread panicked"),
                }
            }
        }
    }
}

/// A fresh, empty directory of this test run's own under the system's
/// temporary directory.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wsgate-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A new TCP connection to `addr` with both timeouts set.
pub fn connect_to(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A new TCP connection to `addr` from the loopback address `source`
/// (any of 127.0.0.0/8), with both timeouts set.
pub fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
    socket.connect(&addr.into()).expect("connect to the server");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A tungstenite client handshake with the server at `addr`.
pub fn try_ws_at(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, WsResponse), tungstenite::Error> {
    try_ws_on(connect_to(addr), target, headers)
}

/// A tungstenite client handshake on `stream`, a new connection.
pub fn try_ws_on(
    stream: TcpStream,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, WsResponse), tungstenite::Error> {
    let addr = stream.peer_addr().expect("a connected stream");
    let mut request = format!("ws://{addr}{target}").into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    match tungstenite::client::client(request, stream) {
        Ok(pair) => Ok(pair),
        Err(HandshakeError::Failure(e)) => Err(e),
        Err(HandshakeError::Interrupted(_)) => {
            panic!("handshake interrupted: the read timeout passed")
        }
    }
}

/// As [`try_ws_at`], but the upgrade must succeed.
pub fn ws_at(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> (Ws, WsResponse) {
    ws_on(connect_to(addr), target, headers)
}

/// As [`try_ws_on`], but the upgrade must succeed.
pub fn ws_on(stream: TcpStream, target: &str, headers: &[(&str, &str)]) -> (Ws, WsResponse) {
    match try_ws_on(stream, target, headers) {
        Ok(pair) => pair,
        Err(tungstenite::Error::Http(r)) => panic!(
            "upgrade to {target} refused: {} {}",
            r.status(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default())
        ),
        Err(e) => panic!("upgrade to {target} failed: {e}"),
    }
}

/// A `POST` with a form body and extra header lines (each ending `\r\n`).
pub fn form_request(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// The session id out of a `/login` response's `Set-Cookie`.
pub fn session_id(r: &HttpResponse) -> String {
    let cookie = r.header("set-cookie").expect("Set-Cookie on /login");
    let first = cookie.split(';').next().unwrap();
    let id = first
        .strip_prefix("__Host-wsgate=")
        .unwrap_or_else(|| panic!("cookie name: {cookie}"));
    id.to_string()
}

// ----------------------------------------------------------------------
// Raw HTTP

/// One parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The head as received (status line and headers).
    pub head: String,
    /// Header names lowercased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    /// The body (exactly `Content-Length` bytes).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How many times header `name` appears.
    pub fn header_count(&self, name: &str) -> usize {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(n, _)| *n == name).count()
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }

    /// The body as JSON (and the `Content-Type` says so).
    pub fn json(&self) -> Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.head
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// `{"detail": D}` bodies: D.
    pub fn detail(&self) -> String {
        let json = self.json();
        json["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no string detail in {json}"))
            .to_string()
    }

    /// True when `needle` appears anywhere in the head or the body.
    pub fn mentions(&self, needle: &str) -> bool {
        self.head.contains(needle) || String::from_utf8_lossy(&self.body).contains(needle)
    }
}

/// A client HTTP connection that may carry several requests.
pub struct HttpConn {
    reader: BufReader<TcpStream>,
}

impl HttpConn {
    /// Wraps a connected stream (timeouts already set).
    pub fn new(stream: TcpStream) -> HttpConn {
        HttpConn {
            reader: BufReader::new(stream),
        }
    }

    /// Writes `bytes` in one `write_all`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader
            .get_mut()
            .write_all(bytes)
            .expect("write the request");
    }

    /// Reads one response. Every response but a `1xx` / `101` must carry
    /// `Content-Length` (the body is read by it, never to end of stream)
    /// and `Cache-Control: no-store` (PROTOCOL §1).
    pub fn response(&mut self) -> HttpResponse {
        self.read_response(false)
    }

    /// Reads the response to a `HEAD` request: `Content-Length` is there,
    /// the body is not.
    pub fn head_response(&mut self) -> HttpResponse {
        self.read_response(true)
    }

    fn read_response(&mut self, head_only: bool) -> HttpResponse {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("connection closed before a complete response; got {head:?}"),
                Ok(_) => {}
                Err(e) => panic!("reading a response head ({e}); got {head:?}"),
            }
            assert!(line.ends_with("\r\n"), "line not ended by CRLF: {line:?}");
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("header {l:?}"));
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let mut response = HttpResponse {
            status,
            head,
            headers,
            body: Vec::new(),
        };
        if status < 200 {
            return response;
        }
        assert_eq!(
            response.header_count("content-length"),
            1,
            "one Content-Length: {}",
            response.head
        );
        assert_eq!(
            response.header("cache-control"),
            Some("no-store"),
            "Cache-Control: {}",
            response.head
        );
        let len: usize = response
            .header("content-length")
            .unwrap()
            .parse()
            .expect("Content-Length is a number");
        if head_only {
            return response;
        }
        let mut body = vec![0; len];
        self.reader
            .read_exact(&mut body)
            .unwrap_or_else(|e| panic!("reading a {len}-byte body: {e}"));
        response.body = body;
        response
    }

    /// True when the server closes the connection (end of stream or reset)
    /// before the read timeout, with no further bytes; panics on bytes.
    pub fn closed_by_server(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => panic!(
                "unexpected byte {:?} where a close was due",
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

    /// Reads one server frame (unmasked, RFC 6455 §5.2) raw, without
    /// answering anything: its opcode and payload.
    pub fn frame(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.reader
            .read_exact(&mut head)
            .unwrap_or_else(|e| panic!("reading a frame header: {e}"));
        assert_eq!(head[1] & 0x80, 0, "a server frame must not be masked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b).unwrap();
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0; len as usize];
        self.reader
            .read_exact(&mut payload)
            .unwrap_or_else(|e| panic!("reading a {len}-byte frame: {e}"));
        (head[0] & 0x0f, payload)
    }

    /// Bytes read past the last response (for a WebSocket that follows).
    pub fn into_websocket(self) -> Ws {
        let leftover = self.reader.buffer().to_vec();
        let stream = self.reader.into_inner();
        WebSocket::from_partially_read(stream, leftover, Role::Client, None)
    }
}

/// A hand-written upgrade request, so that tests can drop, repeat or
/// garble any header.
#[derive(Clone, Debug)]
pub struct WsRequest {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl WsRequest {
    /// `GET target HTTP/1.1` with `Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key` ([`KEY`]) and `Sec-WebSocket-Version: 13`.
    pub fn new(server: &TestServer, target: &str) -> WsRequest {
        WsRequest::to(server.addr, target)
    }

    /// As [`WsRequest::new`], for a server at `addr`.
    pub fn to(addr: SocketAddr, target: &str) -> WsRequest {
        WsRequest {
            method: "GET".into(),
            target: target.into(),
            version: "HTTP/1.1".into(),
            headers: vec![
                ("Host".into(), addr.to_string()),
                ("Upgrade".into(), "websocket".into()),
                ("Connection".into(), "Upgrade".into()),
                ("Sec-WebSocket-Key".into(), KEY.into()),
                ("Sec-WebSocket-Version".into(), "13".into()),
            ],
        }
    }

    /// Another method.
    pub fn method(mut self, method: &str) -> WsRequest {
        self.method = method.into();
        self
    }

    /// Another protocol version on the request line (`HTTP/1.0`).
    pub fn version(mut self, version: &str) -> WsRequest {
        self.version = version.into();
        self
    }

    /// Adds a header line (repeats allowed).
    pub fn header(mut self, name: &str, value: &str) -> WsRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Removes every header `name`.
    pub fn without(mut self, name: &str) -> WsRequest {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Replaces header `name`.
    pub fn set(self, name: &str, value: &str) -> WsRequest {
        self.without(name).header(name, value)
    }

    /// The request's bytes.
    pub fn render(&self) -> String {
        let mut out = format!("{} {} {}\r\n", self.method, self.target, self.version);
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out
    }

    /// Sends it and expects a refusal with `status` that closes the
    /// connection and never repeats `secret` (a token or a session id).
    pub fn refused(&self, server: &TestServer, status: u16, secret: &str) -> HttpResponse {
        let mut conn = server.http();
        conn.send(self.render().as_bytes());
        let r = conn.response();
        assert_eq!(r.status, status, "{}\n{}", self.render(), r.head);
        assert!(
            r.header("sec-websocket-accept").is_none(),
            "a refusal must not complete the handshake: {}",
            r.head
        );
        assert_eq!(r.header("connection"), Some("close"), "{}", r.head);
        if !secret.is_empty() {
            assert!(!r.mentions(secret), "the refusal echoes the credential");
        }
        assert!(
            conn.closed_by_server(),
            "connection left open after {status}"
        );
        r
    }
}

/// A masked client text frame (RFC 6455 §5.2) holding `text`.
pub fn masked_text_frame(text: &str) -> Vec<u8> {
    masked_frame(0x1, text.as_bytes())
}

/// A final, masked client frame with `opcode` and `payload`.
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(true, opcode, payload, true)
}

/// Any client frame: `fin`, `opcode`, `payload`, masked or (against RFC
/// 6455 §5.1) not.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

// ----------------------------------------------------------------------
// WebSocket helpers

/// The next data or close message (pings and pongs skipped).
pub fn recv(ws: &mut Ws) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(m) => return m,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no message within {IO_TIMEOUT:?}")
            }
            Err(e) => panic!("reading a message: {e}"),
        }
    }
}

/// The next message, which must be text.
pub fn recv_text(ws: &mut Ws) -> String {
    match recv(ws) {
        Message::Text(t) => t.as_str().to_string(),
        Message::Close(Some(f)) => panic!(
            "expected text, got close {} {:?}",
            u16::from(f.code),
            f.reason.as_str()
        ),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The next message, which must be a JSON object in a text frame.
pub fn recv_json(ws: &mut Ws) -> Value {
    let text = recv_text(ws);
    let value: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    assert!(value.is_object(), "not an object: {text}");
    value
}

/// Sends a text message.
pub fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).expect("send a text message");
}

/// Reads until the server's close frame, skipping text messages; returns
/// its code and reason.
pub fn recv_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match recv(ws) {
            Message::Close(Some(f)) => return (u16::from(f.code), f.reason.as_str().to_string()),
            Message::Close(None) => panic!("close frame without a code"),
            Message::Text(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Closes from the client side and waits for the server's reply, so that
/// the server has taken the connection out of its room when this returns.
pub fn close(mut ws: Ws) {
    ws.close(None).expect("send a close frame");
    loop {
        match ws.read() {
            Ok(Message::Close(_) | Message::Text(_) | Message::Ping(_) | Message::Pong(_)) => {}
            Ok(other) => panic!("unexpected {other:?} while closing"),
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("closing: {e}"),
        }
    }
}

// ----------------------------------------------------------------------
// Added for `adversarial`

impl HttpConn {
    /// Waits for the server's next move: true when it hung up (end of
    /// stream or reset) with no unread byte left, false when bytes are
    /// waiting (they stay buffered for [`HttpConn::response`] or
    /// [`HttpConn::frame`]). Panics when neither comes within the read
    /// timeout. For servers that may answer or drop a connection.
    pub fn hung_up(&mut self) -> bool {
        match self.reader.fill_buf() {
            Ok(bytes) => bytes.is_empty(),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("neither bytes nor a hang-up within {IO_TIMEOUT:?}")
            }
            Err(_) => true,
        }
    }
}

/// A chat line of `len` bytes that starts with its five-digit number.
pub fn numbered_line(i: usize, len: usize) -> String {
    let mut line = format!("{i:05}:");
    line.push_str(&"x".repeat(len - line.len()));
    line
}

/// The number at the start of an `alice: NNNNN:...` broadcast.
pub fn line_number(text: &str) -> Option<usize> {
    text.strip_prefix("alice: ")?.get(..5)?.parse().ok()
}

/// A new connection as a raw writer and an [`HttpConn`] reading the same
/// socket, so that a test can keep writing while it reads.
pub fn raw(server: &TestServer) -> (TcpStream, HttpConn) {
    let stream = server.connect();
    let writer = stream.try_clone().expect("clone the socket");
    (writer, HttpConn::new(stream))
}

/// `user`'s raw WebSocket in `room`: a writer, and a reader of raw server
/// frames, the `101` and the user's own join notice already read.
pub fn raw_ws(server: &TestServer, user: &str, room: &str) -> (TcpStream, HttpConn) {
    let (mut writer, mut conn) = raw(server);
    let request = WsRequest::new(server, &format!("/ws?room={room}"))
        .header("Authorization", &format!("Bearer {}", server.token(user)));
    writer.write_all(request.render().as_bytes()).unwrap();
    let r = conn.response();
    assert_eq!(r.status, 101, "{}", r.head);
    let (opcode, text) = conn.frame();
    assert_eq!(
        (opcode, String::from_utf8_lossy(&text).into_owned()),
        (0x1, format!("System: {user} joined the chat"))
    );
    (writer, conn)
}
