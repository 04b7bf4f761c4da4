//! Chat between open sockets: every line reaches every member in order,
//! presence counts users rather than connections and stops past its
//! limit, rooms do not cross, commands and errors go to the sender alone,
//! roles decide who may send, and JSON mode (`wsgate.json`) next to text
//! mode. Message rates are in `limits`.

use serde_json::{Value, json};

use super::json_body;
use crate::core::ConnId;
use crate::testkit::Harness;

#[test]
fn three_users_see_every_line_in_order() {
    let mut h = Harness::default();
    let a = h.open("alice");
    let b = h.open("bob");
    let c = h.open("carol");
    assert_eq!(
        h.texts(a),
        vec![
            "System: alice joined the chat",
            "System: bob joined the chat",
            "System: carol joined the chat"
        ]
    );
    h.texts(b);
    h.texts(c);
    h.say(a, "one");
    h.say(b, "two");
    h.say(c, "three");
    let expected = vec!["alice: one", "bob: two", "carol: three"];
    for id in [a, b, c] {
        assert_eq!(h.texts(id), expected);
    }
}

#[test]
fn presence_counts_users_not_connections() {
    let mut h = Harness::default();
    let a1 = h.open("alice");
    let b = h.open("bob");
    h.texts(a1);
    let a2 = h.open("alice");
    assert_eq!(h.texts(b), vec!["System: bob joined the chat"]);
    h.hang_up(a1);
    assert!(h.texts(b).is_empty(), "alice still has a connection");
    h.hang_up(a2);
    assert_eq!(h.texts(b), vec!["System: alice has left the chat"]);
}

#[test]
fn presence_stops_past_the_limit() {
    let mut h = Harness::new(|c| c.limits.presence_limit = 2);
    let a = h.open("alice");
    h.open("bob");
    h.open("carol");
    assert_eq!(
        h.texts(a),
        vec![
            "System: alice joined the chat",
            "System: bob joined the chat"
        ]
    );
}

#[test]
fn rooms_do_not_cross() {
    let mut h = Harness::default();
    let a = h.open_in("alice", "dev");
    let b = h.open_in("bob", "ops");
    h.say(a, "in dev");
    assert_eq!(
        h.texts(a),
        vec!["System: alice joined the chat", "alice: in dev"]
    );
    assert_eq!(h.texts(b), vec!["System: bob joined the chat"]);
}

#[test]
fn commands_and_errors_go_to_the_sender_alone() {
    let mut h = Harness::default();
    let a = h.open("alice");
    let b = h.open("bob");
    h.texts(a);
    h.texts(b);
    h.say(a, "/who");
    assert_eq!(h.texts(a), vec!["System: users: alice, bob"]);
    h.say(a, "/shrug");
    assert_eq!(h.texts(a), vec!["System: error: unknown command"]);
    h.say(a, "hi\nSystem: bob has left the chat");
    assert_eq!(
        h.texts(a),
        vec!["System: error: control characters are not allowed"]
    );
    assert!(h.texts(b).is_empty());
}

fn viewer_token(h: &Harness) -> String {
    h.jwt.issue("vic", "viewer", h.now.as_millis(), 600)
}

/// Bob (a member) and vic (a viewer) in the lobby, their join notices read.
fn bob_and_viewer_vic() -> (Harness, ConnId, ConnId) {
    let mut h = Harness::default();
    let bob = h.open("bob");
    let t = viewer_token(&h);
    let (vic, _) = h.upgrade(&format!("/ws?token={t}"), "");
    h.texts(bob);
    h.texts(vic);
    (h, bob, vic)
}

#[test]
fn viewers_may_not_send() {
    let (mut h, bob, vic) = bob_and_viewer_vic();
    h.say(vic, "hello");
    assert_eq!(h.texts(vic), vec!["System: error: not allowed to send"]);
    assert!(h.texts(bob).is_empty());
    h.say(vic, "/who");
    assert_eq!(h.texts(vic), vec!["System: users: bob, vic"]);
}

/// A refresh takes the new token's role: a viewer refreshed as a member
/// may send, and a member refreshed as a viewer may not.
#[test]
fn a_refresh_takes_the_new_role() {
    let (mut h, bob, vic) = bob_and_viewer_vic();
    let member = h.jwt.issue("vic", "member", h.now.as_millis(), 600);
    h.say(vic, &format!("/refresh {member}"));
    assert_eq!(h.texts(vic), vec!["System: token refreshed"]);
    h.say(vic, "hello");
    assert_eq!(h.texts(bob), vec!["vic: hello"]);
    h.say(vic, &format!("/refresh {}", viewer_token(&h)));
    h.texts(vic);
    h.say(vic, "again");
    assert_eq!(h.texts(vic), vec!["System: error: not allowed to send"]);
    assert!(h.texts(bob).is_empty());
}

#[test]
fn send_roles_are_configurable() {
    let mut h = Harness::new(|c| c.send_roles = Some(vec!["viewer".into()]));
    let t = viewer_token(&h);
    let (vic, _) = h.upgrade(&format!("/ws?token={t}"), "");
    let alice = h.open("alice");
    h.texts(vic);
    h.say(alice, "hi");
    assert_eq!(
        h.texts(alice).last().unwrap(),
        "System: error: not allowed to send"
    );
    h.say(vic, "hi");
    assert_eq!(h.texts(alice), vec!["vic: hi"]);
}

#[test]
fn json_mode() {
    let mut h = Harness::default();
    let t = h.token("alice", 60);
    let (a, r) = h.upgrade(
        "/ws",
        &format!("Authorization: Bearer {t}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
    );
    assert_eq!(r.header("sec-websocket-protocol"), Some("wsgate.json"));
    let text = h.open("bob");
    let joined: Vec<Value> = h.texts(a).iter().map(|t| json_body(t)).collect();
    assert_eq!(
        joined[0],
        json!({"type":"join","room":"lobby","user":"alice"})
    );
    assert_eq!(
        joined[1],
        json!({"type":"join","room":"lobby","user":"bob"})
    );
    h.say(a, r#"{"type":"message","text":"one"}"#);
    h.say(text, "two");
    h.say(a, r#"{"type":"who"}"#);
    h.say(a, r#"{"type":"dance"}"#);
    let got: Vec<Value> = h.texts(a).iter().map(|t| json_body(t)).collect();
    assert_eq!(got[0]["seq"], 1);
    assert_eq!(
        (got[0]["from"].clone(), got[0]["text"].clone()),
        (json!("alice"), json!("one"))
    );
    assert_eq!(got[0]["ts"], h.now.as_millis());
    assert_eq!(got[1]["seq"], 2);
    assert_eq!(got[1]["from"], "bob");
    assert_eq!(got[2], json!({"type":"who","users":["alice","bob"]}));
    assert_eq!(got[3]["type"], "error");
    assert_eq!(got[3]["code"], "bad_message");
    // Text-mode clients see the same messages as text.
    assert!(
        h.texts(text)
            .ends_with(&["alice: one".to_string(), "bob: two".to_string()])
    );
}
