//! What an embedding program sees of the chat, and how it speaks in it.
//!
//! An [`Observe`] is told of joins, leaves and chat lines, and may answer
//! text-mode commands the server does not know (`/time`); a
//! [`Publication`] is a line the program sends into a room as a user of
//! its own (a bot). Observers run on the event loop, like authenticators:
//! they must answer quickly and never block. A program that needs to speak
//! later (every minute, after a slow lookup) publishes through the shell's
//! [`crate::shell::Publisher`] instead.

use std::fmt;

use crate::auth::{forbidden_in_line, valid_room_name, valid_user_name};

/// An embedding program's view of the chat. Every method has a default
/// that does nothing, so an observer implements only what it needs.
pub trait Observe: Send {
    /// `user`'s first connection joined `room`.
    fn joined(&mut self, room: &str, user: &str) {
        let _ = (room, user);
    }

    /// `user`'s last connection left `room`.
    fn left(&mut self, room: &str, user: &str) {
        let _ = (room, user);
    }

    /// A chat line from a client (lines the program publishes itself are
    /// not reported back), with its room's sequence number.
    fn message(&mut self, room: &str, from: &str, text: &str, seq: u64) {
        let _ = (room, from, text, seq);
    }

    /// A text-mode command the server does not know (`/NAME ARGS`,
    /// `command` without the `/`). Answering `Some(reply)` sends
    /// `System: REPLY` to the sender alone; `None` lets the next observer
    /// answer, and finally the sender gets `System: error: unknown
    /// command`. Commands count against the sender's message rate.
    fn command(&mut self, room: &str, user: &str, command: &str) -> Option<String> {
        let _ = (room, user, command);
        None
    }
}

/// A chat line an embedding program sends into a room as `from`, checked
/// by [`Publication::new`] (the same rules as for clients and their
/// names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    room: String,
    from: String,
    text: String,
}

impl Publication {
    /// A line `text` into `room` from `from`: a valid room name, a valid
    /// user name (so not `System` or a look-alike), and a line without
    /// control characters, line separators or bidi controls.
    pub fn new(room: &str, from: &str, text: &str) -> Result<Publication, PublishError> {
        if !valid_room_name(room) {
            return Err(PublishError::Room);
        }
        if !valid_user_name(from) {
            return Err(PublishError::Name);
        }
        if text.chars().any(forbidden_in_line) {
            return Err(PublishError::Text);
        }
        Ok(Publication {
            room: room.to_string(),
            from: from.to_string(),
            text: text.to_string(),
        })
    }

    /// The room.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// Who speaks.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The line.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Why a [`Publication`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// Not a room name (1–64 characters of `[A-Za-z0-9._-]`).
    Room,
    /// Not a user name a client could have (see docs/PROTOCOL.md: user names).
    Name,
    /// The line holds a control character, a line separator or a bidi
    /// control.
    Text,
    /// The event loop has not taken the lines published before yet.
    Busy,
    /// The server has stopped.
    Stopped,
    /// The line is longer than the server's message limit
    /// (`--max-message`), which a client's line must also fit.
    TooLong,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishError::Room => "not a room name",
            PublishError::Name => "not a valid user name",
            PublishError::Text => "the line holds control characters",
            PublishError::Busy => "too many lines waiting for the event loop",
            PublishError::Stopped => "the server has stopped",
            PublishError::TooLong => "the line is longer than the message limit",
        })
    }
}

impl std::error::Error for PublishError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publications_follow_the_client_rules() {
        assert!(Publication::new("lobby", "clock", "it is noon").is_ok());
        assert_eq!(
            Publication::new("bad room", "clock", "x"),
            Err(PublishError::Room)
        );
        assert_eq!(
            Publication::new("lobby", "System", "x"),
            Err(PublishError::Name)
        );
        assert_eq!(
            Publication::new("lobby", "clock", "a\nSystem: b"),
            Err(PublishError::Text)
        );
    }
}
