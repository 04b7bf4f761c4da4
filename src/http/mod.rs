//! HTTP/1.1 on the listening port: request heads, routing helpers, responses.
//!
//! Read first: RFC 9112 (HTTP/1.1 message syntax), RFC 6265 §5.4 (the
//! `Cookie` header), RFC 6455 §4.2 (the opening handshake). Parsing is
//! httparse's; this module turns its borrowed result into a small owned
//! [`Request`] and answers with a `Response`.
//!
//! Contract for untrusted input: once [`parse_head`] returns `Ok`, nothing
//! in this module panics on the request, whatever its contents.

pub(crate) mod cors;
pub(crate) mod params;
pub(crate) mod proxied;
pub(crate) mod response;
pub(crate) mod ui;
pub mod upgrade;

pub(crate) use response::Response;

use std::fmt;

/// Why a request head was refused; each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// The head is not HTTP/1.x syntax.
    Malformed,
    /// More headers than the limit.
    TooManyHeaders,
    /// The head is larger than the limit.
    TooLarge,
}

impl HeadError {
    /// The HTTP status that answers this error.
    pub fn status(self) -> u16 {
        match self {
            HeadError::Malformed => 400,
            HeadError::TooManyHeaders | HeadError::TooLarge => 431,
        }
    }
}

impl HeadError {
    /// A short lowercase phrase.
    pub fn phrase(self) -> &'static str {
        match self {
            HeadError::Malformed => "malformed request",
            HeadError::TooManyHeaders => "too many headers",
            HeadError::TooLarge => "request head too large",
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

/// The request methods the server distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `HEAD`
    Head,
    /// `OPTIONS` (CORS preflights)
    Options,
    /// Anything else.
    Other,
}

/// An owned, parsed request head.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query (still percent-encoded).
    pub path: String,
    /// The query string without the `?`, when there is one.
    pub query: Option<String>,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Headers in order; names lowercased, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    /// Values of every header named `name` (lowercase), in order.
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The single value of header `name`: `Ok(None)` when absent,
    /// `Err(())` when it is repeated or not valid UTF-8.
    #[allow(clippy::result_unit_err)]
    pub fn header<'a>(&'a self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut values = self.header_values(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(());
        }
        match first {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(|s| Some(s.trim()))
                .map_err(|_| ()),
        }
    }

    /// True when some header `name` holds `token` in its comma-separated
    /// list, compared without regard to ASCII case (`Connection`, `Upgrade`).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.header_values(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// Whether the connection may carry another request after this one's
    /// response (HTTP/1.1 default yes, HTTP/1.0 default no).
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            false
        } else {
            self.minor_version >= 1 || self.has_token("connection", "keep-alive")
        }
    }

    /// The body length the request announces. A body sent with
    /// `Transfer-Encoding` is not supported (answered `411`), and repeated or
    /// unparsable `Content-Length` values are a `400` (RFC 9112 §6.3).
    pub fn body_length(&self) -> Result<usize, BodyLengthError> {
        if self.header_values("transfer-encoding").next().is_some() {
            return Err(BodyLengthError::TransferEncoding);
        }
        match self.header("content-length") {
            Err(()) => Err(BodyLengthError::Invalid),
            Ok(None) => Ok(0),
            Ok(Some(v))
                if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) =>
            {
                v.parse().map_err(|_| BodyLengthError::Invalid)
            }
            Ok(Some(_)) => Err(BodyLengthError::Invalid),
        }
    }

    /// Checks the `Host` header as RFC 9112 §3.2 requires of a server: a
    /// `400` when an HTTP/1.1 request has none, when any request has more
    /// than one, or when its value is not `uri-host [ ":" port ]` (see
    /// [`parse_host`] for the exact rules, after trimming SP/HTAB). HTTP/1.0
    /// requests may omit it.
    ///
    /// An empty value is refused: RFC 9112 allows it only when the target
    /// URI has no authority, and every target this server accepts is
    /// origin-form, whose URI takes its authority from `Host`.
    pub fn check_host(&self) -> Result<(), HostError> {
        let mut values = self.header_values("host");
        let first = values.next();
        if values.next().is_some() {
            return Err(HostError::Repeated);
        }
        match first {
            None if self.minor_version >= 1 => Err(HostError::Missing),
            None => Ok(()),
            Some(v) => match parse_host(trim_ows(v)) {
                Some(_) => Ok(()),
                None => Err(HostError::Invalid),
            },
        }
    }

    /// The path and query with credential-bearing parts replaced by
    /// `[redacted]`, for logs.
    pub fn redacted_target(&self) -> String {
        let mut out = if self.path.starts_with("/ws/") {
            "/ws/[redacted]".to_string()
        } else {
            self.path.clone()
        };
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(&params::redact_query(q));
        }
        out
    }
}

/// Why a request's body length could not be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyLengthError {
    /// `Transfer-Encoding` was sent; only `Content-Length` bodies are read.
    TransferEncoding,
    /// `Content-Length` repeated or not a number.
    Invalid,
}

/// Why a request's `Host` header was refused; each is a `400`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// An HTTP/1.1 request without `Host`.
    Missing,
    /// More than one `Host` header line.
    Repeated,
    /// A `Host` value that is not `uri-host [ ":" port ]`.
    Invalid,
}

impl HostError {
    /// The HTTP status that answers this error.
    pub fn status(self) -> u16 {
        400
    }

    /// A short lowercase phrase.
    pub fn phrase(self) -> &'static str {
        match self {
            HostError::Missing => "missing Host header",
            HostError::Repeated => "more than one Host header",
            HostError::Invalid => "invalid Host header",
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

/// Splits an authority without user info, `uri-host [ ":" port ]`
/// (RFC 3986 §3.2.2–3.2.3), into its host, as sent, and its port. `None`
/// when `text` does not match exactly (no white space is trimmed).
///
/// - `IP-literal`: `[` IPv6 address `]` (checked by [`std::net::Ipv6Addr`],
///   so no zone id: neither `%eth0` nor RFC 6874's `%25eth0`) or
///   `[` IPvFuture `]` (`v` HEXDIG+ `.` ( unreserved / sub-delims / `:` )+).
/// - Otherwise a non-empty `reg-name`: unreserved, sub-delims and `%` HEXDIG
///   HEXDIG. Every `IPv4address` is also a `reg-name`, so dotted quads need no
///   rule of their own (and an out-of-range one such as `999.1.1.1` passes
///   as a name, as RFC 3986 §3.2.2 reads it).
/// - The port, when the `:` is there, is 1 to 5 digits worth at most 65535.
///   RFC 3986 also allows an empty port (`host:`); it is refused here, as is
///   an empty host (`:80`, or nothing at all).
///
/// Bytes outside ASCII (UTF-8 or obs-text) are never valid.
pub fn parse_host(text: &[u8]) -> Option<(&str, Option<u16>)> {
    let (host, rest) = if text.first() == Some(&b'[') {
        let close = text.iter().position(|&b| b == b']')?;
        let inner = &text[1..close];
        if !(is_ipv6(inner) || is_ipv_future(inner)) {
            return None;
        }
        text.split_at(close + 1)
    } else {
        let end = text.iter().position(|&b| b == b':').unwrap_or(text.len());
        let (host, rest) = text.split_at(end);
        if !is_reg_name(host) {
            return None;
        }
        (host, rest)
    };
    let port = match rest {
        [] => None,
        [b':', digits @ ..]
            if (1..=5).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit) =>
        {
            // why: at most 5 ASCII digits, so it is UTF-8 and fits a u32.
            let value: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            Some(u16::try_from(value).ok()?)
        }
        _ => return None,
    };
    // why: every byte was checked to be ASCII above.
    Some((std::str::from_utf8(host).ok()?, port))
}

/// RFC 3986 `unreserved`.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 `sub-delims`.
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// A non-empty RFC 3986 `reg-name`.
fn is_reg_name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'%' => {
                let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            }
            // why: RFC 3986 allows `,`, but no real host holds one, and a
            // comma is what a proxy joining two Host lines would make.
            b',' => return false,
            b if is_unreserved(b) || is_sub_delim(b) => i += 1,
            _ => return false,
        }
    }
    !host.is_empty()
}

/// The inside of `[...]` is an IPv6 address without a zone id.
fn is_ipv6(inner: &[u8]) -> bool {
    // why: `Ipv6Addr` has no zone ids today; refusing `%` keeps it so if
    // the standard library ever learns them.
    !inner.contains(&b'%')
        && std::str::from_utf8(inner).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// The inside of `[...]` is an RFC 3986 `IPvFuture`.
fn is_ipv_future(inner: &[u8]) -> bool {
    let Some(rest) = inner
        .strip_prefix(b"v")
        .or_else(|| inner.strip_prefix(b"V"))
    else {
        return false;
    };
    let Some(dot) = rest.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
    !version.is_empty()
        && version.iter().all(u8::is_ascii_hexdigit)
        && !tail.is_empty()
        && tail
            .iter()
            .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
}

/// A field value without leading or trailing optional white space (SP and
/// HTAB, RFC 9110 §5.5).
fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Header slots [`parse_head`] keeps on the stack (the default
/// `--max-headers`); a larger limit takes them from the heap.
const STACK_HEADERS: usize = 64;

/// Parses a request head from the start of `buf`.
///
/// `Ok(None)` means the head is not complete yet (not an error);
/// `Ok(Some((request, len)))` gives the request and the head's length, so
/// that bytes after it (a body, or the first WebSocket frames) are kept.
pub fn parse_head(
    buf: &[u8],
    max_headers: usize,
    max_head_bytes: usize,
) -> Result<Option<(Request, usize)>, HeadError> {
    // why: a caller-owned header array, sized by the limit; httparse
    // reports `TooManyHeaders` when it overflows. On the stack up to the
    // default limit: a 2 KiB allocation per request was a tenth of a
    // handshake's time in user space (glibc's large-chunk path).
    let mut on_stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut on_heap = Vec::new();
    let storage = if max_headers <= STACK_HEADERS {
        &mut on_stack[..max_headers]
    } else {
        on_heap.resize(max_headers, httparse::EMPTY_HEADER);
        &mut on_heap[..]
    };
    let mut req = httparse::Request::new(storage);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    let len = match status {
        httparse::Status::Partial => {
            return if buf.len() > max_head_bytes {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        httparse::Status::Complete(len) => len,
    };
    if len > max_head_bytes {
        return Err(HeadError::TooLarge);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some("HEAD") => Method::Head,
        Some("OPTIONS") => Method::Options,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("");
    // Only origin-form targets (RFC 9112 §3.2.1); no absolute-form, no `*`.
    if !target.starts_with('/') {
        return Err(HeadError::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let headers = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    Ok(Some((
        Request {
            method,
            path,
            query,
            minor_version: req.version.unwrap_or(1),
            headers,
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<(Request, usize)>, HeadError> {
        parse_head(text.as_bytes(), 64, 8192)
    }

    #[test]
    fn partial_is_not_an_error() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a\r\n").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
    }

    #[test]
    fn complete_head_keeps_following_bytes_apart() {
        let text = "POST /token?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
        let (req, len) = parse(text).unwrap().unwrap();
        assert_eq!(&text[len..], "abc");
        assert_eq!(req.method, Method::Post);
        assert_eq!(req.path, "/token");
        assert_eq!(req.query.as_deref(), Some("x=1"));
        assert_eq!(req.body_length(), Ok(3));
        assert!(req.keep_alive());
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("GARBAGE\r\n\r\n").unwrap_err(), HeadError::Malformed);
        assert_eq!(
            parse("GET http://x/ HTTP/1.1\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            parse(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err(),
            HeadError::TooManyHeaders
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(parse(&big).unwrap_err(), HeadError::TooLarge);
        assert_eq!(parse(&(big + "\r\n")).unwrap_err(), HeadError::TooLarge);
    }

    #[test]
    fn body_lengths() {
        let len = |h: &str| {
            let text = format!("POST / HTTP/1.1\r\n{h}\r\n");
            parse(&text).unwrap().unwrap().0.body_length()
        };
        assert_eq!(len(""), Ok(0));
        assert_eq!(len("Content-Length: 12\r\n"), Ok(12));
        assert_eq!(len("Content-Length: -1\r\n"), Err(BodyLengthError::Invalid));
        assert_eq!(
            len("Content-Length: 1, 1\r\n"),
            Err(BodyLengthError::Invalid)
        );
        assert_eq!(
            len("Content-Length: 1\r\nContent-Length: 1\r\n"),
            Err(BodyLengthError::Invalid)
        );
        assert_eq!(
            len("Transfer-Encoding: chunked\r\n"),
            Err(BodyLengthError::TransferEncoding)
        );
        assert_eq!(
            len("Content-Length: 99999999999999999999999\r\n"),
            Err(BodyLengthError::Invalid)
        );
    }

    #[test]
    fn keep_alive_follows_the_version() {
        let ka = |t: &str| parse(t).unwrap().unwrap().0.keep_alive();
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }

    #[test]
    fn redaction_hides_credentials() {
        let r = |t: &str| {
            parse(&format!("GET {t} HTTP/1.1\r\n\r\n"))
                .unwrap()
                .unwrap()
                .0
                .redacted_target()
        };
        assert_eq!(r("/ws/abc.def.ghi"), "/ws/[redacted]");
        assert_eq!(
            r("/ws?room=a&token=SECRET&ticket=T&password=p&username=u"),
            "/ws?room=a&[redacted]"
        );
        assert_eq!(r("/ws?SECRET.JWT"), "/ws?[redacted]");
        assert_eq!(r("/healthz"), "/healthz");
    }

    #[test]
    fn host_values() {
        let check = |value: &str| {
            parse(&format!("GET / HTTP/1.1\r\nHost: {value}\r\n\r\n"))
                .unwrap()
                .unwrap()
                .0
                .check_host()
        };
        let accepted = [
            "127.0.0.1:8080",
            "localhost",
            "chat.example.com",
            "[::1]:8080",
            "[::1]",
            "EXAMPLE.com:443",
            "xn--bcher-kva.example",
            "under_score.local",
            "[::ffff:127.0.0.1]",
            "[2001:DB8::1]:443",
            "[v1.fe80::a+en1]",
            "[VF.x]:1",
            "host:65535",
            "host:0",
            "host:080",
            "ex%41mple",
            "a!$&'()*+;=~b",
            // A dotted quad out of range is still a reg-name (RFC 3986 §3.2.2).
            "999.1.1.1",
            // Optional white space around the value is not part of it.
            "localhost \t",
        ];
        for value in accepted {
            assert_eq!(check(value), Ok(()), "{value:?} should be accepted");
        }
        let refused = [
            "",
            "a b@c",
            "a@b",
            "user@host",
            "x/y",
            "a?b",
            "a#b",
            "http://a",
            "[::1",
            "::1",
            "[::1]x",
            "[::1]:",
            "[]",
            "[zz::1]",
            "[127.0.0.1]",
            "[fe80::1%eth0]",
            "[fe80::1%25eth0]",
            "[v.x]",
            "[v1.]",
            "[v1x]",
            "host:99999",
            "host:65536",
            "host:123456",
            "host:",
            ":80",
            "host:8080:1",
            "host:+80",
            "host:-1",
            "host:0x50",
            "host: 80",
            "a\tb",
            "ex%4",
            "ex%zz",
            "ex%",
            "exämple.com",
            "a,b",
            "a, b",
        ];
        for value in refused {
            assert_eq!(
                check(value),
                Err(HostError::Invalid),
                "{value:?} should be refused"
            );
        }
        // obs-text, not UTF-8 at all.
        let req = parse_head(b"GET / HTTP/1.1\r\nHost: a\xffb\r\n\r\n", 64, 8192)
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(req.check_host(), Err(HostError::Invalid));
    }

    #[test]
    fn host_presence_by_version() {
        let check = |head: &str| parse(head).unwrap().unwrap().0.check_host();
        let table: [(&str, Result<(), HostError>); 9] = [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
            ("GET / HTTP/1.1\r\n\r\n", Err(HostError::Missing)),
            ("GET / HTTP/1.0\r\n\r\n", Ok(())),
            ("GET / HTTP/1.0\r\nHost: a\r\n\r\n", Ok(())),
            (
                "GET / HTTP/1.0\r\nHost: a/b\r\n\r\n",
                Err(HostError::Invalid),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
                Err(HostError::Repeated),
            ),
            (
                "GET / HTTP/1.0\r\nHost: a\r\nX: y\r\nHOST: b\r\n\r\n",
                Err(HostError::Repeated),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: \r\n\r\n",
                Err(HostError::Repeated),
            ),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", Err(HostError::Invalid)),
        ];
        for (head, expected) in table {
            assert_eq!(check(head), expected, "{head:?}");
        }
        assert_eq!(HostError::Missing.phrase(), "missing Host header");
        assert_eq!(HostError::Repeated.to_string(), "more than one Host header");
        assert_eq!(HostError::Invalid.phrase(), "invalid Host header");
        assert_eq!(HostError::Invalid.status(), 400);
    }

    #[test]
    fn parse_host_splits() {
        assert_eq!(parse_host(b"[::1]:8080"), Some(("[::1]", Some(8080))));
        assert_eq!(parse_host(b"Example.com"), Some(("Example.com", None)));
        assert_eq!(parse_host(b"a:1"), Some(("a", Some(1))));
        // No trimming here; `check_host` trims the field value first.
        assert_eq!(parse_host(b" a"), None);
    }
}
