//! Unit tests of the core on a virtual clock (`crate::testkit::Harness`),
//! one file per behaviour: plain HTTP (`http`), the WebSocket upgrade
//! (`upgrade`), login, cookies and tickets (`session`), chat (`chat`),
//! WebSocket frames (`frames`), expiry, heartbeats, shutdown and metrics
//! (`lifecycle`), caps and rates (`limits`), flow control (`flow`), the
//! second hardening round (`hardening`), the embedding API
//! (`embedding`), trusted proxies (`proxies`), and the handlers on their own, without a server
//! (`handlers`). This file holds only the module list and the helpers
//! several of them share.

use serde_json::Value;

use crate::testkit::{Harness, form_post};

mod browser;
mod chat;
#[cfg(feature = "redis")]
mod cluster;
#[cfg(feature = "redis")]
mod cluster_presence;
#[cfg(feature = "redis")]
mod cluster_resume;
#[cfg(feature = "redis")]
mod cluster_sessions;
mod embedding;
mod flow;
mod frames;
mod handlers;
mod hardening;
mod http;
mod lifecycle;
mod limits;
mod proxies;
mod resume;
mod session;
mod upgrade;

/// Logs in with the form and returns the cookie pair (`__Host-wsgate=ID`).
fn login(h: &mut Harness, user: &str, password: &str) -> String {
    let (_, r) = h.request(&form_post(
        "/login",
        &format!("username={user}&password={password}"),
    ));
    assert_eq!(r.status, 204, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age="),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert!(pair.starts_with("__Host-wsgate="));
    pair.to_string()
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).expect("a JSON body")
}

/// Opens a JSON-mode WebSocket for `user` in `room`, `query` added to the
/// target (`&since=…`).
fn open_json(h: &mut Harness, user: &str, room: &str, query: &str) -> crate::core::ConnId {
    let token = h.token(user, 3600);
    let (id, r) = h.upgrade(
        &format!("/ws?room={room}{query}"),
        &format!("Authorization: Bearer {token}\r\nSec-WebSocket-Protocol: wsgate.json\r\n"),
    );
    assert_eq!(r.status, 101, "{}", r.body);
    id
}

/// The JSON messages the client of `id` can read now.
fn json_messages(h: &mut Harness, id: crate::core::ConnId) -> Vec<Value> {
    let texts = h.texts(id);
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}
