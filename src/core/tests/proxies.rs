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
    // The proxy's own address is never capped: it speaks for many.
    let (_, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    assert_eq!(r.status, 200);
    // Alice's second connection is one too many, wherever it comes from.
    let (id, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("too many connections from this address"));
    assert!(h.peer(id).dropped || h.peer(id).shut);
    assert_eq!(h.connect_from(ip(ALICE_IP)), None, "and directly");
    // Bob, through the same proxy, is someone else.
    let (_, r) = request_from(&mut h, PROXY, &healthz(&format!("6.6.6.6, {BOB_IP}")));
    assert_eq!(r.status, 200);
    // A request naming nobody counts under the proxy, which is not capped.
    for _ in 0..3 {
        assert_eq!(request_from(&mut h, PROXY, &healthz("")).1.status, 200);
    }
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
fn each_request_may_name_another_client() {
    let mut h = trusting(|_| {});
    let (id, r) = request_from(&mut h, PROXY, &healthz(ALICE_IP));
    assert_eq!(r.status, 200);
    assert_eq!(h.connect_from(ip(ALICE_IP)), None, "alice holds one");
    // The proxy reuses the connection for Bob: it now counts under Bob.
    h.send(id, healthz(BOB_IP).as_bytes());
    assert_eq!(h.response(id).unwrap().status, 200);
    assert!(
        h.connect_from(ip(ALICE_IP)).is_some(),
        "alice's is free again"
    );
    assert_eq!(h.connect_from(ip(BOB_IP)), None, "bob holds one");
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
