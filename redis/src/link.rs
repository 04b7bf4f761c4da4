//! The Redis link for scale-out (cargo feature `redis`): several wsgate
//! processes form one chat by storing and fanning out every chat message
//! through one Redis, which decides one order for all of them; they share
//! sessions and tickets there, so that a login on one node works on every
//! node; and they count every WebSocket there (presence, and the per-user
//! limit across nodes).
//!
//! # Threads
//!
//! A [`Link`] owns two helper threads with blocking `std::net` sockets (the
//! mio loop never blocks on Redis):
//!
//! - the **commands** thread holds one connection: `SCRIPT LOAD` of every
//!   script ([`PUBLISH_SCRIPT`], the session and ticket scripts and the
//!   presence scripts, see below) after every (re)connect, then a first
//!   heartbeat (under a new life, see "Presence"), then `EVALSHA`s for
//!   each [`Publish`] and each [`Query`], in the order [`Link::publish`]
//!   and [`Link::ask`] took them. It takes every queued one at once (at
//!   most [`MAX_BATCH_BYTES`] of them, at least one), writes them in one
//!   go (pipelining), then reads their replies, in order. Each is one
//!   command, but [`Ask::TouchSessions`] and [`Ask::EndSessions`] take one
//!   per [`MAX_DIGESTS_PER_COMMAND`] digests (none for an empty list: a
//!   script blocks Redis while it runs), [`Ask::Register`] one per
//!   [`MAX_ENTRIES_PER_COMMAND`] entries (at least one), and their replies
//!   make one answer. A `NOSCRIPT` reply (Redis restarted or its script
//!   cache flushed) loads every script again and retries that publish or
//!   query once (whole: touching or ending sessions twice does no harm;
//!   a [`Ask::Register`] with `first` renews the life again). Every
//!   [`HEARTBEAT_MS`] it runs the heartbeat, between two batches (so that
//!   a busy publisher cannot hold it off for more than one batch); idle,
//!   it also sends `PING` every second;
//! - the **subscription** thread holds the other: `SUBSCRIBE
//!   {prefix}:{db}:msgs`, and every message there becomes a
//!   [`LinkEvent::Message`], every end event a
//!   [`LinkEvent::SessionsEnded`], every join or leave a
//!   [`LinkEvent::Presence`]. Idle, it sends `PING` every second too
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
//!
//! Publishes and queries are taken only while up, and [`MAX_IN_FLIGHT`]
//! of them (together) queued or unanswered at most: otherwise a publish is
//! answered `Failed { unconfirmed: false }` at once, a query
//! `Answer { answer: Unavailable }`. On Down, those still queued are
//! answered the same way; those already written and not answered when the
//! commands connection fails are `Failed { unconfirmed: true }` (Redis may
//! have run them: their message may still be delivered) and `Unavailable`
//! (which says the same: it may or may not have run). So every query is
//! answered exactly once. A Down of the subscription alone leaves the
//! commands connection running, so what was written before it may still
//! be answered after the `Down`. What had to be retried after `NOSCRIPT`
//! is answered after the ones behind it. A script error (Redis out of
//! memory, say) answers a publish `Failed { unconfirmed: false }` and a
//! query `Unavailable`; a reply of the wrong shape `Failed { unconfirmed:
//! true }` and `Unavailable`; both are logged (Redis's error text, never
//! a payload).
//!
//! Answers come on the commands connection, the subscription's events on
//! the other, so neither waits for the other: a node's own message
//! ([`LinkEvent::Message`]) may come before or after the answer to its
//! publish ([`LinkEvent::Stored`]), the [`LinkEvent::SessionsEnded`]
//! that an [`Ask::EndSessions`] (or the evictions of an
//! [`Ask::CreateSession`]) announces before or after its
//! [`LinkEvent::Answer`]; a node whose subscription is down then misses
//! it. The subscription's events come in Redis's order: a room's joins and
//! leaves in one order with its messages, on every node. But a join or
//! leave ([`LinkEvent::Presence`]) that this node's own [`Ask::Join`],
//! [`Ask::Leave`] or [`Ask::Register`] announced comes after that query's
//! answer: the subscription holds it back (and its events after it, to
//! keep their order) until the answer is queued, for [`MAX_HOLD`] (2 s)
//! at most; a `Down` lets go of what it holds first. (A batch's answers
//! are queued once all of its replies are read.) So a WebSocket that the
//! answer opens hears its own join. Every event is queued for
//! [`Link::take_events`] and then `notify` is called, so that the shell
//! wakes its poll.
//!
//! # Keys, channel, payloads
//!
//! With `prefix` `p` (every key and the channel carry it; `HEX` is a
//! [`Digest`] as 64 lowercase hex digits):
//!
//! | key / channel    | type    | what                                           |
//! |------------------|---------|------------------------------------------------|
//! | `p:seq:ROOM`     | string  | the room's last sequence number (`INCR`)       |
//! | `p:epoch:ROOM`   | string  | the room's epoch, 16 lowercase hex digits      |
//! | `p:log:ROOM`     | stream  | the room's history: entry id `SEQ-0`, field `m` = payload; `MAXLEN ~ keep`; none with `keep` 0 |
//! | `p:sess:HEX`     | hash    | a session: `u` user, `r` role, `c` created (ms since the epoch, decimal) |
//! | `p:usess:USER`   | sorted set | the user's sessions' `HEX`, scored by created |
//! | `p:tkt:HEX`      | hash    | a ticket: `p` payload, `s` its session's `HEX` or empty |
//! | `p:pres:ROOM`    | hash    | field `LIFE\|USER`: that life's WebSockets of USER in ROOM |
//! | `p:ucnt:ROOM`    | hash    | field `USER`: USER's WebSockets in ROOM, all lives (the room's users, for `/who`) |
//! | `p:uconn:USER`   | hash    | field `LIFE`: that life's WebSockets of USER, all rooms (the per-user limit sums them) |
//! | `p:life:LIFE`    | hash    | field `ROOM`: the life's WebSockets in ROOM, all users (the rooms to clear when it dies) |
//! | `p:lifeusers:LIFE` | set   | the users the life counts (the `p:uconn` fields to clear) |
//! | `p:lives`        | sorted set | every life, scored by its deadline (ms, Redis's `TIME`) |
//! | `p:DB:msgs`      | channel | every payload, all rooms, end events, joins and leaves (channels are not per database: `DB` keeps deployments on one Redis apart) |
//!
//! Every key of a room's messages expires [`KEY_TTL_SECS`] after its last
//! message: a room quiet that long starts a new epoch, and Redis does not
//! keep every room ever named. The presence keys expire
//! [`PRESENCE_TTL_SECS`] (a day) after their last write, and a live node's
//! heartbeat refreshes those of its life every [`PRESENCE_REFRESH`]: a
//! WebSocket open for days stays counted, and if every node vanishes
//! their counts go within a day. A count is never 0: a field that comes
//! to 0 is deleted.
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
//! ended are `{"k": "end", "w": "logout" or "evicted", "d": ["HEX", ...]}`,
//! joins `{"k": "join", "r": ROOM, "u": USER, "o": "TAG:ID"}` and leaves
//! `{"k": "leave", ...}` the same (in any key order): `o` names the link
//! (16 random hex digits, its own for every [`Link`]) and the query whose
//! answer its own subscription waits for; none when a heartbeat or a
//! farewell removed a life. A payload with a `k` this
//! version does not know (a newer node's) is skipped, and logged once a
//! connection. Joins and leaves weigh their room and user toward
//! [`MAX_EVENT_BYTES`], as messages do.
//!
//! The scripts are for one Redis, not Redis Cluster (its keys would not
//! share a slot): keys that a script only learns as it runs (the user's
//! sessions from a session's `u`, a session from a ticket's `s`, evicted
//! sessions, a dead life's rooms and users, [`Ask::Register`]'s entries)
//! are built in Lua from the prefix in `ARGV`; the others are passed in
//! `KEYS`.
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
//!
//! # Sessions and tickets
//!
//! Each [`Ask`] is one script (one per chunk of digests), atomic in Redis.
//! The limits come with every query ([`SessionClock`]: the asking node's
//! `now_ms`, `ttl_ms`, `idle_ms`; 0 is no limit), so that whichever node
//! asks applies them alike. A session may live `left` = the lesser of
//! `idle_ms` and `c + ttl_ms - now_ms` (either alone when the other is 0;
//! no expiry when both are), and its key's `PEXPIRE` is always that: Redis
//! drops it at its idle or absolute limit, whichever is first. A lookup,
//! a touch, issuing a ticket from it or redeeming one finds a session
//! live only if `left > 0`, and then sets its expiry to `left` again
//! (refreshing its idle limit); a session found with `left <= 0` (the
//! asking node's clock is ahead) is deleted and counts as missing.
//!
//! - [`CREATE_SESSION_SCRIPT`]: writes `p:sess:HEX` (nothing if it would
//!   be over at once); in `p:usess:USER` forgets the sessions whose key is
//!   gone, then ends (deletes) the oldest until fewer than `max_per_user`
//!   (at least 1) remain, then adds the new one, so that the new one is
//!   never the one evicted, even among sessions created in the same
//!   millisecond. The set expires with its newest session's absolute limit
//!   (never shortened; no expiry when `ttl_ms` is 0). The evicted, if any,
//!   are published as one end event `"evicted"`. Answer `Done`.
//! - [`LOOKUP_SESSION_SCRIPT`]: `Session(Some(record))` or `Session(None)`.
//! - [`TOUCH_SESSIONS_SCRIPT`]: refreshes each; `Missing` lists those not
//!   live, in the order asked.
//! - [`END_SESSIONS_SCRIPT`]: deletes each and takes it out of its user's
//!   set; those that existed are published as one end event `"logout"`
//!   per command (none if none existed). Answer `Done`.
//! - [`ISSUE_TICKET_SCRIPT`]: with a session, only if it is live (else
//!   `Session(None)`, nothing stored); writes `p:tkt:HEX` expiring in
//!   [`TICKET_TTL_MS`]. Answer `Done`.
//! - [`REDEEM_TICKET_SCRIPT`]: reads and deletes the ticket in one go, so
//!   that it works once across all nodes; `Ticket(None)` if there was
//!   none or its session is no longer live, else `Ticket(Some(payload))`.
//!
//! # Presence
//!
//! Redis counts every WebSocket of every node, each under the **life** of
//! its node that counted it: 16 random lowercase hex digits, which the
//! link chooses anew whenever its commands connection becomes ready
//! (every (re)connect), and whenever it runs an [`Ask::Register`] with
//! `first` (which starts a new life: the new one counts it and everything
//! after it, in the order taken). A life lives while its node's heartbeat
//! keeps its deadline in `p:lives` ahead of Redis's clock.
//!
//! A user's WebSockets in a room, over all lives, are `p:ucnt:ROOM`'s
//! `USER`: when it comes to be (from 0) a join is announced, when it goes
//! back to 0 a leave, on the channel (`PUBLISH`), in the script that
//! counts, so in one order with the room's messages. Each script runs
//! atomically, so every node hears each transition once.
//!
//! - [`JOIN_SCRIPT`] ([`Ask::Join`]): `held` = the sum of
//!   `p:uconn:USER`'s values (every live life's, and dead ones' until they
//!   are removed). At `held >= max_per_user`, without `may_evict`:
//!   `Full`, nothing counted. Otherwise counts one (in all five hashes and
//!   the set) and answers `Joined { evict: held >= max_per_user }`.
//! - [`LEAVE_SCRIPT`] ([`Ask::Leave`]): uncounts one if this life counts
//!   one of the user in the room (`p:pres:ROOM`'s `LIFE|USER`), else does
//!   nothing (it was counted under an older life, or never). `Done`.
//! - [`Ask::Who`] is `HKEYS p:ucnt:ROOM`, sorted by the link: `Users`.
//! - [`REGISTER_SCRIPT`] ([`Ask::Register`]): counts each entry's
//!   WebSockets under the life (the new one, with `first`: added to
//!   `p:lives`). A user already counted in the room (by the old life or
//!   another node) is not announced again. With `first`, the last of its
//!   commands then removes the life it replaces (as a dead one is
//!   removed, below), so that a user's WebSockets never count twice
//!   toward the limit for long; what is past one run's budget is left to
//!   the next heartbeats (its deadline is 0).
//! - [`REPLAY_SCRIPT`] ([`Ask::Replay`]): reads the room's stream after
//!   the client's `since` (`XRANGE p:log:ROOM (SINCE +`), all of it when
//!   the client counts in another epoch, with the room's epoch and seq:
//!   `Stream`.
//!
//! Join and register (not the first part) find out whether their life is
//! alive (in `p:lives`, and not being removed), and count nothing when it
//! is not: the answer is then `Unavailable`.
//!
//! # Heartbeats and dead nodes
//!
//! Every [`HEARTBEAT_MS`] the commands thread runs [`HEARTBEAT_SCRIPT`]:
//! it sets its life's deadline to Redis's `TIME` plus [`NODE_TIMEOUT_MS`]
//! (`ZADD p:lives`), then removes lives whose deadline passed (at most
//! [`REAP_PER_BEAT`], the earliest first, within [`REAP_BUDGET`]): for
//! each room in `p:life:LIFE`, each field of `p:pres:ROOM` that begins
//! with `LIFE|` is taken off the user's `p:ucnt:ROOM` (a leave announced
//! when that comes to 0) and deleted; then the life's field of each
//! `p:uconn:USER` of `p:lifeusers:LIFE`; then its keys and its place in
//! `p:lives`. A life being removed has deadline 0 from the start, so that
//! it cannot come back half removed. A life with more than one run's
//! budget is removed over several runs (any node's): one of 15,000
//! entries in a few rooms goes in one, about 100 ms of Redis's time.
//!
//! So a node that stops (killed, cut off, stalled), and the old life of a
//! node that reconnected or registered anew, are removed, their users
//! announced as left unless another life counts them, within
//! [`NODE_TIMEOUT_MS`] + [`HEARTBEAT_MS`] (12 s) of its last heartbeat:
//! by the first heartbeat of a live node after its deadline (later only
//! for a life past one run's budget).
//!
//! A heartbeat that finds its own life no longer alive (this node stalled
//! past its deadline and was removed, or Redis lost its data) gives up
//! the connection: a [`LinkEvent::Down`], and the [`LinkEvent::Up`] after
//! the reconnect (under a new life) has the core count everything again.
//!
//! Dropping the [`Link`] (a graceful shutdown) removes this link's lives
//! at once with [`FAREWELL_SCRIPT`], on a connection of its own, after
//! its threads stopped, within a second. If Redis cannot be reached by
//! then, the other nodes remove them when their deadline passes (what is
//! past the farewell's budget, at their next heartbeat). A join written
//! before the drop and run by Redis after the farewell finds its life
//! gone and counts nothing.

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
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

use crate::RedisUrl;
use crate::types::{
    Answer, Ask, Delivered, Digest, Ended, HEARTBEAT_MS, LinkEvent, NODE_TIMEOUT_MS, Publish,
    Query, SessionClock, SessionRecord, TICKET_TTL_MS,
};

/// The most publishes and queries (together) queued or written and not
/// yet answered; past it, [`Link::publish`] answers `Failed { unconfirmed:
/// false }` at once, and [`Link::ask`] `Unavailable`.
pub const MAX_IN_FLIGHT: usize = 4096;

/// At most this many bytes of commands are written before their replies
/// are read (one publish or query is always taken, however large).
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

/// Presence keys (`p:pres:ROOM`, `p:ucnt:ROOM`, `p:uconn:USER`,
/// `p:life:LIFE`, `p:lifeusers:LIFE`, `p:lives`) expire this long after
/// their last write (seconds), and a live node refreshes its own every
/// [`PRESENCE_REFRESH`]: they do not outlive every node by more than this.
pub const PRESENCE_TTL_SECS: u64 = 24 * 3600;

/// How often the heartbeat also refreshes the expiry of what this node's
/// life counts (see [`PRESENCE_TTL_SECS`]).
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(3600);

/// The most dead lives one heartbeat removes (the rest wait for the next
/// one).
pub const REAP_PER_BEAT: usize = 16;

/// How much one heartbeat, or a link's drop, may remove of dead lives (a
/// script blocks Redis while it runs): about 100 ms of Redis's time. In
/// its units (about 4 µs each, measured), removing an entry (a `(life,
/// room, user)`, a leave to announce or not) costs 1, starting on one of
/// the life's rooms 4, each page of the room's scan (1,000 entries of all
/// lives) 50, and a user a quarter. So a life of 15,000 entries in a few
/// rooms goes in one run; each in a room of its own, in four. A life left
/// unfinished is removed further by the next run (any node's), from where
/// its scan of a room stopped (`p:reap:LIFE`).
pub const REAP_BUDGET: usize = 25_000;

/// The most [`Ask::Register`] entries in one command: more take one
/// `EVALSHA` per this many, whose replies make one answer.
pub const MAX_ENTRIES_PER_COMMAND: usize = 1000;

/// How long [`Link`]'s drop may spend removing this node's presence.
const FAREWELL_WITHIN: Duration = Duration::from_secs(1);

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

/// The most session digests in one command: [`Ask::TouchSessions`] and
/// [`Ask::EndSessions`] with more take one `EVALSHA` per this many (a
/// script blocks Redis while it runs), and their answers are merged.
pub const MAX_DIGESTS_PER_COMMAND: usize = 1000;

/// The text of a script that begins with [`SESSION_PRELUDE`] (the link prepends it).
macro_rules! session_script {
    ($body:literal) => {
        $body
    };
}

/// Lua that the session and ticket scripts begin with: `ARGV[1..3]` are
/// the [`SessionClock`] (`now_ms`, `ttl_ms`, `idle_ms`; 0 is no limit).
/// `left(created)` is how long a session may live from now (ms; `false`:
/// over, `nil`: no limit), the lesser of its idle limit and what remains
/// of its absolute one; `keep(key, created)` deletes a session that is
/// over, else sets its expiry to `left`, and says whether it lives;
/// `live(key)` is `keep` with the session's own `c`. Expiries are capped
/// at 10^15 ms and written as integers (Lua would write `1e+15`).
/// (The link sends it ahead of each such script, `Script::source`, so the
/// binary holds it once.)
const SESSION_PRELUDE: &str = r#"
local now, ttl, idle = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local function ms(n)
  return string.format('%d', math.min(n, 1e15))
end
local function left(created)
  local n = nil
  if ttl > 0 then
    n = created + ttl - now
    if n <= 0 then return false end
  end
  if idle > 0 and (n == nil or idle < n) then n = idle end
  return n
end
local function keep(key, created)
  if created == nil then return false end
  local n = left(created)
  if n == false then
    redis.call('DEL', key)
    return false
  elseif n == nil then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, ms(n))
  end
  return true
end
local function live(key)
  return keep(key, tonumber(redis.call('HGET', key, 'c')))
end
"#;

/// [`Ask::CreateSession`]. `KEYS`: the session, the user's sessions;
/// `ARGV`: the clock, prefix, channel, digest, user, role, created,
/// `max_per_user`. Returns how many sessions it evicted. See the module
/// doc.
pub const CREATE_SESSION_SCRIPT: &str = session_script!(
    r#"
local sess, mine = KEYS[1], KEYS[2]
local prefix, channel, hex, created = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[9])
local max = math.max(tonumber(ARGV[10]), 1)
if left(created) == false then return 0 end
redis.call('HSET', sess, 'u', ARGV[7], 'r', ARGV[8], 'c', ARGV[9])
keep(sess, created)
redis.call('ZREM', mine, hex)
for _, other in ipairs(redis.call('ZRANGE', mine, 0, -1)) do
  if redis.call('EXISTS', prefix .. ':sess:' .. other) == 0 then
    redis.call('ZREM', mine, other)
  end
end
local evicted = {}
while redis.call('ZCARD', mine) >= max do
  local oldest = redis.call('ZPOPMIN', mine)[1]
  redis.call('DEL', prefix .. ':sess:' .. oldest)
  evicted[#evicted + 1] = oldest
end
redis.call('ZADD', mine, ARGV[9], hex)
if ttl > 0 then
  local until_end = created + ttl - now
  if redis.call('PTTL', mine) < until_end then
    redis.call('PEXPIRE', mine, ms(until_end))
  end
else
  redis.call('PERSIST', mine)
end
if #evicted > 0 then
  redis.call('PUBLISH', channel, cjson.encode({k = 'end', w = 'evicted', d = evicted}))
end
return #evicted
"#
);

/// [`Ask::LookupSession`]. `KEYS`: the session; `ARGV`: the clock.
/// Returns `[user, role, created]`, or nil.
pub const LOOKUP_SESSION_SCRIPT: &str = session_script!(
    r#"
local f = redis.call('HMGET', KEYS[1], 'u', 'r', 'c')
if f[1] and f[2] and keep(KEYS[1], tonumber(f[3])) then return f end
return false
"#
);

/// [`Ask::TouchSessions`]. `KEYS`: the sessions; `ARGV`: the clock.
/// Returns the (1-based) indexes in `KEYS` of those that are gone.
pub const TOUCH_SESSIONS_SCRIPT: &str = session_script!(
    r#"
local missing = {}
for i, key in ipairs(KEYS) do
  if not live(key) then missing[#missing + 1] = i end
end
return missing
"#
);

/// [`Ask::EndSessions`]. `KEYS`: the sessions (each ends with its digest);
/// `ARGV`: prefix, channel. Returns how many existed.
pub const END_SESSIONS_SCRIPT: &str = r#"
local ended = {}
for _, key in ipairs(KEYS) do
  local user = redis.call('HGET', key, 'u')
  if user then
    local hex = string.sub(key, -64)
    redis.call('DEL', key)
    redis.call('ZREM', ARGV[1] .. ':usess:' .. user, hex)
    ended[#ended + 1] = hex
  end
end
if #ended > 0 then
  redis.call('PUBLISH', ARGV[2], cjson.encode({k = 'end', w = 'logout', d = ended}))
end
return #ended
"#;

/// [`Ask::IssueTicket`]. `KEYS`: the ticket, and the session if it has
/// one; `ARGV`: the clock, payload, the session's digest or `""`, the
/// ticket's time to live (ms). Returns 1, or 0 when the session is gone
/// (nothing stored).
pub const ISSUE_TICKET_SCRIPT: &str = session_script!(
    r#"
if KEYS[2] and not live(KEYS[2]) then return 0 end
redis.call('HSET', KEYS[1], 'p', ARGV[4], 's', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
"#
);

/// [`Ask::RedeemTicket`]. `KEYS`: the ticket; `ARGV`: the clock, prefix.
/// Deletes the ticket; returns its payload, or nil when there was none or
/// its session is gone.
pub const REDEEM_TICKET_SCRIPT: &str = session_script!(
    r#"
local t = redis.call('HMGET', KEYS[1], 'p', 's')
if not t[1] then return false end
redis.call('DEL', KEYS[1])
if t[2] and t[2] ~= '' and not live(ARGV[4] .. ':sess:' .. t[2]) then return false end
return t[1]
"#
);

/// The text of a script that begins with [`PRESENCE_PRELUDE`] (the link prepends it).
macro_rules! presence_script {
    ($body:literal) => {
        $body
    };
}

/// Lua that the presence scripts begin with. `KEYS[1]` is `p:lives`;
/// `ARGV[1..6]`: prefix, channel, this node's life, [`NODE_TIMEOUT_MS`],
/// [`PRESENCE_TTL_SECS`], the origin of what it announces (`TAG:ID`, the
/// link's tag and the query's id, or empty: see [`Shared::push_events`]). `beat(l)` sets life `l`'s deadline (Redis's
/// `TIME` plus the timeout); `alive(l)`: whether `l` is in `p:lives` and
/// not being removed (a life being removed has deadline 0, so that it
/// cannot come back half removed);
/// `bump` adds to a hash field, deleting it at 0 or less and refreshing
/// the hash's expiry otherwise; `total` adds to a user's total in a room,
/// announcing a join when it leaves 0 and a leave when it comes back to
/// 0; `count(l, k, room, user, n)` counts `n` more (or fewer) WebSockets
/// of `user` in `room` under life `l` (`k`: the keys, `keys_of`);
/// `remove(l, budget)` removes what life `l` counts, announcing the
/// leaves, room by room, and then `l` itself, until it has used up
/// `budget` ([`REAP_BUDGET`]); it returns the budget left, and whether
/// `l` is gone (if not, the next call goes on where it stopped).
/// (The link sends it ahead of each such script, `Script::source`, so the
/// binary holds it once.)
const PRESENCE_PRELUDE: &str = r#"
local lives = KEYS[1]
local prefix, channel, life = ARGV[1], ARGV[2], ARGV[3]
local timeout, ttl, origin = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local function key(kind, name)
  return prefix .. ':' .. kind .. ':' .. name
end
local function keys_of(l, room, user)
  return {pres = key('pres', room), ucnt = key('ucnt', room), uconn = key('uconn', user),
    life = key('life', l), users = key('lifeusers', l)}
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function beat(l)
  redis.call('ZADD', lives, string.format('%d', now_ms() + timeout), l)
  redis.call('EXPIRE', lives, ttl)
end
local function alive(l)
  local deadline = redis.call('ZSCORE', lives, l)
  return deadline ~= false and tonumber(deadline) > 0
end
local function bump(hash, field, n)
  local v = redis.call('HINCRBY', hash, field, n)
  if v <= 0 then
    redis.call('HDEL', hash, field)
  else
    redis.call('EXPIRE', hash, ttl)
  end
  return v
end
local function announce(kind, room, user)
  local event = {k = kind, r = room, u = user}
  if origin ~= '' then event.o = origin end
  redis.call('PUBLISH', channel, cjson.encode(event))
end
local function total(ucnt, room, user, n)
  local after = bump(ucnt, user, n)
  local before = after - n
  if before <= 0 and after > 0 then
    announce('join', room, user)
  elseif before > 0 and after <= 0 then
    announce('leave', room, user)
  end
end
local function count(l, k, room, user, n)
  bump(k.pres, l .. '|' .. user, n)
  bump(k.life, room, n)
  if bump(k.uconn, l, n) > 0 then
    redis.call('SADD', k.users, user)
    redis.call('EXPIRE', k.users, ttl)
  else
    redis.call('SREM', k.users, user)
  end
  total(k.ucnt, room, user, n)
end
local function remove(l, budget)
  redis.call('ZADD', lives, 0, l)
  local mine = l .. '|'
  local rooms, users = key('life', l), key('lifeusers', l)
  -- Where the scan of each room stopped when the budget ran out: the next
  -- run goes on from there (a room too big for one run is still removed).
  local cursors = key('reap', l)
  for _, room in ipairs(redis.call('HKEYS', rooms)) do
    if budget <= 0 then return budget, false end
    local pres, ucnt = key('pres', room), key('ucnt', room)
    budget = budget - 4
    local cursor = redis.call('HGET', cursors, room) or '0'
    repeat
      local page = redis.call('HSCAN', pres, cursor, 'MATCH', mine .. '*', 'COUNT', 1000)
      cursor = page[1]
      local f = page[2]
      for i = 1, #f - 1, 2 do
        redis.call('HDEL', pres, f[i])
        local n = tonumber(f[i + 1])
        if n and n > 0 then total(ucnt, room, string.sub(f[i], #mine + 1), -n) end
      end
      budget = budget - 50 - #f / 2
    until cursor == '0' or budget <= 0
    if cursor == '0' then
      redis.call('HDEL', rooms, room)
      redis.call('HDEL', cursors, room)
    else
      redis.call('HSET', cursors, room, cursor)
      redis.call('EXPIRE', cursors, ttl)
    end
  end
  local popped
  repeat
    if budget <= 0 then return budget, false end
    popped = redis.call('SPOP', users, 1000)
    for _, user in ipairs(popped) do redis.call('HDEL', key('uconn', user), l) end
    budget = budget - 1 - #popped / 4
  until #popped == 0
  redis.call('DEL', rooms, cursors)
  redis.call('ZREM', lives, l)
  return budget, true
end
"#;

/// [`Ask::Join`]. `KEYS`: `p:lives`, `p:pres:ROOM`, `p:ucnt:ROOM`,
/// `p:uconn:USER`, `p:life:LIFE`, `p:lifeusers:LIFE`; `ARGV`: as every
/// presence script, then room, user, `max_per_user`, `may_evict` (`1` or
/// `0`). Returns 0 (full: nothing counted), 1 (joined), 2 (joined over
/// the limit: evict), or -1 when this node's life is gone (nothing
/// counted). See the module doc.
pub const JOIN_SCRIPT: &str = presence_script!(
    r#"
local k = {pres = KEYS[2], ucnt = KEYS[3], uconn = KEYS[4], life = KEYS[5], users = KEYS[6]}
local room, user, max = ARGV[7], ARGV[8], tonumber(ARGV[9])
if not alive(life) then return -1 end
local held = 0
for _, n in ipairs(redis.call('HVALS', k.uconn)) do held = held + tonumber(n) end
if held >= max and ARGV[10] ~= '1' then return 0 end
count(life, k, room, user, 1)
if held >= max then return 2 end
return 1
"#
);

/// [`Ask::Leave`]. `KEYS` as [`JOIN_SCRIPT`]'s; `ARGV`: as every presence
/// script, then room, user. Returns 1, or 0 when this life counted no such
/// WebSocket (nothing done).
pub const LEAVE_SCRIPT: &str = presence_script!(
    r#"
local k = {pres = KEYS[2], ucnt = KEYS[3], uconn = KEYS[4], life = KEYS[5], users = KEYS[6]}
local room, user = ARGV[7], ARGV[8]
local mine = tonumber(redis.call('HGET', k.pres, life .. '|' .. user))
if mine == nil or mine <= 0 then return 0 end
count(life, k, room, user, -1)
return 1
"#
);

/// [`Ask::Register`]. `KEYS`: `p:lives`; `ARGV`: as every presence
/// script, then `1` for the first command of a new life (which it adds
/// to `p:lives`) or `0`, then the lives this registration replaces,
/// comma-separated, to remove once everything is counted (in the last
/// command; `''` otherwise; what is past the budget is left to the
/// heartbeats: their deadline is 0), the work budget of removing them
/// ([`REAP_BUDGET`]), then `room, user, n` for each entry. Returns 1, or -1 when not first and
/// this node's life is gone (nothing counted).
pub const REGISTER_SCRIPT: &str = presence_script!(
    r#"
if ARGV[7] == '1' then
  beat(life)
elseif not alive(life) then
  return -1
end
for i = 10, #ARGV - 2, 3 do
  local room, user, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if n and n > 0 then count(life, keys_of(life, room, user), room, user, n) end
end
local budget = tonumber(ARGV[9])
for old in string.gmatch(ARGV[8], '[^,]+') do
  if budget <= 0 then break end
  if old ~= life then budget = remove(old, budget) end
end
return 1
"#
);

/// [`Ask::Replay`]. `KEYS`: the room's seq, epoch and log; `ARGV`: the
/// client's `since`, and its epoch (16 hex digits) or `''`. Returns
/// `{epoch, seq, {payload...}}`: the log's entries after `since` when the
/// client counts in the room's epoch, else all of them; `{'', '0', {}}`
/// when Redis has no such room.
pub const REPLAY_SCRIPT: &str = r#"
local epoch, seq = redis.call('GET', KEYS[2]), redis.call('GET', KEYS[1])
if not epoch or not seq then return {'', '0', {}} end
local from = '-'
if ARGV[2] == epoch then from = '(' .. ARGV[1] end
local out = {}
for i, e in ipairs(redis.call('XRANGE', KEYS[3], from, '+')) do out[i] = e[2][2] end
return {epoch, seq, out}
"#;

/// The heartbeat. `KEYS`: `p:lives`; `ARGV`: as every presence script,
/// then `1` for a new life (added to `p:lives`; otherwise it must be
/// there), the most dead lives to remove, the work budget of removing
/// them ([`REAP_BUDGET`]), `1` to refresh the expiry of what this life
/// counts. Sets this life's deadline, removes lives whose deadline passed
/// (the earliest first) within the budget; returns how many it removed
/// whole, or -1 when this life is gone (nothing done).
pub const HEARTBEAT_SCRIPT: &str = presence_script!(
    r#"
if ARGV[7] ~= '1' and not alive(life) then return -1 end
-- why: if this node's own deadline passed too, Redis (or everyone)
-- stalled, and the others' may have passed only for that: reap nothing
-- this time, and let them beat.
local own = tonumber(redis.call('ZSCORE', lives, life) or '0')
local late = own > 0 and own < now_ms()
beat(life)
if late then return 0 end
local now = string.format('%d', now_ms())
local dead = redis.call('ZRANGEBYSCORE', lives, '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[8]))
local budget, removed = tonumber(ARGV[9]), 0
for _, l in ipairs(dead) do
  local gone
  budget, gone = remove(l, budget)
  if gone then removed = removed + 1 end
  if budget <= 0 then break end
end
if ARGV[10] == '1' then
  local rooms, users = key('life', life), key('lifeusers', life)
  for _, room in ipairs(redis.call('HKEYS', rooms)) do
    redis.call('EXPIRE', key('pres', room), ttl)
    redis.call('EXPIRE', key('ucnt', room), ttl)
  end
  for _, user in ipairs(redis.call('SMEMBERS', users)) do
    redis.call('EXPIRE', key('uconn', user), ttl)
  end
  redis.call('EXPIRE', rooms, ttl)
  redis.call('EXPIRE', users, ttl)
end
return removed
"#
);

/// The farewell of a [`Link`] dropped (sent with `EVAL` on a connection of
/// its own). `KEYS`: `p:lives`; `ARGV`: as every presence script, then
/// the work budget ([`REAP_BUDGET`]), then the lives to remove. Returns
/// how many it removed whole (the rest is left to the next heartbeat of
/// any node: their deadline is 0).
pub const FAREWELL_SCRIPT: &str = presence_script!(
    r#"
local budget, removed = tonumber(ARGV[7]), 0
for i = 8, #ARGV do
  local gone
  budget, gone = remove(ARGV[i], budget)
  if gone then removed = removed + 1 end
  if budget <= 0 then break end
end
return removed
"#
);

/// Every script, loaded on every (re)connect of the commands connection.
#[derive(Clone, Copy, Debug)]
enum Script {
    Publish,
    CreateSession,
    LookupSession,
    TouchSessions,
    EndSessions,
    IssueTicket,
    RedeemTicket,
    Join,
    Leave,
    Register,
    Heartbeat,
    Replay,
}

impl Script {
    const ALL: [Script; 12] = [
        Script::Publish,
        Script::CreateSession,
        Script::LookupSession,
        Script::TouchSessions,
        Script::EndSessions,
        Script::IssueTicket,
        Script::RedeemTicket,
        Script::Join,
        Script::Leave,
        Script::Register,
        Script::Heartbeat,
        Script::Replay,
    ];

    /// The script's text: its kind's prelude, then its own.
    fn source(self) -> String {
        let (prelude, body) = match self {
            Script::Publish => ("", PUBLISH_SCRIPT),
            Script::CreateSession => (SESSION_PRELUDE, CREATE_SESSION_SCRIPT),
            Script::LookupSession => (SESSION_PRELUDE, LOOKUP_SESSION_SCRIPT),
            Script::TouchSessions => (SESSION_PRELUDE, TOUCH_SESSIONS_SCRIPT),
            Script::EndSessions => ("", END_SESSIONS_SCRIPT),
            Script::IssueTicket => (SESSION_PRELUDE, ISSUE_TICKET_SCRIPT),
            Script::RedeemTicket => (SESSION_PRELUDE, REDEEM_TICKET_SCRIPT),
            Script::Join => (PRESENCE_PRELUDE, JOIN_SCRIPT),
            Script::Leave => (PRESENCE_PRELUDE, LEAVE_SCRIPT),
            Script::Register => (PRESENCE_PRELUDE, REGISTER_SCRIPT),
            Script::Heartbeat => (PRESENCE_PRELUDE, HEARTBEAT_SCRIPT),
            Script::Replay => ("", REPLAY_SCRIPT),
        };
        format!("{prelude}{body}")
    }
}

/// The scripts' SHA1s as Redis gave them, by [`Script`].
struct Shas([String; Script::ALL.len()]);

impl Shas {
    fn of(&self, script: Script) -> &str {
        &self.0[script as usize]
    }
}

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
    // A join or leave (and `r`).
    u: Option<String>,
    o: Option<String>,
}

/// What a payload on the channel says.
#[derive(Debug, PartialEq, Eq)]
enum Payload {
    Message(Delivered),
    Ended {
        digests: Vec<Digest>,
        why: Ended,
    },
    Presence {
        room: String,
        user: String,
        joined: bool,
        /// The query that announced it, as `TAG:ID` (see
        /// [`Shared::push_events`]).
        origin: Option<String>,
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
        Some(kind @ ("join" | "leave")) => Some(Payload::Presence {
            room: w.r?,
            user: w.u?,
            joined: kind == "join",
            origin: w.o,
        }),
        Some(kind) => Some(Payload::Unknown(kind.to_string())),
    }
}

/// A digest as keys and payloads spell it: 64 lowercase hex digits.
fn hex(digest: &Digest) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The digest `s` spells ([`hex`]); `None` unless 64 lowercase hex digits.
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
    /// Remove this node's presence on drop (tests turn it off to play a
    /// node that died).
    farewell: bool,
}

impl Link {
    /// Starts the link. `keep` is the history length per room (the
    /// stream's `MAXLEN ~ keep`: at least `keep` entries remain), `prefix`
    /// namespaces every key and the channel (e.g. `"wsgate"`). `notify` is
    /// called after events were queued (on the link threads, and on the
    /// caller's for a publish or query refused at once): the shell wakes
    /// its poll.
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
        Link::start_timed(url, prefix, keep, notify, Timing::CONTRACT)
    }

    /// [`Link::start`] with its heartbeat and node timeout (shorter in
    /// tests).
    fn start_timed(
        url: RedisUrl,
        prefix: &str,
        keep: usize,
        notify: Box<dyn Fn() + Send + Sync>,
        timing: Timing,
    ) -> Link {
        let settings = Arc::new(Settings {
            addr: url.to_string(),
            // why the db: Pub/Sub channels are not per database, keys are.
            channel: format!("{prefix}:{}:msgs", url.db),
            url,
            prefix: prefix.to_string(),
            keep: keep.to_string(),
            timing,
            tag: new_life(),
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
        Link {
            shared,
            threads,
            farewell: true,
        }
    }

    /// Queues a publish; never blocks the caller (beyond a short lock).
    /// While the link is not up, or with [`MAX_IN_FLIGHT`] publishes and
    /// queries unanswered, `Failed { unconfirmed: false }` is queued at
    /// once.
    pub fn publish(&self, p: Publish) {
        self.submit(Job::Publish(p));
    }

    /// Queues a question (sessions, tickets, presence, a room's stream),
    /// behind the publishes
    /// and queries before it; never blocks the caller (beyond a short
    /// lock). While the link is not up, or with [`MAX_IN_FLIGHT`]
    /// publishes and queries unanswered, `Answer { answer: Unavailable }`
    /// is queued at once. Every query is answered exactly once.
    pub fn ask(&self, q: Query) {
        self.submit(Job::Query(q));
    }

    /// Queues `job` for the commands thread, or refuses it at once.
    fn submit(&self, job: Job) {
        let refused = {
            let mut inner = self.shared.lock();
            if inner.up == Some(true) && inner.in_flight < MAX_IN_FLIGHT {
                inner.in_flight += 1;
                if let Job::Query(Query {
                    id,
                    ask: Ask::Join { .. } | Ask::Leave { .. } | Ask::Register { .. },
                }) = &job
                {
                    inner.unanswered.insert(*id);
                }
                inner.queue.push_back(job);
                false
            } else {
                inner.events.push(job.id().unanswered(false));
                true
            }
        };
        if refused {
            (self.shared.notify)();
        } else {
            self.shared.cv.notify_all();
        }
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
        let lives = std::mem::take(&mut self.shared.lock().lives);
        if !self.farewell || lives.is_empty() {
            return;
        }
        let st = &self.shared.settings;
        match farewell(st, &lives) {
            Ok(()) => info!("redis {}: removed this node's presence", st.addr),
            Err(why) => warn!(
                "redis {}: could not remove this node's presence (the other nodes will within {} s): {}",
                st.addr,
                (NODE_TIMEOUT_MS + HEARTBEAT_MS) / 1000,
                st.redact(&why)
            ),
        }
    }
}

/// Removes `lives` (this node's, the current one last) and what they
/// count, on a connection of its own, within [`FAREWELL_WITHIN`].
fn farewell(st: &Settings, lives: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + FAREWELL_WITHIN;
    let mut conn = Conn::open(&st.url, FAREWELL_WITHIN)?;
    conn.handshake(&st.url, Some(deadline))?;
    let mut args = presence_args(st, lives.last().map_or("", String::as_str), None);
    args.push(REAP_BUDGET.to_string());
    // The current one first.
    args.extend(lives.iter().rev().cloned());
    let lives_key = st.lives_key();
    let script = format!("{PRESENCE_PRELUDE}{FAREWELL_SCRIPT}");
    let mut command: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"1", lives_key.as_bytes()];
    command.extend(args.iter().map(String::as_bytes));
    match conn.call_by(&command, deadline)? {
        OwnedFrame::Integer(_) => Ok(()),
        OwnedFrame::Error(e) => Err(format!("refused: {e}")),
        _ => Err("unexpected reply".into()),
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
    timing: Timing,
    /// This link's name in the origin of what its queries announce (16
    /// random hex digits).
    tag: String,
}

/// How often the link tells Redis that this node is alive, and how long
/// Redis then waits before it counts the node dead.
#[derive(Clone, Copy, Debug)]
struct Timing {
    heartbeat: Duration,
    timeout_ms: u64,
}

impl Timing {
    /// The contract's: [`HEARTBEAT_MS`], [`NODE_TIMEOUT_MS`].
    const CONTRACT: Timing = Timing {
        heartbeat: Duration::from_millis(HEARTBEAT_MS),
        timeout_ms: NODE_TIMEOUT_MS,
    };
}

impl Settings {
    /// `why` without the password (Redis never echoes it, but be sure).
    fn redact(&self, why: &str) -> String {
        match self.url.password.as_deref() {
            Some(pw) if !pw.is_empty() => why.replace(pw, "[redacted]"),
            _ => why.to_string(),
        }
    }

    /// The key `PREFIX:kind:name`.
    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    /// The key `PREFIX:lives`.
    fn lives_key(&self) -> String {
        format!("{}:lives", self.prefix)
    }
}

/// The `ARGV` every presence script begins with (see
/// `presence_script!`), for `life`; what it announces comes from query
/// `id` (`None`: from no query).
fn presence_args(st: &Settings, life: &str, id: Option<u64>) -> Vec<String> {
    vec![
        st.prefix.clone(),
        st.channel.clone(),
        life.to_string(),
        st.timing.timeout_ms.to_string(),
        PRESENCE_TTL_SECS.to_string(),
        id.map_or(String::new(), |id| format!("{}:{id}", st.tag)),
    ]
}

/// A new life: 16 random lowercase hex digits.
fn new_life() -> String {
    let random = getrandom::u64().unwrap_or_else(|_| RandomState::new().build_hasher().finish());
    format!("{random:016x}")
}

/// How many of a link's lives its drop removes at most (the older ones
/// were removed by the heartbeats long ago).
const LIVES_KEPT: usize = 4;

/// State shared by the [`Link`] and its threads.
struct Shared {
    inner: Mutex<Inner>,
    /// Signals new jobs and `stop`.
    cv: Condvar,
    notify: Box<dyn Fn() + Send + Sync>,
    settings: Arc<Settings>,
}

/// How long the subscription holds back events for an answer at most
/// (see the module doc, "Events"): a batch's answers are queued once all
/// of its replies are read, which takes about as long as Redis takes to
/// run it.
pub const MAX_HOLD: Duration = Duration::from_secs(2);

impl Inner {
    /// Queues the held events up to the first that waits for a query not
    /// answered yet; with `all`, every one.
    fn release(&mut self, all: bool) {
        let mut released = false;
        while let Some((_, awaits)) = self.held.front() {
            if !all && awaits.is_some_and(|id| self.unanswered.contains(&id)) {
                if released {
                    // Another query is waited for now.
                    self.held_since = Some(Instant::now());
                }
                return;
            }
            if let Some((event, _)) = self.held.pop_front() {
                self.events.push(event);
                released = true;
            }
        }
        self.held_since = None;
    }
}

#[derive(Default)]
struct Inner {
    events: Vec<LinkEvent>,
    /// What the queued subscription messages weigh (their texts and
    /// names, plus [`EVENT_OVERHEAD`] each), bounded by
    /// [`MAX_EVENT_BYTES`].
    event_bytes: usize,
    /// Accepted publishes and queries not yet taken by the commands
    /// thread, in order.
    queue: VecDeque<Job>,
    /// Publishes and queries queued, or written and unanswered.
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
    /// This link's last lives, the current one last (at most
    /// [`LIVES_KEPT`]): its drop removes them.
    lives: Vec<String>,
    /// Presence queries (joins, leaves, registers) taken and not yet
    /// answered.
    unanswered: HashSet<u64>,
    /// Subscription events held back (see [`Shared::push_events`]), each
    /// with the query it waits for, in order; and since when the first
    /// waits.
    held: VecDeque<(LinkEvent, Option<u64>)>,
    held_since: Option<Instant>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// The commands thread counts under `life` from now on.
    fn note_life(&self, life: &str) {
        let mut inner = self.lock();
        if inner.lives.last().is_some_and(|l| l == life) {
            return;
        }
        if inner.lives.len() >= LIVES_KEPT {
            inner.lives.remove(0);
        }
        inner.lives.push(life.to_string());
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

    /// `role` failed: the jobs in `unconfirmed` were written and not
    /// answered; Down (once), and every queued job fails.
    fn down(&self, role: Role, why: &str, unconfirmed: &[JobId]) {
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
            (inner.events).extend(unconfirmed.iter().map(|id| id.unanswered(true)));
            inner.in_flight -= unconfirmed.len();
            // Nothing is queued while down; fail what was queued when it
            // went down (after the Down: it was never written).
            let queued: Vec<JobId> = inner.queue.drain(..).map(|job| job.id()).collect();
            for id in unconfirmed.iter().chain(&queued) {
                if let JobId::Query(id) = id {
                    inner.unanswered.remove(id);
                }
            }
            // What the subscription heard before this goes out before the
            // Down, held or not (the queries it waits for are answered now,
            // or are on a connection that is just as suspect).
            inner.release(true);
            let announce = inner.up != Some(false);
            if announce {
                inner.up = Some(false);
                inner.events.push(LinkEvent::Down { why: why.clone() });
            }
            inner.in_flight -= queued.len();
            (inner.events).extend(queued.iter().map(|id| id.unanswered(false)));
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

    /// Answers for jobs the commands thread had taken (one each).
    fn answered(&self, events: Vec<LinkEvent>) {
        if events.is_empty() {
            return;
        }
        {
            let mut inner = self.lock();
            inner.in_flight -= events.len();
            for event in &events {
                if let LinkEvent::Answer { id, .. } = event {
                    inner.unanswered.remove(id);
                }
            }
            inner.events.extend(events);
            inner.release(false);
        }
        (self.notify)();
    }

    /// Events from the subscription, each with the id of this link's
    /// query that announced it, if any. Such an event waits until that
    /// query's answer is queued, and every event after it with it: so a
    /// node hears its own join or leave after the answer to the query that
    /// made it (they come on two connections), however Redis interleaved
    /// them, and the subscription's events keep their order. Held for
    /// [`MAX_HOLD`] at most (`release_held`). False when the event loop
    /// has fallen so far behind that the queue is past
    /// [`MAX_EVENT_BYTES`]: the subscription then lets go (a `Down`; the
    /// nodes' numbering shows the gap), rather than hold more than the
    /// loop can take.
    fn push_events(&self, events: Vec<(LinkEvent, Option<u64>)>) -> bool {
        if events.is_empty() {
            return true;
        }
        let weight: usize = (events.iter())
            .map(|(e, _)| match e {
                LinkEvent::Message(d) => {
                    d.text.len() + d.room.len() + d.from.len() + EVENT_OVERHEAD
                }
                LinkEvent::SessionsEnded { digests, .. } => {
                    digests.len() * size_of::<Digest>() + EVENT_OVERHEAD
                }
                LinkEvent::Presence { room, user, .. } => room.len() + user.len() + EVENT_OVERHEAD,
                _ => EVENT_OVERHEAD,
            })
            .sum();
        let within = {
            let mut inner = self.lock();
            for (event, awaits) in events {
                let wait = awaits.is_some_and(|id| inner.unanswered.contains(&id));
                if wait || !inner.held.is_empty() {
                    inner.held_since.get_or_insert_with(Instant::now);
                    inner.held.push_back((event, awaits));
                } else {
                    inner.events.push(event);
                }
            }
            inner.event_bytes += weight;
            inner.event_bytes <= MAX_EVENT_BYTES
        };
        (self.notify)();
        within
    }

    /// Lets go of the held events whose query was answered, or (with
    /// `after`) of every one held that long.
    fn release_held(&self, after: Option<Duration>) {
        let released = {
            let mut inner = self.lock();
            let stale = (inner.held_since).is_some_and(|t| after.is_some_and(|a| t.elapsed() >= a));
            let before = inner.events.len();
            inner.release(stale);
            inner.events.len() > before
        };
        if released {
            (self.notify)();
        }
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

    /// The commands thread's next work: publishes and queries (at most
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
                while let Some(job) = inner.queue.front() {
                    let size = job.weight();
                    if !batch.is_empty() && bytes + size > MAX_BATCH_BYTES {
                        break;
                    }
                    bytes += size;
                    batch.extend(inner.queue.pop_front());
                }
                return Work::Jobs(batch);
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
    Jobs(Vec<Job>),
}

/// What the commands connection does for the core, in the order given.
#[derive(Clone, Debug)]
enum Job {
    Publish(Publish),
    Query(Query),
}

/// Which job an answer is for.
#[derive(Clone, Copy, Debug)]
enum JobId {
    Publish(u64),
    Query(u64),
}

impl JobId {
    /// The answer of a job Redis did not answer: `written` when it may
    /// have run it.
    fn unanswered(self, written: bool) -> LinkEvent {
        match self {
            JobId::Publish(id) => LinkEvent::Failed {
                id,
                unconfirmed: written,
            },
            JobId::Query(id) => LinkEvent::Answer {
                id,
                answer: Answer::Unavailable,
            },
        }
    }
}

impl Job {
    fn id(&self) -> JobId {
        match self {
            Job::Publish(p) => JobId::Publish(p.id),
            Job::Query(q) => JobId::Query(q.id),
        }
    }

    /// About what its commands weigh, for [`MAX_BATCH_BYTES`].
    fn weight(&self) -> usize {
        const COMMAND: usize = 256;
        // A session key and more.
        const DIGEST: usize = 128;
        COMMAND
            + match self {
                Job::Publish(p) => p.text.len() + p.room.len() + p.from.len(),
                Job::Query(q) => match &q.ask {
                    Ask::CreateSession { record, .. } => 2 * record.user.len() + record.role.len(),
                    Ask::EndSessions { digests } | Ask::TouchSessions { digests, .. } => {
                        digests.len() * DIGEST
                    }
                    Ask::IssueTicket { payload, .. } => payload.len(),
                    Ask::LookupSession { .. } | Ask::RedeemTicket { .. } => 0,
                    // Its keys name each twice or more.
                    Ask::Join { room, user, .. } | Ask::Leave { room, user } => {
                        3 * (room.len() + user.len())
                    }
                    Ask::Who { room } => room.len(),
                    Ask::Register { entries, .. } => (entries.iter())
                        .map(|(room, user, _)| room.len() + user.len() + 16)
                        .sum(),
                    Ask::Replay { room, .. } => 3 * room.len(),
                },
            }
    }
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
        let failure = match Conn::open(&settings.url, REPLY_TIMEOUT) {
            Ok(mut conn) => match sh
                .register(role, &conn.stream)
                .and_then(|()| conn.handshake(&settings.url, None))
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

/// Why a connection ended, and the jobs written on it and never
/// answered.
type Failure = (String, Vec<JobId>);

/// Loads every script (pipelined); their SHA1s.
fn load_scripts(conn: &mut Conn) -> Result<Shas, String> {
    let mut out = Vec::new();
    for script in Script::ALL {
        encode_command(&mut out, &[b"SCRIPT", b"LOAD", script.source().as_bytes()]);
    }
    conn.send(&out)?;
    let mut shas = Script::ALL.map(|_| String::new());
    for sha in &mut shas {
        *sha = match conn.next_frame(Instant::now() + REPLY_TIMEOUT)? {
            OwnedFrame::BulkString(b) => {
                String::from_utf8(b).map_err(|_| "bad SCRIPT LOAD reply")?
            }
            OwnedFrame::Error(e) => return Err(format!("SCRIPT LOAD refused: {e}")),
            _ => return Err("unexpected SCRIPT LOAD reply".into()),
        };
    }
    Ok(Shas(shas))
}

/// The commands connection, ready: publishes, queries, heartbeats and
/// pings until it fails.
fn run_commands(sh: &Shared, st: &Settings, conn: &mut Conn, backoff: &mut Backoff) -> Failure {
    let mut shas = match load_scripts(conn) {
        Ok(shas) => shas,
        Err(why) => return (why, Vec::new()),
    };
    // A new life with every connection: what the last one counted goes
    // with it (the heartbeats remove it), and the core counts everything
    // again on Up.
    let mut life = new_life();
    let mut added = match heartbeat(conn, st, &mut shas, &life, true, false) {
        Ok(added) => added,
        Err(why) => return (why, Vec::new()),
    };
    sh.note_life(&life);
    sh.ready(Role::Commands);
    backoff.up();
    let mut last = Instant::now();
    let mut next_beat = last + st.timing.heartbeat;
    let mut next_refresh = last + PRESENCE_REFRESH;
    loop {
        // why between batches and not only when idle: a busy publisher
        // must not starve it (a batch is bounded by MAX_BATCH_BYTES).
        let now = Instant::now();
        if now >= next_beat {
            let refresh = now >= next_refresh;
            match heartbeat(conn, st, &mut shas, &life, !added, refresh) {
                Ok(ran) => added |= ran,
                Err(why) => return (why, Vec::new()),
            }
            if refresh {
                next_refresh = now + PRESENCE_REFRESH;
            }
            next_beat = now + st.timing.heartbeat;
            last = Instant::now();
        }
        let batch = match sh.next_batch((last + PING_EVERY).min(next_beat)) {
            Work::Stop => return ("stopping".into(), Vec::new()),
            Work::Idle => {
                let verify = sh.take_verify(Role::Commands);
                if !verify && Instant::now() >= next_beat {
                    // The heartbeat is the round trip.
                    continue;
                }
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
            Work::Jobs(batch) => batch,
        };
        let mut events = Vec::with_capacity(batch.len());
        let mut retry = Vec::new();
        let sent = run_jobs(
            conn,
            sh,
            st,
            &shas,
            &batch,
            &mut life,
            &mut events,
            &mut retry,
        );
        if let Err(failure) = sent {
            return give_up(sh, events, &retry, failure);
        }
        if !retry.is_empty() {
            // Redis lost the scripts: load them again, retry those once.
            match load_scripts(conn) {
                Ok(new) => shas = new,
                Err(why) => return give_up(sh, events, &retry, (why, Vec::new())),
            }
            let mut again = Vec::new();
            let sent = run_jobs(
                conn,
                sh,
                st,
                &shas,
                &retry,
                &mut life,
                &mut events,
                &mut again,
            );
            if let Err(failure) = sent {
                return give_up(sh, events, &again, failure);
            }
            if !again.is_empty() {
                warn!(
                    "redis {}: NOSCRIPT again after loading the scripts",
                    st.addr
                );
            }
            refuse(&mut events, &again);
        }
        sh.answered(events);
        last = Instant::now();
    }
}

/// Tells Redis that `life` lives (`new`: adds it to `p:lives`; otherwise
/// it must be there) and removes up to [`REAP_PER_BEAT`] dead lives;
/// with `refresh`, also refreshes the expiry of what `life` counts. After
/// `NOSCRIPT` it loads the scripts and tries once more. Whether it ran: a
/// script error (Redis out of memory, say) is logged, and the next beat
/// tries again. `Err` when the connection failed, or when `life` is gone
/// from Redis (this node was found dead, or Redis lost its data): the
/// connection is then given up, so that the link comes back with a new
/// life and the core counts everything again.
fn heartbeat(
    conn: &mut Conn,
    st: &Settings,
    shas: &mut Shas,
    life: &str,
    new: bool,
    refresh: bool,
) -> Result<bool, String> {
    let mut argv = presence_args(st, life, None);
    argv.extend([
        u8::from(new).to_string(),
        REAP_PER_BEAT.to_string(),
        REAP_BUDGET.to_string(),
        u8::from(refresh).to_string(),
    ]);
    let keys = [st.lives_key()];
    let mut reloaded = false;
    loop {
        let mut out = Vec::new();
        encode_presence(&mut out, shas.of(Script::Heartbeat), &keys, &argv);
        conn.send(&out)?;
        match conn.next_frame(Instant::now() + REPLY_TIMEOUT)? {
            OwnedFrame::Integer(-1) => {
                return Err(format!(
                    "this node's presence was removed from Redis (no heartbeat for {} s, or Redis lost it): counting again",
                    st.timing.timeout_ms / 1000
                ));
            }
            OwnedFrame::Integer(0) => return Ok(true),
            OwnedFrame::Integer(n) => {
                info!(
                    "redis {}: removed {n} dead node lives and what they counted",
                    st.addr
                );
                return Ok(true);
            }
            frame if is_noscript(&frame) && !reloaded => {
                reloaded = true;
                *shas = load_scripts(conn)?;
            }
            OwnedFrame::Error(e) => {
                warn!("redis {}: the heartbeat failed: {e}", st.addr);
                return Ok(false);
            }
            _ => return Err("unexpected heartbeat reply".into()),
        }
    }
}

/// The commands connection failed: the answers read stand, the jobs
/// Redis refused with `NOSCRIPT` were certainly not run.
fn give_up(sh: &Shared, mut events: Vec<LinkEvent>, noscript: &[Job], failure: Failure) -> Failure {
    refuse(&mut events, noscript);
    sh.answered(events);
    failure
}

/// The answer of each of `refused`, which Redis did not run.
fn refuse(events: &mut Vec<LinkEvent>, refused: &[Job]) {
    events.extend(refused.iter().map(|job| job.id().unanswered(false)));
}

/// [`pipeline`] for `jobs` under this link's lives: a `first` Register
/// removes them all and makes a new one (added to `p:lives` by its
/// script), which is noted for the link's drop.
#[allow(clippy::too_many_arguments)]
fn run_jobs(
    conn: &mut Conn,
    sh: &Shared,
    st: &Settings,
    shas: &Shas,
    jobs: &[Job],
    life: &mut String,
    events: &mut Vec<LinkEvent>,
    retry: &mut Vec<Job>,
) -> Result<(), Failure> {
    let retired = sh.lock().lives.clone();
    let sent = pipeline(conn, st, shas, jobs, (life, &retired), events, retry);
    sh.note_life(life);
    sent
}

/// Writes `batch`'s commands in one go and reads the replies in order:
/// answers go to `events`, jobs refused with `NOSCRIPT` (any of their
/// commands) to `retry`. On failure, the jobs not answered are the
/// failure's unconfirmed ones. `life`: as for [`encode_job`].
fn pipeline(
    conn: &mut Conn,
    st: &Settings,
    shas: &Shas,
    batch: &[Job],
    (life, retired): (&mut String, &[String]),
    events: &mut Vec<LinkEvent>,
    retry: &mut Vec<Job>,
) -> Result<(), Failure> {
    let mut out = Vec::new();
    let counts: Vec<usize> = (batch.iter())
        .map(|job| encode_job(&mut out, st, shas, job, (&mut *life, retired)))
        .collect();
    let unanswered = |from: usize| batch[from..].iter().map(Job::id).collect::<Vec<_>>();
    if let Err(why) = conn.send(&out) {
        return Err((why, unanswered(0)));
    }
    for (i, (job, &count)) in batch.iter().zip(&counts).enumerate() {
        let mut replies = Vec::with_capacity(count);
        for _ in 0..count {
            match conn.next_frame(Instant::now() + REPLY_TIMEOUT) {
                Ok(frame) => replies.push(frame),
                Err(why) => return Err((why, unanswered(i))),
            }
        }
        if replies.iter().any(is_noscript) {
            retry.push(job.clone());
            continue;
        }
        events.push(match job {
            Job::Publish(p) => publish_answer(st, p, replies.pop()),
            Job::Query(q) => LinkEvent::Answer {
                id: q.id,
                answer: query_answer(&q.ask, replies).unwrap_or_else(|why| {
                    warn!(
                        "redis {}: a {} query failed: {why}",
                        st.addr,
                        ask_name(&q.ask)
                    );
                    Answer::Unavailable
                }),
            },
        });
    }
    Ok(())
}

fn is_noscript(frame: &OwnedFrame) -> bool {
    matches!(frame, OwnedFrame::Error(e) if e.starts_with("NOSCRIPT"))
}

/// Appends `job`'s `EVALSHA`s to `out`; how many. `life` is this node's
/// life, which an [`Ask::Register`] with `first` renews, and `retired`
/// this link's last lives (which that registration removes).
fn encode_job(
    out: &mut Vec<u8>,
    st: &Settings,
    shas: &Shas,
    job: &Job,
    (life, retired): (&mut String, &[String]),
) -> usize {
    match job {
        Job::Publish(p) => {
            encode_publish(out, st, shas.of(Script::Publish), p);
            1
        }
        Job::Query(q) => encode_query(out, st, shas, q, (life, retired)),
    }
}

/// Appends `EVALSHA sha 3 KEYS... ARGV...` for `p`.
fn encode_publish(out: &mut Vec<u8>, st: &Settings, sha: &str, p: &Publish) {
    let room = &p.room;
    let keys = [
        st.key("seq", room),
        st.key("epoch", room),
        st.key("log", room),
    ];
    let ts = p.ts.to_string();
    let ttl = KEY_TTL_SECS.to_string();
    encode_evalsha(
        out,
        sha,
        &keys,
        &[
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

/// Appends the `EVALSHA`s for `ask` to `out` (see the scripts); how many:
/// one, or for the digest lists one per [`MAX_DIGESTS_PER_COMMAND`] (none
/// for an empty list), for [`Ask::Register`] one per
/// [`MAX_ENTRIES_PER_COMMAND`] entries (at least one). [`Ask::Who`] is a
/// plain `HKEYS`. `life` is this node's life: an [`Ask::Register`] with
/// `first` renews it before it counts.
fn encode_query(
    out: &mut Vec<u8>,
    st: &Settings,
    shas: &Shas,
    &Query { id, ref ask }: &Query,
    (life, retired): (&mut String, &[String]),
) -> usize {
    let sess = |d: &Digest| st.key("sess", &hex(d));
    let prefix = st.prefix.as_bytes();
    let channel = st.channel.as_bytes();
    match ask {
        Ask::Replay { room, since, epoch } => {
            let keys = [
                st.key("seq", room),
                st.key("epoch", room),
                st.key("log", room),
            ];
            let since = since.to_string();
            let epoch = epoch.map_or(String::new(), |e| format!("{e:016x}"));
            encode_evalsha(
                out,
                shas.of(Script::Replay),
                &keys,
                &[since.as_bytes(), epoch.as_bytes()],
            );
            1
        }
        Ask::Join {
            room,
            user,
            max_per_user,
            may_evict,
        } => {
            let mut argv = presence_args(st, life, Some(id));
            argv.extend([
                room.clone(),
                user.clone(),
                max_per_user.to_string(),
                u8::from(*may_evict).to_string(),
            ]);
            let keys = presence_keys(st, life, room, user);
            encode_presence(out, shas.of(Script::Join), &keys, &argv);
            1
        }
        Ask::Leave { room, user } => {
            let mut argv = presence_args(st, life, Some(id));
            argv.extend([room.clone(), user.clone()]);
            let keys = presence_keys(st, life, room, user);
            encode_presence(out, shas.of(Script::Leave), &keys, &argv);
            1
        }
        Ask::Who { room } => {
            encode_command(out, &[b"HKEYS", st.key("ucnt", room).as_bytes()]);
            1
        }
        Ask::Register { entries, first } => {
            // why the old lives go in the last command: a user counted in
            // a later one must not be announced as left meanwhile. Every
            // life this link had is removed, not only the last: the one
            // before a reconnect still counts everything (and a retry
            // after NOSCRIPT made one more).
            let old = first.then(|| {
                let prev = std::mem::replace(life, new_life());
                let mut old: Vec<&str> = retired.iter().map(String::as_str).collect();
                if !old.contains(&prev.as_str()) {
                    old.push(&prev);
                }
                old.join(",")
            });
            let keys = [st.lives_key()];
            let parts = entries.len().div_ceil(MAX_ENTRIES_PER_COMMAND).max(1);
            let mut chunks = entries.chunks(MAX_ENTRIES_PER_COMMAND);
            let mut n = 0;
            loop {
                let chunk = chunks.next();
                if chunk.is_none() && n > 0 {
                    return n;
                }
                let mut argv = presence_args(st, life, Some(id));
                argv.push(if *first && n == 0 { "1" } else { "0" }.to_string());
                let last = n + 1 == parts;
                argv.push(old.clone().filter(|_| last).unwrap_or_default());
                argv.push(REAP_BUDGET.to_string());
                for (room, user, count) in chunk.unwrap_or_default() {
                    argv.extend([room.clone(), user.clone(), count.to_string()]);
                }
                encode_presence(out, shas.of(Script::Register), &keys, &argv);
                n += 1;
            }
        }
        Ask::CreateSession {
            digest,
            record,
            clock,
            max_per_user,
        } => {
            let [now, ttl, idle] = clock_args(clock);
            let created = record.created_ms.to_string();
            let max = max_per_user.to_string();
            encode_evalsha(
                out,
                shas.of(Script::CreateSession),
                &[sess(digest), st.key("usess", &record.user)],
                &[
                    now.as_bytes(),
                    ttl.as_bytes(),
                    idle.as_bytes(),
                    prefix,
                    channel,
                    hex(digest).as_bytes(),
                    record.user.as_bytes(),
                    record.role.as_bytes(),
                    created.as_bytes(),
                    max.as_bytes(),
                ],
            );
            1
        }
        Ask::LookupSession { digest, clock } => {
            let clock = clock_args(clock);
            let sha = shas.of(Script::LookupSession);
            encode_evalsha(
                out,
                sha,
                &[sess(digest)],
                &clock.each_ref().map(|a| a.as_bytes()),
            );
            1
        }
        Ask::TouchSessions { digests, clock } => {
            let clock = clock_args(clock);
            let argv = clock.each_ref().map(|a| a.as_bytes());
            for chunk in digests.chunks(MAX_DIGESTS_PER_COMMAND) {
                let keys: Vec<String> = chunk.iter().map(sess).collect();
                encode_evalsha(out, shas.of(Script::TouchSessions), &keys, &argv);
            }
            digests.len().div_ceil(MAX_DIGESTS_PER_COMMAND)
        }
        Ask::EndSessions { digests } => {
            for chunk in digests.chunks(MAX_DIGESTS_PER_COMMAND) {
                let keys: Vec<String> = chunk.iter().map(sess).collect();
                encode_evalsha(out, shas.of(Script::EndSessions), &keys, &[prefix, channel]);
            }
            digests.len().div_ceil(MAX_DIGESTS_PER_COMMAND)
        }
        Ask::IssueTicket {
            digest,
            payload,
            session,
            clock,
        } => {
            let [now, ttl, idle] = clock_args(clock);
            let mut keys = vec![st.key("tkt", &hex(digest))];
            keys.extend(session.as_ref().map(sess));
            let session = session.as_ref().map(hex).unwrap_or_default();
            let lifetime = TICKET_TTL_MS.to_string();
            encode_evalsha(
                out,
                shas.of(Script::IssueTicket),
                &keys,
                &[
                    now.as_bytes(),
                    ttl.as_bytes(),
                    idle.as_bytes(),
                    payload.as_bytes(),
                    session.as_bytes(),
                    lifetime.as_bytes(),
                ],
            );
            1
        }
        Ask::RedeemTicket { digest, clock } => {
            let [now, ttl, idle] = clock_args(clock);
            encode_evalsha(
                out,
                shas.of(Script::RedeemTicket),
                &[st.key("tkt", &hex(digest))],
                &[now.as_bytes(), ttl.as_bytes(), idle.as_bytes(), prefix],
            );
            1
        }
    }
}

/// The keys [`JOIN_SCRIPT`] and [`LEAVE_SCRIPT`] take.
fn presence_keys(st: &Settings, life: &str, room: &str, user: &str) -> [String; 6] {
    [
        st.lives_key(),
        st.key("pres", room),
        st.key("ucnt", room),
        st.key("uconn", user),
        st.key("life", life),
        st.key("lifeusers", life),
    ]
}

/// Appends `EVALSHA sha N KEYS... ARGV...` of a presence script.
fn encode_presence(out: &mut Vec<u8>, sha: &str, keys: &[String], argv: &[String]) {
    let argv: Vec<&[u8]> = argv.iter().map(String::as_bytes).collect();
    encode_evalsha(out, sha, keys, &argv);
}

/// The session scripts' first `ARGV`s.
fn clock_args(clock: &SessionClock) -> [String; 3] {
    [clock.now_ms, clock.ttl_ms, clock.idle_ms].map(|n| n.to_string())
}

/// Appends `EVALSHA sha N KEYS... ARGV...` to `out`.
fn encode_evalsha(out: &mut Vec<u8>, sha: &str, keys: &[String], argv: &[&[u8]]) {
    let n = keys.len().to_string();
    let mut args: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + argv.len());
    args.extend([b"EVALSHA".as_slice(), sha.as_bytes(), n.as_bytes()]);
    args.extend(keys.iter().map(String::as_bytes));
    args.extend_from_slice(argv);
    encode_command(out, &args);
}

/// Redis's reply to publish `p`.
fn publish_answer(st: &Settings, p: &Publish, reply: Option<OwnedFrame>) -> LinkEvent {
    match reply {
        Some(OwnedFrame::Integer(seq)) if seq > 0 => LinkEvent::Stored {
            id: p.id,
            seq: seq.unsigned_abs(),
        },
        Some(OwnedFrame::Error(e)) => {
            warn!("redis {}: a publish failed: {e}", st.addr);
            LinkEvent::Failed {
                id: p.id,
                unconfirmed: false,
            }
        }
        _ => {
            warn!("redis {}: unexpected reply to a publish", st.addr);
            LinkEvent::Failed {
                id: p.id,
                unconfirmed: true,
            }
        }
    }
}

/// The answer Redis's `replies` (one per command [`encode_query`] wrote)
/// make to `ask`; `Err`, for the log, on an error or an unexpected reply
/// (never with a payload).
fn query_answer(ask: &Ask, mut replies: Vec<OwnedFrame>) -> Result<Answer, String> {
    let error = replies.iter().find_map(|f| match f {
        OwnedFrame::Error(e) => Some(e),
        _ => None,
    });
    if let Some(e) = error {
        return Err(e.to_string());
    }
    let unexpected = || "unexpected reply".to_string();
    let mut one = || match replies.len() {
        1 => replies.pop().ok_or_else(unexpected),
        _ => Err(unexpected()),
    };
    let gone = || "this node's life is gone from Redis (found dead?)".to_string();
    match ask {
        Ask::Replay { room, .. } => match one()? {
            OwnedFrame::Array(reply) => match <[OwnedFrame; 3]>::try_from(reply) {
                Ok(
                    [
                        OwnedFrame::BulkString(epoch),
                        OwnedFrame::BulkString(seq),
                        OwnedFrame::Array(log),
                    ],
                ) => {
                    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
                    let epoch = match text(&epoch).as_deref() {
                        Some("") => 0,
                        Some(e) => u64::from_str_radix(e, 16).map_err(|_| unexpected())?,
                        None => return Err(unexpected()),
                    };
                    let last = text(&seq)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(unexpected)?;
                    let entries = (log.into_iter())
                        .filter_map(|f| match f {
                            OwnedFrame::BulkString(b) => match parse_payload(&b) {
                                Some(Payload::Message(d)) if d.room == *room => Some(d),
                                _ => None,
                            },
                            _ => None,
                        })
                        .collect();
                    Ok(Answer::Stream {
                        epoch,
                        last,
                        entries,
                    })
                }
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        },
        Ask::Join { .. } => match one()? {
            OwnedFrame::Integer(0) => Ok(Answer::Full),
            OwnedFrame::Integer(1) => Ok(Answer::Joined { evict: false }),
            OwnedFrame::Integer(2) => Ok(Answer::Joined { evict: true }),
            OwnedFrame::Integer(-1) => Err(gone()),
            _ => Err(unexpected()),
        },
        Ask::Leave { .. } => match one()? {
            OwnedFrame::Integer(0 | 1) => Ok(Answer::Done),
            _ => Err(unexpected()),
        },
        Ask::Who { .. } => match one()? {
            OwnedFrame::Array(names) => {
                let mut users = (names.into_iter())
                    .map(|name| match name {
                        OwnedFrame::BulkString(b) => String::from_utf8(b).ok(),
                        _ => None,
                    })
                    .collect::<Option<Vec<String>>>()
                    .ok_or_else(unexpected)?;
                users.sort_unstable();
                Ok(Answer::Users(users))
            }
            _ => Err(unexpected()),
        },
        Ask::Register { entries, .. } => {
            let want = entries.len().div_ceil(MAX_ENTRIES_PER_COMMAND).max(1);
            if replies.len() != want {
                return Err(unexpected());
            }
            if replies.contains(&OwnedFrame::Integer(-1)) {
                return Err(gone());
            }
            if (replies.iter()).all(|r| *r == OwnedFrame::Integer(1)) {
                Ok(Answer::Done)
            } else {
                Err(unexpected())
            }
        }
        Ask::CreateSession { .. } => match one()? {
            OwnedFrame::Integer(_) => Ok(Answer::Done),
            _ => Err(unexpected()),
        },
        Ask::LookupSession { .. } => match one()? {
            OwnedFrame::Null => Ok(Answer::Session(None)),
            OwnedFrame::Array(fields) => match <[OwnedFrame; 3]>::try_from(fields) {
                Ok(
                    [
                        OwnedFrame::BulkString(user),
                        OwnedFrame::BulkString(role),
                        OwnedFrame::BulkString(created),
                    ],
                ) => Ok(Answer::Session(Some(SessionRecord {
                    user: String::from_utf8(user).map_err(|_| unexpected())?,
                    role: String::from_utf8(role).map_err(|_| unexpected())?,
                    created_ms: (std::str::from_utf8(&created).ok())
                        .and_then(|c| c.parse().ok())
                        .ok_or_else(unexpected)?,
                }))),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        },
        Ask::TouchSessions { digests, .. } => {
            let chunks = digests.chunks(MAX_DIGESTS_PER_COMMAND);
            if chunks.len() != replies.len() {
                return Err(unexpected());
            }
            let mut missing = Vec::new();
            for (chunk, reply) in chunks.zip(replies) {
                let OwnedFrame::Array(indexes) = reply else {
                    return Err(unexpected());
                };
                for index in indexes {
                    // 1-based (Lua's).
                    let found = match index {
                        OwnedFrame::Integer(i) => (usize::try_from(i).ok())
                            .and_then(|i| i.checked_sub(1))
                            .and_then(|i| chunk.get(i)),
                        _ => None,
                    };
                    missing.push(*found.ok_or_else(unexpected)?);
                }
            }
            Ok(Answer::Missing(missing))
        }
        Ask::EndSessions { digests } => {
            let ok = replies.len() == digests.len().div_ceil(MAX_DIGESTS_PER_COMMAND)
                && (replies.iter()).all(|r| matches!(r, OwnedFrame::Integer(_)));
            if ok {
                Ok(Answer::Done)
            } else {
                Err(unexpected())
            }
        }
        Ask::IssueTicket { .. } => match one()? {
            OwnedFrame::Integer(1) => Ok(Answer::Done),
            OwnedFrame::Integer(0) => Ok(Answer::Session(None)),
            _ => Err(unexpected()),
        },
        Ask::RedeemTicket { .. } => match one()? {
            OwnedFrame::Null => Ok(Answer::Ticket(None)),
            OwnedFrame::BulkString(payload) => String::from_utf8(payload)
                .map(|p| Answer::Ticket(Some(p)))
                .map_err(|_| unexpected()),
            _ => Err(unexpected()),
        },
    }
}

/// What `ask` does, for the log.
fn ask_name(ask: &Ask) -> &'static str {
    match ask {
        Ask::CreateSession { .. } => "create-session",
        Ask::LookupSession { .. } => "lookup-session",
        Ask::EndSessions { .. } => "end-sessions",
        Ask::TouchSessions { .. } => "touch-sessions",
        Ask::IssueTicket { .. } => "issue-ticket",
        Ask::RedeemTicket { .. } => "redeem-ticket",
        Ask::Join { .. } => "join",
        Ask::Leave { .. } => "leave",
        Ask::Who { .. } => "who",
        Ask::Register { .. } => "register",
        Ask::Replay { .. } => "replay",
    }
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
        sh.release_held(Some(MAX_HOLD));
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
///
/// With it, the id of this link's query that announced it, if it is a
/// join or leave.
fn payload_event(
    st: &Settings,
    payload: &[u8],
    told_unknown: &mut bool,
) -> Option<(LinkEvent, Option<u64>)> {
    match parse_payload(payload) {
        Some(Payload::Message(d)) => Some((LinkEvent::Message(d), None)),
        Some(Payload::Ended { digests, why }) => {
            Some((LinkEvent::SessionsEnded { digests, why }, None))
        }
        Some(Payload::Presence {
            room,
            user,
            joined,
            origin,
        }) => {
            let mine = (origin.as_deref())
                .and_then(|o| o.strip_prefix(st.tag.as_str()))
                .and_then(|o| o.strip_prefix(':'))
                .and_then(|id| id.parse().ok());
            Some((LinkEvent::Presence { room, user, joined }, mine))
        }
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
        let mut conn = Conn::open(url, REPLY_TIMEOUT)?;
        conn.handshake(url, None)?;
        Ok(conn)
    }

    /// A TCP connection to `url`'s host (its addresses in turn), each
    /// attempt and each write bounded by `within` (at most
    /// [`CONNECT_TIMEOUT`] and [`REPLY_TIMEOUT`]).
    fn open(url: &RedisUrl, within: Duration) -> Result<Conn, String> {
        let deadline = Instant::now() + within;
        let addrs = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
        let mut last = format!("{} has no address", url.host);
        let mut stream = None;
        for addr in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match TcpStream::connect_timeout(&addr, left.min(CONNECT_TIMEOUT)) {
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
        (stream.set_write_timeout(Some(within.min(REPLY_TIMEOUT)))).map_err(io)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            start: 0,
        })
    }

    /// `AUTH` when the URL has a password, `SELECT` when its db is not 0,
    /// each reply read by `deadline` ([`REPLY_TIMEOUT`] from now when
    /// `None`).
    fn handshake(&mut self, url: &RedisUrl, deadline: Option<Instant>) -> Result<(), String> {
        let by = || deadline.unwrap_or_else(|| Instant::now() + REPLY_TIMEOUT);
        if let Some(password) = &url.password {
            let reply = match &url.user {
                Some(user) => {
                    self.call_by(&[b"AUTH", user.as_bytes(), password.as_bytes()], by())?
                }
                None => self.call_by(&[b"AUTH", password.as_bytes()], by())?,
            };
            match reply {
                OwnedFrame::SimpleString(_) => {}
                OwnedFrame::Error(e) => return Err(format!("AUTH refused: {e}")),
                _ => return Err("unexpected AUTH reply".into()),
            }
        }
        if url.db != 0 {
            let db = url.db.to_string();
            match self.call_by(&[b"SELECT", db.as_bytes()], by())? {
                OwnedFrame::SimpleString(_) => {}
                OwnedFrame::Error(e) => return Err(format!("SELECT refused: {e}")),
                _ => return Err("unexpected SELECT reply".into()),
            }
        }
        Ok(())
    }

    /// Sends one command and reads its reply (within [`REPLY_TIMEOUT`]).
    fn call(&mut self, args: &[&[u8]]) -> Result<OwnedFrame, String> {
        self.call_by(args, Instant::now() + REPLY_TIMEOUT)
    }

    /// Sends one command and reads its reply by `deadline`.
    fn call_by(&mut self, args: &[&[u8]], deadline: Instant) -> Result<OwnedFrame, String> {
        let mut out = Vec::new();
        encode_command(&mut out, args);
        self.send(&out)?;
        self.next_frame(deadline)
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
        /// The last query id used.
        last_query: u64,
    }

    impl Node {
        fn start(url: RedisUrl, prefix: &str, keep: usize) -> Node {
            Node::start_timed(url, prefix, keep, Timing::CONTRACT)
        }

        fn start_timed(url: RedisUrl, prefix: &str, keep: usize, timing: Timing) -> Node {
            let notified = Arc::new(AtomicUsize::new(0));
            let n = Arc::clone(&notified);
            let link = Link::start_timed(
                url,
                prefix,
                keep,
                Box::new(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                }),
                timing,
            );
            Node {
                link,
                seen: Vec::new(),
                notified,
                last_query: 0,
            }
        }

        fn up(url: RedisUrl, prefix: &str) -> Node {
            Node::up_timed(url, prefix, Timing::CONTRACT)
        }

        fn up_timed(url: RedisUrl, prefix: &str, timing: Timing) -> Node {
            let mut node = Node::start_timed(url, prefix, 1000, timing);
            node.wait(5, "Up", |e| e.contains(&LinkEvent::Up));
            node
        }

        fn join(&mut self, room: &str, user: &str, max: usize, may_evict: bool) -> Answer {
            self.ask(Ask::Join {
                room: room.into(),
                user: user.into(),
                max_per_user: max,
                may_evict,
            })
        }

        fn leave(&mut self, room: &str, user: &str) {
            let ask = Ask::Leave {
                room: room.into(),
                user: user.into(),
            };
            assert_eq!(self.ask(ask), Answer::Done);
        }

        fn who(&mut self, room: &str) -> Vec<String> {
            match self.ask(Ask::Who { room: room.into() }) {
                Answer::Users(users) => users,
                other => panic!("{other:?}"),
            }
        }

        /// This link's current life.
        fn life(&self) -> String {
            self.link
                .shared
                .lock()
                .lives
                .last()
                .cloned()
                .expect("a life")
        }

        /// Every presence event seen, as `(room, user, joined)`.
        fn presence(&self) -> Vec<(String, String, bool)> {
            (self.seen.iter())
                .filter_map(|e| match e {
                    LinkEvent::Presence { room, user, joined } => {
                        Some((room.clone(), user.clone(), *joined))
                    }
                    _ => None,
                })
                .collect()
        }

        /// Waits (at most `secs`) for the `n`th presence event.
        fn wait_presence(&mut self, secs: u64, n: usize) {
            self.wait(secs, "presence events", |e| n_presence(e) >= n);
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

        /// Asks, and waits (at most 5 s) for the one answer.
        fn ask(&mut self, ask: Ask) -> Answer {
            self.last_query += 1;
            let id = self.last_query;
            self.link.ask(Query { id, ask });
            let is_it =
                move |e: &LinkEvent| matches!(e, LinkEvent::Answer { id: i, .. } if *i == id);
            self.wait(5, "an answer", |e| e.iter().any(is_it));
            let answers: Vec<Answer> = (self.seen.iter())
                .filter_map(|e| match e {
                    LinkEvent::Answer { id: i, answer } if *i == id => Some(answer.clone()),
                    _ => None,
                })
                .collect();
            let [answer] = <[Answer; 1]>::try_from(answers).expect("one answer");
            answer
        }

        fn create(&mut self, d: Digest, user: &str, clock: SessionClock, max: usize) -> Answer {
            self.ask(Ask::CreateSession {
                digest: d,
                record: record(user, clock.now_ms),
                clock,
                max_per_user: max,
            })
        }

        fn lookup(&mut self, d: Digest, clock: SessionClock) -> Option<SessionRecord> {
            match self.ask(Ask::LookupSession { digest: d, clock }) {
                Answer::Session(found) => found,
                other => panic!("{other:?}"),
            }
        }

        fn touch(&mut self, digests: &[Digest], clock: SessionClock) -> Vec<Digest> {
            let digests = digests.to_vec();
            match self.ask(Ask::TouchSessions { digests, clock }) {
                Answer::Missing(missing) => missing,
                other => panic!("{other:?}"),
            }
        }

        fn end(&mut self, digests: &[Digest]) {
            let digests = digests.to_vec();
            assert_eq!(self.ask(Ask::EndSessions { digests }), Answer::Done);
        }

        fn issue(&mut self, t: Digest, payload: &str, session: Option<Digest>) -> Answer {
            self.ask(Ask::IssueTicket {
                digest: t,
                payload: payload.into(),
                session,
                clock: clock(3_600_000, 600_000),
            })
        }

        fn redeem(&mut self, t: Digest, clock: SessionClock) -> Option<String> {
            match self.ask(Ask::RedeemTicket { digest: t, clock }) {
                Answer::Ticket(payload) => payload,
                other => panic!("{other:?}"),
            }
        }

        /// Every `SessionsEnded` seen.
        fn ended(&self) -> Vec<(Vec<Digest>, Ended)> {
            (self.seen.iter())
                .filter_map(|e| match e {
                    LinkEvent::SessionsEnded { digests, why } => Some((digests.clone(), *why)),
                    _ => None,
                })
                .collect()
        }

        /// Waits for the `n`th `SessionsEnded`.
        fn wait_ended(&mut self, n: usize) {
            self.wait(5, "SessionsEnded", |e| {
                (e.iter())
                    .filter(|e| matches!(e, LinkEvent::SessionsEnded { .. }))
                    .count()
                    >= n
            });
        }
    }

    impl Link {
        /// Drops the link without removing its presence, as if its node
        /// died.
        fn vanish(mut self) {
            self.farewell = false;
        }
    }

    fn n_presence(e: &[LinkEvent]) -> usize {
        e.iter()
            .filter(|e| matches!(e, LinkEvent::Presence { .. }))
            .count()
    }

    /// A presence event as [`Node::presence`] lists it.
    fn pres(room: &str, user: &str, joined: bool) -> (String, String, bool) {
        (room.into(), user.into(), joined)
    }

    /// Heartbeats every 100 ms, dead after 600 ms.
    const FAST: Timing = Timing {
        heartbeat: Duration::from_millis(100),
        timeout_ms: 600,
    };

    /// Lives are not removed by their deadline within a test.
    const SLOW_REAP: Timing = Timing {
        heartbeat: Duration::from_millis(100),
        timeout_ms: 60_000,
    };

    fn strings(frame: OwnedFrame) -> Vec<String> {
        match frame {
            OwnedFrame::Array(items) => (items.iter())
                .map(|b| String::from_utf8(bulk(b).to_vec()).unwrap())
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    fn now_ms() -> u64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        u64::try_from(since.as_millis()).unwrap()
    }

    /// Limits as a node asks with them, now.
    fn clock(ttl_ms: u64, idle_ms: u64) -> SessionClock {
        SessionClock {
            now_ms: now_ms(),
            ttl_ms,
            idle_ms,
        }
    }

    /// A digest told apart by `n`.
    fn digest(n: u16) -> Digest {
        let mut d = [0x5a; 32];
        d[..2].copy_from_slice(&n.to_be_bytes());
        d
    }

    fn record(user: &str, created_ms: u64) -> SessionRecord {
        SessionRecord {
            user: user.into(),
            role: "member".into(),
            created_ms,
        }
    }

    fn sess_key(prefix: &str, d: &Digest) -> Vec<u8> {
        format!("{prefix}:sess:{}", hex(d)).into_bytes()
    }

    fn int(frame: OwnedFrame) -> i64 {
        match frame {
            OwnedFrame::Integer(i) => i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// The members of sorted set `key`, as digests.
    fn members(c: &mut Conn, key: &str) -> Vec<Digest> {
        match c.call(&[b"ZRANGE", key.as_bytes(), b"0", b"-1"]).unwrap() {
            OwnedFrame::Array(ms) => (ms.iter())
                .map(|m| unhex(std::str::from_utf8(bulk(m)).unwrap()).unwrap())
                .collect(),
            other => panic!("{other:?}"),
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
    fn a_rooms_stream_is_read_after_since() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::start(redis.url(), "rp", 100);
        a.wait(5, "Up", |e| e.contains(&LinkEvent::Up));
        for i in 0..5 {
            a.publish(i, "room", &format!("m{}", i + 1));
        }
        a.wait(10, "5 stored", |e| n_stored(e) == 5);
        let read =
            |a: &mut Node, room: &str, since: u64, epoch: Option<u64>| match a.ask(Ask::Replay {
                room: room.into(),
                since,
                epoch,
            }) {
                Answer::Stream {
                    epoch,
                    last,
                    entries,
                } => (epoch, last, entries),
                other => panic!("{other:?}"),
            };
        let (epoch, last, all) = read(&mut a, "room", 0, None);
        assert_eq!((last, all.len()), (5, 5));
        assert_ne!(epoch, 0);
        assert!(all.iter().all(|d| d.epoch == epoch && d.room == "room"));
        // After 2, in the room's epoch: 3 to 5, in order.
        let (_, _, after) = read(&mut a, "room", 2, Some(epoch));
        let got: Vec<(u64, &str)> = after.iter().map(|d| (d.seq, d.text.as_str())).collect();
        assert_eq!(got, [(3, "m3"), (4, "m4"), (5, "m5")]);
        // Counting in another epoch: all of it.
        assert_eq!(read(&mut a, "room", 4, Some(epoch + 1)).2.len(), 5);
        // A room Redis does not have.
        assert_eq!(read(&mut a, "nowhere", 0, None), (0, 0, vec![]));
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
    fn a_stall_longer_than_the_timeout_removes_no_live_node() {
        // Found by review: after the stall every deadline had passed, and
        // the first heartbeat removed every other node.
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up_timed(redis.url(), "st", FAST);
        let mut b = Node::up_timed(redis.url(), "st", FAST);
        assert_eq!(
            a.join("r", "ann", 8, false),
            Answer::Joined { evict: false }
        );
        assert_eq!(
            b.join("r", "bob", 8, false),
            Answer::Joined { evict: false }
        );
        b.wait_presence(5, 2);
        redis.signal("-STOP");
        thread::sleep(Duration::from_millis(3 * FAST.timeout_ms));
        redis.signal("-CONT");
        thread::sleep(FAST.heartbeat * 5);
        a.collect();
        b.collect();
        assert_eq!(b.who("r"), ["ann", "bob"]);
        let left = |n: &Node| n.presence().iter().filter(|p| !p.2).count();
        assert_eq!((left(&a), left(&b)), (0, 0));
    }

    #[test]
    fn after_a_reconnect_the_registration_removes_the_lives_before_it() {
        // Found by review: the life from before the reconnect still
        // counted everything until its deadline.
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up_timed(redis.url(), "rc", SLOW_REAP);
        let mut b = Node::up_timed(redis.url(), "rc", SLOW_REAP);
        assert_eq!(
            a.join("r", "ann", 2, false),
            Answer::Joined { evict: false }
        );
        assert_eq!(
            a.join("r", "ann", 2, false),
            Answer::Joined { evict: false }
        );
        b.wait_presence(5, 1);
        let before = a.life();
        // The commands connection drops (Redis keeps its data): a new
        // life, and the core counts everything again.
        let mut r = redis.client(&redis.url());
        r.call(&[b"CLIENT", b"KILL", b"TYPE", b"normal", b"SKIPME", b"yes"])
            .unwrap();
        let again = |e: &[LinkEvent]| e.iter().filter(|e| **e == LinkEvent::Up).count() >= 2;
        a.wait(10, "a back up", again);
        b.wait(10, "b back up", again);
        let ask = Ask::Register {
            entries: vec![("r".into(), "ann".into(), 2)],
            first: true,
        };
        assert_eq!(a.ask(ask), Answer::Done);
        assert_ne!(a.life(), before);
        // At once, long before the old lives' deadline: ann counts 2 (one
        // life), not 4, so a limit of 3 lets a third in, and nobody heard
        // her leave.
        let ann = strings(r.call(&[b"HGETALL", b"rc:uconn:ann"]).unwrap());
        assert_eq!(ann, [a.life(), "2".to_string()]);
        assert_eq!(
            b.join("r", "ann", 3, false),
            Answer::Joined { evict: false }
        );
        b.collect();
        assert_eq!(b.presence().iter().filter(|p| !p.2).count(), 0);
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
        // A query counts with them.
        let digests = Vec::new();
        let ask = Ask::EndSessions { digests };
        a.link.ask(Query { id: 7, ask });
        let now = a.link.take_events();
        let unavailable = LinkEvent::Answer {
            id: 7,
            answer: Answer::Unavailable,
        };
        assert_eq!(now.last(), Some(&unavailable));
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
    fn sessions_are_shared_between_nodes() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "t");
        let mut b = Node::up(redis.url(), "t");
        let c = clock(3_600_000, 600_000);
        let rec = SessionRecord {
            user: "zoë \"z\" /x".into(),
            role: "admin".into(),
            created_ms: c.now_ms,
        };
        let create = Ask::CreateSession {
            digest: digest(1),
            record: rec.clone(),
            clock: c,
            max_per_user: 4,
        };
        assert_eq!(a.ask(create), Answer::Done);
        let c = clock(3_600_000, 600_000);
        assert_eq!(b.lookup(digest(1), c), Some(rec.clone()));
        assert_eq!(a.lookup(digest(1), c), Some(rec.clone()));
        assert_eq!(b.lookup(digest(2), c), None);
        // In Redis: the hash, and the user's sessions; both expire.
        let mut r = redis.client(&redis.url());
        let key = sess_key("t", &digest(1));
        assert_eq!(key.len(), "t:sess:".len() + 64);
        let user = r.call(&[b"HGET", &key, b"u"]).unwrap();
        assert_eq!(bulk(&user), rec.user.as_bytes());
        let created = r.call(&[b"HGET", &key, b"c"]).unwrap();
        assert_eq!(bulk(&created), rec.created_ms.to_string().as_bytes());
        let idle = int(r.call(&[b"PTTL", &key]).unwrap());
        assert!((1..=600_000).contains(&idle), "{idle}");
        let mine = format!("t:usess:{}", rec.user);
        assert_eq!(members(&mut r, &mine), [digest(1)]);
        let until_end = int(r.call(&[b"PTTL", mine.as_bytes()]).unwrap());
        assert!((600_001..=3_600_000).contains(&until_end), "{until_end}");
        // No limits: no expiry.
        assert_eq!(a.create(digest(3), "bob", clock(0, 0), 4), Answer::Done);
        assert_eq!(b.lookup(digest(3), clock(0, 0)).unwrap().user, "bob");
        let key = sess_key("t", &digest(3));
        assert_eq!(int(r.call(&[b"PTTL", &key]).unwrap()), -1);
        assert_eq!(int(r.call(&[b"PTTL", b"t:usess:bob"]).unwrap()), -1);
        assert_eq!(a.count(is_down) + b.count(is_down), 0);
    }

    #[test]
    fn sessions_expire_idle_and_absolute() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "x");
        let mut r = redis.client(&redis.url());
        // Idle 300 ms: kept alive by lookups 600 ms long, then gone.
        let idle = || clock(3_600_000, 300);
        assert_eq!(a.create(digest(1), "ann", idle(), 4), Answer::Done);
        for _ in 0..4 {
            thread::sleep(Duration::from_millis(150));
            assert!(a.lookup(digest(1), idle()).is_some());
        }
        thread::sleep(Duration::from_millis(450));
        assert_eq!(a.lookup(digest(1), idle()), None);
        // Absolute 500 ms: a lookup does not extend it.
        let absolute = || clock(500, 60_000);
        assert_eq!(a.create(digest(2), "ann", absolute(), 4), Answer::Done);
        let key = sess_key("x", &digest(2));
        assert!(int(r.call(&[b"PTTL", &key]).unwrap()) <= 500);
        thread::sleep(Duration::from_millis(300));
        assert!(a.lookup(digest(2), absolute()).is_some());
        let left = int(r.call(&[b"PTTL", &key]).unwrap());
        assert!((1..=250).contains(&left), "{left}");
        thread::sleep(Duration::from_millis(300));
        assert_eq!(a.lookup(digest(2), absolute()), None);
        // Found past its absolute limit (by the asking node's clock):
        // deleted, and missing.
        let c = clock(60_000, 60_000);
        assert_eq!(a.create(digest(3), "ann", c, 4), Answer::Done);
        let key = sess_key("x", &digest(3));
        let late = SessionClock {
            now_ms: c.now_ms + 60_000,
            ..c
        };
        assert_eq!(a.lookup(digest(3), late), None);
        assert_eq!(int(r.call(&[b"EXISTS", &key]).unwrap()), 0);
        // Created already past it: nothing stored.
        let over = SessionClock {
            now_ms: c.now_ms + 60_000,
            ..c
        };
        let create = Ask::CreateSession {
            digest: digest(4),
            record: record("ann", c.now_ms),
            clock: over,
            max_per_user: 4,
        };
        assert_eq!(a.ask(create), Answer::Done);
        let key = sess_key("x", &digest(4));
        assert_eq!(int(r.call(&[b"EXISTS", &key]).unwrap()), 0);
        // Idle only: the absolute remainder does not apply.
        assert_eq!(a.create(digest(5), "ann", clock(0, 700), 4), Answer::Done);
        let key = sess_key("x", &digest(5));
        let left = int(r.call(&[b"PTTL", &key]).unwrap());
        assert!((300..=700).contains(&left), "{left}");
    }

    #[test]
    fn evictions_past_max_per_user_are_announced() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "v");
        let mut b = Node::up(redis.url(), "v");
        let mut r = redis.client(&redis.url());
        let at = |ms: u64| SessionClock {
            now_ms: ms,
            ttl_ms: 3_600_000,
            idle_ms: 600_000,
        };
        let t = now_ms();
        assert_eq!(a.create(digest(1), "eve", at(t), 2), Answer::Done);
        assert_eq!(a.create(digest(2), "eve", at(t + 1), 2), Answer::Done);
        assert_eq!(b.create(digest(3), "eve", at(t + 2), 2), Answer::Done);
        for node in [&mut a, &mut b] {
            node.wait_ended(1);
            assert_eq!(node.ended(), [(vec![digest(1)], Ended::Evicted)]);
        }
        assert_eq!(b.lookup(digest(1), at(t + 3)), None);
        assert!(b.lookup(digest(2), at(t + 3)).is_some());
        assert!(a.lookup(digest(3), at(t + 3)).is_some());
        assert_eq!(members(&mut r, "v:usess:eve"), [digest(2), digest(3)]);
        // A session gone by itself only leaves its name: dropped, no
        // eviction needed.
        r.call(&[b"DEL", &sess_key("v", &digest(2))]).unwrap();
        assert_eq!(a.create(digest(4), "eve", at(t + 4), 2), Answer::Done);
        assert_eq!(members(&mut r, "v:usess:eve"), [digest(3), digest(4)]);
        assert_eq!(a.create(digest(5), "eve", at(t + 5), 2), Answer::Done);
        a.wait_ended(2);
        // (Nothing came for digest(4): the events come in Redis's order.)
        assert_eq!(
            a.ended(),
            [
                (vec![digest(1)], Ended::Evicted),
                (vec![digest(3)], Ended::Evicted)
            ]
        );
        // The newest is never evicted, even in the same millisecond as
        // the others and first by name.
        assert_eq!(a.create(digest(6), "eve", at(t + 5), 2), Answer::Done);
        assert_eq!(a.create(digest(0), "eve", at(t + 5), 2), Answer::Done);
        a.wait_ended(4);
        assert!(a.lookup(digest(0), at(t + 6)).is_some());
        assert_eq!(members(&mut r, "v:usess:eve").len(), 2);
        // Another user's sessions are not counted.
        assert_eq!(a.create(digest(7), "eva", at(t + 7), 2), Answer::Done);
        assert_eq!(members(&mut r, "v:usess:eva"), [digest(7)]);
        // Several at once, when the limit went down.
        assert_eq!(a.create(digest(8), "eve", at(t + 8), 1), Answer::Done);
        a.wait_ended(5);
        let (last, why) = a.ended().pop().unwrap();
        assert_eq!((last.len(), why), (2, Ended::Evicted));
        assert!(!last.contains(&digest(8)));
        assert_eq!(members(&mut r, "v:usess:eve"), [digest(8)]);
        b.wait_ended(5);
        assert_eq!(a.ended(), b.ended());
    }

    #[test]
    fn end_sessions_is_announced() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "o");
        let mut b = Node::up(redis.url(), "o");
        let mut r = redis.client(&redis.url());
        let c = || clock(3_600_000, 600_000);
        assert_eq!(a.create(digest(1), "lou", c(), 8), Answer::Done);
        assert_eq!(a.create(digest(2), "lou", c(), 8), Answer::Done);
        a.end(&[digest(1), digest(9)]);
        for node in [&mut a, &mut b] {
            node.wait_ended(1);
            assert_eq!(node.ended(), [(vec![digest(1)], Ended::LoggedOut)]);
        }
        assert_eq!(b.lookup(digest(1), c()), None);
        assert!(b.lookup(digest(2), c()).is_some());
        assert_eq!(members(&mut r, "o:usess:lou"), [digest(2)]);
        // Nothing existed: nothing announced (the message after it comes
        // after it).
        a.end(&[digest(9)]);
        a.end(&[]);
        a.publish(1, "r", "after");
        a.wait(5, "the message", |e| n_messages(e) == 1);
        assert_eq!(a.ended().len(), 1);
        // More than one command's worth: one event per command.
        let many: Vec<Digest> = (100..100 + MAX_DIGESTS_PER_COMMAND as u16 + 1)
            .map(digest)
            .collect();
        for &d in &many {
            assert_eq!(a.create(d, "lou", c(), 10_000), Answer::Done);
        }
        a.end(&many);
        a.wait_ended(3);
        let ended: Vec<Digest> = a.ended()[1..]
            .iter()
            .flat_map(|(d, why)| {
                assert_eq!(*why, Ended::LoggedOut);
                d.clone()
            })
            .collect();
        assert_eq!(ended, many);
        assert_eq!(members(&mut r, "o:usess:lou"), [digest(2)]);
    }

    #[test]
    fn touch_keeps_sessions_alive_and_reports_missing() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "h");
        let mut b = Node::up(redis.url(), "h");
        let idle = || clock(3_600_000, 300);
        assert_eq!(a.create(digest(1), "tom", idle(), 4), Answer::Done);
        assert_eq!(a.create(digest(2), "tom", idle(), 4), Answer::Done);
        for _ in 0..4 {
            thread::sleep(Duration::from_millis(150));
            assert_eq!(a.touch(&[digest(1), digest(3)], idle()), [digest(3)]);
        }
        assert!(b.lookup(digest(1), idle()).is_some());
        assert_eq!(b.lookup(digest(2), idle()), None);
        assert_eq!(a.touch(&[], idle()), Vec::<Digest>::new());
        // Over several commands, merged in order.
        let mut many: Vec<Digest> = (1000..3500).map(digest).collect();
        many[1500] = digest(1);
        let mut want = many.clone();
        want.remove(1500);
        assert_eq!(a.touch(&many, idle()), want);
        // Past the absolute limit.
        let late = SessionClock {
            now_ms: now_ms() + 3_600_000,
            ..idle()
        };
        assert_eq!(b.touch(&[digest(1)], late), [digest(1)]);
        assert_eq!(a.lookup(digest(1), idle()), None);
    }

    #[test]
    fn tickets_work_once_across_nodes() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "k");
        let mut b = Node::up(redis.url(), "k");
        let mut r = redis.client(&redis.url());
        let c = || clock(3_600_000, 600_000);
        assert_eq!(a.create(digest(1), "ida", c(), 4), Answer::Done);
        let payload = r#"{"user":"ida","role":"x/y é"}"#;
        assert_eq!(a.issue(digest(50), payload, Some(digest(1))), Answer::Done);
        let key = format!("k:tkt:{}", hex(&digest(50)));
        let left = int(r.call(&[b"PTTL", key.as_bytes()]).unwrap());
        assert!((1..=30_000).contains(&left), "{left}");
        assert_eq!(b.redeem(digest(50), c()).as_deref(), Some(payload));
        assert_eq!(b.redeem(digest(50), c()), None);
        assert_eq!(a.redeem(digest(50), c()), None);
        // Without a session.
        assert_eq!(b.issue(digest(51), "p", None), Answer::Done);
        assert_eq!(a.redeem(digest(51), c()).as_deref(), Some("p"));
        assert_eq!(a.redeem(digest(51), c()), None);
        assert_eq!(a.redeem(digest(52), c()), None);
    }

    #[test]
    fn tickets_need_a_live_session() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "q");
        let mut b = Node::up(redis.url(), "q");
        let mut r = redis.client(&redis.url());
        let c = || clock(3_600_000, 600_000);
        // An unknown session: no ticket.
        assert_eq!(
            a.issue(digest(60), "p", Some(digest(9))),
            Answer::Session(None)
        );
        let key = format!("q:tkt:{}", hex(&digest(60)));
        assert_eq!(int(r.call(&[b"EXISTS", key.as_bytes()]).unwrap()), 0);
        // Its session ended after: used up, refused.
        assert_eq!(a.create(digest(1), "max", c(), 4), Answer::Done);
        assert_eq!(a.issue(digest(61), "p", Some(digest(1))), Answer::Done);
        b.end(&[digest(1)]);
        assert_eq!(a.redeem(digest(61), c()), None);
        let key = format!("q:tkt:{}", hex(&digest(61)));
        assert_eq!(int(r.call(&[b"EXISTS", key.as_bytes()]).unwrap()), 0);
        // Issuing and redeeming refresh the session's idle limit.
        let idle = || clock(3_600_000, 400);
        assert_eq!(a.create(digest(2), "max", idle(), 4), Answer::Done);
        thread::sleep(Duration::from_millis(250));
        let issue = Ask::IssueTicket {
            digest: digest(62),
            payload: "p".into(),
            session: Some(digest(2)),
            clock: idle(),
        };
        assert_eq!(a.ask(issue), Answer::Done);
        thread::sleep(Duration::from_millis(250));
        assert_eq!(b.redeem(digest(62), idle()).as_deref(), Some("p"));
        thread::sleep(Duration::from_millis(250));
        assert!(a.lookup(digest(2), idle()).is_some());
        // Its session past its absolute limit, by the redeeming node.
        assert_eq!(a.issue(digest(63), "p", Some(digest(2))), Answer::Done);
        let late = SessionClock {
            now_ms: now_ms() + 3_600_000,
            ..idle()
        };
        assert_eq!(b.redeem(digest(63), late), None);
    }

    #[test]
    fn queries_while_down_are_unavailable() {
        let Some(mut redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "d");
        let c = || clock(3_600_000, 600_000);
        assert_eq!(a.create(digest(1), "dan", c(), 4), Answer::Done);
        // Written, then Redis dies before it answers.
        redis.signal("-STOP");
        let lookup = |id| Query {
            id,
            ask: Ask::LookupSession {
                digest: digest(1),
                clock: c(),
            },
        };
        a.link.ask(lookup(100));
        thread::sleep(Duration::from_millis(100));
        redis.kill();
        let unavailable = |id| LinkEvent::Answer {
            id,
            answer: Answer::Unavailable,
        };
        a.wait(5, "Down and the answer", |e| {
            e.iter().any(is_down) && e.contains(&unavailable(100))
        });
        // While down: at once.
        a.link.ask(lookup(101));
        assert_eq!(a.link.take_events(), [unavailable(101)]);
        a.collect();
        let answers = a.count(|e| matches!(e, LinkEvent::Answer { id: 100, .. }));
        assert_eq!(answers, 1);
    }

    #[test]
    fn script_flush_is_recovered_for_queries() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "f");
        let mut r = redis.client(&redis.url());
        let c = || clock(3_600_000, 600_000);
        assert_eq!(a.create(digest(1), "fay", c(), 4), Answer::Done);
        let flush = |r: &mut Conn| {
            let ok = r.call(&[b"SCRIPT", b"FLUSH"]).unwrap();
            assert!(matches!(ok, OwnedFrame::SimpleString(_)));
        };
        flush(&mut r);
        assert_eq!(a.lookup(digest(1), c()).unwrap().user, "fay");
        flush(&mut r);
        let mut many: Vec<Digest> = (1000..2500).map(digest).collect();
        many.push(digest(1));
        assert_eq!(a.touch(&many, c()), many[..1500]);
        // A publish and a query in one batch.
        flush(&mut r);
        a.publish(1, "r", "m");
        assert_eq!(a.create(digest(2), "fay", c(), 4), Answer::Done);
        a.wait(5, "stored", |e| n_stored(e) == 1);
        assert!(a.lookup(digest(2), c()).is_some());
        assert_eq!(a.count(is_down), 0);
        assert_eq!(a.count(|e| *e == LinkEvent::Up), 1);
    }

    #[test]
    fn presence_is_counted_across_nodes_and_announced_once() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "j");
        let mut b = Node::up(redis.url(), "j");
        let mut r = redis.client(&redis.url());
        let joined = Answer::Joined { evict: false };
        assert_eq!(a.join("r", "ann", 4, false), joined);
        for node in [&mut a, &mut b] {
            node.wait_presence(5, 1);
            assert_eq!(node.presence(), [pres("r", "ann", true)]);
        }
        // The same user on the other node: counted, not announced.
        assert_eq!(b.join("r", "ann", 4, false), joined);
        assert_eq!(b.who("r"), ["ann"]);
        b.leave("r", "ann");
        // Not counted under B's life (any more, or ever): nothing.
        b.leave("r", "ann");
        b.leave("r", "zed");
        b.leave("elsewhere", "ann");
        assert_eq!(a.who("r"), ["ann"]);
        // A barrier: what came before it was announced before it.
        b.publish(1, "r", "barrier");
        for node in [&mut a, &mut b] {
            node.wait(5, "the barrier", |e| n_messages(e) == 1);
            assert_eq!(node.presence(), [pres("r", "ann", true)]);
        }
        a.leave("r", "ann");
        for node in [&mut a, &mut b] {
            node.wait_presence(5, 2);
            assert_eq!(node.presence()[1], pres("r", "ann", false));
        }
        assert_eq!(b.who("r"), Vec::<String>::new());
        // Nothing is left of it in Redis.
        for key in ["j:pres:r", "j:ucnt:r", "j:uconn:ann"] {
            assert_eq!(
                int(r.call(&[b"EXISTS", key.as_bytes()]).unwrap()),
                0,
                "{key}"
            );
        }
        let life = format!("j:life:{}", a.life());
        assert_eq!(int(r.call(&[b"EXISTS", life.as_bytes()]).unwrap()), 0);
        // Who: everyone on every node, sorted, once each.
        assert_eq!(a.join("r", "zoë |x", 4, false), joined);
        assert_eq!(b.join("r", "bob", 4, false), joined);
        assert_eq!(b.join("r", "zoë |x", 4, false), joined);
        assert_eq!(a.join("r2", "amy", 4, false), joined);
        for node in [&mut a, &mut b] {
            assert_eq!(node.who("r"), ["bob", "zoë |x"]);
            assert_eq!(node.who("r2"), ["amy"]);
            assert_eq!(node.who("nowhere"), Vec::<String>::new());
        }
        // The keys, and their expiry.
        let a_pres = format!("{}|zoë |x", a.life());
        let n = r.call(&[b"HGET", b"j:pres:r", a_pres.as_bytes()]).unwrap();
        assert_eq!(bulk(&n), b"1");
        let n = r.call(&[b"HGET", "j:ucnt:r".as_bytes(), "zoë |x".as_bytes()]);
        assert_eq!(bulk(&n.unwrap()), b"2");
        let lives = strings(r.call(&[b"ZRANGE", b"j:lives", b"0", b"-1"]).unwrap());
        assert_eq!(lives.len(), 2);
        assert!(lives.contains(&a.life()) && lives.contains(&b.life()));
        let life = a.life();
        assert_eq!(life.len(), 16);
        assert!(
            life.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        for key in [
            "j:pres:r".to_string(),
            "j:ucnt:r".to_string(),
            "j:uconn:zoë |x".to_string(),
            format!("j:life:{life}"),
            format!("j:lifeusers:{life}"),
            "j:lives".to_string(),
        ] {
            let ttl = int(r.call(&[b"TTL", key.as_bytes()]).unwrap());
            let day = i64::try_from(PRESENCE_TTL_SECS).unwrap();
            assert!((day - 60..=day).contains(&ttl), "{key}: {ttl}");
        }
        // In one order with the room's messages.
        let (before, after) = (a.presence().len(), a.messages().len());
        a.publish(2, "o", "before");
        let ask = Ask::Join {
            room: "o".into(),
            user: "cat".into(),
            max_per_user: 4,
            may_evict: false,
        };
        a.link.ask(Query { id: 99, ask });
        a.publish(3, "o", "after");
        b.wait(5, "both messages", |e| n_messages(e) == after + 2);
        let heard: Vec<String> = (b.seen.iter())
            .filter_map(|e| match e {
                LinkEvent::Message(m) if m.room == "o" => Some(m.text.clone()),
                LinkEvent::Presence { room, user, .. } if room == "o" => Some(user.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(heard, ["before", "cat", "after"]);
        assert_eq!(b.presence().len(), before + 1);
        assert_eq!(a.count(is_down) + b.count(is_down), 0);
    }

    #[test]
    fn the_per_user_limit_counts_every_node() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "m");
        let mut b = Node::up(redis.url(), "m");
        let joined = Answer::Joined { evict: false };
        assert_eq!(a.join("r1", "max", 2, false), joined);
        assert_eq!(b.join("r2", "max", 2, false), joined);
        assert_eq!(a.join("r3", "max", 2, false), Answer::Full);
        assert_eq!(b.join("r1", "max", 2, false), Answer::Full);
        // Nothing counted when full.
        assert_eq!(a.who("r3"), Vec::<String>::new());
        // Evicting one here: counted all the same.
        assert_eq!(b.join("r3", "max", 2, true), Answer::Joined { evict: true });
        assert_eq!(a.who("r3"), ["max"]);
        b.leave("r2", "max");
        assert_eq!(a.join("r2", "max", 2, false), Answer::Full);
        a.leave("r1", "max");
        assert_eq!(a.join("r2", "max", 2, false), joined);
        // Under the limit, may_evict changes nothing.
        assert_eq!(b.join("r9", "max", 5, true), joined);
        // Others do not count.
        assert_eq!(a.join("r1", "min", 1, false), joined);
        assert_eq!(b.join("r1", "min", 1, false), Answer::Full);
    }

    #[test]
    fn register_first_starts_a_new_life_and_removes_the_old_one_at_once() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up_timed(redis.url(), "g", FAST);
        let mut b = Node::up_timed(redis.url(), "g", FAST);
        let mut r = redis.client(&redis.url());
        for (room, user) in [("r", "ann"), ("r", "ann"), ("r", "bob"), ("r2", "ann")] {
            assert_eq!(
                a.join(room, user, 8, false),
                Answer::Joined { evict: false }
            );
        }
        b.wait_presence(5, 3);
        let old = a.life();
        // Counted again (bob's WebSocket closed meanwhile, cid's opened),
        // over two commands: the old life goes with the last.
        let mut all: Vec<(String, String, u32)> = (0..MAX_ENTRIES_PER_COMMAND)
            .map(|i| ("big".to_string(), format!("u{i:04}"), 1))
            .collect();
        all.push(("r".into(), "ann".into(), 2));
        all.push(("r".into(), "cid".into(), 1));
        all.push(("r2".into(), "ann".into(), 1));
        let ask = Ask::Register {
            entries: all,
            first: true,
        };
        let t = Instant::now();
        assert_eq!(a.ask(ask), Answer::Done);
        let new = a.life();
        assert_ne!(new, old);
        // Joins announced for the new ones only; then bob leaves as the
        // old life is removed, at once (not after its deadline), and no
        // one else.
        let joins = 3 + MAX_ENTRIES_PER_COMMAND + 1;
        b.wait(5, "bob's leave", |e| n_presence(e) > joins);
        let took = t.elapsed();
        assert!(took < Duration::from_millis(FAST.timeout_ms), "{took:?}");
        thread::sleep(FAST.heartbeat * 3);
        b.collect();
        let heard = b.presence();
        assert_eq!(heard.len(), joins + 1, "{:?}", &heard[3..]);
        assert_eq!(heard[3], pres("big", "u0000", true));
        assert_eq!(heard[joins - 1], pres("r", "cid", true));
        assert_eq!(heard[joins], pres("r", "bob", false));
        assert_eq!(b.who("r"), ["ann", "cid"]);
        assert_eq!(b.who("big").len(), MAX_ENTRIES_PER_COMMAND);
        // Nothing of the old life is left.
        let lives = strings(r.call(&[b"ZRANGE", b"g:lives", b"0", b"-1"]).unwrap());
        assert!(!lives.contains(&old) && lives.contains(&new), "{lives:?}");
        for kind in ["life", "lifeusers"] {
            let key = format!("g:{kind}:{old}");
            assert_eq!(int(r.call(&[b"EXISTS", key.as_bytes()]).unwrap()), 0);
        }
        let ann = strings(r.call(&[b"HGETALL", b"g:uconn:ann"]).unwrap());
        assert_eq!(ann, [new.clone(), "3".into()]);
        // Leaves count under the new life.
        a.leave("r", "ann");
        a.leave("r", "ann");
        b.wait_presence(5, joins + 2);
        assert_eq!(b.presence()[joins + 1], pres("r", "ann", false));
        assert_eq!(b.who("r2"), ["ann"]);
        assert_eq!(a.count(is_down), 0);
    }

    #[test]
    fn a_dead_node_is_removed_by_the_others() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "x");
        let mut b = Node::up(redis.url(), "x");
        let joined = Answer::Joined { evict: false };
        assert_eq!(b.join("r", "ann", 4, false), joined);
        assert_eq!(b.join("r", "bob", 4, false), joined);
        assert_eq!(a.join("r", "bob", 4, false), joined);
        a.wait_presence(5, 2);
        let t = Instant::now();
        b.link.vanish();
        a.wait(15, "ann's leave", |e| n_presence(e) == 3);
        let took = t.elapsed();
        let ms = Duration::from_millis;
        // B's last heartbeat was at most one heartbeat before.
        assert!(took >= ms(NODE_TIMEOUT_MS - HEARTBEAT_MS - 500), "{took:?}");
        assert!(
            took <= ms(NODE_TIMEOUT_MS + HEARTBEAT_MS + 1500),
            "{took:?}"
        );
        assert_eq!(a.presence()[2], pres("r", "ann", false));
        // bob is still here, through A.
        assert_eq!(a.who("r"), ["bob"]);
        a.collect();
        assert_eq!(a.presence().len(), 3);
        let mut r = redis.client(&redis.url());
        assert_eq!(int(r.call(&[b"ZCARD", b"x:lives"]).unwrap()), 1);
    }

    #[test]
    fn a_dropped_link_removes_its_presence_at_once() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "q");
        let mut b = Node::up(redis.url(), "q");
        let joined = Answer::Joined { evict: false };
        assert_eq!(b.join("r", "ann", 4, false), joined);
        assert_eq!(b.join("r", "bob", 4, false), joined);
        assert_eq!(a.join("r", "bob", 4, false), joined);
        a.wait_presence(5, 2);
        let t = Instant::now();
        drop(b);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        a.wait(3, "ann's leave", |e| n_presence(e) == 3);
        // Long before the other nodes would have found it dead.
        let ms = Duration::from_millis;
        assert!(t.elapsed() < ms(NODE_TIMEOUT_MS - HEARTBEAT_MS - 500));
        assert_eq!(a.presence()[2], pres("r", "ann", false));
        assert_eq!(a.who("r"), ["bob"]);
        let mut r = redis.client(&redis.url());
        let lives = strings(r.call(&[b"ZRANGE", b"q:lives", b"0", b"-1"]).unwrap());
        assert_eq!(lives, [a.life()]);
    }

    #[test]
    fn a_node_found_dead_comes_back_with_a_new_life() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up_timed(redis.url(), "z", FAST);
        let mut r = redis.client(&redis.url());
        let joined = Answer::Joined { evict: false };
        assert_eq!(a.join("r", "ann", 4, false), joined);
        assert_eq!(a.join("r2", "ann", 4, false), joined);
        a.wait_presence(5, 2);
        let old = a.life();
        // Being removed behind its back, as another node does after a
        // stall: one room in this run (a budget of 1), the rest later.
        let script = format!("{PRESENCE_PRELUDE}{FAREWELL_SCRIPT}");
        let mut args: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), b"1", b"z:lives"];
        args.extend([&b"z"[..], b"z:0:msgs", b"-", b"600", b"86400", b"", b"1"]);
        args.push(old.as_bytes());
        assert_eq!(int(r.call(&args).unwrap()), 0);
        a.wait_presence(5, 3);
        let score = r.call(&[b"ZSCORE", b"z:lives", old.as_bytes()]).unwrap();
        assert_eq!(bulk(&score), b"0", "being removed");
        // Counted under no life: refused.
        assert_eq!(a.join("r", "bob", 4, false), Answer::Unavailable);
        // Its heartbeat finds out (and does not bring it back): down, and
        // up with a new life, whose first heartbeat removes the rest.
        a.wait(5, "Down and Up", |e| {
            e.iter()
                .skip_while(|e| !is_down(e))
                .any(|e| *e == LinkEvent::Up)
        });
        assert_ne!(a.life(), old);
        a.wait_presence(5, 4);
        let mut left = a.presence().split_off(2);
        left.sort();
        assert_eq!(left, [pres("r", "ann", false), pres("r2", "ann", false)]);
        let lives = strings(r.call(&[b"ZRANGE", b"z:lives", b"0", b"-1"]).unwrap());
        assert_eq!(lives, [a.life()]);
        assert_eq!(a.who("r"), Vec::<String>::new());
        assert_eq!(a.join("r", "bob", 4, false), joined);
        assert_eq!(a.who("r"), ["bob"]);
    }

    #[test]
    fn a_big_dead_life_is_removed_over_several_heartbeats() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up_timed(redis.url(), "l", FAST);
        let mut b = Node::up_timed(redis.url(), "l", FAST);
        let mut r = redis.client(&redis.url());
        // More than one run's REAP_BUDGET: 7000 rooms of one user each,
        // and 3000 users twice in one room, ten of them also on B.
        let mut mine: Vec<(String, String, u32)> = (0..7000)
            .map(|i| (format!("r{i}"), format!("u{i:04}"), 1))
            .collect();
        mine.extend((0..3000).map(|j| ("big".to_string(), format!("u{j:04}"), 2)));
        let theirs: Vec<(String, String, u32)> = (0..10)
            .map(|j| ("big".to_string(), format!("u{j:04}"), 1))
            .collect();
        let ask = Ask::Register {
            entries: mine,
            first: true,
        };
        assert_eq!(a.ask(ask), Answer::Done);
        let ask = Ask::Register {
            entries: theirs,
            first: true,
        };
        assert_eq!(b.ask(ask), Answer::Done);
        b.wait_presence(5, 10_000);
        let life = a.life();
        a.link.vanish();
        b.wait(10, "9990 leaves", |e| n_presence(e) == 10_000 + 9990);
        let deadline = Instant::now() + Duration::from_secs(5);
        while strings(r.call(&[b"ZRANGE", b"l:lives", b"0", b"-1"]).unwrap()) != [b.life()] {
            assert!(Instant::now() < deadline, "the life is still there");
            thread::sleep(Duration::from_millis(20));
        }
        let leaves: Vec<_> = b.presence().split_off(10_000);
        assert!(leaves.iter().all(|(_, _, joined)| !joined));
        assert_eq!(
            leaves.iter().filter(|(room, ..)| room == "big").count(),
            2990
        );
        let kept: Vec<String> = (0..10).map(|j| format!("u{j:04}")).collect();
        assert_eq!(b.who("big"), kept);
        assert_eq!(b.who("r5"), Vec::<String>::new());
        for kind in ["life", "lifeusers"] {
            let key = format!("l:{kind}:{life}");
            assert_eq!(int(r.call(&[b"EXISTS", key.as_bytes()]).unwrap()), 0);
        }
        for key in ["l:uconn:u6999", "l:uconn:u0010", "l:pres:r0"] {
            assert_eq!(
                int(r.call(&[b"EXISTS", key.as_bytes()]).unwrap()),
                0,
                "{key}"
            );
        }
        let u3 = strings(r.call(&[b"HGETALL", b"l:uconn:u0003"]).unwrap());
        assert_eq!(u3, [b.life(), "1".into()]);
        assert_eq!(int(r.call(&[b"HLEN", b"l:pres:big"]).unwrap()), 10);
    }

    #[test]
    fn a_nodes_own_announcement_comes_after_its_answer() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up(redis.url(), "w");
        // Many at once: one batch, whose answers are read after all of
        // its commands ran, while the subscription hears them at once.
        let n = 300u64;
        for id in 1..=n {
            let ask = Ask::Join {
                room: format!("r{id}"),
                user: "ann".into(),
                max_per_user: 1000,
                may_evict: false,
            };
            a.link.ask(Query { id, ask });
        }
        for id in n + 1..=2 * n {
            let ask = Ask::Leave {
                room: format!("r{}", id - n),
                user: "ann".into(),
            };
            a.link.ask(Query { id, ask });
        }
        a.wait(10, "every answer and announcement", |e| {
            n_presence(e) == 2 * n as usize
                && e.iter()
                    .filter(|e| matches!(e, LinkEvent::Answer { .. }))
                    .count()
                    == 2 * n as usize
        });
        let mut answered = std::collections::HashSet::new();
        for e in &a.seen {
            match e {
                LinkEvent::Answer { id, answer } => {
                    assert_ne!(*answer, Answer::Unavailable);
                    answered.insert(*id);
                }
                LinkEvent::Presence { room, joined, .. } => {
                    let k: u64 = room[1..].parse().unwrap();
                    let id = if *joined { k } else { k + n };
                    assert!(answered.contains(&id), "{e:?} before its answer");
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_busy_publisher_does_not_starve_the_heartbeat() {
        let Some(redis) = Redis::start(&[]) else {
            return;
        };
        let mut a = Node::up_timed(redis.url(), "b", FAST);
        let mut b = Node::up_timed(redis.url(), "b", FAST);
        assert_eq!(
            a.join("r", "ann", 4, false),
            Answer::Joined { evict: false }
        );
        b.wait_presence(5, 1);
        // Keep A's queue full for several node timeouts.
        let t = Instant::now();
        let mut id = 0;
        while t.elapsed() < Duration::from_millis(FAST.timeout_ms * 4) {
            for _ in 0..500 {
                id += 1;
                a.publish(id, "flood", "x");
            }
            a.collect();
            b.collect();
            thread::sleep(Duration::from_millis(2));
        }
        a.wait(20, "the flood stored", |e| {
            n_stored(e) + a_refused(e) == usize::try_from(id).unwrap()
        });
        assert!(n_stored(&a.seen) > 1000, "{}", n_stored(&a.seen));
        thread::sleep(FAST.heartbeat * 2);
        b.collect();
        assert_eq!(b.presence(), [pres("r", "ann", true)]);
        assert_eq!(a.count(is_down), 0);
    }

    fn a_refused(e: &[LinkEvent]) -> usize {
        e.iter()
            .filter(|e| matches!(e, LinkEvent::Failed { .. }))
            .count()
    }

    #[test]
    fn held_events_wait_for_their_answer() {
        let sh = Shared {
            inner: Mutex::new(Inner::default()),
            cv: Condvar::new(),
            notify: Box::new(|| {}),
            settings: Arc::new(Settings {
                url: RedisUrl {
                    host: "127.0.0.1".into(),
                    port: 1,
                    db: 0,
                    user: None,
                    password: None,
                },
                addr: "test".into(),
                prefix: "p".into(),
                channel: "p:0:msgs".into(),
                keep: "1".into(),
                timing: Timing::CONTRACT,
                tag: "t".into(),
            }),
        };
        let join = |user: &str| LinkEvent::Presence {
            room: "r".into(),
            user: user.into(),
            joined: true,
        };
        let answer = |id| LinkEvent::Answer {
            id,
            answer: Answer::Done,
        };
        {
            let mut inner = sh.lock();
            inner.unanswered.extend([1, 2, 3]);
            inner.in_flight = 3;
        }
        let up = LinkEvent::Up;
        let heard = vec![
            (join("another node's"), None),
            (join("answered already"), Some(9)),
            (join("a"), Some(1)),
            (up.clone(), None),
            (join("b"), Some(2)),
            (join("c"), Some(3)),
        ];
        assert!(sh.push_events(heard));
        let events = |sh: &Shared| std::mem::take(&mut sh.lock().events);
        assert_eq!(
            events(&sh),
            [join("another node's"), join("answered already")]
        );
        // Answered out of order: what waits for 1 still waits.
        sh.answered(vec![answer(2)]);
        assert_eq!(events(&sh), [answer(2)]);
        sh.release_held(Some(MAX_HOLD));
        assert_eq!(events(&sh), []);
        sh.answered(vec![answer(1)]);
        assert_eq!(events(&sh), [answer(1), join("a"), up, join("b")]);
        // Held too long: let go.
        sh.release_held(Some(Duration::ZERO));
        assert_eq!(events(&sh), [join("c")]);
        assert!(sh.lock().held_since.is_none());
        // A Down lets go of everything, after the answers it gives.
        sh.lock().unanswered.insert(4);
        assert!(sh.push_events(vec![(join("d"), Some(4))]));
        sh.down(Role::Commands, "gone", &[JobId::Query(4)]);
        let after = events(&sh);
        assert_eq!(after[..2], [answer_unavailable(4), join("d")]);
        assert!(matches!(after[2], LinkEvent::Down { .. }));
        assert!(sh.lock().unanswered.contains(&3), "answered separately");
    }

    fn answer_unavailable(id: u64) -> LinkEvent {
        LinkEvent::Answer {
            id,
            answer: Answer::Unavailable,
        }
    }

    #[test]
    fn digests_in_hex() {
        let d: Digest = std::array::from_fn(|i| u8::try_from(i * 8 + 1).unwrap());
        let h = hex(&d);
        assert_eq!(&h[..8], "01091119");
        assert_eq!(&h[56..], "e1e9f1f9");
        assert_eq!(unhex(&h), Some(d));
        assert_eq!(unhex(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(unhex(&"AB".repeat(32)), None);
        assert_eq!(unhex(&"ab".repeat(31)), None);
        assert_eq!(unhex(&format!("+{}", "a".repeat(63))), None);
        assert_eq!(unhex(&"gg".repeat(32)), None);
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
        // Joins and leaves.
        assert_eq!(
            parse_payload(br#"{"u":"a\/b","k":"join","r":"r \u00e9"}"#),
            Some(Payload::Presence {
                room: "r é".into(),
                user: "a/b".into(),
                joined: true,
                origin: None
            })
        );
        assert_eq!(
            parse_payload(br#"{"k":"leave","r":"r","u":"","o":"0123456789abcdef:42"}"#),
            Some(Payload::Presence {
                room: "r".into(),
                user: String::new(),
                joined: false,
                origin: Some("0123456789abcdef:42".into())
            })
        );
        for bad in [r#"{"k":"join","r":"r"}"#, r#"{"k":"leave","u":"x"}"#] {
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
