//! The Redis link for scale-out (cargo feature `redis`): several wsgate
//! processes form one chat by storing and fanning out every chat message
//! through one Redis, which decides one order for all of them.
//!
//! # Threads
//!
//! A [`Link`] owns two helper threads with blocking `std::net` sockets (the
//! mio loop never blocks on Redis):
//!
//! - the **commands** thread holds one connection: `SCRIPT LOAD` of the
//!   publish script after every (re)connect, then `EVALSHA` for each
//!   [`Publish`]. It takes every queued publish at once (at most
//!   [`MAX_BATCH_BYTES`] of them), writes them in one go (pipelining),
//!   then reads that many replies, in order. A `NOSCRIPT` reply (Redis
//!   restarted or its script cache flushed) loads the script again and
//!   retries that publish once. Idle, it sends `PING` every second;
//! - the **subscription** thread holds the other: `SUBSCRIBE
//!   {prefix}:{db}:msgs`, and every message there becomes a
//!   [`LinkEvent::Message`], every end event a
//!   [`LinkEvent::SessionsEnded`]. Idle, it sends `PING` every second too
//!   (RESP2 subscribe mode answers `["pong", ""]`).
//!
//! A reply not read within [`REPLY_TIMEOUT`] (10 s) marks the connection
//! dead: a Redis that stalls a few seconds (`SIGSTOP`, a slow `fork`) only
//! makes replies late. A dead connection is reconnected with exponential
//! backoff and full jitter (a random wait up to 100 ms, doubling to 5 s).
//!
//! # Events
//!
//! [`LinkEvent::Up`] once both connections are ready after a (re)connect;
//! [`LinkEvent::Down`] once when either fails (or the first connect does).
//! After a Down the connection that did not fail counts as ready again only
//! once a `PING` sent after the Down is answered: an idle connection to a
//! Redis that was restarted does not know yet that it is dead.
//! Publishes are taken only while up: otherwise, and past
//! [`MAX_IN_FLIGHT`] publishes queued or unanswered, [`Link::publish`]
//! answers `Failed { unconfirmed: false }` at once. On Down, publishes
//! still queued are answered the same way; publishes already written and
//! not answered when the commands connection fails are `Failed {
//! unconfirmed: true }` (Redis may have run them: their message may still
//! be delivered). A Down of the subscription alone leaves the commands
//! connection running, so publishes written before it may still be
//! answered `Stored` after the `Down`. A publish that had to be retried
//! after `NOSCRIPT` is answered after the ones behind it. A script error
//! (Redis out of memory, say) is `Failed { unconfirmed: false }` and
//! logged. A node's own message ([`LinkEvent::Message`]) and the answer
//! to its publish ([`LinkEvent::Stored`]) come on different connections,
//! so either may come first. Every event is queued for [`Link::take_events`] and then
//! `notify` is called, so that the shell wakes its poll.
//!
//! # Keys, channel, payloads
//!
//! With `prefix` `p` (every key and the channel carry it):
//!
//! | key / channel    | type    | what                                           |
//! |------------------|---------|------------------------------------------------|
//! | `p:seq:ROOM`     | string  | the room's last sequence number (`INCR`)       |
//! | `p:epoch:ROOM`   | string  | the room's epoch, 16 lowercase hex digits      |
//! | `p:log:ROOM`     | stream  | the room's history: entry id `SEQ-0`, field `m` = payload; `MAXLEN ~ keep`; none with `keep` 0 |
//! | `p:DB:msgs`      | channel | every payload, all rooms, and end events (channels are not per database: `DB` keeps deployments on one Redis apart) |
//!
//! Every key of a room expires [`KEY_TTL_SECS`] after its last message:
//! a room quiet that long starts a new epoch, and Redis does not keep
//! every room ever named.
//!
//! Because an entry's id is `SEQ-0`, `XRANGE p:log:ROOM (N +` reads
//! exactly the messages after sequence number `N` (an exclusive start
//! `(N` means `N-1` onwards; with ids `N-1` this would repeat `N`).
//!
//! A message's payload is the compact JSON object `cjson.encode` makes of
//! `{"r": room, "f": from, "x": text, "t": ts, "s": seq, "e": epoch}`, every
//! value a string (`t` and `s` in decimal, `e` in hex, so that no Lua
//! double ever rounds them). `cjson` writes `/` as `\/`; `serde_json` reads
//! it back as it was. An event's payload has its kind in `k`: sessions
//! ended are `{"k": "end", "w": "logout" or "evicted", "d": ["HEX", ...]}`
//! (in any key order; `HEX` is a session id's digest in 64 lowercase hex
//! digits). A payload with a `k` this version does not know (a newer
//! node's) is skipped, and logged once a connection.
//!
//! # Sequence and epoch
//!
//! The publish script ([`PUBLISH_SCRIPT`]) runs atomically, so Redis
//! decides one order for every node: `INCR` the room's seq, read its
//! epoch, `XADD` the entry, `PUBLISH` the payload, return the seq. A new
//! epoch starts whenever the pair is not intact: when the epoch key is
//! missing (the first message, or it was evicted or deleted) **or** the
//! seq key was (the `INCR` gave 1). Then the epoch is set from `TIME`
//! (`string.format('%08x%08x', seconds, microseconds)`), the seq is set
//! to 1 (it may have been more, if only the epoch was lost) and the
//! room's stream is deleted (its ids would be above the new seqs, and its
//! entries belong to the old epoch). So a new epoch always starts at seq
//! 1, and within an epoch seqs are gapless.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{info, warn};
use redis_protocol::resp2::decode::decode;
use redis_protocol::resp2::encode::encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};
use serde::Deserialize;

use crate::config::RedisUrl;
use crate::core::cluster::{Answer, Delivered, Digest, Ended, LinkEvent, Publish, Query};

/// The most publishes queued or written and not yet answered; past it,
/// [`Link::publish`] answers `Failed { unconfirmed: false }` at once.
pub const MAX_IN_FLIGHT: usize = 4096;

/// At most this many bytes of commands are written before their replies
/// are read (one publish is always taken, however large).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// A reply (or pong) not read within this marks the connection dead.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// An idle connection is pinged this often.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// TCP connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most subscription messages (by weight) waiting for the event loop;
/// past it the subscription lets go and reconnects (see
/// `Shared::push_events`).
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// What each queued event weighs beside its texts.
const EVENT_OVERHEAD: usize = 128;

/// Keys of a room expire after this long without a message (seconds): a
/// room is then a new life (a new epoch) at its next message, and Redis
/// does not keep every room ever named.
pub const KEY_TTL_SECS: u64 = 7 * 24 * 3600;

/// Backoff: the first wait is at most this, doubling...
const BACKOFF_BASE: Duration = Duration::from_millis(100);

/// ...up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// How long the subscription thread blocks in one read (it then checks
/// whether to ping, or to stop).
const SUB_READ_SLICE: Duration = Duration::from_millis(100);

/// The publish script. `KEYS`: seq, epoch, log; `ARGV`: channel, keep,
/// room, from, text, ts, the keys' time to live in seconds. Returns the
/// seq. See the module doc.
pub const PUBLISH_SCRIPT: &str = r#"
local seq = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[2])
if (not epoch) or seq == 1 then
  local t = redis.call('TIME')
  epoch = string.format('%08x%08x', tonumber(t[1]), tonumber(t[2]))
  redis.call('SET', KEYS[2], epoch)
  if seq ~= 1 then
    seq = 1
    redis.call('SET', KEYS[1], 1)
  end
  redis.call('DEL', KEYS[3])
end
local s = string.format('%d', seq)
local payload = cjson.encode({r = ARGV[3], f = ARGV[4], x = ARGV[5], t = ARGV[6], s = s, e = epoch})
if ARGV[2] ~= '0' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], s .. '-0', 'm', payload)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
end
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('PUBLISH', ARGV[1], payload)
return seq
"#;

/// A payload on the channel as the scripts write it (see the module
/// doc): a message has no `k`, an event has its kind in `k`. One pass
/// reads either (messages are the busy path).
#[derive(Deserialize)]
struct Wire {
    k: Option<String>,
    // A message.
    r: Option<String>,
    f: Option<String>,
    x: Option<String>,
    t: Option<String>,
    s: Option<String>,
    e: Option<String>,
    // An end event.
    w: Option<String>,
    d: Option<Vec<String>>,
}

/// What a payload on the channel says.
#[derive(Debug, PartialEq, Eq)]
enum Payload {
    Message(Delivered),
    Ended {
        digests: Vec<Digest>,
        why: Ended,
    },
    /// An event this version does not know (a newer node's): skipped.
    Unknown(String),
}

/// Reads a payload from the subscription; `None` if it does not parse.
fn parse_payload(bytes: &[u8]) -> Option<Payload> {
    let w: Wire = serde_json::from_slice(bytes).ok()?;
    match w.k.as_deref() {
        None => Some(Payload::Message(Delivered {
            room: w.r?,
            from: w.f?,
            text: w.x?,
            ts: w.t?.parse().ok()?,
            seq: w.s?.parse().ok()?,
            epoch: u64::from_str_radix(&w.e?, 16).ok()?,
        })),
        Some("end") => {
            let why = match w.w?.as_str() {
                "logout" => Ended::LoggedOut,
                "evicted" => Ended::Evicted,
                other => return Some(Payload::Unknown(format!("end/{other}"))),
            };
            let digests = w.d?.iter().map(|h| unhex(h)).collect::<Option<_>>()?;
            Some(Payload::Ended { digests, why })
        }
        Some(kind) => Some(Payload::Unknown(kind.to_string())),
    }
}

/// The digest `s` spells; `None` unless 64 lowercase hex digits.
fn unhex(s: &str) -> Option<Digest> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut digest = [0; 32];
    for (d, pair) in digest.iter_mut().zip(s.chunks_exact(2)) {
        *d = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(digest)
}

/// The link to Redis: two helper threads (commands, subscription). See the
/// module doc. Dropping it ends both threads promptly and joins them.
pub struct Link {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Link {
    /// Starts the link. `keep` is the history length per room (the
    /// stream's `MAXLEN ~ keep`: at least `keep` entries remain), `prefix`
    /// namespaces every key and the channel (e.g. `"wsgate"`). `notify` is
    /// called after events were queued (on the link threads, and on the
    /// caller's for a publish refused at once): the shell wakes its poll.
    ///
    /// # Panics
    ///
    /// If the OS cannot start a thread.
    pub fn start(
        url: RedisUrl,
        prefix: &str,
        keep: usize,
        notify: Box<dyn Fn() + Send + Sync>,
    ) -> Link {
        let settings = Arc::new(Settings {
            addr: url.to_string(),
            // why the db: Pub/Sub channels are not per database, keys are.
            channel: format!("{prefix}:{}:msgs", url.db),
            url,
            prefix: prefix.to_string(),
            keep: keep.to_string(),
        });
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            cv: Condvar::new(),
            notify,
            settings,
        });
        let mut threads = Vec::new();
        for role in [Role::Commands, Role::Subscription] {
            let sh = Arc::clone(&shared);
            let name = match role {
                Role::Commands => "wsgate-redis-cmd",
                Role::Subscription => "wsgate-redis-sub",
            };
            let handle = thread::Builder::new()
                .name(name.to_string())
                .spawn(move || connection_thread(&sh, role))
                .expect("start a Redis link thread");
            threads.push(handle);
        }
        Link { shared, threads }
    }

    /// Queues a publish; never blocks the caller (beyond a short lock).
    /// While the link is not up, or with [`MAX_IN_FLIGHT`] publishes
    /// unanswered, `Failed { unconfirmed: false }` is queued at once.
    pub fn publish(&self, p: Publish) {
        let refused = {
            let mut inner = self.shared.lock();
            if inner.up == Some(true) && inner.in_flight < MAX_IN_FLIGHT {
                inner.in_flight += 1;
                inner.queue.push_back(p);
                false
            } else {
                inner.events.push(LinkEvent::Failed {
                    id: p.id,
                    unconfirmed: false,
                });
                true
            }
        };
        if refused {
            (self.shared.notify)();
        } else {
            self.shared.cv.notify_all();
        }
    }

    /// Queues a question about sessions or tickets; never blocks the
    /// caller. (Interim: answered `Unavailable` at once; the link's side
    /// comes next.)
    pub fn ask(&self, q: Query) {
        self.shared.lock().events.push(LinkEvent::Answer {
            id: q.id,
            answer: Answer::Unavailable,
        });
        (self.shared.notify)();
    }

    /// Every event since the last call, in order.
    pub fn take_events(&self) -> Vec<LinkEvent> {
        let mut inner = self.shared.lock();
        inner.event_bytes = 0;
        std::mem::take(&mut inner.events)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        {
            let mut inner = self.shared.lock();
            inner.stop = true;
            for sock in inner.sockets.iter().flatten() {
                // Unblocks a thread reading or writing it.
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
        self.shared.cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Which connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Commands = 0,
    Subscription = 1,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Commands => "commands",
            Role::Subscription => "subscription",
        }
    }
}

/// What both threads read.
struct Settings {
    url: RedisUrl,
    /// `redis://host:port/db`, without user or password: for logs.
    addr: String,
    prefix: String,
    channel: String,
    keep: String,
}

impl Settings {
    /// `why` without the password (Redis never echoes it, but be sure).
    fn redact(&self, why: &str) -> String {
        match self.url.password.as_deref() {
            Some(pw) if !pw.is_empty() => why.replace(pw, "[redacted]"),
            _ => why.to_string(),
        }
    }
}

/// State shared by the [`Link`] and its threads.
struct Shared {
    inner: Mutex<Inner>,
    /// Signals new publishes and `stop`.
    cv: Condvar,
    notify: Box<dyn Fn() + Send + Sync>,
    settings: Arc<Settings>,
}

#[derive(Default)]
struct Inner {
    events: Vec<LinkEvent>,
    /// What the queued subscription messages weigh (their texts and
    /// names, plus [`EVENT_OVERHEAD`] each), bounded by
    /// [`MAX_EVENT_BYTES`].
    event_bytes: usize,
    /// Accepted publishes not yet taken by the commands thread.
    queue: VecDeque<Publish>,
    /// Publishes queued, or written and unanswered.
    in_flight: usize,
    /// Which connections are ready (by [`Role`]).
    ready: [bool; 2],
    /// Which connections must prove alive (a round trip) before they count
    /// as ready again: set for the other one on a Down.
    verify: [bool; 2],
    /// What was last announced: `None` before the first Up or Down.
    up: Option<bool>,
    stop: bool,
    /// Clones of the current sockets, to shut them on drop.
    sockets: [Option<TcpStream>; 2],
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Whether `role` was asked to prove alive (the flag is then cleared).
    fn take_verify(&self, role: Role) -> bool {
        std::mem::take(&mut self.lock().verify[role as usize])
    }

    /// Keeps a clone of `role`'s socket for [`Link`]'s drop; `Err` if the
    /// link is stopping.
    fn register(&self, role: Role, stream: &TcpStream) -> Result<(), String> {
        let clone = stream.try_clone().map_err(|e| format!("socket: {e}"))?;
        let mut inner = self.lock();
        if inner.stop {
            let _ = clone.shutdown(Shutdown::Both);
            return Err("stopping".into());
        }
        inner.sockets[role as usize] = Some(clone);
        Ok(())
    }

    /// `role` is ready (or proved alive again after the other's Down): Up
    /// once both are.
    fn ready(&self, role: Role) {
        let up = {
            let mut inner = self.lock();
            if inner.ready[role as usize] {
                return;
            }
            inner.ready[role as usize] = true;
            if inner.ready == [true, true] && inner.up != Some(true) {
                inner.up = Some(true);
                inner.events.push(LinkEvent::Up);
                true
            } else {
                false
            }
        };
        info!(
            "redis {}: {} connection ready",
            self.settings.addr,
            role.name()
        );
        if up {
            info!("redis {}: link up", self.settings.addr);
            (self.notify)();
        }
    }

    /// `role` failed: the publishes in `unconfirmed` were written and not
    /// answered; Down (once), and every queued publish fails.
    fn down(&self, role: Role, why: &str, unconfirmed: &[u64]) {
        let why = self.settings.redact(why);
        let announce = {
            let mut inner = self.lock();
            inner.ready[role as usize] = false;
            inner.verify[role as usize] = false;
            inner.sockets[role as usize] = None;
            // why: the other connection may be just as dead and not know it
            // yet (idle, Redis restarted): it counts as ready again only
            // after a round trip begun after this.
            let other = 1 - role as usize;
            if inner.ready[other] {
                inner.ready[other] = false;
                inner.verify[other] = true;
            }
            for &id in unconfirmed {
                inner.events.push(LinkEvent::Failed {
                    id,
                    unconfirmed: true,
                });
            }
            inner.in_flight -= unconfirmed.len();
            let announce = inner.up != Some(false);
            if announce {
                inner.up = Some(false);
                inner.events.push(LinkEvent::Down { why: why.clone() });
            }
            // Nothing is queued while down; fail what was queued when it
            // went down.
            let queued: Vec<Publish> = inner.queue.drain(..).collect();
            inner.in_flight -= queued.len();
            for p in queued {
                inner.events.push(LinkEvent::Failed {
                    id: p.id,
                    unconfirmed: false,
                });
            }
            announce
        };
        info!(
            "redis {}: {} connection down: {why}",
            self.settings.addr,
            role.name()
        );
        if announce {
            warn!("redis {}: link down", self.settings.addr);
        }
        (self.notify)();
    }

    /// Answers for publishes the commands thread had taken.
    fn answered(&self, events: Vec<LinkEvent>) {
        if events.is_empty() {
            return;
        }
        {
            let mut inner = self.lock();
            inner.in_flight -= events.len();
            inner.events.extend(events);
        }
        (self.notify)();
    }

    /// Events from the subscription. False when the event loop has
    /// fallen so far behind that the queue is past [`MAX_EVENT_BYTES`]:
    /// the subscription then lets go (a `Down`; the nodes' numbering
    /// shows the gap), rather than hold more than the loop can take.
    fn push_events(&self, events: Vec<LinkEvent>) -> bool {
        if events.is_empty() {
            return true;
        }
        let weight: usize = (events.iter())
            .map(|e| match e {
                LinkEvent::Message(d) => {
                    d.text.len() + d.room.len() + d.from.len() + EVENT_OVERHEAD
                }
                LinkEvent::SessionsEnded { digests, .. } => {
                    digests.len() * size_of::<Digest>() + EVENT_OVERHEAD
                }
                _ => EVENT_OVERHEAD,
            })
            .sum();
        let within = {
            let mut inner = self.lock();
            inner.events.extend(events);
            inner.event_bytes += weight;
            inner.event_bytes <= MAX_EVENT_BYTES
        };
        (self.notify)();
        within
    }

    /// Waits `wait`, or less if the link stops; true if it stops.
    fn sleep(&self, wait: Duration) -> bool {
        let inner = self.lock();
        let (inner, _) = self
            .cv
            .wait_timeout_while(inner, wait, |i| !i.stop)
            .unwrap_or_else(PoisonError::into_inner);
        inner.stop
    }

    /// The commands thread's next work: publishes (at most
    /// [`MAX_BATCH_BYTES`] of them, at least one), or nothing by `until`
    /// (time to ping), or stop.
    fn next_batch(&self, until: Instant) -> Work {
        let mut inner = self.lock();
        loop {
            if inner.stop {
                return Work::Stop;
            }
            if inner.verify[Role::Commands as usize] {
                // Ping now; ready again once it is answered.
                return Work::Idle;
            }
            if !inner.queue.is_empty() {
                let mut batch = Vec::new();
                let mut bytes = 0;
                while let Some(p) = inner.queue.front() {
                    let size = p.text.len() + p.room.len() + p.from.len() + 256;
                    if !batch.is_empty() && bytes + size > MAX_BATCH_BYTES {
                        break;
                    }
                    bytes += size;
                    batch.extend(inner.queue.pop_front());
                }
                return Work::Publish(batch);
            }
            let now = Instant::now();
            if now >= until {
                return Work::Idle;
            }
            inner = self
                .cv
                .wait_timeout(inner, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

enum Work {
    Stop,
    Idle,
    Publish(Vec<Publish>),
}

/// Exponential backoff with full jitter. It starts again from the first
/// wait only after a connection stayed up [`STABLE_AFTER`]: a Redis that
/// accepts connections and drops them at once (`CLIENT KILL`, an output
/// buffer limit) is not hammered.
#[derive(Default)]
struct Backoff {
    attempt: u32,
    /// When the current connection became ready.
    up_since: Option<Instant>,
}

/// How long a connection must stay up for the backoff to start over.
const STABLE_AFTER: Duration = Duration::from_secs(10);

impl Backoff {
    /// The connection is ready.
    fn up(&mut self) {
        self.up_since = Some(Instant::now());
    }

    fn next(&mut self) -> Duration {
        if self
            .up_since
            .take()
            .is_some_and(|t| t.elapsed() >= STABLE_AFTER)
        {
            self.attempt = 0;
        }
        let cap = BACKOFF_BASE
            .saturating_mul(1 << self.attempt.min(16))
            .min(BACKOFF_MAX);
        self.attempt = self.attempt.saturating_add(1);
        let random = RandomState::new().build_hasher().finish();
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(random % (cap_ms + 1))
    }
}

/// One thread's life: connect, run until the connection fails, back off,
/// again; until the link stops.
fn connection_thread(sh: &Shared, role: Role) {
    let settings = Arc::clone(&sh.settings);
    let mut backoff = Backoff::default();
    loop {
        // why register before AUTH and SELECT: a link dropped while Redis
        // stalls must not wait for their replies (Drop shuts registered
        // sockets).
        let failure = match Conn::open(&settings.url) {
            Ok(mut conn) => match sh
                .register(role, &conn.stream)
                .and_then(|()| conn.handshake(&settings.url))
            {
                Ok(()) => match role {
                    Role::Commands => run_commands(sh, &settings, &mut conn, &mut backoff),
                    Role::Subscription => run_subscription(sh, &settings, &mut conn, &mut backoff),
                },
                Err(why) => (why, Vec::new()),
            },
            Err(why) => (why, Vec::new()),
        };
        if sh.stopping() {
            return;
        }
        let (why, unconfirmed) = failure;
        sh.down(role, &why, &unconfirmed);
        let wait = backoff.next();
        info!(
            "redis {}: reconnecting the {} connection in {} ms",
            settings.addr,
            role.name(),
            wait.as_millis()
        );
        if sh.sleep(wait) {
            return;
        }
    }
}

/// Why a connection ended, and the publishes written on it and never
/// answered.
type Failure = (String, Vec<u64>);

/// Loads the script; its SHA1.
fn load_script(conn: &mut Conn) -> Result<String, String> {
    match conn.call(&[b"SCRIPT", b"LOAD", PUBLISH_SCRIPT.as_bytes()])? {
        OwnedFrame::BulkString(sha) => {
            String::from_utf8(sha).map_err(|_| "bad SCRIPT LOAD reply".into())
        }
        OwnedFrame::Error(e) => Err(format!("SCRIPT LOAD refused: {e}")),
        _ => Err("unexpected SCRIPT LOAD reply".into()),
    }
}

/// The commands connection, ready: publishes and pings until it fails.
fn run_commands(sh: &Shared, st: &Settings, conn: &mut Conn, backoff: &mut Backoff) -> Failure {
    let mut sha = match load_script(conn) {
        Ok(sha) => sha,
        Err(why) => return (why, Vec::new()),
    };
    sh.ready(Role::Commands);
    backoff.up();
    let mut last = Instant::now();
    loop {
        let batch = match sh.next_batch(last + PING_EVERY) {
            Work::Stop => return ("stopping".into(), Vec::new()),
            Work::Idle => {
                let verify = sh.take_verify(Role::Commands);
                match conn.call(&[b"PING"]) {
                    Ok(OwnedFrame::SimpleString(_)) => {}
                    Ok(OwnedFrame::Error(e)) => return (format!("PING refused: {e}"), Vec::new()),
                    Ok(_) => return ("unexpected PING reply".into(), Vec::new()),
                    Err(why) => return (why, Vec::new()),
                }
                if verify {
                    sh.ready(Role::Commands);
                }
                last = Instant::now();
                continue;
            }
            Work::Publish(batch) => batch,
        };
        let mut events = Vec::with_capacity(batch.len());
        let mut retry = Vec::new();
        if let Err(failure) = pipeline(conn, st, &sha, &batch, &mut events, &mut retry) {
            return give_up(sh, events, &retry, failure);
        }
        if !retry.is_empty() {
            // Redis lost the script: load it again, retry those once.
            match load_script(conn) {
                Ok(new) => sha = new,
                Err(why) => return give_up(sh, events, &retry, (why, Vec::new())),
            }
            let mut again = Vec::new();
            if let Err(failure) = pipeline(conn, st, &sha, &retry, &mut events, &mut again) {
                return give_up(sh, events, &again, failure);
            }
            if !again.is_empty() {
                warn!("redis {}: NOSCRIPT again after loading the script", st.addr);
            }
            refuse(&mut events, &again);
        }
        sh.answered(events);
        last = Instant::now();
    }
}

/// The commands connection failed: the answers read stand, the publishes
/// Redis refused with `NOSCRIPT` were certainly not run.
fn give_up(
    sh: &Shared,
    mut events: Vec<LinkEvent>,
    noscript: &[Publish],
    failure: Failure,
) -> Failure {
    refuse(&mut events, noscript);
    sh.answered(events);
    failure
}

/// `Failed { unconfirmed: false }` for each of `refused`.
fn refuse(events: &mut Vec<LinkEvent>, refused: &[Publish]) {
    events.extend(refused.iter().map(|p| LinkEvent::Failed {
        id: p.id,
        unconfirmed: false,
    }));
}

/// Writes `batch` as `EVALSHA`s in one go and reads the replies in order:
/// answers go to `events`, publishes refused with `NOSCRIPT` to `retry`.
/// On failure, the publishes not answered are the failure's unconfirmed
/// ones.
fn pipeline(
    conn: &mut Conn,
    st: &Settings,
    sha: &str,
    batch: &[Publish],
    events: &mut Vec<LinkEvent>,
    retry: &mut Vec<Publish>,
) -> Result<(), Failure> {
    let mut out = Vec::new();
    for p in batch {
        encode_evalsha(&mut out, st, sha, p);
    }
    let unanswered = |from: usize| batch[from..].iter().map(|p| p.id).collect::<Vec<_>>();
    if let Err(why) = conn.send(&out) {
        return Err((why, unanswered(0)));
    }
    for (i, p) in batch.iter().enumerate() {
        let frame = match conn.next_frame(Instant::now() + REPLY_TIMEOUT) {
            Ok(frame) => frame,
            Err(why) => return Err((why, unanswered(i))),
        };
        match frame {
            OwnedFrame::Integer(seq) if seq > 0 => events.push(LinkEvent::Stored {
                id: p.id,
                seq: seq.unsigned_abs(),
            }),
            OwnedFrame::Error(e) if e.starts_with("NOSCRIPT") => retry.push(p.clone()),
            OwnedFrame::Error(e) => {
                warn!("redis {}: a publish failed: {e}", st.addr);
                events.push(LinkEvent::Failed {
                    id: p.id,
                    unconfirmed: false,
                });
            }
            _ => {
                warn!("redis {}: unexpected reply to a publish", st.addr);
                events.push(LinkEvent::Failed {
                    id: p.id,
                    unconfirmed: true,
                });
            }
        }
    }
    Ok(())
}

/// Appends `EVALSHA sha 3 KEYS... ARGV...` for `p`.
fn encode_evalsha(out: &mut Vec<u8>, st: &Settings, sha: &str, p: &Publish) {
    let prefix = &st.prefix;
    let room = &p.room;
    let seq_key = format!("{prefix}:seq:{room}");
    let epoch_key = format!("{prefix}:epoch:{room}");
    let log_key = format!("{prefix}:log:{room}");
    let ts = p.ts.to_string();
    let ttl = KEY_TTL_SECS.to_string();
    encode_command(
        out,
        &[
            b"EVALSHA",
            sha.as_bytes(),
            b"3",
            seq_key.as_bytes(),
            epoch_key.as_bytes(),
            log_key.as_bytes(),
            st.channel.as_bytes(),
            st.keep.as_bytes(),
            room.as_bytes(),
            p.from.as_bytes(),
            p.text.as_bytes(),
            ts.as_bytes(),
            ttl.as_bytes(),
        ],
    );
}

/// Appends a RESP2 command (an array of bulk strings) to `out`.
fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let parts: Vec<BorrowedFrame<'_>> = args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
    let frame = BorrowedFrame::Array(&parts);
    let at = out.len();
    out.resize(at + frame.encode_len(false), 0);
    let n =
        encode_borrowed(&mut out[at..], &frame, false).expect("the buffer was sized for the frame");
    out.truncate(at + n);
}

/// The subscription connection: subscribe, then messages and pings until
/// it fails.
fn run_subscription(sh: &Shared, st: &Settings, conn: &mut Conn, backoff: &mut Backoff) -> Failure {
    let fail = |why: String| (why, Vec::new());
    let mut out = Vec::new();
    encode_command(&mut out, &[b"SUBSCRIBE", st.channel.as_bytes()]);
    if let Err(why) = conn.send(&out) {
        return fail(why);
    }
    match conn.next_frame(Instant::now() + REPLY_TIMEOUT) {
        // why: exactly `["subscribe", channel, 1]`; a TCP self-connect
        // (a loopback port with no listener) echoes our own command back.
        Ok(OwnedFrame::Array(parts))
            if parts.len() == 3
                && matches!(parts.first(), Some(OwnedFrame::BulkString(b)) if b == b"subscribe")
                && matches!(parts.get(2), Some(OwnedFrame::Integer(1))) => {}
        Ok(OwnedFrame::Error(e)) => return fail(format!("SUBSCRIBE refused: {e}")),
        Ok(_) => return fail("unexpected SUBSCRIBE reply".into()),
        Err(why) => return fail(why),
    }
    sh.ready(Role::Subscription);
    backoff.up();
    let mut ping = Vec::new();
    encode_command(&mut ping, &[b"PING"]);
    let mut last_read = Instant::now();
    // Since when a ping is unanswered, and how many are.
    let mut awaiting_pong: Option<Instant> = None;
    let mut outstanding = 0u32;
    // Asked to prove alive: ready again once every ping sent is answered.
    let mut verifying = false;
    // An event of an unknown kind was logged (once a connection).
    let mut told_unknown = false;
    loop {
        if sh.stopping() {
            return fail("stopping".into());
        }
        if sh.take_verify(Role::Subscription) {
            if let Err(why) = conn.send(&ping) {
                return fail(why);
            }
            verifying = true;
            outstanding += 1;
            awaiting_pong.get_or_insert_with(Instant::now);
        }
        let mut events = Vec::new();
        loop {
            match conn.try_frame() {
                Ok(Some(frame)) => match frame {
                    OwnedFrame::Array(parts) if is_bulk(parts.first(), b"message") => {
                        match parts.get(2) {
                            Some(OwnedFrame::BulkString(payload)) => {
                                events.extend(payload_event(st, payload, &mut told_unknown));
                            }
                            _ => warn!("redis {}: skipped a malformed message frame", st.addr),
                        }
                    }
                    OwnedFrame::Array(parts) if is_bulk(parts.first(), b"pong") => {
                        outstanding = outstanding.saturating_sub(1);
                        if outstanding == 0 {
                            awaiting_pong = None;
                            if std::mem::take(&mut verifying) {
                                sh.ready(Role::Subscription);
                            }
                        }
                    }
                    OwnedFrame::Error(e) => {
                        sh.push_events(events);
                        return fail(format!("subscription error: {e}"));
                    }
                    _ => {} // (un)subscribe confirmations and the like
                },
                Ok(None) => break,
                Err(why) => {
                    sh.push_events(events);
                    return fail(why);
                }
            }
        }
        if !sh.push_events(events) {
            return fail(format!(
                "over {} MiB of messages waiting for the event loop",
                MAX_EVENT_BYTES >> 20
            ));
        }
        let now = Instant::now();
        match awaiting_pong {
            Some(since) if now.duration_since(since) >= REPLY_TIMEOUT => {
                return fail(format!("no reply within {} s", REPLY_TIMEOUT.as_secs()));
            }
            None if now.duration_since(last_read) >= PING_EVERY => {
                if let Err(why) = conn.send(&ping) {
                    return fail(why);
                }
                outstanding += 1;
                awaiting_pong = Some(now);
            }
            _ => {}
        }
        match conn.fill(SUB_READ_SLICE) {
            Ok(true) => last_read = Instant::now(),
            Ok(false) => {}
            Err(why) => return fail(why),
        }
    }
}

/// The event a payload on the channel makes, if any.
fn payload_event(st: &Settings, payload: &[u8], told_unknown: &mut bool) -> Option<LinkEvent> {
    match parse_payload(payload) {
        Some(Payload::Message(d)) => Some(LinkEvent::Message(d)),
        Some(Payload::Ended { digests, why }) => Some(LinkEvent::SessionsEnded { digests, why }),
        Some(Payload::Unknown(kind)) => {
            if !std::mem::replace(told_unknown, true) {
                let kind: String = kind.chars().take(32).collect();
                info!(
                    "redis {}: skipping events of kind {kind:?} on {} (a newer node's?)",
                    st.addr, st.channel
                );
            }
            None
        }
        None => {
            warn!(
                "redis {}: skipped a message on {} that does not parse ({} bytes)",
                st.addr,
                st.channel,
                payload.len()
            );
            None
        }
    }
}

/// Whether `frame` is the bulk string `what` (any case).
fn is_bulk(frame: Option<&OwnedFrame>, what: &[u8]) -> bool {
    matches!(frame, Some(OwnedFrame::BulkString(b) | OwnedFrame::SimpleString(b)) if b.eq_ignore_ascii_case(what))
}

/// One blocking connection to Redis, with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    start: usize,
}

impl Conn {
    /// TCP connect (each address in turn, [`CONNECT_TIMEOUT`] each), then
    /// `AUTH` and `SELECT` as the URL says.
    /// [`Conn::open`], then [`Conn::handshake`].
    #[cfg(test)]
    fn connect(url: &RedisUrl) -> Result<Conn, String> {
        let mut conn = Conn::open(url)?;
        conn.handshake(url)?;
        Ok(conn)
    }

    /// A TCP connection to `url`'s host (its addresses in turn).
    fn open(url: &RedisUrl) -> Result<Conn, String> {
        let addrs = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
        let mut last = format!("{} has no address", url.host);
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("connect to {addr}: {e}"),
            }
        }
        let stream = stream.ok_or(last)?;
        let io = |e: io::Error| format!("socket: {e}");
        stream.set_nodelay(true).map_err(io)?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).map_err(io)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            start: 0,
        })
    }

    /// `AUTH` when the URL has a password, `SELECT` when its db is not 0.
    fn handshake(&mut self, url: &RedisUrl) -> Result<(), String> {
        if let Some(password) = &url.password {
            let reply = match &url.user {
                Some(user) => self.call(&[b"AUTH", user.as_bytes(), password.as_bytes()])?,
                None => self.call(&[b"AUTH", password.as_bytes()])?,
            };
            match reply {
                OwnedFrame::SimpleString(_) => {}
                OwnedFrame::Error(e) => return Err(format!("AUTH refused: {e}")),
                _ => return Err("unexpected AUTH reply".into()),
            }
        }
        if url.db != 0 {
            let db = url.db.to_string();
            match self.call(&[b"SELECT", db.as_bytes()])? {
                OwnedFrame::SimpleString(_) => {}
                OwnedFrame::Error(e) => return Err(format!("SELECT refused: {e}")),
                _ => return Err("unexpected SELECT reply".into()),
            }
        }
        Ok(())
    }

    /// Sends one command and reads its reply.
    fn call(&mut self, args: &[&[u8]]) -> Result<OwnedFrame, String> {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.send(&out)?;
        self.next_frame(Instant::now() + REPLY_TIMEOUT)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("could not write within {} s", REPLY_TIMEOUT.as_secs())
            }
            _ => format!("write: {e}"),
        })
    }

    /// The next reply, read by `deadline`.
    fn next_frame(&mut self, deadline: Instant) -> Result<OwnedFrame, String> {
        loop {
            if let Some(frame) = self.try_frame()? {
                return Ok(frame);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("no reply within {} s", REPLY_TIMEOUT.as_secs()));
            }
            self.fill(deadline - now)?;
        }
    }

    /// A whole frame from what was read, if there is one.
    fn try_frame(&mut self) -> Result<Option<OwnedFrame>, String> {
        match decode(&self.buf[self.start..]) {
            Ok(Some((frame, n))) => {
                self.start += n;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            Ok(None) => {
                if self.start > 0 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(None)
            }
            Err(e) => Err(format!("bad reply from Redis: {e}")),
        }
    }

    /// Reads once, waiting at most `timeout`: whether anything came.
    fn fill(&mut self, timeout: Duration) -> Result<bool, String> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| format!("socket: {e}"))?;
        let at = self.buf.len();
        self.buf.resize(at + 64 * 1024, 0);
        let read = self.stream.read(&mut self.buf[at..]);
        match read {
            Ok(0) => {
                self.buf.truncate(at);
                Err("connection closed by Redis".into())
            }
            Ok(n) => {
                self.buf.truncate(at + n);
                Ok(true)
            }
            Err(e) => {
                self.buf.truncate(at);
                match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(format!("read: {e}")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real `redis-server` per test, on a free loopback port.

    use super::*;
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A `redis-server` of the test's own, killed by PID on drop.
    struct Redis {
        child: Option<Child>,
        port: u16,
        extra: Vec<String>,
    }

    impl Redis {
        /// Starts one on a free port; `None` (the test is skipped) when
        /// `redis-server` is missing, unless `CI` is set.
        fn start(extra: &[&str]) -> Option<Redis> {
            if Command::new("redis-server")
                .arg("--version")
                .output()
                .is_err()
            {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "redis-server is missing (CI must have it)"
                );
                eprintln!("skipped: redis-server is missing");
                return None;
            }
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut redis = Redis {
                child: None,
                port,
                extra: extra.iter().map(ToString::to_string).collect(),
            };
            redis.spawn();
            Some(redis)
        }

        fn spawn(&mut self) {
            let child = Command::new("redis-server")
                .args(["--port", &self.port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--dir", std::env::temp_dir().to_str().unwrap()])
                .args(&self.extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            self.child = Some(child);
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not start");
                thread::sleep(Duration::from_millis(10));
            }
        }

        fn pid(&self) -> u32 {
            self.child.as_ref().unwrap().id()
        }

        fn kill(&mut self) {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }

        fn signal(&self, sig: &str) {
            let ok = Command::new("kill")
                .args([sig, &self.pid().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill {sig}");
        }

        fn url(&self) -> RedisUrl {
            RedisUrl {
                host: "127.0.0.1".into(),
                port: self.port,
                db: 0,
                user: None,
                password: None,
            }
        }

        /// A plain client, for what the tests do behind the links' backs.
        fn client(&self, url: &RedisUrl) -> Conn {
            Conn::connect(url).unwrap()
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            self.kill();
        }
    }

    /// A link and every event it gave so far.
    struct Node {
        link: Link,
        seen: Vec<LinkEvent>,
        notified: Arc<AtomicUsize>,
    }

    impl Node {
        fn start(url: RedisUrl, prefix: &str, keep: usize) -> Node {
            let notified = Arc::new(AtomicUsize::new(0));
            let n = Arc::clone(&notified);
            let link = Link::start(
                url,
                prefix,
                keep,
                Box::new(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                }),
            );
            Node {
                link,
                seen: Vec::new(),
                notified,
            }
        }

        fn up(url: RedisUrl, prefix: &str) -> Node {
            let mut node = Node::start(url, prefix, 1000);
            node.wait(5, "Up", |e| e.contains(&LinkEvent::Up));
            node
        }

        fn collect(&mut self) {
            self.seen.extend(self.link.take_events());
        }

        /// Waits (at most `secs`) until `done` holds of every event seen.
        fn wait(&mut self, secs: u64, what: &str, done: impl Fn(&[LinkEvent]) -> bool) {
            let deadline = Instant::now() + Duration::from_secs(secs);
            loop {
                self.collect();
                if done(&self.seen) {
                    return;
                }
                if Instant::now() > deadline {
                    let tail = &self.seen[self.seen.len().saturating_sub(10)..];
                    panic!(
                        "timed out waiting for {what}; {} events, the last: {tail:?}",
                        self.seen.len()
                    );
                }
                thread::sleep(Duration::from_millis(5));
            }
        }

        fn publish(&self, id: u64, room: &str, text: &str) {
            self.link.publish(Publish {
                id,
                room: room.into(),
                from: "alice".into(),
                text: text.into(),
                ts: 1_700_000_000_000 + id,
            });
        }

        fn messages(&self) -> Vec<&Delivered> {
            self.seen
                .iter()
                .filter_map(|e| match e {
                    LinkEvent::Message(d) => Some(d),
                    _ => None,
                })
                .collect()
        }

        fn stored(&self, id: u64) -> Option<u64> {
            self.seen.iter().find_map(|e| match e {
                LinkEvent::Stored { id: i, seq } if *i == id => Some(*seq),
                _ => None,
            })
        }

        fn count(&self, f: impl Fn(&LinkEvent) -> bool) -> usize {
            self.seen.iter().filter(|e| f(e)).count()
        }
    }

    fn is_down(e: &LinkEvent) -> bool {
        matches!(e, LinkEvent::Down { .. })
    }

    fn n_stored(e: &[LinkEvent]) -> usize {
        e.iter()
            .filter(|e| matches!(e, LinkEvent::Stored { .. }))
            .count()
    }

    fn n_messages(e: &[LinkEvent]) -> usize {
        e.iter()
            .filter(|e| matches!(e, LinkEvent::Message(_)))
            .count()
    }

    fn bulk(frame: &OwnedFrame) -> &[u8] {
        match frame {
            OwnedFrame::BulkString(b) => b,
            other => panic!("not a bulk string: {other:?}"),
        }
    }

    #[test]
    fn two_nodes_see_one_order() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "t");
        let mut b = Node::up(redis.url(), "t");
        for i in 0..50u64 {
            let room = if i % 3 == 0 { "r1" } else { "r2" };
            a.publish(1000 + i, room, &format!("a{i}"));
            b.publish(2000 + i, room, &format!("b{i}"));
        }
        a.wait(10, "50 stored, 100 messages", |e| {
            n_stored(e) == 50 && n_messages(e) == 100
        });
        b.wait(10, "50 stored, 100 messages", |e| {
            n_stored(e) == 50 && n_messages(e) == 100
        });
        assert_eq!(a.messages(), b.messages(), "one order on both nodes");
        for room in ["r1", "r2"] {
            let ms: Vec<_> = a
                .messages()
                .into_iter()
                .filter(|m| m.room == room)
                .collect();
            let seqs: Vec<u64> = ms.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=ms.len() as u64).collect::<Vec<_>>(), "{room}");
            assert!(ms.iter().all(|m| m.epoch == ms[0].epoch && m.epoch != 0));
        }
        // Each Stored names the seq its message came with.
        for (node, base) in [(&a, 1000), (&b, 2000)] {
            for i in 0..50u64 {
                let text = format!("{}{i}", if base == 1000 { "a" } else { "b" });
                let m = node
                    .messages()
                    .into_iter()
                    .find(|m| m.text == text)
                    .unwrap();
                assert_eq!(node.stored(base + i), Some(m.seq));
                assert_eq!(m.ts, 1_700_000_000_000 + base + i);
                assert_eq!(m.from, "alice");
            }
        }
        for node in [&a, &b] {
            assert_eq!(node.count(is_down), 0);
            assert_eq!(node.count(|e| matches!(e, LinkEvent::Failed { .. })), 0);
            assert!(node.notified.load(Ordering::Relaxed) > 0);
        }
        // The stream: ids SEQ-0, so `(N` reads after seq N.
        let mut c = redis.client(&redis.url());
        let after = c
            .call(&[b"XRANGE", b"t:log:r2", b"(5", b"+", b"COUNT", b"1"])
            .unwrap();
        let OwnedFrame::Array(entries) = after else {
            panic!("{after:?}")
        };
        let OwnedFrame::Array(entry) = &entries[0] else {
            panic!()
        };
        assert_eq!(bulk(&entry[0]), b"6-0");
        let OwnedFrame::Array(fields) = &entry[1] else {
            panic!()
        };
        assert_eq!(bulk(&fields[0]), b"m");
        let Some(Payload::Message(d)) = parse_payload(bulk(&fields[1])) else {
            panic!("not a message")
        };
        let sixth = a
            .messages()
            .into_iter()
            .filter(|m| m.room == "r2")
            .nth(5)
            .unwrap();
        assert_eq!(&d, sixth);
    }

    #[test]
    fn history_keeps_at_least_keep() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::start(redis.url(), "k", 10);
        a.wait(5, "Up", |e| e.contains(&LinkEvent::Up));
        for i in 0..500 {
            a.publish(i, "room", "x");
        }
        a.wait(10, "500 stored", |e| n_stored(e) == 500);
        let mut c = redis.client(&redis.url());
        let len = c.call(&[b"XLEN", b"k:log:room"]).unwrap();
        let OwnedFrame::Integer(len) = len else {
            panic!("{len:?}")
        };
        assert!((10..500).contains(&len), "XLEN {len}");
        let last = c
            .call(&[b"XREVRANGE", b"k:log:room", b"+", b"-", b"COUNT", b"10"])
            .unwrap();
        let OwnedFrame::Array(last) = last else {
            panic!()
        };
        assert_eq!(last.len(), 10);
    }

    #[test]
    fn text_round_trips() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "u");
        let big_mixed: String = "x😀\"\\/é\u{1}".repeat(64 * 1024 / 12);
        let texts = vec![
            String::new(),
            "héllo wörld".to_string(),
            "quotes \" ' ` and \\\" escaped".to_string(),
            "back\\slash \\u0041 \\n \\\\".to_string(),
            "slash / </script> //".to_string(),
            "emoji 😀🎉👨‍👩‍👧 🏳️‍🌈".to_string(),
            "\u{0} nul \u{1f} ctrl \u{7f} del \t\r\n".to_string(),
            "\u{2028}\u{2029}\u{feff}\u{fffd}".to_string(),
            "中文 العربية עברית".to_string(),
            "{\"json\": [1, 2.5e300, null]}".to_string(),
            "y".repeat(64 * 1024),
            big_mixed,
        ];
        for (i, t) in texts.iter().enumerate() {
            a.link.publish(Publish {
                id: i as u64,
                room: "café ☕".into(),
                from: "zoë \"the\" /admin\\".into(),
                text: t.clone(),
                ts: u64::MAX - i as u64,
            });
        }
        let n = texts.len();
        a.wait(10, "all messages", |e| {
            n_messages(e) == n && n_stored(e) == n
        });
        // Something else on the channel is skipped.
        let mut c = redis.client(&redis.url());
        for junk in [&b"not json"[..], br#"{"r":"x"}"#, b"\xff\xfe"] {
            // why the db: the channel is `PREFIX:DB:msgs`.
            let listeners = c.call(&[b"PUBLISH", b"u:0:msgs", junk]).unwrap();
            assert_eq!(listeners, OwnedFrame::Integer(1), "the link hears it");
        }
        a.publish(99, "after", "junk");
        a.wait(5, "the next message", |e| n_messages(e) == n + 1);
        assert_eq!(a.messages()[n].text, "junk");
        assert_eq!(a.count(is_down), 0);
        a.seen
            .retain(|e| !matches!(e, LinkEvent::Message(m) if m.room == "after"));
        let got: Vec<&str> = a.messages().iter().map(|m| m.text.as_str()).collect();
        let want: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert!(got == want, "texts differ");
        for (i, m) in a.messages().iter().enumerate() {
            assert_eq!(m.room, "café ☕");
            assert_eq!(m.from, "zoë \"the\" /admin\\");
            assert_eq!(m.ts, u64::MAX - i as u64);
            assert_eq!(m.seq, i as u64 + 1);
        }
    }

    #[test]
    fn end_events_come_from_the_channel() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "y");
        let mut c = redis.client(&redis.url());
        let end = format!(r#"{{"k":"end","w":"evicted","d":["{}"]}}"#, "c3".repeat(32));
        for payload in [
            r#"{"k":"later","x":"what a newer node says"}"#,
            r#"{"k":"end","w":"logout","d":["not hex"]}"#,
            r#"{"k":"later"}"#,
            &end,
        ] {
            let listeners = c.call(&[b"PUBLISH", b"y:0:msgs", payload.as_bytes()]);
            assert_eq!(listeners.unwrap(), OwnedFrame::Integer(1));
        }
        a.publish(1, "r", "after");
        a.wait(5, "the message", |e| n_messages(e) == 1 && n_stored(e) == 1);
        // In the channel's order; the others skipped.
        let heard: Vec<&LinkEvent> = (a.seen.iter())
            .filter(|e| matches!(e, LinkEvent::Message(_) | LinkEvent::SessionsEnded { .. }))
            .collect();
        let ended = LinkEvent::SessionsEnded {
            digests: vec![[0xc3; 32]],
            why: Ended::Evicted,
        };
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert_eq!(heard[0], &ended);
        assert!(matches!(heard[1], LinkEvent::Message(m) if m.text == "after"));
        assert_eq!(a.count(is_down), 0);
    }

    #[test]
    fn script_flush_is_recovered() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "n");
        a.publish(1, "r", "one");
        a.wait(5, "stored", |e| n_stored(e) == 1);
        let mut c = redis.client(&redis.url());
        assert!(matches!(
            c.call(&[b"SCRIPT", b"FLUSH"]).unwrap(),
            OwnedFrame::SimpleString(_)
        ));
        for i in 2..=4 {
            a.publish(i, "r", "again");
        }
        a.wait(5, "stored", |e| n_stored(e) == 4);
        assert_eq!(
            (2..=4).map(|i| a.stored(i)).collect::<Vec<_>>(),
            [Some(2), Some(3), Some(4)]
        );
        // Retried on the same connection.
        assert_eq!(a.count(is_down), 0);
        assert_eq!(a.count(|e| *e == LinkEvent::Up), 1);
    }

    #[test]
    fn lost_epoch_starts_a_new_one_at_one() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "e");
        for i in 1..=3 {
            a.publish(i, "r", "before");
        }
        a.wait(5, "3 messages", |e| n_messages(e) == 3 && n_stored(e) == 3);
        let old = a.messages()[0].epoch;
        let mut c = redis.client(&redis.url());
        c.call(&[b"DEL", b"e:epoch:r"]).unwrap();
        a.publish(4, "r", "after epoch lost");
        a.wait(5, "4 messages", |e| n_messages(e) == 4 && n_stored(e) == 4);
        let m = a.messages()[3].clone();
        assert_eq!((m.seq, a.stored(4)), (1, Some(1)));
        assert_ne!(m.epoch, old);
        // And if the seq is lost instead.
        c.call(&[b"DEL", b"e:seq:r"]).unwrap();
        a.publish(5, "r", "after seq lost");
        a.publish(6, "r", "next");
        a.wait(5, "6 messages", |e| n_messages(e) == 6 && n_stored(e) == 6);
        let (m5, m6) = (a.messages()[4].clone(), a.messages()[5].clone());
        assert_eq!((m5.seq, m6.seq), (1, 2));
        assert_ne!(m5.epoch, m.epoch);
        assert_eq!(m5.epoch, m6.epoch);
        // The stream holds the new epoch only.
        let len = c.call(&[b"XLEN", b"e:log:r"]).unwrap();
        assert_eq!(len, OwnedFrame::Integer(2));
        assert_eq!(a.count(|e| matches!(e, LinkEvent::Failed { .. })), 0);
    }

    #[test]
    fn restart_goes_down_and_up_with_a_new_epoch() {
        let Some(mut redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "w");
        a.publish(1, "r", "before");
        a.publish(2, "r", "before");
        a.wait(5, "2 messages", |e| n_messages(e) == 2 && n_stored(e) == 2);
        let old = a.messages()[0].epoch;
        redis.kill();
        a.wait(5, "Down", |e| e.iter().any(is_down));
        a.publish(3, "r", "while down");
        let now = a.link.take_events();
        assert!(
            now.contains(&LinkEvent::Failed {
                id: 3,
                unconfirmed: false
            }),
            "refused at once: {now:?}"
        );
        a.seen.extend(now);
        redis.spawn();
        a.wait(15, "Up again", |e| {
            e.iter()
                .skip_while(|e| !is_down(e))
                .any(|e| *e == LinkEvent::Up)
        });
        a.publish(4, "r", "after");
        a.wait(5, "3 messages", |e| {
            n_messages(e) == 3
                && e.iter()
                    .any(|e| matches!(e, LinkEvent::Stored { id: 4, .. }))
        });
        let m = a.messages()[2].clone();
        assert_eq!((m.seq, a.stored(4)), (1, Some(1)));
        assert_ne!(m.epoch, old);
        assert_eq!(a.count(is_down), 1, "Down once: {:?}", a.seen);
    }

    #[test]
    fn a_stall_is_not_a_failure() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "s");
        a.publish(1, "r", "before");
        a.wait(5, "stored", |e| n_stored(e) == 1);
        redis.signal("-STOP");
        for i in 2..=4 {
            a.publish(i, "r", "during the stall");
        }
        // The stall itself (not an assertion).
        thread::sleep(Duration::from_secs(5));
        redis.signal("-CONT");
        a.wait(5, "all stored and delivered", |e| {
            n_stored(e) == 4 && n_messages(e) == 4
        });
        assert_eq!(
            (1..=4).map(|i| a.stored(i)).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), Some(4)]
        );
        assert_eq!(a.count(is_down), 0, "{:?}", a.seen);
        assert_eq!(a.count(|e| matches!(e, LinkEvent::Failed { .. })), 0);
    }

    #[test]
    fn auth_with_a_password() {
        let pw = "s3cret-pw/with:odd@chars";
        let Some(redis) = Redis::start(&["--requirepass", pw]) else {
            return;
        };
        let mut url = redis.url();
        url.password = Some(pw.into());
        url.db = 3;
        let mut a = Node::up(url.clone(), "p");
        a.publish(1, "r", "hi");
        a.wait(5, "delivered", |e| n_messages(e) == 1 && n_stored(e) == 1);
        // `AUTH user password` (the default user).
        url.user = Some("default".into());
        let _b = Node::up(url.clone(), "p");
        // The message went to db 3.
        let mut c = redis.client(&url);
        let mut c3 = c.call(&[b"EXISTS", b"p:seq:r"]).unwrap();
        assert_eq!(c3, OwnedFrame::Integer(1));
        c.call(&[b"SELECT", b"0"]).unwrap();
        c3 = c.call(&[b"EXISTS", b"p:seq:r"]).unwrap();
        assert_eq!(c3, OwnedFrame::Integer(0));

        let wrong = "wrong-pw-do-not-log";
        let mut bad_url = redis.url();
        bad_url.password = Some(wrong.into());
        let mut bad = Node::start(bad_url, "p", 10);
        bad.wait(5, "Down", |e| e.iter().any(is_down));
        for e in &bad.seen {
            match e {
                LinkEvent::Down { why } => {
                    assert!(!why.contains(wrong), "{why}");
                    assert!(why.contains("AUTH"), "{why}");
                }
                other => panic!("{other:?}"),
            }
        }
        bad.publish(1, "r", "refused");
        assert_eq!(
            bad.link.take_events(),
            [LinkEvent::Failed {
                id: 1,
                unconfirmed: false
            }]
        );
        // No password at all: refused too.
        let mut none = Node::start(redis.url(), "p", 10);
        none.wait(5, "Down", |e| e.iter().any(is_down));
        let dbg = format!("{url:?}");
        assert!(!dbg.contains(pw), "{dbg}");
    }

    #[test]
    fn in_flight_is_capped_and_drop_is_prompt() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "c");
        redis.signal("-STOP");
        let over = 5;
        let total = (MAX_IN_FLIGHT + over) as u64;
        for i in 0..total {
            a.publish(i, "r", "m");
        }
        let now = a.link.take_events();
        let refused: Vec<u64> = now
            .iter()
            .filter_map(|e| match e {
                LinkEvent::Failed {
                    id,
                    unconfirmed: false,
                } => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(refused, (MAX_IN_FLIGHT as u64..total).collect::<Vec<_>>());
        a.seen.extend(now);
        redis.signal("-CONT");
        a.wait(15, "all stored", |e| n_stored(e) == MAX_IN_FLIGHT);
        let seqs: Vec<u64> = (0..MAX_IN_FLIGHT as u64)
            .map(|i| a.stored(i).unwrap())
            .collect();
        assert_eq!(seqs, (1..=MAX_IN_FLIGHT as u64).collect::<Vec<_>>());
        a.wait(15, "all delivered", |e| n_messages(e) == MAX_IN_FLIGHT);
        // Room again.
        a.publish(total, "r", "m");
        a.wait(5, "stored", |e| n_stored(e) == MAX_IN_FLIGHT + 1);

        // Drop while the commands thread waits for a stalled Redis.
        redis.signal("-STOP");
        a.publish(total + 1, "r", "m");
        thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        drop(a);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        redis.signal("-CONT");
    }

    #[test]
    fn drop_is_prompt_while_redis_stalls_its_auth_reply() {
        // Found by review: the sockets were registered for Drop only after
        // AUTH and SELECT, so a link dropped while a stalled Redis held
        // those replies waited for them (10 s each).
        let pw = "stalled-auth-pw";
        let Some(redis) = Redis::start(&["--requirepass", pw]) else {
            return;
        };
        let mut url = redis.url();
        url.password = Some(pw.into());
        url.db = 2;
        redis.signal("-STOP");
        // The kernel still accepts the connection; AUTH gets no answer.
        let a = Node::start(url, "s", 10);
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        drop(a);
        let took = t.elapsed();
        redis.signal("-CONT");
        assert!(took < Duration::from_secs(2), "drop took {took:?}");
    }

    #[test]
    fn no_reply_within_ten_seconds_is_down() {
        // A "Redis" that accepts and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = RedisUrl {
            host: "127.0.0.1".into(),
            port: silent.local_addr().unwrap().port(),
            db: 0,
            user: None,
            password: Some("pw-never-shown".into()),
        };
        let t = Instant::now();
        let mut a = Node::start(url, "z", 10);
        a.wait(15, "Down", |e| e.iter().any(is_down));
        let waited = t.elapsed();
        assert!(waited >= REPLY_TIMEOUT, "{waited:?}");
        assert_eq!(
            a.seen,
            [LinkEvent::Down {
                why: "no reply within 10 s".into()
            }]
        );
        let t = Instant::now();
        drop(a);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn payload_parsing() {
        let ok = br#"{"r":"a\/b","f":"x","x":"\u00e9\"","t":"5","s":"7","e":"0000000a0000000b"}"#;
        let Some(Payload::Message(d)) = parse_payload(ok) else {
            panic!("not a message")
        };
        assert_eq!(d.room, "a/b");
        assert_eq!(d.text, "é\"");
        assert_eq!((d.ts, d.seq, d.epoch), (5, 7, 0x0000_000a_0000_000b));
        assert!(parse_payload(b"{}").is_none());
        // End events.
        let end = format!(r#"{{"w":"logout","k":"end","d":["{}"]}}"#, "a7".repeat(32));
        assert_eq!(
            parse_payload(end.as_bytes()),
            Some(Payload::Ended {
                digests: vec![[0xa7; 32]],
                why: Ended::LoggedOut
            })
        );
        let end = format!(
            r#"{{"k":"end","w":"evicted","d":["{0}","{0}"]}}"#,
            "0f".repeat(32)
        );
        assert_eq!(
            parse_payload(end.as_bytes()),
            Some(Payload::Ended {
                digests: vec![[0x0f; 32]; 2],
                why: Ended::Evicted
            })
        );
        for bad in [
            r#"{"k":"end","w":"logout"}"#,
            r#"{"k":"end","d":[]}"#,
            r#"{"k":"end","w":"logout","d":["abc"]}"#,
            r#"{"k":"end","w":"logout","d":"x"}"#,
        ] {
            assert_eq!(parse_payload(bad.as_bytes()), None, "{bad}");
        }
        // Kinds from the future are skipped, not errors.
        assert_eq!(
            parse_payload(br#"{"k":"new","r":"a"}"#),
            Some(Payload::Unknown("new".into()))
        );
        assert_eq!(
            parse_payload(br#"{"k":"end","w":"banned","d":[]}"#),
            Some(Payload::Unknown("end/banned".into()))
        );
        assert!(parse_payload(br#"{"r":"a","f":"x","x":"","t":"x","s":"7","e":"1"}"#).is_none());
        let mut out = Vec::new();
        encode_command(&mut out, &[b"PING", b""]);
        assert_eq!(out, b"*2\r\n$4\r\nPING\r\n$0\r\n\r\n");
    }
}
