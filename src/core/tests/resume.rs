//! History and resume (PROTOCOL §4): a JSON-mode client that passes
//! `since=SEQ` (and the `epoch` it was given) gets a `resume` message, then
//! every kept message after SEQ, then the live stream, with no gap and no
//! duplicate; what it cannot have is said (`recovered: false`). The
//! history's bounds: `--history` a room, a quarter of the queue budget in
//! all, a replay within `--max-queue`; rooms kept for their history alone
//! and forgotten once it is gone (a new epoch).

use serde_json::Value;

use super::{json_body, json_messages, open_json};
use crate::core::ConnId;
use crate::testkit::Harness;

const JSON: &str = "Sec-WebSocket-Protocol: wsgate.json\r\n";

/// The `text` of each chat message among `messages`.
fn lines(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["type"] == "message")
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

/// Alice says `n` lines, `m1`…`mN`, in `room` (through a text-mode socket
/// that stays open), and the room is then where it was.
fn say_lines(h: &mut Harness, room: &str, from: u32, to: u32) -> ConnId {
    let alice = h.open_in("alice", room);
    for n in from..=to {
        h.say(alice, &format!("m{n}"));
    }
    h.texts(alice);
    alice
}

fn texts(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|n| format!("m{n}")).collect()
}

#[test]
fn a_client_that_has_nothing_gets_the_history_then_the_live_stream() {
    let mut h = Harness::default();
    let alice = say_lines(&mut h, "lobby", 1, 5);
    let bob = open_json(&mut h, "bob", "lobby", "&since=0");
    let got = json_messages(&mut h, bob);
    let resume = &got[0];
    assert_eq!(resume["type"], "resume");
    assert_eq!(
        (resume["room"].as_str(), resume["seq"].as_u64()),
        (Some("lobby"), Some(5))
    );
    assert_eq!(resume["recovered"], true);
    let epoch = resume["epoch"].as_str().unwrap().to_string();
    assert_eq!(epoch.len(), 16, "{epoch}");
    assert_eq!(lines(&got), texts(1..=5));
    let seqs: Vec<u64> = got[1..6]
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // The history came before the join notice, and the live stream after.
    assert_eq!(got[6]["type"], "join");
    h.say(alice, "m6");
    let live = json_messages(&mut h, bob);
    assert_eq!(
        (lines(&live), live[0]["seq"].as_u64()),
        (texts(6..=6), Some(6))
    );
    // Without since, nothing changes: no resume message, no history.
    let carol = open_json(&mut h, "carol", "lobby", "");
    let got = json_messages(&mut h, carol);
    assert!(
        got.iter()
            .all(|m| m["type"] != "resume" && m["type"] != "message"),
        "{got:?}"
    );
}

#[test]
fn a_client_that_dropped_gets_exactly_what_it_missed() {
    let mut h = Harness::default();
    let alice = say_lines(&mut h, "lobby", 1, 3);
    let bob = open_json(&mut h, "bob", "lobby", "&since=0");
    let first = json_messages(&mut h, bob);
    let epoch = first[0]["epoch"].as_str().unwrap().to_string();
    assert_eq!(lines(&first), texts(1..=3));
    h.hang_up(bob);
    for n in 4..=7 {
        h.say(alice, &format!("m{n}"));
    }
    let bob = open_json(&mut h, "bob", "lobby", &format!("&since=3&epoch={epoch}"));
    // A message sent in the same turn as the replay comes after it.
    h.say(alice, "m8");
    let got = json_messages(&mut h, bob);
    assert_eq!(got[0]["type"], "resume");
    assert_eq!(
        (got[0]["recovered"].as_bool(), got[0]["seq"].as_u64()),
        (Some(true), Some(7))
    );
    assert_eq!(got[0]["epoch"], epoch.as_str());
    assert_eq!(lines(&got), texts(4..=8));
    // Caught up: nothing to replay, nothing missed.
    let carol = open_json(&mut h, "carol", "lobby", &format!("&since=8&epoch={epoch}"));
    let got = json_messages(&mut h, carol);
    assert_eq!(
        (got[0]["recovered"].as_bool(), lines(&got).len()),
        (Some(true), 0)
    );
}

#[test]
fn what_history_no_longer_holds_is_said() {
    let mut h = Harness::new(|c| c.limits.history = 3);
    let _alice = say_lines(&mut h, "lobby", 1, 10);
    let bob = open_json(&mut h, "bob", "lobby", "&since=0");
    let got = json_messages(&mut h, bob);
    let epoch = got[0]["epoch"].as_str().unwrap().to_string();
    assert_eq!(
        (got[0]["recovered"].as_bool(), lines(&got)),
        (Some(false), texts(8..=10))
    );
    // since=6: 7 is gone.
    let q = format!("&since=6&epoch={epoch}");
    let carol = open_json(&mut h, "carol", "lobby", &q);
    let got = json_messages(&mut h, carol);
    assert_eq!(
        (got[0]["recovered"].as_bool(), lines(&got)),
        (Some(false), texts(8..=10))
    );
    // since=7: nothing is missing.
    let q = format!("&since=7&epoch={epoch}");
    let dave = open_json(&mut h, "dave", "lobby", &q);
    let got = json_messages(&mut h, dave);
    assert_eq!(
        (got[0]["recovered"].as_bool(), lines(&got)),
        (Some(true), texts(8..=10))
    );
    // Another epoch, no epoch, or a seq from the future: what history
    // holds, and not recovered.
    for q in [
        "&since=9&epoch=0000000000000000",
        "&since=9",
        &format!("&since=11&epoch={epoch}"),
    ] {
        let id = open_json(&mut h, "erin", "lobby", q);
        let got = json_messages(&mut h, id);
        assert_eq!(got[0]["recovered"], false, "{q}");
        assert_eq!(lines(&got), texts(8..=10), "{q}");
    }
}

#[test]
fn a_room_keeps_its_history_while_empty_and_gets_a_new_epoch_once_forgotten() {
    let mut h = Harness::default();
    let alice = say_lines(&mut h, "attic", 1, 2);
    let epoch_of = |h: &mut Harness, query: &str| {
        let id = open_json(h, "bob", "attic", query);
        let got = json_messages(h, id);
        h.hang_up(id);
        got
    };
    let got = epoch_of(&mut h, "&since=0");
    let epoch = got[0]["epoch"].as_str().unwrap().to_string();
    h.hang_up(alice);
    assert_eq!(h.server.rooms(), 0, "an empty room is not counted");
    // Nobody there; its history waits.
    let got = epoch_of(&mut h, &format!("&since=1&epoch={epoch}"));
    assert_eq!(
        (got[0]["recovered"].as_bool(), lines(&got)),
        (Some(true), texts(2..=2))
    );
    // Without history, an empty room is forgotten: a new epoch, seq from 1.
    let mut h = Harness::new(|c| c.limits.history = 0);
    let alice = say_lines(&mut h, "attic", 1, 2);
    let got = epoch_of(&mut h, "&since=0");
    let (old, seq) = (
        got[0]["epoch"].as_str().unwrap().to_string(),
        &got[0]["seq"],
    );
    assert_eq!(
        (seq.as_u64(), got[0]["recovered"].as_bool()),
        (Some(2), Some(false))
    );
    h.hang_up(alice);
    let got = epoch_of(&mut h, &format!("&since=2&epoch={old}"));
    assert_ne!(got[0]["epoch"], old.as_str());
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["recovered"].as_bool()),
        (Some(0), Some(false))
    );
    // A new process has new epochs too.
    let mut other = Harness::new(|c| c.random_seed = Some(99));
    let _ = say_lines(&mut other, "attic", 1, 1);
    let got = epoch_of(&mut other, "&since=0");
    assert_ne!(got[0]["epoch"], old.as_str());
}

#[test]
fn history_stays_within_a_quarter_of_the_budget_oldest_first() {
    // 40 KB of budget: history may hold 10 KB, each 1 KB line costing
    // about 1.3 KB with its frame and bookkeeping.
    let mut h = Harness::new(|c| c.limits.queue_budget_bytes = 40_000);
    let line = "x".repeat(1000);
    let a = h.open_in("alice", "a");
    let b = h.open_in("bob", "b");
    for _ in 0..20 {
        h.say(a, &line);
        h.say(b, &line);
        h.texts(a);
        h.texts(b);
    }
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let gauge = |name: &str| -> u64 {
        let line = r
            .body
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (kept, bytes) = (
        gauge("wsgate_history_messages"),
        gauge("wsgate_history_bytes"),
    );
    assert!(
        bytes <= 10_000 && kept >= 6,
        "{kept} messages, {bytes} bytes"
    );
    // The oldest went first, from both rooms alike: each keeps its newest.
    for (room, user) in [("a", "carol"), ("b", "dave")] {
        let id = open_json(&mut h, user, room, "&since=0");
        let got = json_messages(&mut h, id);
        assert_eq!(got[0]["recovered"], false);
        let seqs: Vec<u64> = (got.iter().filter(|m| m["type"] == "message"))
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert!(
            seqs.len() >= 3 && seqs.last() == Some(&20),
            "{room}: {seqs:?}"
        );
        h.hang_up(id);
    }
    // An empty room whose history is all gone is forgotten.
    h.hang_up(a);
    for _ in 0..20 {
        h.say(b, &line);
    }
    let got = {
        let id = open_json(&mut h, "erin", "a", "&since=0");
        json_messages(&mut h, id)
    };
    assert_eq!((got[0]["seq"].as_u64(), lines(&got).len()), (Some(0), 0));
}

#[test]
fn a_replay_stays_within_the_queue_limit() {
    let mut h = Harness::new(|c| c.limits.max_queue_bytes = 4096);
    let line = "y".repeat(500);
    let alice = h.open("alice");
    for _ in 0..20 {
        h.say(alice, &line);
        h.texts(alice);
    }
    let bob = open_json(&mut h, "bob", "lobby", "&since=0");
    let got = json_messages(&mut h, bob);
    assert_eq!(got[0]["recovered"], false);
    let seqs: Vec<u64> = (got.iter().filter(|m| m["type"] == "message"))
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    // The newest that fit, in order.
    assert!((3..=7).contains(&seqs.len()), "{seqs:?}");
    assert_eq!(*seqs.last().unwrap(), 20);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        r.body.contains("\nwsgate_resumed_with_gap_total 1\n"),
        "{}",
        r.body
    );
}

#[test]
fn malformed_resumes_are_refused_before_the_upgrade() {
    let mut h = Harness::default();
    let token = h.token("alice", 3600);
    let auth = format!("Authorization: Bearer {token}\r\n");
    for (query, json, detail) in [
        ("since=0", false, "since needs the wsgate.json subprotocol"),
        ("epoch=abc", true, "epoch needs since"),
        ("since=", true, "invalid since"),
        ("since=-1", true, "invalid since"),
        ("since=%2B1", true, "invalid since"),
        ("since=1e3", true, "invalid since"),
        ("since=18446744073709551616", true, "invalid since"),
        ("since=1&epoch=", true, "invalid epoch"),
        ("since=1&epoch=a%20b", true, "invalid epoch"),
        ("since=1&since=2", true, "repeated query parameter"),
    ] {
        let extra = if json {
            format!("{auth}{JSON}")
        } else {
            auth.clone()
        };
        let (_, r) = h.upgrade(&format!("/ws?{query}"), &extra);
        assert_eq!(
            (r.status, json_body(&r.body)["detail"].as_str()),
            (400, Some(detail)),
            "{query}"
        );
    }
    let long = "e".repeat(65);
    let (_, r) = h.upgrade(
        &format!("/ws?since=1&epoch={long}"),
        &format!("{auth}{JSON}"),
    );
    assert_eq!(r.status, 400);
    let (_, r) = h.upgrade(
        &format!("/ws?since=1&epoch={}", &long[..64]),
        &format!("{auth}{JSON}"),
    );
    assert_eq!(r.status, 101);
}

/// A JSON resumer whose peer reads nothing (it stalls before the upgrade).
fn stalled_resumer(h: &mut Harness, user: &str, room: &str, query: &str) -> ConnId {
    let token = h.token(user, 3600);
    let id = h.connect();
    h.stall(id, true);
    let request = crate::testkit::upgrade_request(
        &format!("/ws?room={room}{query}"),
        &format!("Authorization: Bearer {token}\r\n{JSON}"),
    );
    h.send(id, request.as_bytes());
    assert!(h.server.is_websocket(id));
    id
}

#[test]
fn resumers_that_do_not_read_stay_within_the_budget() {
    // Found by review: each replay queued up to --max-queue whatever the
    // budget said, so a dozen resumers held 2.5 budgets.
    let budget = 40_000;
    let mut h = Harness::new(|c| {
        c.limits.queue_budget_bytes = budget;
        c.limits.max_queue_bytes = 10_000;
    });
    let alice = h.open("alice");
    for n in 0..12 {
        h.say(alice, &format!("{n:04}{}", "x".repeat(700)));
        h.texts(alice);
    }
    for n in 0..12 {
        stalled_resumer(&mut h, &format!("u{n}"), "lobby", "&since=0");
    }
    let used = h.server.budget_use();
    assert!(
        used <= budget + 16_384,
        "{used} bytes held against {budget}"
    );
    h.server.check_consistency().unwrap();
}

#[test]
fn a_replay_leaves_the_queue_under_its_limit() {
    // Found by review: the 101 and the resume frame came on top of a
    // replay of --max-queue, which started the slow-consumer clock.
    for len in (300..1100).step_by(13) {
        let mut h = Harness::new(|c| c.limits.max_queue_bytes = 4096);
        let alice = h.open("alice");
        for _ in 0..20 {
            h.say(alice, &"z".repeat(len));
            h.texts(alice);
        }
        let bob = stalled_resumer(&mut h, "bob", "lobby", "&since=0");
        let queued = h.server.pending(bob).len();
        assert!(queued <= 4096, "lines of {len}: {queued} bytes queued");
        assert!(!h.server.backlog.contains_key(&bob), "lines of {len}");
    }
}
