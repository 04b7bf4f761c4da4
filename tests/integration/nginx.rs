//! wsgate behind a real nginx (Debian's package, which `.ci/run`
//! installs), running the shipped `deploy/nginx.conf` with a test
//! certificate and loopback ports: HTTPS and WSS at nginx, plain HTTP to
//! wsgate; tokens, the cookie flow with nginx's `https://` origin, and a
//! chat both ways.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tungstenite::Message;

use crate::cli::Running;
use crate::common::{TestServer, mint, now_ms, wait_for};
use crate::tls::{Pki, get, https, https_login, pki, text, tls, tool_present, wss};

/// nginx with `deploy/nginx.conf` in front of `upstream`, listening on a
/// free loopback port with `pki`'s certificate; returns it and its port.
pub(crate) fn start_nginx(pki: &Pki, upstream: u16, dir: &Path) -> (Running, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let site = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
        .expect("deploy/nginx.conf");
    let site = site
        .replace(
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{upstream};"),
        )
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace(
            "/etc/ssl/wsgate/fullchain.pem",
            pki.files.cert.to_str().unwrap(),
        )
        .replace(
            "/etc/ssl/wsgate/privkey.pem",
            pki.files.key.to_str().unwrap(),
        );
    assert!(
        site.contains(&format!("server 127.0.0.1:{upstream};")),
        "the upstream line moved"
    );
    assert!(
        site.contains(&format!("listen 127.0.0.1:{port} ssl;")),
        "the listen line moved"
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("wsgate.conf"), site).unwrap();
    let http = format!(
        "http {{\n  access_log off;\n  client_body_temp_path {0}/body;\n  proxy_temp_path {0}/proxy;\n\
         fastcgi_temp_path {0}/fastcgi;\n  uwsgi_temp_path {0}/uwsgi;\n  scgi_temp_path {0}/scgi;\n\
         include {0}/wsgate.conf;\n}}\n",
        dir.display()
    );
    (run_nginx(dir, "", &http, port), port)
}

/// nginx in the foreground with `blocks` (an `http { }` or a `stream { }`
/// block) and `preamble` (`load_module` lines) in its main configuration,
/// its files under `dir`; returns once it accepts on `port`.
pub(crate) fn run_nginx(dir: &Path, preamble: &str, blocks: &str, port: u16) -> Running {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let main = format!(
        "{preamble}daemon off;\nmaster_process off;\npid {0}/nginx.pid;\n\
         error_log {0}/logs/error.log warn;\nevents {{ worker_connections 256; }}\n{blocks}",
        dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nginx");
    let running = Running(child);
    wait_for("nginx to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    running
}

#[test]
fn chat_through_nginx_with_tokens_and_the_cookie_flow() {
    if !tool_present("nginx") {
        return;
    }
    let pki = pki("nginx");
    let server = TestServer::start();
    let dir = pki.files.cert.parent().unwrap().join("nginx");
    let (_nginx, port) = start_nginx(&pki, server.addr.port(), &dir);
    let front: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    let health = https(front, &pki.ca, &get("/healthz"));
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    assert!(health.ends_with("ok"), "{health}");

    // A token straight from wsgate's signer; WSS through nginx.
    let token = mint("alice", "member", now_ms(), 600);
    let mut alice = wss(front, &pki.ca, &format!("/ws?token={token}"));
    assert_eq!(text(&mut alice), "System: alice joined the chat");

    // The cookie flow: the login through nginx, the upgrade with nginx's
    // https:// origin (wsgate sees the Host nginx passes on).
    let cookie = https_login(front, &pki.ca, "bob", "builder");
    let pair = cookie.split(';').next().unwrap();
    let url = format!("wss://127.0.0.1:{port}/ws");
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request
        .headers_mut()
        .insert("Cookie", pair.parse().unwrap());
    let origin = format!("https://127.0.0.1:{port}");
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    let (mut bob, _) = tungstenite::client(request, tls(front, &pki.ca)).expect("a cookie upgrade");
    assert_eq!(text(&mut bob), "System: bob joined the chat");
    assert_eq!(text(&mut alice), "System: bob joined the chat");

    // Both ways, including a message larger than nginx's buffers.
    bob.send(Message::text("hello through nginx")).unwrap();
    assert_eq!(text(&mut alice), "bob: hello through nginx");
    assert_eq!(text(&mut bob), "bob: hello through nginx");
    let long = "z".repeat(50_000);
    alice.send(Message::text(long.clone())).unwrap();
    assert_eq!(text(&mut bob), format!("alice: {long}"));

    // A foreign origin is refused through nginx as it is directly.
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "wss://127.0.0.1:{port}/ws"
    ))
    .unwrap();
    request
        .headers_mut()
        .insert("Cookie", pair.parse().unwrap());
    request
        .headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    match tungstenite::client(request, tls(front, &pki.ca)) {
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }
}
