//! `--redis URL`.

use std::fmt;

/// `--redis redis://[user:password@]host:port/db` (README "Scale-out").
/// Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisUrl {
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port; 6379 when the URL names none.
    pub port: u16,
    /// Database number; 0 when the URL names none.
    pub db: u32,
    /// ACL user, when given (`AUTH user password`).
    pub user: Option<String>,
    /// Password, when given (`AUTH [user] password`).
    pub password: Option<String>,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl fmt::Display for RedisUrl {
    /// `redis://host:port/db`, with no user or password: for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

impl RedisUrl {
    /// Parses `redis://[[user]:password@]host[:port][/db]`; user and
    /// password are percent-decoded. `None` for anything else (`rediss://`
    /// included: wsgate speaks plain RESP; put Redis on loopback or a
    /// private network).
    pub fn parse(text: &str) -> Option<RedisUrl> {
        let rest = text.strip_prefix("redis://")?;
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, 0),
            Some((a, db)) if db.bytes().all(|b| b.is_ascii_digit()) => (a, db.parse().ok()?),
            Some(_) => return None,
            None => (rest, 0),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let decode = |s: &str| -> Option<String> {
            let bytes: Vec<u8> = percent_decode(s)?;
            String::from_utf8(bytes).ok()
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (
                    Some(decode(user)?).filter(|u| !u.is_empty()),
                    Some(decode(pw)?),
                ),
                None => (None, Some(decode(u)?)),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 6379,
                None => return None,
            };
            (host.to_string(), port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()?),
                None => (hostport.to_string(), 6379),
            }
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        (host_ok && port != 0).then_some(RedisUrl {
            host,
            port,
            db,
            user,
            password,
        })
    }
}

/// Percent-decodes `s` (`%XX`; anything else as it is). `None` for a
/// malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        let u = RedisUrl::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.db, &u.user, &u.password),
            ("127.0.0.1", 6380, 2, &None, &None)
        );
        let u = RedisUrl::parse("redis://:s%40cret@cache.internal").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("cache.internal", 6379, 0));
        assert_eq!((u.user, u.password.as_deref()), (None, Some("s@cret")));
        let u = RedisUrl::parse("redis://app:pw@[::1]:7000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_deref()),
            ("::1", 7000, Some("app"))
        );
        assert_eq!(u.to_string(), "redis://[::1]:7000/0");
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("pw") && shown.contains("[redacted]"),
            "{shown}"
        );
        for bad in [
            "rediss://h:1/0",
            "http://h",
            "redis://",
            "redis://h:0",
            "redis://h:99999",
            "redis://h/x",
            "redis://h:1/0/1",
            "redis://:%zz@h",
            "redis://h h",
            "redis://[::1",
        ] {
            assert_eq!(RedisUrl::parse(bad), None, "{bad}");
        }
    }
}
