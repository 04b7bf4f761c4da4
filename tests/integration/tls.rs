//! TLS on the listening port (cargo feature `tls`), with real clients:
//! tungstenite over rustls, curl `--cacert`, websocat `wss://`, Python
//! `websockets` with an SSL context; plain HTTP to the TLS port, stalled
//! and flooding handshakes beside an innocent client, and `SIGHUP`
//! reloading the certificate under live connections (the binary).
//!
//! Certificates are made here, at test time (`rcgen`): a test-only CA and
//! a server certificate it signed for `localhost` and `127.0.0.1`. No key
//! is committed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tungstenite::{Message, WebSocket};

use wsgate::config::TlsFiles;

use crate::cli::{Running, websocat, wsgate};
use crate::common::{
    IO_TIMEOUT, SECRET, TestServer, form_request, lines_of, mint, now_ms, wait_for,
};

pub(crate) type Tls = StreamOwned<ClientConnection, TcpStream>;
pub(crate) type Wss = WebSocket<Tls>;

/// A test-only CA and the server pair it signed, as PEM files in a fresh
/// directory.
pub(crate) struct Pki {
    /// The CA certificate, for clients to trust.
    pub(crate) ca_pem: PathBuf,
    pub(crate) ca: CertificateDer<'static>,
    /// The server's certificate and key.
    pub(crate) files: TlsFiles,
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_dir(&format!("tls-{name}"))
}

/// A new CA, and a server certificate from it written to `cert`/`key`
/// (ECDSA P-256); the CA goes to `ca_pem`.
fn issue(ca_pem: &Path, cert: &Path, key: &Path) -> CertificateDer<'static> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "wsgate test CA (test only)");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(ca_pem, ca.pem()).unwrap();
    std::fs::write(cert, leaf.pem()).unwrap();
    std::fs::write(key, leaf_key.serialize_pem()).unwrap();
    ca.der().clone()
}

pub(crate) fn pki(name: &str) -> Pki {
    let dir = scratch(name);
    let files = TlsFiles::new(dir.join("cert.pem"), dir.join("key.pem"));
    let ca_pem = dir.join("ca.pem");
    let ca = issue(&ca_pem, &files.cert, &files.key);
    Pki { ca_pem, ca, files }
}

fn tls_server(pki: &Pki, tweak: impl FnOnce(&mut wsgate::config::Config)) -> TestServer {
    let files = pki.files.clone();
    TestServer::with(move |c| {
        c.tls = Some(files);
        tweak(c);
    })
}

pub(crate) fn client_config(ca: &CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` trusting `ca`, handshake done.
pub(crate) fn try_tls(addr: SocketAddr, ca: &CertificateDer<'static>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    try_tls_on(tcp, ca)
}

/// A TLS connection on `tcp`, a new connection, trusting `ca`, handshake
/// done.
pub(crate) fn try_tls_on(tcp: TcpStream, ca: &CertificateDer<'static>) -> std::io::Result<Tls> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(client_config(ca), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

pub(crate) fn tls(addr: SocketAddr, ca: &CertificateDer<'static>) -> Tls {
    try_tls(addr, ca).expect("a TLS connection")
}

/// One HTTP request over a fresh TLS connection (`Connection: close`); the
/// whole answer.
pub(crate) fn https(addr: SocketAddr, ca: &CertificateDer<'static>, request: &str) -> String {
    let mut s = tls(addr, ca);
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Logs `user` in with `POST /login` over a fresh TLS connection to
/// `addr`; the session cookie's whole `Set-Cookie` value.
pub(crate) fn https_login(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    user: &str,
    password: &str,
) -> String {
    let body = format!("username={user}&password={password}");
    let login = https(
        addr,
        ca,
        &form_request("/login", &body, "Connection: close\r\n"),
    );
    login
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .unwrap_or_else(|| panic!("a cookie in {login}"))
        .to_string()
}

pub(crate) fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

pub(crate) fn wss(addr: SocketAddr, ca: &CertificateDer<'static>, target: &str) -> Wss {
    let url = format!("wss://127.0.0.1:{}{target}", addr.port());
    let (ws, response) = tungstenite::client(url, tls(addr, ca)).expect("a WSS upgrade");
    assert_eq!(response.status(), 101);
    ws
}

pub(crate) fn text<S: Read + Write>(ws: &mut WebSocket<S>) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn metrics(addr: SocketAddr, ca: &CertificateDer<'static>) -> String {
    https(addr, ca, &get("/metrics"))
}

#[test]
fn chat_and_every_endpoint_over_tls_with_tungstenite() {
    let pki = pki("chat");
    let server = tls_server(&pki, |_| {});
    let addr = server.addr;
    let health = https(addr, &pki.ca, &get("/healthz"));
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    assert!(health.ends_with("\r\n\r\nok"), "{health}");

    // A token from /token, then WSS with it.
    let answer = https(
        addr,
        &pki.ca,
        &form_request(
            "/token",
            "username=alice&password=wonderland",
            "Connection: close\r\n",
        ),
    );
    let json: serde_json::Value =
        serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    let token = json["access_token"].as_str().unwrap();
    let mut alice = wss(addr, &pki.ca, &format!("/ws?token={token}"));
    assert_eq!(text(&mut alice), "System: alice joined the chat");

    // The cookie flow, from the server's own https:// origin.
    let cookie = https_login(addr, &pki.ca, "bob", "builder");
    assert!(
        cookie.starts_with("__Host-wsgate=") && cookie.contains("; Secure;"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let url = format!("wss://127.0.0.1:{}/ws", addr.port());
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    let headers = request.headers_mut();
    headers.insert("Cookie", pair.parse().unwrap());
    let origin = format!("https://127.0.0.1:{}", addr.port());
    headers.insert("Origin", origin.parse().unwrap());
    let (mut bob, _) = tungstenite::client(request, tls(addr, &pki.ca)).expect("a cookie upgrade");
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    assert_eq!(text(&mut alice), "System: bob joined the chat");

    // Both ways, and a message bigger than one TLS record.
    bob.send(Message::text("hello over tls")).unwrap();
    assert_eq!(text(&mut alice), "bob: hello over tls");
    assert_eq!(text(&mut bob), "bob: hello over tls");
    let long = "x".repeat(40_000);
    alice.send(Message::text(long.clone())).unwrap();
    assert_eq!(text(&mut bob), format!("alice: {long}"));
    assert_eq!(text(&mut alice), format!("alice: {long}"));
}

#[test]
fn plain_http_to_the_tls_port_gets_a_400_and_is_counted() {
    let pki = pki("plain");
    let server = tls_server(&pki, |_| {});
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.write_all(get("/healthz").as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer)
        .expect("an answer, then a clean close");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("this port speaks TLS"), "{answer}");
    // The server goes on, and counted it.
    let m = metrics(server.addr, &pki.ca);
    assert!(
        m.contains("wsgate_tls_failures_total{class=\"not_tls\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("\nwsgate_connections 1\n"),
        "only this one is held: {m}"
    );
}

#[test]
fn a_stalled_handshake_is_closed_at_the_head_deadline_and_counted() {
    let pki = pki("stall");
    let server = tls_server(&pki, |c| {
        c.limits.handshake_timeout = Duration::from_millis(300);
    });
    // One sends nothing; one sends half a ClientHello.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut half = TcpStream::connect(server.addr).unwrap();
    half.write_all(&[22, 3, 1, 0, 200, 1, 0, 0, 196]).unwrap();
    for s in [&mut silent, &mut half] {
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut buf = [0u8; 64];
        // Closed by the server: end of stream (or a reset), never a hang.
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("unexpected {n} bytes"),
        }
    }
    let m = metrics(server.addr, &pki.ca);
    assert!(
        m.contains("wsgate_tls_failures_total{class=\"timeout\"} 2\n"),
        "{m}"
    );
}

#[test]
fn tls_1_3_with_aes_gcm_only() {
    // README "TLS": a client that offers only TLS 1.2, or only
    // ChaCha20-Poly1305, is refused (and counted); TLS 1.3 with AES-GCM
    // works, which is every TLS 1.3 client.
    let pki = pki("versions");
    let server = tls_server(&pki, |_| {});
    let handshake = |versions: &[&'static rustls::SupportedProtocolVersion],
                     suites: Option<Vec<rustls::SupportedCipherSuite>>| {
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca.clone()).unwrap();
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(suites) = suites {
            provider.cipher_suites = suites;
        }
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(server.addr).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut result = Ok(());
        while tls.conn.is_handshaking() {
            if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                result = Err(e);
                break;
            }
        }
        result
    };
    use rustls::crypto::ring::cipher_suite as suite;
    assert!(handshake(&[&rustls::version::TLS12], None).is_err());
    let chacha = vec![suite::TLS13_CHACHA20_POLY1305_SHA256];
    assert!(handshake(&[&rustls::version::TLS13], Some(chacha)).is_err());
    for aes in [
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_AES_256_GCM_SHA384,
    ] {
        assert!(handshake(&[&rustls::version::TLS13], Some(vec![aes])).is_ok());
    }
    wait_for("the refusals to be counted", IO_TIMEOUT, || {
        metrics(server.addr, &pki.ca)
            .contains("wsgate_tls_failures_total{class=\"incompatible\"} 2\n")
    });
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_counted_as_an_alert() {
    let ours = pki("untrusted");
    let stranger = pki("untrusted-other");
    let server = tls_server(&ours, |_| {});
    assert!(try_tls(server.addr, &stranger.ca).is_err());
    wait_for("the alert to be counted", IO_TIMEOUT, || {
        metrics(server.addr, &ours.ca).contains("wsgate_tls_failures_total{class=\"alert\"} 1\n")
    });
}

#[test]
fn a_handshake_flood_from_one_address_leaves_an_innocent_client_alone() {
    let pki = pki("flood");
    let server = tls_server(&pki, |c| {
        c.limits.max_unauth_per_ip = Some(16);
        c.limits.handshake_timeout = Duration::from_secs(30);
    });
    // 127.0.0.2 opens 200 connections and starts no handshake, or sends
    // garbage: at most 16 are held, the rest are closed at once.
    let mut flood = Vec::new();
    for i in 0..200 {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        if socket.connect(&server.addr.into()).is_err() {
            continue;
        }
        let mut tcp: TcpStream = socket.into();
        if i % 2 == 1 {
            let _ = tcp.write_all(&[22, 3, 1, 0xff, 0xff, 0, 0, 0]);
        }
        flood.push(tcp);
    }
    // The innocent client from 127.0.0.1 chats over WSS meanwhile.
    let mut alice = wss(
        server.addr,
        &pki.ca,
        &format!("/ws?token={}", mint("alice", "member", now_ms(), 600)),
    );
    assert_eq!(text(&mut alice), "System: alice joined the chat");
    alice.send(Message::text("still here")).unwrap();
    assert_eq!(text(&mut alice), "alice: still here");
    let m = metrics(server.addr, &pki.ca);
    let held: usize = m
        .lines()
        .find_map(|l| l.strip_prefix("wsgate_connections "))
        .unwrap()
        .parse()
        .unwrap();
    // The flood's 16, alice, and this /metrics request.
    assert!(held <= 16 + 2, "{held} held\n{m}");
    assert!(
        m.contains("reason=\"too many unauthenticated connections from this address\"}"),
        "{m}"
    );
}

/// TLS handshakes per address are rate-limited at accept: past the burst,
/// connections from 127.0.0.2 are closed at once without a byte, while
/// 127.0.0.1 chats over WSS; the refusals are counted.
#[test]
fn tls_handshakes_per_address_are_rate_limited_at_accept() {
    let pki = pki("rate");
    let server = tls_server(&pki, |c| {
        c.limits.tls_handshake_rate = Some(wsgate::config::Rate::new(0.05, 5.0));
    });
    let mut open = Vec::new();
    let mut closed = 0;
    for _ in 0..30 {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.connect(&server.addr.into()).unwrap();
        let mut tcp: TcpStream = socket.into();
        tcp.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        match tcp.read(&mut byte) {
            // Closed at accept, without a word.
            Ok(0) => closed += 1,
            Ok(_) => panic!("a refused TLS connection got bytes"),
            // Still open: it may start its handshake.
            Err(_) => open.push(tcp),
        }
    }
    assert_eq!(open.len(), 5, "the burst");
    assert_eq!(closed, 25);
    let mut alice = wss(
        server.addr,
        &pki.ca,
        &format!("/ws?token={}", mint("alice", "member", now_ms(), 600)),
    );
    assert_eq!(text(&mut alice), "System: alice joined the chat");
    let m = metrics(server.addr, &pki.ca);
    assert!(
        m.contains("reason=\"too many TLS handshakes from this address\"} 25\n"),
        "{m}"
    );
}

/// The binary with TLS; waits for its "listening on" line. Returns the
/// child, its address and its log lines as they come.
fn start_tls_binary(pki: &Pki) -> (Running, SocketAddr, mpsc::Receiver<String>) {
    let mut cmd = wsgate();
    cmd.arg("--tls-cert")
        .arg(&pki.files.cert)
        .arg("--tls-key")
        .arg(&pki.files.key);
    start_binary(cmd)
}

/// `cmd` (the binary, with its flags) on a free loopback port with
/// [`SECRET`]; waits for its "listening on" line. Returns the child, its
/// address and its log lines as they come.
pub(crate) fn start_binary(mut cmd: Command) -> (Running, SocketAddr, mpsc::Receiver<String>) {
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("WSGATE_SECRET", std::str::from_utf8(SECRET).unwrap());
    crate::cli::listening(cmd)
}

pub(crate) fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[test]
fn sighup_reloads_the_pair_while_live_connections_stay() {
    let first = pki("reload");
    let (child, addr, lines) = start_tls_binary(&first);
    let token = mint("alice", "member", now_ms(), 600);
    let mut alice = wss(addr, &first.ca, &format!("/ws?token={token}"));
    assert_eq!(text(&mut alice), "System: alice joined the chat");

    // A new pair from another CA, in the same files; SIGHUP.
    let second_ca_pem = first.ca_pem.with_file_name("ca2.pem");
    let second_ca = issue(&second_ca_pem, &first.files.cert, &first.files.key);
    let hup = |pid: u32| {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    hup(child.0.id());
    wait_for_line(&lines, "tls reloaded");
    // New connections get the new certificate; the old CA no longer
    // verifies it.
    let bob_token = mint("bob", "member", now_ms(), 600);
    let mut bob = wss(addr, &second_ca, &format!("/ws?token={bob_token}"));
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    assert!(try_tls(addr, &first.ca).is_err());
    // The live connection stayed, on its old session.
    assert_eq!(text(&mut alice), "System: bob joined the chat");
    alice
        .send(Message::text("still on the old certificate"))
        .unwrap();
    assert_eq!(text(&mut bob), "alice: still on the old certificate");

    // A pair that does not load keeps the current one.
    std::fs::write(&first.files.cert, "not a certificate\n").unwrap();
    hup(child.0.id());
    let line = wait_for_line(&lines, "tls reload failed");
    assert!(line.contains("cert.pem"), "{line}");
    let mut carol = wss(
        addr,
        &second_ca,
        &format!("/ws?token={}", mint("carol", "member", now_ms(), 600)),
    );
    assert_eq!(text(&mut carol), "System: carol joined the chat");
    drop(child);
}

#[test]
fn curl_gets_a_token_and_a_cookie_over_https() {
    if !tool_present("curl") {
        return;
    }
    let pki = pki("curl");
    let server = tls_server(&pki, |_| {});
    let base = format!("https://127.0.0.1:{}", server.addr.port());
    let out = Command::new("curl")
        .args(["-fsS", "--cacert"])
        .arg(&pki.ca_pem)
        .args(["-d", "username=alice&password=wonderland"])
        .arg(format!("{base}/token"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    let out = Command::new("curl")
        .args(["-fsS", "-i", "--cacert"])
        .arg(&pki.ca_pem)
        .args(["-d", "username=bob&password=builder"])
        .arg(format!("{base}/login"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert!(
        head.contains("set-cookie: __Host-wsgate=") || head.contains("Set-Cookie: __Host-wsgate="),
        "{head}"
    );
    // Without the CA, curl refuses the certificate.
    let out = Command::new("curl")
        .args(["-fsS"])
        .arg(format!("{base}/healthz"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn websocat_chats_over_wss() {
    let Some(websocat) = websocat() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "websocat must be installed in CI"
        );
        return;
    };
    let pki = pki("websocat");
    let server = tls_server(&pki, |_| {});
    let mut bob = wss(
        server.addr,
        &pki.ca,
        &format!("/ws?token={}", mint("bob", "member", now_ms(), 600)),
    );
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    let token = mint("alice", "member", now_ms(), 600);
    let mut child = Running(
        Command::new(websocat)
            .env("SSL_CERT_FILE", &pki.ca_pem)
            .arg(format!("-H=Authorization: Bearer {token}"))
            .arg(format!("wss://127.0.0.1:{}/ws", server.addr.port()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn websocat"),
    );
    let lines = lines_of(child.0.stdout.take().unwrap());
    assert_eq!(text(&mut bob), "System: alice joined the chat");
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(b"hello over wss\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(text(&mut bob), "alice: hello over wss");
    bob.send(Message::text("hi websocat")).unwrap();
    let seen: Vec<String> = (0..3)
        .map_while(|_| lines.recv_timeout(IO_TIMEOUT).ok())
        .collect();
    assert!(seen.iter().any(|l| l == "bob: hi websocat"), "{seen:?}");
}

#[test]
fn python_websockets_chats_over_wss_with_an_ssl_context() {
    if !tool_present("python3") {
        return;
    }
    let has_websockets = Command::new("python3")
        .args(["-c", "import websockets"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_websockets {
        assert!(
            std::env::var_os("CI").is_none(),
            "python websockets must be installed in CI"
        );
        return;
    }
    let pki = pki("python");
    let server = tls_server(&pki, |_| {});
    let token = mint("alice", "member", now_ms(), 600);
    let script = r#"
import ssl, sys
from websockets.sync.client import connect
ca, url, token = sys.argv[1:4]
ctx = ssl.create_default_context(cafile=ca)
with connect(url, ssl=ctx, additional_headers={"Authorization": "Bearer " + token},
             subprotocols=["wsgate.json"], open_timeout=5) as ws:
    import json
    first = json.loads(ws.recv(timeout=5))
    ws.send(json.dumps({"type": "message", "text": "hello from python"}))
    while True:
        m = json.loads(ws.recv(timeout=5))
        if m.get("type") == "message":
            print(first["type"], first.get("user"), m["from"], m["text"], m["seq"])
            break
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&pki.ca_pem)
        .arg(format!("wss://127.0.0.1:{}/ws", server.addr.port()))
        .arg(token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "join alice alice hello from python 1"
    );
}

/// True when `tool` runs; in CI (which installs it) a missing tool fails.
pub(crate) fn tool_present(tool: &str) -> bool {
    let present = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        present || std::env::var_os("CI").is_none(),
        "{tool} must be installed in CI"
    );
    present
}

/// `deploy/wsgate.service` as shipped: its sandboxing directives are there,
/// systemd waits longer than the drain, and its `ExecStart` (with `%d`, the
/// credentials directory, pointed at files made here, and a loopback
/// port) starts the real binary, which then stops cleanly on SIGTERM.
#[test]
fn the_systemd_unit_starts_the_binary_and_stops_it_cleanly() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/wsgate.service"
    ))
    .expect("deploy/wsgate.service");
    for directive in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "LoadCredential=secret:",
        "LoadCredential=privkey.pem:",
        "LimitNOFILE=",
        "KillSignal=SIGTERM",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(
            unit.lines().any(|l| l.starts_with(directive)),
            "{directive} missing"
        );
    }
    // The unit joins ExecStart's lines with a trailing backslash.
    let exec = unit.replace("\\\n", " ");
    let exec = exec
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let value = |flag: &str| {
        let at = args.iter().position(|a| *a == flag).expect(flag);
        args[at + 1]
    };
    let secs = |text: &str| -> u64 { text.trim_end_matches('s').parse().unwrap() };
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec");
    assert!(
        secs(stop) > secs(value("--drain-timeout")),
        "systemd must outwait the drain"
    );

    // The credentials directory, as systemd would fill it.
    let pki = pki("systemd");
    systemd_analyze(&unit, pki.files.cert.parent().unwrap());
    let creds = pki.files.cert.parent().unwrap().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::copy(&pki.files.cert, creds.join("fullchain.pem")).unwrap();
    std::fs::copy(&pki.files.key, creds.join("privkey.pem")).unwrap();
    std::fs::write(
        creds.join("secret"),
        format!("{}\n", std::str::from_utf8(SECRET).unwrap()),
    )
    .unwrap();
    let mut hash = wsgate();
    hash.arg("hash-password").stdin(Stdio::piped());
    let mut child = hash.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let phc = String::from_utf8(out.stdout).unwrap();
    std::fs::write(creds.join("users"), format!("dora:member:{}\n", phc.trim())).unwrap();

    let mut cmd = wsgate();
    for arg in &args {
        let arg = arg.replace("%d", creds.to_str().unwrap());
        cmd.arg(if arg == "0.0.0.0:443" {
            "127.0.0.1:0".to_string()
        } else {
            arg
        });
    }
    let mut child = Running(cmd.spawn().expect("spawn wsgate as the unit would"));
    let lines = lines_of(child.0.stderr.take().unwrap());
    let addr: SocketAddr = wait_for_line(&lines, "listening on ")
        .split_once("listening on ")
        .unwrap()
        .1
        .trim()
        .parse()
        .unwrap();
    // The user from the credentials file gets a token over TLS.
    let answer = https(
        addr,
        &pki.ca,
        &form_request(
            "/token",
            "username=dora&password=correct%20horse",
            "Connection: close\r\n",
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

/// Where `systemd-analyze` is installed: `verify` finds nothing wrong with
/// the unit (its binary pointed at the one under test), and `security`
/// rates its sandbox's exposure at most 2.0 ("OK"; 1.6 when written).
fn systemd_analyze(unit: &str, dir: &Path) {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed; the unit's directives were checked by hand");
        return;
    }
    let dir = dir.join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wsgate.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/wsgate", crate::cli::BIN),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    assert!(security.status.success(), "exposure over 2.0:\n{text}");
}

/// A reader with a backlog larger than the kernel's buffers closes (close
/// frame, `close_notify`, end of stream) and then reads on: it gets every
/// line queued to it and the server's close frame. The core lets go of
/// the connection once its queue is handed to TLS; the shell must still
/// write what TLS holds before dropping the socket (found by review).
#[test]
fn a_closing_reader_gets_its_whole_backlog_over_tls() {
    let pki = pki("backlog");
    let server = tls_server(&pki, |c| {
        c.limits.max_queue_bytes = 32 << 20;
        c.limits.queue_budget_bytes = 64 << 20;
        c.limits.close_timeout = Duration::from_secs(30);
        c.limits.slow_consumer_timeout = Duration::from_secs(30);
    });
    let addr = server.addr;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let tcp: TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = StreamOwned::new(
        ClientConnection::new(client_config(&pki.ca), name).unwrap(),
        tcp,
    );
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    let token = mint("alice", "member", now_ms(), 600);
    let url = format!("wss://127.0.0.1:{}/ws?token={token}", addr.port());
    let (mut alice, _) = tungstenite::client(url, stream).unwrap();
    assert_eq!(text(&mut alice), "System: alice joined the chat");
    let mut bob = wss(
        addr,
        &pki.ca,
        &format!("/ws?token={}", mint("bob", "member", now_ms(), 600)),
    );
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    // About 6 MB to alice, who does not read: more than the kernel holds.
    let lines = 100;
    let body = "y".repeat(60_000);
    for _ in 0..lines {
        bob.send(Message::text(body.clone())).unwrap();
        assert!(text(&mut bob).starts_with("bob: "));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = alice.close(None);
    let _ = alice.flush();
    let mut tls = alice.into_inner();
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        tls.conn.write_tls(&mut tls.sock).unwrap();
    }
    tls.sock.shutdown(std::net::Shutdown::Write).unwrap();
    // Read on, slowly at first, as the server drains.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
        // Slowly: the kernel's buffers stay full while the server drains.
        std::thread::sleep(Duration::from_micros(500));
    }
    // Bob's join notice (a 2-byte header and 27 bytes), each line (a
    // 4-byte header, "bob: " and the body), then the close frame answering
    // alice's, without a code (2 bytes).
    let expected = 29 + lines * (4 + 5 + body.len()) + 2;
    assert_eq!(
        got.len(),
        expected,
        "lost {} bytes",
        expected.saturating_sub(got.len())
    );
    assert_eq!(
        &got[got.len() - 2..],
        &[0x88, 0],
        "ends with the close frame"
    );
}
