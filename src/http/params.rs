//! Query strings, form bodies and cookies.
//!
//! Query strings and `application/x-www-form-urlencoded` bodies are decoded
//! by `form_urlencoded` (the WHATWG algorithm). A name given twice is an
//! error, never "the last one wins": two `token=` parameters are two
//! credentials (RFC 6750 §2), and a login form with two passwords is
//! malformed.

use std::collections::HashSet;

/// Decoded name/value pairs in the order given, each name at most once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

/// Up to this many pairs, a repeated name is looked for pair by pair;
/// past it, with a set (a query of thousands of pairs stays linear).
const FEW_PAIRS: usize = 16;

/// A name appeared more than once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DuplicateName(pub String);

impl Params {
    /// Decodes `a=1&b=2` (query or form body). Empty pieces (`a=1&&b=2`) are
    /// skipped, as browsers do.
    pub fn decode(input: &[u8]) -> Result<Params, DuplicateName> {
        // why: a list, not a map: a request has a handful of pairs, and
        // hashing them cost more than looking through them.
        let pairs: Vec<(String, String)> = match plain(input) {
            // What `form_urlencoded` gives for such input, without its
            // three passes over every value (a token is most of a query).
            Some(text) => (text.split('&'))
                .filter(|piece| !piece.is_empty())
                .map(|piece| {
                    let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
                    (name.to_owned(), value.to_owned())
                })
                .collect(),
            None => form_urlencoded::parse(input)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        };
        let repeated = if pairs.len() <= FEW_PAIRS {
            (1..pairs.len()).find(|&i| pairs[..i].iter().any(|(n, _)| *n == pairs[i].0))
        } else {
            let mut seen = HashSet::with_capacity(pairs.len());
            pairs.iter().position(|(n, _)| !seen.insert(n.as_str()))
        };
        match repeated {
            Some(i) => Err(DuplicateName(pairs[i].0.clone())),
            None => Ok(Params(pairs)),
        }
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        (self.0.iter())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `input` as text when decoding it would change nothing: valid UTF-8
/// with no `%` escape and no `+` (a space).
fn plain(input: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(input).ok()?;
    (!input.iter().any(|&b| b == b'%' || b == b'+')).then_some(text)
}

/// Rewrites a raw query for a log line: nothing of it is kept but a
/// well-formed `room` value (`room=NAME`, the first such piece), and
/// `[redacted]` stands for everything else. Names are withheld as well as
/// values: a client that sends its token as a bare piece (`/ws?JWT`), as
/// a name (`?JWT=`) or under any other name must not have it logged.
///
/// `room=dev&token=JWT` → `room=dev&[redacted]`; `JWT` → `[redacted]`.
pub fn redact_query(query: &str) -> String {
    let room = query.split('&').find_map(|piece| {
        let (name, value) = piece.split_once('=')?;
        (name == "room" && crate::auth::valid_room_name(value)).then_some(piece)
    });
    let rest = query
        .split('&')
        .any(|piece| !piece.is_empty() && Some(piece) != room);
    match (room, rest) {
        (Some(room), false) => room.to_string(),
        (Some(room), true) => format!("{room}&[redacted]"),
        (None, true) => "[redacted]".to_string(),
        (None, false) => String::new(),
    }
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
        // Plain input (nothing to decode) splits as form_urlencoded does.
        for raw in ["a=1&&b=&c&=d&e==f&", "&", "", "x", "k=v=w"] {
            let expected: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(
                Params::decode(raw.as_bytes()),
                Ok(Params(expected)),
                "{raw}"
            );
        }
        // Past the few pairs looked through one by one: the same answers.
        let many: String = (0..40).map(|i| format!("n{i}=v{i}&")).collect();
        let p = Params::decode(many.as_bytes()).unwrap();
        assert_eq!(
            (p.get("n0"), p.get("n39"), p.get("n40")),
            (Some("v0"), Some("v39"), None)
        );
        assert_eq!(
            Params::decode(format!("{many}n7=again&n3=again").as_bytes()),
            Err(DuplicateName("n7".into()))
        );
    }

    #[test]
    fn only_a_well_formed_room_survives() {
        assert_eq!(redact_query("token=x&room=a"), "room=a&[redacted]");
        assert_eq!(redact_query("room=dev"), "room=dev");
        assert_eq!(redact_query("%74oken=x"), "[redacted]");
        assert_eq!(redact_query("password"), "[redacted]");
        assert_eq!(redact_query("a=b"), "[redacted]");
        assert_eq!(redact_query("room=dev&flag"), "room=dev&[redacted]");
        assert_eq!(redact_query("room=a;token=JWT"), "[redacted]");
        assert_eq!(redact_query("access_token=JWT"), "[redacted]");
        // Bare pieces and names are credentials too (issue: /ws?JWT).
        // A real token is longer than a room name may be (64).
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTc2NzIyNTYwMH0.\
                   c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmUtc2lnbmF0dXI";
        for q in [
            jwt.to_string(),
            format!("{jwt}="),
            format!("room=lobby&{jwt}"),
            format!("{jwt}=room"),
            format!("room={jwt}"),
            format!("ro%6Fm=lobby&{jwt}"),
        ] {
            let out = redact_query(&q);
            assert!(!out.contains("eyJ"), "{q} -> {out}");
        }
        assert_eq!(redact_query("room=lobby&room=x"), "room=lobby&[redacted]");
        assert_eq!(redact_query(""), "");
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
