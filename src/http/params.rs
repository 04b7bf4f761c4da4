//! Query strings, form bodies and cookies.
//!
//! Query strings and `application/x-www-form-urlencoded` bodies are decoded
//! by `form_urlencoded` (the WHATWG algorithm). A name given twice is an
//! error, never "the last one wins": two `token=` parameters are two
//! credentials (RFC 6750 §2), and a login form with two passwords is
//! malformed.

use std::collections::HashMap;

/// Names whose values are credentials; logs show them as `[redacted]`.
const SECRET_PARAMS: [&str; 3] = ["token", "ticket", "password"];

/// Decoded name/value pairs, each name at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(HashMap<String, String>);

/// A name appeared more than once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateName(pub String);

impl Params {
    /// Decodes `a=1&b=2` (query or form body). Empty pieces (`a=1&&b=2`) are
    /// skipped, as browsers do.
    pub fn decode(input: &[u8]) -> Result<Params, DuplicateName> {
        let mut map = HashMap::new();
        for (name, value) in form_urlencoded::parse(input) {
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(DuplicateName(name.into_owned()));
            }
        }
        Ok(Params(map))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Rewrites a raw query for a log line: every value reads `[redacted]`
/// except a well-formed `room`, and names are kept as sent. Values are
/// withheld wholesale, not only those of known credential names: a client
/// that puts its token in `access_token=` or glues it to another value
/// (`room=a;token=…`) must not have it logged either.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|piece| {
            let (name, value) = match piece.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (piece, None),
            };
            let decoded: String = form_urlencoded::parse(name.as_bytes())
                .map(|(n, _)| n.into_owned())
                .collect();
            match value {
                Some(v) if decoded == "room" && crate::auth::valid_room_name(v) => {
                    piece.to_string()
                }
                None if !SECRET_PARAMS.contains(&decoded.as_str()) => piece.to_string(),
                _ => format!("{name}=[redacted]"),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Values of the cookie `name` across all `Cookie` header values
/// (RFC 6265 §5.4: `name=value` pairs separated by `; `). Values keep their
/// bytes; surrounding double quotes are removed.
pub fn cookie_values<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &str) -> Vec<&'a [u8]> {
    let mut found = Vec::new();
    for header in headers {
        for pair in header.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() == name.as_bytes() {
                let mut value = pair[eq + 1..].trim_ascii();
                if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                    value = &value[1..value.len() - 1];
                }
                found.push(value);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_duplicates() {
        let p = Params::decode(b"username=al%20ice&password=a+b%26c&&grant_type=password").unwrap();
        assert_eq!(p.get("username"), Some("al ice"));
        assert_eq!(p.get("password"), Some("a b&c"));
        assert_eq!(p.get("grant_type"), Some("password"));
        assert_eq!(p.get("nope"), None);
        assert_eq!(
            Params::decode(b"token=a&token=b"),
            Err(DuplicateName("token".into()))
        );
        // An encoded name is the same name.
        assert!(Params::decode(b"token=a&%74oken=b").is_err());
    }

    #[test]
    fn redacts_credentials_even_when_encoded() {
        assert_eq!(redact_query("token=x&room=a"), "token=[redacted]&room=a");
        assert_eq!(redact_query("%74oken=x"), "%74oken=[redacted]");
        assert_eq!(redact_query("password"), "password=[redacted]");
        assert_eq!(redact_query("a=b"), "a=[redacted]");
        assert_eq!(redact_query("room=dev&flag"), "room=dev&flag");
        assert_eq!(redact_query("room=a;token=JWT"), "room=[redacted]");
        assert_eq!(redact_query("access_token=JWT"), "access_token=[redacted]");
    }

    #[test]
    fn cookies() {
        let headers: Vec<&[u8]> = vec![b"a=1; __Host-wsgate=ID1;b=\"q\"", b"__Host-wsgate=ID2"];
        assert_eq!(
            cookie_values(headers.iter().copied(), "__Host-wsgate"),
            vec![&b"ID1"[..], &b"ID2"[..]]
        );
        assert_eq!(cookie_values(headers.iter().copied(), "b"), vec![&b"q"[..]]);
        assert!(cookie_values(headers.iter().copied(), "wsgate").is_empty());
        let odd: Vec<&[u8]> = vec![b";;=;novalue; =x"];
        assert!(cookie_values(odd.iter().copied(), "novalue").is_empty());
    }
}
