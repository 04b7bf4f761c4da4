//! Fuzz entry points, one per target, shared by the cargo-fuzz targets in
//! `fuzz/fuzz_targets/` and by `cargo test`, which replays every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the
//! same functions on stable (compiled only for `cfg(test)` and
//! `cfg(fuzzing)`).
//!
//! Each entry point takes arbitrary bytes and asserts properties; a panic
//! is a bug in the code under test or in a property stated here:
//!
//! - [`request_head()`]: the request-head parser and the upgrade checks
//!   (handshake, the one credential, log redaction);
//! - [`jwt()`]: the HS256 verifier, both on raw bytes (anything it accepts
//!   was signed with a configured key) and on tokens built from
//!   fuzzer-chosen claims (its verdict equals an independent model's);
//! - [`params()`]: query, form and cookie decoding and query redaction;
//! - [`proxied()`]: the PROXY protocol header and `X-Forwarded-For`, as
//!   a trusted proxy sends them;
//! - [`core_ops()`]: the sans-IO core driven through [`crate::testkit`] by a
//!   sequence of operations, with its invariants checked after each one.
//!
//! # Layout
//!
//! - this file: the entry points, the byte `Reader` that the `jwt`
//!   target decodes its input with, and the checks shared by several
//!   targets (the redacted query, [`check_log_line`], which the core's
//!   tests use too); the `core_ops` target decodes its input with the
//!   `arbitrary` crate instead, into types derived in `core_ops.rs`;
//! - one file per target: `request_head.rs`, `params.rs`, `proxied.rs`,
//!   `jwt.rs` (with
//!   its independent model of PROTOCOL §5) and `core_ops.rs` (with its
//!   `Driver`, a simulated shell);
//! - `tests.rs`: the corpus replay, the seed inputs, the checks that the
//!   harness reaches deep states and the `core_ops` regressions (as
//!   operation lists).
//!
//! How a target reads its bytes is the format of its checked-in inputs
//! under `fuzz/corpus/` and `fuzz/regressions/`: changing it changes what
//! they mean.

// why: test-only code; nothing outside the crate builds these types.
#![allow(clippy::exhaustive_structs, clippy::exhaustive_enums)]

mod core_ops;
mod jwt;
mod params;
mod proxied;
mod request_head;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

pub use self::core_ops::core_ops;
pub use self::jwt::jwt;
pub use self::params::params;
pub use self::proxied::proxied;
pub use self::request_head::request_head;

/// A key no verifier of the harness holds (neither the `jwt` target's nor
/// the core's): what it signs is forged.
const WRONG_KEY: &[u8] = b"wsgate-fuzzing-wrong-key-0123456789abcdef";

/// Fuzz bytes read one at a time; zeros once they run out.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::from(self.byte()) % items.len()]
    }
}

/// The redacted query keeps nothing but a well-formed `room` piece of the
/// original: it is empty (a query of empty pieces), `[redacted]`,
/// `room=NAME` or `room=NAME&[redacted]`.
fn check_redacted_query(original: &str, redacted: &str) {
    let (room, rest) = match redacted.split_once('&') {
        Some((room, rest)) => (Some(room), Some(rest)),
        None if redacted.starts_with("room=") => (Some(redacted), None),
        None => (None, Some(redacted)),
    };
    if let Some(room) = room {
        let name = room.strip_prefix("room=").expect("a room piece");
        assert!(crate::auth::valid_room_name(name), "{room:?} kept");
        assert!(original.split('&').any(|p| p == room), "{room:?} invented");
    }
    match rest {
        None => {}
        Some("[redacted]") => {}
        Some("") => assert!(room.is_none() && original.split('&').all(str::is_empty)),
        Some(other) => panic!("the log keeps {other:?} of {original:?}"),
    }
}

/// A log line is one line of `key=value` fields: no control, separator,
/// bidirectional or invisible character appears raw, and no key appears
/// twice (a peer-controlled value cannot forge a field: values are quoted,
/// see [`crate::core::quoted`]).
pub fn check_log_line(line: &str) {
    for c in line.chars() {
        assert!(
            !(c.is_control() || crate::auth::forbidden_in_line(c) || crate::auth::is_invisible(c)),
            "a raw {c:?} in a log line: {line:?}"
        );
    }
    let mut keys = HashSet::new();
    let mut rest = line;
    while !rest.is_empty() {
        let token_end = rest.find([' ', '"']).unwrap_or(rest.len());
        let (token, after) = rest.split_at(token_end);
        if let Some(key) = token
            .strip_suffix('=')
            .or_else(|| token.split_once('=').map(|(k, _)| k))
        {
            assert!(
                keys.insert(key.to_string()),
                "key {key:?} twice in {line:?}"
            );
        }
        rest = after;
        if let Some(quoted) = rest.strip_prefix('"') {
            // Skip the quoted value, escapes included.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap_or_else(|| panic!("an unterminated quote in {line:?}"));
            rest = &quoted[end + 1..];
        }
        rest = rest.trim_start_matches(' ');
    }
}
