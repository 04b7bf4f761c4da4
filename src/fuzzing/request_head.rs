//! The `request_head` target: the request-head parser and the upgrade
//! checks, fed the raw bytes of a request head.

use crate::auth::valid_room_name;
use crate::config::Origin;
use crate::http::params::{Params, cookie_values};
use crate::http::upgrade::{self, Carrier, Reject, UpgradePolicy};
use crate::http::{self, Method, Request};

use super::check_redacted_query;

/// The request-head parser and the upgrade checks.
///
/// Properties: a complete head's length is within the input and no strict
/// prefix of it is refused (a head dribbled byte by byte is never refused
/// early); tighter limits never accept what looser ones refuse; the
/// redacted target shows `[redacted]` for every credential parameter and
/// for a path token; [`upgrade::validate`] is [`upgrade::handshake`] then
/// [`upgrade::credential`]; and the credential found agrees with an
/// independent count of the credentials in the request (exactly one, a
/// cookie only with an allowed `Origin`, a password only when allowed).
pub fn request_head(data: &[u8]) {
    let parsed = http::parse_head(data, 64, 8192);
    if let Ok(Some((_, small_len))) = http::parse_head(data, 4, 256) {
        assert!(
            matches!(&parsed, Ok(Some((_, len))) if *len == small_len),
            "tighter limits accepted a head the default limits do not"
        );
    }
    let Ok(Some((req, len))) = parsed else {
        return;
    };
    assert!(
        len > 0 && len <= data.len(),
        "head length {len} out of range"
    );
    for cut in [len - 1, len / 2] {
        assert!(
            matches!(http::parse_head(&data[..cut], 64, 8192), Ok(None)),
            "a prefix ({cut} of {len} bytes) of a complete head is not `Partial`"
        );
    }
    assert!(req.path.starts_with('/') && !req.path.contains('?'));
    for (name, _) in &req.headers {
        assert_eq!(
            *name,
            name.to_ascii_lowercase(),
            "header names are lowercased"
        );
    }
    let _ = (req.keep_alive(), req.body_length(), req.header("host"));
    check_redacted_target(&req);

    let handshake = upgrade::handshake(&req);
    match &handshake {
        Ok(h) => {
            assert!(req.method == Method::Get && req.minor_version >= 1);
            assert!(valid_room_name(&h.room), "room {:?} accepted", h.room);
            assert_eq!(h.accept.len(), 28, "an accept key is 20 bytes in base64");
        }
        Err(rej) => assert!(matches!(rej.status(), 400 | 405 | 426), "{rej}"),
    }
    let allowed = [Origin::parse("https://app.example.com").expect("a valid origin")];
    let policies = [
        UpgradePolicy {
            allow_password_auth: false,
            cookie_name: "__Host-wsgate",
            allowed_origins: &[],
            require_https: true,
        },
        UpgradePolicy {
            allow_password_auth: true,
            cookie_name: "wsgate",
            allowed_origins: &allowed,
            require_https: false,
        },
    ];
    for policy in &policies {
        let validated = upgrade::validate(&req, policy).map(|u| u.carrier);
        let Ok(h) = &handshake else {
            assert_eq!(validated.err(), handshake.as_ref().err().copied());
            continue;
        };
        let carrier = upgrade::credential(&req, &h.query, policy);
        assert_eq!(validated, carrier, "validate is handshake then credential");
        check_credential(&req, &h.query, policy, &carrier);
    }
}

/// The path token and every credential parameter of the query read
/// `[redacted]`; everything else is as sent.
fn check_redacted_target(req: &Request) {
    let redacted = req.redacted_target();
    let (path, query) = match redacted.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (redacted.as_str(), None),
    };
    if req.path.starts_with("/ws/") {
        assert_eq!(path, "/ws/[redacted]");
    } else {
        assert_eq!(path, req.path);
    }
    assert_eq!(query.is_some(), req.query.is_some());
    if let (Some(original), Some(redacted)) = (&req.query, query) {
        check_redacted_query(original, redacted);
    }
}

/// Compares the credential found with an independent reading of the
/// request.
fn check_credential(
    req: &Request,
    query: &Params,
    policy: &UpgradePolicy<'_>,
    found: &Result<Carrier, Reject>,
) {
    let authorization = req.header_values("authorization").count();
    let path_token = req.path.starts_with("/ws/");
    let query_token = query.get("token").is_some();
    let ticket = query.get("ticket").is_some();
    let password = query.get("username").is_some() || query.get("password").is_some();
    let sources = authorization
        + usize::from(path_token)
        + usize::from(query_token)
        + usize::from(ticket)
        + usize::from(password);
    let cookies = cookie_values(req.header_values("cookie"), policy.cookie_name);
    let carrier = match found {
        Err(rej) => {
            assert!(matches!(rej.status(), 400 | 401 | 403), "{rej}");
            if sources == 0 && cookies.is_empty() {
                assert_eq!(*rej, Reject::Unauthorized("missing credentials"));
            }
            return;
        }
        Ok(carrier) => carrier,
    };
    assert!(sources <= 1, "{sources} credentials accepted as one");
    match carrier {
        Carrier::Bearer(t) => {
            assert_eq!(authorization, 1);
            assert!(!t.is_empty() && !t.contains(char::is_whitespace));
        }
        Carrier::Path(t) => {
            assert!(!t.is_empty() && !t.contains('/'));
            assert_eq!(req.path, format!("/ws/{t}"));
        }
        Carrier::Query(t) => assert_eq!(query.get("token"), Some(t.as_str())),
        Carrier::Ticket(t) => assert_eq!(query.get("ticket"), Some(t.as_str())),
        Carrier::Password { user, password } => {
            assert!(
                policy.allow_password_auth,
                "a password carrier while disabled"
            );
            let from_query = query.get("username") == Some(user.as_str())
                && query.get("password") == Some(password.as_str());
            assert!(from_query || authorization == 1);
        }
        Carrier::Cookie(value) => {
            assert_eq!(sources, 0, "a cookie judged beside another credential");
            assert_eq!(cookies, [value.as_slice()]);
            let origin = req
                .header("origin")
                .ok()
                .flatten()
                .and_then(Origin::parse)
                .expect("a cookie upgrade without a valid Origin");
            let same_host = req
                .header("host")
                .ok()
                .flatten()
                .is_some_and(|host| origin.is_same_host(host));
            let secure = origin.scheme == "https" || origin.is_loopback() || !policy.require_https;
            assert!(
                policy.allowed_origins.contains(&origin) || (same_host && secure),
                "a cookie upgrade from a foreign or plain-HTTP origin"
            );
        }
        Carrier::Custom => panic!("credential() never makes a custom carrier"),
    }
}
