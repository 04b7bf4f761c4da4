//! The `wsgate` binary: flags, start-up refusals (exit code 2),
//! `hash-password`, one chat end to end through the real process (and what
//! its log must never hold), SIGTERM; and `websocat`, where installed, as a
//! real client.
//!
//! Every child runs with a cleared environment (no stray `WSGATE_*`), on
//! `127.0.0.1:0` when it would listen at all, and is killed by its own
//! handle if a test fails while it runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{
    HttpConn, SECRET, WsRequest, connect_to, form_request, mint, now_ms, recv_text, send, ws_at,
};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_wsgate");

/// How long a command that should exit at once may take.
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

pub(crate) fn wsgate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawns `cmd` (the binary, with its flags) and waits for its
/// "listening on ADDR" line; the child, its address and its later log
/// lines as they come.
pub(crate) fn listening(mut cmd: Command) -> (Running, SocketAddr, mpsc::Receiver<String>) {
    let mut child = Running(cmd.spawn().expect("spawn wsgate"));
    let lines = crate::common::lines_of(child.0.stderr.take().unwrap());
    let addr = loop {
        let line = lines.recv_timeout(EXIT_DEADLINE).expect("a log line");
        if let Some((_, addr)) = line.split_once("listening on ") {
            break addr
                .trim()
                .parse()
                .expect("an address after \"listening on\"");
        }
    };
    (child, addr, lines)
}

/// Kills the child when dropped (a failing test must not leave it running).
pub(crate) struct Running(pub(crate) Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
}

/// Runs `cmd` with `stdin`, expecting it to exit by itself.
fn run(mut cmd: Command, stdin: Option<&str>) -> (ExitStatus, String, String) {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = Running(cmd.spawn().expect("spawn wsgate"));
    if let Some(input) = stdin {
        let mut pipe = child.0.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    let out = drain(child.0.stdout.take().unwrap());
    let err = drain(child.0.stderr.take().unwrap());
    let status = wait_exit(&mut child.0);
    (status, out.join().unwrap(), err.join().unwrap())
}

/// Waits (polling, bounded by `EXIT_DEADLINE`) for `child` to exit.
pub(crate) fn wait_exit(child: &mut std::process::Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the child did not exit within {EXIT_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_and_version() {
    for flag in ["--help", "-h"] {
        let mut cmd = wsgate();
        cmd.arg(flag);
        let (status, out, err) = run(cmd, None);
        assert!(status.success(), "{flag}: {status} {err}");
        assert!(out.contains("USAGE"), "{out}");
        for option in ["--listen", "--users", "--secret-file", "hash-password"] {
            assert!(out.contains(option), "{flag} does not mention {option}");
        }
    }
    for flag in ["--version", "-V"] {
        let mut cmd = wsgate();
        cmd.arg(flag);
        let (status, out, _) = run(cmd, None);
        assert!(status.success());
        assert_eq!(out, format!("wsgate {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn unknown_flags_exit_2() {
    let mut cmd = wsgate();
    cmd.args(["--listen", "127.0.0.1:0", "--frobnicate"]);
    let (status, _, err) = run(cmd, None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--frobnicate"), "{err}");
}

#[test]
fn hash_password_prints_a_verifiable_pbkdf2_hash() {
    let mut cmd = wsgate();
    cmd.arg("hash-password");
    let (status, out, err) = run(cmd, Some("correct horse\n"));
    assert!(status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let hash = lines[0];
    assert!(hash.starts_with("$pbkdf2-sha256$"), "{hash}");
    assert!(!out.contains("correct horse"));
    assert_eq!(wsgate::auth::password::validate_hash(hash), Ok(()));
    assert!(wsgate::auth::password::verify_password(
        hash,
        "correct horse"
    ));
    assert!(!wsgate::auth::password::verify_password(
        hash,
        "correct horse\n"
    ));

    let mut cmd = wsgate();
    cmd.arg("hash-password");
    let (status, out, _) = run(cmd, Some("\n"));
    assert_eq!(status.code(), Some(2), "an empty password");
    assert!(out.is_empty());
}

#[test]
fn a_short_secret_is_refused_at_start() {
    let mut cmd = wsgate();
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("WSGATE_SECRET", "only-31-bytes-of-secret-0123456");
    let (status, _, err) = run(cmd, None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("32"), "{err}");
    assert!(
        !err.contains("only-31-bytes"),
        "the secret is printed: {err}"
    );
}

#[test]
fn start_up_errors_say_what_to_do() {
    let secret = std::str::from_utf8(SECRET).unwrap();
    // The port is taken: the address is named, and what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cmd = wsgate();
    cmd.args(["--listen", &addr.to_string()])
        .env("WSGATE_SECRET", secret);
    let (status, _, err) = run(cmd, None);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}: "))
            && err.contains("stop it, or pick another port with --listen"),
        "{err}"
    );
    // A short secret: which file, which line, and how it is read.
    let dir = crate::common::scratch_dir("short-secret");
    let file = dir.join("secret.txt");
    std::fs::write(&file, format!("{secret}\nshort\n")).unwrap();
    let mut cmd = wsgate();
    cmd.args(["--listen", "127.0.0.1:0", "--secret-file"])
        .arg(&file);
    let (status, _, err) = run(cmd, None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "--secret-file {}: line 2 is 5 bytes",
            file.display()
        )) && err.contains("not decoded from base64 or hex"),
        "{err}"
    );
    assert!(!err.contains("short\n") && !err.contains(secret), "{err}");
    // A host name, a duration with a unit it does not know: the forms.
    for (args, wanted) in [
        (
            ["--listen", "localhost:8093"],
            "--listen: not an address: \"localhost:8093\": give an IP address and a port, \
             such as 127.0.0.1:8080",
        ),
        (
            ["--token-ttl", "15min"],
            "--token-ttl: not a duration: \"15min\": give a whole number of seconds, or one \
             with a unit s, m, h or d, such as 900, 90s, 15m, 8h or 1d",
        ),
    ] {
        let mut cmd = wsgate();
        cmd.args(args).env("WSGATE_SECRET", secret);
        let (status, _, err) = run(cmd, None);
        assert_eq!(status.code(), Some(2), "{err}");
        assert!(err.contains(wanted), "{err}");
    }
}

#[test]
fn hash_password_does_not_echo_on_a_terminal() {
    // A real pseudo-terminal (Python's pty): what the terminal shows is
    // the prompts (the password is asked twice) and newlines, never the
    // password; the hash is printed.
    let script = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "hash-password"])
shown = b""
while b"password: " not in shown:
    shown += os.read(fd, 1024)
os.write(fd, b"correct horse\n")
while b"again: " not in shown:
    shown += os.read(fd, 1024)
os.write(fd, b"correct horse\n")
end = time.time() + 20
while time.time() < end:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    shown += chunk
os.waitpid(pid, 0)
sys.stdout.write(shown.decode())
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .output()
        .expect("python3");
    let shown = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(shown.starts_with("password: "), "{shown:?} {err}");
    assert!(shown.contains("again: "), "{shown:?}");
    assert!(!shown.contains("correct horse"), "echoed: {shown:?}");
    assert!(shown.contains("$pbkdf2-sha256$"), "{shown:?}");
}

#[test]
fn demo_users_refuse_a_public_address() {
    let mut cmd = wsgate();
    cmd.args(["--listen", "0.0.0.0:0"])
        .env("WSGATE_SECRET", std::str::from_utf8(SECRET).unwrap());
    let (status, _, err) = run(cmd, None);
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--users"), "{err}");
}

/// The running binary, its address, the stderr lines read so far, the
/// channel of later lines, and the threads draining stderr and stdout.
type Started = (
    Running,
    SocketAddr,
    Vec<String>,
    mpsc::Receiver<String>,
    JoinHandle<()>,
    JoinHandle<String>,
);

/// Starts `wsgate --listen 127.0.0.1:0` with [`SECRET`]; waits for its
/// "listening on ADDR" line.
fn start_binary() -> Started {
    let mut cmd = wsgate();
    cmd.args(["--listen", "127.0.0.1:0"])
        .env("WSGATE_SECRET", std::str::from_utf8(SECRET).unwrap());
    let mut child = Running(cmd.spawn().expect("spawn wsgate"));
    let stdout = drain(child.0.stdout.take().unwrap());
    // Forward stderr line by line, so the address can be read as it comes.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    let forward = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let line = lines
            .recv_timeout(EXIT_DEADLINE)
            .unwrap_or_else(|_| panic!("no \"listening on\" line; stderr so far: {log:?}"));
        log.push(line.clone());
        if let Some((_, addr)) = line.split_once("listening on ") {
            break addr
                .trim()
                .parse()
                .expect("an address after \"listening on\"");
        }
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    (child, addr, log, lines, forward, stdout)
}

#[test]
fn log_lines_start_with_an_rfc3339_utc_time() {
    let (_child, _, log, ..) = start_binary();
    for line in &log {
        // 2026-12-02T03:04:05.678Z INFO  listening on …
        let (time, _) = line.split_once(' ').expect("a time, then the rest");
        let b = time.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        assert!(
            b.len() == 24
                && digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10)
                && b[10] == b'T'
                && digits(11..13)
                && b[13] == b':'
                && digits(14..16)
                && b[16] == b':'
                && digits(17..19)
                && b[19] == b'.'
                && digits(20..23)
                && b[23] == b'Z',
            "{line}"
        );
        assert!(time.starts_with("20"), "{line}");
    }
}

#[test]
fn the_binary_serves_a_chat_end_to_end() {
    let secret = std::str::from_utf8(SECRET).unwrap();
    let (mut child, addr, mut log, lines, forward, stdout) = start_binary();
    let mut conn = HttpConn::new(connect_to(addr));
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = conn.response();
    assert_eq!((r.status, r.text()), (200, "ok"));

    // A failed login, whose password must not be logged.
    conn.send(form_request("/token", "username=alice&password=hunter2-typo", "").as_bytes());
    assert_eq!(conn.response().status, 401);

    // A token from the binary's own /token, by query.
    conn.send(form_request("/token", "username=alice&password=wonderland", "").as_bytes());
    let r = conn.response();
    assert_eq!(r.status, 200, "{}", r.text());
    let issued = r.json()["access_token"].as_str().unwrap().to_string();
    let (mut alice, _) = ws_at(addr, &format!("/ws?token={issued}"), &[]);
    assert_eq!(recv_text(&mut alice), "System: alice joined the chat");

    // A token minted with WSGATE_SECRET, by path.
    let minted = mint("bob", "member", now_ms(), 600);
    let (mut bob, _) = ws_at(addr, &format!("/ws/{minted}"), &[]);
    assert_eq!(recv_text(&mut bob), "System: bob joined the chat");
    assert_eq!(recv_text(&mut alice), "System: bob joined the chat");
    send(&mut bob, "hello through the binary");
    assert_eq!(recv_text(&mut alice), "bob: hello through the binary");
    assert_eq!(recv_text(&mut bob), "bob: hello through the binary");

    // A login session, whose id must not be logged either.
    conn.send(form_request("/login", "username=bob&password=builder", "").as_bytes());
    let r = conn.response();
    assert_eq!(r.status, 204);
    let sid = crate::common::session_id(&r);
    let cookie = format!("__Host-wsgate={sid}");
    let origin = format!("http://{addr}");
    let (mut by_cookie, _) = ws_at(
        addr,
        "/ws?room=cookie",
        &[("Cookie", cookie.as_str()), ("Origin", origin.as_str())],
    );
    assert_eq!(recv_text(&mut by_cookie), "System: bob joined the chat");

    // A refused query token, to be found redacted in the log.
    let expired = mint("carol", "member", now_ms() - 7_200_000, 60);
    let mut refused = HttpConn::new(connect_to(addr));
    refused.send(
        WsRequest::to(addr, &format!("/ws?room=x&token={expired}"))
            .render()
            .as_bytes(),
    );
    assert_eq!(refused.response().status, 401);
    drop((alice, bob, by_cookie, conn, refused));

    // Stop it by its own handle, then read everything it logged.
    child.0.kill().expect("kill wsgate");
    child.0.wait().expect("wait for wsgate");
    forward.join().unwrap();
    log.extend(lines.try_iter());
    let log = log.join("\n");
    assert!(stdout.join().unwrap().is_empty());
    assert!(log.contains("target=\"/ws?room=x&[redacted]\""), "{log}");
    // (The start-up warning names the demo users' published passwords;
    // the passwords sent by clients must not appear.)
    for secret in [
        issued.as_str(),
        minted.as_str(),
        expired.as_str(),
        sid.as_str(),
        "hunter2-typo",
        secret,
    ] {
        assert!(!log.contains(secret), "the log holds a credential:\n{log}");
    }
}

#[test]
fn sigterm_closes_websockets_1001_and_exits_0() {
    let (mut child, addr, mut log, lines, _forward, _stdout) = start_binary();
    let token = mint("alice", "member", now_ms(), 600);
    let (mut alice, _) = ws_at(addr, &format!("/ws?token={token}"), &[]);
    assert_eq!(recv_text(&mut alice), "System: alice joined the chat");
    send(&mut alice, "before the signal");
    assert_eq!(recv_text(&mut alice), "alice: before the signal");

    // SIGTERM to this child alone, by its id.
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let ending = loop {
        match alice.read() {
            Ok(tungstenite::Message::Close(frame)) => break Ok(frame),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
    };
    let frame = ending.unwrap_or_else(|e| {
        while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
            log.push(line);
        }
        panic!(
            "no close frame ({e}); the server logged:\n{}",
            log.join("\n")
        )
    });
    let frame = frame.expect("a close frame with a code");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1001, "server shutting down")
    );
    let status = wait_exit(&mut child.0);
    assert_eq!(status.code(), Some(0), "{status}");
}

/// `websocat` on `PATH`, if installed.
pub(crate) fn websocat() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("websocat"))
        .find(|p| p.is_file())
}

#[test]
fn websocat_chats_line_by_line() {
    let Some(websocat) = websocat() else {
        // .ci/run installs it, so in CI a missing websocat is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "websocat must be installed in CI"
        );
        eprintln!("websocat not installed; skipping");
        return;
    };
    let server = crate::common::TestServer::start();
    let mut bob = server.join("bob", "lobby");
    let token = server.token("alice");
    let mut child = Running(
        Command::new(websocat)
            .arg(format!("-H=Authorization: Bearer {token}"))
            .arg(format!("ws://{}/ws", server.addr))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn websocat"),
    );
    let lines = crate::common::lines_of(child.0.stdout.take().unwrap());
    let next = || {
        lines
            .recv_timeout(crate::common::IO_TIMEOUT)
            .expect("a line from websocat")
    };
    assert_eq!(next(), "System: alice joined the chat");
    assert_eq!(recv_text(&mut bob), "System: alice joined the chat");

    // websocat sends each line with its newline; the server drops it.
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(b"hello from websocat\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next(), "alice: hello from websocat");
    assert_eq!(recv_text(&mut bob), "alice: hello from websocat");
    send(&mut bob, "hi websocat");
    assert_eq!(recv_text(&mut bob), "bob: hi websocat");
    assert_eq!(next(), "bob: hi websocat");

    // End of input closes the WebSocket.
    drop(stdin);
    assert_eq!(recv_text(&mut bob), "System: alice has left the chat");
}
