//! Integration tests of wsgate over real loopback sockets.
//!
//! One test binary (so `cargo test` links it once), one module per area:
//!
//! - `common`: the fixture ([`common::TestServer`]), a raw HTTP client, a
//!   WebSocket client on tungstenite, token minting;
//! - `http`: the plain HTTP endpoints (PROTOCOL §1);
//! - `upgrade`: refusals of `GET /ws` and each credential carrier (§2, §5);
//! - `session`: login cookies, cookie upgrades, logout (§1, §2, §6);
//! - `chat`: text mode, JSON mode and frame-level endings (§3, §4, §6);
//! - `tokens`: which JWTs are accepted (§5);
//! - `ticket`: `POST /ws-ticket` and `?ticket=` (§1, §2);
//! - `life`: heartbeats, expiry, `/refresh`, roles, message rate (§3, §7);
//! - `limits`: slow consumers, handshake timeout, connection and rate
//!   limits (§2, §7);
//! - `cli`: the `wsgate` binary itself, signals included, and `websocat`;
//! - `quickstart`: README.md's commands, run as written against the binary;
//! - `tls` (feature `tls`): HTTPS and WSS with real clients, plain HTTP
//!   to the TLS port, stalled and flooding handshakes, `SIGHUP` reloads;
//! - `nginx` (feature `tls`, for its test certificates): `deploy/nginx.conf`
//!   run by a real nginx in front of a test server;
//! - `proxies` (feature `tls`): `--trusted-proxy` behind real nginx (its
//!   `X-Forwarded-For`, its stream module's PROXY v1 header before
//!   wsgate's own TLS) and HAProxy (a PROXY v2 header);
//! - `adversarial`: attacks on heads, frames, queues, connection slots,
//!   credentials and origins, each beside an innocent chat that must go on
//!   (§2, §6, §7).
//!
//! Rules: every server listens on `127.0.0.1:0`; every socket read has a
//! timeout, so a bug fails a test instead of hanging it; nothing asserts on
//! elapsed time; waiting for the server is a poll with a deadline.

mod adversarial;
mod bystanders;
mod chat;
mod cli;
mod common;
mod embed;
mod hardening;
mod http;
mod life;
mod limits;
#[cfg(feature = "tls")]
mod nginx;
#[cfg(feature = "tls")]
mod proxies;
mod quickstart;
#[cfg(feature = "redis")]
mod scaleout;
mod session;
mod ticket;
#[cfg(feature = "tls")]
mod tls;
mod tokens;
mod upgrade;
