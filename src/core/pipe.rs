//! The in-memory stream tungstenite reads from and writes to.
//!
//! tungstenite's `WebSocketContext` takes the stream as an argument on
//! every call. We hand it a [`Pipe`]: reads come from the bytes the shell
//! just read off the socket, writes append to the connection's outgoing
//! queue. So a pong or a close reply that tungstenite emits lands in the
//! same ordered queue as broadcasts, and nothing here ever blocks.

use std::io::{self, Read, Write};

/// A connection's outgoing bytes, written to the socket by the shell.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already written.
    head: usize,
}

/// Once more than this many written bytes sit at the front of a queue (and
/// they are more than half of it), the unwritten rest is moved down.
const SHRINK_ABOVE: usize = 16 * 1024;

impl OutQueue {
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
        } else if self.head > SHRINK_ABOVE && self.head * 2 > self.buf.len() {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }
}

/// Input bytes on one side, the outgoing queue on the other.
pub struct Pipe<'a, 'b> {
    /// Unread input; reads advance it.
    pub input: &'a mut &'b [u8],
    /// Where writes go.
    pub out: &'a mut OutQueue,
}

impl Read for Pipe<'_, '_> {
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

impl Write for Pipe<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.push(buf);
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
    }
}
