//! The users file (`--users FILE`) and the demo users.
//!
//! One user a line, `NAME:ROLE:HASH`:
//!
//! ```text
//! # wsgate users
//! alice:member:$pbkdf2-sha256$i=600000,l=32$SsssfW1+zk2mzJ8ZC0mGLg$w2LMzNE6anJAAc5ExkxgFgLpMKhx5E2GtFKagozgezs
//! carol:admin:$argon2id$v=19$m=19456,t=2,p=1$…$…
//! ```
//!
//! `HASH` comes from `wsgate hash-password` (see [`super::password`] for
//! the hashes accepted). The file is checked whole at start-up: the server
//! does not start with a line it cannot use, so a typo is found at once
//! rather than at some user's first login.
//!
//! Checking a password is slow on purpose (hundreds of milliseconds), so
//! [`Users::check`] runs on a helper thread, never on the event loop; the
//! table is `Send + Sync` and shared in an `Arc`.

use std::collections::BTreeMap;
use std::fmt;

use super::password::{validate_hash, verify_password};
use super::{Credential, DEFAULT_ROLE, MAX_ROLE_LEN, Principal, valid_role};

/// The demo users' hashes, made once with
/// [`hash_password`](super::password::hash_password) and pasted here so
/// that start-up computes nothing. `alice` / `wonderland`.
const ALICE_HASH: &str = "$pbkdf2-sha256$i=600000,l=32$SsssfW1+zk2mzJ8ZC0mGLg$w2LMzNE6anJAAc5ExkxgFgLpMKhx5E2GtFKagozgezs";

/// `bob` / `builder`, made as [`ALICE_HASH`].
const BOB_HASH: &str = "$pbkdf2-sha256$i=600000,l=32$7PBDvGR5eCrEejAP/xlWBw$egNtoQakPnJBCri6tE78xp2+bNfwaED/4JEOYthXOCY";

/// What an unknown name is checked against, so that it costs what a wrong
/// password costs: made by `hash_password` (same scheme and parameters as
/// `wsgate hash-password` writes) from 32 random bytes that were then
/// thrown away. Whether it matches does not matter: an unknown name is
/// refused either way.
const DUMMY_HASH: &str = "$pbkdf2-sha256$i=600000,l=32$hsQkwKJFmYaIgg0ysi83wA$a5zJIcRjs/vE6WgUmqRoScLxzO/larla8o3QUXsBvpI";

/// One users-file entry: a name, a role and a password hash.
///
/// `Debug` shows the name and role, never the hash.
#[derive(Clone)]
pub struct User {
    name: String,
    role: String,
    hash: String,
}

impl User {
    /// The user's name (a [`valid_user_name`](super::valid_user_name)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's role (a [`valid_role`]).
    pub fn role(&self) -> &str {
        &self.role
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A user whose password was checked. Only [`Users::check`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedUser {
    name: String,
    role: String,
}

impl VerifiedUser {
    /// The user's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The user's role, from the users file.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The principal of a connection that logged in with this password
    /// (the opt-in password upgrade): [`Credential::Password`], no room
    /// limit.
    pub fn into_principal(self) -> Principal {
        Principal::new(self.name, self.role, None, Credential::Password)
    }
}

/// The table of users that may log in with a password.
///
/// Names are compared exactly (case-sensitive), as token `sub`s are.
#[derive(Clone, Debug, Default)]
pub struct Users {
    by_name: BTreeMap<String, User>,
}

impl Users {
    /// Parses a users file: one `NAME:ROLE:HASH` a line.
    ///
    /// - Lines are trimmed of surrounding white space; blank lines and
    ///   lines starting with `#` are skipped. A leading UTF-8 byte-order
    ///   mark is ignored; `\r\n` line ends are accepted.
    /// - The line is split at its first two `:` (a name holds none, and
    ///   neither does a PHC string).
    /// - `NAME` must pass [`check_user_name`](super::names::check_user_name) (so `System` is refused),
    ///   `ROLE` must pass [`valid_role`] (it is required: an empty role is
    ///   an error, not [`DEFAULT_ROLE`]), and `HASH` must pass
    ///   [`validate_hash`].
    /// - A name may appear once.
    ///
    /// A file with no users parses to an empty table; whether that is
    /// allowed is the caller's choice ([`Users::is_empty`]).
    ///
    /// # Errors
    /// The first bad line: its 1-based number and why. The reason never
    /// contains the hash (a plaintext password pasted by mistake is not
    /// echoed either) and never the name (it may hold control characters).
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut by_name: BTreeMap<String, User> = BTreeMap::new();
        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let error = |reason: String| UsersError {
                line: line_no,
                reason,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let name = fields.next().unwrap_or_default();
            let (Some(role), Some(hash)) = (fields.next(), fields.next()) else {
                return Err(error("expected NAME:ROLE:HASH".to_string()));
            };
            if let Err(e) = super::names::check_user_name(name) {
                return Err(error(format!(
                    "invalid user name: {e} (see docs/PROTOCOL.md: user names)"
                )));
            }
            if role.is_empty() {
                return Err(error("missing role".to_string()));
            }
            if !valid_role(role) {
                return Err(error(format!(
                    "invalid role (1 to {MAX_ROLE_LEN} characters of [A-Za-z0-9_-])"
                )));
            }
            if let Err(e) = validate_hash(hash) {
                return Err(error(format!(
                    "invalid password hash: {e} (make one with `wsgate hash-password`)"
                )));
            }
            if let Some(first) = first_line.get(name) {
                return Err(error(format!(
                    "duplicate user name (first on line {first})"
                )));
            }
            first_line.insert(name.to_string(), line_no);
            by_name.insert(
                name.to_string(),
                User {
                    name: name.to_string(),
                    role: role.to_string(),
                    hash: hash.to_string(),
                },
            );
        }
        Ok(Users { by_name })
    }

    /// The users of a server started without `--users`: `alice` /
    /// `wonderland` and `bob` / `builder`, both of role [`DEFAULT_ROLE`].
    ///
    /// Their hashes are constants: building this table computes nothing.
    pub fn demo() -> Users {
        // why: the users file's own parser, rather than a second way of
        // building the table (the binary's size budget is tight).
        let text = format!("alice:{DEFAULT_ROLE}:{ALICE_HASH}\nbob:{DEFAULT_ROLE}:{BOB_HASH}\n");
        Users::parse(&text).expect("the demo users are a valid users file")
    }

    /// How many users the table holds.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when the table holds no user (nobody can log in with a password).
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The user called exactly `name`, if any.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// Checks `password` for the user `name`; `Some` only when both match.
    ///
    /// Slow on purpose: run it off the event loop. An unknown name (an
    /// invalid one included) is verified against a fixed dummy PBKDF2 hash
    /// of the same scheme and parameters `wsgate hash-password` writes, so
    /// it costs what a wrong password costs for such a user, and the answer
    /// is `None` in both cases. The match is only as close as the
    /// parameters: a user whose hash is Argon2id, or PBKDF2 with more than
    /// the default rounds, costs a different time from an unknown name.
    pub fn check(&self, name: &str, password: &str) -> Option<VerifiedUser> {
        match self.by_name.get(name) {
            Some(user) if verify_password(&user.hash, password) => Some(VerifiedUser {
                name: user.name.clone(),
                role: user.role.clone(),
            }),
            Some(_) => None,
            None => {
                // why black_box: the result is unused, and the whole point
                // of the call is the time it takes.
                std::hint::black_box(verify_password(std::hint::black_box(DUMMY_HASH), password));
                None
            }
        }
    }
}

/// Why a users file was refused: the first bad line and what is wrong
/// with it.
///
/// A start-up error; it never reaches a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsersError {
    /// The 1-based number of the bad line.
    pub line: usize,
    /// What is wrong, as a short phrase; never contains the line's hash.
    pub reason: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for UsersError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Valid PHC strings; parsing validates, it computes nothing, so their
    /// salts and outputs need not belong together.
    const PBKDF2: &str = "$pbkdf2-sha256$i=600000,l=32$c2FsdHNhbHRzYWx0c2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    /// The same at 1,000 rounds.
    const WEAK: &str = "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHRzYWx0c2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn parse_err(text: &str) -> UsersError {
        Users::parse(text).expect_err(text)
    }

    #[test]
    fn good_file() {
        let text = format!(
            "\u{feff}# wsgate users\n\
             \n\
             alice:member:{PBKDF2}\r\n\
             \t  # indented comment\n\
             \x20 Bob Smith:admin:{ARGON2ID}  \n\
             ünïcode:viewer:{PBKDF2}\n\
             \n"
        );
        let users = Users::parse(&text).unwrap();
        assert_eq!(users.len(), 3);
        assert!(!users.is_empty());
        assert_eq!(users.get("alice").unwrap().role(), "member");
        assert_eq!(users.get("Bob Smith").unwrap().role(), "admin");
        assert_eq!(users.get("Bob Smith").unwrap().name(), "Bob Smith");
        assert_eq!(users.get("ünïcode").unwrap().role(), "viewer");
        assert!(users.get("Alice").is_none());
        assert!(users.get("bob").is_none());
    }

    #[test]
    fn empty_file() {
        for text in ["", "\n\n", "# nobody\n", "\u{feff}"] {
            assert!(Users::parse(text).unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn each_error_with_its_line() {
        // (file body after one good line, line of the error, words of the reason)
        let cases: &[(String, &str)] = &[
            ("alice".to_string(), "expected NAME:ROLE:HASH"),
            ("alice:member".to_string(), "expected NAME:ROLE:HASH"),
            (format!(":member:{PBKDF2}"), "invalid user name"),
            (format!("a\u{7}b:member:{PBKDF2}"), "invalid user name"),
            (
                format!("{}:member:{PBKDF2}", "x".repeat(65)),
                "invalid user name",
            ),
            (format!("System:member:{PBKDF2}"), "reserved"),
            (format!("system:member:{PBKDF2}"), "reserved"),
            (format!("SYSTEM:admin:{PBKDF2}"), "reserved"),
            (format!("alice ::{PBKDF2}"), "invalid user name"),
            (format!("carol::{PBKDF2}"), "missing role"),
            (format!("carol:mem ber:{PBKDF2}"), "invalid role"),
            (format!("carol:a.b:{PBKDF2}"), "invalid role"),
            (format!("carol:{}:{PBKDF2}", "r".repeat(33)), "invalid role"),
            (
                "carol:member:".to_string(),
                "invalid password hash: not a PHC",
            ),
            (format!("carol:member:{WEAK}"), "i=600000"),
            (
                format!("carol:member:{PBKDF2}:extra"),
                "invalid password hash",
            ),
            (format!("carol:member: {PBKDF2}"), "invalid password hash"),
            (
                format!("bob:member:{PBKDF2}"),
                "duplicate user name (first on line 2)",
            ),
        ];
        for (bad, want) in cases {
            let text = format!("# users\nbob:member:{PBKDF2}\n\n{bad}\ndave:member:{PBKDF2}\n");
            let err = parse_err(&text);
            assert_eq!(err.line, 4, "{bad:?}: {err}");
            assert!(err.reason.contains(want), "{bad:?}: {err}");
            assert_eq!(err.to_string(), format!("line 4: {}", err.reason));
        }
    }

    #[test]
    fn first_error_wins() {
        let err = parse_err(&format!("alice:member:{WEAK}\nSystem:member:{PBKDF2}\n"));
        assert_eq!(err.line, 1, "{err}");
    }

    #[test]
    fn hash_is_never_echoed() {
        // A plaintext password pasted where the hash belongs, a weak hash,
        // a hash of an unknown algorithm.
        for (secret, line) in [
            (
                "hunter2-plaintext".to_string(),
                "carol:member:hunter2-plaintext",
            ),
            (WEAK.to_string(), &*format!("carol:member:{WEAK}")),
            (
                "$scrypt$ln=17,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAECAwQFBgcICQoL".to_string(),
                "carol:member:$scrypt$ln=17,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAECAwQFBgcICQoL",
            ),
        ] {
            let err = parse_err(line);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&secret), "{shown}");
            assert!(!shown.contains("c2FsdHNhbHRzYWx0c2FsdA"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn debug_hides_the_hash() {
        let users = Users::parse(&format!("alice:member:{PBKDF2}")).unwrap();
        let user = users.get("alice").unwrap();
        for shown in [
            format!("{user:?}"),
            format!("{users:?}"),
            format!("{:?}", Users::demo()),
        ] {
            assert!(!shown.contains("pbkdf2"), "{shown}");
            assert!(!shown.contains("AAECAwQF"), "{shown}");
            assert!(!shown.contains(&ALICE_HASH[30..]), "{shown}");
        }
        assert!(format!("{user:?}").contains("alice"));
    }

    #[test]
    fn demo_and_dummy_hashes_are_the_default_kind() {
        for hash in [ALICE_HASH, BOB_HASH, DUMMY_HASH] {
            assert_eq!(validate_hash(hash), Ok(()));
            // The dummy costs what a default hash costs only if it is one.
            assert!(hash.starts_with("$pbkdf2-sha256$i=600000,l=32$"), "{hash}");
        }
        let demo = Users::demo();
        assert_eq!(demo.len(), 2);
        for name in ["alice", "bob"] {
            assert_eq!(demo.get(name).unwrap().role(), DEFAULT_ROLE);
        }
    }

    #[test]
    fn demo_logins() {
        let demo = Users::demo();
        let alice = demo.check("alice", "wonderland").expect("alice/wonderland");
        assert_eq!((alice.name(), alice.role()), ("alice", "member"));
        assert_eq!(demo.check("alice", "wrong"), None);
        assert_eq!(demo.check("carol", "wonderland"), None);
        assert_eq!(demo.check("System", "wonderland"), None);
        let bob = demo.check("bob", "builder").expect("bob/builder");
        assert_eq!((bob.name(), bob.role()), ("bob", "member"));

        let principal = alice.into_principal();
        assert_eq!(principal.user(), "alice");
        assert_eq!(principal.role(), "member");
        assert_eq!(principal.rooms(), None);
        assert_eq!(principal.credential(), &Credential::Password);
    }

    #[test]
    fn shared_with_a_worker_thread() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Users>();
        send_sync::<VerifiedUser>();
        send_sync::<UsersError>();
    }
}
