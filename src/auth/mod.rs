//! Authentication: who a peer is, proved before any WebSocket exists.
//!
//! - [`jwt`]: our own HS256 verifier and signer (PROTOCOL §5).
//! - [`password`]: PHC-format password hashes (PBKDF2-HMAC-SHA256).
//! - [`users`]: the users file and the demo users.
//! - [`session`]: the server-side session store behind the login cookie.
//!
//! The one output of this module that matters is a [`Principal`]: a value
//! that only the verifiers here can build. A connection cannot become a
//! WebSocket without one, so skipping authentication does not compile.
//!
//! This module depends on nothing else inside the crate.

pub mod jwt;
pub mod password;
pub mod session;
pub mod users;

use std::fmt;
use std::sync::Arc;

/// The longest user name accepted, in bytes.
pub const MAX_USER_NAME_LEN: usize = 64;

/// The name the server speaks as; no user, token `sub` or login may take it
/// (compared without regard to ASCII case, so `system` cannot pose as it).
pub const SYSTEM_NAME: &str = "System";

/// True when `name` may be a user's name: 1 to [`MAX_USER_NAME_LEN`] bytes,
/// no `:` (it separates name from line in text mode), no control or
/// invisible formatting characters (see [`is_invisible`]), no leading or
/// trailing white space, and not [`SYSTEM_NAME`] in any ASCII case.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME_LEN
        && !name.contains(':')
        && !name.chars().any(|c| c.is_control() || is_invisible(c))
        && name.trim() == name
        && !name.eq_ignore_ascii_case(SYSTEM_NAME)
}

/// Characters that change how text around them is shown without showing
/// themselves: line and paragraph separators, bidirectional overrides and
/// isolates, zero-width characters, and other Unicode format characters
/// (`Cf`) that names have no use for. A name made with them could pass
/// for another (`System\u{200B}`), and a chat line with them could render
/// as someone else's.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}'
    )
}

/// True for the characters a chat line may not hold: controls other than
/// tab, line and paragraph separators, and bidirectional controls. (Zero
/// width joiners stay allowed: emoji sequences need them.)
pub fn forbidden_in_line(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The longest room name accepted, in bytes.
pub const MAX_ROOM_NAME_LEN: usize = 64;

/// True when `name` may be a room's name: 1 to [`MAX_ROOM_NAME_LEN`]
/// characters of `[A-Za-z0-9._-]` (PROTOCOL §2).
pub fn valid_room_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The longest role name accepted, in bytes.
pub const MAX_ROLE_LEN: usize = 32;

/// True when `role` may be a role's name: 1 to [`MAX_ROLE_LEN`]
/// characters of `[A-Za-z0-9_-]`.
pub fn valid_role(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= MAX_ROLE_LEN
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The role a credential carries when it names none.
pub const DEFAULT_ROLE: &str = "member";

/// How a principal proved who it is; decides how its connections end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A JWT; the connection lives until `exp_ms` (plus leeway).
    Token {
        /// The token's `exp`, in milliseconds since the UNIX epoch.
        exp_ms: u64,
    },
    /// A server-side session from `POST /login`.
    Session {
        /// The store's handle for the session (never the cookie value).
        handle: session::SessionHandle,
    },
    /// A password checked by the server itself (opt-in upgrade).
    Password,
    /// Accepted by an embedding program's own authenticator.
    Custom,
}

/// An authenticated identity. Only the verifiers of this module build one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Shared (not copied) by the core's per-user and per-room tables.
    user: Arc<str>,
    role: String,
    rooms: Option<Vec<String>>,
    credential: Credential,
}

impl Principal {
    /// Built by the verifiers only; `user` must already be a valid name.
    pub(crate) fn new(
        user: String,
        role: String,
        rooms: Option<Vec<String>>,
        credential: Credential,
    ) -> Self {
        debug_assert!(valid_user_name(&user));
        Principal {
            user: Arc::from(user),
            role,
            rooms,
            credential,
        }
    }

    /// A token refresh: the new expiry, role and rooms of a token for the
    /// same user. Only token principals change.
    pub(crate) fn refresh(&mut self, exp_ms: u64, role: String, rooms: Option<Vec<String>>) {
        if let Credential::Token { exp_ms: old } = &mut self.credential {
            *old = exp_ms;
            self.role = role;
            self.rooms = rooms;
        }
    }

    /// The user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user's name, shared: tables keyed by user hold this instead of
    /// a copy.
    pub fn user_shared(&self) -> &Arc<str> {
        &self.user
    }

    /// The user's role (`member` unless the credential says otherwise).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The only rooms this principal may join, when its credential limits them.
    pub fn rooms(&self) -> Option<&[String]> {
        self.rooms.as_deref()
    }

    /// How the principal proved who it is.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user)
    }
}

/// Fills `buf` with random bytes from the operating system.
///
/// # Panics
/// When the OS has no randomness to give: a server that cannot make
/// session ids or secrets must not run.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["alice", "Bob Smith", "ünïcode", "a", &"x".repeat(64)] {
            assert!(valid_user_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            "System",
            "system",
            "SYSTEM",
            "a:b",
            "tab\there",
            "nl\n",
            " lead",
            "trail ",
            "System\u{200B}",
            "al\u{202E}ice",
            "a\u{2028}b",
            "\u{FEFF}bob",
            &"x".repeat(65),
        ] {
            assert!(!valid_user_name(bad), "{bad:?}");
        }
    }
}
