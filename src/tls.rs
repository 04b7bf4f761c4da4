//! TLS on the listening port (cargo feature `tls`): rustls with the ring
//! provider, TLS 1.3 with AES-GCM only (see `provider` below), ALPN `http/1.1`.
//!
//! Sans-IO like the core: a [`TlsConn`] takes ciphertext from any reader
//! and gives ciphertext to any writer, so it is tested on byte slices; the
//! shell hands it the socket. The core only ever sees plaintext, and knows
//! nothing of TLS beyond counting handshake failures by [`FailureClass`].
//!
//! Memory: built on rustls' unbuffered API, so the buffers are this
//! layer's own and an idle connection holds none: incoming ciphertext is
//! kept only while a record is incomplete, outgoing only until the kernel
//! took it, plaintext only until the core took it. At most one batch
//! ([`MAX_PLAINTEXT_IN_FLIGHT`]) is encrypted ahead of the kernel. An idle
//! TLS connection costs about 3.5 KB more than a plain one, rustls' state
//! and keys (BENCHMARKS.md).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

pub use crate::config::TlsFiles;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::ConnectionState;

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
        let provider = Arc::new(provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| LoadError::new(&self.cert, e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| LoadError::new(&self.key, key_reason(&e)))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// ring's provider for TLS 1.3 with AES-GCM only, without signature
/// verification: the deployment build (`--features tls,redis`) must fit
/// 2 MiB, and each of these keeps code out of it:
///
/// - the server asks for no client certificate, so it never verifies a
///   signature (Ed25519 and ECDSA verification, about 40 KB);
/// - every TLS 1.3 client supports AES-GCM (`TLS_AES_128_GCM_SHA256` is
///   mandatory, RFC 8446 §9.1); ChaCha20-Poly1305 only spares clients
///   without AES hardware some of their own CPU (60 KB);
/// - TLS 1.3 only, as Mozilla's "modern" profile (TLS 1.2's state machine
///   and suites, 33 KB): a client limited to TLS 1.2 reaches wsgate
///   through a proxy that terminates TLS (README "Deploy").
///
/// Key exchange groups and the keys a server may sign with (ECDSA, RSA,
/// Ed25519) are ring's defaults.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as suite;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_AES_128_GCM_SHA256,
        ],

        signature_verification_algorithms: rustls::crypto::WebPkiSupportedAlgorithms {
            all: &[],
            mapping: &[],
        },
        ..rustls::crypto::ring::default_provider()
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

/// Ciphertext read from the socket per call, at most (a little more than
/// one full record).
const READ_CHUNK: usize = 17 * 1024;

/// Ciphertext held waiting for the rest of a record, at most: a handshake
/// message may span several records (rustls allows 64 KiB), application
/// records are at most 16 KiB and a bit.
const MAX_INCOMING: usize = 64 * 1024 + READ_CHUNK;

/// One connection's TLS state, on rustls' unbuffered API: the buffers are
/// ours, so an idle connection holds none (incoming ciphertext is kept
/// only while a record is incomplete, outgoing only until written,
/// plaintext only until the core takes it).
pub struct TlsConn {
    conn: UnbufferedServerConnection,
    /// Ciphertext read but not yet a whole record.
    incoming: Vec<u8>,
    /// Ciphertext to write, from `out_at` on.
    outgoing: Vec<u8>,
    out_at: usize,
    /// Decrypted bytes the core has not taken yet.
    plain: Vec<u8>,
    /// The peer sent `close_notify` (or hung up after the handshake).
    peer_closed: bool,
    /// Nothing more is read (closed or failed).
    done: bool,
    /// It failed: nothing more is encrypted either.
    failed: bool,
    /// Our `close_notify` is queued.
    closed: bool,
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

/// What one pass over rustls' states ended with.
enum Pass {
    /// Waiting for more ciphertext (or for nothing: idle).
    Idle,
    /// Failed with this error.
    Failed(rustls::Error),
}

impl TlsConn {
    /// A new server-side connection with `config`.
    ///
    /// # Errors
    /// When rustls cannot make one (it only fails for a config it cannot
    /// serve, which [`TlsFiles::load`] does not build).
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn {
            conn: UnbufferedServerConnection::new(config)?,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            out_at: 0,
            plain: Vec::new(),
            peer_closed: false,
            done: false,
            failed: false,
            closed: false,
            plain_answer: None,
        })
    }

    /// True until the handshake is complete.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Reads ciphertext from `rd` (at most 17 KiB a call) and
    /// processes it. Call [`TlsConn::read_plaintext`] after each `Bytes`,
    /// and [`TlsConn::write_tls`] whenever [`TlsConn::wants_write`].
    pub fn read_tls(&mut self, rd: &mut dyn Read) -> io::Result<Received> {
        if self.done {
            return Ok(Received::Nothing);
        }
        if self.peer_closed && self.plain.is_empty() {
            self.done = true;
            return Ok(Received::Closed);
        }
        if self.incoming.len() >= MAX_INCOMING {
            // A record (or handshake message) larger than TLS allows.
            return Ok(self.fail_with(FailureClass::Protocol));
        }
        let start = self.incoming.len();
        self.incoming.resize(start + READ_CHUNK, 0);
        let read = rd.read(&mut self.incoming[start..]);
        let n = *read.as_ref().unwrap_or(&0);
        self.incoming.truncate(start + n);
        match read {
            Ok(0) => {
                self.release_incoming();
                self.done = true;
                if self.conn.is_handshaking() {
                    self.failed = true;
                    return Ok(Received::Failed(FailureClass::Eof));
                }
                self.peer_closed = true;
                return Ok(Received::Closed);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.release_incoming();
                return Ok(Received::Nothing);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Received::Bytes(0)),
            Err(e) => return Err(e),
        }
        match self.pass(None) {
            Pass::Failed(e) => {
                let class = FailureClass::of(&e);
                if class == FailureClass::NotTls && self.conn.is_handshaking() {
                    // why: a browser or curl that meant https:// cannot read
                    // an alert; it can read this.
                    self.outgoing.clear();
                    self.out_at = 0;
                    self.plain_answer = Some(0);
                }
                Ok(self.fail_with(class))
            }
            Pass::Idle if self.peer_closed && self.plain.is_empty() => {
                self.done = true;
                Ok(Received::Closed)
            }
            Pass::Idle => Ok(Received::Bytes(n)),
        }
    }

    /// Marks the connection failed with `class` (what is queued, an alert
    /// or the plain answer, may still be written).
    fn fail_with(&mut self, class: FailureClass) -> Received {
        self.done = true;
        self.failed = true;
        self.incoming = Vec::new();
        self.plain = Vec::new();
        Received::Failed(class)
    }

    /// Frees the incoming buffer when it holds nothing (between records).
    fn release_incoming(&mut self) {
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        }
    }

    /// Runs rustls over what was read until it waits: decrypted records go
    /// to `plain`, records to send to `outgoing`; with `encrypt`, as much
    /// of it as one batch allows is encrypted once rustls may send
    /// application data. Returns how the pass ended and, through
    /// `encrypted`, how many plaintext bytes were taken.
    fn pass(&mut self, mut encrypt: Option<(&[u8], &mut usize)>) -> Pass {
        let TlsConn {
            conn,
            incoming,
            outgoing,
            plain,
            peer_closed,
            ..
        } = self;
        // why: every state takes rustls a step on (a record consumed, a
        // chunk emitted, a flag cleared), and each record is at least 5
        // bytes; the bound only stops a rustls that stopped moving from
        // spinning the event loop, never a read full of tiny records.
        let most = incoming.len() / 5 + 64;
        for _ in 0..most {
            let status = conn.process_tls_records(incoming);
            let discard = status.discard;
            let mut stop = false;
            match status.state {
                Err(e) => {
                    incoming.drain(..discard.min(incoming.len()));
                    return Pass::Failed(e);
                }
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => plain.extend_from_slice(record.payload),
                            Err(e) => return Pass::Failed(e),
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    let at = outgoing.len();
                    let mut size = 2048;
                    loop {
                        outgoing.resize(at + size, 0);
                        match data.encode(&mut outgoing[at..]) {
                            Ok(n) => {
                                outgoing.truncate(at + n);
                                break;
                            }
                            Err(rustls::unbuffered::EncodeError::InsufficientSize(e)) => {
                                size = e.required_size;
                            }
                            Err(rustls::unbuffered::EncodeError::AlreadyEncoded) => {
                                outgoing.truncate(at);
                                break;
                            }
                        }
                    }
                }
                // The records are in `outgoing`; `write_tls` sends them.
                Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
                Ok(ConnectionState::PeerClosed) => *peer_closed = true,
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    if let Some((text, taken)) = encrypt.take() {
                        let take = text.len().min(MAX_PLAINTEXT_IN_FLIGHT);
                        let at = outgoing.len();
                        // Records add at most 22 bytes each to 16 KiB.
                        let mut size = take + (take / (16 * 1024) + 1) * 64;
                        loop {
                            outgoing.resize(at + size, 0);
                            match traffic.encrypt(&text[..take], &mut outgoing[at..]) {
                                Ok(n) => {
                                    outgoing.truncate(at + n);
                                    *taken = take;
                                    break;
                                }
                                Err(rustls::unbuffered::EncryptError::InsufficientSize(e)) => {
                                    size = e.required_size;
                                }
                                Err(_) => {
                                    outgoing.truncate(at);
                                    break;
                                }
                            }
                        }
                    }
                    stop = true;
                }
                Ok(ConnectionState::BlockedHandshake | ConnectionState::Closed) => stop = true,
                Ok(_) => stop = true,
            }
            incoming.drain(..discard.min(incoming.len()));
            if stop {
                break;
            }
        }
        if incoming.is_empty() {
            *incoming = Vec::new();
        }
        Pass::Idle
    }

    /// Moves decrypted bytes into `out` (appended); returns how many.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>) -> usize {
        let n = self.plain.len();
        if out.is_empty() {
            std::mem::swap(out, &mut self.plain);
        } else {
            out.extend_from_slice(&self.plain);
        }
        self.plain = Vec::new();
        n
    }

    /// True when ciphertext (or the plain answer) waits to be written.
    pub fn wants_write(&self) -> bool {
        match self.plain_answer {
            Some(at) => at < PLAIN_HTTP_ANSWER.len(),
            None => self.out_at < self.outgoing.len(),
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
                None => {
                    let n = wr.write(&self.outgoing[self.out_at..])?;
                    self.out_at += n;
                    n
                }
            };
            if n == 0 {
                break;
            }
            total += n;
        }
        if self.plain_answer.is_none() && self.out_at == self.outgoing.len() {
            self.outgoing = Vec::new();
            self.out_at = 0;
        }
        Ok(total)
    }

    /// Encrypts up to [`MAX_PLAINTEXT_IN_FLIGHT`] bytes of `plain`, only
    /// once the previous batch is written (so that the core's queue, not
    /// this layer, holds what the kernel has not taken); returns how many
    /// were taken.
    pub fn write_plaintext(&mut self, plain: &[u8]) -> usize {
        if plain.is_empty()
            || self.failed
            || self.closed
            || self.conn.is_handshaking()
            || self.wants_write()
        {
            return 0;
        }
        let mut taken = 0;
        if let Pass::Failed(_) = self.pass(Some((plain, &mut taken))) {
            self.failed = true;
            self.done = true;
            return 0;
        }
        taken
    }

    /// Queues a `close_notify` (the server is done writing); nothing
    /// after a failure (the alert, if any, is queued already) or during
    /// the handshake.
    pub fn close(&mut self) {
        if self.failed || self.closed || self.conn.is_handshaking() {
            return;
        }
        self.closed = true;
        let TlsConn {
            conn,
            incoming,
            outgoing,
            ..
        } = self;
        let status = conn.process_tls_records(incoming);
        let discard = status.discard;
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = status.state {
            let at = outgoing.len();
            outgoing.resize(at + 64, 0);
            match traffic.queue_close_notify(&mut outgoing[at..]) {
                Ok(n) => outgoing.truncate(at + n),
                Err(_) => outgoing.truncate(at),
            }
        }
        incoming.drain(..discard.min(incoming.len()));
    }
}

#[cfg(test)]
mod tests;
