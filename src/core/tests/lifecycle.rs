//! How a WebSocket lives on and how the server ends it: token expiry
//! (warned, then `4401`) and `/refresh` in text and JSON mode, heartbeats
//! closing silent connections `1001`, shutdown (queues delivered, then
//! `1001`; no upgrade opens while draining), every slot given back once
//! connections end, and the metrics that count what happened.

use serde_json::{Value, json};
use tungstenite::Message;

use super::json_body;
use crate::testkit::Harness;

#[test]
fn token_connections_are_warned_then_closed_4401() {
    let mut h = Harness::default();
    let a = h.open("bob");
    let t = h.token("alice", 120);
    let (id, _) = h.upgrade(&format!("/ws?token={t}"), "");
    h.texts(id);
    h.advance(89_000);
    assert!(h.texts(id).is_empty());
    h.advance(1_000);
    assert_eq!(
        h.texts(id),
        vec!["System: token expires in 30s, send /refresh TOKEN"]
    );
    // exp + 30 s leeway.
    h.advance(59_999);
    assert_eq!(h.close_frame(id), None);
    h.advance(1);
    assert_eq!(h.close_frame(id), Some((4401, "token expired".into())));
    assert_eq!(
        h.texts(a).last().unwrap(),
        "System: alice has left the chat"
    );
}

#[test]
fn refresh_moves_the_deadline_and_only_for_the_same_user() {
    let mut h = Harness::default();
    let t = h.token("alice", 60);
    let (id, _) = h.upgrade(&format!("/ws?token={t}"), "");
    h.texts(id);
    let other = h.token("bob", 3600);
    h.say(id, &format!("/refresh {other}"));
    assert_eq!(
        h.texts(id),
        vec!["System: error: token is for another user"]
    );
    h.say(id, "/refresh not.a.token");
    assert_eq!(h.texts(id), vec!["System: error: invalid token"]);
    let fresh = h.token("alice", 3600);
    h.say(id, &format!("/refresh {fresh}"));
    assert_eq!(h.texts(id), vec!["System: token refreshed"]);
    h.advance(600_000);
    assert_eq!(h.close_frame(id), None, "still open after the old exp");
    h.say(id, "still here");
    assert_eq!(h.texts(id), vec!["alice: still here"]);
}

#[test]
fn a_failed_refresh_changes_nothing() {
    let mut h = Harness::default();
    let t = h.token("alice", 60);
    let (id, _) = h.upgrade(&format!("/ws?token={t}"), "");
    let other = h.token("bob", 3600);
    h.say(id, &format!("/refresh {other}"));
    h.advance(90_000);
    assert_eq!(h.close_frame(id), Some((4401, "token expired".into())));
}

#[test]
fn json_mode_expiry_and_refresh() {
    let mut h = Harness::default();
    let t = h.token("alice", 40);
    let (id, _) = h.upgrade(
        &format!("/ws?token={t}"),
        "Sec-WebSocket-Protocol: wsgate.json\r\n",
    );
    h.texts(id);
    h.advance(10_000);
    let got: Vec<Value> = h.texts(id).iter().map(|t| json_body(t)).collect();
    assert_eq!(got, vec![json!({"type":"expiring","in":30})]);
    let fresh = h.token("alice", 600);
    h.say(id, &json!({"type":"refresh","token":fresh}).to_string());
    let got = json_body(&h.texts(id)[0]);
    assert_eq!(got, json!({"type":"refreshed","exp":h.now.as_secs() + 600}));
}

#[test]
fn silent_connections_are_closed_1001_and_answering_ones_live() {
    let mut h = Harness::default();
    let lively = h.open("alice");
    let silent = h.open("bob");
    h.stall(silent, true);
    h.advance(59_999);
    h.stall(silent, false);
    assert_eq!(h.close_frame(silent), None);
    h.stall(silent, true);
    h.advance(60_000);
    h.stall(silent, false);
    assert_eq!(h.close_frame(silent), Some((1001, "ping timeout".into())));
    h.advance(600_000);
    assert_eq!(h.close_frame(lively), None, "pongs keep it alive");
    assert!(h.server.is_websocket(lively));
}

#[test]
fn shutdown_delivers_the_queue_then_1001() {
    let mut h = Harness::default();
    let a = h.open("alice");
    let b = h.open("bob");
    h.texts(a);
    h.stall(b, true);
    h.say(a, "last words");
    h.server.handle_shutdown(h.now);
    h.pump();
    h.stall(b, false);
    let msgs = h.messages(b);
    let texts: Vec<_> = msgs
        .iter()
        .filter_map(|m| m.to_text().ok())
        .filter(|t| !t.is_empty())
        .collect();
    assert!(texts.contains(&"alice: last words"), "{texts:?}");
    assert!(
        matches!(msgs.last(), Some(Message::Close(Some(f))) if u16::from(f.code) == 1001 && f.reason == "server shutting down")
    );
    assert_eq!(
        h.close_frame(a),
        Some((1001, "server shutting down".into()))
    );
    assert_eq!(h.try_connect(), None, "no new connections while draining");
    h.advance(5_000);
    assert_eq!(h.server.connections(), 0);
}

#[test]
fn no_password_upgrade_opens_during_shutdown() {
    let mut h = Harness::new(|c| c.allow_password_auth = true);
    h.hold_passwords = true;
    let id = h.connect();
    h.send(
        id,
        crate::testkit::upgrade_request("/ws?username=alice&password=wonderland", "").as_bytes(),
    );
    h.server.handle_shutdown(h.now);
    h.hold_passwords = false;
    let job = h.held.pop().unwrap();
    let verified = crate::auth::users::Users::demo().check(&job.user, &job.password);
    h.server.handle_password_checked(job.job, verified, h.now);
    h.pump();
    assert_eq!(h.response(id).unwrap().status, 503);
    assert_eq!(h.server.websockets(), 0);
}

#[test]
fn every_slot_is_given_back() {
    let mut h = Harness::default();
    let ids: Vec<_> = (0..5).map(|i| h.open(&format!("u{i}"))).collect();
    let half = h.connect();
    h.send(half, b"GET /ws HT");
    for id in ids {
        h.hang_up(id);
    }
    h.advance(10_000);
    assert_eq!(h.server.connections(), 0);
    assert_eq!(h.server.rooms(), 0);
}

#[test]
fn metrics_count_what_happened() {
    let mut h = Harness::default();
    h.open("alice");
    h.upgrade("/ws?token=bad", "");
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(r.body.contains("\nwsgate_websockets 1\n"), "{}", r.body);
    assert!(r.body.contains("wsgate_upgrades_total 1\n"));
    assert!(
        r.body
            .contains("wsgate_refusals_total{status=\"401\",reason=\"invalid token\"} 1\n")
    );
    assert!(!r.body.contains("alice"));
}

#[test]
fn the_peers_close_code_is_counted() {
    let mut h = Harness::default();
    let a = h.open("alice");
    h.ws_send(
        a,
        Message::Close(Some(tungstenite::protocol::CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        })),
    );
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        r.body
            .contains("wsgate_closes_total{by=\"peer\",code=\"4xxx\"} 1"),
        "{}",
        r.body
    );
}

/// The TLS layer in front of an open WebSocket fails (a bad record, a
/// fatal alert): the WebSocket ends as a lost connection (1006, the room
/// told), and the failure is counted by class; the slot is free.
#[test]
fn a_tls_failure_under_a_websocket_ends_it_as_lost() {
    let mut h = Harness::default();
    let (a, b) = (h.open("alice"), h.open("bob"));
    h.texts(a);
    let now = h.now;
    h.server.handle_tls_failure(b, "protocol", now);
    h.pump();
    assert!(!h.server.is_websocket(b));
    assert_eq!(h.texts(a), ["System: bob has left the chat"]);
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    for series in [
        "wsgate_tls_failures_total{class=\"protocol\"} 1\n",
        "wsgate_closes_total{by=\"peer\",code=\"1006\"} 1\n",
        "\nwsgate_websockets 1\n",
    ] {
        assert!(r.body.contains(series), "{series} in\n{}", r.body);
    }
}

/// A client that keeps moving its deadline earlier (each `/refresh` near
/// expiry re-arms the warning at once) leaves stale entries in the timer
/// heap; the heap is rebuilt before it passes twice the connections (plus
/// a little), so it cannot grow with the client's messages.
#[test]
fn refresh_spam_cannot_grow_the_timer_heap() {
    let mut h = Harness::new(|c| c.limits.message_rate = None);
    let t = h.token("alice", 20);
    let (id, r) = h.upgrade(&format!("/ws?token={t}"), "");
    assert_eq!(r.status, 101);
    let mut most = 0;
    for _ in 0..2_000 {
        h.say(id, &format!("/refresh {t}"));
        h.advance(1);
        most = most.max(h.server.timer_entries());
    }
    assert!(h.server.is_websocket(id), "still open");
    let bound = 2 * h.server.connections() + 64;
    assert!(most <= bound + 1, "{most} heap entries for one connection");
    assert!(most > 2, "the test moved deadlines ({most})");
}

/// After a stall of the whole process, several timers are overdue at once:
/// the ending that is due wins in a fixed order (silence before expiry),
/// and nothing (no expiry warning, no ping) goes out ahead of the close.
#[test]
fn a_late_wake_closes_first_and_sends_nothing_before() {
    let mut h = Harness::default();
    let t = h.token("alice", 20);
    let (id, r) = h.upgrade(&format!("/ws?token={t}"), "");
    assert_eq!(r.status, 101);
    // The warning is due at once (20 s left is under the 30 s warning).
    h.advance(1);
    let texts = h.texts(id);
    assert!(
        texts.iter().any(|t| t.contains("expires in 20s")),
        "{texts:?}"
    );
    // Expiry (20 s + leeway) and silence (2 × 30 s) both pass in one jump.
    h.jump(65_000);
    let got = h.messages(id);
    assert!(
        got.iter().all(|m| matches!(m, Message::Close(_))),
        "nothing but the close after the stall: {got:?}"
    );
    let code = got.iter().find_map(|m| match m {
        Message::Close(Some(f)) => Some(u16::from(f.code)),
        _ => None,
    });
    assert_eq!(code, Some(1001), "{got:?}");
}
