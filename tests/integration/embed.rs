//! The embedding example (`examples/bot.rs`) run as a program: its bot
//! greets, answers `/time` and posts on its own, over real sockets.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsgate::auth::users::Users;
use wsgate::config::Config;
use wsgate::core::PublishError;
use wsgate::shell::Gateway;

use crate::common::{SECRET, Ws, mint, now_ms, recv_text, send, ws_at};

/// The example's binary, next to this test's (`cargo test` builds the
/// examples); built here if it is missing (`cargo test --test …`).
fn bot_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bot = dir.join("examples").join("bot");
    if !bot.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "bot"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --example bot");
    }
    bot
}

/// The running example, stopped by its own id when dropped.
struct Bot(Child);

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(every_secs: u64) -> (Bot, SocketAddr) {
    let mut child = Command::new(bot_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--every",
            &every_secs.to_string(),
        ])
        .env("WSGATE_SECRET", std::str::from_utf8(SECRET).unwrap())
        .env("WSGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the example");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).expect("its first line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .expect("an address");
    (Bot(child), addr)
}

fn join(addr: SocketAddr, user: &str) -> Ws {
    let bearer = format!("Bearer {}", mint(user, "member", now_ms(), 600));
    let (ws, _) = ws_at(addr, "/ws", &[("Authorization", bearer.as_str())]);
    ws
}

#[test]
fn the_example_bot_greets_answers_time_and_posts_on_its_own() {
    let (_bot, addr) = start(1);
    let mut alice = join(addr, "alice");
    assert_eq!(recv_text(&mut alice), "System: alice joined the chat");
    assert_eq!(recv_text(&mut alice), "clock: welcome, alice: ask me /time");
    send(&mut alice, "/time");
    // The answer, to alice alone; the bot's own posts may come between.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut answered, mut posted) = (false, false);
    while !(answered && posted) {
        assert!(
            Instant::now() < deadline,
            "answered {answered}, posted {posted}"
        );
        let line = recv_text(&mut alice);
        let is_time = |t: &str| {
            t.strip_prefix("the time is ")
                .and_then(|t| t.strip_suffix(" UTC"))
                .is_some_and(|t| t.len() == 8 && t.as_bytes()[2] == b':')
        };
        if let Some(rest) = line.strip_prefix("System: ") {
            assert!(is_time(rest), "{line:?}");
            answered = true;
        } else if let Some(rest) = line.strip_prefix("clock: ") {
            assert!(is_time(rest), "{line:?}");
            posted = true;
        } else {
            panic!("unexpected {line:?}");
        }
    }
}

/// A publisher never blocks: lines the loop has not taken yet are capped
/// (1,024, then `Busy`), a line is no longer than a client's, and once the
/// gateway is gone it says `Stopped`.
#[test]
fn a_publisher_says_busy_when_the_loop_lags_and_stopped_when_it_is_gone() {
    let mut config = Config::with_secret(std::str::from_utf8(SECRET).unwrap());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let gateway = Gateway::bind(config, Arc::new(Users::demo())).expect("bind");
    let publisher = gateway.publisher();
    assert_eq!(
        publisher.publish("no room!", "bot", "hi"),
        Err(PublishError::Room)
    );
    // No longer than a client's line may be (64 KiB by default).
    assert_eq!(
        publisher.publish("lobby", "bot", &"x".repeat(64 * 1024 + 1)),
        Err(PublishError::TooLong)
    );
    // The gateway is not running: nothing takes the lines.
    for i in 0..1024 {
        assert_eq!(
            publisher.publish("lobby", "bot", &format!("line {i}")),
            Ok(())
        );
    }
    assert_eq!(
        publisher.publish("lobby", "bot", "one too many"),
        Err(PublishError::Busy)
    );
    drop(gateway);
    assert_eq!(
        publisher.publish("lobby", "bot", "after"),
        Err(PublishError::Stopped)
    );
}
