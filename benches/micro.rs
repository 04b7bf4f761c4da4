//! Micro-benchmarks of wsgate's hot paths, with a small timing harness of
//! our own (`harness = false`: no benchmark crate to compile).
//!
//! ```text
//! cargo bench --bench micro            # everything, about 15 s
//! cargo bench --bench micro -- fanout  # only names containing "fanout"
//! ```
//!
//! Each benchmark is calibrated to about 0.2 s a sample, sampled 5 times;
//! the median is reported (with the fastest and slowest sample) as time
//! per operation. These are numbers to compare before/after a change on
//! one machine, never assertions.
//!
//! - `jwt/verify`: [`JwtConfig::verify`] of a typical token.
//! - `http/parse_head`, `http/validate`, `http/parse+validate+verify`: the
//!   request head of an upgrade with `?token=`, parsed, checked as an
//!   upgrade, and authenticated.
//! - `core/handshake`: one whole authenticated upgrade through the sans-IO
//!   core (accept, request bytes, `101` drained, close), no sockets.
//! - `auth/pbkdf2_verify`, `auth/argon2id_verify`: one password check
//!   against a PBKDF2-SHA256 hash from `wsgate hash-password` and an
//!   Argon2id hash at OWASP's first parameter pair (m=19456, t=2, p=1),
//!   as the helper thread runs them.
//! - `core/fanout_1000`: one masked client text frame into the core, fanned
//!   out to a room of 1,000 open WebSockets, every queue drained; also with
//!   16 messages per drain, as a loaded server batches them.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use wsgate::auth::jwt::{JwtConfig, Secret};
use wsgate::auth::password::{hash_password, verify_password};
use wsgate::config::Config;
use wsgate::core::{Server, Time};
use wsgate::http::parse_head;
use wsgate::http::upgrade::{UpgradePolicy, validate};

const SECRET: &[u8] = b"a benchmark secret of at least thirty-two bytes";
/// 2026-01-01 in milliseconds: any fixed time works for a virtual clock.
const T0: Time = Time::from_millis(1_767_225_600_000);

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    println!(
        "{:<34} {:>12} {:>22} {:>14}",
        "benchmark", "median", "(min .. max)", "per second"
    );

    let jwt = JwtConfig::new(vec![
        Secret::new(SECRET.to_vec(), None).expect("long enough"),
    ]);
    let token = jwt.issue("alice", "member", T0.as_millis(), 3600);
    let request = upgrade_request(&token, "lobby");

    if run("jwt/verify") {
        bench("jwt/verify", 1, || {
            let claims = jwt
                .verify(black_box(&token), T0.as_millis())
                .expect("valid");
            black_box(claims);
        });
    }
    if run("http/parse_head") {
        bench("http/parse_head", 1, || {
            let parsed = parse_head(black_box(&request), 64, 8192).expect("valid");
            black_box(parsed);
        });
    }
    let policy = UpgradePolicy::new("__Host-wsgate");
    if run("http/validate") {
        let (req, _) = parse_head(&request, 64, 8192)
            .expect("valid")
            .expect("complete");
        bench("http/validate", 1, || {
            let upgrade = validate(black_box(&req), &policy).expect("valid");
            black_box(upgrade);
        });
    }
    if run("http/parse+validate+verify") {
        bench("http/parse+validate+verify", 1, || {
            let (req, _) = parse_head(black_box(&request), 64, 8192)
                .expect("valid")
                .expect("complete");
            let upgrade = validate(&req, &policy).expect("valid");
            black_box(&upgrade);
            let claims = jwt.verify(&token, T0.as_millis()).expect("valid");
            black_box(claims);
        });
    }
    if run("core/handshake") {
        core_handshake(&jwt);
    }
    if run("auth/pbkdf2_verify") {
        let hash = hash_password("correct horse");
        bench("auth/pbkdf2_verify", 1, || {
            assert!(verify_password(black_box(&hash), "correct horse"));
        });
    }
    if run("auth/argon2id_verify") {
        use argon2::password_hash::PasswordHasher;
        let params = argon2::Params::new(19_456, 2, 1, None).expect("valid");
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let hash = argon
            .hash_password_with_salt(b"correct horse", b"saltsaltsaltsalt")
            .expect("hashed")
            .to_string();
        bench("auth/argon2id_verify", 1, || {
            assert!(verify_password(black_box(&hash), "correct horse"));
        });
    }
    if run("core/fanout_1000") {
        fanout(&jwt, 1000, 1);
        fanout(&jwt, 1000, 16);
    }
}

// ----------------------------------------------------------------------
// The harness

/// Times `f` (which does `per_call` operations) and prints one line.
fn bench(name: &str, per_call: u64, mut f: impl FnMut()) {
    // Calibrate: double the batch until one takes at least 20 ms.
    let mut batch: u64 = 1;
    loop {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        if t.elapsed() >= Duration::from_millis(20) || batch >= 1 << 30 {
            break;
        }
        batch *= 2;
    }
    batch *= 10; // about 0.2 s a sample
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / (batch * per_call) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[2];
    println!(
        "{name:<34} {:>12} {:>22} {:>14.0}",
        fmt_ns(median),
        format!("({} .. {})", fmt_ns(samples[0]), fmt_ns(samples[4])),
        1e9 / median
    );
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

// ----------------------------------------------------------------------
// Fixtures

fn upgrade_request(token: &str, room: &str) -> Vec<u8> {
    format!(
        "GET /ws?token={token}&room={room} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
         User-Agent: bench/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client text frame (RFC 6455 §5.3).
fn masked_text(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// A distinct loopback peer per connection, so per-IP limits never bite.
fn peer(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
    SocketAddr::new(IpAddr::V4(ip), 40_000)
}

fn server() -> Server {
    let config = Config::with_secret(SECRET);
    Server::new(config, T0)
}

/// Writes everything queued, as a shell whose sockets take it all would.
/// Returns the bytes "written".
fn drain(server: &mut Server, now: Time) -> usize {
    let mut total = 0;
    while let Some(id) = server.poll_transmit() {
        let n = server.pending(id).len();
        total += n;
        server.handle_written(id, n, now);
    }
    while server.poll_action().is_some() {}
    total
}

fn core_handshake(jwt: &JwtConfig) {
    let mut server = server();
    // A pool of users, so per-user connection limits never bite.
    let requests: Vec<Vec<u8>> = (0..1024)
        .map(|i| {
            upgrade_request(
                &jwt.issue(&format!("u{i}"), "member", T0.as_millis(), 86_400),
                "lobby",
            )
        })
        .collect();
    let mut i = 0usize;
    let mut now = T0;
    bench("core/handshake", 1, || {
        now += Duration::from_millis(1);
        let id = server
            .handle_accept(peer(i % 60_000), now)
            .id()
            .expect("room");
        server.handle_bytes(id, &requests[i % requests.len()], now);
        let written = drain(&mut server, now);
        debug_assert!(written > 100);
        server.handle_closed(id, now);
        drain(&mut server, now);
        i += 1;
    });
}

/// `per_drain` messages go in before the queues are drained.
fn fanout(jwt: &JwtConfig, members: usize, per_drain: usize) {
    let mut server = server();
    let mut now = T0;
    let mut ids = Vec::with_capacity(members);
    for i in 0..members {
        let id = server.handle_accept(peer(i), now).id().expect("room");
        let token = jwt.issue(&format!("u{i}"), "member", T0.as_millis(), 86_400);
        server.handle_bytes(id, &upgrade_request(&token, "lobby"), now);
        ids.push(id);
        drain(&mut server, now);
    }
    let frame = masked_text(b"hello, everyone: a line of chat");
    // Check the set-up: one message reaches every member.
    server.handle_bytes(ids[0], &frame, now);
    let mut reached = 0;
    while let Some(id) = server.poll_transmit() {
        let n = server.pending(id).len();
        reached += 1;
        server.handle_written(id, n, now);
    }
    assert_eq!(reached, members, "every member gets the message");
    let mut turn = 0usize;
    let name = format!("core/fanout_{members} x{per_drain}/drain");
    bench(&name, (members * per_drain) as u64, || {
        for _ in 0..per_drain {
            // why: senders take turns and the clock moves 1 ms a message,
            // so no per-connection message rate is ever exceeded.
            now += Duration::from_millis(1);
            server.handle_bytes(ids[turn % members], &frame, now);
            turn += 1;
        }
        drain(&mut server, now);
    });
    println!("{:<34} (time per delivery; x{} per message)", "", members);
}
