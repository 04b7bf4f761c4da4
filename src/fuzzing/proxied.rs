//! The `proxied` target: what a trusted proxy says about the client, read
//! from arbitrary bytes: a PROXY protocol header (v1 or v2) at the start
//! of a connection, and the same bytes as `X-Forwarded-For` values.

use std::net::{IpAddr, SocketAddr};

use crate::http::parse_head;
use crate::http::proxied::{MAX_PROXY_HEADER, ProxyHeader, forwarded_client, proxy_header};

/// Properties of [`proxy_header`]: a header is within the bytes and the
/// limit, reads the same alone, and every shorter prefix of it is
/// `Incomplete` (the shell peeks at a growing prefix and must never
/// refuse a header that is still arriving); `Incomplete` only below the
/// limit. Of [`forwarded_client`]: the client is the hop when the hop is
/// not trusted, else the hop or an address written in the header, and
/// never an untrusted address with an untrusted one to its right.
pub fn proxied(data: &[u8]) {
    match proxy_header(data) {
        ProxyHeader::Header { len, source } => {
            assert!(len <= data.len() && len <= MAX_PROXY_HEADER, "{len}");
            assert!(len >= 8, "a header of {len} bytes");
            assert_eq!(
                proxy_header(&data[..len]),
                ProxyHeader::Header { len, source },
                "the header alone reads the same"
            );
            for cut in 1..len {
                assert_eq!(
                    proxy_header(&data[..cut]),
                    ProxyHeader::Incomplete,
                    "a prefix of {cut} of a {len}-byte header"
                );
            }
            if let Some(source) = source {
                assert!(source.ip().to_canonical() == source.ip(), "{source}");
            }
        }
        ProxyHeader::Incomplete => assert!(data.len() < MAX_PROXY_HEADER),
        ProxyHeader::Invalid => {}
    }

    // The bytes as X-Forwarded-For values, one header per line.
    if data.contains(&b'\r') || data.contains(&0) {
        return;
    }
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let mut head = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for v in &values {
        head.extend_from_slice(b"X-Forwarded-For: ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let Ok(Some((req, _))) = parse_head(&head, 64, 16 * 1024) else {
        return;
    };
    // Trusted: 10.0.0.0/8.
    let trusted = |ip: IpAddr| matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 10);
    for hop in ["10.1.2.3:4000", "192.0.2.1:4000"] {
        let hop: SocketAddr = hop.parse().expect("an address");
        let client = forwarded_client(&req, hop, trusted);
        if !trusted(hop.ip()) {
            assert_eq!(client, hop, "an untrusted hop's header is nobody's word");
            continue;
        }
        // Else the hop, or an address written in the header.
        let text: String = (req.header_values("x-forwarded-for"))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            client == hop || text.split(',').any(|e| entry(e) == Some(client)),
            "{client} is not in {text:?}"
        );
    }
}

/// An entry as the README says they are written: `192.0.2.7`,
/// `2001:db8::7`, `[2001:db8::7]`, either with a port; IPv4-mapped read
/// as IPv4; port 0 when none.
fn entry(text: &str) -> Option<SocketAddr> {
    let text = text.trim_matches(|c: char| c == ' ' || c == '\t');
    let addr = match text.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, 0),
        Err(_) => match text.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                let inner = text.strip_prefix('[')?.strip_suffix(']')?;
                SocketAddr::new(inner.parse().ok()?, 0)
            }
        },
    };
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}
