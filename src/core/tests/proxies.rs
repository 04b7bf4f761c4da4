//! Trusted proxies: what `X-Forwarded-For` and the PROXY protocol change
//! (the address every per-address limit and log line sees) and what they
//! do not (anything from a peer that is not trusted).

use std::net::IpAddr;

use crate::config::{Config, IpNet, Rate};
use crate::core::ConnId;
use crate::testkit::{
    Harness, HttpResponse, capture_logs, stop_capturing_logs, take_log_lines, upgrade_request,
};

const PROXY: &str = "10.0.0.1";
const ALICE_IP: &str = "203.0.113.9";
const BOB_IP: &str = "198.51.100.4";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `10.0.0.1` is trusted; at most one connection per client address.
fn trusting(adjust: impl FnOnce(&mut Config)) -> Harness {
    Harness::new(|c| {
        c.trusted_proxies = vec![IpNet::from(ip(PROXY))];
        c.limits.max_conns_per_ip = Some(1);
        adjust(c);
    })
}

fn healthz(xff: &str) -> String {
    let xff = match xff {
        "" => String::new(),
        list => format!("X-Forwarded-For: {list}\r\n"),
    };
    format!("GET /healthz HTTP/1.1\r\nHost: chat.test\r\n{xff}\r\n")
}

/// A keep-alive request on a new connection from `from`: the connection
/// stays open (and counted) after its answer.
fn request_from(h: &mut Harness, from: &str, request: &str) -> (ConnId, HttpResponse) {
    let id = h.connect_from(ip(from)).expect("accepted");
    h.send(id, request.as_bytes());
    (id, h.response(id).expect("a response"))
}

#[test]
fn a_trusted_proxy_passes_the_address_limits_and_its_clients_meet_them() {
    let mut h = trusting(|_| {});
    // Alice's WebSocket through the proxy is hers; the proxy's own
    // address is never capped (it speaks for many).
    let alice = upgrade_via(&mut h, ALICE_IP);
    assert_eq!(
        h.texts(alice),
        ["System: alice joined the chat"],
        "an open WebSocket"
    );
    // Her next request is one connection too many, wherever it comes from.
    let (id, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("too many connections from this address"));
    assert!(h.peer(id).dropped || h.peer(id).shut);
    assert_eq!(h.connect_from(ip(ALICE_IP)), None, "and directly");
    // Bob, through the same proxy, is someone else, whatever he claims.
    let (_, r) = request_from(&mut h, PROXY, &healthz(&format!("{ALICE_IP}, {BOB_IP}")));
    assert_eq!(r.status, 200);
    // A request naming nobody counts under the proxy, which is not capped.
    for _ in 0..3 {
        assert_eq!(request_from(&mut h, PROXY, &healthz("")).1.status, 200);
    }
}

/// A WebSocket for alice through the proxy, naming `client`.
fn upgrade_via(h: &mut Harness, client: &str) -> ConnId {
    let token = h.token("alice", 3600);
    let extra = format!("Authorization: Bearer {token}\r\nX-Forwarded-For: {client}\r\n");
    let id = h.connect_from(ip(PROXY)).unwrap();
    h.send(id, upgrade_request("/ws", &extra).as_bytes());
    assert_eq!(h.response(id).unwrap().status, 101);
    h.make_client(id);
    id
}

#[test]
fn forwarded_for_from_anyone_else_changes_nothing() {
    for trusted in [vec![], vec![IpNet::from(ip(PROXY))]] {
        let mut h = Harness::new(|c| {
            c.trusted_proxies = trusted;
            c.limits.max_conns_per_ip = Some(1);
        });
        // 192.0.2.1 is not trusted: its header names nobody.
        let (_, r) = request_from(&mut h, "192.0.2.1", &healthz(ALICE_IP));
        assert_eq!(r.status, 200);
        assert_eq!(
            h.connect_from(ip("192.0.2.1")),
            None,
            "its own address is capped"
        );
        // Alice's address holds nothing.
        assert!(h.connect_from(ip(ALICE_IP)).is_some());
    }
}

#[test]
fn each_request_counts_under_the_client_it_names() {
    let mut h = trusting(|_| {});
    // A connection the proxy keeps (its pool): a request for Alice...
    let (pooled, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    assert_eq!(r.status, 200);
    // ...is Alice's only while it is answered: idle, it is the proxy's.
    let _alice = h
        .connect_from(ip(ALICE_IP))
        .expect("alice's one connection");
    // The next request for Alice on it is one too many; Bob's is not.
    let (other, r) = request_from(&mut h, PROXY, &healthz(BOB_IP));
    assert_eq!(r.status, 200);
    h.send(pooled, healthz(ALICE_IP).as_bytes());
    assert_eq!(h.response(pooled).unwrap().status, 429);
    h.send(other, healthz(BOB_IP).as_bytes());
    assert_eq!(h.response(other).unwrap().status, 200);
    h.server.check_consistency().unwrap();
}

#[test]
fn the_client_is_who_the_logs_and_the_upgrade_rate_see() {
    let mut h = trusting(|c| {
        c.limits.max_conns_per_ip = None;
        c.limits.upgrade_rate = Some(Rate::new(1.0 / 60.0, 2.0));
    });
    let upgrade = |h: &mut Harness, client: &str| {
        let token = h.token("alice", 3600);
        let extra = format!("Authorization: Bearer {token}\r\nX-Forwarded-For: {client}\r\n");
        let id = h.connect_from(ip(PROXY)).unwrap();
        h.send(id, upgrade_request("/ws", &extra).as_bytes());
        h.response(id).unwrap().status
    };
    let logging = capture_logs();
    assert_eq!(upgrade(&mut h, ALICE_IP), 101);
    let lines = take_log_lines();
    stop_capturing_logs();
    if logging {
        let open = lines.iter().find(|l| l.starts_with("open ")).unwrap();
        assert!(
            open.contains(&format!("peer={ALICE_IP} via={PROXY}:")),
            "{open}"
        );
    }
    assert_eq!(upgrade(&mut h, ALICE_IP), 101);
    assert_eq!(upgrade(&mut h, ALICE_IP), 429, "alice's burst is spent");
    assert_eq!(upgrade(&mut h, BOB_IP), 101, "bob's is not");
}

fn proxy_v1(client: &str, port: u16) -> String {
    format!("PROXY TCP4 {client} 10.0.0.2 {port} 443\r\n")
}

fn proxy_protocol() -> Harness {
    trusting(|c| c.proxy_protocol = true)
}

#[test]
fn a_proxy_protocol_header_names_the_client_before_the_first_request() {
    let mut h = proxy_protocol();
    let id = h.connect_from(ip(PROXY)).unwrap();
    // The header may come in pieces.
    let header = proxy_v1(ALICE_IP, 4711);
    let (first, rest) = header.split_at(20);
    h.send(id, first.as_bytes());
    assert!(h.server.awaits_proxy_header(id));
    assert!(h.response(id).is_none());
    h.send(id, format!("{rest}{}", healthz("")).as_bytes());
    assert!(!h.server.awaits_proxy_header(id));
    assert_eq!(h.response(id).unwrap().status, 200);
    assert_eq!(h.connect_from(ip(ALICE_IP)), None, "alice holds one");
    // Alice's second connection through the proxy is refused at once.
    let id = h.connect_from(ip(PROXY)).unwrap();
    h.send(id, proxy_v1(ALICE_IP, 4712).as_bytes());
    let r = h.response(id).unwrap();
    assert_eq!(r.status, 429, "{}", r.body);
}

#[test]
fn a_local_header_leaves_the_proxy_its_own_address() {
    let mut h = proxy_protocol();
    // v2 LOCAL: the proxy's own health check.
    let mut local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    local.extend_from_slice(healthz("").as_bytes());
    for _ in 0..3 {
        let id = h.connect_from(ip(PROXY)).unwrap();
        h.send(id, &local);
        assert_eq!(h.response(id).unwrap().status, 200);
    }
}

#[test]
fn without_its_header_a_proxys_connection_is_refused() {
    let mut h = proxy_protocol();
    let logging = capture_logs();
    let (id, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    let lines = take_log_lines();
    stop_capturing_logs();
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("expected a PROXY protocol header"),
        "{}",
        r.body
    );
    assert!(h.peer(id).dropped || h.peer(id).shut);
    if logging {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("refused peer={PROXY}:"))
                    && l.contains("expected a PROXY protocol header")),
            "{lines:?}"
        );
    }
}

#[test]
fn no_one_else_may_send_a_proxy_header() {
    let mut h = proxy_protocol();
    // From an untrusted peer, a PROXY line is a malformed request.
    let request = format!("{}{}", proxy_v1(ALICE_IP, 4711), healthz(""));
    let (_, r) = request_from(&mut h, "192.0.2.1", &request);
    assert_eq!(r.status, 400);
    assert!(
        h.connect_from(ip(ALICE_IP)).is_some(),
        "alice holds nothing"
    );
}

#[test]
fn forwarded_for_is_read_only_from_a_trusted_proxy_header_source() {
    // An L4 proxy (trusted) passes a client's bytes after its PROXY
    // header: the client's own X-Forwarded-For is not believed.
    let mut h = proxy_protocol();
    let request = format!("{}{}", proxy_v1(ALICE_IP, 4711), healthz(BOB_IP));
    let (_, r) = request_from(&mut h, PROXY, &request);
    assert_eq!(r.status, 200);
    assert_eq!(h.connect_from(ip(ALICE_IP)), None, "it counts under alice");
    assert!(h.connect_from(ip(BOB_IP)).is_some(), "not under bob");
    // Unless the header names another trusted proxy, which vouches for
    // the next hop.
    let request = format!("{}{}", proxy_v1("10.0.0.1", 4711), healthz(BOB_IP));
    let (_, r) = request_from(&mut h, PROXY, &request);
    assert_eq!(r.status, 429, "bob already holds one");
}

/// Sends raw bytes on a new connection from `from`; its response, if any.
fn raw_from(h: &mut Harness, from: &str, bytes: &[u8]) -> (ConnId, Option<HttpResponse>) {
    let id = h.connect_from(ip(from)).expect("accepted");
    h.send(id, bytes);
    (id, h.response(id))
}

fn v2_header(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
    let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    b.push(0x20 | command);
    b.push(family);
    b.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    b.extend_from_slice(addresses);
    b
}

/// An L4 proxy relays the client's bytes verbatim after its
/// PROXY header. When that header names no address (v1 UNKNOWN, v2 LOCAL,
/// v2 PROXY over AF_UNIX or AF_UNSPEC), the connection keeps the proxy's
/// address as its `hop`, so the *client's own* X-Forwarded-For is
/// believed: the client picks the address its limits count under (and
/// can frame anyone, e.g. fill Bob's per-address slots or burn his
/// failed-login bucket).
#[test]
fn a_header_without_an_address_does_not_make_the_clients_xff_believed() {
    let unix = {
        let mut a = vec![0u8; 216];
        a[..8].copy_from_slice(b"/tmp/src");
        a[108..116].copy_from_slice(b"/tmp/dst");
        a
    };
    let headers: Vec<(&str, Vec<u8>)> = vec![
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec()),
        ("v2 LOCAL", v2_header(0, 0x00, &[])),
        ("v2 PROXY AF_UNIX", v2_header(1, 0x31, &unix)),
        ("v2 PROXY AF_UNSPEC", v2_header(1, 0x00, &[])),
    ];
    let mut framed = Vec::new();
    for (name, header) in headers {
        let mut h = proxy_protocol(); // max_conns_per_ip = 1
        let mut bytes = header;
        bytes.extend_from_slice(healthz(BOB_IP).as_bytes()); // written by the client
        let (_, r) = raw_from(&mut h, PROXY, &bytes);
        assert_eq!(r.unwrap().status, 200, "{name}");
        h.server.check_consistency().unwrap();
        if h.connect_from(ip(BOB_IP)).is_none() {
            framed.push(name);
        }
    }
    assert!(
        framed.is_empty(),
        "the client's own X-Forwarded-For was believed (Bob holds a slot) after: {framed:?}"
    );
}

/// A trusted proxy is exempt *by IP*, but what it holds is counted
/// under its AddrKey, which for IPv6 is the whole /64. Every other host in
/// the proxy's /64 (e.g. every instance of an AWS VPC subnet, which is a
/// /64) is then checked against the proxy's own un-named connections, and
/// is refused as soon as the proxy has `--max-unauth-conns-per-ip`
/// connections in their first request (or idling under it).
#[test]
fn a_trusted_ipv6_proxys_connections_do_not_count_against_its_64_neighbours() {
    let mut h = Harness::new(|c| {
        c.trusted_proxies = vec![IpNet::from(ip("2001:db8::1"))];
        c.limits.max_unauth_per_ip = Some(2);
    });
    // Two connections from the proxy, their requests not yet in.
    assert!(h.connect_from(ip("2001:db8::1")).is_some());
    assert!(h.connect_from(ip("2001:db8::1")).is_some());
    assert!(
        h.connect_from(ip("2001:db8::1")).is_some(),
        "the proxy is exempt"
    );
    // A different, untrusted host in the same /64, with no connection yet.
    assert!(
        h.connect_from(ip("2001:db8::99")).is_some(),
        "refused: {:?}",
        h.refusal().map(|r| r.body)
    );
}

/// On a connection a trusted proxy reuses, a
/// request that is refused before `take_forwarded` runs (bad head, 431,
/// bad Host) is logged under the *previous* request's client.
#[test]
fn a_refusal_before_xff_is_not_logged_under_the_previous_client() {
    let mut h = trusting(|_| {});
    let (id, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    assert_eq!(r.status, 200);
    let logging = capture_logs();
    // Bob's request through the same upstream connection, two Hosts: 400,
    // before anyone is named: it is the proxy's.
    let bad =
        format!("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Forwarded-For: {BOB_IP}\r\n\r\n");
    h.send(id, bad.as_bytes());
    assert_eq!(h.response(id).unwrap().status, 400);
    let lines = take_log_lines();
    stop_capturing_logs();
    if logging {
        let refused = lines.iter().find(|l| l.starts_with("refused ")).unwrap();
        assert!(
            refused.starts_with(&format!("refused peer={PROXY}:")),
            "Bob's bad request is blamed on Alice: {refused}"
        );
    }
}

/// Bounded, not a stall: a proxy that sends part of a header and then
/// its FIN is held until the request-head deadline (the EOF is not seen
/// while the peeked bytes stay in the kernel).
#[test]
fn eof_inside_a_header_is_held_until_the_deadline() {
    let mut h = proxy_protocol();
    let id = h.connect_from(ip(PROXY)).unwrap();
    h.send(id, b"PROXY TCP4 203.0.113.9");
    h.half_close(id);
    assert!(
        !h.peer(id).dropped,
        "EOF not seen while the header is awaited"
    );
    assert_eq!(h.server.phase_name(id), Some("http"));
    h.advance(9_999);
    assert!(!h.peer(id).dropped);
    h.advance(2);
    assert!(h.peer(id).dropped, "the request-head deadline ends it");
    h.server.check_consistency().unwrap();
}

/// A header that arrives after shutdown began (the connection already
/// lingers, its write half shut) is not read: nothing is written after
/// the shutdown.
#[test]
fn a_header_after_shutdown_began_writes_nothing_after_the_shutdown() {
    let mut h = proxy_protocol();
    // Alice holds her one slot.
    let (_, r) = raw_from(
        &mut h,
        PROXY,
        format!("{}{}", proxy_v1(ALICE_IP, 1), healthz("")).as_bytes(),
    );
    assert_eq!(r.unwrap().status, 200);
    let id = h.connect_from(ip(PROXY)).unwrap();
    h.server.handle_shutdown(h.now);
    h.pump();
    assert!(h.peer(id).shut, "lingering");
    h.peer(id).received.clear();
    h.send(id, proxy_v1(ALICE_IP, 2).as_bytes());
    h.server.check_consistency().unwrap();
    assert!(
        h.peer(id).received.is_empty(),
        "bytes queued after the write half was shut: {:?}",
        String::from_utf8_lossy(&h.peer(id).received)
    );
}

/// Accounting across rekeys, keep-alive client switches, a password check
/// in flight and refusals: the registry's invariants hold, and every
/// address is back to zero at the end.
#[test]
fn accounting_survives_rekeys_and_password_checks() {
    let mut h = trusting(|c| {
        c.limits.max_conns_per_ip = Some(2);
        c.limits.max_unauth_per_ip = Some(2);
    });
    h.hold_passwords = true;
    let id = h.connect_from(ip(PROXY)).unwrap();
    let login = |xff: &str| {
        let body = "username=alice&password=wrong";
        format!(
            "POST /token HTTP/1.1\r\nHost: chat.test\r\nX-Forwarded-For: {xff}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // A check in flight for Alice, with Bob's request pipelined behind it.
    h.send(
        id,
        format!("{}{}", login(ALICE_IP), healthz(BOB_IP)).as_bytes(),
    );
    assert_eq!(h.server.phase_name(id), Some("await-password"));
    h.server.check_consistency().unwrap();
    let job = h.held.pop().unwrap();
    h.server.handle_password_checked(job.job, None, h.now);
    h.pump();
    h.server.check_consistency().unwrap();
    let r1 = h.response(id).unwrap();
    let r2 = h.response(id).unwrap();
    assert_eq!((r1.status, r2.status), (401, 200));
    // Answered, the connection is the proxy's again: Alice and Bob free.
    assert!(h.connect_from(ip(ALICE_IP)).is_some());
    // Bob fills up; a connection naming Bob is refused, still consistent.
    assert!(h.connect_from(ip(BOB_IP)).is_some());
    assert!(h.connect_from(ip(BOB_IP)).is_some());
    let (id2, r) = request_from(&mut h, PROXY, &healthz(BOB_IP));
    assert_eq!(r.status, 429);
    h.server.check_consistency().unwrap();
    h.advance(60_000);
    h.server.check_consistency().unwrap();
    // Every address is back to nothing once the connections are gone.
    let _ = id2;
}

/// `--trusted-proxy ::ffff:127.0.0.1` (the form a
/// dual-stack listener shows for IPv4 peers) is accepted but matches no
/// peer: `is_trusted_proxy` canonicalises the peer to IPv4, never the
/// network.
#[test]
fn a_mapped_trusted_proxy_matches_its_ipv4_peer() {
    let c = Config {
        trusted_proxies: vec![crate::config::parse_network("::ffff:127.0.0.1").unwrap()],
        ..Config::default()
    };
    assert!(
        c.is_trusted_proxy(ip("127.0.0.1")) || c.is_trusted_proxy(ip("::ffff:127.0.0.1")),
        "accepted at start-up, but trusts nobody"
    );
}
