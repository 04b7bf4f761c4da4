//! TLS on the listening port (cargo feature `tls`): rustls with the ring
//! provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
//!
//! Sans-IO like the core: a [`TlsConn`] takes ciphertext from any reader
//! and gives ciphertext to any writer, so it is tested on byte slices; the
//! shell hands it the socket. The core only ever sees plaintext, and knows
//! nothing of TLS beyond counting handshake failures by [`FailureClass`].
//!
//! Memory: rustls keeps a read buffer of 4 KiB per connection between
//! records (its buffered API gives no way to free it while idle) and one
//! outgoing record batch, which the shell keeps small by encrypting more
//! only once the last batch reached the kernel. An idle TLS connection
//! costs about 7.6 KB more than a plain one (BENCHMARKS.md).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub use crate::config::TlsFiles;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, ServerConnection};

/// Plaintext handed to rustls at once, at most: a few records. The core's
/// queue keeps the rest, so its flow control still sees what the kernel
/// takes.
pub const MAX_PLAINTEXT_IN_FLIGHT: usize = 64 * 1024;

/// The answer to plain HTTP on the TLS port (a client that meant
/// `https://`): readable by it, unlike a TLS alert.
pub const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 47\r\n\
Connection: close\r\n\
\r\n\
this port speaks TLS: use https:// or wss://.\r\n";

impl TlsFiles {
    /// Reads both files and builds the server's TLS configuration.
    ///
    /// # Errors
    /// A [`LoadError`] naming the file and what is wrong with it (never a
    /// key's bytes).
    pub fn load(&self) -> Result<Arc<ServerConfig>, LoadError> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| LoadError::new(&self.cert, pem_reason(&e)))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LoadError::new(&self.cert, pem_reason(&e)))?;
        if certs.is_empty() {
            return Err(LoadError::new(&self.cert, "no certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| LoadError::new(&self.key, pem_reason(&e)))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| LoadError::new(&self.cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| LoadError::new(&self.key, key_reason(&e)))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => io.to_string(),
        E::NoItemsFound => "no PEM item of the expected kind in it".into(),
        E::MissingSectionEnd { .. } | E::IllegalSectionStart { .. } | E::Base64Decode(_) => {
            "not valid PEM".into()
        }
        _ => "cannot be read as PEM".into(),
    }
}

fn key_reason(e: &rustls::Error) -> String {
    // why: rustls' messages name the problem (unsupported key type, key
    // and certificate that do not match) without quoting the key.
    format!("unusable with the certificate: {e}")
}

/// A certificate or key that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl LoadError {
    fn new(path: &Path, reason: String) -> LoadError {
        LoadError {
            path: path.to_path_buf(),
            reason,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for LoadError {}

/// Why a TLS connection failed, as counted in `/metrics`
/// (`wsgate_tls_failures_total{class=…}`) and logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureClass {
    /// Plain HTTP (or anything not TLS) on the TLS port; answered `400`.
    NotTls,
    /// The client offered nothing we accept (versions, ciphers, ALPN).
    Incompatible,
    /// The client sent an alert: usually it does not trust our
    /// certificate.
    Alert,
    /// Malformed or out-of-order TLS, or a record that failed to decrypt.
    Protocol,
    /// The client hung up before the handshake finished.
    Eof,
    /// The handshake did not finish before the request-head deadline.
    Timeout,
}

impl FailureClass {
    /// Every class, in `/metrics` order.
    pub const ALL: [FailureClass; 6] = [
        FailureClass::NotTls,
        FailureClass::Incompatible,
        FailureClass::Alert,
        FailureClass::Protocol,
        FailureClass::Eof,
        FailureClass::Timeout,
    ];

    /// Its label in `/metrics` and the log.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::NotTls => "not_tls",
            FailureClass::Incompatible => "incompatible",
            FailureClass::Alert => "alert",
            FailureClass::Protocol => "protocol",
            FailureClass::Eof => "eof",
            FailureClass::Timeout => "timeout",
        }
    }

    fn of(e: &rustls::Error) -> FailureClass {
        use rustls::Error as E;
        use rustls::InvalidMessage as M;
        match e {
            E::InvalidMessage(M::InvalidContentType) => FailureClass::NotTls,
            E::PeerIncompatible(_) | E::NoApplicationProtocol => FailureClass::Incompatible,
            E::AlertReceived(_) => FailureClass::Alert,
            _ => FailureClass::Protocol,
        }
    }
}

/// What came of the ciphertext read.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// Nothing to read now (`WouldBlock`).
    Nothing,
    /// This many bytes of ciphertext were taken; plaintext may be ready
    /// ([`TlsConn::read_plaintext`]).
    Bytes(usize),
    /// The peer closed: a `close_notify`, or end of stream after the
    /// handshake.
    Closed,
    /// The connection failed: write what [`TlsConn::write_tls`] has (an
    /// alert, or the plain `400`), then drop it.
    Failed(FailureClass),
}

/// One connection's TLS state.
pub struct TlsConn {
    conn: ServerConnection,
    /// Nothing may be read any more (failed or closed).
    done: bool,
    /// It failed: nothing more is encrypted either.
    failed: bool,
    /// The plain-HTTP answer still to write, from this offset.
    plain_answer: Option<usize>,
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("handshaking", &self.conn.is_handshaking())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl TlsConn {
    /// A new server-side connection with `config`.
    ///
    /// # Errors
    /// When rustls cannot make one (it only fails for a config it cannot
    /// serve, which [`TlsFiles::load`] does not build).
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn {
            conn: ServerConnection::new(config)?,
            done: false,
            failed: false,
            plain_answer: None,
        })
    }

    /// True until the handshake is complete.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Reads ciphertext from `rd` (at most a few KiB: one call per record
    /// batch) and processes it. Call [`TlsConn::read_plaintext`] after
    /// each `Bytes`, and [`TlsConn::write_tls`] whenever
    /// [`TlsConn::wants_write`].
    pub fn read_tls(&mut self, rd: &mut dyn Read) -> io::Result<Received> {
        if self.done {
            return Ok(Received::Nothing);
        }
        let n = match self.conn.read_tls(rd) {
            Ok(0) => {
                self.done = true;
                if self.conn.is_handshaking() {
                    self.failed = true;
                    return Ok(Received::Failed(FailureClass::Eof));
                }
                return Ok(Received::Closed);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Received::Nothing),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Received::Bytes(0)),
            // A handshake message over 64 KiB, or plaintext not read:
            // neither happens to a well-behaved peer.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.done = true;
                self.failed = true;
                return Ok(Received::Failed(FailureClass::Protocol));
            }
            Err(e) => return Err(e),
        };
        match self.conn.process_new_packets() {
            Ok(state) if state.peer_has_closed() && state.plaintext_bytes_to_read() == 0 => {
                self.done = true;
                Ok(Received::Closed)
            }
            Ok(_) => Ok(Received::Bytes(n)),
            Err(e) => {
                self.done = true;
                self.failed = true;
                let class = FailureClass::of(&e);
                if class == FailureClass::NotTls && self.conn.is_handshaking() {
                    // why: a browser or curl that meant https:// cannot read
                    // an alert; it can read this.
                    self.plain_answer = Some(0);
                }
                Ok(Received::Failed(class))
            }
        }
    }

    /// Moves decrypted bytes into `out` (appended); returns how many.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let mut chunk = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
        out.len() - start
    }

    /// True when ciphertext (or the plain answer) waits to be written.
    pub fn wants_write(&self) -> bool {
        match self.plain_answer {
            Some(at) => at < PLAIN_HTTP_ANSWER.len(),
            None => self.conn.wants_write(),
        }
    }

    /// Writes what waits to `wr` until it would block or all is out;
    /// returns the bytes written.
    pub fn write_tls(&mut self, wr: &mut dyn Write) -> io::Result<usize> {
        let mut total = 0;
        while self.wants_write() {
            let n = match &mut self.plain_answer {
                Some(at) => {
                    let n = wr.write(&PLAIN_HTTP_ANSWER[*at..])?;
                    *at += n;
                    n
                }
                None => self.conn.write_tls(wr)?,
            };
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok(total)
    }

    /// Encrypts up to [`MAX_PLAINTEXT_IN_FLIGHT`] bytes of `plain`, only
    /// once the previous batch is written (so that the core's queue, not
    /// rustls, holds what the kernel has not taken); returns how many were
    /// taken.
    pub fn write_plaintext(&mut self, plain: &[u8]) -> usize {
        if self.failed || self.conn.is_handshaking() || self.conn.wants_write() {
            return 0;
        }
        let take = plain.len().min(MAX_PLAINTEXT_IN_FLIGHT);
        self.conn.writer().write(&plain[..take]).unwrap_or(0)
    }

    /// Queues a `close_notify` (the server is done writing); nothing
    /// after a failure (the alert, if any, is queued already).
    pub fn close(&mut self) {
        if !self.failed {
            self.conn.send_close_notify();
        }
    }
}

#[cfg(test)]
mod tests;
