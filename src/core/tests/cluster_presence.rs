//! Presence and per-user limits across nodes (`--redis`), with two nodes
//! on one virtual clock and the test playing Redis
//! ([`crate::testkit::StoreModel`]): joins and leaves are announced once
//! for the whole chat, `/who` lists every node's users, the per-user limit
//! counts every node's WebSockets, a dead node's users leave, and a node
//! whose link comes back counts everything again.

use super::json_messages;
use crate::config::{PerUserPolicy, RedisUrl};
use crate::core::ConnId;
use crate::core::cluster::{Ask, LinkEvent};
use crate::testkit::{Harness, HttpResponse, StoreModel as Store, upgrade_request};

fn node(seed: u64, adjust: impl FnOnce(&mut crate::config::Config)) -> Harness {
    let mut h = Harness::new(|c| {
        c.redis = RedisUrl::parse("redis://127.0.0.1:6379/0");
        c.random_seed = Some(seed);
        c.limits.max_conns_per_user = 2;
        adjust(c);
    });
    h.link(LinkEvent::Up);
    h
}

/// Opens a JSON-mode WebSocket for `user` on `nodes[at]`, Redis answering.
fn open(
    nodes: &mut [&mut Harness],
    at: usize,
    store: &mut Store,
    user: &str,
) -> (ConnId, HttpResponse) {
    let token = nodes[at].token(user, 3600);
    let request = upgrade_request(
        "/ws?room=lobby",
        &format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
    );
    let id = nodes[at].connect();
    nodes[at].send(id, request.as_bytes());
    store.serve(nodes);
    let response = nodes[at].response(id).expect("a complete response");
    if response.status == 101 {
        nodes[at].make_client(id);
    }
    (id, response)
}

/// `(type, user)` of the presence messages the client of `id` read.
fn presence(h: &mut Harness, id: ConnId) -> Vec<(String, String)> {
    json_messages(h, id)
        .into_iter()
        .filter(|m| m["type"] == "join" || m["type"] == "leave")
        .map(|m| {
            (
                m["type"].as_str().unwrap().into(),
                m["user"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn pair(kind: &str, user: &str) -> (String, String) {
    (kind.to_string(), user.to_string())
}

#[test]
fn joins_and_leaves_are_announced_once_for_the_whole_chat() {
    let (mut a, mut b, mut store) = (node(1, |_| {}), node(2, |_| {}), Store::default());
    let (alice, _) = open(&mut [&mut a, &mut b], 0, &mut store, "alice");
    // Alice hears her own join, as Redis announced it.
    assert_eq!(presence(&mut a, alice), [pair("join", "alice")]);
    let (bob_b, r) = open(&mut [&mut a, &mut b], 1, &mut store, "bob");
    assert_eq!(r.status, 101);
    assert_eq!(presence(&mut a, alice), [pair("join", "bob")]);
    // Bob's second WebSocket, on A: no second join.
    let (bob_a, _) = open(&mut [&mut a, &mut b], 0, &mut store, "bob");
    assert!(presence(&mut a, alice).is_empty());
    // Bob leaves B but is still on A: no leave; then A too: one leave.
    b.ws_send(bob_b, tungstenite::Message::Close(None));
    store.serve(&mut [&mut a, &mut b]);
    assert!(presence(&mut a, alice).is_empty());
    a.ws_send(bob_a, tungstenite::Message::Close(None));
    store.serve(&mut [&mut a, &mut b]);
    assert_eq!(presence(&mut a, alice), [pair("leave", "bob")]);
    a.server.check_consistency().unwrap();
    b.server.check_consistency().unwrap();
}

#[test]
fn who_lists_every_nodes_users() {
    let (mut a, mut b, mut store) = (node(1, |_| {}), node(2, |_| {}), Store::default());
    let (alice, _) = open(&mut [&mut a, &mut b], 0, &mut store, "alice");
    open(&mut [&mut a, &mut b], 1, &mut store, "bob");
    json_messages(&mut a, alice);
    a.say(alice, r#"{"type":"who"}"#);
    // The answer waits for Redis.
    assert!(json_messages(&mut a, alice).is_empty());
    assert!(matches!(a.queries[0].ask, Ask::Who { .. }));
    store.serve(&mut [&mut a, &mut b]);
    let got = json_messages(&mut a, alice);
    assert_eq!(got[0]["type"], "who");
    assert_eq!(got[0]["users"], serde_json::json!(["alice", "bob"]));
    // Without the link: said in words.
    a.link(LinkEvent::Down { why: "test".into() });
    a.say(alice, r#"{"type":"who"}"#);
    let got = json_messages(&mut a, alice);
    assert_eq!(
        (got[0]["type"].as_str(), got[0]["code"].as_str()),
        (Some("error"), Some("unavailable"))
    );
}

#[test]
fn the_per_user_limit_counts_every_node() {
    let (mut a, mut b, mut store) = (node(1, |_| {}), node(2, |_| {}), Store::default());
    let mut nodes = [&mut a, &mut b];
    assert_eq!(open(&mut nodes, 0, &mut store, "alice").1.status, 101);
    assert_eq!(open(&mut nodes, 1, &mut store, "alice").1.status, 101);
    // A third, on either node, is one too many (limit 2).
    for at in [0, 1] {
        let (_, r) = open(&mut nodes, at, &mut store, "alice");
        assert_eq!(r.status, 429, "{}", r.body);
        assert!(r.body.contains("too many connections for this user"));
    }
    // Others are not affected.
    assert_eq!(open(&mut nodes, 0, &mut store, "bob").1.status, 101);
    a.server.check_consistency().unwrap();
}

#[test]
fn evict_oldest_closes_the_oldest_here_or_refuses() {
    let policy = |c: &mut crate::config::Config| c.per_user_policy = PerUserPolicy::EvictOldest;
    let (mut a, mut b, mut store) = (node(1, policy), node(2, policy), Store::default());
    let (first, _) = open(&mut [&mut a, &mut b], 0, &mut store, "alice");
    open(&mut [&mut a, &mut b], 1, &mut store, "alice");
    // On A, where alice has one: it is replaced (4409).
    let (_, r) = open(&mut [&mut a, &mut b], 0, &mut store, "alice");
    assert_eq!(r.status, 101);
    assert_eq!(a.close_frame(first).map(|(c, _)| c), Some(4409));
    store.serve(&mut [&mut a, &mut b]);
    // On a node where she has none there is nothing to replace: 429.
    let mut c = node(3, policy);
    let (_, r) = open(&mut [&mut a, &mut b, &mut c], 2, &mut store, "alice");
    assert_eq!(r.status, 429);
}

#[test]
fn a_dead_nodes_users_leave() {
    let (mut a, mut b, mut store) = (node(1, |_| {}), node(2, |_| {}), Store::default());
    let (alice, _) = open(&mut [&mut a, &mut b], 0, &mut store, "alice");
    open(&mut [&mut a, &mut b], 1, &mut store, "bob");
    open(&mut [&mut a, &mut b], 1, &mut store, "carol");
    json_messages(&mut a, alice);
    // B dies: Redis removes it (after NODE_TIMEOUT_MS, in the link).
    store.kill(1);
    store.serve(&mut [&mut a]);
    let mut left = presence(&mut a, alice);
    left.sort();
    assert_eq!(left, [pair("leave", "bob"), pair("leave", "carol")]);
    a.say(alice, r#"{"type":"who"}"#);
    store.serve(&mut [&mut a]);
    assert_eq!(
        json_messages(&mut a, alice)[0]["users"],
        serde_json::json!(["alice"])
    );
}

#[test]
fn a_node_whose_link_comes_back_counts_everything_again() {
    let (mut a, mut store) = (node(1, |_| {}), Store::default());
    let (alice, _) = open(&mut [&mut a], 0, &mut store, "alice");
    let (bob, _) = open(&mut [&mut a], 0, &mut store, "bob");
    a.link(LinkEvent::Down { why: "test".into() });
    // While down: WebSockets still open (this node's limit alone) and
    // close, uncounted.
    let (carol, r) = open(&mut [&mut a], 0, &mut store, "carol");
    assert_eq!(r.status, 101, "{}", r.body);
    a.ws_send(bob, tungstenite::Message::Close(None));
    assert!(a.queries.is_empty());
    json_messages(&mut a, alice);
    a.link(LinkEvent::Up);
    store.serve(&mut [&mut a]);
    // Redis now counts what is here: alice and carol, not bob.
    let mut counted: Vec<(String, u32)> = (store.counts.iter())
        .map(|((_, _, user), n)| (user.clone(), *n))
        .collect();
    counted.sort();
    assert_eq!(
        counted,
        [("alice".to_string(), 1), ("carol".to_string(), 1)]
    );
    let mut heard = presence(&mut a, alice);
    heard.sort();
    assert_eq!(heard, [pair("join", "carol"), pair("leave", "bob")]);
    assert!(a.server.is_websocket(carol));
    a.server.check_consistency().unwrap();
}

#[test]
fn a_count_that_comes_after_its_connection_left_is_undone() {
    let (mut a, mut store) = (node(1, |_| {}), Store::default());
    let token = a.token("alice", 3600);
    let id = a.connect();
    a.send(
        id,
        upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n")).as_bytes(),
    );
    assert!(matches!(
        a.queries.last().map(|q| &q.ask),
        Some(Ask::Join { .. })
    ));
    // The client hangs up before Redis answers.
    let now = a.now;
    a.server.handle_closed(id, now);
    store.serve(&mut [&mut a]);
    assert!(store.counts.is_empty(), "{:?}", store.counts);
    a.server.check_consistency().unwrap();
}

#[test]
fn a_joiner_hears_its_own_join_whichever_comes_first() {
    for announcement_first in [false, true] {
        let (mut a, mut store) = (node(1, |_| {}), Store::default());
        store.serve(&mut [&mut a]);
        let token = a.token("alice", 3600);
        let id = a.connect();
        let extra =
            format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n");
        a.send(id, upgrade_request("/ws", &extra).as_bytes());
        let q = a.queries.pop().unwrap();
        let answer = LinkEvent::Answer {
            id: q.id,
            answer: store.answer(0, q.ask),
        };
        let announced = std::mem::take(&mut store.ended);
        assert_eq!(announced.len(), 1);
        // The answer and the announcement come on different connections.
        if announcement_first {
            a.link(announced[0].clone());
            a.link(answer);
        } else {
            a.link(answer);
            a.link(announced[0].clone());
        }
        assert_eq!(a.response(id).unwrap().status, 101);
        a.make_client(id);
        assert_eq!(
            presence(&mut a, id),
            [pair("join", "alice")],
            "{announcement_first}"
        );
        a.server.check_consistency().unwrap();
    }
}

/// Sends an upgrade for `user` on a new connection of `h`; Redis does not
/// answer yet.
fn ask_open(h: &mut Harness, user: &str) -> ConnId {
    let token = h.token(user, 3600);
    let extra = format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n");
    let id = h.connect();
    h.send(id, upgrade_request("/ws", &extra).as_bytes());
    id
}

#[test]
fn a_count_that_comes_after_the_timeout_is_undone() {
    // Found by review: the timeout forgot who waited, so the late count
    // stayed.
    let (mut a, mut store) = (node(1, |_| {}), Store::default());
    store.serve(&mut [&mut a]);
    let id = ask_open(&mut a, "alice");
    let q = a.queries.pop().unwrap();
    a.advance(15_000);
    assert_eq!(a.response(id).unwrap().status, 503);
    let answer = store.answer(0, q.ask);
    a.link(LinkEvent::Answer { id: q.id, answer });
    store.serve(&mut [&mut a]);
    assert!(store.counts.is_empty(), "{:?}", store.counts);
    a.server.check_consistency().unwrap();
}

#[test]
fn a_tab_that_left_does_not_take_its_siblings_join() {
    // Found by review: the first tab's departure cleared the shared flag.
    let (mut a, mut store) = (node(1, |_| {}), Store::default());
    store.serve(&mut [&mut a]);
    let first = ask_open(&mut a, "alice");
    let second = ask_open(&mut a, "alice");
    let q2 = a.queries.pop().unwrap();
    let q1 = a.queries.pop().unwrap();
    let (a1, a2) = (store.answer(0, q1.ask), store.answer(0, q2.ask));
    // The announcement comes first; then the first tab hangs up.
    for event in std::mem::take(&mut store.ended) {
        a.link(event);
    }
    let now = a.now;
    a.server.handle_closed(first, now);
    a.link(LinkEvent::Answer {
        id: q1.id,
        answer: a1,
    });
    a.link(LinkEvent::Answer {
        id: q2.id,
        answer: a2,
    });
    store.serve(&mut [&mut a]);
    assert_eq!(a.response(second).unwrap().status, 101);
    a.make_client(second);
    assert_eq!(presence(&mut a, second), [pair("join", "alice")]);
}

#[test]
fn a_join_counted_under_the_life_a_recount_let_go_is_counted_again() {
    // Found by review: the count went with the old life.
    let (mut a, mut store) = (node(1, |_| {}), Store::default());
    store.serve(&mut [&mut a]);
    let id = ask_open(&mut a, "alice");
    // The link comes back while the count is in flight (the subscription
    // alone was down): the recount's new life is asked after it, and lets
    // the old one (which counted it) go.
    a.link(LinkEvent::Down { why: "test".into() });
    a.link(LinkEvent::Up);
    store.serve(&mut [&mut a]);
    assert_eq!(a.response(id).unwrap().status, 101);
    // It is counted again at once, under the new life.
    let counted: Vec<(u64, u32)> = (store.counts.iter())
        .map(|((life, _, _), n)| (*life, *n))
        .collect();
    assert_eq!(counted, [(store.lives[&0], 1)]);
    a.server.check_consistency().unwrap();
}
