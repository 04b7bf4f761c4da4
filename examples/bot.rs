//! A chat server with a bot inside, as a program that embeds wsgate.
//!
//! ```text
//! WSGATE_SECRET=... cargo run --example bot -- [--listen ADDR] [--every SECS] [--room NAME]
//! ```
//!
//! The bot, `clock`:
//!
//! - answers `/time` (text mode) with the time, to the one who asked;
//! - greets every user whose first connection joins a room;
//! - posts the time into `--room` (default `lobby`) every `--every`
//!   seconds (default 60), from a thread of its own, through a
//!   [`Publisher`].
//!
//! It serves the demo users (loopback only) and prints `listening on ADDR`
//! once bound, so a script or test can connect; it stops on SIGTERM or
//! SIGINT like the server.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wsgate::auth::users::Users;
use wsgate::config::Config;
use wsgate::core::Observe;
use wsgate::shell::{Gateway, Publisher};

/// The bot's name: what its lines are signed with.
const BOT: &str = "clock";

/// Answers `/time`, and greets newcomers through the publisher (an
/// observer may not block, but publishing never does).
struct Clock {
    publisher: Publisher,
}

impl Observe for Clock {
    fn joined(&mut self, room: &str, user: &str) {
        if user != BOT {
            let _ = self
                .publisher
                .publish(room, BOT, &format!("welcome, {user}: ask me /time"));
        }
    }

    fn command(&mut self, _room: &str, _user: &str, command: &str) -> Option<String> {
        (command == "time").then(|| format!("the time is {} UTC", time_of_day()))
    }
}

/// `HH:MM:SS` of the UTC day.
fn time_of_day() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:8080".to_string();
    let mut every = 60u64;
    let mut room = "lobby".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--listen" => listen = value,
            "--every" => every = value.parse()?,
            "--room" => room = value,
            _ => return Err(format!("unknown option {arg}").into()),
        }
    }
    let secret = std::env::var("WSGATE_SECRET").map_err(|_| "set WSGATE_SECRET (32+ bytes)")?;
    let mut config = Config::with_secret(secret);
    config.listen = listen.parse()?;
    let mut gateway = Gateway::bind(config, Arc::new(Users::demo()))?;
    gateway.handle_signals()?;
    let publisher = gateway.publisher();
    gateway.add_observer(Box::new(Clock {
        publisher: publisher.clone(),
    }));
    println!("listening on {}", gateway.local_addr()?);
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(every.max(1)));
            let line = format!("the time is {} UTC", time_of_day());
            if publisher.publish(&room, BOT, &line).is_err() {
                // The server stopped (or is swamped): try again later, or
                // end with the process.
                continue;
            }
        }
    });
    gateway.run()?;
    Ok(())
}
