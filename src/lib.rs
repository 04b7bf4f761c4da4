#![forbid(unsafe_code)]
//! wsgate (crate docs come with the core).
pub mod auth;
pub mod config;
pub mod core;
pub mod http;
pub mod shell;
#[cfg(any(test, fuzzing))]
pub mod testkit;
