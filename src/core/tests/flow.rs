//! Flow control on a virtual clock: slow consumers closed `1013` while
//! every reader still gets every line, bursts are not slowness, draining
//! is judged after writes, the hard ceiling, the queue budget
//! (backpressure), a connection over its own limit not read (pings and
//! pipelined requests from a peer that does not read), the HTTP answers'
//! own cap, and fragments charged against the message limit.

use std::time::Duration;

use tungstenite::Message;

use crate::testkit::{Harness, masked_frame, upgrade_request};

/// `count` numbered chat lines of about `len` bytes, as one buffer of
/// frames (so the core reads them as one burst, before any write).
fn burst(count: usize, len: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| masked_frame(true, 1, format!("{i:04} {}", "x".repeat(len)).as_bytes()))
        .collect()
}

/// The numbers of the `from` lines in `texts`, in the order read.
fn numbers(texts: &[String], from: &str) -> Vec<usize> {
    let prefix = format!("{from}: ");
    texts
        .iter()
        .filter_map(|t| t.strip_prefix(&prefix)?.get(..4)?.parse().ok())
        .collect()
}

fn small_queues(c: &mut crate::config::Config) {
    c.limits.max_queue_bytes = 4 * 1024;
    c.limits.message_rate = None;
}

#[test]
fn slow_consumer_is_closed_1013_and_nobody_else_loses_a_line() {
    let mut h = Harness::new(|c| c.limits.max_queue_bytes = 16 * 1024);
    let slow = h.open("slow");
    let fast = h.open("fast");
    let talker = h.open("talker");
    h.texts(fast);
    h.stall(slow, true);
    let line = "y".repeat(1000);
    for _ in 0..40 {
        h.say(talker, &line);
    }
    // Over the limit, but not yet judged: the clock runs.
    assert!(h.server.is_websocket(slow));
    h.advance(4_999);
    assert!(h.server.is_websocket(slow));
    h.advance(1);
    assert!(!h.server.is_websocket(slow), "closed once 5 s passed");
    // Its unsent messages went with it.
    assert!(h.server.queued(slow) < 200, "{}", h.server.queued(slow));
    let got = h.texts(fast);
    let lines = got
        .iter()
        .filter(|t| **t == format!("talker: {line}"))
        .count();
    assert_eq!(lines, 40, "every line reached the reading client");
    let left: Vec<_> = got.iter().filter(|t| !t.starts_with("talker: ")).collect();
    assert_eq!(left, vec!["System: slow has left the chat"]);
    // The slow one gets the close frame once it reads.
    h.stall(slow, false);
    let msgs = h.messages(slow);
    assert!(matches!(msgs.last(), Some(Message::Close(Some(f))) if u16::from(f.code) == 1013));
}

#[test]
fn a_stalled_slow_consumer_is_dropped_after_the_close_timeout() {
    let mut h = Harness::new(|c| c.limits.max_queue_bytes = 4 * 1024);
    let slow = h.open("slow");
    let talker = h.open("talker");
    h.stall(slow, true);
    for _ in 0..10 {
        h.say(talker, &"z".repeat(1000));
    }
    assert!(!h.peer(slow).dropped);
    // 5 s to the slow-consumer verdict, 5 s more for the close frame.
    h.advance(5_000);
    assert!(!h.server.is_websocket(slow));
    assert!(!h.peer(slow).dropped);
    h.advance(5_000);
    assert!(h.peer(slow).dropped);
    assert_eq!(h.server.connections(), 1);
}

#[test]
fn a_burst_past_the_limit_does_not_close_readers_that_drain() {
    let mut h = Harness::new(small_queues);
    let talker = h.open("talker");
    let readers: Vec<_> = (0..4).map(|i| h.open(&format!("r{i}"))).collect();
    h.texts(talker);
    // 16 lines of 1 KB in one read: every queue holds 16 KB, four times
    // the limit, before the shell writes anything. (Before this change,
    // the cap was checked here and every reader was closed 1013.)
    h.send(talker, &burst(16, 1000));
    for &r in &readers {
        assert!(h.server.is_websocket(r), "a reader that drains stays open");
    }
    // Long past the slow-consumer timeout, still open: they drained.
    h.advance(20_000);
    for &r in &readers {
        assert!(h.server.is_websocket(r));
        let texts = h.texts(r);
        assert_eq!(numbers(&texts, "talker"), (0..16).collect::<Vec<_>>());
    }
    assert!(h.server.is_websocket(talker), "the sender drained too");
}

#[test]
fn a_reader_that_takes_too_little_is_closed_after_the_timeout() {
    let mut h = Harness::new(small_queues);
    let talker = h.open("talker");
    let slow = h.open("slow");
    let fast = h.open("fast");
    h.stall(slow, true);
    h.send(talker, &burst(20, 1000));
    assert!(h.server.queued(slow) > 4 * 1024);
    // The kernel takes 500 bytes a second from it: draining, but too
    // little to get under the limit.
    for _ in 0..4 {
        h.advance(1_000);
        let now = h.now;
        h.server.handle_written(slow, 500, now);
        assert!(h.server.is_websocket(slow));
    }
    h.advance(1_000);
    assert!(!h.server.is_websocket(slow), "judged slow after 5 s");
    assert_eq!(numbers(&h.texts(fast), "talker").len(), 20);
    assert!(h.server.is_websocket(fast));
}

#[test]
fn a_reader_back_under_the_limit_in_time_is_not_closed_and_its_clock_restarts() {
    let mut h = Harness::new(small_queues);
    let talker = h.open("talker");
    let late = h.open("late");
    h.stall(late, true);
    h.send(talker, &burst(20, 1000));
    h.advance(4_000);
    // It reads everything just before the verdict.
    h.stall(late, false);
    assert_eq!(numbers(&h.texts(late), "talker").len(), 20);
    h.advance(10_000);
    assert!(h.server.is_websocket(late));
    // A new backlog gets a fresh 5 s, not what was left of the old one.
    h.stall(late, true);
    h.send(talker, &burst(20, 1000));
    h.advance(4_999);
    assert!(h.server.is_websocket(late));
    h.advance(1);
    assert!(!h.server.is_websocket(late));
}

#[test]
fn the_hard_ceiling_closes_at_once_and_frees_the_queue() {
    let mut h = Harness::new(|c| {
        small_queues(c);
        c.limits.max_message_bytes = 1024;
    });
    assert_eq!(h.server.config().limits.queue_ceiling(), 64 * 1024);
    let talker = h.open("talker");
    let stuck = h.open("stuck");
    let fine = h.open("fine");
    h.stall(stuck, true);
    h.send(talker, &burst(80, 1000));
    // Past 64 KiB: closed at once, no clock; its unsent frames dropped.
    assert!(!h.server.is_websocket(stuck));
    assert!(h.server.queued(stuck) < 200, "{}", h.server.queued(stuck));
    assert_eq!(numbers(&h.texts(fine), "talker").len(), 80);
    h.stall(stuck, false);
    assert_eq!(h.close_frame(stuck).map(|f| f.0), Some(1013));
}

#[test]
fn at_the_budget_input_waits_and_nothing_is_lost() {
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 16 * 1024;
        c.limits.queue_budget_bytes = 48 * 1024;
        c.limits.message_rate = None;
    });
    let talker = h.open("talker");
    let a = h.open("a");
    let b = h.open("b");
    h.texts(talker);
    h.stall(a, true);
    h.stall(b, true);
    // 120 KB of lines for each of two readers that do not read: far past
    // the budget. A read at a time, until the budget stops the reading.
    let lines = burst(120, 1000);
    h.send(talker, &lines);
    let total = h.server.queued_total();
    assert!(total >= 48 * 1024, "{total}");
    assert!(
        total < 48 * 1024 + 3 * 16 * 1024,
        "stops within a read: {total}"
    );
    assert_eq!(h.server.paused_inputs(), 1, "the talker's input waits");
    assert!(
        !h.peer(talker).unread.is_empty(),
        "the rest is still unread"
    );
    assert!(h.server.is_websocket(a) && h.server.is_websocket(b));
    // The readers read: the queues drain, the talker is read again, and
    // everyone gets everything, in order; nobody was closed.
    h.advance(1_000);
    h.stall(a, false);
    h.stall(b, false);
    for id in [talker, a, b] {
        assert!(h.server.is_websocket(id));
        assert_eq!(
            numbers(&h.texts(id), "talker"),
            (0..120).collect::<Vec<_>>(),
            "{id:?}"
        );
    }
    assert_eq!(h.server.paused_inputs(), 0);
    assert_eq!(h.server.queued_total(), 0);
}

#[test]
fn a_connection_whose_own_queue_is_over_the_limit_is_not_read() {
    let mut h = Harness::new(small_queues);
    let me = h.open("me");
    h.stall(me, true);
    // A long line to itself is 4 KB and more: its queue passes the limit.
    let frames: Vec<u8> = (0..10)
        .flat_map(|i| masked_frame(true, 1, format!("{i:04} {}", "y".repeat(2000)).as_bytes()))
        .collect();
    h.send(me, &frames);
    let queued = h.server.queued(me);
    assert!(queued > 4 * 1024);
    // Its later input (past the first read) waits in the "kernel".
    assert!(!h.peer(me).unread.is_empty());
    assert_eq!(h.server.paused_inputs(), 1);
    h.stall(me, false);
    assert_eq!(numbers(&h.texts(me), "me"), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_ping_flood_from_a_non_reader_is_closed_1013() {
    let mut h = Harness::new(|c| c.limits.max_queue_bytes = 8 * 1024);
    let a = h.open("alice");
    let b = h.open("bob");
    h.stall(a, true);
    for _ in 0..200 {
        h.ws_send(a, Message::Ping(vec![0; 125].into()));
    }
    // Its input waits while its own queue is over the limit: the pongs
    // stop there (plus one read's worth).
    assert!(h.server.queued(a) < 8 * 1024 + 16 * 1024 + 256);
    assert!(h.server.is_websocket(a));
    h.say(b, "still here");
    assert_eq!(h.texts(b).last().unwrap(), "bob: still here");
    assert_eq!(h.server.paused_inputs(), 1, "its input waits");
    h.advance(5_000);
    assert!(!h.server.is_websocket(a));
    // Closing, it is read again (and its input discarded), so that its
    // end of stream is seen.
    assert_eq!(h.server.paused_inputs(), 0);
    h.server.check_consistency().unwrap();
    h.stall(a, false);
    assert_eq!(h.close_frame(a).map(|f| f.0), Some(1013));
}

#[test]
fn http_answers_have_their_own_small_cap() {
    let mut h = Harness::new(|c| c.limits.max_queue_bytes = 8 * 1024 * 1024);
    let id = h.connect();
    h.stall(id, true);
    h.send(
        id,
        &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5_000),
    );
    let cap = h.server.config().limits.max_http_queue_bytes;
    assert_eq!(cap, 64 * 1024);
    assert!(
        h.server.queued(id) < cap + 8 * 1024,
        "{}",
        h.server.queued(id)
    );
    // Reading again, every request is answered.
    h.stall(id, false);
    let mut answered = 0;
    while let Some(r) = h.response(id) {
        assert_eq!(r.status, 200);
        answered += 1;
    }
    assert_eq!(answered, 5_000);
}

#[test]
fn pipelining_without_reading_is_bounded() {
    let mut h = Harness::default();
    let id = h.connect();
    h.stall(id, true);
    let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(400);
    h.send(id, &req);
    let queued = h.server.queued(id);
    let cap = h.server.config().limits.max_http_queue_bytes;
    assert!(cap <= 256 * 1024);
    assert!(queued < cap + 8192, "answers stop at their cap: {queued}");
    // Keep sending without reading: the input stays unread (in the
    // kernel), nothing more is answered or buffered.
    for _ in 0..20 {
        h.send(id, &req);
    }
    assert_eq!(h.server.queued(id), queued);
    assert!(h.server.paused_inputs() == 1);
    // Never read: the keep-alive deadline ends it.
    h.advance(10_000);
    assert!(h.peer(id).dropped);
}

#[test]
fn sixty_non_readers_pipelining_metrics_pin_little_memory() {
    let mut h = Harness::default();
    let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    for _ in 0..60 {
        let id = h.connect();
        h.stall(id, true);
        h.send(id, &req);
    }
    let total = h.server.queued_total();
    // Was 64 MiB (60 x the 1 MiB WebSocket cap).
    assert!(total < 60 * (64 * 1024 + 8192), "{total}");
}

#[test]
fn pipelined_answers_resume_as_the_peer_reads() {
    let mut h = Harness::new(|c| c.limits.max_queue_bytes = 4 * 1024);
    let id = h.connect();
    h.stall(id, true);
    h.send(id, &b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200));
    h.stall(id, false);
    for _ in 0..200 {
        assert_eq!(h.response(id).expect("all 200 answered").status, 200);
    }
}

#[test]
fn thousands_of_empty_fragments_are_refused_1009() {
    let mut h = Harness::default();
    let a = h.open("alice");
    let b = h.open("bob");
    h.texts(b);
    let mut message = masked_frame(false, 1, b"");
    for _ in 0..3_000 {
        message.extend(masked_frame(false, 0, b""));
    }
    message.extend(masked_frame(true, 0, b"never"));
    h.send(a, &message);
    assert_eq!(h.close_frame(a), Some((1009, "message too big".into())));
    // The same words in a few fragments are fine.
    let mut ok = masked_frame(false, 1, b"in ");
    ok.extend(masked_frame(false, 0, b"three "));
    ok.extend(masked_frame(true, 0, b"parts"));
    h.send(b, &ok);
    assert_eq!(
        h.texts(b).last().map(String::as_str),
        Some("bob: in three parts")
    );
}

#[test]
fn a_large_message_limit_admits_fragmented_megabytes() {
    let mut h = Harness::new(|c| {
        c.limits.max_message_bytes = 16 << 20;
        c.limits.message_rate = None;
        c.echo = true;
    });
    let a = h.open("alice");
    // 4 MiB in 65,536 fragments of 64 bytes (Autobahn 9.3.1).
    let piece = [b'*'; 64];
    let mut message = masked_frame(false, 1, &piece);
    for i in 1..65_536 {
        message.extend(masked_frame(i == 65_535, 0, &piece));
    }
    h.send(a, &message);
    let got = h.messages(a);
    assert!(
        matches!(got.last(), Some(Message::Text(t)) if t.len() == 4 << 20),
        "{:?}",
        got.iter().map(|m| m.len()).collect::<Vec<_>>()
    );
}

#[test]
fn a_slow_consumer_verdict_is_a_stated_bound() {
    let slow_timeout = Duration::from_secs(2);
    let mut h = Harness::new(|c| {
        small_queues(c);
        c.limits.slow_consumer_timeout = slow_timeout;
    });
    let talker = h.open("talker");
    let gone = h.open("gone");
    h.stall(gone, true);
    h.send(talker, &burst(10, 1000));
    h.advance(1_999);
    assert!(h.server.is_websocket(gone));
    h.advance(1);
    assert!(!h.server.is_websocket(gone));
}

#[test]
fn dropping_a_slow_consumer_frees_the_budget_at_once() {
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 16 * 1024;
        c.limits.queue_budget_bytes = 48 * 1024;
        c.limits.message_rate = None;
        // why: no leave notice, so that nothing is written to the talker
        // that could wake it by chance.
        c.limits.presence_limit = 1;
    });
    let talker = h.open("talker");
    let stuck = h.open("stuck");
    let fast = h.open("fast");
    h.texts(fast);
    h.stall(stuck, true);
    h.send(talker, &burst(120, 1000));
    // The stuck reader holds the budget: the talker waits.
    assert_eq!(h.server.paused_inputs(), 1);
    let before = numbers(&h.texts(fast), "talker").len();
    assert!(before < 120, "{before}");
    // Its verdict drops its frames; the talker is read again at once, with
    // no write needed to notice.
    h.advance(5_000);
    assert!(!h.server.is_websocket(stuck));
    assert_eq!(h.server.paused_inputs(), 0);
    let after = numbers(&h.texts(fast), "talker");
    assert_eq!(after, (before..120).collect::<Vec<_>>());
}

#[test]
fn queues_under_the_limit_that_hold_the_budget_without_draining_are_closed() {
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 16 * 1024;
        c.limits.queue_budget_bytes = 48 * 1024;
        c.limits.message_rate = None;
        c.limits.presence_limit = 1;
    });
    let talker = h.open("talker");
    let fast = h.open("fast");
    let slow = h.open("slow");
    let hoarders: Vec<_> = (0..4).map(|i| h.open(&format!("h{i}"))).collect();
    h.stall(slow, true);
    for &id in &hoarders {
        h.stall(id, true);
    }
    // Each holder stays under its 16 KiB limit (no clock of its own);
    // together they hold the 48 KiB budget, and the talker's next lines
    // wait.
    h.send(talker, &burst(20, 1000));
    for &id in hoarders.iter().chain([&slow]) {
        assert!(h.server.queued(id) <= 16 * 1024, "{}", h.server.queued(id));
    }
    assert_eq!(h.server.paused_inputs(), 1);
    // `slow` drains a little every second: it is not judged by the budget.
    for _ in 0..5 {
        h.advance(1_000);
        let now = h.now;
        h.server.handle_written(slow, 100, now);
    }
    // After the slow-consumer timeout at the budget, the queues the kernel
    // took nothing from are closed; everyone else goes on and gets all.
    h.advance(100);
    for &id in &hoarders {
        assert!(!h.server.is_websocket(id), "hoarder {id:?} still open");
    }
    assert!(h.server.is_websocket(slow), "a draining reader stays");
    assert_eq!(h.server.paused_inputs(), 0);
    assert_eq!(
        numbers(&h.texts(fast), "talker"),
        (0..20).collect::<Vec<_>>()
    );
    assert!(h.server.is_websocket(talker) && h.server.is_websocket(fast));
    h.server.check_consistency().unwrap();
}

fn consistent(h: &Harness) {
    if let Err(e) = h.server.check_consistency() {
        panic!("inconsistent core: {e}");
    }
}

/// At the budget no WebSocket input is read, and that includes frames
/// that arrive in the same read as an upgrade request: they are held, and
/// processed when the connection may be read again. (They used to be fed
/// at once, so each newcomer added a read's worth of broadcasts past the
/// budget, without bound.)
#[test]
fn at_the_budget_frames_behind_an_upgrade_wait_like_any_websocket_input() {
    let budget = 48 * 1024;
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 16 * 1024;
        c.limits.queue_budget_bytes = budget;
        c.limits.max_message_bytes = 1024;
        c.limits.message_rate = None;
        c.limits.upgrade_rate = None;
        c.limits.presence_limit = 0;
    });
    let talker = h.open("talker");
    let stuck: Vec<_> = (0..4).map(|i| h.open(&format!("s{i}"))).collect();
    for &s in &stuck {
        h.stall(s, true);
    }
    h.send(talker, &burst(200, 900));
    let at_budget = h.server.queued_total();
    assert!(at_budget >= budget, "{at_budget}");
    assert_eq!(h.server.paused_inputs(), 1, "the talker waits");
    // Ten newcomers, each with its upgrade and 15 lines in one write (one
    // read on the server side).
    for i in 0..10 {
        let token = h.token(&format!("n{i}"), 3600);
        let id = h.connect();
        let mut bytes = upgrade_request(
            "/ws?room=lobby",
            &format!("Authorization: Bearer {token}\r\n"),
        )
        .into_bytes();
        bytes.extend(burst(15, 900));
        h.send(id, &bytes);
        assert!(h.server.is_websocket(id));
        consistent(&h);
    }
    // Only the ten `101`s may be added while the budget holds (their
    // lines wait, like the talker's, until the queues drain).
    let grown = h.server.queued_total() - at_budget;
    assert!(
        grown <= 10 * 1024,
        "at the budget the total grew by {grown} bytes (budget {budget})"
    );
}

/// Readers that drain are never closed because of others: a reader
/// parked with everyone else while the budget holds is not closed
/// `1001` "ping timeout" for a silence the server imposed (its pongs wait
/// in the kernel), and the queues that hold the budget without draining
/// are closed by the budget's verdict instead.
#[test]
fn a_reader_that_drains_is_not_closed_while_the_budget_holds_its_input() {
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 16 * 1024;
        c.limits.queue_budget_bytes = 48 * 1024;
        c.limits.message_rate = None;
        c.limits.presence_limit = 0;
    });
    let talker = h.open("talker");
    let fast = h.open("fast");
    let hoarders: Vec<_> = (0..4).map(|i| h.open(&format!("h{i}"))).collect();
    for &id in &hoarders {
        h.stall(id, true);
    }
    // 13 lines of 1 KB: each hoarder holds about 13 KB, under the 16 KiB
    // limit (no slow-consumer clock), and the four together pass the
    // 48 KiB budget.
    h.send(talker, &burst(13, 1000));
    for &id in &hoarders {
        assert!(h.server.queued(id) <= 16 * 1024);
    }
    assert!(h.server.queued_total() >= 48 * 1024);
    assert_eq!(
        h.texts(fast).len(),
        13,
        "the fast reader has read everything"
    );
    assert_eq!(h.server.queued(fast), 0);
    h.advance(61_000);
    let closed = h.close_frame(fast);
    assert!(
        h.server.is_websocket(fast),
        "a reader that drained was closed {closed:?}"
    );
}

/// A message whose fragments pass the message limit is refused `1009` and
/// never delivered, even when the fragment that tips it over is an empty
/// final one (whole as soon as its header is: the cut is before it).
#[test]
fn a_message_refused_1009_is_not_delivered() {
    let mut h = Harness::new(|c| {
        c.limits.max_message_bytes = 200;
        c.limits.message_rate = None;
    });
    let alice = h.open("alice");
    let bob = h.open("bob");
    h.texts(alice);
    h.texts(bob);
    // 64 free fragments of one byte (64), then fragments that cost 64
    // each: 128, 192, and the empty final one 256 > 200.
    let mut message = masked_frame(false, 1, b"h");
    for _ in 1..64 {
        message.extend(masked_frame(false, 0, b"i"));
    }
    message.extend(masked_frame(false, 0, b""));
    message.extend(masked_frame(false, 0, b""));
    message.extend(masked_frame(true, 0, b""));
    h.send(alice, &message);
    assert_eq!(h.close_frame(alice), Some((1009, "message too big".into())));
    let seen = h.texts(bob);
    assert!(
        !seen.iter().any(|t| t.starts_with("alice: hi")),
        "the refused message reached the room: {seen:?}"
    );
}

/// A queue already over the limit when the WebSocket opens (HTTP answers
/// the client has not read, then the `101`) starts the slow-consumer
/// clock then, like any other.
#[test]
fn a_queue_over_the_limit_at_the_upgrade_starts_the_slow_consumer_clock() {
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 8 * 1024;
        c.limits.presence_limit = 0;
    });
    let token = h.token("alice", 3600);
    let id = h.connect();
    h.stall(id, true);
    let mut bytes = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20);
    bytes
        .extend(upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n")).into_bytes());
    h.send(id, &bytes);
    assert!(h.server.is_websocket(id));
    assert!(h.server.queued(id) > 8 * 1024, "{}", h.server.queued(id));
    h.advance(6_000);
    assert!(
        !h.server.is_websocket(id),
        "a non-reader over the limit still open after 6 s"
    );
}

/// A message of exactly the limit in 64 fragments, with pings between
/// them, is accepted (echoed whole).
#[test]
fn a_message_of_exactly_the_limit_in_64_fragments_with_pings_between_is_accepted() {
    let mut h = Harness::new(|c| {
        c.limits.max_message_bytes = 6400;
        c.limits.message_rate = None;
        c.echo = true;
    });
    let a = h.open("alice");
    let data = vec![b'z'; 6400];
    let mut message = Vec::new();
    for (i, piece) in data.chunks(100).enumerate() {
        message.extend(masked_frame(i == 63, if i == 0 { 1 } else { 0 }, piece));
        message.extend(masked_frame(true, 9, b"p"));
    }
    h.send(a, &message);
    let got = h.messages(a);
    assert!(h.server.is_websocket(a));
    assert!(
        got.iter()
            .any(|m| matches!(m, Message::Text(t) if t.len() == 6400)),
        "{:?}",
        got.iter().map(Message::len).collect::<Vec<_>>()
    );
    consistent(&h);
}

/// An upgrade (and frames) pipelined behind 2,000 unread HTTP answers
/// waits at the answers' cap; every answer, the `101` and the lines
/// arrive once the client reads.
#[test]
fn an_upgrade_pipelined_behind_answers_at_the_cap_opens_once_they_are_read() {
    let mut h = Harness::new(|c| c.limits.message_rate = None);
    let bob = h.open("bob");
    h.texts(bob);
    let token = h.token("alice", 3600);
    let id = h.connect();
    h.stall(id, true);
    let mut bytes = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    bytes
        .extend(upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n")).into_bytes());
    bytes.extend(burst(5, 10));
    h.send(id, &bytes);
    assert_eq!(h.server.phase_name(id), Some("http"));
    assert!(h.server.queued(id) < 64 * 1024 + 8 * 1024);
    consistent(&h);
    h.stall(id, false);
    let mut answered = 0;
    loop {
        let r = h.response(id).expect("a response");
        if r.status == 101 {
            break;
        }
        assert_eq!(r.status, 200);
        answered += 1;
    }
    assert_eq!(answered, 2000);
    assert!(h.server.is_websocket(id));
    let lines = h.texts(bob);
    assert_eq!(
        lines.iter().filter(|t| t.starts_with("alice: ")).count(),
        5,
        "{lines:?}"
    );
    consistent(&h);
}

/// The budget's verdict closes `a`; `a`'s leave notice pushes `b` past
/// the hard ceiling, which closes `b` `1013` at once; the verdict then
/// reaches `b`, already closing. `b` still gets its close frame (before
/// the handlers step, a second drop of unsent frames took the queued
/// close frame too; found by review).
#[test]
fn a_member_closed_by_a_leave_notice_during_the_verdict_gets_its_close_frame() {
    fn publish(h: &mut Harness, text: &str) {
        let p = crate::core::Publication::new("lobby", "sys", text).unwrap();
        let now = h.now;
        h.server.handle_publish(&p, now).unwrap();
        h.pump();
    }
    let mut h = Harness::new(|c| {
        c.limits.max_queue_bytes = 4 * 1024;
        c.limits.max_message_bytes = 1024;
        c.limits.queue_budget_bytes = 6 * 1024;
        c.limits.message_rate = None;
    });
    let (a, b) = (h.open("a"), h.open("b"));
    h.texts(a);
    h.texts(b);
    h.stall(a, true);
    h.stall(b, true);
    let ceiling = h.server.config().limits.queue_ceiling();
    // The budget is reached with both queues under their limit.
    while h.server.queued_total() < 6 * 1024 {
        publish(&mut h, &"x".repeat(100));
    }
    assert!(h.server.queued(b) < 4 * 1024);
    h.advance(1_000);
    // `b` within a leave notice (29 bytes) of the ceiling.
    let target = ceiling - 10;
    while h.server.queued(b) + 1_100 < target {
        publish(&mut h, &"y".repeat(1_000));
    }
    // One line that lands on `target` ("sys: " and the text, after a 2-
    // or 4-byte frame header).
    let left = target - h.server.queued(b);
    let len = if left - 7 <= 125 { left - 7 } else { left - 9 };
    publish(&mut h, &"z".repeat(len));
    let queued = h.server.queued(b);
    assert!(
        queued <= ceiling && queued + 29 > ceiling,
        "{queued} {ceiling}"
    );
    h.advance(4_000);
    assert!(!h.server.is_websocket(a) && !h.server.is_websocket(b));
    h.stall(b, false);
    let close = h.messages(b).iter().find_map(|m| match m {
        Message::Close(Some(f)) => Some(u16::from(f.code)),
        _ => None,
    });
    assert_eq!(close, Some(1013));
}
