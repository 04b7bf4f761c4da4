//! Caps and rates: the connection limit (`503`) and the per-address cap
//! (`429` at accept, one key per IPv6 /64), connections per user
//! (refusing the newest or evicting the oldest `4409`), tickets per user,
//! upgrades and failed logins per address (charged when a check starts,
//! still counted when abandoned), and the message rate, commands included
//! (errors, then `4429`). Queue limits and slow consumers are in `flow`.

use std::net::IpAddr;

use serde_json::json;

use super::json_body;
use crate::config::{PerUserPolicy, Rate};
use crate::core::AddrKey;
use crate::testkit::{Harness, form_post};

#[test]
fn connection_limit_answers_503_without_taking_a_slot() {
    let mut h = Harness::new(|c| c.limits.max_connections = 2);
    h.connect();
    h.connect();
    // However many come: each is answered 503 at once, none is held.
    for _ in 0..100 {
        assert_eq!(h.try_connect(), None);
        let r = h.refusal().unwrap();
        assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert_eq!(h.server.connections(), 2);
}

#[test]
fn connections_per_address_are_capped() {
    let mut h = Harness::new(|c| c.limits.max_conns_per_ip = Some(2));
    let ip: IpAddr = [10, 0, 0, 1].into();
    h.connect_from(ip).unwrap();
    h.connect_from(ip).unwrap();
    assert_eq!(h.connect_from(ip), None, "refused at accept");
    let r = h.refusal().unwrap();
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    assert_eq!(h.server.connections(), 2, "the refused one holds no slot");
    assert!(h.connect_from([10, 0, 0, 2].into()).is_some());
    let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    assert_eq!(AddrKey::of(v6a), AddrKey::of(v6b), "one /64");
    assert_ne!(
        AddrKey::of(v6a),
        AddrKey::of("2001:db8:1:3::1".parse().unwrap())
    );
    assert_eq!(
        AddrKey::of("::ffff:10.0.0.1".parse().unwrap()),
        AddrKey::of(ip)
    );
}

#[test]
fn per_user_limit_rejects_the_newest() {
    let mut h = Harness::new(|c| c.limits.max_conns_per_user = 2);
    h.open("alice");
    h.open("alice");
    let t = h.token("alice", 60);
    let (_, r) = h.upgrade(&format!("/ws?token={t}"), "");
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    h.open("bob");
}

#[test]
fn per_user_limit_can_evict_the_oldest_4409() {
    let mut h = Harness::new(|c| {
        c.limits.max_conns_per_user = 2;
        c.per_user_policy = PerUserPolicy::EvictOldest;
    });
    let first = h.open("alice");
    let second = h.open("alice");
    let third = h.open("alice");
    assert_eq!(
        h.close_frame(first),
        Some((4409, "replaced by a newer connection".into()))
    );
    assert_eq!(h.close_frame(second), None);
    h.say(third, "hi");
    assert_eq!(h.texts(second).last().unwrap(), "alice: hi");
}

#[test]
fn tickets_per_user_are_capped() {
    let mut h = Harness::default();
    let t = h.token("alice", 600);
    let req = format!("POST /ws-ticket HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n\r\n");
    for _ in 0..32 {
        assert_eq!(h.request(&req).1.status, 200);
    }
    let (_, r) = h.request(&req);
    assert_eq!((r.status, r.header("retry-after")), (429, Some("30")));
    h.advance(30_000);
    assert_eq!(
        h.request(&req).1.status,
        200,
        "expired tickets free their slots"
    );
}

#[test]
fn upgrades_per_ip_are_limited_429() {
    let mut h = Harness::new(|c| {
        c.limits.upgrade_rate = Some(Rate {
            per_sec: 1.0,
            burst: 2.0,
        });
    });
    h.open("alice");
    h.open("bob");
    let t = h.token("carol", 60);
    let (_, r) = h.upgrade(&format!("/ws?token={t}"), "");
    assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
    h.advance(1_000);
    assert_eq!(h.upgrade(&format!("/ws?token={t}"), "").1.status, 101);
}

#[test]
fn failed_logins_per_ip_are_limited_429() {
    let mut h = Harness::new(|c| {
        c.limits.failed_login_rate = Some(Rate {
            per_sec: 1.0 / 60.0,
            burst: 2.0,
        });
    });
    for _ in 0..2 {
        assert_eq!(
            h.request(&form_post("/token", "username=alice&password=nope"))
                .1
                .status,
            401
        );
    }
    let (_, r) = h.request(&form_post("/token", "username=alice&password=wonderland"));
    assert_eq!((r.status, r.header("retry-after")), (429, Some("60")));
    h.advance(60_000);
    assert_eq!(
        h.request(&form_post("/token", "username=alice&password=wonderland"))
            .1
            .status,
        200
    );
}

#[test]
fn parallel_guesses_are_charged_when_they_start() {
    let mut h = Harness::new(|c| {
        c.limits.failed_login_rate = Some(crate::config::Rate {
            per_sec: 1.0 / 60.0,
            burst: 3.0,
        });
    });
    h.hold_passwords = true;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let id = h.connect();
        h.send(
            id,
            form_post("/token", "username=alice&password=guess").as_bytes(),
        );
        statuses.push(h.response(id).map(|r| r.status));
    }
    assert_eq!(statuses, vec![None, None, None, Some(429)]);
}

#[test]
fn abandoned_password_checks_still_count() {
    let mut h = Harness::default();
    h.hold_passwords = true;
    for _ in 0..4 {
        let id = h.connect();
        h.send(
            id,
            form_post("/token", "username=alice&password=guess").as_bytes(),
        );
        h.hang_up(id);
    }
    let (_, r) = h.request(&form_post("/token", "username=alice&password=guess"));
    assert_eq!(
        (r.status, json_body(&r.body)["detail"].clone()),
        (429, json!("too many logins in progress"))
    );
    // Answered late, the failures still count against the address.
    for job in std::mem::take(&mut h.held) {
        h.server.handle_password_checked(job.job, None, h.now);
    }
    h.hold_passwords = false;
    assert_eq!(
        h.request(&form_post("/token", "username=alice&password=wonderland"))
            .1
            .status,
        200
    );
}

#[test]
fn message_rate_errors_then_closes_4429() {
    let mut h = Harness::new(|c| {
        c.limits.message_rate = Some(Rate {
            per_sec: 1.0,
            burst: 2.0,
        })
    });
    let a = h.open("alice");
    let b = h.open("bob");
    h.texts(a);
    h.texts(b);
    h.say(a, "1");
    h.say(a, "2");
    h.say(a, "3");
    assert_eq!(
        h.texts(a),
        vec!["alice: 1", "alice: 2", "System: error: rate limit exceeded"]
    );
    assert_eq!(h.texts(b), vec!["alice: 1", "alice: 2"]);
    for _ in 0..9 {
        h.say(a, "flood");
    }
    assert_eq!(
        h.close_frame(a),
        Some((4429, "message rate exceeded".into()))
    );
    assert!(h.texts(b).iter().all(|t| !t.contains("flood")));
}

#[test]
fn commands_are_rate_limited_too() {
    let mut h = Harness::new(|c| {
        c.limits.message_rate = Some(crate::config::Rate {
            per_sec: 1.0,
            burst: 2.0,
        })
    });
    let a = h.open("alice");
    h.texts(a);
    for _ in 0..3 {
        h.say(a, "/who");
    }
    assert_eq!(
        h.texts(a).last().unwrap(),
        "System: error: rate limit exceeded"
    );
}
