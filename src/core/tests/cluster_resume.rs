//! Resume across nodes (`--redis`): a client that reconnects to a node
//! that did not keep what it missed gets it from Redis's stream, joined up
//! with what the node keeps and the live stream, without gap or
//! duplicate; a node that can serve the resume itself does not ask.

use super::json_messages;
use crate::config::RedisUrl;
use crate::core::ConnId;
use crate::core::cluster::{Answer, Ask, LinkEvent};
use crate::testkit::{Harness, REDIS_EPOCH, StoreModel as Store, upgrade_request};

fn node(seed: u64) -> Harness {
    let mut h = Harness::new(|c| {
        c.redis = RedisUrl::parse("redis://127.0.0.1:6379/0");
        c.random_seed = Some(seed);
    });
    h.link(LinkEvent::Up);
    h
}

/// Opens a JSON-mode WebSocket for `user` in `lobby` on `nodes[at]`
/// (`query` added to the target), Redis answering.
fn open(
    nodes: &mut [&mut Harness],
    at: usize,
    store: &mut Store,
    user: &str,
    query: &str,
) -> ConnId {
    let token = nodes[at].token(user, 3600);
    let request = upgrade_request(
        &format!("/ws?room=lobby{query}"),
        &format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
    );
    let id = nodes[at].connect();
    nodes[at].send(id, request.as_bytes());
    store.serve(nodes);
    let response = nodes[at].response(id).expect("a complete response");
    assert_eq!(response.status, 101, "{}", response.body);
    nodes[at].make_client(id);
    id
}

/// `(seq, text)` of the chat messages, and the resume frames' `(seq,
/// recovered)`, that the client of `id` read.
/// What a client read: chat messages `(seq, text)` and resume frames
/// `(seq, recovered)`.
type Read = (Vec<(u64, String)>, Vec<(u64, bool)>);

fn read(h: &mut Harness, id: ConnId) -> Read {
    let got = json_messages(h, id);
    let messages = (got.iter())
        .filter(|m| m["type"] == "message")
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let resumes = (got.iter())
        .filter(|m| m["type"] == "resume")
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["recovered"].as_bool().unwrap(),
            )
        })
        .collect();
    (messages, resumes)
}

fn lines(from: u64, to: u64) -> Vec<(u64, String)> {
    (from..=to).map(|n| (n, format!("m{n}"))).collect()
}

#[test]
fn a_resume_on_another_node_is_served_from_the_stream() {
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    let alice = open(&mut [&mut a, &mut b], 0, &mut store, "alice", "");
    for n in 1..=5 {
        a.say(alice, &format!(r#"{{"type":"message","text":"m{n}"}}"#));
    }
    store.publish_round(&mut [&mut a, &mut b]);
    assert_eq!(read(&mut a, alice).0, lines(1, 5));
    // Carol saw up to 2 (on A, say) and comes back on B, which has nobody
    // in the room and kept nothing of it.
    let q = format!("&since=2&epoch={REDIS_EPOCH:016x}");
    let carol = open(&mut [&mut a, &mut b], 1, &mut store, "carol", &q);
    let (got, resumes) = read(&mut b, carol);
    assert_eq!(resumes, [(5, true)]);
    assert_eq!(got, lines(3, 5));
    // The subscription brings a message B was given already: not again.
    b.link(LinkEvent::Message(store.streams["lobby"][4].clone()));
    assert!(read(&mut b, carol).0.is_empty());
    // The live stream follows on.
    a.say(alice, r#"{"type":"message","text":"m6"}"#);
    store.publish_round(&mut [&mut a, &mut b]);
    assert_eq!(read(&mut b, carol), (lines(6, 6), vec![]));
    // Dave comes back on B too: B serves it from what it keeps now.
    let q = format!("&since=4&epoch={REDIS_EPOCH:016x}");
    let before = store.streams.len();
    let id = b.connect();
    let token = b.token("dave", 3600);
    b.send(
        id,
        upgrade_request(
            &format!("/ws?room=lobby{q}"),
            &format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
        )
        .as_bytes(),
    );
    assert!(
        !b.queries
            .iter()
            .any(|q| matches!(q.ask, Ask::Replay { .. }))
    );
    store.serve(&mut [&mut a, &mut b]);
    assert_eq!(store.streams.len(), before);
    b.response(id).unwrap();
    b.make_client(id);
    assert_eq!(read(&mut b, id), (lines(5, 6), vec![(6, true)]));
    a.server.check_consistency().unwrap();
    b.server.check_consistency().unwrap();
}

#[test]
fn a_resume_joins_the_stream_to_what_the_node_keeps() {
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    let alice = open(&mut [&mut a, &mut b], 0, &mut store, "alice", "");
    for n in 1..=3 {
        a.say(alice, &format!(r#"{{"type":"message","text":"m{n}"}}"#));
    }
    store.publish_round(&mut [&mut a, &mut b]);
    // Bob joins on B after message 3: B keeps 4 and on, not 1 to 3.
    let bob = open(&mut [&mut a, &mut b], 1, &mut store, "bob", "");
    for n in 4..=6 {
        a.say(alice, &format!(r#"{{"type":"message","text":"m{n}"}}"#));
    }
    store.publish_round(&mut [&mut a, &mut b]);
    assert_eq!(read(&mut b, bob).0, lines(4, 6));
    // Carol resumes on B from 1: 2 and 3 come from the stream, 4 to 6
    // from B's history, in one run.
    let q = format!("&since=1&epoch={REDIS_EPOCH:016x}");
    let carol = open(&mut [&mut a, &mut b], 1, &mut store, "carol", &q);
    let (got, resumes) = read(&mut b, carol);
    assert_eq!(resumes, [(6, true)]);
    assert_eq!(got, lines(2, 6));
    // A stream that cannot be read: the resume says what is missing.
    let token = b.token("dave", 3600);
    let id = b.connect();
    let extra = format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n");
    b.send(
        id,
        upgrade_request("/ws?room=lobby&since=0", &extra).as_bytes(),
    );
    let count = b.queries.pop().unwrap();
    let answer = store.answer(1, count.ask);
    b.link(LinkEvent::Answer {
        id: count.id,
        answer,
    });
    let stream = b.queries.pop().unwrap();
    assert!(matches!(stream.ask, Ask::Replay { since: 0, .. }));
    b.link(LinkEvent::Answer {
        id: stream.id,
        answer: Answer::Unavailable,
    });
    assert_eq!(b.response(id).unwrap().status, 101);
    b.make_client(id);
    assert_eq!(read(&mut b, id), (lines(2, 6), vec![(6, false)]));
    a.server.check_consistency().unwrap();
    b.server.check_consistency().unwrap();
}

/// An upgrade request for `user` in `lobby` (JSON mode), `query` added.
fn request(h: &Harness, user: &str, query: &str) -> String {
    let token = h.token(user, 3600);
    upgrade_request(
        &format!("/ws?room=lobby{query}"),
        &format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
    )
}

/// Alice on A says m1..=`n`, which Redis hands to A and B.
fn alice_says(a: &mut Harness, b: &mut Harness, store: &mut Store, n: u64) -> ConnId {
    let alice = open(&mut [&mut *a, &mut *b], 0, store, "alice", "");
    for i in 1..=n {
        a.say(alice, &format!(r#"{{"type":"message","text":"m{i}"}}"#));
    }
    store.publish_round(&mut [a, b]);
    alice
}

#[test]
fn a_caught_up_client_resumes_recovered_on_another_node() {
    // Found by review: the room made for it was forgotten at once.
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    alice_says(&mut a, &mut b, &mut store, 5);
    let q = format!("&since=5&epoch={REDIS_EPOCH:016x}");
    let carol = open(&mut [&mut a, &mut b], 1, &mut store, "carol", &q);
    assert_eq!(read(&mut b, carol), (vec![], vec![(5, true)]));
    b.server.check_consistency().unwrap();
}

#[test]
fn after_the_link_was_down_a_node_does_not_claim_what_it_may_have_missed() {
    // Found by review: B's room stayed at 3 while Redis went on to 5.
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    open(&mut [&mut a, &mut b], 1, &mut store, "bob", "");
    let alice = alice_says(&mut a, &mut b, &mut store, 3);
    b.link(LinkEvent::Down { why: "test".into() });
    for i in 4..=5 {
        a.say(alice, &format!(r#"{{"type":"message","text":"m{i}"}}"#));
    }
    store.publish_round(&mut [&mut a]);
    b.link(LinkEvent::Up);
    store.serve(&mut [&mut a, &mut b]);
    let q = format!("&since=1&epoch={REDIS_EPOCH:016x}");
    let carol = open(&mut [&mut a, &mut b], 1, &mut store, "carol", &q);
    let (_, resumes) = read(&mut b, carol);
    assert_eq!(resumes, [(3, false)]);
}

#[test]
fn a_message_that_comes_while_the_stream_is_read_is_kept() {
    // Found by review: nobody was in the room on B, so it was dropped.
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    let alice = alice_says(&mut a, &mut b, &mut store, 3);
    let id = b.connect();
    let q = format!("&since=1&epoch={REDIS_EPOCH:016x}");
    b.send(id, request(&b, "carol", &q).as_bytes());
    let count = b.queries.pop().unwrap();
    let answer = store.answer(1, count.ask);
    b.link(LinkEvent::Answer {
        id: count.id,
        answer,
    });
    store.ended.clear();
    let read_q = b.queries.pop().unwrap();
    assert!(matches!(read_q.ask, Ask::Replay { .. }));
    // Redis reads the stream (up to 3); m4 is published after, and the
    // subscription brings it to B before the answer.
    let answer = store.answer(1, read_q.ask);
    a.say(alice, r#"{"type":"message","text":"m4"}"#);
    store.publish_round(&mut [&mut a, &mut b]);
    b.link(LinkEvent::Answer {
        id: read_q.id,
        answer,
    });
    assert_eq!(b.response(id).unwrap().status, 101);
    b.make_client(id);
    a.say(alice, r#"{"type":"message","text":"m5"}"#);
    store.publish_round(&mut [&mut a, &mut b]);
    assert_eq!(read(&mut b, id), (lines(2, 5), vec![(4, true)]));
    b.server.check_consistency().unwrap();
}
