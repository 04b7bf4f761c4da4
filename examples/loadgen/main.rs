//! wsgate's load generator: three workloads over loopback, measured
//! against the server's own CPU time.
//!
//! ```text
//! cargo run --release --example loadgen -- WORKLOAD [OPTIONS]
//!
//!   handshake   authenticated upgrades per second (connect, GET /ws?token=,
//!               read the 101, hang up, again), `--concurrency` at a time
//!   broadcast   C clients in one room, S of them sending; deliveries per
//!               second, latency percentiles, and a loss/order check;
//!               closed loop (a window of messages per sender) or a fixed
//!               rate (`--rate` deliveries per second)
//!   idle        N authenticated idle connections from several 127.x
//!               source addresses, and the server's RSS per connection
//! ```
//!
//! Tokens are minted here from the shared secret (`--secret` or
//! `WSGATE_SECRET`) with wsgate's own signer, one user name per connection
//! (`u0`, `u1`, …) so per-user connection limits never bite. Every loop is
//! bounded in time and count, and only loopback targets are accepted.
//!
//! With `--server-pid PID`, the server's CPU time (user + system, all
//! threads) is read from `/proc/PID/stat` before and after each workload,
//! and every rate is also given per second of server CPU: the generator
//! shares the machine, so that is the figure that compares servers. The
//! generator reports its own CPU too: when the server is near 100 % of a
//! core and the generator is not, the server is the bottleneck.
//!
//! The last line of each run is `RESULT key=value …`, for scripts.

mod net;
mod stats;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wsgate::auth::jwt::{JwtConfig, Secret};

use net::{Handler, Phase, Pool, source_addr};
use stats::{CpuWindow, Histogram, rss_kib};

const USAGE: &str = "\
usage: loadgen handshake|broadcast|idle [OPTIONS]

common:
  --addr ADDR          server address, loopback only   [127.0.0.1:8080]
  --secret S           token secret (or WSGATE_SECRET)
  --server-pid PID     read the server's CPU time and RSS from /proc/PID
  --sources N          spread connections over N source addresses
                       127.0.0.2, 127.0.0.3, ... (0: the kernel's choice)
  --duration SECS      how long to load (handshake, broadcast)   [10]
handshake:
  --concurrency K      upgrades in flight                        [32]
  --close fin|rst      how the client hangs up after the 101     [fin]
  (--sources defaults to 64: a FIN leaves TIME_WAIT on the client)
broadcast:
  --clients C          connections in the room                   [1000]
  --senders S          how many of them send                     [10]
  --messages M         most messages per sender                  [100000]
  --window W           closed loop: unfinished messages per sender [16]
  --rate R             fixed rate instead: R deliveries/s in all [0 = off]
  --size BYTES         pad each line to this many bytes          [0]
  --room NAME                                                    [bench]
idle:
  --connections N                                                [15000]
  --concurrency K      connects in flight                        [256]
  --hold SECS          keep them open this long after measuring  [2]
  (--sources defaults to 16)
";

struct Args {
    workload: String,
    addr: SocketAddr,
    secret: Vec<u8>,
    server_pid: Option<String>,
    sources: Option<usize>,
    duration: f64,
    concurrency: Option<usize>,
    reset: bool,
    clients: usize,
    senders: usize,
    messages: usize,
    window: usize,
    rate: f64,
    size: usize,
    room: String,
    connections: usize,
    hold: f64,
    spin: bool,
}

fn parse_args() -> Result<Args, String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let mut a = Args {
        workload: String::new(),
        addr: "127.0.0.1:8080".parse().expect("literal"),
        secret: std::env::var("WSGATE_SECRET")
            .unwrap_or_default()
            .into_bytes(),
        server_pid: None,
        sources: None,
        duration: 10.0,
        concurrency: None,
        reset: false,
        clients: 1000,
        senders: 10,
        messages: 100_000,
        window: 16,
        rate: 0.0,
        size: 0,
        room: "bench".into(),
        connections: 15_000,
        hold: 2.0,
        spin: false,
    };
    fn num<T: std::str::FromStr>(p: &mut lexopt::Parser) -> Result<T, String> {
        let v = p.value().map_err(|e| e.to_string())?;
        let v = v.to_string_lossy();
        v.parse().map_err(|_| format!("not a number: {v}"))
    }
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("addr") => a.addr = num(&mut p)?,
            Long("secret") => {
                a.secret = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes()
            }
            Long("server-pid") => a.server_pid = Some(num::<u32>(&mut p)?.to_string()),
            Long("sources") => a.sources = Some(num(&mut p)?),
            Long("duration") => a.duration = num(&mut p)?,
            Long("concurrency") => a.concurrency = Some(num(&mut p)?),
            Long("close") => {
                a.reset = match p.value().map_err(|e| e.to_string())?.to_str() {
                    Some("fin") => false,
                    Some("rst") => true,
                    _ => return Err("--close takes fin or rst".into()),
                }
            }
            Long("clients") => a.clients = num(&mut p)?,
            Long("senders") => a.senders = num(&mut p)?,
            Long("messages") => a.messages = num(&mut p)?,
            Long("window") => a.window = num(&mut p)?,
            Long("rate") => a.rate = num(&mut p)?,
            Long("size") => a.size = num(&mut p)?,
            Long("room") => {
                a.room = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned()
            }
            Long("connections") => a.connections = num(&mut p)?,
            Long("hold") => a.hold = num(&mut p)?,
            Long("spin") => a.spin = true,
            Short('h') | Long("help") => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            Value(v) if a.workload.is_empty() => a.workload = v.to_string_lossy().into_owned(),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if !a.addr.ip().is_loopback() {
        return Err("only loopback targets (127.0.0.0/8, ::1)".into());
    }
    if a.secret.len() < 32 {
        return Err("the secret (--secret or WSGATE_SECRET) must be at least 32 bytes".into());
    }
    if !(0.1..=3600.0).contains(&a.duration) || !(0.0..=3600.0).contains(&a.hold) {
        return Err("--duration and --hold must be within an hour".into());
    }
    if a.senders == 0 || a.senders > a.clients || a.window == 0 {
        return Err("need 1 <= --senders <= --clients and --window >= 1".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.workload.as_str() {
        "handshake" => handshake(&args),
        "broadcast" => broadcast(&args),
        "idle" => idle(&args),
        other => Err(format!("unknown workload {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

// ----------------------------------------------------------------------
// Shared pieces

/// Mints tokens for users `u{i}` with wsgate's own signer.
struct Minter {
    jwt: JwtConfig,
    now_ms: u64,
}

impl Minter {
    fn new(secret: &[u8]) -> Result<Minter, String> {
        let secret = Secret::new(secret.to_vec(), None).map_err(|e| e.to_string())?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as u64;
        Ok(Minter {
            jwt: JwtConfig::new(vec![secret]),
            now_ms,
        })
    }

    /// A token for `u{i}` valid for two hours.
    fn token(&self, i: usize) -> String {
        self.jwt
            .issue(&format!("u{i}"), "member", self.now_ms, 2 * 3600)
    }
}

/// The source address for the `i`th connection, with `n` in rotation.
fn source(n: usize, i: usize) -> Option<IpAddr> {
    (n > 0).then(|| source_addr(i % n))
}

fn print_statuses(what: &str, statuses: &BTreeMap<u16, u64>) {
    if !statuses.is_empty() {
        let list: Vec<String> = statuses
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("no response: {n}")
                } else {
                    format!("{s}: {n}")
                }
            })
            .collect();
        println!("{what}: {}", list.join(", "));
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("na".into(), |v| format!("{v:.0}"))
}

// ----------------------------------------------------------------------
// handshake

#[derive(Default)]
struct HandshakeCounts {
    done: Vec<usize>,
    ok: u64,
    refused: BTreeMap<u16, u64>,
    closed: u64,
    hist: Option<Histogram>,
}

impl Handler for HandshakeCounts {
    fn on_open(&mut self, id: usize, latency: Duration) {
        self.ok += 1;
        if let Some(h) = &mut self.hist {
            h.record(latency.as_micros() as u64);
        }
        self.done.push(id);
    }
    fn on_refused(&mut self, _id: usize, status: u16) {
        *self.refused.entry(status).or_default() += 1;
    }
    fn on_closed(&mut self, _id: usize, _code: Option<u16>) {
        self.closed += 1;
    }
}

fn handshake(a: &Args) -> Result<(), String> {
    let concurrency = a.concurrency.unwrap_or(32).max(1);
    let sources = a.sources.unwrap_or(64);
    let minter = Minter::new(&a.secret)?;
    // A pool of users much larger than the concurrency, so that a user's
    // previous connection is long gone before its name comes round again.
    let users = 4096.max(concurrency * 4);
    let paths: Vec<String> = (0..users)
        .map(|i| format!("/ws?token={}&room=r{i}", minter.token(i)))
        .collect();
    let mut pool = Pool::new(a.addr, concurrency).map_err(|e| e.to_string())?;
    let mut counts = HandshakeCounts {
        hist: Some(Histogram::new()),
        ..Default::default()
    };
    println!(
        "handshake: {concurrency} in flight, {} for {}s, hang-up by {}, {sources} source addresses",
        a.addr,
        a.duration,
        if a.reset { "RST" } else { "FIN" }
    );
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let window = CpuWindow::start(a.server_pid.as_deref());
    let mut started = 0usize;
    let mut open_errors = 0u64;
    let mut last_error = String::new();
    // why: a hard cap on count as well as time.
    let max_started = 5_000_000;
    loop {
        let now = Instant::now();
        let loading = now < deadline && started < max_started;
        if loading {
            while pool.len() < concurrency {
                let i = started;
                started += 1;
                match pool.open(source(sources, i), &paths[i % users]) {
                    Ok(_) => {}
                    Err(e) => {
                        open_errors += 1;
                        last_error = e.to_string();
                        if open_errors > 1000 {
                            return Err(format!("too many connect errors: {last_error}"));
                        }
                        break;
                    }
                }
            }
        } else if pool.len() == 0 || now > deadline + Duration::from_secs(5) {
            break;
        }
        pool.poll_once(&mut counts, Some(Duration::from_millis(10)));
        for id in counts.done.drain(..) {
            pool.close(id, a.reset);
        }
    }
    let cpu = window.stop();
    let hist = counts.hist.take().expect("set above");
    let (per_wall, per_cpu) = cpu.rates(counts.ok);
    println!("{}", cpu.describe());
    println!(
        "completed {} upgrades: {per_wall:.0}/s, {} per server-CPU-second",
        counts.ok,
        fmt_opt(per_cpu)
    );
    println!("upgrade latency (connect to 101): {}", hist.summary_ms());
    print_statuses("refused or failed", &counts.refused);
    if open_errors > 0 {
        println!("connect errors: {open_errors} (last: {last_error})");
    }
    println!(
        "RESULT workload=handshake ok={} per_s={per_wall:.0} per_cpu_s={} server_cpu_pct={} gen_cpu_pct={:.0} other_cpu_pct={} p50_ms={:.3} p99_ms={:.3} failed={}",
        counts.ok,
        fmt_opt(per_cpu),
        fmt_opt(cpu.server.map(|s| 100.0 * s / cpu.wall)),
        100.0 * cpu.generator / cpu.wall,
        fmt_opt(cpu.others.map(|o| 100.0 * o / cpu.wall)),
        hist.quantile(0.5) as f64 / 1000.0,
        hist.quantile(0.99) as f64 / 1000.0,
        counts.refused.values().sum::<u64>() + open_errors,
    );
    Ok(())
}

// ----------------------------------------------------------------------
// broadcast

/// Per-run state of the broadcast check. Clients are pool ids `0..C`.
struct Broadcast {
    clients: usize,
    senders: usize,
    per_sender: usize,
    opened: usize,
    refused: BTreeMap<u16, u64>,
    closed: BTreeMap<String, u64>,
    /// Bitmap per client over message numbers `s * per_sender + q`.
    seen: Vec<Vec<u64>>,
    /// Highest sequence seen per (client, sender); -1 for none.
    last: Vec<i64>,
    /// Clients that got each message (for the closed-loop window).
    got: Vec<u32>,
    /// Per sender: messages every client got, counted from 0 up.
    done: Vec<usize>,
    /// Per message: latency of its first and of its last delivery (µs).
    first_lat: Vec<u32>,
    last_lat: Vec<u32>,
    deliveries: u64,
    duplicated: u64,
    reordered: u64,
    other: u64,
    other_samples: Vec<String>,
    hist: Histogram,
}

/// Parses `USER: m{s}.{q}.{t}[ padding]`.
fn parse_line(payload: &[u8]) -> Option<(usize, usize, u64)> {
    let at = payload.windows(2).position(|w| w == b": ")?;
    let line = payload.get(at + 2..)?;
    let line = line.strip_prefix(b"m")?;
    let mut nums = [0u64; 3];
    let mut k = 0;
    let mut any = false;
    for &b in line {
        match b {
            b'0'..=b'9' => {
                nums[k] = nums[k].checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                any = true;
            }
            b'.' if k < 2 && any => {
                k += 1;
                any = false;
            }
            b' ' => break,
            _ => return None,
        }
    }
    (k == 2 && any).then_some((nums[0] as usize, nums[1] as usize, nums[2]))
}

impl Handler for Broadcast {
    fn on_open(&mut self, _id: usize, _latency: Duration) {
        self.opened += 1;
    }
    fn on_refused(&mut self, _id: usize, status: u16) {
        *self.refused.entry(status).or_default() += 1;
    }
    fn on_closed(&mut self, _id: usize, code: Option<u16>) {
        let key = code.map_or("end of stream".into(), |c| c.to_string());
        *self.closed.entry(key).or_default() += 1;
    }
    fn on_text(&mut self, id: usize, payload: &[u8], now_us: u64) {
        let parsed =
            parse_line(payload).filter(|&(s, q, _)| s < self.senders && q < self.per_sender);
        let Some((s, q, t)) = parsed else {
            self.other += 1;
            if self.other_samples.len() < 3 {
                self.other_samples
                    .push(String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned());
            }
            return;
        };
        let g = s * self.per_sender + q;
        let Some(bits) = self.seen.get_mut(id) else {
            return;
        };
        let (word, bit) = (g / 64, 1u64 << (g % 64));
        if bits[word] & bit != 0 {
            self.duplicated += 1;
            return;
        }
        bits[word] |= bit;
        self.deliveries += 1;
        let last = &mut self.last[id * self.senders + s];
        if (q as i64) < *last {
            self.reordered += 1;
        } else {
            *last = q as i64;
        }
        let lat = now_us.saturating_sub(t);
        self.hist.record(lat);
        let lat = lat.min(u64::from(u32::MAX - 1)) as u32;
        self.first_lat[g] = self.first_lat[g].min(lat);
        self.last_lat[g] = self.last_lat[g].max(lat);
        self.got[g] += 1;
        if self.got[g] as usize == self.clients && q == self.done[s] {
            let base = s * self.per_sender;
            while self.done[s] < self.per_sender
                && self.got[base + self.done[s]] as usize == self.clients
            {
                self.done[s] += 1;
            }
        }
    }
}

fn broadcast(a: &Args) -> Result<(), String> {
    let (clients, senders) = (a.clients, a.senders);
    let sources = a.sources.unwrap_or(if clients > 20_000 { 8 } else { 0 });
    let per_sender = a.messages;
    let bits_per_client = (senders * per_sender).div_ceil(64);
    if clients as u128 * bits_per_client as u128 * 8 > 2 << 30 {
        return Err("--clients x --senders x --messages too large for the loss bitmaps".into());
    }
    let minter = Minter::new(&a.secret)?;
    let mut pool = Pool::new(a.addr, clients).map_err(|e| e.to_string())?;
    let mut st = Broadcast {
        clients,
        senders,
        per_sender,
        opened: 0,
        refused: BTreeMap::new(),
        closed: BTreeMap::new(),
        seen: vec![vec![0u64; bits_per_client]; clients],
        last: vec![-1; clients * senders],
        got: vec![0; senders * per_sender],
        done: vec![0; senders],
        first_lat: vec![u32::MAX; senders * per_sender],
        last_lat: vec![0; senders * per_sender],
        deliveries: 0,
        duplicated: 0,
        reordered: 0,
        other: 0,
        other_samples: Vec::new(),
        hist: Histogram::new(),
    };
    let mode = if a.rate > 0.0 {
        format!("fixed rate {} deliveries/s", a.rate)
    } else {
        format!("closed loop, window {} per sender", a.window)
    };
    println!(
        "broadcast: {clients} clients in room {:?}, {senders} senders, {mode}, {}s, {} server",
        a.room, a.duration, a.addr
    );

    // 1. Connect everyone, a few hundred at a time.
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 0;
    while st.opened < clients {
        if !st.refused.is_empty() || !st.closed.is_empty() {
            print_statuses("refused", &st.refused);
            return Err(format!("{} of {clients} clients connected", st.opened));
        }
        if Instant::now() > connect_deadline {
            return Err(format!("connect timed out: {} of {clients}", st.opened));
        }
        while next < clients && next - st.opened < 256 {
            let path = format!("/ws?token={}&room={}", minter.token(next), a.room);
            let id = pool
                .open(source(sources, next), &path)
                .map_err(|e| format!("connect {next}: {e}"))?;
            assert_eq!(id, next, "fresh pool ids count up from 0");
            next += 1;
        }
        pool.poll_once(&mut st, Some(Duration::from_millis(50)));
    }
    // Let join notices (sent while the room is small) drain.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        pool.poll_once(&mut st, Some(Duration::from_millis(50)));
    }
    let presence = st.other;
    st.other = 0;
    st.other_samples.clear();

    // 2. Load.
    let start = Instant::now();
    let stop_sending = start + Duration::from_secs_f64(a.duration);
    let window = CpuWindow::start(a.server_pid.as_deref());
    let mut sent = vec![0usize; senders];
    let mut total_sent = 0u64;
    let mut text = String::with_capacity(64 + a.size);
    // Fixed rate: one message every `interval` µs, senders in turn.
    let interval_us = if a.rate > 0.0 {
        clients as f64 * 1e6 / a.rate
    } else {
        0.0
    };
    let mut next_at_us = pool.now_us() as f64;
    let mut turn = 0usize;
    let mut sending = true;
    let mut drain_deadline = None;
    loop {
        let now = Instant::now();
        if sending && (now >= stop_sending || sent.iter().all(|&n| n >= per_sender)) {
            sending = false;
            drain_deadline = Some(now + Duration::from_secs(5));
        }
        if !st.closed.is_empty() && sending {
            sending = false;
            drain_deadline = Some(now + Duration::from_secs(2));
        }
        if sending {
            let now_us = pool.now_us();
            let line = |s: usize, q: usize, text: &mut String| {
                text.clear();
                let _ = write!(text, "m{s}.{q}.{now_us}");
                if text.len() < a.size {
                    text.push(' ');
                    while text.len() < a.size {
                        text.push('x');
                    }
                }
            };
            if interval_us > 0.0 {
                while next_at_us <= now_us as f64 {
                    let s = turn % senders;
                    turn += 1;
                    if sent[s] < per_sender {
                        line(s, sent[s], &mut text);
                        pool.queue_text(s, text.as_bytes());
                        pool.flush(s);
                        sent[s] += 1;
                        total_sent += 1;
                    }
                    next_at_us += interval_us;
                }
            } else {
                for (s, n) in sent.iter_mut().enumerate() {
                    let mut queued = false;
                    while *n < per_sender && *n - st.done[s] < a.window {
                        line(s, *n, &mut text);
                        pool.queue_text(s, text.as_bytes());
                        *n += 1;
                        total_sent += 1;
                        queued = true;
                    }
                    if queued {
                        pool.flush(s);
                    }
                }
            }
        } else if st.deliveries >= total_sent * clients as u64
            || drain_deadline.is_some_and(|d| now >= d)
        {
            break;
        }
        let timeout = if a.spin {
            Duration::ZERO
        } else if sending && interval_us > 0.0 {
            let wait = (next_at_us - pool.now_us() as f64).max(0.0);
            Duration::from_micros(wait as u64)
        } else {
            Duration::from_millis(10)
        };
        pool.poll_once(&mut st, Some(timeout));
    }
    let cpu = window.stop();

    // 3. Report.
    let expected = total_sent * clients as u64;
    let lost = expected.saturating_sub(st.deliveries);
    let incomplete = st
        .seen
        .iter()
        .filter(|bits| bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>() < total_sent)
        .count();
    let (per_wall, per_cpu) = cpu.rates(st.deliveries);
    println!("{}", cpu.describe());
    println!(
        "sent {total_sent} messages; {} deliveries: {per_wall:.0}/s, {} per server-CPU-second",
        st.deliveries,
        fmt_opt(per_cpu)
    );
    println!("latency (send to read): {}", st.hist.summary_ms());
    let (mut first, mut last) = (Histogram::new(), Histogram::new());
    for (s, &n) in sent.iter().enumerate() {
        for g in s * per_sender..s * per_sender + n {
            if st.first_lat[g] != u32::MAX {
                first.record(u64::from(st.first_lat[g]));
                last.record(u64::from(st.last_lat[g]));
            }
        }
    }
    println!("per message, first delivery: {}", first.summary_ms());
    println!("per message, last delivery:  {}", last.summary_ms());
    println!(
        "loss check: expected {expected}, lost {lost}, duplicated {}, reordered {}, clients missing something {incomplete}",
        st.duplicated, st.reordered
    );
    if presence > 0 {
        println!("(before the load: {presence} presence notices)");
    }
    if st.other > 0 {
        println!(
            "other text frames during the load: {} (e.g. {:?})",
            st.other, st.other_samples
        );
    }
    if !st.closed.is_empty() {
        println!("closed by the server: {:?}", st.closed);
    }
    if pool.protocol_errors > 0 {
        println!("protocol errors: {}", pool.protocol_errors);
    }
    println!(
        "RESULT workload=broadcast mode={} clients={clients} senders={senders} deliveries={} per_s={per_wall:.0} per_cpu_s={} server_cpu_pct={} gen_cpu_pct={:.0} other_cpu_pct={} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} lost={lost} duplicated={} reordered={} closed={}",
        if interval_us > 0.0 { "rate" } else { "closed" },
        st.deliveries,
        fmt_opt(per_cpu),
        fmt_opt(cpu.server.map(|s| 100.0 * s / cpu.wall)),
        100.0 * cpu.generator / cpu.wall,
        fmt_opt(cpu.others.map(|o| 100.0 * o / cpu.wall)),
        st.hist.quantile(0.5) as f64 / 1000.0,
        st.hist.quantile(0.99) as f64 / 1000.0,
        st.hist.quantile(0.999) as f64 / 1000.0,
        st.hist.max() as f64 / 1000.0,
        st.duplicated,
        st.reordered,
        st.closed.values().sum::<u64>(),
    );
    Ok(())
}

// ----------------------------------------------------------------------
// idle

#[derive(Default)]
struct IdleCounts {
    opened: usize,
    refused: BTreeMap<u16, u64>,
    closed: BTreeMap<String, u64>,
    texts: u64,
}

impl Handler for IdleCounts {
    fn on_open(&mut self, _id: usize, _latency: Duration) {
        self.opened += 1;
    }
    fn on_refused(&mut self, _id: usize, status: u16) {
        *self.refused.entry(status).or_default() += 1;
    }
    fn on_text(&mut self, _id: usize, _payload: &[u8], _now_us: u64) {
        self.texts += 1;
    }
    fn on_closed(&mut self, _id: usize, code: Option<u16>) {
        let key = code.map_or("end of stream".into(), |c| c.to_string());
        *self.closed.entry(key).or_default() += 1;
    }
}

fn idle(a: &Args) -> Result<(), String> {
    let n = a.connections;
    let concurrency = a.concurrency.unwrap_or(256).max(1);
    // why: 16 addresses keep each under wsgate's default per-address cap
    // (1,024) at 15,000 connections.
    let sources = a.sources.unwrap_or(16);
    let minter = Minter::new(&a.secret)?;
    let pid = a.server_pid.as_deref();
    let mut pool = Pool::new(a.addr, n).map_err(|e| e.to_string())?;
    let mut counts = IdleCounts::default();
    println!(
        "idle: {n} connections to {} from {sources} source addresses, {concurrency} connecting at a time",
        a.addr
    );
    let rss0 = pid.and_then(rss_kib);
    let window = CpuWindow::start(pid);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut started = 0;
    loop {
        let failed: u64 = counts.refused.values().sum();
        let settled = counts.opened + failed as usize;
        if settled >= n || Instant::now() > deadline {
            break;
        }
        while started < n && started - settled < concurrency {
            let path = format!("/ws?token={}&room={}", minter.token(started), a.room);
            if let Err(e) = pool.open(source(sources, started), &path) {
                return Err(format!(
                    "connect {started} (from {:?}): {e}",
                    source(sources, started)
                ));
            }
            started += 1;
        }
        pool.poll_once(&mut counts, Some(Duration::from_millis(20)));
    }
    let connect_cpu = window.stop();
    // Let the server finish writing 101s and notices, then measure.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        pool.poll_once(&mut counts, Some(Duration::from_millis(50)));
    }
    let rss1 = pid.and_then(rss_kib);
    let open_now = (0..n)
        .filter(|&id| pool.phase(id) == Some(Phase::Open))
        .count();
    println!("{}", connect_cpu.describe());
    println!(
        "open: {open_now} of {n} ({} upgrades/s while connecting)",
        (counts.opened as f64 / connect_cpu.wall) as u64
    );
    print_statuses("refused or failed", &counts.refused);
    let per_conn = match (rss0, rss1) {
        (Some(r0), Some(r1)) if open_now > 0 => {
            let per = (r1.saturating_sub(r0) as f64 * 1024.0) / open_now as f64;
            println!(
                "server RSS: {r0} KiB before, {r1} KiB with {open_now} open: {per:.0} bytes per connection"
            );
            Some(per)
        }
        _ => {
            println!("server RSS: unknown (no --server-pid)");
            None
        }
    };
    let hold = Instant::now() + Duration::from_secs_f64(a.hold);
    while Instant::now() < hold {
        pool.poll_once(&mut counts, Some(Duration::from_millis(100)));
    }
    if !counts.closed.is_empty() {
        println!("closed by the server while idle: {:?}", counts.closed);
    }
    println!("text frames received (presence notices): {}", counts.texts);
    let still_open = (0..n)
        .filter(|&id| pool.phase(id) == Some(Phase::Open))
        .count();
    for id in 0..n {
        pool.close(id, false);
    }
    if let Some(pid) = pid {
        std::thread::sleep(Duration::from_secs(2));
        if let Some(r2) = rss_kib(pid) {
            println!("server RSS 2 s after all closed: {r2} KiB");
        }
    }
    println!(
        "RESULT workload=idle connections={open_now} still_open_after_hold={still_open} rss_before_kib={} rss_after_kib={} bytes_per_conn={}",
        rss0.map_or("na".into(), |r| r.to_string()),
        rss1.map_or("na".into(), |r| r.to_string()),
        fmt_opt(per_conn),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse() {
        assert_eq!(parse_line(b"u1: m2.3.456"), Some((2, 3, 456)));
        assert_eq!(parse_line(b"u1: m2.3.456 xxxx"), Some((2, 3, 456)));
        assert_eq!(parse_line(b"System: u1 joined the chat"), None);
        assert_eq!(parse_line(b"u1: m2.3"), None);
        assert_eq!(parse_line(b"u1: m2..4"), None);
    }
}
