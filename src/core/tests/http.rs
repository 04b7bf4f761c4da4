//! Plain HTTP on the core: the small endpoints and their 404/405s,
//! pipelined requests answered in order, heads that arrive byte by byte,
//! bodies read by `Content-Length` (limits, `Expect: 100-continue`),
//! oversized and malformed heads, a request whose sender half-closes, and
//! the timers of an HTTP connection (handshake, keep-alive, the linger
//! after a final response, and the shut that follows a final answer at
//! once). Login endpoints are in `session`, the `Host` header in
//! `hardening`, unread answers in `flow`.

use super::json_body;
use crate::testkit::{Harness, form_post, upgrade_request};

#[test]
fn healthz_404_405() {
    let mut h = Harness::default();
    let (_, r) = h.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let (_, r) = h.request("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(json_body(&r.body)["detail"], "not found");
    let (_, r) = h.request("GET /token HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let (_, r) = h.request("DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::default();
    let id = h.connect();
    h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(h.response(id).unwrap().status, 200);
    assert_eq!(h.response(id).unwrap().status, 404);
    let last = h.response(id).unwrap();
    assert_eq!(
        (last.status, last.header("connection")),
        (200, Some("close"))
    );
    assert!(h.peer(id).shut, "write half shut after the final response");
}

#[test]
fn pipelined_requests_beyond_one_read_are_all_answered() {
    let mut h = Harness::default();
    let id = h.connect();
    let one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    h.send(id, one.repeat(1000).as_bytes());
    for _ in 0..1000 {
        assert_eq!(h.response(id).expect("every request answered").status, 200);
    }
}

#[test]
fn a_head_arriving_byte_by_byte_is_parsed() {
    let mut h = Harness::default();
    let id = h.connect();
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" {
        h.send(id, &[*b]);
    }
    assert_eq!(h.response(id).unwrap().status, 200);
}

#[test]
fn body_limits() {
    let mut h = Harness::default();
    let big = "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9000\r\n\r\n";
    assert_eq!(h.request(big).1.status, 413);
    let chunked = "POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(h.request(chunked).1.status, 411);
    let bad_len =
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
    assert_eq!(h.request(bad_len).1.status, 400);
}

#[test]
fn a_body_is_read_by_content_length_across_reads() {
    let mut h = Harness::default();
    let id = h.connect();
    let req = form_post("/token", "username=alice&password=wonderland");
    let (head, body) = req.split_at(req.len() - 10);
    h.send(id, head.as_bytes());
    assert!(
        h.response(id).is_none(),
        "no answer before the body is complete"
    );
    h.send(id, body.as_bytes());
    assert_eq!(h.response(id).unwrap().status, 200);
}

#[test]
fn expect_continue_gets_100_first() {
    let mut h = Harness::default();
    let id = h.connect();
    let body = "username=alice&password=wonderland";
    h.send(
        id,
        format!(
            "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(h.response(id).unwrap().status, 100);
    h.send(id, body.as_bytes());
    assert_eq!(h.response(id).unwrap().status, 200);
}

#[test]
fn oversized_and_malformed_heads() {
    let mut h = Harness::default();
    let id = h.connect();
    h.send(
        id,
        format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "a".repeat(9000)).as_bytes(),
    );
    let r = h.response(id).unwrap();
    assert_eq!((r.status, r.header("connection")), (431, Some("close")));
    let many: String = (0..70).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        h.request(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n"))
            .1
            .status,
        431
    );
    assert_eq!(h.request("\x16\x03\x01 hello\r\n\r\n").1.status, 400);
}

#[test]
fn a_half_closed_request_is_still_answered() {
    let mut h = Harness::default();
    let id = h.connect();
    h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    h.half_close(id);
    assert_eq!(h.response(id).unwrap().status, 200);
    assert!(h.peer(id).dropped);
    let id = h.connect();
    h.send(
        id,
        form_post("/token", "username=alice&password=wonderland").as_bytes(),
    );
    h.half_close(id);
    assert_eq!(h.response(id).unwrap().status, 200);
    assert!(h.peer(id).dropped);
    // The request and its end of stream in one read: the answer is the
    // last write, and the core closes after it (the harness checks that
    // such a write was not held for a FIN: a close may send none).
    let id = h.connect();
    (h.peer(id).unread).extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    h.half_close(id);
    assert_eq!(h.response(id).unwrap().status, 200);
    assert!(h.peer(id).dropped);
    assert_eq!(h.server.connections(), 0);
}

#[test]
fn handshake_timeout_closes_without_a_word() {
    let mut h = Harness::default();
    let id = h.connect();
    h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    h.advance(9_999);
    assert!(!h.peer(id).dropped);
    h.advance(1);
    assert!(h.peer(id).dropped);
    assert!(h.peer(id).received.is_empty());
    assert_eq!(h.server.connections(), 0);
}

#[test]
fn keep_alive_idle_connection_times_out_too() {
    let mut h = Harness::default();
    let id = h.connect();
    h.advance(9_000);
    h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.response(id).unwrap().status, 200);
    // The next head gets a fresh 10 s.
    h.advance(9_000);
    assert!(!h.peer(id).dropped);
    h.advance(1_000);
    assert!(h.peer(id).dropped);
}

#[test]
fn the_timer_heap_stays_small_under_keep_alive() {
    let mut h = Harness::default();
    let id = h.connect();
    for _ in 0..500 {
        h.send(id, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.response(id).unwrap().status, 200);
    }
    assert!(
        h.server.timer_entries() <= 2,
        "{}",
        h.server.timer_entries()
    );
    h.advance(10_000);
    assert!(h.peer(id).dropped, "the idle timeout still fires");
}

#[test]
fn final_response_then_shutdown_then_linger_timeout() {
    let mut h = Harness::default();
    let (id, r) = h.request("GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(h.peer(id).shut && !h.peer(id).dropped);
    // Input during the linger is discarded.
    h.send(id, b"garbage");
    assert!(h.peer(id).received.is_empty());
    h.advance(5_000);
    assert!(h.peer(id).dropped);
    assert_eq!(h.server.connections(), 0);
}

/// A final answer (here a refused upgrade) is its connection's last write:
/// the core says so while it is queued (the shell sends it with
/// `MSG_MORE`, for the FIN to go in the same segment) and shuts the write
/// half as soon as the last byte is out, not before. An open WebSocket and
/// a kept-alive connection are not shut after their writes.
#[test]
fn a_final_answer_is_shut_right_after_its_last_byte() {
    let mut h = Harness::default();
    let id = h.connect();
    h.peer(id).stalled = true;
    h.send(id, upgrade_request("/ws?token=forged", "").as_bytes());
    assert!(h.server.shuts_when_written(id));
    let queued = h.server.pending(id).len();
    assert!(queued > 1);
    h.write_out(id, queued - 1);
    h.pump();
    assert!(!h.peer(id).shut, "shut with a byte still queued");
    assert!(h.server.shuts_when_written(id));
    h.write_out(id, 1);
    h.pump();
    assert!(h.peer(id).shut);
    assert!(!h.server.shuts_when_written(id));

    let t = h.token("alice", 60);
    let (ws, r) = h.upgrade(&format!("/ws?token={t}"), "");
    assert_eq!(r.status, 101);
    assert!(!h.server.shuts_when_written(ws));
    assert!(!h.peer(ws).shut);
    let (kept, r) = h.request("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(!h.server.shuts_when_written(kept));
    assert!(!h.peer(kept).shut);
}
