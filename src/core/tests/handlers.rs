//! The handlers on their own: each borrows only the context (and the one
//! WebSocket it works on) and returns what to do, so it is tested here
//! with no registry, no connection and no queue.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Credential, Principal};
use crate::config::{Config, PerUserPolicy, Rate, SecretKey};
use crate::core::conn::{Cors, Purpose, Ws};
use crate::core::context::Context;
use crate::core::ending::Ending;
use crate::core::handshake::{Admission, Authenticated};
use crate::core::limits::Bucket;
use crate::core::metrics::Gauges;
use crate::core::peer::Peer;
use crate::core::registry::ConnId;
use crate::core::requests::{Detail, Routed};
use crate::core::rooms::Rooms;
use crate::core::time::Timer;
use crate::core::websocket::Step;
use crate::http::upgrade::{Carrier, Mode, Reject, Upgrade};
use crate::http::{self, Request};
use crate::testkit::{SECRET, START, form_post, upgrade_request};

const PEER: &str = "192.0.2.7:40000";

fn context(adjust: impl FnOnce(&mut Config)) -> Context {
    let mut config = Config {
        secrets: vec![SecretKey(SECRET.to_vec())],
        random_seed: Some(7),
        ..Config::default()
    };
    adjust(&mut config);
    Context::new(config)
}

fn peer() -> Peer {
    Peer::new(PEER.parse().unwrap(), false)
}

fn parse(raw: &str) -> (Request, Vec<u8>) {
    let (req, head) = http::parse_head(raw.as_bytes(), 64, 8192)
        .expect("a valid head")
        .expect("a whole head");
    (req, raw.as_bytes()[head..].to_vec())
}

fn route(ctx: &mut Context, raw: &str) -> Routed {
    let (req, body) = parse(raw);
    ctx.route(&req, &body, peer(), &Gauges::default(), START)
}

fn token_principal(ctx: &Context, user: &str, ttl: u64) -> Principal {
    let token = ctx.jwt.issue(user, "member", START.as_millis(), ttl);
    ctx.jwt
        .verify(&token, START.as_millis())
        .unwrap()
        .into_principal()
}

fn ws_for(principal: Principal, room: &str) -> Ws {
    Ws::new(principal, true, Arc::from(room), Mode::Text, START)
}

fn upgrade_to(room: &str) -> Upgrade {
    Upgrade {
        accept: String::new(),
        mode: Mode::Text,
        room: room.to_string(),
        resume: None,
        carrier: Carrier::Custom,
    }
}

#[test]
fn a_login_form_asks_for_a_password_check_and_a_logout_names_the_sessions_to_end() {
    let mut ctx = context(|_| {});
    let routed = route(
        &mut ctx,
        &form_post("/login", "username=alice&password=wonderland"),
    );
    let Routed::CheckPassword {
        user,
        password,
        purpose: Purpose::Login(Cors(None)),
    } = routed
    else {
        panic!("{routed:?}");
    };
    assert_eq!((user.as_str(), password.as_str()), ("alice", "wonderland"));

    let (sid, handle, _) = ctx.sessions.create("alice", "member", START.as_millis());
    let logout = format!("POST /logout HTTP/1.1\r\nHost: x\r\nCookie: __Host-wsgate={sid}\r\n\r\n");
    match route(&mut ctx, &logout) {
        Routed::EndSessions(response, ended, Ending::LoggedOut) => {
            assert_eq!(response.status, 204);
            assert_eq!(ended, [handle]);
        }
        other => panic!("{other:?}"),
    }
    assert!(ctx.sessions.is_empty(), "the session is gone");
    // A second logout with the same cookie ends nothing more.
    match route(&mut ctx, &logout) {
        Routed::EndSessions(_, ended, _) => assert!(ended.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_upgrade_credential_decides_without_a_connection() {
    let mut ctx = context(|c| c.allow_password_auth = true);
    let token = ctx.jwt.issue("bob", "member", START.as_millis(), 60);
    let (req, _) = parse(&upgrade_request(&format!("/ws?room=dev&token={token}"), ""));
    match ctx.authenticate(&req, peer(), START) {
        Authenticated::Admit(p, upgrade) => {
            assert_eq!((p.user(), upgrade.room.as_str()), ("bob", "dev"));
        }
        other => panic!("{other:?}"),
    }
    let (req, _) = parse(&upgrade_request("/ws?room=dev&username=a&password=b", ""));
    assert!(matches!(
        ctx.authenticate(&req, peer(), START),
        Authenticated::CheckPassword { ref user, .. } if user == "a"
    ));
    let (req, _) = parse(&upgrade_request("/ws?room=dev&token=x.y.z", ""));
    // The client hears the class; the log line gets the check that failed.
    assert!(matches!(
        ctx.authenticate(&req, peer(), START),
        Authenticated::Refuse(
            Reject::Unauthorized("invalid token"),
            Detail {
                carrier: Some("query"),
                why: Some("header not base64url" | "header not json" | "header not an object"),
            }
        )
    ));
}

#[test]
fn admission_evicts_the_oldest_or_refuses_the_newest() {
    let ids = [
        ConnId::from_token(1),
        ConnId::from_token(2),
        ConnId::from_token(3),
    ];
    let mut ctx = context(|c| c.limits.max_conns_per_user = 2);
    let p = token_principal(&ctx, "carol", 60);
    assert_eq!(
        ctx.admission(&p, &upgrade_to("dev"), &ids[..1]),
        Ok(Admission { evict: None })
    );
    assert!(matches!(
        ctx.admission(&p, &upgrade_to("dev"), &ids[..2]),
        Err(Reject::TooMany(..))
    ));
    ctx.config.per_user_policy = PerUserPolicy::EvictOldest;
    assert_eq!(
        ctx.admission(&p, &upgrade_to("dev"), &ids[1..]),
        Ok(Admission {
            evict: Some(ids[1])
        })
    );
    let only_ops = Principal::new(
        "dave".into(),
        "member".into(),
        Some(vec!["ops".into()]),
        Credential::Custom,
    );
    assert_eq!(
        ctx.admission(&only_ops, &upgrade_to("dev"), &[]),
        Err(Reject::Forbidden("room not allowed"))
    );
}

#[test]
fn a_line_is_broadcast_and_a_flooder_is_closed_after_its_strikes() {
    let rate = Rate {
        per_sec: 1.0,
        burst: 1.0,
    };
    let mut ctx = context(|c| c.limits.message_rate = Some(rate));
    let mut ws = ws_for(token_principal(&ctx, "erin", 600), "dev");
    ws.bucket = Some(Bucket::full(rate, START));
    let rooms = Rooms::default();
    assert_eq!(
        ctx.on_text(&mut ws, peer(), &rooms, "hello", START),
        Step::Broadcast("hello".into())
    );
    let mut steps = Vec::new();
    for _ in 0..10 {
        steps.push(ctx.on_text(&mut ws, peer(), &rooms, "again", START));
    }
    assert!(
        steps[..9]
            .iter()
            .all(|s| matches!(s, Step::Send(t) if t.contains("rate limit exceeded"))),
        "{steps:?}"
    );
    assert_eq!(steps[9], Step::Close(Ending::RateExceeded));
}

#[test]
fn a_late_timer_closes_before_it_pings() {
    let ctx = context(|_| {});
    let interval = ctx.config.ping_interval;
    let mut ws = ws_for(token_principal(&ctx, "finn", 3600), "dev");
    ws.next_ping = START + interval;
    // On time: a ping, and the next one is an interval on.
    let at = START + interval;
    assert_eq!(
        ctx.on_ws_timer(&mut ws, Timer::Ping, false, None, at),
        Step::Ping
    );
    assert_eq!(ws.next_ping, at + interval);
    // The ping fires late, after a queue has been over its limit for the
    // slow-consumer timeout: the close comes first, and nothing else.
    let slow = ctx.config.limits.slow_consumer_timeout;
    let late = ws.next_ping + slow;
    let since = late.before(slow);
    assert_eq!(
        ctx.on_ws_timer(&mut ws, Timer::Ping, false, Some(since), late),
        Step::Close(Ending::SlowConsumer)
    );
    // Parked (its input not read), silence is not the peer's.
    let much_later = late + interval * 3;
    ws.next_ping = much_later + Duration::from_secs(1);
    assert_eq!(
        ctx.on_ws_timer(&mut ws, Timer::Silence, true, None, much_later),
        Step::Nothing
    );
    assert_eq!(
        ctx.on_ws_timer(
            &mut ws,
            Timer::Silence,
            false,
            None,
            much_later + interval * 2
        ),
        Step::Close(Ending::PingTimeout)
    );
}
