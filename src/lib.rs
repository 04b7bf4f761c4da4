#![forbid(unsafe_code)]
#![warn(missing_docs)]
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
//!            │ core::Server: slab of connections · rooms · sessions · JWT   │
//!            │  Http ─► (auth) ─► Ws ─► Closing ─► Lingering                 │
//!            └───────┬──────────────────────────────────────────────────────┘
//!                    ▼
//!        http (httparse, forms, cookies)   auth (jwt, password, users, session)   config
//! ```
//!
//! The core never touches a socket or the clock; the shell is the only
//! module that does. Dependencies point one way: `shell → core → {http,
//! auth, config}`. Password checks, slow on purpose, run on a helper thread
//! whose results return through a `mio::Waker`.
//!
//! # Threat model
//!
//! Peers are strangers until a credential checks out: nothing a peer sends
//! before that can create a WebSocket ([`core`] only opens one for an
//! [`auth::Principal`], which only the verifiers build), allocate beyond the
//! documented limits ([`config::Limits`]), or stall other connections.
//! Tokens, passwords and session ids never reach a log line or a response
//! body; secrets are compared in constant time.
//!
//! # Embedding
//!
//! ```no_run
//! use std::sync::Arc;
//! use wsgate::auth::users::Users;
//! use wsgate::config::{Config, SecretKey};
//! use wsgate::shell::Gateway;
//!
//! let config = Config {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     secrets: vec![SecretKey(b"a secret of at least thirty-two bytes".to_vec())],
//!     ..Config::default()
//! };
//! let gateway = Gateway::bind(config, Arc::new(Users::demo())).unwrap();
//! println!("listening on {}", gateway.local_addr().unwrap());
//! let stop = gateway.stop_handle();
//! let server = std::thread::spawn(move || gateway.run());
//! // … later:
//! stop.stop();
//! server.join().unwrap().unwrap();
//! ```

pub mod auth;
pub mod config;
pub mod core;
pub mod http;
pub mod shell;
#[cfg(any(test, fuzzing))]
pub mod testkit;
