//! README.md's commands, run as written (only the port changed) against
//! the binary on a free loopback port, so that the README cannot drift
//! from the server: the quickstart's four terminals (two users chatting,
//! a cookie login and its logout closing that socket), the `curl -i`
//! that shows a refusal's body, and "For real use": a users file from
//! `wsgate hash-password`, a secret file, and tokens minted by the
//! Python and JavaScript snippets, each opening a WebSocket.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::cli::{BIN, Running, listening, wait_exit, websocat, wsgate};
use crate::common::{lines_of, scratch_dir, ws_at};

const README: &str = include_str!("../../README.md");
const WAIT: Duration = Duration::from_secs(20);

/// The fenced blocks (```LANG … ```) of the README section `heading`.
fn blocks(heading: &str, lang: &str) -> Vec<String> {
    let start = README
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has no section {heading:?}"));
    let section = &README[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = section;
    while let Some(i) = rest.find(&fence) {
        let body = &rest[i + fence.len()..];
        let end = body.find("```").expect("a closing fence");
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// `block` split at its `# Terminal N` comments.
fn terminals(block: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in block.lines() {
        if line.starts_with("# Terminal ") {
            out.push(String::new());
        }
        if let Some(t) = out.last_mut() {
            t.push_str(line);
            t.push('\n');
        }
    }
    out
}

/// A shell running `script` in `dir` (the port made `port`), with the
/// built binary first on `PATH`; its stdin, and its stdout line by line.
struct Shell {
    child: Running,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
}

impl Shell {
    fn start(script: &str, dir: &Path, port: u16) -> Shell {
        let script = script.replace(":8080", &format!(":{port}"));
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!("set -e\n{script}"))
            .current_dir(dir)
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash");
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        Shell {
            child: Running(child),
            stdin,
            out,
            err,
        }
    }

    /// Types `line` (and Enter).
    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line of output equal to `wanted`.
    fn expect(&self, wanted: &str) {
        loop {
            match self.out.recv_timeout(WAIT) {
                Ok(line) if line == wanted => return,
                Ok(_) => {}
                Err(_) => {
                    let err: Vec<String> = self.err.try_iter().collect();
                    panic!("no line {wanted:?}; stderr: {err:?}")
                }
            }
        }
    }

    /// Waits for the shell to end; its exit status and its stdout.
    fn finish(mut self) -> (bool, String) {
        drop(self.stdin.take());
        let status = wait_exit(&mut self.child.0).success();
        let out: Vec<String> = self.out.try_iter().collect();
        let err: Vec<String> = self.err.try_iter().collect();
        assert!(status, "the shell failed; stdout {out:?}, stderr {err:?}");
        (status, out.join("\n"))
    }
}

/// The binary as the quickstart starts it (demo users, a random secret),
/// on a free port.
fn start_demo() -> (Running, SocketAddr) {
    let mut cmd = wsgate();
    cmd.args(["--listen", "127.0.0.1:0"]);
    let (child, addr, _) = listening(cmd);
    (child, addr)
}

fn tools_present() -> bool {
    let present = websocat().is_some() && Command::new("python3").arg("--version").output().is_ok();
    assert!(
        present || std::env::var_os("CI").is_none(),
        "websocat and python3 must be installed in CI"
    );
    present
}

#[test]
fn the_quickstart_runs_as_written() {
    if !tools_present() {
        return;
    }
    let (_server, addr) = start_demo();
    let port = addr.port();
    let dir = scratch_dir("quickstart");
    let quickstart = blocks("Quickstart", "sh");
    let steps = terminals(&quickstart[0]);
    assert_eq!(steps.len(), 4, "four terminals");

    let mut alice = Shell::start(&steps[0], &dir, port);
    alice.expect("System: alice joined the chat");
    let mut bob = Shell::start(&steps[1], &dir, port);
    bob.expect("System: bob joined the chat");
    alice.expect("System: bob joined the chat");
    alice.type_line("hello from alice");
    bob.expect("alice: hello from alice");
    bob.type_line("/who");
    bob.expect("System: users: alice, bob");

    // The cookie: Alice's second connection, which logout ends.
    let mut cookie = Shell::start(&steps[2], &dir, port);
    cookie.type_line("/who");
    cookie.expect("System: users: alice, bob");
    Shell::start(&steps[3], &dir, port).finish();
    // websocat -E exits once the server closed it (4403).
    drop(cookie.stdin.take());
    assert!(
        wait_exit(&mut cookie.child.0).success(),
        "the cookie terminal ends"
    );
    // The token connection stays.
    alice.type_line("still here");
    bob.expect("alice: still here");

    // The curl that shows why an upgrade was refused.
    let refusal = blocks("Quickstart", "sh")
        .into_iter()
        .find(|b| b.contains("curl -i --max-time 2"))
        .expect("the curl -i block");
    let (_, out) = Shell::start(&refusal, &dir, port).finish();
    assert!(out.starts_with("HTTP/1.1 401 Unauthorized"), "{out}");
    assert!(out.contains(r#"{"detail":"invalid token"}"#), "{out}");
}

#[test]
fn for_real_use_with_minted_tokens() {
    if !tools_present() {
        return;
    }
    let node = Command::new("node").arg("--version").output().is_ok();
    assert!(
        node || std::env::var_os("CI").is_none(),
        "node must be installed in CI"
    );
    let dir = scratch_dir("for-real-use");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let block = &blocks("For real use", "sh")[0];
    // The last line starts the server: run it apart, in the background.
    let (setup, serve) = block.trim_end().rsplit_once('\n').unwrap();
    assert!(serve.starts_with("wsgate --listen"), "{serve}");
    let mut shell = Shell::start(setup, &dir, port);
    shell.type_line("correct horse");
    shell.finish();
    let users = std::fs::read_to_string(dir.join("users.txt")).unwrap();
    assert!(users.starts_with("carol:member:$pbkdf2-sha256$"), "{users}");
    // (On loopback: the tests listen nowhere else.)
    let serve = serve.replace("0.0.0.0:", "127.0.0.1:");
    let _server = Shell::start(&format!("exec {serve}"), &dir, port);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    crate::common::wait_for("the server", WAIT, || {
        std::net::TcpStream::connect(addr).is_ok()
    });

    let python = blocks("For real use", "python").remove(0);
    let js = blocks("For real use", "js").remove(0);
    let mut minted = vec![run_snippet("python3", &python, &dir)];
    if node {
        minted.push(run_snippet("node", &js, &dir));
    }
    for token in minted {
        let (mut ws, _) = ws_at(addr, &format!("/ws?token={token}"), &[]);
        assert_eq!(
            crate::common::recv_text(&mut ws),
            "System: carol joined the chat"
        );
    }
}

/// Runs `code` with `interpreter` (reading the program from stdin) in
/// `dir`; what it printed, trimmed.
fn run_snippet(interpreter: &str, code: &str, dir: &Path) -> String {
    let mut child = Command::new(interpreter)
        .arg("-")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(interpreter);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(code.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{interpreter}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}
