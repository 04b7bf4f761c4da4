//! The innocent bystanders: two clients chatting in one room while an
//! attack runs beside them, and checked when it is over. Every adversarial
//! test keeps them (`adversarial`, `hardening`).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::common::{IO_TIMEOUT, Ws, mint, now_ms, recv_text, send, wait_for, ws_at};

/// How long a bystander's line may take to reach the other bystander.
pub const PROMPT: Duration = Duration::from_secs(3);

/// Pause between two bystander lines.
const TICK_PAUSE: Duration = Duration::from_millis(30);

/// Read timeout while the bystanders poll their sockets.
const POLL: Duration = Duration::from_millis(10);

/// Two innocent clients in one room: `dave` sends `tick N` every
/// [`TICK_PAUSE`]; `erin` must hear each tick, in order, within the prompt
/// of its sending. Both read everything the room sends them. Everything
/// else erin hears is kept, in order.
pub struct Bystanders {
    heard: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    sender: Option<JoinHandle<(u64, Ws)>>,
    receiver: Option<JoinHandle<Ws>>,
}

/// The start of dave's lines as erin hears them.
const DAVE_TICK: &str = "dave: tick ";

impl Bystanders {
    /// Joins erin, then dave, to `room` at `addr` and starts the chat.
    pub fn start(addr: SocketAddr, room: &str) -> Bystanders {
        Bystanders::with_prompt(addr, room, PROMPT)
    }

    /// As [`Bystanders::start`], where a tick may take `prompt` to arrive
    /// (backpressure delays everyone's input, by design).
    pub fn with_prompt(addr: SocketAddr, room: &str, prompt: Duration) -> Bystanders {
        let mut erin = join_at(addr, "erin", room);
        let dave = join_at(addr, "dave", room);
        assert_eq!(recv_text(&mut erin), "System: dave joined the chat");
        let heard = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let receiver = {
            let (heard, done) = (Arc::clone(&heard), Arc::clone(&done));
            std::thread::spawn(move || listen(erin, &heard, &done))
        };
        let sender = {
            let (heard, stop, done) = (Arc::clone(&heard), Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || tick(dave, &heard, &stop, &done, prompt))
        };
        Bystanders {
            heard,
            stop,
            done,
            sender: Some(sender),
            receiver: Some(receiver),
        }
    }

    /// Waits until erin has heard `line` (a notice about an attacker).
    pub fn wait_heard(&self, line: &str) {
        wait_for(
            &format!("the bystander to hear {line:?}"),
            IO_TIMEOUT,
            || self.heard.lock().unwrap().iter().any(|l| l == line),
        );
    }

    /// Waits until erin has heard `line` `n` times.
    pub fn wait_heard_times(&self, line: &str, n: usize) {
        wait_for(
            &format!("the bystander to hear {line:?} {n} times"),
            IO_TIMEOUT,
            || {
                self.heard
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| *l == line)
                    .count()
                    >= n
            },
        );
    }

    /// Sends three more ticks, stops, and returns everything but the ticks
    /// that erin heard. Panics with the bystanders' own failure.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let sent = self.sender.take().unwrap().join();
        self.done.store(true, Ordering::SeqCst);
        let listened = self.receiver.take().unwrap().join();
        let erin = listened.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (ticks, dave) = sent.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        drop((dave, erin));
        assert!(ticks >= 3, "only {ticks} ticks");
        let heard = self.heard.lock().unwrap();
        heard
            .iter()
            .filter(|l| !l.starts_with(DAVE_TICK))
            .cloned()
            .collect()
    }
}

impl Drop for Bystanders {
    fn drop(&mut self) {
        // Only reached without `finish` when the test already failed.
        self.stop.store(true, Ordering::SeqCst);
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        if let Some(t) = self.receiver.take() {
            let _ = t.join();
        }
    }
}

/// One message when one arrives within the socket's short read timeout.
fn poll_message(ws: &mut Ws, who: &str) -> Option<Message> {
    match ws.read() {
        Ok(m) => Some(m),
        Err(tungstenite::Error::Io(e)) if is_timeout(&e) => None,
        Err(e) => panic!("innocent {who} lost its connection: {e}"),
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// erin: records every text until `done`.
fn listen(mut erin: Ws, heard: &Mutex<Vec<String>>, done: &AtomicBool) -> Ws {
    erin.get_mut().set_read_timeout(Some(POLL)).unwrap();
    while !done.load(Ordering::SeqCst) {
        match poll_message(&mut erin, "erin") {
            Some(Message::Text(t)) => heard.lock().unwrap().push(t.as_str().to_string()),
            Some(Message::Close(f)) => panic!("innocent erin was closed: {f:?}"),
            _ => {}
        }
    }
    erin
}

/// dave: a tick, wait until erin has it, a pause; three more after `stop`.
fn tick(
    mut dave: Ws,
    heard: &Mutex<Vec<String>>,
    stop: &AtomicBool,
    done: &AtomicBool,
    prompt: Duration,
) -> (u64, Ws) {
    dave.get_mut().set_read_timeout(Some(POLL)).unwrap();
    let drain = |dave: &mut Ws| {
        if let Some(Message::Close(f)) = poll_message(dave, "dave") {
            panic!("innocent dave was closed: {f:?}");
        }
    };
    let (mut cursor, mut next_seen, mut extra) = (0, 0u64, 0);
    for n in 0u64.. {
        if done.load(Ordering::SeqCst) {
            return (n, dave);
        }
        let sent = Instant::now();
        send(&mut dave, &format!("tick {n}"));
        while next_seen <= n {
            if done.load(Ordering::SeqCst) {
                return (n, dave);
            }
            {
                let heard = heard.lock().unwrap();
                for line in &heard[cursor..] {
                    if let Some(number) = line.strip_prefix(DAVE_TICK) {
                        assert_eq!(
                            number,
                            next_seen.to_string(),
                            "erin heard ticks out of order"
                        );
                        next_seen += 1;
                    }
                }
                cursor = heard.len();
            }
            assert!(
                sent.elapsed() < prompt,
                "innocent erin did not hear `tick {n}` within {prompt:?}"
            );
            drain(&mut dave);
        }
        if stop.load(Ordering::SeqCst) {
            extra += 1;
            if extra > 3 {
                return (n + 1, dave);
            }
        }
        let pause = Instant::now() + TICK_PAUSE;
        while Instant::now() < pause {
            drain(&mut dave);
        }
    }
    unreachable!()
}

/// A member token for `user`, valid 15 minutes.
pub fn token(user: &str) -> String {
    mint(user, "member", now_ms(), 900)
}

/// `user` in `room` of the server at `addr`, its join notice read.
pub fn join_at(addr: SocketAddr, user: &str, room: &str) -> Ws {
    let bearer = format!("Bearer {}", token(user));
    let (mut ws, _) = ws_at(
        addr,
        &format!("/ws?room={room}"),
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(
        recv_text(&mut ws),
        format!("System: {user} joined the chat")
    );
    ws
}
