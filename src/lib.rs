#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
//! wsgate: a small, single-threaded WebSocket chat and broadcast server that
//! authenticates every connection before it upgrades.
//!
//! # The picture
//!
//! ```text
//!            ┌──────────── shell.rs (mio, std::net, the clock) ─────────────┐
//!  sockets ─►│ accept · read (64 KiB budget/turn) · write (1 write/turn) │──► sockets
//!            └───────┬──────────────────────────────────────────▲────────────┘
//!          handle_*(…, now)                              poll_transmit / poll_action
//!            ┌───────▼──────────────────────────────────────────┴────────────┐
//!            │ core::Server: Registry (connections, rooms, indexes, timers) │
//!            │  handlers: requests · handshake · websocket; auth; observers  │
//!            │  Http ─► (auth) ─► Ws ─► Closing ─► Lingering                 │
//!            └───────┬──────────────────────────────────────────────────────┘
//!                    ▼
//!        http (httparse, forms, cookies)   auth (jwt, password, users, session)   config
//! ```
//!
//! The core never touches a socket or the clock; the shell is the only
//! module that does. Flow control is the core's: before each read the
//! shell asks [`core::Server::should_read`], and a connection held back
//! (its queue over its limit, or all queues at the budget) is read again
//! when the core says [`core::Action::Resume`]; a slow consumer is judged
//! by what the kernel took from it, never by the size of a burst. Dependencies point one way: `shell → core → {http,
//! auth, config}`. Password checks, slow on purpose, run on a helper thread
//! whose results return through a `mio::Waker`.
//!
//! # Threat model
//!
//! Peers are strangers until a credential checks out: nothing a peer sends
//! before that can create a WebSocket ([`core`] only opens one for an
//! [`auth::Principal`], which only the verifiers build, and the core for an
//! embedding program's [`core::Authenticate`] verdict), allocate beyond the
//! documented limits ([`config::Limits`]), or stall other connections.
//! Tokens, passwords and session ids never reach a log line or a response
//! body; secrets are compared in constant time.
//!
//! # Embedding
//!
//! Run the server inside your own program, with your own credential check
//! chained before the built-in token, ticket, cookie and password checks
//! ([`core::Authenticate`]), observers of joins, leaves, lines and unknown
//! commands ([`core::Observe`]), and a [`shell::Publisher`] to post lines
//! into rooms from any thread (`examples/bot.rs` is a whole program).
//! ARCHITECTURE.md in the repository is the map of the code.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use wsgate::auth::users::Users;
//! use wsgate::config::Config;
//! use wsgate::core::{Authenticate, Identity, Verdict};
//! use wsgate::http::Request;
//! use wsgate::shell::Gateway;
//!
//! /// Accepts `X-Api-Key: k-robot` as the user `robot`.
//! struct ApiKeys;
//!
//! impl Authenticate for ApiKeys {
//!     fn authenticate(&self, request: &Request, _peer: SocketAddr) -> Verdict {
//!         match request.header("x-api-key") {
//!             Ok(Some("k-robot")) => Verdict::Accept(Identity::new("robot")),
//!             Ok(Some(_)) => Verdict::Refuse("unknown api key"),
//!             _ => Verdict::Pass, // no key: tokens and cookies still work
//!         }
//!     }
//! }
//!
//! let mut config = Config::with_secret("a secret of at least thirty-two bytes");
//! config.listen = "127.0.0.1:0".parse().unwrap();
//! let mut gateway = Gateway::bind(config, Arc::new(Users::demo())).unwrap();
//! gateway.add_authenticator(Box::new(ApiKeys));
//! let addr = gateway.local_addr().unwrap();
//! let stop = gateway.stop_handle();
//! let server = std::thread::spawn(move || gateway.run());
//!
//! let request = tungstenite::http::Request::builder()
//!     .uri(format!("ws://{addr}/ws"))
//!     .header("Host", addr.to_string())
//!     .header("X-Api-Key", "k-robot")
//!     .header("Connection", "Upgrade")
//!     .header("Upgrade", "websocket")
//!     .header("Sec-WebSocket-Version", "13")
//!     .header("Sec-WebSocket-Key", tungstenite::handshake::client::generate_key())
//!     .body(())
//!     .unwrap();
//! let stream = std::net::TcpStream::connect(addr).unwrap();
//! let (mut ws, _) = tungstenite::client::client(request, stream).unwrap();
//! ws.send(tungstenite::Message::text("beep")).unwrap();
//! let mut lines = Vec::new();
//! while lines.len() < 2 {
//!     if let tungstenite::Message::Text(t) = ws.read().unwrap() {
//!         lines.push(t.to_string());
//!     }
//! }
//! assert_eq!(lines, ["System: robot joined the chat", "robot: beep"]);
//!
//! drop(ws);
//! stop.stop(); // graceful, as SIGTERM
//! server.join().unwrap().unwrap();
//! ```

pub mod auth;
pub mod config;
pub mod core;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod http;
/// The Redis link (cargo feature `redis`): the `wsgate-redis` crate's
/// `link`, whose module documentation has its threads, keys and scripts.
#[cfg(feature = "redis")]
pub mod redis {
    pub use wsgate_redis::link::*;
}
pub mod shell;
#[cfg(any(test, fuzzing))]
pub mod testkit;
#[cfg(feature = "tls")]
pub mod tls;
