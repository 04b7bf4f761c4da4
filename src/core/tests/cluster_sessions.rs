//! Sessions and tickets shared through Redis (`--redis`), with two nodes
//! on one virtual clock and the test playing Redis's store
//! ([`crate::testkit::StoreModel`], a model of the link's scripts): a login on one node works on the other,
//! a ticket works once across both, a logout on one closes the session's
//! sockets on both with `4403`; the answers wait for Redis, and say `503`
//! when it cannot answer; a session in use is touched so that it does not
//! idle out in Redis, and one that ended while the link was down closes
//! when it comes back.

use std::time::Duration;

use super::json_body;
use crate::config::RedisUrl;
use crate::core::ConnId;
use crate::core::cluster::{Answer, Ask, LinkEvent};
use crate::testkit::{Harness, HttpResponse, StoreModel as Store, form_post, upgrade_request};

const ORIGIN: &str = "Origin: http://127.0.0.1:8080\r\n";

/// A node with `--redis`, its link up. Each node draws its own ids.
fn node(seed: u64) -> Harness {
    let mut h = Harness::new(|c| {
        c.redis = RedisUrl::parse("redis://127.0.0.1:6379/0");
        c.random_seed = Some(seed);
        c.limits.max_sessions_per_user = 2;
        c.session_idle = Duration::from_secs(30 * 60);
    });
    h.link(LinkEvent::Up);
    // What it counts (nothing yet), under a new life in Redis.
    assert!(matches!(
        h.queries.pop().map(|q| q.ask),
        Some(Ask::Register { first: true, ref entries }) if entries.is_empty()
    ));
    h
}

/// Sends `request` on a new connection of `h`, lets `store` answer, and
/// returns the response (a `101` makes the peer a WebSocket client).
fn ask(
    h: &mut Harness,
    others: &mut [&mut Harness],
    store: &mut Store,
    request: &str,
) -> (ConnId, HttpResponse) {
    let id = h.connect();
    h.send(id, request.as_bytes());
    let mut nodes: Vec<&mut Harness> = vec![h];
    nodes.extend(others.iter_mut().map(|o| &mut **o));
    store.serve(&mut nodes);
    let response = h.response(id).expect("a complete response");
    if response.status == 101 {
        h.make_client(id);
    }
    (id, response)
}

/// Logs `user` in on `h`: the cookie pair.
fn login(h: &mut Harness, store: &mut Store, user: &str, password: &str) -> String {
    let form = form_post("/login", &format!("username={user}&password={password}"));
    let (_, r) = ask(h, &mut [], store, &form);
    assert_eq!(r.status, 204, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    cookie.split(';').next().unwrap().to_string()
}

fn with_cookie(target: &str, cookie: &str) -> String {
    upgrade_request(target, &format!("Cookie: {cookie}\r\n{ORIGIN}"))
}

fn ticket_request(cookie: &str) -> String {
    format!("POST /ws-ticket HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\n{ORIGIN}\r\n")
}

#[test]
fn a_login_on_one_node_works_on_the_other() {
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    // The answer waits for Redis: nothing is sent before the session is
    // stored.
    let id = a.connect();
    a.send(
        id,
        form_post("/login", "username=alice&password=wonderland").as_bytes(),
    );
    assert!(a.response(id).is_none());
    assert_eq!(a.queries.len(), 1);
    store.serve(&mut [&mut a]);
    let r = a.response(id).expect("answered once stored");
    assert_eq!(r.status, 204, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().split(';').next().unwrap();
    // The cookie opens a WebSocket on B, which never saw the login.
    let (ws, r) = ask(
        &mut b,
        &mut [&mut a],
        &mut store,
        &with_cookie("/ws", cookie),
    );
    assert_eq!(r.status, 101, "{}", r.body);
    b.say(ws, "hi from B");
    assert!(b.published.iter().any(|p| p.from == "alice"));
    // An unknown cookie is refused there too.
    let (_, r) = ask(
        &mut b,
        &mut [],
        &mut store,
        &with_cookie("/ws", "__Host-wsgate=forged"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(json_body(&r.body)["detail"], "unknown or expired session");
    a.server.check_consistency().unwrap();
    b.server.check_consistency().unwrap();
}

#[test]
fn a_ticket_works_once_across_nodes() {
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    let cookie = login(&mut a, &mut store, "alice", "wonderland");
    // The ticket is asked of B, with A's cookie.
    let (_, r) = ask(&mut b, &mut [], &mut store, &ticket_request(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    let ticket = json_body(&r.body)["ticket"].as_str().unwrap().to_string();
    let target = format!("/ws?ticket={ticket}");
    let (ws, r) = ask(&mut a, &mut [], &mut store, &upgrade_request(&target, ""));
    assert_eq!(r.status, 101, "{}", r.body);
    // Used on A: refused on B, and on A again.
    for h in [&mut b, &mut a] {
        let (_, r) = ask(h, &mut [], &mut store, &upgrade_request(&target, ""));
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(json_body(&r.body)["detail"], "unknown or expired ticket");
    }
    // The ticket's socket is tied to the session: a logout on B ends it.
    let logout = format!(
        "POST /logout HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\n{ORIGIN}\r\n"
    );
    let (_, r) = ask(&mut b, &mut [&mut a], &mut store, &logout);
    assert_eq!(r.status, 204);
    assert_eq!(a.close_frame(ws).map(|(code, _)| code), Some(4403));
    // A bearer's ticket works across nodes too, once.
    let token = a.token("bob", 600);
    let request =
        format!("POST /ws-ticket HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    let (_, r) = ask(&mut a, &mut [], &mut store, &request);
    let ticket = json_body(&r.body)["ticket"].as_str().unwrap().to_string();
    let target = format!("/ws?ticket={ticket}");
    let (_, r) = ask(&mut b, &mut [], &mut store, &upgrade_request(&target, ""));
    assert_eq!(r.status, 101, "{}", r.body);
    let (_, r) = ask(&mut b, &mut [], &mut store, &upgrade_request(&target, ""));
    assert_eq!(r.status, 401);
    // No ticket for a session that ended.
    let (_, r) = ask(&mut a, &mut [], &mut store, &ticket_request(&cookie));
    assert_eq!(r.status, 401);
    a.server.check_consistency().unwrap();
    b.server.check_consistency().unwrap();
}

#[test]
fn a_logout_closes_the_sessions_sockets_on_every_node() {
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    let cookie = login(&mut a, &mut store, "alice", "wonderland");
    let (on_a, _) = ask(&mut a, &mut [], &mut store, &with_cookie("/ws", &cookie));
    let (on_b, r) = ask(&mut b, &mut [], &mut store, &with_cookie("/ws", &cookie));
    assert_eq!(r.status, 101);
    // Another session of the same user stays.
    let other = login(&mut b, &mut store, "alice", "wonderland");
    let (kept, _) = ask(&mut b, &mut [], &mut store, &with_cookie("/ws", &other));
    let logout = format!(
        "POST /logout HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\n{ORIGIN}\r\n"
    );
    let (_, r) = ask(&mut a, &mut [&mut b], &mut store, &logout);
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(a.close_frame(on_a).map(|(c, _)| c), Some(4403));
    assert_eq!(b.close_frame(on_b).map(|(c, _)| c), Some(4403));
    assert_eq!(b.close_frame(kept), None);
    // The cookie is dead everywhere.
    let (_, r) = ask(&mut b, &mut [], &mut store, &with_cookie("/ws", &cookie));
    assert_eq!(r.status, 401);
    a.server.check_consistency().unwrap();
    b.server.check_consistency().unwrap();
}

#[test]
fn logins_past_the_per_user_limit_end_the_oldest_session_everywhere() {
    let (mut a, mut b, mut store) = (node(1), node(2), Store::default());
    let first = login(&mut a, &mut store, "alice", "wonderland");
    let (ws, _) = ask(&mut b, &mut [], &mut store, &with_cookie("/ws", &first));
    login(&mut b, &mut store, "alice", "wonderland");
    assert_eq!(b.close_frame(ws), None);
    // The third login (limit 2) ends the first, whose socket is on B.
    let form = form_post("/login", "username=alice&password=wonderland");
    let (_, r) = ask(&mut a, &mut [&mut b], &mut store, &form);
    assert_eq!(r.status, 204);
    assert_eq!(b.close_frame(ws).map(|(c, _)| c), Some(4401));
}

#[test]
fn without_redis_session_requests_are_refused_503_never_guessed() {
    let (mut a, mut store) = (node(1), Store::default());
    let cookie = login(&mut a, &mut store, "alice", "wonderland");
    // Redis fails a query: 503, with Retry-After.
    let id = a.connect();
    a.send(id, with_cookie("/ws", &cookie).as_bytes());
    let q = a.queries.pop().unwrap();
    a.link(LinkEvent::Answer {
        id: q.id,
        answer: Answer::Unavailable,
    });
    let r = a.response(id).unwrap();
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    assert_eq!(json_body(&r.body)["detail"], "session store unreachable");
    // The link is down: refused at once, nothing asked.
    a.link(LinkEvent::Down { why: "test".into() });
    for request in [
        with_cookie("/ws", &cookie),
        ticket_request(&cookie),
        form_post("/login", "username=alice&password=wonderland"),
    ] {
        let (_, r) = a.request(&request);
        assert_eq!(r.status, 503, "{request}");
        assert!(a.queries.is_empty());
    }
    // Token clients do not need the store.
    let token = a.token("bob", 600);
    let (_, r) = a.upgrade("/ws", &format!("Authorization: Bearer {token}\r\n"));
    assert_eq!(r.status, 101);
    a.server.check_consistency().unwrap();
}

#[test]
fn a_store_that_never_answers_gets_503_after_the_timeout() {
    let (mut a, mut store) = (node(1), Store::default());
    let cookie = login(&mut a, &mut store, "alice", "wonderland");
    let id = a.connect();
    a.send(id, with_cookie("/ws", &cookie).as_bytes());
    let q = a.queries.pop().unwrap();
    a.advance(14_000);
    assert!(a.response(id).is_none());
    a.server.check_consistency().unwrap();
    a.advance(1_000);
    let r = a.response(id).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(json_body(&r.body)["detail"], "session store timed out");
    // The late answer finds nobody waiting.
    let answer = store.answer(0, q.ask);
    a.link(LinkEvent::Answer { id: q.id, answer });
    assert!(a.response(id).is_none());
    a.server.check_consistency().unwrap();
}

#[test]
fn requests_behind_one_that_waits_for_redis_are_answered_in_order() {
    let (mut a, mut store) = (node(1), Store::default());
    let id = a.connect();
    let two = format!(
        "{}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        form_post("/login", "username=alice&password=wonderland")
    );
    a.send(id, two.as_bytes());
    assert!(a.response(id).is_none());
    store.serve(&mut [&mut a]);
    assert_eq!(a.response(id).unwrap().status, 204);
    assert_eq!(a.response(id).unwrap().status, 200);
}

#[test]
fn a_session_in_use_is_touched_and_one_ended_meanwhile_closes() {
    let (mut a, mut store) = (node(1), Store::default());
    let cookie = login(&mut a, &mut store, "alice", "wonderland");
    let (ws, _) = ask(&mut a, &mut [], &mut store, &with_cookie("/ws", &cookie));
    // An hour of silence but for pings: the touches every 60 s keep the
    // session from idling out in Redis (idle limit 30 min).
    for _ in 0..60 {
        a.advance(60_000);
        store.serve(&mut [&mut a]);
        a.messages(ws);
    }
    assert_eq!(a.close_frame(ws), None);
    let (_, r) = ask(&mut a, &mut [], &mut store, &ticket_request(&cookie));
    assert_eq!(r.status, 200, "{}", r.body);
    // The link goes down; meanwhile the session ends (a logout on a node
    // whose announcement this one missed).
    a.link(LinkEvent::Down { why: "test".into() });
    store.sessions.clear();
    a.link(LinkEvent::Up);
    store.ended.clear();
    store.serve(&mut [&mut a]);
    assert_eq!(a.close_frame(ws).map(|(c, _)| c), Some(4401));
    a.server.check_consistency().unwrap();
}
