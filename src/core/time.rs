//! Time as the core sees it: a [`Time`] passed in by its caller, and
//! `std::time::Duration` for every span (the config's, the protocol's).
//! The core never reads a clock, so a test drives it with a virtual one.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A point in time: milliseconds since the UNIX epoch, as the shell's
/// clock (or a test's) gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The time `ms` milliseconds after the UNIX epoch.
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms)
    }

    /// Milliseconds since the UNIX epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the UNIX epoch.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `span` earlier (saturating at the epoch).
    pub fn before(self, span: Duration) -> Time {
        Time(self.0.saturating_sub(millis(span)))
    }

    /// How long after `earlier` this is (zero if it is not after it).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Later by `span` (saturating: far enough is forever).
    fn add(self, span: Duration) -> Time {
        Time(self.0.saturating_add(millis(span)))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, span: Duration) {
        *self = *self + span;
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// What a connection's one deadline is for. Each connection has exactly
/// one armed at a time; which one follows from its phase (the registry's
/// checker holds it to that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// HTTP: the request head (or the next one on a kept-alive
    /// connection) must be in by now.
    Handshake,
    /// Waiting for a password check: answer `503` if the helper has not.
    PasswordCheck,
    /// Waiting for the session store in Redis (`--redis`): answer `503`
    /// if the link has not (it answers every query; this is a safety net).
    StoreQuery,
    /// Closing: the queue had this long to drain and the peer to end its
    /// stream; then the socket is dropped.
    Close,
    /// WebSocket: the queue has been over the limit since the clock
    /// started; still over, it closes `1013`.
    SlowConsumer,
    /// WebSocket: nothing heard for two ping intervals; closes `1001`.
    Silence,
    /// WebSocket: its token (plus leeway) or session ran out; closes
    /// `4401`.
    Expiry,
    /// WebSocket: tell the client its token is about to expire.
    ExpiryWarning,
    /// WebSocket: send a ping.
    Ping,
}

impl Timer {
    /// Whether this kind belongs to an open WebSocket.
    #[cfg(any(test, fuzzing))]
    pub fn is_websocket(self) -> bool {
        matches!(
            self,
            Timer::SlowConsumer
                | Timer::Silence
                | Timer::Expiry
                | Timer::ExpiryWarning
                | Timer::Ping
        )
    }
}

/// `span` in whole milliseconds, saturating.
pub fn millis(span: Duration) -> u64 {
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_spans_are_durations() {
        let t = Time::from_millis(1_000);
        assert_eq!((t + Duration::from_secs(2)).as_millis(), 3_000);
        assert_eq!((t + Duration::MAX).as_millis(), u64::MAX);
        assert_eq!(
            Time::from_millis(3_500).since(t),
            Duration::from_millis(2_500)
        );
        assert_eq!(t.since(Time::from_millis(3_500)), Duration::ZERO);
        assert_eq!(Time::from_millis(2_999).as_secs(), 2);
    }
}
