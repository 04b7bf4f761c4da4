//! What a trusted proxy says about the client: the `X-Forwarded-For`
//! header of a request, and the PROXY protocol header (v1 text, v2
//! binary) before a connection's first byte.
//!
//! Read first: the PROXY protocol specification
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>; parsed
//! here by the `ppp` crate) and MDN's `X-Forwarded-For` page (no RFC
//! defines it; RFC 7239's `Forwarded` is not read). Whether a peer is
//! trusted is the caller's question: these functions only read.
//!
//! An address without a port (an `X-Forwarded-For` entry usually has
//! none) comes back with port 0, which no TCP peer has.

use std::net::{IpAddr, SocketAddr};

use ppp::{PartialResult, v1, v2};

use super::Request;

/// The longest PROXY protocol header read (v2 with its TLVs; a v1 header
/// is at most 107 bytes): a longer one is refused as invalid rather than
/// buffered.
pub const MAX_PROXY_HEADER: usize = 2048;

/// How a v1 header starts, and its longest form (the specification's
/// 107 bytes, `\r\n` included).
const V1_PREFIX: &[u8] = b"PROXY ";
const V1_MAX: usize = 107;

/// The client of `req`, which came from `hop`, a trusted proxy: the
/// `X-Forwarded-For` entries (every such header, in order, as one list)
/// are read from the right, each one vouched for by the trusted address
/// to its right, up to the first that is not a trusted proxy. An entry
/// that is not an address (`unknown`, an empty one, garbage) ends the
/// walk at the last trusted address. Without the header, `hop` itself.
pub fn forwarded_client(
    req: &Request,
    hop: SocketAddr,
    trusted: impl Fn(IpAddr) -> bool,
) -> SocketAddr {
    let values: Vec<&[u8]> = req.header_values("x-forwarded-for").collect();
    let mut client = hop;
    for entry in values.iter().rev().flat_map(|v| v.rsplit(|&b| b == b',')) {
        if !trusted(client.ip()) {
            break;
        }
        match parse_entry(entry) {
            Some(addr) => client = addr,
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `192.0.2.7`, `2001:db8::7`,
/// `[2001:db8::7]`, `192.0.2.7:4711` or `[2001:db8::7]:4711`.
fn parse_entry(entry: &[u8]) -> Option<SocketAddr> {
    // why: only HTTP's own white space (RFC 9110 §5.6.1, OWS).
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    let addr = if let Ok(ip) = text.parse::<IpAddr>() {
        SocketAddr::new(ip, 0)
    } else if let Ok(addr) = text.parse::<SocketAddr>() {
        addr
    } else {
        let inner = text.strip_prefix('[')?.strip_suffix(']')?;
        SocketAddr::new(inner.parse::<IpAddr>().ok()?, 0)
    };
    Some(canonical(addr))
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the first bytes of a connection say, read as a PROXY protocol
/// header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A header's beginning: more bytes are needed.
    Incomplete,
    /// A whole header of `len` bytes, and the client's address when it
    /// gives one (`None` for a v2 `LOCAL` header, such as a proxy's own
    /// health check, v1 `UNKNOWN`, and families other than TCP over IPv4
    /// or IPv6).
    Header {
        /// The header's length; the connection's own bytes follow it.
        len: usize,
        /// The client's address and port.
        source: Option<SocketAddr>,
    },
    /// Not a PROXY header (an HTTP request or a TLS handshake from a proxy
    /// that was to send one), a malformed one, or one longer than
    /// [`MAX_PROXY_HEADER`].
    Invalid,
}

/// Reads a PROXY protocol header (v1 or v2) from the start of `bytes`.
pub fn proxy_header(bytes: &[u8]) -> ProxyHeader {
    // why: a v1 header is one line ending in CRLF, read whole: ppp takes
    // some cut lines (one that ends in the space after the source port)
    // for bad ones, and a bare LF for a line's end.
    let v1_line = bytes.len().min(V1_PREFIX.len());
    if bytes[..v1_line] == V1_PREFIX[..v1_line] {
        let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
            return if bytes.len() >= V1_MAX {
                ProxyHeader::Invalid
            } else {
                ProxyHeader::Incomplete
            };
        };
        let line = &bytes[..=end];
        let cr_only_at_end = line.iter().position(|&b| b == b'\r') == Some(end.wrapping_sub(1));
        if line.len() > V1_MAX || !cr_only_at_end {
            return ProxyHeader::Invalid;
        }
        return match v1::Header::try_from(line) {
            Ok(header) if header.header.len() == line.len() => {
                let source = match header.addresses {
                    v1::Addresses::Tcp4(a) => {
                        Some(SocketAddr::from((a.source_address, a.source_port)))
                    }
                    v1::Addresses::Tcp6(a) => {
                        Some(SocketAddr::from((a.source_address, a.source_port)))
                    }
                    v1::Addresses::Unknown => None,
                };
                ProxyHeader::Header {
                    len: line.len(),
                    source: source.map(canonical),
                }
            }
            _ => ProxyHeader::Invalid,
        };
    }
    // Anything else is a v2 header, or not a header.
    let parsed = v2::Header::try_from(bytes);
    if parsed.is_incomplete() {
        // why: a v2 header says its length up front; one that will not
        // fit is refused now rather than waited for.
        let announced = match &parsed {
            Err(v2::ParseError::Partial(_, len)) => 16 + len,
            _ => bytes.len(),
        };
        return if announced > MAX_PROXY_HEADER || bytes.len() >= MAX_PROXY_HEADER {
            ProxyHeader::Invalid
        } else {
            ProxyHeader::Incomplete
        };
    }
    let Ok(header) = parsed else {
        return ProxyHeader::Invalid;
    };
    let source = match (header.command, header.addresses) {
        (v2::Command::Local, _) => None,
        (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
            Some(SocketAddr::from((a.source_address, a.source_port)))
        }
        (v2::Command::Proxy, _) => None,
    };
    if header.len() > MAX_PROXY_HEADER {
        return ProxyHeader::Invalid;
    }
    ProxyHeader::Header {
        len: header.len(),
        source: source.map(canonical),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(xff: &[&str]) -> Request {
        let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for v in xff {
            head.push_str(&format!("X-Forwarded-For: {v}\r\n"));
        }
        head.push_str("\r\n");
        super::super::parse_head(head.as_bytes(), 64, 8192)
            .unwrap()
            .unwrap()
            .0
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Trusted: 10.0.0.0/8 and 127.0.0.1.
    fn trusted(ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => v4.octets()[0] == 10 || v4 == std::net::Ipv4Addr::LOCALHOST,
            IpAddr::V6(_) => false,
        }
    }

    const HOP: &str = "127.0.0.1:40000";

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let cases: &[(&[&str], &str)] = &[
            (&["203.0.113.9"], "203.0.113.9:0"),
            // A client's own (spoofed) entries sit to the left of the one
            // the trusted proxy appended: never reached.
            (&["6.6.6.6, 203.0.113.9"], "203.0.113.9:0"),
            (&["6.6.6.6", "203.0.113.9"], "203.0.113.9:0"),
            // Through two trusted proxies.
            (&["198.51.100.4, 10.1.2.3"], "198.51.100.4:0"),
            (&["198.51.100.4", "10.1.2.3, 10.9.9.9"], "198.51.100.4:0"),
            // Every entry trusted: the leftmost.
            (&["10.1.1.1, 10.2.2.2"], "10.1.1.1:0"),
            // Ports and brackets.
            (&["203.0.113.9:4711"], "203.0.113.9:4711"),
            (&["[2001:db8::7]:4711"], "[2001:db8::7]:4711"),
            (&["[2001:db8::7]"], "[2001:db8::7]:0"),
            (&[" 2001:db8::7 "], "[2001:db8::7]:0"),
            // An IPv4-mapped address is its IPv4 address.
            (&["::ffff:203.0.113.9"], "203.0.113.9:0"),
            // Garbage ends the walk at the last trusted address.
            (&["unknown"], HOP),
            (&["203.0.113.9, "], HOP),
            (&["203.0.113.9, 10.0.0.1, nonsense"], HOP),
            (&["203.0.113.9, nonsense, 10.0.0.1"], "10.0.0.1:0"),
            (&[], HOP),
        ];
        for (values, want) in cases {
            let got = forwarded_client(&request(values), addr(HOP), trusted);
            assert_eq!(got, addr(want), "{values:?}");
        }
    }

    #[test]
    fn an_untrusted_hop_is_the_client_whatever_it_says() {
        let hop = addr("192.0.2.1:5555");
        let got = forwarded_client(&request(&["10.0.0.1", "203.0.113.9"]), hop, trusted);
        assert_eq!(got, hop);
    }

    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut b = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        b.push(0x20 | command);
        b.push(family);
        let len = (addresses.len() + tlvs.len()) as u16;
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(addresses);
        b.extend_from_slice(tlvs);
        b
    }

    #[test]
    fn v1_headers() {
        let line = "PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\n";
        let h = format!("{line}GET / HTTP/1.1\r\n");
        assert_eq!(
            proxy_header(h.as_bytes()),
            ProxyHeader::Header {
                len: line.len(),
                source: Some(addr("203.0.113.9:4711"))
            }
        );
        let line = b"PROXY TCP6 2001:db8::7 2001:db8::1 4711 443\r\n";
        let h = [&line[..], b"\x16\x03\x01"].concat();
        assert_eq!(
            proxy_header(&h),
            ProxyHeader::Header {
                len: line.len(),
                source: Some(addr("[2001:db8::7]:4711"))
            }
        );
        assert_eq!(
            proxy_header(b"PROXY UNKNOWN\r\n"),
            ProxyHeader::Header {
                len: 15,
                source: None
            }
        );
        let whole = b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\r\n";
        for cut in 1..whole.len() {
            assert_eq!(
                proxy_header(&whole[..cut]),
                ProxyHeader::Incomplete,
                "{cut}"
            );
        }
    }

    #[test]
    fn v2_headers() {
        let ipv4 = [203, 0, 113, 9, 192, 0, 2, 1, 0x12, 0x67, 1, 187];
        let h = v2(1, 0x11, &ipv4, &[]);
        assert_eq!(
            proxy_header(&h),
            ProxyHeader::Header {
                len: 28,
                source: Some(addr("203.0.113.9:4711"))
            }
        );
        // TLVs (here a NOOP of 3 bytes) are part of the header and skipped.
        let mut with_rest = v2(1, 0x11, &ipv4, &[4, 0, 3, 1, 2, 3]);
        with_rest.extend_from_slice(b"GET /");
        assert_eq!(
            proxy_header(&with_rest),
            ProxyHeader::Header {
                len: 34,
                source: Some(addr("203.0.113.9:4711"))
            }
        );
        let mut ipv6 = Vec::new();
        ipv6.extend_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        ipv6.extend_from_slice(&[0; 16]);
        ipv6.extend_from_slice(&[0x12, 0x67, 1, 187]);
        assert_eq!(
            proxy_header(&v2(1, 0x21, &ipv6, &[])),
            ProxyHeader::Header {
                len: 52,
                source: Some(addr("[2001:db8::7]:4711"))
            }
        );
        // LOCAL: the proxy speaking for itself.
        assert_eq!(
            proxy_header(&v2(0, 0x00, &[], &[])),
            ProxyHeader::Header {
                len: 16,
                source: None
            }
        );
        for cut in 1..h.len() {
            assert_eq!(proxy_header(&h[..cut]), ProxyHeader::Incomplete, "{cut}");
        }
    }

    #[test]
    fn what_is_not_a_header_is_invalid() {
        for bytes in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"PROXY TCP4 999.0.113.9 192.0.2.1 4711 443\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 04711 443\r\n",
            b"PROXY SCTP 203.0.113.9 192.0.2.1 4711 443\r\n",
            // A v1 line ends in CRLF, and has no other CR.
            b"PROXY UNKNOWN \n\n,,\r\n",
            b"PROXY UNKNOWN\r x\r\n",
            b"PROXY TCP4 203.0.113.9 192.0.2.1 4711 443\n",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
        ] {
            assert_eq!(proxy_header(bytes), ProxyHeader::Invalid, "{bytes:?}");
        }
        // A v1 line that never ends.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(proxy_header(&long), ProxyHeader::Invalid);
        // A v2 header that announces more than the limit is refused before
        // it arrives.
        let mut big = v2(1, 0x11, &[0; 12], &[]);
        big[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(proxy_header(&big), ProxyHeader::Invalid);
    }
}
