//! What browsers get beyond the WebSocket: the chat page (`/`, `/app.js`,
//! `/style.css`: gzip-encoded, its policy headers, `--no-ui`) and CORS on
//! the credential endpoints for `--allowed-origin` pages (preflights, the
//! answers they may read, nothing for other origins).

use super::json_body;
use crate::config::Origin;
use crate::testkit::{Harness, HttpResponse};

const APP: &str = "http://127.0.0.2:3000";

fn with_app() -> Harness {
    Harness::new(|c| c.allowed_origins = vec![Origin::parse(APP).unwrap()])
}

fn post(path: &str, origin: &str, extra: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nOrigin: {origin}\r\n{extra}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn preflight(path: &str, origin: &str) -> String {
    format!(
        "OPTIONS {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: authorization\r\n\r\n"
    )
}

/// The CORS headers of `r`, as a page would need them.
fn readable_by(r: &HttpResponse) -> Option<(&str, &str, &str)> {
    Some((
        r.header("access-control-allow-origin")?,
        r.header("access-control-allow-credentials")?,
        r.header("vary")?,
    ))
}

#[test]
fn the_page_is_served_gzip_encoded_with_its_policy() {
    let mut h = Harness::default();
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let (_, r) = h.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n"
        ));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(kind));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let csp = r.header("content-security-policy").unwrap();
        assert!(
            csp.starts_with("default-src 'none'; script-src 'self';"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        let length: usize = r.header("content-length").unwrap().parse().unwrap();
        assert!(length > 20, "{path}: {length}");
    }
    // HEAD: the same head, no body.
    let id = h.connect();
    h.send(
        id,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let head = String::from_utf8(h.peer(id).received.clone()).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("\r\nContent-Encoding: gzip\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "no body: {head}");
    // A client that refuses gzip is told so.
    let (_, r) = h.request("GET /app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n");
    assert_eq!(r.status, 406);
    assert_eq!(
        json_body(&r.body)["detail"],
        "the page is only sent gzip-encoded"
    );
    let (_, r) = h.request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    for path in ["/index.html", "/app.js/", "/ui/app.js"] {
        let (_, r) = h.request(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 404, "{path}");
    }
}

#[test]
fn no_ui_turns_the_page_off() {
    let mut h = Harness::new(|c| c.no_ui = true);
    for path in ["/", "/app.js", "/style.css"] {
        let (_, r) = h.request(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-security-policy"), None);
    }
}

#[test]
fn preflights_are_answered_for_allowed_origins_only() {
    let mut h = with_app();
    for path in ["/token", "/login", "/logout", "/ws-ticket"] {
        let (_, r) = h.request(&preflight(path, APP));
        assert_eq!(r.status, 204, "{path}");
        assert_eq!(
            readable_by(&r),
            Some((APP, "true", "Origin")),
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("Authorization, Content-Type")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        // Another origin, or none, or a same-looking one: no CORS at all.
        for other in [
            "http://127.0.0.3:3000",
            "http://127.0.0.2:3001",
            "https://127.0.0.2:3000",
            "null",
        ] {
            let (_, r) = h.request(&preflight(path, other));
            assert_eq!(r.status, 405, "{path} from {other}");
            assert_eq!(readable_by(&r), None, "{path} from {other}");
        }
    }
    // The explicit default port is the same origin, and is written as
    // browsers write it.
    let mut h = Harness::new(|c| {
        c.allowed_origins = vec![Origin::parse("https://app.example:443").unwrap()]
    });
    let (_, r) = h.request(&preflight("/ws-ticket", "https://app.example"));
    assert_eq!(readable_by(&r).map(|c| c.0), Some("https://app.example"));
    // Not a credential endpoint: nothing.
    let (_, r) = h.request(&preflight("/healthz", "https://app.example"));
    assert_eq!((r.status, readable_by(&r)), (405, None));
}

#[test]
fn answers_to_an_allowed_origin_are_readable_and_to_others_not() {
    let mut h = with_app();
    // /token after its password check, right and wrong.
    let (_, r) = h.request(&post(
        "/token",
        APP,
        "",
        "username=alice&password=wonderland",
    ));
    assert_eq!(r.status, 200);
    assert_eq!(readable_by(&r), Some((APP, "true", "Origin")));
    let token = json_body(&r.body)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, r) = h.request(&post("/token", APP, "", "username=alice&password=nope"));
    assert_eq!(
        (r.status, readable_by(&r)),
        (401, Some((APP, "true", "Origin")))
    );
    let (_, r) = h.request(&post("/token", APP, "", "username=alice"));
    assert_eq!(
        (r.status, readable_by(&r)),
        (400, Some((APP, "true", "Origin")))
    );
    // A ticket with the bearer token, as an app's page fetches one.
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let (_, r) = h.request(&post("/ws-ticket", APP, &bearer, ""));
    assert_eq!(
        (r.status, readable_by(&r)),
        (200, Some((APP, "true", "Origin")))
    );
    let ticket = json_body(&r.body)["ticket"].as_str().unwrap().to_string();
    let (_, up) = h.upgrade(&format!("/ws?ticket={ticket}"), "");
    assert_eq!(up.status, 101);
    // Login and logout from the allowed origin.
    let (_, r) = h.request(&post("/login", APP, "", "username=bob&password=builder"));
    assert_eq!(
        (r.status, readable_by(&r)),
        (204, Some((APP, "true", "Origin")))
    );
    assert!(r.header("set-cookie").is_some());
    let (_, r) = h.request(&post("/logout", APP, "", ""));
    assert_eq!(
        (r.status, readable_by(&r)),
        (204, Some((APP, "true", "Origin")))
    );
    // Another origin: the same requests, no CORS; its cookie POSTs are refused.
    let other = "http://127.0.0.3:3000";
    let (_, r) = h.request(&post(
        "/token",
        other,
        "",
        "username=alice&password=wonderland",
    ));
    assert_eq!((r.status, readable_by(&r)), (200, None));
    let (_, r) = h.request(&post("/login", other, "", "username=bob&password=builder"));
    assert_eq!((r.status, readable_by(&r)), (403, None));
    let (_, r) = h.request(&post("/ws-ticket", other, &bearer, ""));
    assert_eq!((r.status, readable_by(&r)), (200, None));
    // Other paths never carry CORS, whatever the origin.
    let (_, r) = h.request(&format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nOrigin: {APP}\r\n\r\n"
    ));
    assert_eq!((r.status, readable_by(&r)), (200, None));
}

#[test]
fn refusals_before_a_password_check_are_readable_too() {
    // An app must be able to tell "too many logins" from a network fault.
    let mut h = Harness::new(|c| {
        c.allowed_origins = vec![Origin::parse(APP).unwrap()];
        c.limits.max_pending_logins = 0;
    });
    let (_, r) = h.request(&post(
        "/token",
        APP,
        "",
        "username=alice&password=wonderland",
    ));
    assert_eq!(
        (r.status, readable_by(&r)),
        (503, Some((APP, "true", "Origin")))
    );
    // And a check that never comes back.
    let mut h = with_app();
    h.hold_passwords = true;
    let id = h.connect();
    h.send(
        id,
        post("/login", APP, "", "username=alice&password=wonderland").as_bytes(),
    );
    h.advance(30_000);
    let r = h.response(id).unwrap();
    assert_eq!(
        (r.status, readable_by(&r)),
        (503, Some((APP, "true", "Origin")))
    );
}
