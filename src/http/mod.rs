//! HTTP/1.1 on the listening port: request heads, routing helpers, responses.
//!
//! Read first: RFC 9112 (HTTP/1.1 message syntax), RFC 6265 §5.4 (the
//! `Cookie` header), RFC 6455 §4.2 (the opening handshake). Parsing is
//! httparse's; this module turns its borrowed result into a small owned
//! [`Request`] and answers with a [`Response`].
//!
//! Contract for untrusted input: once [`parse_head`] returns `Ok`, nothing
//! in this module panics on the request, whatever its contents.

pub mod params;
pub mod response;
pub mod upgrade;

pub use response::Response;

use std::fmt;

/// Why a request head was refused; each maps to one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `HEAD`
    Head,
    /// Anything else.
    Other,
}

/// An owned, parsed request head.
#[derive(Clone, Debug)]
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
pub enum BodyLengthError {
    /// `Transfer-Encoding` was sent; only `Content-Length` bodies are read.
    TransferEncoding,
    /// `Content-Length` repeated or not a number.
    Invalid,
}

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
    // reports `TooManyHeaders` when it overflows.
    let mut storage = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut storage);
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
            "/ws?room=a&token=[redacted]&ticket=[redacted]&password=[redacted]&username=[redacted]"
        );
        assert_eq!(r("/healthz"), "/healthz");
    }
}
