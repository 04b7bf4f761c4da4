//! Custom authentication for programs that embed wsgate.
//!
//! An [`Authenticate`] looks at each upgrade request before the built-in
//! checks. It may accept it (the program vouches for the user), refuse it,
//! or pass, in which case the next authenticator and finally the built-in
//! token, ticket, cookie and password checks decide. It runs on the event
//! loop: it must answer quickly and never block.

use std::net::SocketAddr;

use crate::http::Request;

/// Who an authenticator vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user's name; must pass [`crate::auth::valid_user_name`], or the
    /// upgrade is refused `401`.
    pub user: String,
    /// The role; must pass [`crate::auth::valid_role`].
    pub role: String,
    /// The only rooms the user may join, if limited.
    pub rooms: Option<Vec<String>>,
}

impl Identity {
    /// `user` with the default role (`member`), in any room.
    pub fn new(user: impl Into<String>) -> Identity {
        Identity {
            user: user.into(),
            role: crate::auth::DEFAULT_ROLE.to_string(),
            rooms: None,
        }
    }

    /// With `role` instead.
    pub fn with_role(mut self, role: impl Into<String>) -> Identity {
        self.role = role.into();
        self
    }

    /// Limited to `rooms`.
    pub fn with_rooms(mut self, rooms: Vec<String>) -> Identity {
        self.rooms = Some(rooms);
        self
    }
}

/// An authenticator's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Open the WebSocket as this identity.
    Accept(Identity),
    /// Refuse with `401` and this short public reason (never the credential).
    Refuse(&'static str),
    /// Not mine: let the next authenticator, then the built-in checks, decide.
    Pass,
}

/// A program's own authentication, chained before the built-in checks.
pub trait Authenticate: Send {
    /// Judges one upgrade request (already a valid WebSocket handshake)
    /// from `peer`, the client's address: through a trusted proxy
    /// (`Config::trusted_proxies`), the client the proxy named, with port
    /// 0 when it did not say one (`X-Forwarded-For`).
    fn authenticate(&self, request: &Request, peer: SocketAddr) -> Verdict;
}
