//! The shell: the only module that names mio, touches a socket or reads
//! the clock (the core carries `std::net::SocketAddr` values, nothing more).
//!
//! It moves bytes between sockets and the core, following mio's readiness
//! contract (edge-triggered: after an event, read or write until
//! `WouldBlock`, or remember that more may be there):
//!
//! 1. sleep in `poll` until an event or the core's next deadline;
//! 2. accept until `WouldBlock` (a socket the core refuses gets its
//!    `503`/`429` written at once and is dropped: it never takes a slot);
//! 3. read each ready connection until `WouldBlock` (before the upgrade,
//!    until a read that did not fill the buffer: the socket is empty then,
//!    and what arrives later raises a new event; after a hang-up, to the
//!    end of stream), at most
//!    [`READ_BUDGET`] bytes per connection per turn, so one flooding client
//!    cannot starve the rest (a connection over budget is read again next
//!    turn, without sleeping); before each read the core may say no
//!    ([`Server::should_read`]: flow control), and the connection waits
//!    for [`Action::Resume`];
//! 4. write each connection's queued bytes with one `write()` per turn;
//! 5. let the core act on its deadlines (after the writes: a slow
//!    consumer is judged on what the kernel took);
//! 6. write again what the deadlines queued (pings, close frames), and
//!    carry out the core's actions (shut, drop, check a password, resume
//!    reading).
//!
//! Password checks are slow on purpose, so they run on one helper thread;
//! results come back through a shared queue and a `mio::Waker`.
//!
//! With the cargo feature `tls` and a certificate, each socket has a
//! `tls::TlsConn` between it and the core: ciphertext in and out
//! here, plaintext to and from the core; a socket the core let go of while
//! TLS still held bytes for it is written out (`draining`) before it is
//! dropped.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::auth::users::{Users, VerifiedUser};
use crate::config::Config;
use crate::core::{
    Accept, Action, Authenticate, ConnId, Observe, PasswordJob, Publication, PublishError, Server,
    Time,
};
use crate::http::proxied::MAX_PROXY_HEADER;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

/// Bytes read from one connection per loop turn before the others get
/// their turn.
pub const READ_BUDGET: usize = 64 * 1024;

// why: a socket's mio token is its whole `ConnId` (slot and generation,
// 64 bits); a narrower `usize` would drop the generation.
const _: () = assert!(usize::BITS >= 64, "wsgate needs a 64-bit target");

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);

/// The core's [`Time`]: the wall clock read once at start, advanced by
/// the monotonic clock, so deadlines never jump when the wall clock is
/// stepped.
struct Clock {
    start: Instant,
    base: Time,
}

impl Clock {
    fn new() -> Clock {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            start: Instant::now(),
            base: Time::default() + since_epoch,
        }
    }

    fn now(&self) -> Time {
        self.base + self.start.elapsed()
    }
}

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl StopHandle {
    /// Asks the loop to stop gracefully, as SIGTERM does: every WebSocket
    /// gets `1001` after its queue, bounded by the drain timeout; then
    /// [`Gateway::run`] returns.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// One connection's socket.
struct Socket {
    /// Whose it is (a slot's earlier connection has another generation).
    id: ConnId,
    stream: TcpStream,
    /// Listed in `Gateway::ready`.
    ready: bool,
    /// An event said the peer hung up (or the socket failed): read it to
    /// the end of stream, since that raises no further event.
    hup: bool,
    /// Its TLS layer, on a TLS port.
    #[cfg(feature = "tls")]
    tls: Option<Box<crate::tls::TlsConn>>,
    /// The core said to shut the write half while TLS output was still
    /// to write: shut it once that is out.
    #[cfg(feature = "tls")]
    shut_pending: bool,
}

/// The listening port's TLS configuration, and where it was read from
/// (read again on `SIGHUP`).
#[cfg(feature = "tls")]
struct TlsPort {
    files: crate::config::TlsFiles,
    config: Arc<rustls::ServerConfig>,
}

/// Lines published but not yet taken by the event loop, at most; past it
/// [`Publisher::publish`] says [`PublishError::Busy`].
const PUBLISH_QUEUE: usize = 1024;

/// Publishes lines into rooms from any thread (see
/// [`Gateway::publisher`]). Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inbox: Arc<Inbox>,
    waker: Arc<Waker>,
}

/// Lines published and not yet taken by the event loop (at most
/// [`PUBLISH_QUEUE`]), shared by every [`Publisher`] and the loop.
struct Inbox {
    state: Mutex<InboxState>,
    /// The longest line a client may send (`limits.max_message_bytes`);
    /// a published one may be no longer.
    max_line: usize,
}

#[derive(Default)]
struct InboxState {
    lines: VecDeque<Publication>,
    /// The server is shutting down or gone: no line will reach anyone.
    closed: bool,
}

impl Inbox {
    fn state(&self) -> MutexGuard<'_, InboxState> {
        lock(&self.state)
    }

    /// From now on publishers hear [`PublishError::Stopped`].
    fn close(&self) {
        self.state().closed = true;
    }
}

/// The password thread's work, shared with the event loop: jobs one way
/// (the thread waits on `job_ready`), answers the other (the thread wakes
/// the loop). The core bounds how many jobs are out at once.
#[derive(Default)]
struct Passwords {
    jobs: Mutex<Jobs>,
    job_ready: Condvar,
    answers: Mutex<Vec<(u64, Option<VerifiedUser>)>>,
}

#[derive(Default)]
struct Jobs {
    queue: VecDeque<PasswordJob>,
    /// The gateway is gone: the thread ends.
    closed: bool,
}

impl Passwords {
    /// The password thread: checks jobs in order until the gateway is
    /// gone.
    fn work(&self, users: &Users, waker: &Waker) {
        loop {
            let job = {
                let mut jobs = lock(&self.jobs);
                loop {
                    if let Some(job) = jobs.queue.pop_front() {
                        break job;
                    }
                    if jobs.closed {
                        return;
                    }
                    jobs = self
                        .job_ready
                        .wait(jobs)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // why: a check that panics (a bug) is a failed login, not a
            // job that never answers (release builds abort instead).
            let check = AssertUnwindSafe(|| users.check(&job.user, &job.password));
            let verified = std::panic::catch_unwind(check).unwrap_or_else(|_| {
                error!("a password check panicked; answered as a failed login");
                None
            });
            lock(&self.answers).push((job.job, verified));
            let _ = waker.wake();
        }
    }
}

/// What every Redis key and channel of wsgate's begins with (one chat per
/// Redis database: give deployments that share a Redis their own `/db`).
#[cfg(feature = "redis")]
const REDIS_PREFIX: &str = "wsgate";

/// The listening socket on `addr`; with `reuse_port`, `SO_REUSEPORT` is
/// set before it binds, so that several processes can listen on one port
/// and the kernel spreads new connections across them.
fn listen(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let listener = if reuse_port {
        listen_shared(addr)?
    } else {
        TcpListener::bind(addr)?
    };
    // why: a chat line must not wait for the peer's delayed ACK (Nagle).
    // Set once here: on Linux an accepted socket inherits it, which saves
    // a system call a connection (see `Gateway::accept`).
    rustix::net::sockopt::set_tcp_nodelay(&listener, true)?;
    Ok(listener)
}

/// A listener with `SO_REUSEPORT` (`--reuse-port`).
fn listen_shared(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 1024)?;
    let listener = std::net::TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(TcpListener::from_std(listener))
}

/// Locks `mutex`, poisoned or not: whoever panicked holding one of these
/// left a whole queue behind (every change is one push or one take).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Publisher {
    /// Sends `text` into `room` as `from`: every member gets it as a chat
    /// line from `from` (in JSON mode with the room's next `seq`); a room
    /// without members gets nothing. Checked here: a valid room name, a
    /// valid user name, a line without control characters, no longer than
    /// a client's may be ([`PublishError::TooLong`]). Never blocks:
    /// [`PublishError::Busy`] when the loop has not taken the last 1,024
    /// lines yet, [`PublishError::Stopped`] once the server is shutting
    /// down or gone.
    ///
    /// `from` is any valid user name: nothing marks the line as the
    /// program's, so pick a name no client has.
    pub fn publish(&self, room: &str, from: &str, text: &str) -> Result<(), PublishError> {
        if text.len() > self.inbox.max_line {
            return Err(PublishError::TooLong);
        }
        let publication = Publication::new(room, from, text)?;
        {
            let mut state = self.inbox.state();
            if state.closed {
                return Err(PublishError::Stopped);
            }
            if state.lines.len() >= PUBLISH_QUEUE {
                return Err(PublishError::Busy);
            }
            state.lines.push_back(publication);
        }
        let _ = self.waker.wake();
        Ok(())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.inbox.close();
        // why: the checks still queued are for connections that are gone;
        // the thread ends after the one it is on (passwords and all).
        let mut jobs = lock(&self.passwords.jobs);
        jobs.queue.clear();
        jobs.closed = true;
        self.passwords.job_ready.notify_one();
    }
}

/// A bound server, ready to run.
pub struct Gateway {
    poll: Poll,
    /// `None` once shutting down (closed).
    listener: Option<TcpListener>,
    server: Server,
    clock: Clock,
    /// The sockets, by their connection's slot.
    sockets: Vec<Option<Socket>>,
    /// Connections that may have more to read (over budget last turn, or
    /// told to resume).
    ready: Vec<ConnId>,
    passwords: Arc<Passwords>,
    /// Lines published from other threads ([`Publisher`]).
    inbox: Arc<Inbox>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    signals: Option<Signals>,
    buf: Vec<u8>,
    /// The link to Redis, with `--redis`.
    #[cfg(feature = "redis")]
    redis: Option<crate::redis::Link>,
    /// TLS on the listening port, when configured.
    #[cfg(feature = "tls")]
    tls: Option<TlsPort>,
    /// Plaintext just decrypted, on its way to the core.
    #[cfg(feature = "tls")]
    plain: Vec<u8>,
    /// TLS sockets the core let go of while TLS still held bytes for them
    /// (the core counts bytes as written once TLS took them): written out,
    /// then dropped, by a deadline.
    #[cfg(feature = "tls")]
    draining: std::collections::HashMap<ConnId, Draining>,
}

/// A TLS socket written out after the core let go of it.
#[cfg(feature = "tls")]
struct Draining {
    socket: Socket,
    until: Time,
}

/// TLS sockets written out after the core let go of them, at most; past
/// it one is dropped with what TLS still held (each holds at most one
/// 64 KiB batch).
#[cfg(feature = "tls")]
const MAX_DRAINING: usize = 1024;

impl Gateway {
    /// Checks `config` ([`Config::validate`]), binds `config.listen` and
    /// starts the password helper thread.
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidInput`], wrapping a
    /// [`ConfigError`](crate::config::ConfigError), when `config` is
    /// invalid: [`Config::default()`] is, since it has no secret. Otherwise
    /// what creating the poll, binding the address or spawning the thread
    /// returns.
    pub fn bind(config: Config, users: Arc<Users>) -> io::Result<Gateway> {
        // why: validate() checks secrets against the config's constant; the
        // core builds them with auth::jwt's, which must refuse no more.
        const { assert!(crate::config::MIN_SECRET_LEN == crate::auth::jwt::MIN_SECRET_LEN) };
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        #[cfg(feature = "tls")]
        let tls = match &config.tls {
            Some(files) => Some(TlsPort {
                config: files
                    .load()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
                files: files.clone(),
            }),
            None => None,
        };
        let poll = Poll::new()?;
        let mut listener = listen(config.listen, config.reuse_port)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let inbox = Arc::new(Inbox {
            state: Mutex::default(),
            max_line: config.limits.max_message_bytes,
        });
        let clock = Clock::new();
        #[cfg(feature = "redis")]
        let redis = config.redis.clone().map(|url| {
            let waker = Arc::clone(&waker);
            let notify = Box::new(move || {
                let _ = waker.wake();
            });
            info!("redis link to {url}");
            crate::redis::Link::start(url, REDIS_PREFIX, config.limits.history, notify)
        });
        let server = Server::new(config, clock.now());
        // Last, so that nothing after it can fail and leave it waiting.
        let passwords = Arc::new(Passwords::default());
        let (desk, worker_waker) = (Arc::clone(&passwords), Arc::clone(&waker));
        thread::Builder::new()
            .name("wsgate-passwords".into())
            .spawn(move || desk.work(&users, &worker_waker))?;
        Ok(Gateway {
            poll,
            listener: Some(listener),
            server,
            clock,
            sockets: Vec::new(),
            ready: Vec::new(),
            passwords,
            inbox,
            stop: Arc::new(AtomicBool::new(false)),
            waker,
            signals: None,
            buf: vec![0; 16 * 1024],
            #[cfg(feature = "redis")]
            redis,
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "tls")]
            plain: Vec::new(),
            #[cfg(feature = "tls")]
            draining: std::collections::HashMap::new(),
        })
    }

    /// Adds an authenticator, consulted before the built-in checks (see
    /// [`Authenticate`]).
    pub fn add_authenticator(&mut self, authenticator: Box<dyn Authenticate>) {
        self.server.add_authenticator(authenticator);
    }

    /// Adds an observer: told of joins, leaves and chat lines, asked about
    /// text-mode commands the server does not know (see [`Observe`]). It
    /// runs on the event loop and must not block.
    pub fn add_observer(&mut self, observer: Box<dyn Observe>) {
        self.server.add_observer(observer);
    }

    /// A handle that publishes lines into rooms from any thread, as a user
    /// of the program's own (a bot), while the gateway runs.
    pub fn publisher(&self) -> Publisher {
        Publisher {
            inbox: Arc::clone(&self.inbox),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Stops gracefully on SIGTERM and SIGINT (the binary does this; an
    /// embedding program may prefer its own handling and [`StopHandle`]).
    /// With TLS, SIGHUP reads the certificate and key again: new
    /// connections get the new pair, live ones keep theirs; a pair that
    /// does not load keeps the old one (and the log says why).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        #[allow(unused_mut)]
        let mut wanted = vec![SIGTERM, SIGINT];
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            wanted.push(signal_hook::consts::SIGHUP);
        }
        let mut signals = Signals::new(wanted)?;
        self.poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::other("no longer listening (shutting down)")),
        }
    }

    /// A handle that stops [`Gateway::run`] from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            flag: Arc::clone(&self.stop),
            waker: Arc::clone(&self.waker),
        }
    }

    /// Runs the event loop until stopped and drained.
    ///
    /// The loop flushes the logger (`log::logger().flush()`) before it
    /// writes to sockets and before it waits: a logger may keep the lines
    /// logged in between and write them together then (wsgate's own
    /// does), so that logging costs no system call a line, and a line is
    /// out before the answer it describes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        #[cfg(feature = "tls")]
        if let Some(port) = &self.tls {
            info!(
                "tls on: cert={} (TLS 1.3, ALPN http/1.1; SIGHUP reloads)",
                crate::core::quoted(&port.files.cert.display().to_string())
            );
        }
        info!("listening on {}", self.local_addr()?);
        let mut drain_until: Option<Time> = None;
        loop {
            let now = self.clock.now();
            if drain_until.is_none() && self.stop.load(Ordering::SeqCst) {
                drain_until = Some(self.begin_shutdown(now));
            }
            #[cfg(feature = "tls")]
            let draining = self.expire_drains(now);
            #[cfg(not(feature = "tls"))]
            let draining: Option<Time> = None;
            if let Some(until) = drain_until {
                if (self.server.connections() == 0 && draining.is_none()) || now >= until {
                    break;
                }
            }
            let deadline = [self.server.poll_timeout(), drain_until, draining]
                .into_iter()
                .flatten()
                .min();
            let timeout = if self.ready.is_empty() {
                deadline.map(|at| at.since(now))
            } else {
                Some(Duration::ZERO)
            };
            log::logger().flush();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.clock.now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {
                        self.password_results(now);
                        self.publications(now);
                        #[cfg(feature = "redis")]
                        self.link_events(now);
                    }
                    SIGNALS => self.signals_pending(),
                    Token(token) => {
                        let id = ConnId::from_token(token as u64);
                        #[cfg(feature = "tls")]
                        if self.draining.contains_key(&id) {
                            self.flush_drain(id);
                            continue;
                        }
                        if event.is_read_closed() || event.is_error() {
                            if let Some(socket) = self.socket(id) {
                                socket.hup = true;
                            }
                            self.mark_ready(id);
                        } else if event.is_readable() {
                            self.mark_ready(id);
                        }
                        if event.is_writable() {
                            #[cfg(feature = "tls")]
                            self.flush_tls(id, now);
                            self.server.handle_writable(id);
                        }
                    }
                }
            }
            self.read_ready(now);
            self.flush(now);
            self.actions();
            self.server.handle_timeout(now);
            self.actions();
            self.flush(now);
            self.actions();
        }
        info!("stopped");
        Ok(())
    }

    /// Stops accepting and tells the core to close everything; returns the
    /// time by which the loop ends regardless.
    fn begin_shutdown(&mut self, now: Time) -> Time {
        info!(
            "shutting down: draining {} connections",
            self.server.connections()
        );
        // why close, not just stop accepting: with --reuse-port the kernel
        // keeps handing a listening socket its share of new connections;
        // closed, it hands them to the processes that stay.
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Every member is about to be closed: a line now would reach nobody.
        self.inbox.close();
        self.server.handle_shutdown(now);
        self.actions();
        // The close frames go out now, not after the next event.
        self.flush(now);
        self.actions();
        now + self.server.config().limits.drain_timeout
    }

    fn signals_pending(&mut self) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        let pending: Vec<i32> = signals.pending().collect();
        for signal in pending {
            #[cfg(feature = "tls")]
            if signal == signal_hook::consts::SIGHUP {
                self.reload_tls();
                continue;
            }
            info!("signal {signal}: stopping");
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Reads the TLS certificate and key again (`SIGHUP`).
    #[cfg(feature = "tls")]
    fn reload_tls(&mut self) {
        let Some(port) = self.tls.as_mut() else {
            return;
        };
        match port.files.load() {
            Ok(config) => {
                port.config = config;
                info!(
                    "tls reloaded cert={} key={}",
                    crate::core::quoted(&port.files.cert.display().to_string()),
                    crate::core::quoted(&port.files.key.display().to_string())
                );
            }
            Err(e) => warn!("tls reload failed, keeping the current certificate: {e}"),
        }
    }

    fn accept(&mut self, now: Time) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let id = match self.server.handle_accept(peer, now) {
                        Accept::Open(id) => id,
                        Accept::Refuse(answer) => {
                            // why: on a TLS port an HTTP answer would need
                            // the handshake the limit is there to spare;
                            // the refusal is a close without a word.
                            #[cfg(feature = "tls")]
                            let answer = if self.tls.is_some() {
                                Vec::new()
                            } else {
                                answer
                            };
                            self.refuse(stream, &answer);
                            continue;
                        }
                        Accept::Drop => continue,
                    };
                    // why: Linux copies TCP_NODELAY from the listener.
                    #[cfg(not(target_os = "linux"))]
                    let _ = stream.set_nodelay(true);
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(id.to_token() as usize),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("register failed peer={peer}: {e}");
                        self.server.handle_closed(id, now);
                        continue;
                    }
                    #[cfg(feature = "tls")]
                    let tls = match self.tls.as_ref() {
                        None => None,
                        Some(port) => match crate::tls::TlsConn::new(Arc::clone(&port.config)) {
                            Ok(tls) => Some(Box::new(tls)),
                            Err(e) => {
                                warn!("tls setup failed peer={peer}: {e}");
                                let _ = self.poll.registry().deregister(&mut stream);
                                self.server.handle_closed(id, now);
                                continue;
                            }
                        },
                    };
                    let slot = id.slot();
                    if self.sockets.len() <= slot {
                        self.sockets.resize_with(slot + 1, || None);
                    }
                    // why: the core gives a slot again only once it has
                    // forgotten the connection there; a socket still held
                    // for it (its Close not yet carried out) is done with.
                    if let Some(mut old) = self.sockets[slot].take() {
                        let _ = self.poll.registry().deregister(&mut old.stream);
                    }
                    self.sockets[slot] = Some(Socket {
                        id,
                        stream,
                        ready: false,
                        hup: false,
                        #[cfg(feature = "tls")]
                        tls,
                        #[cfg(feature = "tls")]
                        shut_pending: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the backlog waits for the next
                    // connection's event; don't spin.
                    warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Answers a refused socket without keeping it: one write of the
    /// answer (a new socket's buffer takes it whole; held for the FIN, see
    /// [`write_queue`]), then whatever the
    /// peer already sent is read and discarded so that closing sends a FIN
    /// rather than a reset, and the socket is dropped.
    fn refuse(&mut self, mut stream: TcpStream, answer: &[u8]) {
        let _ = write_queue(&mut stream, answer, true);
        let _ = stream.shutdown(Shutdown::Write);
        let _ = stream.read(&mut self.buf);
    }

    /// The socket of connection `id`, if the shell still holds it.
    fn socket(&mut self, id: ConnId) -> Option<&mut Socket> {
        self.sockets
            .get_mut(id.slot())
            .and_then(Option::as_mut)
            .filter(|s| s.id == id)
    }

    fn mark_ready(&mut self, id: ConnId) {
        if let Some(socket) = self.socket(id) {
            if !socket.ready {
                socket.ready = true;
                self.ready.push(id);
            }
        }
    }

    /// Reads every ready connection once, up to the budget each.
    fn read_ready(&mut self, now: Time) {
        let mut ready = std::mem::take(&mut self.ready);
        for id in ready.drain(..) {
            if let Some(socket) = self.socket(id) {
                socket.ready = false;
            }
            if self.read_one(id, now) {
                self.mark_ready(id);
            }
        }
        // why: the list keeps its allocation from turn to turn.
        if self.ready.is_empty() {
            self.ready = ready;
        }
    }

    /// Reads `id` until `WouldBlock`, end of stream or the budget; true
    /// when the budget ran out first.
    fn read_one(&mut self, id: ConnId, now: Time) -> bool {
        if self.server.awaits_proxy_header(id) && !self.read_proxy_header(id, now) {
            return false;
        }
        #[cfg(feature = "tls")]
        if self.socket(id).is_some_and(|s| s.tls.is_some()) {
            return self.read_one_tls(id, now);
        }
        let mut total = 0;
        loop {
            let Some(stream) = stream_of(&mut self.sockets, id) else {
                return false;
            };
            // Flow control: the input stays in the kernel until the core
            // says `Resume`.
            if !self.server.should_read(id, now) {
                return false;
            }
            match stream.read(&mut self.buf) {
                Ok(0) => {
                    // The core answers what it already has, then says Close.
                    self.server.handle_eof(id, now);
                    self.actions();
                    return false;
                }
                Ok(n) => {
                    self.server.handle_bytes(id, &self.buf[..n], now);
                    self.actions();
                    total += n;
                    if total >= READ_BUDGET {
                        return true;
                    }
                    // why: a read that did not fill the buffer emptied the
                    // socket, and bytes that come after it raise a new
                    // edge-triggered event: before the upgrade, the read
                    // that would only say WouldBlock is skipped (a system
                    // call a request, as tokio does). Not on a WebSocket,
                    // whose frames stream in: reading on keeps a large
                    // frame from waiting a turn half read (which held a
                    // 60 KiB frame buffer per sender through a burst).
                    // Not once the peer hung up: its end of stream raises
                    // no new event, so it is read now.
                    if n < self.buf.len()
                        && !self.socket(id).is_some_and(|s| s.hup)
                        && !self.server.is_websocket(id)
                    {
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.server.handle_closed(id, now);
                    self.drop_socket(id);
                    return false;
                }
            }
        }
    }

    /// Takes the PROXY protocol header of connection `id` off its stream:
    /// peeks, lets the core read what is there, and reads exactly the
    /// header once the core has it whole, so that what follows it (TLS or
    /// HTTP) stays in the kernel for the usual reads. False while the
    /// header is not whole (the next readable event brings more) or when
    /// the connection ended.
    // why: only for trusted proxies; kept out of the loop that calls it.
    #[inline(never)]
    fn read_proxy_header(&mut self, id: ConnId, now: Time) -> bool {
        let Some(stream) = stream_of(&mut self.sockets, id) else {
            return false;
        };
        let peeked = loop {
            match stream.peek(&mut self.buf[..MAX_PROXY_HEADER]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let taken = match peeked {
            Ok(0) => {
                self.server.handle_eof(id, now);
                self.forget_unstarted(id);
                self.actions();
                return false;
            }
            Ok(n) => match self.server.handle_proxy_header(id, &self.buf[..n], now) {
                None => return false,
                // The header is in the kernel's buffer, whole: one read of
                // its length takes it and nothing after it.
                Some(len) => {
                    len == 0 || matches!(stream.read(&mut self.buf[..len]), Ok(k) if k == len)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => false,
        };
        if !taken {
            self.server.handle_closed(id, now);
            self.drop_socket(id);
            return false;
        }
        self.forget_unstarted(id);
        self.actions();
        true
    }

    /// Drops the socket of `id` when the core let go of it before its TLS
    /// handshake began (a refusal at the PROXY header, or no header): a
    /// close without a word, as at accept, not a TLS failure to count.
    fn forget_unstarted(&mut self, id: ConnId) {
        #[cfg(feature = "tls")]
        if !self.server.holds(id) {
            self.drop_socket(id);
        }
        #[cfg(not(feature = "tls"))]
        let _ = id;
    }

    /// One `write()` per connection with queued bytes.
    fn flush(&mut self, now: Time) {
        // why: what the loop logged goes out before the answers it
        // describes, so a peer never sees an answer whose line is still
        // kept (and a kill right after it cannot lose that line).
        log::logger().flush();
        while let Some(id) = self.server.poll_transmit() {
            #[cfg(feature = "tls")]
            if self.socket(id).is_some_and(|s| s.tls.is_some()) {
                self.flush_tls(id, now);
                continue;
            }
            let Some(stream) = stream_of(&mut self.sockets, id) else {
                continue;
            };
            let last = self.server.shuts_when_written(id);
            match write_queue(stream, self.server.pending(id), last) {
                Ok(n) => self.server.handle_written(id, n, now),
                // The writable event will bring it back.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.server.handle_writable(id),
                Err(_) => {
                    self.server.handle_closed(id, now);
                    self.drop_socket(id);
                }
            }
        }
    }

    fn publications(&mut self, now: Time) {
        let lines = std::mem::take(&mut self.inbox.state().lines);
        for publication in &lines {
            // The publisher checked it against the same limit.
            let _ = self.server.handle_publish(publication, now);
        }
    }

    /// What the Redis link reported since the last wake.
    #[cfg(feature = "redis")]
    fn link_events(&mut self, now: Time) {
        let Some(link) = &self.redis else {
            return;
        };
        for event in link.take_events() {
            self.server.handle_link(event, now);
        }
    }

    fn password_results(&mut self, now: Time) {
        let answers = std::mem::take(&mut *lock(&self.passwords.answers));
        for (job, verified) in answers {
            self.server.handle_password_checked(job, verified, now);
        }
    }

    fn actions(&mut self) {
        while let Some(action) = self.server.poll_action() {
            match action {
                Action::Close(id) => {
                    #[cfg(feature = "tls")]
                    if self.tls_closing(id) {
                        continue;
                    }
                    self.drop_socket(id);
                }
                Action::ShutdownWrite(id) => {
                    #[cfg(feature = "tls")]
                    if let Some(socket) = self.socket(id).filter(|s| s.tls.is_some()) {
                        if let Some(tls) = socket.tls.as_mut() {
                            tls.close();
                        }
                        socket.shut_pending = true;
                        let now = self.clock.now();
                        self.flush_tls(id, now);
                        continue;
                    }
                    if let Some(stream) = stream_of(&mut self.sockets, id) {
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                }
                Action::CheckPassword(job) => {
                    lock(&self.passwords.jobs).queue.push_back(job);
                    self.passwords.job_ready.notify_one();
                }
                Action::Resume(id) => self.mark_ready(id),
                #[cfg(feature = "redis")]
                Action::Publish(publish) => {
                    if let Some(link) = &self.redis {
                        link.publish(publish);
                    }
                }
                // why: without the feature the core is never clustered
                // (`Config::validate` refuses `--redis`).
                #[cfg(feature = "redis")]
                Action::Query(query) => {
                    if let Some(link) = &self.redis {
                        link.ask(query);
                    }
                }
                #[cfg(not(feature = "redis"))]
                Action::Publish(_) | Action::Query(_) => {}
            }
        }
    }

    /// Reads TLS connection `id` like [`Gateway::read_one`]: ciphertext
    /// from the socket into rustls, handshake messages back at once, the
    /// plaintext to the core.
    #[cfg(feature = "tls")]
    fn read_one_tls(&mut self, id: ConnId, now: Time) -> bool {
        use crate::tls::Received;
        let mut total = 0;
        loop {
            if !self.server.should_read(id, now) {
                return false;
            }
            let Some(socket) = self.sockets.get_mut(id.slot()).and_then(Option::as_mut) else {
                return false;
            };
            let Some(tls) = socket.tls.as_mut().filter(|_| socket.id == id) else {
                return false;
            };
            let got = tls.read_tls(&mut socket.stream);
            self.plain.clear();
            tls.read_plaintext(&mut self.plain);
            // Handshake messages and alerts go out at once.
            let sent = tls.write_tls(&mut socket.stream);
            let got = match (got, sent) {
                (Ok(got), Ok(_)) => got,
                (Ok(got), Err(e)) if is_transient(&e) => got,
                _ => {
                    self.server.handle_closed(id, now);
                    self.drop_socket(id);
                    return false;
                }
            };
            if !self.plain.is_empty() {
                self.server.handle_bytes(id, &self.plain, now);
                self.actions();
            }
            match got {
                Received::Nothing => return false,
                Received::Bytes(n) => {
                    total += n;
                    if total >= READ_BUDGET {
                        return true;
                    }
                }
                Received::Closed => {
                    // The core answers what it already has, then says Close.
                    self.server.handle_eof(id, now);
                    self.actions();
                    return false;
                }
                Received::Failed(class) => {
                    self.server.handle_tls_failure(id, class.name(), now);
                    self.abandon(id);
                    return false;
                }
            }
        }
    }

    /// Writes what TLS connection `id` has encrypted, then encrypts more of
    /// the core's queue once that is all out (so the core's queue, not
    /// rustls, holds what the kernel has not taken); shuts the write half
    /// when the core asked for it and everything is out.
    #[cfg(feature = "tls")]
    fn flush_tls(&mut self, id: ConnId, now: Time) {
        loop {
            let Some(socket) = self.sockets.get_mut(id.slot()).and_then(Option::as_mut) else {
                return;
            };
            let Some(tls) = socket.tls.as_mut().filter(|_| socket.id == id) else {
                return;
            };
            match tls.write_tls(&mut socket.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.server.handle_closed(id, now);
                    self.drop_socket(id);
                    return;
                }
            }
            if tls.wants_write() {
                return;
            }
            if socket.shut_pending {
                socket.shut_pending = false;
                let _ = socket.stream.shutdown(Shutdown::Write);
                return;
            }
            let n = tls.write_plaintext(self.server.pending(id));
            if n == 0 {
                return;
            }
            self.server.handle_written(id, n, now);
        }
    }

    /// The core let go of `id` (Action::Close). A handshake it gave up on
    /// is counted as a timeout. Bytes TLS still holds (the core counted
    /// them written when TLS took them) are written out before the socket
    /// goes, with a `close_notify`: the socket moves to `draining`, and
    /// true is returned. False: the caller drops it now.
    #[cfg(feature = "tls")]
    fn tls_closing(&mut self, id: ConnId) -> bool {
        let shutting_down = self.server.is_shutting_down();
        let room = self.draining.len() < MAX_DRAINING;
        let Some(socket) = self.socket(id) else {
            return false;
        };
        let Some(tls) = socket.tls.as_mut() else {
            return false;
        };
        if tls.is_handshaking() {
            if !shutting_down {
                let now = self.clock.now();
                self.server.handle_tls_failure(id, "timeout", now);
            }
            return false;
        }
        tls.close();
        let _ = tls.write_tls(&mut socket.stream);
        if !tls.wants_write() || !room {
            let _ = socket.stream.shutdown(Shutdown::Write);
            return false;
        }
        let slot = self.sockets.get_mut(id.slot());
        let Some(socket) = slot.and_then(|s| s.take_if(|s| s.id == id)) else {
            return false;
        };
        let until = self.clock.now() + self.server.config().limits.close_timeout;
        self.draining.insert(id, Draining { socket, until });
        true
    }

    /// A draining socket can take more: write what TLS holds; once all is
    /// out, shut the write half and drop it.
    #[cfg(feature = "tls")]
    fn flush_drain(&mut self, id: ConnId) {
        let Some(drain) = self.draining.get_mut(&id) else {
            return;
        };
        let socket = &mut drain.socket;
        let done = match socket.tls.as_mut() {
            Some(tls) => match tls.write_tls(&mut socket.stream) {
                Ok(_) => !tls.wants_write(),
                Err(e) => !is_transient(&e),
            },
            None => true,
        };
        // Input is discarded, so that closing is a FIN, not a reset; at
        // most a read budget a turn, so a peer that keeps sending cannot
        // hold the event loop here.
        let mut discarded = 0;
        while discarded < READ_BUDGET {
            match socket.stream.read(&mut self.buf) {
                Ok(n) if n > 0 => discarded += n,
                _ => break,
            }
        }
        if done {
            if let Some(mut drain) = self.draining.remove(&id) {
                let _ = drain.socket.stream.shutdown(Shutdown::Write);
                let _ = self.poll.registry().deregister(&mut drain.socket.stream);
            }
        }
    }

    /// Drops draining sockets past their deadline; returns the earliest
    /// deadline left.
    #[cfg(feature = "tls")]
    fn expire_drains(&mut self, now: Time) -> Option<Time> {
        if self.draining.is_empty() {
            return None;
        }
        let registry = self.poll.registry();
        self.draining.retain(|_, drain| {
            let keep = now < drain.until;
            if !keep {
                let _ = registry.deregister(&mut drain.socket.stream);
            }
            keep
        });
        self.draining.values().map(|d| d.until).min()
    }

    /// Drops a failed TLS connection the core already forgot: what TLS has
    /// to say (an alert, or the plain-HTTP `400`) is written once, the
    /// write half shut, and input already there discarded, so that the
    /// close is a FIN that leaves the answer readable.
    #[cfg(feature = "tls")]
    fn abandon(&mut self, id: ConnId) {
        let slot = self.sockets.get_mut(id.slot());
        let Some(mut socket) = slot.and_then(|s| s.take_if(|s| s.id == id)) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut socket.stream);
        if let Some(tls) = socket.tls.as_mut() {
            let _ = tls.write_tls(&mut socket.stream);
        }
        let _ = socket.stream.shutdown(Shutdown::Write);
        let _ = socket.stream.read(&mut self.buf);
    }

    /// Closes the socket of `id`. Closing the file descriptor takes it out
    /// of epoll (no `deregister`: a system call a connection); an event
    /// already returned for it, or one for a socket a forked child of an
    /// embedding program still holds until it `exec`s, carries an id no
    /// socket has any more, and is ignored.
    fn drop_socket(&mut self, id: ConnId) {
        let slot = self.sockets.get_mut(id.slot());
        drop(slot.and_then(|s| s.take_if(|s| s.id == id)));
    }
}

/// An I/O error that only means "not now".
#[cfg(feature = "tls")]
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Writes `bytes` to `stream`. `last`: the write half is shut right after
/// a write that takes them all (the same turn's actions), so on Linux
/// they are sent with `MSG_MORE`: the kernel holds them for the FIN, and
/// the answer and its FIN leave in one segment instead of two (a segment,
/// an ACK and a wake-up of the peer fewer; the same bytes on the wire).
/// Held bytes never wait long without that shut either: the next ACK or
/// TCP's probe timer (about 200 ms) sends them.
fn write_queue(stream: &mut TcpStream, bytes: &[u8], last: bool) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if last {
        use rustix::net::{SendFlags, send};
        return send(&*stream, bytes, SendFlags::MORE | SendFlags::NOSIGNAL)
            .map_err(io::Error::from);
    }
    let _ = last;
    stream.write(bytes)
}

/// The stream of connection `id` in `sockets`, if the shell still holds it.
fn stream_of(sockets: &mut [Option<Socket>], id: ConnId) -> Option<&mut TcpStream> {
    sockets
        .get_mut(id.slot())
        .and_then(Option::as_mut)
        .filter(|s| s.id == id)
        .map(|s| &mut s.stream)
}
