//! Chat through Redis (`--redis`), with the harness playing the link: a
//! message is not broadcast where it arrives but handed to Redis, and
//! reaches every member (the sender included) when Redis gives it back,
//! numbered; a message that cannot be stored is refused to its sender in
//! words; the link's state shows in `/healthz` and `/metrics`; a gap in
//! Redis's numbering empties the local history.

use super::{json_messages, open_json};
use crate::config::RedisUrl;
use crate::core::cluster::{Delivered, LinkEvent, MAX_PENDING};
use crate::testkit::{Harness, REDIS_EPOCH};

fn clustered() -> Harness {
    let mut h = Harness::new(|c| c.redis = RedisUrl::parse("redis://127.0.0.1:6379/0"));
    h.auto_store = true;
    h.link(LinkEvent::Up);
    h
}

#[test]
fn a_message_reaches_the_room_when_redis_gives_it_back() {
    let mut h = clustered();
    let alice = h.open("alice");
    let bob = open_json(&mut h, "bob", "lobby", "");
    h.texts(alice);
    json_messages(&mut h, bob);
    h.say(alice, "hello");
    // Nothing yet: Redis decides the order.
    assert!(h.texts(alice).is_empty() && h.texts(bob).is_empty());
    assert_eq!(h.published.len(), 1);
    assert_eq!(
        (h.published[0].room.as_str(), h.published[0].from.as_str()),
        ("lobby", "alice")
    );
    let ts = h.published[0].ts;
    h.redis_round();
    assert_eq!(h.texts(alice), ["alice: hello"]);
    let got = json_messages(&mut h, bob);
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["ts"].as_u64()),
        (Some(1), Some(ts))
    );
    // A message numbered on another node arrives like any other.
    h.link(LinkEvent::Message(Delivered {
        room: "lobby".into(),
        from: "carol".into(),
        text: "from node B".into(),
        ts: 7,
        seq: 2,
        epoch: REDIS_EPOCH,
    }));
    assert_eq!(h.texts(alice), ["carol: from node B"]);
    assert_eq!(json_messages(&mut h, bob)[0]["seq"], 2);
    // A room with nobody here: nothing to do.
    h.link(LinkEvent::Message(Delivered {
        room: "elsewhere".into(),
        from: "carol".into(),
        text: "x".into(),
        ts: 7,
        seq: 1,
        epoch: REDIS_EPOCH,
    }));
    assert_eq!(h.server.rooms(), 1);
    h.server.check_consistency().unwrap();
}

#[test]
fn history_and_resume_follow_redis_numbering() {
    let mut h = clustered();
    let alice = h.open("alice");
    for line in ["one", "two", "three"] {
        h.say(alice, line);
    }
    h.redis_round();
    let bob = open_json(&mut h, "bob", "lobby", "&since=1");
    let got = json_messages(&mut h, bob);
    // A client that had nothing from this epoch gets all that is kept.
    assert_eq!(got[0]["epoch"], format!("{REDIS_EPOCH:016x}"));
    assert_eq!(got[0]["recovered"], false);
    let q = format!("&since=1&epoch={REDIS_EPOCH:016x}");
    let carol = open_json(&mut h, "carol", "lobby", &q);
    let got = json_messages(&mut h, carol);
    assert_eq!(got[0]["recovered"], true);
    let seqs: Vec<u64> = got[1..3]
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);
    // Messages this node missed (its link was down): a gap in the
    // numbering, so what it kept can no longer be replayed whole.
    h.link(LinkEvent::Message(Delivered {
        room: "lobby".into(),
        from: "dave".into(),
        text: "after a gap".into(),
        ts: 7,
        seq: 9,
        epoch: REDIS_EPOCH,
    }));
    let dave = open_json(&mut h, "dave", "lobby", &q);
    let got = json_messages(&mut h, dave);
    assert_eq!(
        (got[0]["recovered"].as_bool(), got[0]["seq"].as_u64()),
        (Some(false), Some(9))
    );
    let texts: Vec<&str> = got.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["after a gap"]);
    // Those already connected heard of the gap before the message.
    let got = json_messages(&mut h, carol);
    assert_eq!(got[0]["type"], "resume");
    assert_eq!(
        (got[0]["recovered"].as_bool(), got[0]["seq"].as_u64()),
        (Some(false), Some(8))
    );
    assert_eq!(got[1]["seq"], 9);
    h.server.check_consistency().unwrap();
}

#[test]
fn a_redis_that_forgot_the_room_is_said_to_live_clients() {
    // Found by review: after a Redis restart the room's seq starts again
    // at 1 in a new epoch; a client that skips any seq it has shown must
    // hear of it first, or it drops every new message.
    let mut h = clustered();
    let alice = h.open("alice");
    let bob = open_json(&mut h, "bob", "lobby", "");
    for line in ["one", "two"] {
        h.say(alice, line);
    }
    h.redis_round();
    h.texts(alice);
    let got = json_messages(&mut h, bob);
    assert_eq!(got.iter().filter(|m| m["type"] == "message").count(), 2);
    h.link(LinkEvent::Message(Delivered {
        room: "lobby".into(),
        from: "carol".into(),
        text: "first of a new life".into(),
        ts: 7,
        seq: 1,
        epoch: REDIS_EPOCH + 1,
    }));
    let got = json_messages(&mut h, bob);
    assert_eq!(got[0]["type"], "resume");
    assert_eq!(got[0]["epoch"], format!("{:016x}", REDIS_EPOCH + 1));
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["recovered"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(
        (got[1]["seq"].as_u64(), got[1]["text"].as_str()),
        (Some(1), Some("first of a new life"))
    );
    // Text mode has no numbers to break: just the line.
    assert_eq!(h.texts(alice), ["carol: first of a new life"]);
    h.server.check_consistency().unwrap();
}

#[test]
fn a_link_that_went_down_leaves_no_history_to_trust() {
    // Found by review: what the subscription missed never comes, so a
    // resume after the outage must not be told that nothing is missing.
    let mut h = clustered();
    let alice = h.open("alice");
    h.say(alice, "kept");
    h.redis_round();
    let bob = open_json(&mut h, "bob", "lobby", "&since=0");
    let got = json_messages(&mut h, bob);
    assert_eq!(
        (got[0]["recovered"].as_bool(), got[1]["text"].as_str()),
        (Some(true), Some("kept"))
    );
    h.link(LinkEvent::Down { why: "gone".into() });
    h.link(LinkEvent::Up);
    // Redis's stream lost it too (say it was flushed): nothing to trust.
    let kept = h.store.streams.remove("lobby");
    let carol = open_json(&mut h, "carol", "lobby", "&since=0");
    let got = json_messages(&mut h, carol);
    assert_eq!(
        (got[0]["recovered"].as_bool(), got[0]["seq"].as_u64()),
        (Some(false), Some(1))
    );
    assert!(got.iter().all(|m| m["type"] != "message"), "{got:?}");
    // Redis's stream still has it: the resume is served from there.
    h.store
        .streams
        .extend(kept.map(|stream| ("lobby".to_string(), stream)));
    let dave = open_json(&mut h, "dave", "lobby", "&since=0");
    let got = json_messages(&mut h, dave);
    assert_eq!(
        (got[0]["recovered"].as_bool(), got[1]["text"].as_str()),
        (Some(true), Some("kept"))
    );
    h.server.check_consistency().unwrap();
}

#[test]
fn a_message_that_cannot_be_stored_is_refused_to_its_sender() {
    let mut h = clustered();
    let alice = h.open("alice");
    let bob = open_json(&mut h, "bob", "lobby", "");
    h.texts(alice);
    json_messages(&mut h, bob);
    h.link(LinkEvent::Down {
        why: "connection refused".into(),
    });
    h.say(alice, "into the void");
    assert_eq!(
        h.texts(alice),
        ["System: error: not sent: the chat store (Redis) cannot be reached"]
    );
    assert!(h.published.is_empty());
    h.ws_send(
        bob,
        tungstenite::Message::text(r#"{"type":"message","text":"x"}"#),
    );
    let got = json_messages(&mut h, bob);
    assert_eq!(
        (got[0]["type"].as_str(), got[0]["code"].as_str()),
        (Some("error"), Some("unavailable"))
    );
    let (_, r) = h.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (503, "redis unreachable"));
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.body.contains("\nwsgate_redis_up 0\n"), "{}", r.body);
    assert!(
        r.body.contains("\nwsgate_redis_unsent_total 2\n"),
        "{}",
        r.body
    );
    // Back up: sent, and one written but never answered is said to be so.
    h.link(LinkEvent::Up);
    let (_, r) = h.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    h.say(alice, "maybe");
    let id = h.published.pop().unwrap().id;
    h.link(LinkEvent::Failed {
        id,
        unconfirmed: true,
    });
    let said = h.texts(alice);
    assert_eq!(said.len(), 1);
    assert!(
        said[0].contains("not confirmed") && said[0].contains("may still appear"),
        "{said:?}"
    );
    assert!(h.texts(bob).is_empty());
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.body.contains("\nwsgate_redis_pending 0\n"), "{}", r.body);
}

#[test]
fn messages_awaiting_redis_are_bounded() {
    let mut h = Harness::new(|c| {
        c.redis = RedisUrl::parse("redis://127.0.0.1:6379/0");
        c.limits.message_rate = None;
    });
    h.auto_store = true;
    h.link(LinkEvent::Up);
    let alice = h.open("alice");
    h.texts(alice);
    for n in 0..MAX_PENDING {
        h.say(alice, &format!("m{n}"));
    }
    assert_eq!(h.published.len(), MAX_PENDING);
    assert!(h.texts(alice).is_empty());
    h.say(alice, "one too many");
    let said = h.texts(alice);
    assert_eq!(
        said,
        ["System: error: not sent: too many messages are waiting for the chat store"]
    );
    h.redis_round();
    assert_eq!(h.texts(alice).len(), MAX_PENDING);
}

#[test]
fn without_redis_the_link_is_not_mentioned() {
    let mut h = Harness::default();
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!r.body.contains("wsgate_redis"), "{}", r.body);
}
