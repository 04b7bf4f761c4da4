//! The second hardening round: slots held without a credential, login
//! CSRF, one address key for every per-address limit, credentials and
//! forged fields in log lines, client-chosen metric series, the `Host`
//! header.

use std::net::IpAddr;

use serde_json::json;
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;

use super::login;
use crate::fuzzing::check_log_line;
use crate::testkit::{
    Harness, capture_logs, form_post, stop_capturing_logs, take_log_lines, upgrade_request,
};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Sends `request` from `from` on a new connection; its response.
fn request_from(h: &mut Harness, from: IpAddr, request: &str) -> crate::testkit::HttpResponse {
    let id = h.connect_from(from).expect("accepted");
    h.send(id, request.as_bytes());
    h.response(id).expect("a response")
}

mod slots {
    use super::*;

    #[test]
    fn unauthenticated_connections_are_capped_per_address_without_holding_slots() {
        let mut h = Harness::new(|c| {
            c.limits.max_unauth_per_ip = Some(3);
            c.limits.max_connections = 100;
        });
        let a = ip("10.0.0.1");
        let idle: Vec<_> = (0..3).map(|_| h.connect_from(a).unwrap()).collect();
        // The fourth is told 429 at once and never becomes a connection.
        for _ in 0..50 {
            assert_eq!(h.connect_from(a), None);
            let r = h.refusal().unwrap();
            assert_eq!((r.status, r.header("retry-after")), (429, Some("1")));
            assert!(r.body.contains("unauthenticated"), "{}", r.body);
        }
        assert_eq!(h.server.connections(), 3);
        // Another address is not affected.
        let token = h.token("bob", 60);
        let r = request_from(
            &mut h,
            ip("10.0.0.2"),
            &upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n")),
        );
        assert_eq!(r.status, 101);
        // An upgraded connection no longer counts: one of the three logs
        // in, and a new one from that address is accepted.
        let token = h.token("alice", 60);
        h.send(
            idle[0],
            upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n")).as_bytes(),
        );
        assert_eq!(h.response(idle[0]).unwrap().status, 101);
        assert!(h.connect_from(a).is_some());
        assert_eq!(h.connect_from(a), None);
    }

    #[test]
    fn ipv6_addresses_share_the_cap_per_64() {
        let mut h = Harness::new(|c| c.limits.max_unauth_per_ip = Some(2));
        h.connect_from(ip("2001:db8:0:1::1")).unwrap();
        h.connect_from(ip("2001:db8:0:1::ffff")).unwrap();
        assert_eq!(h.connect_from(ip("2001:db8:0:1:abcd::7")), None);
        assert!(h.connect_from(ip("2001:db8:0:2::1")).is_some());
    }

    #[test]
    fn ten_flooding_addresses_leave_slots_for_an_eleventh() {
        let mut h = Harness::new(|c| c.limits.max_connections = 1000);
        for i in 0..10 {
            let from = ip(&format!("10.0.1.{i}"));
            for _ in 0..1024 {
                let _ = h.connect_from(from);
            }
        }
        assert_eq!(h.server.connections(), 640);
        let token = h.token("carol", 60);
        let r = request_from(
            &mut h,
            ip("10.0.2.1"),
            &upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n")),
        );
        assert_eq!(r.status, 101);
        let r = request_from(
            &mut h,
            ip("10.0.2.2"),
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(r.status, 200);
    }
}

mod csrf {
    use super::*;

    fn login_from(h: &mut Harness, origin: Option<&str>) -> crate::testkit::HttpResponse {
        let body = "username=alice&password=wonderland";
        let mut request = form_post("/login", body);
        if let Some(o) = origin {
            request = request.replacen("\r\n", &format!("\r\nOrigin: {o}\r\n"), 1);
        }
        h.request(&request).1
    }

    #[test]
    fn login_refuses_foreign_and_null_origins() {
        let mut h = Harness::new(|c| {
            c.allowed_origins = vec![crate::config::Origin::parse("https://app.example").unwrap()];
        });
        for origin in [
            "https://evil.example",
            "null",
            "http://127.0.0.1:8081",
            "https://app.example.evil",
            "not an origin",
        ] {
            let r = login_from(&mut h, Some(origin));
            assert_eq!(r.status, 403, "{origin}");
            assert_eq!(r.header("set-cookie"), None, "{origin}");
        }
        for origin in [
            None,
            Some("http://127.0.0.1:8080"),
            Some("https://app.example"),
        ] {
            let r = login_from(&mut h, origin);
            assert_eq!(r.status, 204, "{origin:?}");
            assert!(r.header("set-cookie").is_some());
        }
    }

    #[test]
    fn logout_and_cookie_tickets_refuse_foreign_origins() {
        let mut h = Harness::default();
        let cookie = login(&mut h, "alice", "wonderland");
        let (ws, r) = h.upgrade(
            "/ws",
            &format!("Cookie: {cookie}\r\nOrigin: http://127.0.0.1:8080\r\n"),
        );
        assert_eq!(r.status, 101);
        let post = |path: &str, origin: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nCookie: {cookie}\r\n{origin}\r\n"
            )
        };
        let (_, r) = h.request(&post("/logout", "Origin: https://evil.example\r\n"));
        assert_eq!(r.status, 403);
        assert!(h.server.is_websocket(ws), "a forged logout changed nothing");
        let (_, r) = h.request(&post("/ws-ticket", "Origin: null\r\n"));
        assert_eq!(r.status, 403);
        let (_, r) = h.request(&post("/ws-ticket", ""));
        assert_eq!(r.status, 200, "no Origin: not a browser");
        let (_, r) = h.request(&post("/logout", ""));
        assert_eq!(r.status, 204);
        assert_eq!(h.close_frame(ws), Some((4403, "logged out".into())));
    }
}

mod addresses {
    use super::*;

    #[test]
    fn the_upgrade_rate_counts_an_ipv6_64_as_one_address() {
        let mut h = Harness::default();
        let token = h.token("alice", 60);
        let request = upgrade_request("/ws?room=r", &format!("Authorization: Bearer {token}\r\n"));
        let mut statuses = Vec::new();
        for i in 0..40 {
            let id = h.connect_from(ip(&format!("2001:db8:5:6::{i:x}"))).unwrap();
            h.send(id, request.as_bytes());
            statuses.push(h.response(id).unwrap().status);
            h.hang_up(id);
        }
        // Bursts of 20, then 10 a second: the forty addresses of one /64
        // are one address.
        assert_eq!(statuses.iter().filter(|&&s| s == 101).count(), 20);
        assert!(statuses[20..].iter().all(|&s| s == 429), "{statuses:?}");
    }
}

mod logs {
    use super::*;

    /// Runs `f` with this thread's log lines captured; the lines, each
    /// checked to be well-formed. `None` when another logger was
    /// installed first in this process (nothing can be captured then).
    fn logged(f: impl FnOnce()) -> Option<Vec<String>> {
        if !capture_logs() {
            f();
            return None;
        }
        take_log_lines();
        f();
        let lines = take_log_lines();
        stop_capturing_logs();
        assert!(!lines.is_empty(), "nothing was logged");
        for line in &lines {
            check_log_line(line);
        }
        Some(lines)
    }

    #[test]
    fn refused_credentials_never_reach_the_log() {
        let mut h = Harness::default();
        let expired = h.token_with(json!({"sub": "alice", "exp": h.now.as_secs() - 600}));
        let (_, r) = h.request(&form_post("/token", "username=alice&password=wonderland"));
        let fresh: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let fresh = fresh["access_token"].as_str().unwrap().to_string();
        let (_, r) = h.request(&format!(
            "POST /ws-ticket HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {fresh}\r\n\r\n"
        ));
        let ticket: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let ticket = ticket["ticket"].as_str().unwrap().to_string();
        let targets = [
            format!("/ws?{expired}"),
            format!("/ws?{expired}="),
            format!("/ws?room=lobby&{expired}"),
            format!("/ws?{ticket}"),
            format!("/ws?x={ticket}"),
            format!("/ws/{expired}"),
            format!("/ws?token={expired}"),
        ];
        let Some(lines) = logged(|| {
            for target in &targets {
                let (_, r) = h.upgrade(target, "");
                assert_eq!(r.status, 401, "{target}");
            }
        }) else {
            return;
        };
        let all = lines.join("\n");
        assert!(!all.contains(&expired), "{all}");
        assert!(!all.contains(&ticket), "{all}");
        assert!(
            all.contains("target=\"/ws?room=lobby&[redacted]\""),
            "{all}"
        );
    }

    #[test]
    fn peer_values_are_quoted_and_cannot_forge_fields_or_lines() {
        let mut h = Harness::default();
        let sub = "x peer=6.6.6.6 room=admin";
        let token = h.token_with(json!({"sub": sub, "exp": h.now.as_secs() + 600}));
        let Some(lines) = logged(|| {
            let (id, r) = h.upgrade(&format!("/ws?token={token}"), "");
            assert_eq!(r.status, 101);
            h.hang_up(id);
            for name in [
                "%E2%80%A8",
                "%E2%80%A9",
                "%C2%85",
                "%C2%9B",
                "%E2%80%AE",
                "a%0Ab",
            ] {
                let (_, r) = h.upgrade(&format!("/ws?{name}=1&room=lobby"), "");
                assert_eq!(r.status, 401);
            }
            // Raw in the request line too, where the parser lets them in.
            let raw = "GET /ws?\u{2028}\u{85}\u{202e}=1 HTTP/1.1\r\nHost: x\r\n\r\n";
            let _ = h.request(raw);
        }) else {
            return;
        };
        let open = lines.iter().find(|l| l.starts_with("open ")).unwrap();
        assert!(
            open.contains("user=\"x peer=6.6.6.6 room=admin\""),
            "{open}"
        );
        assert_eq!(
            open.matches(" peer=").count(),
            2,
            "one field, one quoted: {open}"
        );
        let close = lines.iter().find(|l| l.starts_with("close ")).unwrap();
        assert!(
            close.contains("user=\"x peer=6.6.6.6 room=admin\""),
            "{close}"
        );
    }
}

mod metrics {
    use super::*;

    #[test]
    fn peers_cannot_choose_close_code_series() {
        let mut h = Harness::new(|c| {
            c.limits.max_conns_per_user = 1000;
            c.limits.upgrade_rate = None;
        });
        for i in 0..300u16 {
            let id = h.open(&format!("u{i}"));
            let code = if i % 2 == 0 { 3000 + i } else { 4000 + i };
            h.ws_send(
                id,
                Message::Close(Some(CloseFrame {
                    code: code.into(),
                    reason: "".into(),
                })),
            );
        }
        let (_, r) = h.request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let peer_series: Vec<_> = r
            .body
            .lines()
            .filter(|l| l.starts_with("wsgate_closes_total{by=\"peer\""))
            .collect();
        assert_eq!(
            peer_series,
            [
                "wsgate_closes_total{by=\"peer\",code=\"3xxx\"} 150",
                "wsgate_closes_total{by=\"peer\",code=\"4xxx\"} 150"
            ]
        );
    }
}

mod names {
    /// Look-alikes of `System` from scripts a hand-picked fold missed
    /// (Unicode's confusables data has them) are reserved too.
    #[test]
    fn look_alikes_of_system_from_armenian_georgian_and_cyrillic_are_reserved() {
        for name in [
            "\u{054F}ystem", // Տ ARMENIAN CAPITAL LETTER TIWN
            "S\u{10E7}stem", // ყ GEORGIAN LETTER QAR
            "Syst\u{04BD}m", // ҽ CYRILLIC SMALL LETTER ABKHASIAN CHE
            "S\u{0263}stem", // ɣ LATIN SMALL LETTER GAMMA
        ] {
            assert_eq!(
                crate::auth::check_user_name(name),
                Err(crate::auth::NameError::Reserved),
                "{name}"
            );
        }
    }
}

mod host {
    use super::*;

    #[test]
    fn a_missing_repeated_or_malformed_host_is_400() {
        let mut h = Harness::default();
        let token = h.token("alice", 60);
        let upgrade = upgrade_request("/ws", &format!("Authorization: Bearer {token}\r\n"));
        let without = upgrade.replace("Host: 127.0.0.1:8080\r\n", "");
        let twice = upgrade.replace("Host: 127.0.0.1:8080\r\n", "Host: a\r\nHost: a\r\n");
        let odd = upgrade.replace("Host: 127.0.0.1:8080\r\n", "Host: a b@c\r\n");
        for (what, request) in [
            ("no Host", without),
            ("two", twice),
            ("a b@c", odd),
            ("healthz, no Host", "GET /healthz HTTP/1.1\r\n\r\n".into()),
            (
                "healthz, two",
                "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            ),
        ] {
            let (id, r) = h.request(&request);
            assert_eq!(r.status, 400, "{what}");
            assert!(!h.server.is_websocket(id));
        }
        // HTTP/1.0 may omit it.
        let (_, r) = h.request("GET /healthz HTTP/1.0\r\n\r\n");
        assert_eq!(r.status, 200);
    }
}
