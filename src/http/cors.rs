//! CORS (the Fetch standard's HTTP side) for the credential endpoints, so
//! that a web app on an `--allowed-origin` may call them from the browser
//! (README "In the browser"): `/token`, `/login`, `/logout`, `/ws-ticket`.
//!
//! Only for those origins, and only those paths: a request from any other
//! origin gets no CORS header at all, so the browser keeps the answer from
//! the page. Credentials are allowed (the session cookie); the cookie is
//! `SameSite=Strict`, so it still only travels between pages of the same
//! site. The `Origin` rules of the state-changing requests (PROTOCOL §1,
//! "Login CSRF") are unchanged: CORS decides what a page may *read*, they
//! decide what the server *does*.

use super::{Method, Request, Response};
use crate::config::Origin;

/// The paths that answer CORS.
pub const PATHS: [&str; 4] = ["/token", "/login", "/logout", "/ws-ticket"];

/// How long a browser may keep a preflight's answer, in seconds.
pub const MAX_AGE_SECS: u32 = 600;

/// Which of `allowed` the request's one `Origin` header is, when its path
/// answers CORS.
pub fn allowed_origin(req: &Request, allowed: &[Origin]) -> Option<usize> {
    if !PATHS.contains(&req.path.as_str()) {
        return None;
    }
    let origin = Origin::parse(req.header("origin").ok()??)?;
    allowed.iter().position(|a| *a == origin)
}

/// True when `req` is a CORS preflight: `OPTIONS` with
/// `Access-Control-Request-Method`.
pub fn is_preflight(req: &Request) -> bool {
    req.method == Method::Options
        && matches!(req.header("access-control-request-method"), Ok(Some(_)))
}

/// The answer to a preflight from `origin`: `POST`, with the headers the
/// endpoints read, and credentials.
pub fn preflight(origin: &Origin) -> Response {
    allow(Response::empty(204), origin)
        .header("Access-Control-Allow-Methods", "POST")
        .header(
            "Access-Control-Allow-Headers",
            "Authorization, Content-Type",
        )
        .header("Access-Control-Max-Age", MAX_AGE_SECS.to_string())
}

/// `response` made readable by a page of `origin`, cookie included.
pub fn allow(response: Response, origin: &Origin) -> Response {
    response
        .header("Access-Control-Allow-Origin", origin.serialized())
        .header("Access-Control-Allow-Credentials", "true")
        .header("Vary", "Origin")
}
