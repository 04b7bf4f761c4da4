//! HTTP responses, and the one place they are serialised
//! ([`Response::write_to`]).
//!
//! Every final response carries `Content-Length` and `Cache-Control:
//! no-store` (several hold credentials, and none is worth caching), and
//! says whether the connection stays open. An interim (`1xx`) response,
//! [`Response::continue_100`] or [`Response::switching_protocols`], is a
//! head alone: its status line and its own headers, nothing added (RFC
//! 9110 §15.2).

use std::borrow::Cow;

/// An HTTP response about to be serialised.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers (`Content-Length`, `Cache-Control` and `Connection`
    /// are added when written).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no body.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Response {
        Response::empty(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.as_bytes().to_vec())
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::empty(status)
            .header("Content-Type", "application/json")
            .with_body(value.to_string().into_bytes())
    }

    /// A JSON error: `{"detail": DETAIL}`.
    pub fn detail(status: u16, detail: &str) -> Response {
        // why: written out rather than built as a `Value` (a map, a key
        // and a copy of the text for every refusal); the same bytes.
        let mut body = Vec::with_capacity(detail.len() + 14);
        body.extend_from_slice(br#"{"detail":"#);
        serde_json::to_writer(&mut body, detail).expect("a Vec takes every write");
        body.push(b'}');
        Response::empty(status)
            .header("Content-Type", "application/json")
            .with_body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Response {
        self.body = body;
        self
    }

    /// `100 Continue`: the client may send the body it announced with
    /// `Expect: 100-continue`.
    pub fn continue_100() -> Response {
        Response::empty(100)
    }

    /// The `101` that opens a WebSocket (RFC 6455 §4.2.2): `accept` is the
    /// `Sec-WebSocket-Accept` value, `protocol` the subprotocol chosen, if
    /// any.
    pub fn switching_protocols(accept: &str, protocol: Option<&str>) -> Response {
        let response = Response::empty(101)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade")
            .header("Sec-WebSocket-Accept", accept.to_owned());
        match protocol {
            Some(p) => response.header("Sec-WebSocket-Protocol", p.to_owned()),
            None => response,
        }
    }

    /// True for an interim (`1xx`) response: a head without content.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Serialises the response onto `out`. With [`Then::Close`] it says
    /// `Connection: close`; with [`Part::Head`] (the answer to `HEAD`) the
    /// body is left out.
    ///
    /// An interim (`1xx`) response is written as its status line and its
    /// own headers only: no `Content-Length`, `Cache-Control` or
    /// `Connection: close`, whatever `then` and `part` say (what follows it
    /// is the final response, or the WebSocket).
    pub fn write_to(&self, out: &mut Vec<u8>, then: Then, part: Part) {
        // why: pieces, not `write!`: every upgrade writes a 101 (the
        // formatting machinery cost more than the rest of this).
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        // why: one allocation for the whole response (the status line and
        // the fixed headers are under 128 bytes).
        out.reserve(128 + headers + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, usize::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if self.is_interim() {
            out.extend_from_slice(b"\r\n");
            return;
        }
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, self.body.len());
        out.extend_from_slice(b"\r\nCache-Control: no-store\r\n");
        if then == Then::Close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if part == Part::Whole {
            out.extend_from_slice(&self.body);
        }
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// What becomes of the connection after a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// The next request may follow on the same connection.
    KeepAlive,
    /// The connection closes after this response (`Connection: close`).
    Close,
}

/// How much of a response is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Head and body.
    Whole,
    /// The head alone: the answer to a `HEAD` request.
    Head,
}

/// The `Set-Cookie` value of the session cookie `name` (PROTOCOL §1):
/// `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when `secure`, and
/// `Max-Age=max_age_secs`. Logout sends an empty `value` with `Max-Age=0`.
pub fn session_cookie(name: &str, value: &str, secure: bool, max_age_secs: u64) -> String {
    let secure = if secure { " Secure;" } else { "" };
    format!("{name}={value};{secure} HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}")
}

/// The reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detail_bodies_are_the_json_of_their_text() {
        for text in [
            "invalid token",
            "quote \" back\\slash",
            "ctl \u{1} \n é 😀",
            "",
        ] {
            let r = Response::detail(401, text);
            let expected = serde_json::json!({ "detail": text }).to_string();
            assert_eq!(String::from_utf8(r.body).unwrap(), expected);
        }
    }

    #[test]
    fn serialises_with_length_and_no_store() {
        let mut out = Vec::new();
        Response::detail(401, "invalid token")
            .header("WWW-Authenticate", "Bearer")
            .write_to(&mut out, Then::Close, Part::Whole);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(text.contains("WWW-Authenticate: Bearer\r\n"));
        assert!(text.contains("Content-Length: 26\r\n"));
        assert!(text.contains("Cache-Control: no-store\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"detail\":\"invalid token\"}"));
    }

    #[test]
    fn interim_responses_are_a_head_alone() {
        let bytes = |r: Response, then, part| {
            let mut out = Vec::new();
            r.write_to(&mut out, then, part);
            String::from_utf8(out).unwrap()
        };
        for (then, part) in [
            (Then::KeepAlive, Part::Whole),
            (Then::Close, Part::Whole),
            (Then::Close, Part::Head),
        ] {
            assert_eq!(
                bytes(Response::continue_100(), then, part),
                "HTTP/1.1 100 Continue\r\n\r\n"
            );
            assert_eq!(
                bytes(
                    Response::switching_protocols("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None),
                    then,
                    part
                ),
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            );
        }
        assert_eq!(
            bytes(
                Response::switching_protocols("A=", Some("wsgate.json")),
                Then::KeepAlive,
                Part::Whole
            ),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: A=\r\n\
             Sec-WebSocket-Protocol: wsgate.json\r\n\r\n"
        );
    }

    #[test]
    fn session_cookies() {
        assert_eq!(
            session_cookie("__Host-wsgate", "SID", true, 28_800),
            "__Host-wsgate=SID; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
        );
        assert_eq!(
            session_cookie("wsgate", "", false, 0),
            "wsgate=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        );
    }

    #[test]
    fn head_only_omits_the_body() {
        let mut out = Vec::new();
        Response::text(200, "ok").write_to(&mut out, Then::KeepAlive, Part::Head);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(!text.contains("Connection: close"));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
