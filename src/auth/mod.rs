//! Authentication: who a peer is, proved before any WebSocket exists.
//!
//! - [`jwt`]: our own HS256 verifier and signer (PROTOCOL §5).
//! - [`password`]: PHC-format password hashes (PBKDF2-HMAC-SHA256).
//! - [`users`]: the users file and the demo users.
//! - `session`: the server-side session store behind the login cookie.
//! - [`names`]: what a user name may hold, and the reserved names.
//!
//! The one output of this module that matters is a [`Principal`]: a value
//! that only the verifiers here can build (and the core, for an embedding
//! program's own authenticator's verdict). A connection cannot become a
//! WebSocket without one, so skipping authentication does not compile.
//!
//! This module depends on nothing else inside the crate.

pub mod jwt;
pub mod names;
pub mod password;
pub(crate) mod secret_id;
pub(crate) mod session;
pub mod users;

use std::fmt;
use std::sync::Arc;

pub use names::{NameError, check_user_name, is_reserved_name};

/// The longest user name accepted, in bytes.
pub const MAX_USER_NAME_LEN: usize = 64;

/// The name the server speaks as; no user, token `sub` or login may take it,
/// nor anything that only looks like it: see [`is_reserved_name`] (so
/// `system`, `SYSTEM` and Cyrillic `Ѕуѕtеm` cannot pose as it).
pub const SYSTEM_NAME: &str = "System";

/// True when `name` may be a user's name: 1 to [`MAX_USER_NAME_LEN`] bytes,
/// no `:` (it separates name from line in text mode), no control,
/// invisible or formatting characters (see [`is_invisible`]), nothing
/// unassigned in Unicode 14.0, no leading or trailing white space,
/// unchanged by Unicode normalization NFKC (no compatibility characters
/// such as fullwidth `Ｓ` or `ſ`), letters precomposed (`é`, not
/// `e\u{301}`), and not reserved ([`is_reserved_name`]: [`SYSTEM_NAME`] in any
/// case or in look-alike letters). [`check_user_name`] says which rule a
/// name breaks; the [`names`] module has the details.
pub fn valid_user_name(name: &str) -> bool {
    check_user_name(name).is_ok()
}

/// Characters that change how text around them is shown without showing
/// themselves: every Default_Ignorable_Code_Point (zero-width spaces and
/// joiners, variation selectors, the combining grapheme joiner, Hangul
/// fillers, tags, …), every format character (general category `Cf`:
/// bidirectional overrides and isolates, Arabic number signs, musical
/// beam controls, …) and the line and paragraph separators, as of Unicode
/// 14.0 (plus the format characters U+13439..U+1343F of 15.0). A name made
/// with them could pass for another (`System\u{200B}`), and a chat line
/// with them could render as someone else's.
pub fn is_invisible(c: char) -> bool {
    names::is_invisible(c)
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
#[non_exhaustive]
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

/// 32 bytes from the operating system, to seed a generator.
///
/// # Panics
/// As [`random_bytes`].
pub fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    random_bytes(&mut seed);
    seed
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
        // More cases, each with the reason it is refused, in names.rs.
        for ok in [
            "alice",
            "Bob Smith",
            "\u{FC}n\u{EF}code",
            "Jos\u{E9}",
            "张伟",
            "Иван",
            "a",
            &"x".repeat(64),
        ] {
            assert!(valid_user_name(ok), "{ok:?}");
        }
        for bad in [
            "",
            "System",
            "system",
            "SYSTEM",
            "\u{405}\u{443}\u{455}t\u{435}m", // Cyrillic Ѕуѕtеm
            "\u{FF33}\u{FF59}\u{FF53}\u{FF54}\u{FF45}\u{FF4D}", // fullwidth
            "Sy\u{17F}tem",
            "System\u{34F}",
            "System\u{FE0F}",
            "System\u{3164}",
            "System\u{1D173}",
            "System\u{1BCA0}",
            "Jose\u{301}",
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

    #[test]
    fn invisible_characters() {
        for c in [
            '\u{AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2028}',
            '\u{FE0F}',
            '\u{E0001}',
        ] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in ['a', ' ', '\u{1F642}', '\u{2764}', '\u{E9}'] {
            assert!(!is_invisible(c), "{c:?}");
        }
        // Chat lines keep what emoji sequences need.
        assert!(!forbidden_in_line('\u{200D}') && !forbidden_in_line('\u{FE0F}'));
        assert!(forbidden_in_line('\u{202E}') && forbidden_in_line('\n'));
    }
}
