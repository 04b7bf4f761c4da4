//! The corpus replay, the seed inputs of every target, and the checks
//! that the harness reaches deep states.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::auth::jwt::{JwtConfig, Secret};
use crate::testkit::{form_post, upgrade_request};

use super::core_ops::Driver;
use super::jwt::{Expected, JWT_KEY, JWT_NOW, JWT_NOW_S, Verdict, build_token, jwt_fixture};
use super::{core_ops, jwt, params, request_head};

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
fn replay_core_ops() {
    replay("core_ops", core_ops);
}

/// Builds `core_ops` inputs.
#[derive(Default)]
struct Ops(Vec<u8>);

impl Ops {
    fn new(switches: u8) -> Ops {
        Ops(vec![switches])
    }
    fn op(mut self, bytes: &[u8]) -> Ops {
        self.0.extend_from_slice(bytes);
        self
    }
    fn accept(self) -> Ops {
        self.op(&[0])
    }
    fn raw(self, c: u8, bytes: &[u8]) -> Ops {
        self.op(&[1, c, bytes.len() as u8]).op(bytes)
    }
    fn upgrade(self, c: u8, a: u8, b: u8) -> Ops {
        self.op(&[2, c, a, b])
    }
    fn http(self, c: u8, a: u8) -> Ops {
        self.op(&[3, c, a])
    }
    fn frame(self, c: u8, a: u8, payload: &[u8]) -> Ops {
        self.op(&[4, c, a, payload.len() as u8]).op(payload)
    }
    fn chat(self, c: u8, a: u8) -> Ops {
        self.op(&[5, c, a])
    }
    fn repeat(self, c: u8, n: u8) -> Ops {
        self.op(&[6, c, n])
    }
    fn hang_up(self, c: u8) -> Ops {
        self.op(&[7, c])
    }
    fn stall(self, c: u8) -> Ops {
        self.op(&[8, c])
    }
    fn wait_s(self, n: u8) -> Ops {
        self.op(&[10, n])
    }
    fn jump_min(self, n: u8) -> Ops {
        self.op(&[11, n])
    }
    fn passwords(self) -> Ops {
        self.op(&[12, 3])
    }
    fn shutdown(self) -> Ops {
        self.op(&[13])
    }
    fn accept_many(self, n: u8) -> Ops {
        self.op(&[14, n])
    }
    fn short_read(self, c: u8, n: u8) -> Ops {
        self.op(&[15, c, n])
    }
    fn half_close(self, c: u8) -> Ops {
        self.op(&[7, c | 0x80])
    }
}

/// Upgrade argument `a`: carrier (0 bearer … 7 two credentials), user
/// index, room index.
fn up(carrier: u8, user: u8, room: u8) -> u8 {
    carrier | (user << 3) | (room << 5)
}

/// Meaningful `core_ops` inputs: each reaches a state the fuzzer
/// should start from.
fn core_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "chat",
            Ops::new(0)
                .accept()
                .upgrade(0, up(0, 0, 0), 0)
                .accept()
                .upgrade(1, up(1, 1, 0), 0)
                .chat(0, 0)
                .chat(1, 1)
                .chat(0, 12)
                .hang_up(1)
                .0,
        ),
        (
            "json",
            Ops::new(4)
                .accept()
                .upgrade(0, up(2, 0, 1), 1)
                .accept()
                .upgrade(1, up(0, 1, 1), 1)
                .chat(0, 5)
                .chat(1, 6)
                .chat(0, 7)
                .chat(1, 8)
                .0,
        ),
        (
            "login-ticket",
            Ops::new(8)
                .accept()
                .http(0, 2)
                .passwords()
                .http(0, 5)
                .accept()
                .upgrade(1, up(4, 0, 0), 0)
                .chat(1, 0)
                .0,
        ),
        (
            "cookie-logout",
            Ops::new(8)
                .accept()
                .http(0, 3)
                .passwords()
                .accept()
                .upgrade(1, up(3, 1, 0), 0)
                .accept()
                .upgrade(2, up(3, 1, 0), 0x10)
                .http(0, 6)
                .0,
        ),
        (
            "slow-consumer",
            Ops::new(4)
                .accept()
                .upgrade(0, up(0, 0, 0), 0)
                .accept()
                .upgrade(1, up(0, 1, 0), 0)
                .stall(1)
                .chat(0, 8)
                .short_read(1, 100)
                .repeat(0, 8)
                .short_read(1, 3)
                .0,
        ),
        (
            "expiry",
            Ops::new(128)
                .accept()
                .upgrade(0, up(0, 2, 0), 2)
                .wait_s(2)
                .chat(0, 3)
                .wait_s(8)
                .accept()
                .upgrade(1, up(0, 2, 0), 0xc)
                .chat(1, 2)
                .jump_min(5)
                .0,
        ),
        (
            "ping-timeout",
            Ops::new(128)
                .accept()
                .upgrade(0, up(1, 3, 2), 0)
                .stall(0)
                .wait_s(4)
                .0,
        ),
        (
            "password-upgrade-shutdown",
            Ops::new(1)
                .accept()
                .upgrade(0, up(5, 0, 0), 0)
                .accept()
                .upgrade(1, up(6, 0, 1), 0x80)
                .shutdown()
                .passwords()
                .0,
        ),
        (
            "pipelined-dribble",
            Ops::new(0)
                .accept()
                .http(0, 7 | 0x10)
                .http(0, 9 | 0x20)
                .http(0, 10)
                .http(0, 8 | 0x40)
                .raw(0, b"GET /nope HTTP/1.1\r\n\r\n")
                .http(0, 11)
                .0,
        ),
        (
            "limits",
            Ops::new(64)
                .accept_many(12)
                .upgrade(0, up(0, 0, 0), 0)
                .upgrade(1, up(0, 0, 0), 0)
                .upgrade(2, up(7, 0, 0), 0)
                .upgrade(3, up(0, 0, 3), 0)
                .wait_s(1)
                .0,
        ),
        (
            "half-close",
            Ops::new(0)
                .accept()
                .stall(0)
                .http(0, 7)
                .half_close(0)
                .stall(0)
                .accept()
                .upgrade(1, up(0, 0, 0), 0)
                .half_close(1)
                .0,
        ),
        (
            "echo",
            Ops::new(0x34)
                .accept()
                .upgrade(0, up(0, 0, 0), 0)
                .chat(0, 0)
                .chat(0, 15)
                .chat(0, 9)
                .0,
        ),
        (
            "frames",
            Ops::new(4)
                .accept()
                .upgrade(0, up(0, 0, 0), 0)
                .frame(0, 0x81, b"unmasked")
                .accept()
                .upgrade(1, up(0, 1, 0), 0)
                .frame(1, 0x09, b"ping")
                .repeat(1, 40)
                .frame(1, 0x23, b"")
                .0,
        ),
    ]
}

#[test]
fn core_ops_reaches_chat() {
    let reached = Driver::run(&core_seeds()[0].1);
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
fn core_ops_reaches_tickets_cookies_and_limits() {
    let seeds: HashMap<_, _> = core_seeds().into_iter().collect();
    let reached = Driver::run(&seeds["login-ticket"]);
    assert!(reached.statuses.contains(&204) && reached.statuses.contains(&101));
    assert!(
        reached.texts.iter().any(|t| t == "alice: hello"),
        "{reached:?}"
    );
    let reached = Driver::run(&seeds["cookie-logout"]);
    assert!(reached.closes.contains(&4403), "{reached:?}");
    let reached = Driver::run(&seeds["limits"]);
    for status in [503, 429, 400] {
        assert!(reached.statuses.contains(&status), "{status}: {reached:?}");
    }
    let reached = Driver::run(&seeds["expiry"]);
    assert!(reached.closes.contains(&4401), "{reached:?}");
    let reached = Driver::run(&seeds["echo"]);
    assert!(reached.texts.iter().any(|t| t == "hello"), "{reached:?}");
    assert!(reached.closes.contains(&1009), "{reached:?}");
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

/// Writes the seed corpora (`cargo test --lib write_seed_corpora --
/// --ignored`); the fuzzer's own finds are added with `cargo fuzz cmin`.
#[test]
#[ignore = "writes into fuzz/corpus"]
fn write_seed_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let sets = [
        ("request_head", head_seeds()),
        ("jwt", jwt_seeds()),
        ("params", params_seeds()),
        ("core_ops", core_seeds()),
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
    for (_, data) in core_seeds() {
        core_ops(&data);
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
