//! The corpus replay, the seed inputs of every target, and the checks
//! that the harness reaches deep states.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::auth::jwt::{JwtConfig, Secret};
use crate::testkit::{form_post, upgrade_request};

use super::core_ops::{
    Carrier, ChatMessage, CoreInput, Driver, HttpRequest, LinkOp, Op, Origin, Room, Since,
    Switches, TokenKind, Upgrade, User, decode,
};
use super::jwt::{Expected, JWT_KEY, JWT_NOW, JWT_NOW_S, Verdict, build_token, jwt_fixture};
use super::{core_ops, jwt, params, proxied, request_head};

/// Runs `target` on every file of `fuzz/corpus/NAME/` (which must not
/// be empty) and `fuzz/regressions/NAME/` (when present).
fn replay(name: &str, target: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    let mut failed = Vec::new();
    for (dir, required) in [("corpus", true), ("regressions", false)] {
        let dir = root.join(dir).join(name);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            assert!(!required, "no {}", dir.display());
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("a directory entry").path())
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("a readable corpus file");
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failed.push(path.display().to_string());
            }
            count += 1;
        }
    }
    assert!(count > 0, "no corpus for {name} under {}", root.display());
    assert!(failed.is_empty(), "{name} fails on {failed:#?}");
}

#[test]
fn replay_request_head() {
    replay("request_head", request_head);
}

#[test]
fn replay_jwt() {
    replay("jwt", jwt);
}

#[test]
fn replay_params() {
    replay("params", params);
}

#[test]
fn replay_proxied() {
    replay("proxied", proxied);
}

#[test]
fn replay_core_ops() {
    replay("core_ops", core_ops);
}

/// An upgrade on `conn` with the defaults: a token valid for an hour,
/// text mode, sent at once.
fn up(conn: u8, carrier: Carrier, user: User, room: Room) -> Op {
    Op::Upgrade(Upgrade {
        conn,
        carrier,
        user,
        room,
        ..Upgrade::default()
    })
}

/// A plain HTTP request on `conn`, sent at once.
fn http(conn: u8, request: HttpRequest) -> Op {
    Op::Http {
        conn,
        request,
        pipelined: false,
        dribble: 0,
    }
}

fn chat(conn: u8, message: ChatMessage) -> Op {
    Op::Chat { conn, message }
}

fn input(switches: Switches, ops: Vec<Op>) -> CoreInput {
    CoreInput { switches, ops }
}

/// Meaningful `core_ops` inputs: each reaches a state the fuzzer
/// should start from. (They cannot be written as corpus files: `arbitrary`
/// decodes, it does not encode; the fuzzer finds its own way there.)
fn core_seeds() -> Vec<(&'static str, CoreInput)> {
    use Carrier::{Basic, Bearer, Cookie, Password, Path, Query, Ticket, Two};
    use ChatMessage as M;
    use HttpRequest as R;
    use Room::{Dev, Invalid, Lobby, X};
    use User::{Alice, Bob, Carol, Dave};
    let off = Switches::default();
    vec![
        (
            "chat",
            input(
                off,
                vec![
                    Op::Accept,
                    up(0, Bearer, Alice, Lobby),
                    Op::Accept,
                    up(1, Path, Bob, Lobby),
                    chat(0, M::Hello),
                    chat(1, M::Who),
                    chat(0, M::Fragmented),
                    Op::HangUp { conn: 1 },
                ],
            ),
        ),
        (
            "json",
            input(
                Switches {
                    no_message_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        carrier: Query,
                        room: Dev,
                        json: true,
                        ..Upgrade::default()
                    }),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 1,
                        user: Bob,
                        room: Dev,
                        json: true,
                        ..Upgrade::default()
                    }),
                    chat(0, M::JsonMessage),
                    chat(1, M::JsonWho),
                    chat(0, M::JsonRefresh),
                    chat(1, M::JsonLongest),
                ],
            ),
        ),
        (
            "resume",
            input(
                Switches {
                    no_message_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Bearer, Alice, Lobby),
                    chat(0, M::Hello),
                    chat(0, M::Hello),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 1,
                        user: Bob,
                        json: true,
                        since: Since::Zero,
                        ..Upgrade::default()
                    }),
                    Op::Wait50ms(1),
                    Op::HangUp { conn: 1 },
                    chat(0, M::Hello),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 1,
                        user: Bob,
                        json: true,
                        since: Since::Seq(2),
                        ..Upgrade::default()
                    }),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 2,
                        user: Carol,
                        json: true,
                        since: Since::OtherEpoch(1),
                        ..Upgrade::default()
                    }),
                ],
            ),
        ),
        (
            "redis",
            input(
                Switches {
                    redis: true,
                    no_message_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Bearer, Alice, Lobby),
                    chat(0, M::Hello),
                    Op::Link(LinkOp::Up),
                    chat(0, M::Hello),
                    Op::Link(LinkOp::Round),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 1,
                        user: Bob,
                        json: true,
                        since: Since::Zero,
                        ..Upgrade::default()
                    }),
                    // Redis counts bob's WebSocket (the per-user limit).
                    Op::Link(LinkOp::Round),
                    chat(0, M::Hello),
                    Op::Link(LinkOp::Fail { unconfirmed: true }),
                    Op::Link(LinkOp::Numbered {
                        seq: 4,
                        new_epoch: true,
                    }),
                    Op::Link(LinkOp::Down),
                    chat(0, M::Hello),
                ],
            ),
        ),
        (
            "login-ticket",
            input(
                Switches {
                    no_upgrade_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    http(0, R::LoginAlice),
                    Op::Passwords { checks: 3 },
                    http(0, R::TicketCookie),
                    Op::Accept,
                    up(1, Ticket, Alice, Lobby),
                    chat(1, M::Hello),
                ],
            ),
        ),
        (
            "cookie-logout",
            input(
                Switches {
                    no_upgrade_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    http(0, R::LoginBob),
                    Op::Passwords { checks: 3 },
                    Op::Accept,
                    up(1, Cookie, Bob, Lobby),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 2,
                        carrier: Cookie,
                        user: Bob,
                        origin: Origin::Foreign,
                        ..Upgrade::default()
                    }),
                    http(0, R::Logout),
                ],
            ),
        ),
        (
            "redis-sessions",
            input(
                Switches {
                    redis: true,
                    no_upgrade_rate: true,
                    ..off
                },
                vec![
                    Op::Link(LinkOp::Up),
                    Op::Accept,
                    http(0, R::LoginAlice),
                    Op::Passwords { checks: 3 },
                    Op::Link(LinkOp::Round),
                    http(0, R::TicketCookie),
                    Op::Link(LinkOp::Round),
                    Op::Accept,
                    up(1, Ticket, Alice, Lobby),
                    Op::Link(LinkOp::Round),
                    Op::Accept,
                    up(2, Cookie, Alice, Lobby),
                    Op::Link(LinkOp::Round),
                    chat(1, M::Who),
                    Op::Link(LinkOp::Round),
                    http(0, R::Logout),
                    Op::Link(LinkOp::Round),
                ],
            ),
        ),
        (
            "slow-consumer",
            input(
                Switches {
                    no_message_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Bearer, Alice, Lobby),
                    Op::Accept,
                    up(1, Bearer, Bob, Lobby),
                    Op::Stall { conn: 1 },
                    chat(0, M::JsonLongest),
                    Op::ShortRead {
                        conn: 1,
                        blocks: 100,
                    },
                    Op::Repeat { conn: 0, times: 8 },
                    Op::ShortRead { conn: 1, blocks: 3 },
                ],
            ),
        ),
        (
            "expiry",
            input(
                Switches {
                    ping_5s: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        user: Carol,
                        token: TokenKind::FiveSeconds,
                        ..Upgrade::default()
                    }),
                    Op::Wait5s(2),
                    chat(0, M::RefreshOther),
                    Op::Wait5s(8),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 1,
                        user: Carol,
                        token: TokenKind::Minute,
                        ..Upgrade::default()
                    }),
                    chat(1, M::RefreshOwn),
                    Op::JumpMinutes(5),
                ],
            ),
        ),
        (
            "ping-timeout",
            input(
                Switches {
                    ping_5s: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Path, Dave, X),
                    Op::Stall { conn: 0 },
                    Op::Wait5s(4),
                ],
            ),
        ),
        (
            "password-upgrade-shutdown",
            input(
                Switches {
                    password_auth: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Password, Alice, Lobby),
                    Op::Accept,
                    Op::Upgrade(Upgrade {
                        conn: 1,
                        carrier: Basic,
                        room: Dev,
                        frame_behind: true,
                        ..Upgrade::default()
                    }),
                    Op::Shutdown,
                    Op::Passwords { checks: 3 },
                ],
            ),
        ),
        (
            "pipelined-dribble",
            input(
                off,
                vec![
                    Op::Accept,
                    Op::Http {
                        conn: 0,
                        request: R::Health,
                        pipelined: true,
                        dribble: 0,
                    },
                    // One byte a read, then two.
                    Op::Http {
                        conn: 0,
                        request: R::Head,
                        pipelined: false,
                        dribble: 1,
                    },
                    http(0, R::Continue),
                    Op::Http {
                        conn: 0,
                        request: R::Metrics,
                        pipelined: false,
                        dribble: 2,
                    },
                    Op::Raw {
                        conn: 0,
                        bytes: b"GET /nope HTTP/1.1\r\n\r\n".to_vec(),
                    },
                    http(0, R::HealthClose),
                ],
            ),
        ),
        (
            "limits",
            input(
                Switches {
                    one_per_user: true,
                    ..off
                },
                vec![
                    Op::AcceptMany { n: 12 },
                    up(0, Bearer, Alice, Lobby),
                    up(1, Bearer, Alice, Lobby),
                    up(2, Two, Alice, Lobby),
                    up(3, Bearer, Alice, Invalid),
                    Op::Wait5s(1),
                ],
            ),
        ),
        (
            "half-close",
            input(
                off,
                vec![
                    Op::Accept,
                    Op::Stall { conn: 0 },
                    http(0, R::Health),
                    Op::HalfClose { conn: 0 },
                    Op::Stall { conn: 0 },
                    Op::Accept,
                    up(1, Bearer, Alice, Lobby),
                    Op::HalfClose { conn: 1 },
                ],
            ),
        ),
        (
            "echo",
            input(
                Switches {
                    no_message_rate: true,
                    insecure_cookie: true,
                    presence_of_one: true,
                    echo: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Bearer, Alice, Lobby),
                    chat(0, M::Hello),
                    chat(0, M::Binary),
                    chat(0, M::TooLong),
                ],
            ),
        ),
        (
            "frames",
            input(
                Switches {
                    no_message_rate: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    up(0, Bearer, Alice, Lobby),
                    // Unmasked, with RSV1.
                    Op::Frame {
                        conn: 0,
                        opcode: 0x1,
                        fin: true,
                        rsv: 4,
                        masked: false,
                        payload: b"unmasked".to_vec(),
                    },
                    Op::Accept,
                    up(1, Bearer, Bob, Lobby),
                    Op::Frame {
                        conn: 1,
                        opcode: 0x9,
                        fin: true,
                        rsv: 0,
                        masked: true,
                        payload: b"ping".to_vec(),
                    },
                    Op::Repeat { conn: 1, times: 40 },
                    // A reserved opcode, with RSV3.
                    Op::Frame {
                        conn: 1,
                        opcode: 0x3,
                        fin: true,
                        rsv: 1,
                        masked: true,
                        payload: Vec::new(),
                    },
                ],
            ),
        ),
        (
            "proxy-protocol",
            input(
                Switches {
                    behind_proxy: true,
                    proxy_protocol: true,
                    ..off
                },
                vec![
                    Op::Accept,
                    Op::ProxyHeader {
                        conn: 0,
                        client: 0,
                        v2: false,
                    },
                    up(0, Bearer, Alice, Lobby),
                    Op::Accept,
                    Op::ProxyHeader {
                        conn: 1,
                        client: 3,
                        v2: true,
                    },
                    up(1, Query, Bob, Lobby),
                    chat(1, M::Hello),
                    Op::Accept,
                    http(2, R::Health),
                ],
            ),
        ),
        (
            "forwarded",
            input(
                Switches {
                    behind_proxy: true,
                    ..off
                },
                vec![
                    Op::Forwarded { conn: 0, client: 0 },
                    Op::Forwarded { conn: 0, client: 1 },
                    Op::Forwarded { conn: 0, client: 4 },
                    up(0, Bearer, Carol, Lobby),
                ],
            ),
        ),
    ]
}

#[test]
fn core_ops_reaches_proxies() {
    let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
    let reached = Driver::run_input(&seeds["proxy-protocol"]);
    assert_eq!(reached.websockets, 2, "{reached:?}");
    assert!(
        reached.texts.iter().any(|t| t == "bob: hello"),
        "{reached:?}"
    );
    assert!(reached.statuses.contains(&400), "no header: {reached:?}");
    let reached = Driver::run_input(&seeds["forwarded"]);
    assert!(reached.statuses.contains(&200), "{reached:?}");
    assert_eq!(reached.websockets, 1, "{reached:?}");
}

#[test]
fn core_ops_reaches_chat() {
    let reached = Driver::run_input(&core_seeds()[0].1);
    assert_eq!(reached.websockets, 2);
    assert!(
        reached.texts.iter().any(|t| t == "alice: hello"),
        "{reached:?}"
    );
    assert!(
        reached
            .texts
            .iter()
            .any(|t| t.starts_with("System: users: "))
    );
    assert!(
        reached.texts.iter().any(|t| t == "alice: fragment"),
        "{reached:?}"
    );
    assert!(reached.closes.contains(&1001), "{reached:?}");
}

#[test]
fn core_ops_reaches_resume() {
    let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
    let reached = Driver::run_input(&seeds["resume"]);
    let resumes: Vec<&String> = (reached.texts.iter())
        .filter(|t| t.contains(r#""type":"resume""#))
        .collect();
    assert_eq!(resumes.len(), 3, "{reached:?}");
    let recovered: Vec<bool> = resumes
        .iter()
        .map(|t| t.contains(r#""recovered":true"#))
        .collect();
    assert_eq!(recovered, [true, true, false], "{resumes:?}");
}

#[test]
#[cfg(feature = "redis")]
fn core_ops_reaches_redis() {
    let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
    let reached = Driver::run_input(&seeds["redis"]);
    let texts = &reached.texts;
    let unsent = "System: error: not sent: the chat store (Redis) cannot be reached";
    assert_eq!(
        texts.iter().filter(|t| *t == unsent).count(),
        2,
        "{reached:?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("not confirmed")),
        "{reached:?}"
    );
    assert!(texts.iter().any(|t| t == "alice: hello"), "{reached:?}");
    // Bob hears that the numbering broke before message 5 of a new epoch.
    let broke = |t: &&String| {
        t.contains(r#""type":"resume""#)
            && t.contains(r#""recovered":false"#)
            && t.contains(r#""seq":4"#)
    };
    assert_eq!(texts.iter().filter(broke).count(), 1, "{reached:?}");
}

#[test]
#[cfg(feature = "redis")]
fn core_ops_reaches_redis_sessions_and_presence() {
    let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
    let reached = Driver::run_input(&seeds["redis-sessions"]);
    // Both WebSockets (ticket, cookie) opened, `/who` was answered by
    // Redis, and the logout closed them.
    assert_eq!(reached.websockets, 2, "{reached:?}");
    assert!(
        reached.texts.iter().any(|t| t == "System: users: alice"),
        "{reached:?}"
    );
    assert!(reached.closes.contains(&4403), "{reached:?}");
}

#[test]
fn core_ops_reaches_tickets_cookies_and_limits() {
    let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
    let reached = Driver::run_input(&seeds["login-ticket"]);
    assert!(reached.statuses.contains(&204) && reached.statuses.contains(&101));
    assert!(
        reached.texts.iter().any(|t| t == "alice: hello"),
        "{reached:?}"
    );
    let reached = Driver::run_input(&seeds["cookie-logout"]);
    assert!(reached.closes.contains(&4403), "{reached:?}");
    let reached = Driver::run_input(&seeds["limits"]);
    for status in [503, 429, 400] {
        assert!(reached.statuses.contains(&status), "{status}: {reached:?}");
    }
    let reached = Driver::run_input(&seeds["expiry"]);
    assert!(reached.closes.contains(&4401), "{reached:?}");
    let reached = Driver::run_input(&seeds["echo"]);
    assert!(reached.texts.iter().any(|t| t == "hello"), "{reached:?}");
    assert!(reached.closes.contains(&1009), "{reached:?}");
}

// `core_ops` regressions. Each was once a file of
// `fuzz/regressions/core_ops/` in the byte format the target read before
// it decoded its input with `arbitrary`; here is what that file meant,
// operation for operation (the `conn` numbers are as they were: each pick
// is modulo the connections held). A new failing input from the fuzzer
// (`fuzz/artifacts/core_ops/crash-*`) goes into that directory under a
// name that says what it broke, and replays as it is for as long as the
// types in `core_ops.rs` stay the same; before they change, turn each
// such file into a test like these (`show_core_ops_input` prints what it
// means) and delete it.

/// A harness bug, not a server one (the commit that added the input does
/// not say more than its name): the peer of a WebSocket stops reading
/// before its `101` arrives; the clock jumps 31 minutes, past the token's
/// expiry and the ping timeout, and the core closes; only at the end,
/// when the peer reads again, does it read the `101`, in the same step in
/// which the core drops the socket. The simulated shell must still take
/// that `101` as a response and start a client for a peer it no longer
/// holds, without counting the connection as a live one.
#[test]
fn regression_harness_101_after_drop() {
    let reached = Driver::run_input(&input(
        Switches {
            evict_oldest: true,
            no_upgrade_rate: true,
            insecure_cookie: true,
            echo: true,
            presence_of_one: true,
            one_per_user: true,
            ping_5s: true,
            ..Switches::default()
        },
        vec![
            Op::Stall { conn: 0 },
            Op::Upgrade(Upgrade {
                conn: 1,
                token: TokenKind::FiveSeconds,
                ..Upgrade::default()
            }),
            Op::JumpMinutes(31),
            Op::HalfClose { conn: 0xd7 },
        ],
    ));
    assert!(reached.statuses.contains(&101), "{reached:?}");
}

/// A peer that never reads floods pings: each one queues a pong. The
/// queue cap was once checked once per read, not per frame, so a read's
/// worth of pongs overshot it (the queue bound failed); fixed by checking
/// the cap after every frame (commit "Cap pongs per frame").
#[test]
fn regression_ping_flood_overshoot() {
    let reached = Driver::run_input(&input(
        Switches::default(),
        vec![
            Op::Upgrade(Upgrade {
                conn: 0x27,
                user: User::Bob,
                json: true,
                ..Upgrade::default()
            }),
            chat(0x30, ChatMessage::Ping),
            Op::Stall { conn: 0 },
            Op::Repeat {
                conn: 0,
                times: 190,
            },
        ],
    ));
    assert_eq!(reached.websockets, 1, "{reached:?}");
}

/// A password upgrade whose check is still running when the server shuts
/// down: when the check comes back, the core must refuse the upgrade
/// (`503`), not open a WebSocket during the shutdown (and then no
/// connection may outlive it).
#[test]
fn regression_upgrade_after_shutdown() {
    let reached = Driver::run_input(&input(
        Switches {
            password_auth: true,
            ..Switches::default()
        },
        vec![Op::Upgrade(Upgrade {
            conn: 0,
            carrier: Carrier::Password,
            ..Upgrade::default()
        })],
    ));
    assert_eq!(reached.websockets, 0, "{reached:?}");
    assert!(reached.statuses.contains(&503), "{reached:?}");
}

/// Prints what each `core_ops` input file means:
/// `CORE_OPS_INPUT=PATH cargo test --lib show_core_ops_input -- --ignored
/// --nocapture` (several paths separated by spaces).
#[test]
#[ignore = "reads the files named by CORE_OPS_INPUT"]
fn show_core_ops_input() {
    let paths = std::env::var("CORE_OPS_INPUT").expect("CORE_OPS_INPUT=PATH");
    for path in paths.split_whitespace() {
        let data = std::fs::read(path).expect("a readable input");
        match decode(&data) {
            Some(input) => println!("{path}: {input:#?}"),
            None => println!("{path}: does not decode (skipped)"),
        }
    }
}

/// Meaningful request heads.
fn head_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
    let up = |target: &str, extra: &str| upgrade_request(target, extra).into_bytes();
    vec![
        ("bearer", up("/ws", &format!("Authorization: Bearer {token}\r\n"))),
        ("path", up(&format!("/ws/{token}"), "")),
        ("query", up(&format!("/ws?room=dev&token={token}"), "Sec-WebSocket-Protocol: chat, wsgate.json\r\n")),
        ("ticket", up("/ws?ticket=abc&room=x", "")),
        (
            "cookie",
            up("/ws", "Cookie: a=1; __Host-wsgate=SID; wsgate=\"q\"\r\nOrigin: http://127.0.0.1:8080\r\n"),
        ),
        ("cookie-foreign", up("/ws", "Cookie: wsgate=SID\r\nOrigin: https://app.example.com:443\r\n")),
        ("basic", up("/ws", "Authorization: Basic YWxpY2U6d29uZGVybGFuZA==\r\n")),
        ("password", up("/ws?username=alice&password=wonder%20land", "")),
        ("two", up("/ws?token=a&%74oken=b", "Authorization: Bearer t\r\n")),
        (
            "token-post",
            form_post("/token", "username=alice&password=wonderland").into_bytes(),
        ),
        ("healthz", b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec()),
        ("head", b"HEAD /metrics HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n".to_vec()),
        (
            "expect",
            b"POST /login HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        ),
        ("version", b"GET /ws HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 8\r\n\r\n".to_vec()),
    ]
}

fn jwt_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const RFC_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let config = JwtConfig::new(vec![Secret::new(JWT_KEY.to_vec(), None).expect("long")]);
    let sign = |claims: Value| match claims {
        Value::Object(map) => config.sign(&map).into_bytes(),
        _ => unreachable!(),
    };
    let exp = JWT_NOW_S + 3600;
    vec![
        ("rfc7515-a1", RFC_TOKEN.as_bytes().to_vec()),
        ("alice", sign(json!({"sub": "alice", "exp": exp}))),
        (
            "expired",
            sign(json!({"sub": "alice", "exp": JWT_NOW_S - 31})),
        ),
        (
            "rooms-role",
            sign(
                json!({"sub": "bob", "exp": exp, "role": "viewer", "rooms": ["lobby", "dev"], "iat": JWT_NOW_S, "nbf": JWT_NOW_S}),
            ),
        ),
        (
            "none",
            b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6MX0.".to_vec(),
        ),
        // Recipes for built tokens: header and claim mutations.
        ("recipe-dup-sub", vec![0, 3, 2, 0, 1, 1, 0, 0, 0x22, 0, 0]),
        ("recipe-alg-none", vec![1, 0, 0, 2, 2, 0, 0x22, 0x40, 0]),
        (
            "recipe-exp-edge",
            vec![0, 2, 0, 1, 0, 98, 0, 2, 0, 0x22, 0x40, 0],
        ),
        ("recipe-rooms", vec![0, 2, 0, 7, 6, 0, 6, 1, 0x22, 0x40, 8]),
        ("recipe-escaped", vec![0, 1, 3, 0, 0x22, 0x40, 0]),
        ("recipe-encoding", vec![0, 0, 0x22, 0x0f, 0]),
    ]
}

fn params_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "login",
            b"username=al%20ice&password=a+b%26c&&grant_type=password".to_vec(),
        ),
        ("duplicate", b"token=a&%74oken=b".to_vec()),
        (
            "secrets",
            b"room=dev&token=x&ticket&password=p=q&username=u".to_vec(),
        ),
        ("utf8", "name=%C3%BC%FF&t%6Fken=%".as_bytes().to_vec()),
        (
            "cookies",
            b"__Host-wsgate\0a=1; __Host-wsgate=ID1;b=\"q\"\n__Host-wsgate=\"ID2\"\n;;=;x".to_vec(),
        ),
    ]
}

fn proxied_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[203, 0, 113, 9, 192, 0, 2, 1, 0x12, 0x67, 1, 187]);
    v2.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let mut v2_tlv = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x27".to_vec();
    v2_tlv.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    v2_tlv.extend_from_slice(&[0; 16]);
    v2_tlv.extend_from_slice(&[0x12, 0x67, 1, 187, 4, 0, 0]);
    vec![
        (
            "v1",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\n\x16\x03\x01".to_vec(),
        ),
        (
            "v1-v6",
            b"PROXY TCP6 ::ffff:203.0.113.9 ::1 4711 443\r\n".to_vec(),
        ),
        ("v1-unknown", b"PROXY UNKNOWN\r\n".to_vec()),
        ("v2", v2),
        ("v2-tlv", v2_tlv),
        ("v2-local", b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec()),
        (
            "xff",
            b"6.6.6.6, 10.0.0.1,203.0.113.9\n10.2.2.2 , [2001:db8::7]:80".to_vec(),
        ),
        (
            "xff-garbage",
            b"unknown, 10.0.0.1\n,\n[::ffff:10.0.0.9]".to_vec(),
        ),
    ]
}

/// Writes the seed corpora (`cargo test --lib write_seed_corpora --
/// --ignored`); the fuzzer's own finds are added with `cargo fuzz cmin`.
/// Not `core_ops`: its seeds are [`CoreInput`] values, and `arbitrary`
/// only decodes bytes, it cannot encode them; its corpus is the fuzzer's
/// own (`cargo fuzz run core_ops` into an empty directory, then `cargo
/// fuzz cmin`), and `seeds_pass` runs its seeds directly.
#[test]
#[ignore = "writes into fuzz/corpus"]
fn write_seed_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let sets = [
        ("request_head", head_seeds()),
        ("jwt", jwt_seeds()),
        ("params", params_seeds()),
        ("proxied", proxied_seeds()),
    ];
    for (target, seeds) in sets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("a corpus directory");
        for (name, data) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).expect("a seed file");
        }
    }
}

#[test]
fn seeds_pass() {
    for (_, data) in head_seeds() {
        request_head(&data);
    }
    for (_, data) in jwt_seeds() {
        jwt(&data);
    }
    for (_, data) in params_seeds() {
        params(&data);
    }
    for (_, data) in proxied_seeds() {
        proxied(&data);
    }
    for (_, input) in core_seeds() {
        Driver::run_input(&input);
    }
}

#[test]
fn rfc7515_example_is_accepted_and_recipes_reach_acceptance() {
    let (_, rfc) = &jwt_seeds()[0];
    let token = std::str::from_utf8(rfc).expect("ASCII");
    assert!(jwt_fixture().config.decode_verified(token, JWT_NOW).is_ok());
    let (token, expected) = build_token(&[]);
    assert_eq!(
        expected,
        Some(Expected {
            decoded: Verdict::Accepted,
            verified: Verdict::Accepted
        })
    );
    assert!(jwt_fixture().config.verify(&token, JWT_NOW).is_ok());
}
