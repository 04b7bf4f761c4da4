//! wsgate behind real proxies, trusted with `--trusted-proxy`: nginx
//! passing `X-Forwarded-For` (the shipped `deploy/nginx.conf`), nginx's
//! stream module sending a PROXY protocol v1 header in front of wsgate's
//! own TLS, and HAProxy sending a v2 header. In each, the per-address
//! limits (here one connection per address) apply to the real clients,
//! 127.0.0.2 and 127.0.0.3, and not to the proxy's 127.0.0.1; what an
//! untrusted peer says in those headers changes nothing.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tungstenite::Message;
use wsgate::config::parse_network;

use crate::cli::{Running, wsgate};
use crate::common::{TestServer, connect_from, mint, now_ms, recv, try_ws_on, wait_for};
use crate::nginx::{run_nginx, start_nginx};
use crate::tls::{Wss, pki, start_binary, text, tool_present, try_tls_on, wait_for_line};

const ALICE: [u8; 4] = [127, 0, 0, 2];
const BOB: [u8; 4] = [127, 0, 0, 3];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn token(user: &str) -> String {
    mint(user, "member", now_ms(), 600)
}

/// A WSS upgrade through `front` from `source`, with `headers`: the
/// socket, or the status it was refused with (`0`: closed without an
/// answer).
fn wss_from(
    source: [u8; 4],
    front: SocketAddr,
    ca: &CertificateDer<'static>,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Wss, u16> {
    let tcp = connect_from(IpAddr::from(source), front);
    let Ok(tls) = try_tls_on(tcp, ca) else {
        return Err(0);
    };
    let url = format!("wss://127.0.0.1:{}{target}", front.port());
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    match tungstenite::client(request, tls) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            Err(r.status().as_u16())
        }
        Err(_) => Err(0),
    }
}

/// A plain WebSocket upgrade to `front` from `source`: the socket, or the
/// status it was refused with.
fn ws_from(source: [u8; 4], front: SocketAddr, target: &str) -> Result<crate::common::Ws, u16> {
    match try_ws_on(connect_from(IpAddr::from(source), front), target, &[]) {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

#[test]
fn behind_nginx_the_limits_and_the_logs_see_the_real_client() {
    if !tool_present("nginx") {
        return;
    }
    let pki = pki("xff");
    let mut cmd = wsgate();
    cmd.args([
        "--trusted-proxy",
        "127.0.0.1",
        "--max-conns-per-ip",
        "1",
        "--upgrade-rate",
        "0",
        // Refusals of connection limits are logged at debug.
        "--log",
        "debug",
    ]);
    let (_server, addr, lines) = start_binary(cmd);
    let dir = pki.files.cert.parent().unwrap().join("nginx");
    let (_nginx, port) = start_nginx(&pki, addr.port(), &dir);
    let front: SocketAddr = ([127, 0, 0, 1], port).into();

    // Alice claims to be Bob: nginx appends her real address, and that
    // is the one wsgate believes.
    let spoof = [("X-Forwarded-For", "127.0.0.3")];
    let target = format!("/ws?token={}", token("alice"));
    let mut alice = wss_from(ALICE, front, &pki.ca, &target, &spoof).expect("alice's upgrade");
    assert_eq!(text(&mut alice), "System: alice joined the chat");
    let open = wait_for_line(&lines, "open user=\"alice\"");
    assert!(open.contains("peer=127.0.0.2 via=127.0.0.1:"), "{open}");
    // Her second connection is over the limit, though nginx holds many.
    let again = wss_from(ALICE, front, &pki.ca, &target, &[]);
    assert_eq!(again.err(), Some(429));
    let refused = wait_for_line(&lines, "refused peer=");
    assert!(refused.contains("peer=127.0.0.2"), "{refused}");
    // Bob is not held back by Alice's claim, nor by her limit.
    let target = format!("/ws?token={}", token("bob"));
    let mut bob = wss_from(BOB, front, &pki.ca, &target, &[]).expect("bob's upgrade");
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    bob.send(Message::text("hi alice")).unwrap();
    assert_eq!(text(&mut alice), "System: bob joined the chat");
    assert_eq!(text(&mut alice), "bob: hi alice");

    // Straight to wsgate, not through nginx, the header is nobody's word:
    // this connection counts under 127.0.0.4, not under Alice.
    let xff = [("X-Forwarded-For", "127.0.0.2")];
    let target = format!("/ws?token={}", token("carol"));
    let stream = connect_from(IpAddr::from([127, 0, 0, 4]), addr);
    let (mut carol, _) = try_ws_on(stream, &target, &xff).expect("carol's upgrade");
    carol.send(Message::text("direct")).unwrap();
    let open = wait_for_line(&lines, "open user=\"carol\"");
    assert!(
        open.contains("peer=127.0.0.4:") && !open.contains("via="),
        "{open}"
    );
}

#[test]
fn behind_an_untrusted_nginx_every_client_is_nginx() {
    if !tool_present("nginx") {
        return;
    }
    let pki = pki("untrusted");
    let server = TestServer::with(|c| c.limits.max_conns_per_ip = Some(1));
    let dir = pki.files.cert.parent().unwrap().join("nginx");
    let (_nginx, port) = start_nginx(&pki, server.addr.port(), &dir);
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let target = format!("/ws?token={}", token("alice"));
    let _alice = wss_from(ALICE, front, &pki.ca, &target, &[]).expect("alice's upgrade");
    // nginx's X-Forwarded-For names Bob, but nginx is not trusted: Bob
    // is nginx's address, which Alice's connection already fills.
    let target = format!("/ws?token={}", token("bob"));
    assert_eq!(wss_from(BOB, front, &pki.ca, &target, &[]).err(), Some(429));
}

/// nginx's stream module in front of `upstream`, passing bytes through
/// after a PROXY protocol v1 header; returns it and its port.
fn start_nginx_stream(upstream: u16, dir: &Path) -> Option<(Running, u16)> {
    let module = Path::new("/usr/lib/nginx/modules/ngx_stream_module.so");
    if !module.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "libnginx-mod-stream must be installed in CI"
        );
        return None;
    }
    let port = free_port();
    let stream = format!(
        "stream {{\n  server {{\n    listen 127.0.0.1:{port};\n    \
         proxy_pass 127.0.0.1:{upstream};\n    proxy_protocol on;\n  }}\n}}\n"
    );
    let preamble = format!("load_module {};\n", module.display());
    Some((run_nginx(dir, &preamble, &stream, port), port))
}

#[test]
fn a_proxy_protocol_header_from_nginx_comes_before_wsgates_own_tls() {
    if !tool_present("nginx") {
        return;
    }
    let pki = pki("proxy-v1");
    let files = pki.files.clone();
    let server = TestServer::with(move |c| {
        c.tls = Some(files);
        c.trusted_proxies = vec![parse_network("127.0.0.1").unwrap()];
        c.proxy_protocol = true;
        c.limits.max_conns_per_ip = Some(1);
    });
    let dir = pki.files.cert.parent().unwrap().join("nginx-stream");
    let Some((_nginx, port)) = start_nginx_stream(server.addr.port(), &dir) else {
        return;
    };
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let target = format!("/ws?token={}", token("alice"));
    let mut alice = wss_from(ALICE, front, &pki.ca, &target, &[]).expect("alice's upgrade");
    assert_eq!(text(&mut alice), "System: alice joined the chat");
    // Her second connection: refused before its TLS handshake, without a
    // word, as one straight from her would be at accept.
    assert_eq!(wss_from(ALICE, front, &pki.ca, &target, &[]).err(), Some(0));
    let target = format!("/ws?token={}", token("bob"));
    let mut bob = wss_from(BOB, front, &pki.ca, &target, &[]).expect("bob's upgrade");
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    alice.send(Message::text("through the stream")).unwrap();
    assert_eq!(text(&mut bob), "alice: through the stream");
    // Straight to wsgate, without a header, 127.0.0.1 is refused: a
    // trusted proxy must send one.
    let tcp = connect_from(IpAddr::from([127, 0, 0, 1]), server.addr);
    assert!(try_tls_on(tcp, &pki.ca).is_err());
    // Neither refusal was a TLS timeout (no handshake began), and both
    // are counted as refusals. (127.0.0.5 is not a proxy: no header. The
    // one TLS failure is nginx's own probe above, closed early: `eof`.)
    let tcp = connect_from(IpAddr::from([127, 0, 0, 5]), server.addr);
    let mut tls = try_tls_on(tcp, &pki.ca).expect("a TLS connection");
    tls.write_all(crate::tls::get("/metrics").as_bytes())
        .unwrap();
    let mut metrics = String::new();
    let _ = tls.read_to_string(&mut metrics);
    assert!(!metrics.contains("{class=\"timeout\"}"), "{metrics}");
    for (status, reason) in [
        ("429", "too many connections from this address"),
        ("400", "expected a PROXY protocol header"),
    ] {
        let line = format!("wsgate_refusals_total{{status=\"{status}\",reason=\"{reason}\"}} 1\n");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[test]
fn haproxy_sends_a_v2_header_to_the_plain_port() {
    if !tool_present("haproxy") {
        return;
    }
    let server = TestServer::with(|c| {
        c.trusted_proxies = vec![parse_network("127.0.0.1").unwrap()];
        c.proxy_protocol = true;
        c.limits.max_conns_per_ip = Some(1);
    });
    let port = free_port();
    let dir = crate::tls::scratch("haproxy");
    let config = format!(
        "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\nfrontend front\n  bind 127.0.0.1:{port}\n  \
         default_backend wsgate\nbackend wsgate\n  server s1 127.0.0.1:{} send-proxy-v2\n",
        server.addr.port()
    );
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn haproxy");
    let _haproxy = Running(child);
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for("haproxy to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(front).is_ok()
    });
    // (That probe was a connection from 127.0.0.1 through HAProxy; it is
    // gone, and counted under 127.0.0.1, not under the clients.)
    let target = format!("/ws?token={}", token("alice"));
    let mut alice = ws_from(ALICE, front, &target).expect("alice's upgrade");
    assert_eq!(
        recv(&mut alice),
        Message::text("System: alice joined the chat")
    );
    assert_eq!(ws_from(ALICE, front, &target).err(), Some(429));
    let target = format!("/ws?token={}", token("bob"));
    let mut bob = ws_from(BOB, front, &target).expect("bob's upgrade");
    bob.send(Message::text("hi")).unwrap();
    assert_eq!(
        recv(&mut alice),
        Message::text("System: bob joined the chat")
    );
    assert_eq!(recv(&mut alice), Message::text("bob: hi"));
    // Straight to wsgate without a header: 400, and it says why.
    let stream = connect_from(IpAddr::from([127, 0, 0, 1]), server.addr);
    match try_ws_on(stream, &target, &[]) {
        Err(tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 400);
            let body = String::from_utf8_lossy(r.body().as_deref().unwrap_or_default());
            assert!(body.contains("expected a PROXY protocol header"), "{body}");
        }
        other => panic!("expected a 400, got {:?}", other.map(|(_, r)| r.status())),
    }
}
