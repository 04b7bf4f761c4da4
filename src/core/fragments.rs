//! Charging fragments against the message limit.
//!
//! Read first: RFC 6455 §5.2 (base framing) and §5.4 (fragmentation).
//!
//! tungstenite limits a message by its payload alone, so a message made
//! only of empty continuation frames never grows and never reaches a
//! limit: a peer can keep the server parsing frames forever inside one
//! message. [`FragmentMeter`] reads the frame headers of the same bytes
//! tungstenite is about to read (it never buffers a payload) and counts
//! every fragment past a message's first [`FREE_FRAGMENTS`] as
//! [`FRAGMENT_OVERHEAD`] bytes on top of its payload. A message whose
//! count passes the message limit is refused `1009`, like a large one.
//! (The free fragments let a message of exactly the limit arrive in a few
//! dozen fragments, as Autobahn 10.1.1 sends 64 KiB in 51.)
//!
//! Contract for untrusted input: [`FragmentMeter::feed`] never panics and
//! keeps at most one frame header (14 bytes) of state.

use crate::config::{FRAGMENT_OVERHEAD, FREE_FRAGMENTS};

/// The frame-header reader of one connection's input.
#[derive(Debug, Default)]
pub struct FragmentMeter {
    /// The header of the frame being read, while it is incomplete.
    header: [u8; 14],
    header_len: u8,
    /// Payload bytes of the current frame still to pass by.
    skip: u64,
    /// Fragments of the data message being assembled (0: none).
    fragments: u64,
    /// What that message counts so far: payload plus overheads.
    cost: u64,
}

impl FragmentMeter {
    /// Reads the headers in `data`. `Err(at)` when the frame whose header
    /// starts at byte `at` of `data` (0 when it started in an earlier
    /// read) takes its message past `limit`: the bytes before `at` are fine
    /// to process, the frame itself must never reach tungstenite (an empty
    /// final fragment would complete the message), and the connection
    /// must close `1009`. Bytes that are not valid frames are tungstenite's
    /// to refuse.
    pub fn feed(&mut self, data: &[u8], limit: usize) -> Result<(), usize> {
        let mut at = 0;
        while at < data.len() {
            // Where the header being read began in `data`.
            let start = at.saturating_sub(usize::from(self.header_len));
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len() - at);
                self.skip -= n as u64;
                at += n;
                continue;
            }
            let have = usize::from(self.header_len);
            let need = header_len(&self.header[..have]).unwrap_or(2);
            let take = (need - have).min(data.len() - at);
            self.header[have..have + take].copy_from_slice(&data[at..at + take]);
            self.header_len += take as u8;
            at += take;
            let have = usize::from(self.header_len);
            // The first two bytes tell how long the header is.
            if have < 2 || have < header_len(&self.header[..have]).unwrap_or(2) {
                continue;
            }
            self.header_len = 0;
            let (fin, opcode, payload) = parse(&self.header[..have]);
            self.skip = payload;
            if opcode >= 8 {
                // Control frames may come between fragments; they have
                // their own 125-byte limit.
                continue;
            }
            if opcode == 0 {
                self.fragments += 1;
                self.cost = self.cost.saturating_add(payload);
                if self.fragments > FREE_FRAGMENTS as u64 {
                    self.cost = self.cost.saturating_add(FRAGMENT_OVERHEAD as u64);
                }
            } else {
                self.fragments = 1;
                self.cost = payload;
            }
            if self.cost > limit as u64 {
                return Err(start);
            }
            if fin {
                self.fragments = 0;
                self.cost = 0;
            }
        }
        Ok(())
    }
}

impl FragmentMeter {
    /// Between frames and outside a fragmented message: nothing to keep.
    fn is_idle(&self) -> bool {
        self.header_len == 0 && self.skip == 0 && self.fragments == 0
    }
}

/// Feeds `data` to the meter in `slot` (see [`FragmentMeter::feed`]). A
/// meter is kept only while a frame or a fragmented message spans reads:
/// the common case, whole messages in one read, allocates nothing, and an
/// idle connection holds none.
pub fn feed(slot: &mut Option<Box<FragmentMeter>>, data: &[u8], limit: usize) -> Result<(), usize> {
    let result = match slot {
        Some(meter) => meter.feed(data, limit),
        None => {
            let mut meter = FragmentMeter::default();
            let result = meter.feed(data, limit);
            if !meter.is_idle() {
                *slot = Some(Box::new(meter));
            }
            return result;
        }
    };
    if slot.as_ref().is_some_and(|m| m.is_idle()) {
        *slot = None;
    }
    result
}

/// The header's full length (2 to 14 bytes) once its first two bytes are
/// known.
fn header_len(header: &[u8]) -> Option<usize> {
    let second = *header.get(1)?;
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    Some(2 + extended + mask)
}

/// `(fin, opcode, payload length)` of a complete header.
fn parse(header: &[u8]) -> (bool, u8, u64) {
    let fin = header[0] & 0x80 != 0;
    let opcode = header[0] & 0x0f;
    let payload = match header[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[2..10]);
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    (fin, opcode, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::masked_frame as frame;

    #[test]
    fn unfragmented_messages_count_their_payload_only() {
        let mut m = FragmentMeter::default();
        assert_eq!(m.feed(&frame(true, 1, &[b'a'; 1000]), 1000), Ok(()));
        assert_eq!(m.feed(&frame(true, 2, &[0; 70_000]), 70_000), Ok(()));
        let big = frame(true, 1, &[b'a'; 1001]);
        assert_eq!(m.feed(&big, 1000), Err(0));
    }

    #[test]
    fn thousands_of_empty_fragments_are_refused() {
        let mut m = FragmentMeter::default();
        let limit = 64 * 1024;
        let mut input = frame(false, 1, b"");
        let allowed = FREE_FRAGMENTS - 1 + limit / FRAGMENT_OVERHEAD;
        assert!(allowed < 2000);
        for _ in 0..allowed {
            input.extend(frame(false, 0, b""));
        }
        assert_eq!(m.feed(&input, limit), Ok(()));
        // One more is refused, and the refusal points at the start of
        // the frame, so that it never reaches tungstenite (an empty final
        // fragment would complete the message).
        assert_eq!(m.feed(&frame(true, 0, b""), limit), Err(0));
        let mut many = frame(false, 1, b"");
        for _ in 0..allowed {
            many.extend(frame(false, 0, b""));
        }
        let cut = many.len();
        many.extend(frame(true, 0, b""));
        assert_eq!(FragmentMeter::default().feed(&many, limit), Err(cut));
        // A header split across reads is cut at the start of the read.
        let mut split = FragmentMeter::default();
        assert_eq!(split.feed(&many[..cut + 1], limit), Ok(()));
        assert_eq!(split.feed(&many[cut + 1..], limit), Err(0));
    }

    #[test]
    fn autobahn_9_3_1_fits_in_16_mib() {
        // 4 MiB in 64-byte fragments: 65,536 frames.
        let mut m = FragmentMeter::default();
        let piece = [b'*'; 64];
        let mut input = frame(false, 1, &piece);
        for i in 1..65_536 {
            input.extend(frame(i == 65_535, 0, &piece));
        }
        assert_eq!(m.feed(&input, 16 << 20), Ok(()));
        let mut small = FragmentMeter::default();
        assert!(small.feed(&input, 64 * 1024).is_err());
    }

    #[test]
    fn a_message_of_exactly_the_limit_may_come_in_a_few_dozen_fragments() {
        // Autobahn 10.1.1: 65,536 bytes in fragments of 1,300.
        let mut m = FragmentMeter::default();
        let data = vec![b'*'; 65_536];
        let pieces: Vec<&[u8]> = data.chunks(1300).collect();
        let mut input = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { 1 } else { 0 };
            input.extend(frame(i == pieces.len() - 1, opcode, piece));
        }
        assert_eq!(m.feed(&input, 65_536), Ok(()));
    }

    #[test]
    fn control_frames_between_fragments_are_free_and_state_survives_splits() {
        let mut input = frame(false, 1, b"ab");
        for _ in 0..100 {
            input.extend(frame(true, 9, b"ping"));
        }
        for _ in 1..FREE_FRAGMENTS {
            input.extend(frame(false, 0, b""));
        }
        input.extend(frame(true, 0, b"cd"));
        // The count restarts after a complete message.
        input.extend(frame(false, 1, b"x"));
        input.extend(frame(true, 0, b"y"));
        let limit = 2 + 2 + FRAGMENT_OVERHEAD;
        for split in [1, 2, 3, 7, 13, input.len()] {
            let mut m = FragmentMeter::default();
            for piece in input.chunks(split) {
                assert_eq!(m.feed(piece, limit), Ok(()));
            }
        }
        let mut tight = FragmentMeter::default();
        assert!(tight.feed(&input, limit - 1).is_err());
    }

    #[test]
    fn a_meter_is_kept_only_while_something_spans_reads() {
        let mut slot = None;
        let whole = frame(true, 1, b"hello");
        assert_eq!(feed(&mut slot, &whole, 100), Ok(()));
        assert!(slot.is_none(), "a whole message leaves nothing");
        let two = [frame(false, 1, b"he"), frame(true, 0, b"llo")].concat();
        assert_eq!(feed(&mut slot, &two[..3], 100), Ok(()));
        assert!(slot.is_some(), "a split header is kept");
        assert_eq!(feed(&mut slot, &two[3..8], 100), Ok(()));
        assert!(slot.is_some(), "a fragmented message is kept");
        assert_eq!(feed(&mut slot, &two[8..], 100), Ok(()));
        assert!(slot.is_none(), "done: dropped");
    }

    #[test]
    fn garbage_never_panics() {
        let mut m = FragmentMeter::default();
        let mut x: u32 = 1;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let bytes = x.to_le_bytes();
            let _ = m.feed(&bytes[..(x as usize % 5)], 1 << 20);
        }
        let _ = m.feed(
            &[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            10,
        );
    }
}
