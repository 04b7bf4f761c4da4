//! The chat page (`ui/`, README "In the browser"): three static files
//! compiled in, gzip-encoded by `build.rs`, served at `/`, `/app.js` and
//! `/style.css` unless `--no-ui`.
//!
//! They are held and sent gzip-encoded only: every browser accepts gzip,
//! and keeping a second, plain copy would cost the binary's size budget
//! about three times as much. A client that refuses gzip gets a `406`
//! (RFC 9110 §12.5.3: no `Accept-Encoding` at all accepts any coding).

use super::Response;

/// One file of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, gzip-encoded.
    pub gzip: &'static [u8],
}

/// The page's own policy: scripts, styles and connections (the WebSocket
/// included: CSP 3 `'self'` covers `ws:`/`wss:` to the same host) from this
/// server alone, nothing inline, no plugins, frames, forms to elsewhere or
/// `<base>`, and never framed (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The file served at `path`, if it is one of the page's.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, gzip): (_, &'static [u8]) = match path {
        "/" => (
            "text/html; charset=utf-8",
            include_bytes!(concat!(env!("OUT_DIR"), "/index.html.gz")),
        ),
        "/app.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!(concat!(env!("OUT_DIR"), "/app.js.gz")),
        ),
        "/style.css" => (
            "text/css; charset=utf-8",
            include_bytes!(concat!(env!("OUT_DIR"), "/style.css.gz")),
        ),
        _ => return None,
    };
    Some(Asset { content_type, gzip })
}

impl Asset {
    /// The `200` for it, or a `406` when `accept_encoding` (every
    /// `Accept-Encoding` value of the request, joined) refuses gzip.
    pub fn response(self, accept_encoding: Option<&str>) -> Response {
        let response = if accepts_gzip(accept_encoding) {
            Response::empty(200)
                .header("Content-Type", self.content_type)
                .header("Content-Encoding", "gzip")
                .with_body(self.gzip.to_vec())
        } else {
            Response::detail(406, "the page is only sent gzip-encoded")
        };
        response
            .header("Vary", "Accept-Encoding")
            .header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "no-referrer")
    }
}

/// True when `Accept-Encoding` lets gzip be sent (RFC 9110 §12.5.3): no
/// header at all, or `gzip` (or `x-gzip`, or else `*`) with a weight above
/// zero. An empty header asks for no coding.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return true;
    };
    let mut star = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim_matches([' ', '\t']);
        let weight_ok = parts.all(|p| {
            let p = p.trim_matches([' ', '\t']);
            match p.split_once('=') {
                Some((name, q)) if name.eq_ignore_ascii_case("q") => positive_qvalue(q),
                _ => true,
            }
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return weight_ok;
        }
        if coding == "*" {
            star = Some(weight_ok);
        }
    }
    star.unwrap_or(false)
}

/// True for a weight (RFC 9110 §12.4.2: `0`, `0.5`, `1.000`…) above zero.
/// Anything malformed counts as zero. (Read by hand: float parsing would
/// cost the binary 30 KB.)
fn positive_qvalue(q: &str) -> bool {
    let q = q.trim_matches([' ', '\t']);
    let (whole, fraction) = q.split_once('.').unwrap_or((q, ""));
    let digits = |s: &str, max| s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    match whole {
        "1" => digits(fraction, 3) && fraction.bytes().all(|b| b == b'0'),
        "0" => digits(fraction, 3) && fraction.bytes().any(|b| b != b'0'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_is_accepted_as_rfc_9110_says() {
        for (header, ok) in [
            (None, true),
            (Some("gzip, deflate, br, zstd"), true),
            (Some("GZIP"), true),
            (Some("x-gzip"), true),
            (Some("br;q=1.0, gzip;q=0.5"), true),
            (Some("gzip ; q=0.001"), true),
            (Some("*"), true),
            (Some("br, *;q=0.1"), true),
            (Some(""), false),
            (Some("identity"), false),
            (Some("br, deflate"), false),
            (Some("gzip;q=0"), false),
            (Some("gzip;q=0.0, *"), false),
            (Some("*;q=0"), false),
            (Some("gzip;q=zero"), false),
            (Some("gzip;q=1.000"), true),
            (Some("gzip;q=0.0001"), false),
            (Some("gzip;q=1.5"), false),
            (Some("gzip;q=.5"), false),
            (Some("gzip;q=2"), false),
        ] {
            assert_eq!(accepts_gzip(header), ok, "{header:?}");
        }
    }

    #[test]
    fn the_three_files_are_the_page_compressed() {
        for (path, source, kind) in [
            ("/", "ui/index.html", "text/html"),
            ("/app.js", "ui/app.js", "text/javascript"),
            ("/style.css", "ui/style.css", "text/css"),
        ] {
            let asset = asset(path).unwrap();
            assert!(asset.content_type.starts_with(kind));
            let mut plain = Vec::new();
            gunzip(asset.gzip, &mut plain);
            let on_disk =
                std::fs::read(format!("{}/{source}", env!("CARGO_MANIFEST_DIR"))).unwrap();
            assert_eq!(plain, on_disk, "{path}");
        }
        for path in ["/index.html", "/app", "/ui/app.js", "//", "/app.js/"] {
            assert_eq!(asset(path), None, "{path}");
        }
    }

    /// Decompresses (`flate2` is also a dev-dependency).
    fn gunzip(gz: &[u8], out: &mut Vec<u8>) {
        flate2::read::GzDecoder::new(gz).read_to_end(out).unwrap();
    }

    #[test]
    fn the_page_stays_within_25_kb() {
        // Issue 11's budget for the page, uncompressed, all files together.
        let total: u64 = ["index.html", "app.js", "style.css"]
            .iter()
            .map(|f| {
                let path = format!("{}/ui/{f}", env!("CARGO_MANIFEST_DIR"));
                std::fs::metadata(path).unwrap().len()
            })
            .sum();
        assert!(total <= 25_000, "ui/ is {total} bytes");
    }

    #[test]
    fn answers_carry_the_page_policy() {
        let page = asset("/").unwrap();
        let ok = page.response(Some("gzip"));
        assert_eq!(ok.status, 200);
        let has = |r: &Response, name: &str, value: &str| {
            r.headers.iter().any(|(n, v)| *n == name && v == value)
        };
        assert!(has(&ok, "Content-Encoding", "gzip"));
        assert!(has(&ok, "Content-Security-Policy", CONTENT_SECURITY_POLICY));
        assert!(CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        let refused = page.response(Some("identity"));
        assert_eq!(refused.status, 406);
        assert!(!has(&refused, "Content-Encoding", "gzip"));
        assert!(has(&refused, "Vary", "Accept-Encoding"));
    }
}
