//! The in-memory stream tungstenite reads from and writes to.
//!
//! tungstenite's `WebSocketContext` takes the stream as an argument on
//! every call. We hand it a [`Pipe`]: reads come from the bytes the shell
//! just read off the socket, writes append to the connection's outgoing
//! queue. So a pong or a close reply that tungstenite emits lands in the
//! same ordered queue as broadcasts, and nothing here ever blocks.
//!
//! The same [`Pipe`], writing to a plain `Vec<u8>` instead (any [`Sink`]),
//! is the stream of the test kit's simulated WebSocket clients.

use std::io::{self, Read, Write};

/// A connection's outgoing bytes, written to the socket by the shell.
///
/// After the `101` the queue holds whole WebSocket frames only (the
/// server writes nothing else), so it can find frame boundaries: a slow
/// consumer's unsent frames can be dropped without cutting one in half
/// ([`OutQueue::drop_unsent_frames`]).
#[derive(Debug)]
pub struct OutQueue {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written.
    head: usize,
    /// Where in `buf` the WebSocket frames begin (a frame boundary at or
    /// before `head`, or the first frame not yet started); [`BEFORE_FRAMES`]
    /// before the `101` (see [`OutQueue::frames_at`]). why not an
    /// `Option<usize>`: that is 8 bytes more in every connection's record.
    frames_at: usize,
    /// The length last counted in the server's queue total (see
    /// [`OutQueue::settle`]).
    accounted: usize,
}

/// [`OutQueue`]'s `frames_at` before the `101` (no position in a `Vec` is
/// this large).
const BEFORE_FRAMES: usize = usize::MAX;

/// Once more than this many written bytes sit at the front of a queue (and
/// they are more than half of it), the unwritten rest is moved down.
const SHRINK_ABOVE: usize = 16 * 1024;

impl Default for OutQueue {
    fn default() -> OutQueue {
        OutQueue {
            buf: Vec::new(),
            head: 0,
            frames_at: BEFORE_FRAMES,
            accounted: 0,
        }
    }
}

impl OutQueue {
    /// Where the WebSocket frames begin; `None` before the `101`.
    fn frames_at(&self) -> Option<usize> {
        (self.frames_at != BEFORE_FRAMES).then_some(self.frames_at)
    }

    /// Moves where the WebSocket frames begin (never back to before the
    /// `101`).
    fn move_frames_at(&mut self, at: impl FnOnce(usize) -> usize) {
        if let Some(now) = self.frames_at() {
            self.frames_at = at(now);
        }
    }

    /// Bytes queued and not yet written.
    pub fn len(&self) -> usize {
        self.buf.len() - self.head
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes to write next.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    /// Appends bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The vector to append to directly (for encoders).
    pub fn tail(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// From here on only whole WebSocket frames are queued (called right
    /// after the `101` is queued).
    pub fn begin_frames(&mut self) {
        self.frames_at = self.buf.len();
    }

    /// The change in length since the last call: `(counted before, now)`.
    /// The server adds the difference to its total of queued bytes, so the
    /// total follows every append and write without each site doing sums.
    pub fn settle(&mut self) -> (usize, usize) {
        let now = self.len();
        let before = std::mem::replace(&mut self.accounted, now);
        (before, now)
    }

    /// The length last counted in the server's total.
    pub fn accounted(&self) -> usize {
        self.accounted
    }

    /// Marks `n` bytes as written (clamped to what is queued).
    pub fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.buf.len());
        if self.head == self.buf.len() {
            // why: a drained queue gives its memory back. An idle connection
            // then holds no output buffer at all (the 101 alone would keep
            // ~160 bytes each); a busy one pays a small allocation per
            // write, next to a `write()` that costs far more.
            self.buf = Vec::new();
            self.head = 0;
            self.move_frames_at(|_| 0);
        } else if self.head > SHRINK_ABOVE && self.head * 2 > self.buf.len() {
            // Cut at a frame boundary, so that one is always known.
            let cut = match self.frames_at() {
                None => self.head,
                Some(at) if at >= self.head => self.head,
                Some(at) => self.boundary_from(at).unwrap_or(self.head),
            };
            self.buf.drain(..cut);
            self.head -= cut;
            self.move_frames_at(|at| at.saturating_sub(cut));
        }
    }

    /// Drops every queued frame the peer has not started to receive; a
    /// frame partly written stays, so the stream remains well-formed and a
    /// close frame can follow. Returns the bytes dropped.
    pub fn drop_unsent_frames(&mut self) -> usize {
        let Some(at) = self.frames_at() else {
            return 0;
        };
        let keep = if at >= self.head {
            at
        } else {
            match self.boundary_from(at) {
                // `boundary_from` gives the start of the frame holding
                // `head`; that frame is partly written: keep it whole.
                Some(start) if start == self.head => start,
                Some(start) => start + frame_len(&self.buf[start..]).unwrap_or(0),
                None => return 0,
            }
        };
        let keep = keep.min(self.buf.len());
        let dropped = self.buf.len() - keep;
        self.buf.truncate(keep);
        dropped
    }

    /// The start of the frame that holds `head` (or starts at it), walking
    /// whole frames from the boundary `at`; `None` if the bytes are not
    /// frames (never, for queues this server writes).
    fn boundary_from(&self, mut at: usize) -> Option<usize> {
        while at < self.head {
            let len = frame_len(&self.buf[at..])?;
            if at + len > self.head {
                return Some(at);
            }
            at += len;
        }
        Some(at)
    }
}

/// The length of the server frame (header and payload) that starts `bytes`
/// (RFC 6455 §5.2; server frames are never masked).
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let second = *bytes.get(1)?;
    let (header, payload) = match second & 0x7f {
        126 => (
            4,
            u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
        ),
        127 => (10, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)),
        n => (2, u64::from(n)),
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    usize::try_from(payload).ok()?.checked_add(header + mask)
}

/// Where a [`Pipe`]'s writes go: appending never fails and never blocks.
pub trait Sink {
    /// Appends `bytes`.
    fn append(&mut self, bytes: &[u8]);
}

impl Sink for OutQueue {
    fn append(&mut self, bytes: &[u8]) {
        self.push(bytes);
    }
}

impl Sink for Vec<u8> {
    fn append(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Input bytes on one side, the outgoing queue (or another [`Sink`]) on
/// the other.
pub struct Pipe<'a, 'b, O: Sink = OutQueue> {
    /// Unread input; reads advance it.
    pub input: &'a mut &'b [u8],
    /// Where writes go.
    pub out: &'a mut O,
}

impl<O: Sink> Read for Pipe<'_, '_, O> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            // why: "no more bytes for now", never end of stream; the shell
            // reports a real end of stream through `handle_closed`.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        *self.input = &self.input[n..];
        Ok(n)
    }
}

impl<O: Sink> Write for Pipe<'_, '_, O> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_consumes_and_shrinks() {
        let mut q = OutQueue::default();
        q.push(&[1; 40_000]);
        q.consume(30_000);
        assert_eq!(q.len(), 10_000);
        assert_eq!(q.pending()[0], 1);
        q.consume(usize::MAX);
        assert!(q.is_empty());
        assert_eq!(q.buf.capacity(), 0);
    }

    fn frame(payload: usize) -> Vec<u8> {
        let mut out = Vec::new();
        crate::core::chat::encode_text_frame(&vec![b'x'; payload], &mut out);
        out
    }

    #[test]
    fn unsent_frames_are_dropped_but_not_the_one_in_flight() {
        let mut q = OutQueue::default();
        q.push(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        q.begin_frames();
        let sizes = [10, 200, 70_000, 5];
        for &n in &sizes {
            q.push(&frame(n));
        }
        let first = frame(10).len();
        let second = frame(200).len();
        let head_101 = 36;
        // Nothing written yet: every frame goes, the 101 stays.
        let mut a = OutQueue::default();
        a.push(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        a.begin_frames();
        a.push(&frame(10));
        assert_eq!(a.drop_unsent_frames(), first);
        assert_eq!(a.len(), head_101);
        // Partway into the second frame: it stays whole, the rest goes.
        q.consume(head_101 + first + 3);
        let kept = second - 3;
        let total = q.len();
        assert_eq!(q.drop_unsent_frames(), total - kept);
        assert_eq!(q.len(), kept);
        // Exactly at a boundary: everything left goes.
        q.consume(kept);
        q.push(&frame(1));
        assert_eq!(q.drop_unsent_frames(), frame(1).len());
        assert!(q.is_empty());
    }

    #[test]
    fn compaction_keeps_a_known_frame_boundary() {
        let mut q = OutQueue::default();
        q.begin_frames();
        for _ in 0..100 {
            q.push(&frame(1000));
        }
        let one = frame(1000).len();
        // Past SHRINK_ABOVE and half the queue, in the middle of a frame.
        q.consume(60 * one + 17);
        assert_eq!(q.len(), 40 * one - 17);
        // The frame in flight is kept whole, the 39 after it dropped.
        assert_eq!(q.drop_unsent_frames(), 39 * one);
        assert_eq!(q.len(), one - 17);
        q.consume(one);
        assert!(q.is_empty());
    }

    #[test]
    fn settle_reports_changes() {
        let mut q = OutQueue::default();
        q.push(b"abc");
        assert_eq!(q.settle(), (0, 3));
        q.consume(2);
        assert_eq!(q.settle(), (3, 1));
        assert_eq!(q.accounted(), 1);
    }

    #[test]
    fn pipe_reads_input_then_would_block() {
        let data = [1u8, 2, 3];
        let mut input: &[u8] = &data;
        let mut out = OutQueue::default();
        let mut pipe = Pipe {
            input: &mut input,
            out: &mut out,
        };
        let mut buf = [0u8; 2];
        assert_eq!(pipe.read(&mut buf).unwrap(), 2);
        assert_eq!(pipe.read(&mut buf).unwrap(), 1);
        assert_eq!(
            pipe.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        pipe.write_all(b"xy").unwrap();
        assert_eq!(out.pending(), b"xy");
        // The same stream over a plain vector.
        let mut input: &[u8] = b"z";
        let mut out = Vec::new();
        let mut pipe = Pipe {
            input: &mut input,
            out: &mut out,
        };
        assert_eq!(pipe.read(&mut buf).unwrap(), 1);
        assert_eq!(
            pipe.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        pipe.write_all(b"xy").unwrap();
        assert_eq!(out, b"xy");
    }
}
