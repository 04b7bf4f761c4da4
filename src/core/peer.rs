//! Who a connection is from: [`Peer`], the client's address as far as
//! the server knows it, and [`ViaProxy`], what is kept of a connection
//! that came through a trusted proxy (`Config::trusted_proxies`).

use std::fmt;
use std::net::SocketAddr;

use super::limits::AddrKey;

/// A connection's client: the TCP peer, or, through a trusted proxy, the
/// client the proxy named. Every per-address limit counts under its
/// [`AddrKey`] and every log line shows it. The port is 0 when the proxy
/// did not say it (`X-Forwarded-For`), and then not shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The address (and port, or 0).
    pub addr: SocketAddr,
    /// It is a trusted proxy (`Config::trusted_proxies`): its own
    /// connections count under [`AddrKey::host`], and no connection limit
    /// applies to it.
    pub trusted: bool,
}

impl Peer {
    /// `addr`, a trusted proxy or not.
    pub fn new(addr: SocketAddr, trusted: bool) -> Peer {
        Peer { addr, trusted }
    }

    /// The key its per-address limits count under.
    pub fn key(self) -> AddrKey {
        match self.trusted {
            true => AddrKey::host(self.addr.ip()),
            false => AddrKey::of(self.addr.ip()),
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr.port() {
            0 => write!(f, "{}", self.addr.ip()),
            _ => write!(f, "{}", self.addr),
        }
    }
}

/// A connection from a trusted proxy: the proxy's address, and where the
/// client's address comes from. Boxed in the connection (most have none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViaProxy {
    /// The proxy: the socket's own peer.
    pub proxy: SocketAddr,
    /// Whom `X-Forwarded-For` is read from, if trusted: the client of the
    /// PROXY protocol header when there was one, else `proxy`. `None`
    /// after a PROXY header that named no address (`LOCAL`, `UNKNOWN`, a
    /// Unix socket): the bytes that follow may be a client's own, so no
    /// header of theirs is believed.
    pub hop: Option<SocketAddr>,
    /// A PROXY protocol header is still to come (`Config::proxy_protocol`):
    /// nothing else may be read before it.
    pub awaits_header: bool,
}

impl ViaProxy {
    /// Whom the connection counts under between requests: the client the
    /// PROXY header named, else the proxy.
    pub fn base(&self) -> SocketAddr {
        self.hop.unwrap_or(self.proxy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_shown_only_when_known() {
        let shown = |s: &str| Peer::new(s.parse().unwrap(), false).to_string();
        assert_eq!(shown("203.0.113.9:4711"), "203.0.113.9:4711");
        assert_eq!(shown("203.0.113.9:0"), "203.0.113.9");
        assert_eq!(shown("[2001:db8::7]:4711"), "[2001:db8::7]:4711");
        assert_eq!(shown("[2001:db8::7]:0"), "2001:db8::7");
    }
}
