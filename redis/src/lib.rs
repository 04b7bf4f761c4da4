//! wsgate's link to Redis, for scale-out (`--redis`, wsgate's cargo
//! feature `redis`): several wsgate processes form one chat through one
//! Redis.
//!
//! - [`types`]: what wsgate's core and the link say to each other (pure
//!   data, always built: the core speaks it with or without a link);
//! - [`RedisUrl`]: `--redis redis://[user:password@]host:port/db`;
//! - `link` (feature `link`): the link itself, two helper threads that
//!   store and fan out messages and answer questions about sessions,
//!   tickets, presence and the rooms' streams (its module documentation
//!   has the keys, scripts and events).
//!
//! A crate of its own so that it is built for size (`opt-level = "s"`):
//! the link waits on Redis, not on its CPU, and wsgate's deployment build
//! (`--features tls,redis`) must fit 2 MiB.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

#[cfg(feature = "link")]
pub mod link;
pub mod types;
mod url;

pub use url::RedisUrl;
