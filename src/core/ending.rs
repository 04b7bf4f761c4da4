//! Why the server ends a WebSocket (PROTOCOL §6): one name for each
//! ending, with its close code and the short reason sent in the close
//! frame. Codes `4xxx` mirror HTTP statuses, as graphql-ws does.

use tungstenite::protocol::frame::coding::CloseCode;

/// An ending the server decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `1001`: SIGTERM or SIGINT, after the queue is written.
    ShuttingDown,
    /// `1001`: nothing heard, pong included, for two ping intervals.
    PingTimeout,
    /// `1002`: the peer broke RFC 6455.
    ProtocolError,
    /// `1003`: a binary frame (chat is text).
    Binary,
    /// `1007`: a text frame that is not UTF-8.
    InvalidUtf8,
    /// `1009`: a message (or the cost of its fragments) over the limit.
    TooBig,
    /// `1013`: the queue did not drain.
    SlowConsumer,
    /// `4401`: the token's `exp` (plus leeway) passed.
    TokenExpired,
    /// `4401`: the session reached its absolute limit, or was evicted.
    SessionExpired,
    /// `4403`: the session was logged out.
    LoggedOut,
    /// `4409`: replaced by a newer connection of the same user.
    Replaced,
    /// `4429`: the message rate was exceeded again and again.
    RateExceeded,
}

impl Ending {
    /// The close code.
    pub fn code(self) -> u16 {
        match self {
            Ending::ShuttingDown | Ending::PingTimeout => 1001,
            Ending::ProtocolError => 1002,
            Ending::Binary => 1003,
            Ending::InvalidUtf8 => 1007,
            Ending::TooBig => 1009,
            Ending::SlowConsumer => 1013,
            Ending::TokenExpired | Ending::SessionExpired => 4401,
            Ending::LoggedOut => 4403,
            Ending::Replaced => 4409,
            Ending::RateExceeded => 4429,
        }
    }

    /// The reason sent in the close frame and logged.
    pub fn reason(self) -> &'static str {
        match self {
            Ending::ShuttingDown => "server shutting down",
            Ending::PingTimeout => "ping timeout",
            Ending::ProtocolError => "protocol error",
            Ending::Binary => "binary frames not accepted",
            Ending::InvalidUtf8 => "invalid utf-8",
            Ending::TooBig => "message too big",
            Ending::SlowConsumer => "slow consumer",
            Ending::TokenExpired => "token expired",
            Ending::SessionExpired => "session expired",
            Ending::LoggedOut => "logged out",
            Ending::Replaced => "replaced by a newer connection",
            Ending::RateExceeded => "message rate exceeded",
        }
    }

    /// The code as tungstenite takes it.
    pub fn close_code(self) -> CloseCode {
        CloseCode::from(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons_are_those_of_the_protocol() {
        let all = [
            (Ending::ShuttingDown, 1001, "server shutting down"),
            (Ending::PingTimeout, 1001, "ping timeout"),
            (Ending::ProtocolError, 1002, "protocol error"),
            (Ending::Binary, 1003, "binary frames not accepted"),
            (Ending::InvalidUtf8, 1007, "invalid utf-8"),
            (Ending::TooBig, 1009, "message too big"),
            (Ending::SlowConsumer, 1013, "slow consumer"),
            (Ending::TokenExpired, 4401, "token expired"),
            (Ending::SessionExpired, 4401, "session expired"),
            (Ending::LoggedOut, 4403, "logged out"),
            (Ending::Replaced, 4409, "replaced by a newer connection"),
            (Ending::RateExceeded, 4429, "message rate exceeded"),
        ];
        for (ending, code, reason) in all {
            assert_eq!((ending.code(), ending.reason()), (code, reason));
            assert_eq!(u16::from(ending.close_code()), code);
            assert!(reason.len() <= 123, "a close reason fits a control frame");
        }
    }
}
