//! What an embedding program sees and says: observers of joins, leaves,
//! lines and unknown commands, and lines it publishes into rooms.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::core::{Observe, Publication, PublishError};
use crate::testkit::Harness;

/// Records everything it is told; answers `/time`.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Observe for Recorder {
    fn joined(&mut self, room: &str, user: &str) {
        self.0.lock().unwrap().push(format!("joined {room} {user}"));
    }
    fn left(&mut self, room: &str, user: &str) {
        self.0.lock().unwrap().push(format!("left {room} {user}"));
    }
    fn message(&mut self, room: &str, from: &str, text: &str, seq: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("message {room} {from} {text} {seq}"));
    }
    fn command(&mut self, room: &str, user: &str, command: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .push(format!("command {room} {user} {command}"));
        (command == "time").then(|| "it is noon".to_string())
    }
}

#[test]
fn observers_see_joins_leaves_and_lines_in_order() {
    let mut h = Harness::default();
    let recorder = Recorder::default();
    h.server.add_observer(Box::new(recorder.clone()));
    let alice = h.open("alice");
    let again = h.open("alice");
    let bob = h.open_in("bob", "dev");
    h.say(alice, "hello");
    h.say(bob, "over here");
    h.hang_up(again);
    h.hang_up(alice);
    assert_eq!(
        recorder.seen(),
        [
            "joined lobby alice",
            "joined dev bob",
            "message lobby alice hello 1",
            "message dev bob over here 1",
            "left lobby alice",
        ]
    );
}

#[test]
fn observers_answer_commands_the_server_does_not_know() {
    let mut h = Harness::default();
    h.server.add_observer(Box::new(Recorder::default()));
    let alice = h.open("alice");
    let bob = h.open("bob");
    h.texts(alice);
    h.texts(bob);
    h.say(alice, "/time");
    h.say(alice, "/weather");
    assert_eq!(
        h.texts(alice),
        ["System: it is noon", "System: error: unknown command"]
    );
    assert!(h.texts(bob).is_empty(), "commands go to the sender alone");
    // The server's own commands stay its own.
    h.say(alice, "/who");
    assert_eq!(h.texts(alice), ["System: users: alice, bob"]);
}

#[test]
fn published_lines_reach_every_member_in_both_modes() {
    let mut h = Harness::default();
    let recorder = Recorder::default();
    h.server.add_observer(Box::new(recorder.clone()));
    let text = h.open("alice");
    let token = h.token("bob", 3600);
    let (json, r) = h.upgrade(
        "/ws",
        &format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
    );
    assert_eq!(r.status, 101);
    h.texts(text);
    h.texts(json);
    h.say(text, "first");
    let publication = Publication::new("lobby", "clock", "it is noon").unwrap();
    let now = h.now;
    assert_eq!(h.server.handle_publish(&publication, now), Ok(2));
    h.pump();
    assert_eq!(h.texts(text), ["alice: first", "clock: it is noon"]);
    let got: Vec<Value> = h
        .texts(json)
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert_eq!(got[1]["from"], json!("clock"));
    assert_eq!(got[1]["text"], json!("it is noon"));
    assert_eq!(got[1]["seq"], json!(2), "the room's sequence goes on");
    // Observers are not told of the program's own lines.
    assert!(!recorder.seen().iter().any(|l| l.contains("noon")));
    // A room without members gets nothing, and keeps nothing.
    let empty = Publication::new("nobody", "clock", "hello?").unwrap();
    assert_eq!(h.server.handle_publish(&empty, now), Ok(0));
    assert_eq!(h.server.rooms(), 1); // A line longer than a client may send is refused, and nobody gets it.
    let limit = h.server.config().limits.max_message_bytes;
    let long = Publication::new("lobby", "clock", &"x".repeat(limit + 1)).unwrap();
    assert_eq!(
        h.server.handle_publish(&long, now),
        Err(PublishError::TooLong)
    );
    let fits = Publication::new("lobby", "clock", &"y".repeat(limit)).unwrap();
    assert_eq!(h.server.handle_publish(&fits, now), Ok(2));
    h.pump();
    assert_eq!(h.texts(text), [format!("clock: {}", "y".repeat(limit))]);
}
