//! wsgate's load generator: five workloads over loopback, measured
//! against the server's own CPU time.
//!
//! ```text
//! cargo run --release --example loadgen -- WORKLOAD [OPTIONS]
//!
//!   handshake   authenticated upgrades per second (connect, GET /ws?token=,
//!               read the 101, hang up, again), `--concurrency` at a time;
//!               with `--tls-ca`, each one a full TLS handshake first
//!   broadcast   C clients in one room, S of them sending; deliveries per
//!               second, latency percentiles, and a loss/order check;
//!               closed loop (a window of messages per sender) or a fixed
//!               rate (`--rate` deliveries per second); TLS with `--tls-ca`
//!   idle        N authenticated idle connections from several 127.x
//!               source addresses, and the server's RSS per connection
//!   idle-tls    the same over TLS, one blocking client at a time
//!   burst       S senders each send M large messages (60 KiB) at the same
//!               moment into a room that R more readers and a few stalled
//!               readers (which never read) share; checks that every
//!               reader that keeps reading gets every message in order and
//!               is never closed, and reports what the stalled ones got
//! ```
//!
//! `burst` in detail: every connection is its own user and its own room
//! member, in JSON mode (`wsgate.json`; `--text` for text mode). The
//! stalled readers connect first, read their `101` and then nothing; then
//! the senders and the readers connect, and once the join notices have
//! settled each sender's M frames are queued and written one sender after
//! another as far as each socket takes them (all within a few ms), the
//! rest as the sockets drain. Each message is `b{sender}.{index}` padded
//! with `x` to `--size` KiB (60 → a 61,440-byte line, a 61,468-byte client
//! frame: under wsgate's default 64 KiB message limit). The senders and
//! the readers are the *fast readers*: they read as fast as one thread
//! can, and each must get all S×M messages, per sender in index order
//! without gaps or duplicates (and in JSON mode with the room's `seq`
//! rising), before `--timeout`; any close or reset before that counts
//! against the server. Then the stalled readers read what was held for
//! them: a close frame (`1013` expected), or the end of the stream, or
//! nothing (still open). wsgate's default message rate (20/s, bursts of
//! 40) does not bite at M <= 40; beyond that run it with
//! `--message-rate 0`. Exit status 3 when a fast reader missed anything,
//! was closed, or saw anything out of order.
//!
//! Tokens are minted here from the shared secret (`--secret` or
//! `WSGATE_SECRET`) with wsgate's own signer, one user name per connection
//! (`u0`, `u1`, …) so per-user connection limits never bite. Every loop is
//! bounded in time and count, and only loopback targets are accepted.
//!
//! With `--tls-ca FILE`, `handshake` and `broadcast` speak TLS (a
//! non-blocking rustls client per connection, the ring provider, TLS 1.3
//! or 1.2 as the server chooses) to a server whose certificate FILE
//! signed: wsgate with `--tls-cert`, or a proxy that terminates TLS in
//! front of it. Session resumption is off, so every connection of
//! `handshake` is a full handshake with its own key exchange; the
//! negotiated version, cipher suite and group are printed.
//!
//! With `--server-pid PID`, the server's CPU time (user + system, all
//! threads) is read from `/proc/PID/stat` before and after each workload,
//! and every rate is also given per second of server CPU: the generator
//! shares the machine, so that is the figure that compares servers.
//! `--server-pid PID,PID,…` sums the CPU time of several processes (e.g.
//! nginx's master and worker and the wsgate behind them: everything the
//! server side spends); RSS is read from the first. The generator
//! reports its own CPU too: when the server is near 100 % of a core and
//! the generator is not, the server is the bottleneck.
//!
//! The last line of each run is `RESULT key=value …`, for scripts. Exit
//! status: 0 done, 1 could not run, 2 bad options, 3 (`burst`) the
//! check failed.

mod net;
mod stats;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wsgate::auth::jwt::{JwtConfig, Secret};
use wsgate::auth::valid_room_name;

use net::{Handler, Phase, Pool, source_addr};
use stats::{CpuWindow, Histogram, peak_rss_kib, rss_kib};

const USAGE: &str = "\
usage: loadgen handshake|broadcast|idle|idle-tls|burst [OPTIONS]

common:
  --addr ADDR          server address, loopback only   [127.0.0.1:8080]
  --secret S           token secret (or WSGATE_SECRET)
  --server-pid PID     read the server's CPU time and RSS from /proc/PID;
                       PID,PID,... sums the CPU time of all of them
                       (RSS is the first one's)
  --tls-ca FILE        handshake, broadcast: speak TLS (rustls, no
                       session resumption: every connection a full
                       handshake), trusting the CA (PEM) in FILE
  --tls-verify full|none  none: accept the server's certificate and its
                       handshake signature without checking them (the
                       server does the same work; the generator saves
                       a chain check and a signature verification per
                       handshake, so that it is not the bottleneck) [full]
  --tls-suite aes128|aes256|chacha20  offer only this TLS 1.3 suite
                       (TLS13_AES_128_GCM_SHA256, ..._AES_256_GCM_SHA384,
                       ..._CHACHA20_POLY1305_SHA256); by default rustls'
                       order, AES-256-GCM first, which servers that follow
                       the client's order (rustls, nginx) pick
  --sources N          spread connections over N source addresses
                       127.0.0.2, 127.0.0.3, ... (0: the kernel's choice)
  --duration SECS      how long to load (handshake, broadcast)   [10]
handshake:
  --concurrency K      upgrades in flight                        [32]
  --close fin|rst      how the client hangs up after the 101     [fin]
  --bad-signature      sign the tokens with another secret (the server's
                       reversed): every upgrade is refused 401, and the
                       RESULT's refused_per_cpu_s is the figure
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
idle-tls (a wsgate with --tls-cert/--tls-key; one blocking rustls client
at a time, which is slower to open but measures the same thing):
  --tls-ca FILE        the CA (PEM) that signed the server's certificate
  --connections N                                                [15000]
  --hold SECS                                                    [2]
burst (everyone in one room; exit status 3 if a fast reader missed a
message, saw one out of order, or was closed):
  --senders N          connections that each send --messages     [32]
  --messages M         messages per sender, all at once          [1]
  --size KIB           each line is KIB x 1024 bytes (b{s}.{q} and
                       x padding); 60 keeps the client frame under
                       wsgate's default 64 KiB message limit      [60]
  --readers R          more connections that only read           [4]
  --stalled K          connections that never read after the 101;
                       read at the end to see how they were closed [1]
  --stalled-wait SECS  how long after the first send the stalled ones
                       stay unread; wsgate judges a queue over its limit
                       after --slow-consumer-timeout (5 s), so reading
                       them sooner lets them drain               [6]
  --timeout SECS       most time for the fast readers to get all  [30]
  --room NAME                                                    [burst-PID]
  --text               text mode (USER: LINE) instead of JSON mode
  (--sources defaults to one address per connection; with --messages
  over 40 run wsgate with --message-rate 0)
  RESULT: delivered and expected (S x M x (S + R)), in_order, fast_closed
  (fast readers closed before they had everything), stalled_closed, ms
  (first send until every fast reader had everything, na if never),
  last_delivery_ms, bytes (frame payload delivered), close_codes,
  server_cpu_s and peak_rss_kib (VmHWM, since the server started)
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
    /// `--bad-signature`: handshake tokens signed with another secret.
    bad_signature: bool,
    clients: usize,
    /// Defaults differ per workload (broadcast 10, burst 32).
    senders: Option<usize>,
    /// Defaults differ per workload (broadcast 100,000, burst 1).
    messages: Option<usize>,
    window: usize,
    rate: f64,
    /// Bytes for broadcast (default 0), KiB for burst (default 60).
    size: Option<f64>,
    /// Default `bench`, and `burst-PID` for burst.
    room: Option<String>,
    connections: usize,
    hold: f64,
    spin: bool,
    readers: usize,
    stalled: usize,
    stalled_wait: f64,
    timeout: f64,
    text_mode: bool,
    tls_ca: Option<std::path::PathBuf>,
    /// `--tls-verify none`: accept the server's certificate and handshake
    /// signature unchecked (the server's work is the same).
    tls_no_verify: bool,
    /// `--tls-suite`: offer only this TLS 1.3 cipher suite.
    tls_suite: Option<rustls::CipherSuite>,
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
        bad_signature: false,
        clients: 1000,
        senders: None,
        messages: None,
        window: 16,
        rate: 0.0,
        size: None,
        room: None,
        connections: 15_000,
        hold: 2.0,
        spin: false,
        readers: 4,
        stalled: 1,
        stalled_wait: 6.0,
        timeout: 30.0,
        text_mode: false,
        tls_ca: None,
        tls_no_verify: false,
        tls_suite: None,
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
            Long("server-pid") => {
                let v = p.value().map_err(|e| e.to_string())?;
                let v = v.to_string_lossy();
                let list: Vec<u32> = v
                    .split(',')
                    .map(|pid| pid.parse().map_err(|_| format!("not a PID: {pid}")))
                    .collect::<Result<_, _>>()?;
                a.server_pid = Some(
                    list.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
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
            Long("bad-signature") => a.bad_signature = true,
            Long("clients") => a.clients = num(&mut p)?,
            Long("senders") => a.senders = Some(num(&mut p)?),
            Long("messages") => a.messages = Some(num(&mut p)?),
            Long("window") => a.window = num(&mut p)?,
            Long("rate") => a.rate = num(&mut p)?,
            Long("size") => a.size = Some(num(&mut p)?),
            Long("room") => {
                a.room = Some(
                    p.value()
                        .map_err(|e| e.to_string())?
                        .to_string_lossy()
                        .into_owned(),
                )
            }
            Long("connections") => a.connections = num(&mut p)?,
            Long("hold") => a.hold = num(&mut p)?,
            Long("spin") => a.spin = true,
            Long("readers") => a.readers = num(&mut p)?,
            Long("stalled") => a.stalled = num(&mut p)?,
            Long("timeout") => a.timeout = num(&mut p)?,
            Long("stalled-wait") => a.stalled_wait = num(&mut p)?,
            Long("text") => a.text_mode = true,
            Long("tls-ca") => a.tls_ca = Some(p.value().map_err(|e| e.to_string())?.into()),
            Long("tls-suite") => {
                a.tls_suite = Some(match p.value().map_err(|e| e.to_string())?.to_str() {
                    Some("aes128") => rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                    Some("aes256") => rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                    Some("chacha20") => rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                    _ => return Err("--tls-suite takes aes128, aes256 or chacha20".into()),
                })
            }
            Long("tls-verify") => {
                a.tls_no_verify = match p.value().map_err(|e| e.to_string())?.to_str() {
                    Some("full") => false,
                    Some("none") => true,
                    _ => return Err("--tls-verify takes full or none".into()),
                }
            }
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
    if a.workload == "broadcast" {
        let senders = a.senders.unwrap_or(10);
        if senders == 0 || senders > a.clients || a.window == 0 {
            return Err("need 1 <= --senders <= --clients and --window >= 1".into());
        }
    }
    if a.room.as_deref().is_some_and(|r| !valid_room_name(r)) {
        return Err("--room: 1 to 64 of letters, digits, '.', '_' and '-'".into());
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
        "handshake" => handshake(&args).map(|()| ExitCode::SUCCESS),
        "broadcast" => broadcast(&args).map(|()| ExitCode::SUCCESS),
        "idle" => idle(&args).map(|()| ExitCode::SUCCESS),
        "idle-tls" => idle_tls(&args).map(|()| ExitCode::SUCCESS),
        "burst" => burst(&args),
        other => Err(format!("unknown workload {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
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

/// A rustls client configuration (ring provider, rustls' default
/// versions, suites and groups) that trusts the CA certificates in `ca`
/// (PEM). With `resume` false, session resumption is off: every
/// connection makes a full handshake.
fn tls_client_config(
    ca: &std::path::Path,
    resume: bool,
    verify: bool,
    suite: Option<rustls::CipherSuite>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut provider = rustls::crypto::ring::default_provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match suite {
        Some(want) => {
            provider.cipher_suites.retain(|s| s.suite() == want);
            &[&rustls::version::TLS13]
        }
        None => rustls::DEFAULT_VERSIONS,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    if !verify {
        let schemes = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes();
        config
            .dangerous()
            .set_certificate_verifier(std::sync::Arc::new(TrustAny(schemes)));
    }
    Ok(std::sync::Arc::new(config))
}

/// `--tls-verify none`: a verifier that accepts any certificate and any
/// handshake signature (loopback benchmarks only; the server still
/// sends its chain and signs the handshake).
#[derive(Debug)]
struct TrustAny(Vec<rustls::SignatureScheme>);

impl rustls::client::danger::ServerCertVerifier for TrustAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.clone()
    }
}

/// With `--tls-ca`, makes `pool` speak TLS to `a.addr` (verified as an IP
/// address name), without session resumption. Returns the RESULT field.
fn use_tls(a: &Args, pool: &mut Pool) -> Result<&'static str, String> {
    let Some(ca) = &a.tls_ca else {
        return Ok("off");
    };
    let name = rustls::pki_types::ServerName::from(a.addr.ip());
    pool.set_tls(
        tls_client_config(ca, false, !a.tls_no_verify, a.tls_suite)?,
        name,
    );
    Ok(if a.tls_no_verify { "unverified" } else { "on" })
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

/// Microseconds to a tenth, or `na`.
fn fmt_us(v: Option<f64>) -> String {
    v.map_or("na".into(), |v| format!("{v:.1}"))
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
    let minter = if a.bad_signature {
        let mut other = a.secret.clone();
        other.reverse();
        if other == a.secret {
            return Err("--bad-signature needs a secret that is not a palindrome".into());
        }
        Minter::new(&other)?
    } else {
        Minter::new(&a.secret)?
    };
    // A pool of users much larger than the concurrency, so that a user's
    // previous connection is long gone before its name comes round again.
    let users = 4096.max(concurrency * 4);
    let paths: Vec<String> = (0..users)
        .map(|i| format!("/ws?token={}&room=r{i}", minter.token(i)))
        .collect();
    let mut pool = Pool::new(a.addr, concurrency).map_err(|e| e.to_string())?;
    let tls = use_tls(a, &mut pool)?;
    let mut counts = HandshakeCounts {
        hist: Some(Histogram::new()),
        ..Default::default()
    };
    println!(
        "handshake: {concurrency} in flight, {} for {}s, hang-up by {}, {sources} source addresses{}",
        a.addr,
        a.duration,
        if a.reset { "RST" } else { "FIN" },
        match tls {
            "on" => ", TLS (full handshakes, no resumption)",
            "unverified" => ", TLS (full handshakes, no resumption, server unverified)",
            _ => "",
        }
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
    let refused: u64 = counts.refused.values().sum();
    let (_, refused_per_cpu) = cpu.rates(refused);
    // Server CPU per answered upgrade (opened or refused), user space and
    // kernel apart.
    let answered = (counts.ok + refused).max(1) as f64;
    let each_us = |s: Option<f64>| s.map(|s| (1e7 * s / answered).round() / 10.0);
    let (user_us, sys_us) = (
        each_us(cpu.server_user),
        each_us(
            cpu.server
                .zip(cpu.server_user)
                .map(|(all, user)| all - user),
        ),
    );
    println!("{}", cpu.describe());
    println!(
        "completed {} upgrades: {per_wall:.0}/s, {} per server-CPU-second",
        counts.ok,
        fmt_opt(per_cpu)
    );
    if refused > 0 {
        println!(
            "refused {refused}: {} per server-CPU-second",
            fmt_opt(refused_per_cpu)
        );
    }
    println!(
        "server CPU per answered upgrade: {} µs in user space, {} µs in the kernel",
        fmt_us(user_us),
        fmt_us(sys_us)
    );
    println!("upgrade latency (connect to 101): {}", hist.summary_ms());
    if let Some(t) = &pool.tls_negotiated {
        println!("TLS negotiated: {t}");
    }
    if pool.protocol_errors > 0 {
        println!("protocol or TLS errors: {}", pool.protocol_errors);
    }
    print_statuses("refused or failed", &counts.refused);
    if open_errors > 0 {
        println!("connect errors: {open_errors} (last: {last_error})");
    }
    println!(
        "RESULT workload=handshake tls={tls} ok={} per_s={per_wall:.0} per_cpu_s={} refused={refused} refused_per_cpu_s={} user_us={} sys_us={} server_cpu_pct={} server_cpu_each_s={} gen_cpu_pct={:.0} other_cpu_pct={} p50_ms={:.3} p99_ms={:.3} failed={}",
        counts.ok,
        fmt_opt(per_cpu),
        fmt_opt(refused_per_cpu),
        fmt_us(user_us),
        fmt_us(sys_us),
        fmt_opt(cpu.server.map(|s| 100.0 * s / cpu.wall)),
        cpu.each_list(","),
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
    let (clients, senders) = (a.clients, a.senders.unwrap_or(10));
    let sources = a.sources.unwrap_or(if clients > 20_000 { 8 } else { 0 });
    let per_sender = a.messages.unwrap_or(100_000);
    let size = a.size.unwrap_or(0.0).max(0.0) as usize;
    let room = a.room.as_deref().unwrap_or("bench");
    let bits_per_client = (senders * per_sender).div_ceil(64);
    if clients as u128 * bits_per_client as u128 * 8 > 2 << 30 {
        return Err("--clients x --senders x --messages too large for the loss bitmaps".into());
    }
    let minter = Minter::new(&a.secret)?;
    let mut pool = Pool::new(a.addr, clients).map_err(|e| e.to_string())?;
    let tls = use_tls(a, &mut pool)?;
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
        "broadcast: {clients} clients in room {:?}, {senders} senders, {mode}, {}s, {} server{}",
        room,
        a.duration,
        a.addr,
        match tls {
            "on" => ", TLS",
            "unverified" => ", TLS (server unverified)",
            _ => "",
        }
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
            let path = format!("/ws?token={}&room={room}", minter.token(next));
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
    let mut text = String::with_capacity(64 + size);
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
                if text.len() < size {
                    text.push(' ');
                    while text.len() < size {
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
    if let Some(t) = &pool.tls_negotiated {
        println!("TLS negotiated: {t}");
    }
    if pool.protocol_errors > 0 {
        println!("protocol or TLS errors: {}", pool.protocol_errors);
    }
    println!(
        "RESULT workload=broadcast tls={tls} mode={} clients={clients} senders={senders} deliveries={} per_s={per_wall:.0} per_cpu_s={} server_cpu_pct={} server_cpu_each_s={} gen_cpu_pct={:.0} other_cpu_pct={} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} lost={lost} duplicated={} reordered={} closed={}",
        if interval_us > 0.0 { "rate" } else { "closed" },
        st.deliveries,
        fmt_opt(per_cpu),
        fmt_opt(cpu.server.map(|s| 100.0 * s / cpu.wall)),
        cpu.each_list(","),
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

/// `idle-tls`: N authenticated idle WebSockets over TLS, opened one at a
/// time with a blocking rustls client (handshake, upgrade, read the
/// `101`), then the server's RSS per connection, as `idle` measures it.
fn idle_tls(a: &Args) -> Result<(), String> {
    use rustls::pki_types::ServerName;
    use std::io::{Read, Write};
    let ca = a.tls_ca.as_ref().ok_or("idle-tls needs --tls-ca FILE")?;
    // why: resumption as before (rustls' default); it does not change
    // what an open connection holds.
    let config = tls_client_config(ca, true, !a.tls_no_verify, a.tls_suite)?;
    let n = a.connections;
    let sources = a.sources.unwrap_or(16);
    let minter = Minter::new(&a.secret)?;
    let pid = a.server_pid.as_deref();
    let room = a.room.as_deref().unwrap_or("bench");
    println!(
        "idle-tls: {n} TLS connections to {} from {sources} source addresses",
        a.addr
    );
    let rss0 = pid.and_then(rss_kib);
    let window = CpuWindow::start(pid);
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut open = Vec::with_capacity(n);
    let mut failed = 0usize;
    for i in 0..n {
        if Instant::now() > deadline {
            break;
        }
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| e.to_string())?;
        if let Some(ip) = source(sources, i) {
            socket
                .bind(&SocketAddr::new(ip, 0).into())
                .map_err(|e| e.to_string())?;
        }
        if socket.connect(&a.addr.into()).is_err() {
            failed += 1;
            continue;
        }
        let tcp: std::net::TcpStream = socket.into();
        let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
        // why: the request follows the client's Finished at once; without
        // this, Nagle holds it for the server's delayed ACK (40 ms).
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(a.addr.ip().to_string()).map_err(|e| e.to_string())?;
        let conn = rustls::ClientConnection::new(std::sync::Arc::clone(&config), name)
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let request = format!(
            "GET /ws?token={}&room={room} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n",
            minter.token(i),
            a.addr
        );
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        let ok = tls.write_all(request.as_bytes()).is_ok()
            && loop {
                match tls.read(&mut byte) {
                    Ok(1) => {
                        head.push(byte[0]);
                        if head.ends_with(b"\r\n\r\n") {
                            break head.starts_with(b"HTTP/1.1 101 ");
                        }
                    }
                    _ => break false,
                }
            };
        if ok {
            open.push(tls);
        } else {
            failed += 1;
        }
    }
    let connect_cpu = window.stop();
    std::thread::sleep(Duration::from_secs(2));
    let rss1 = pid.and_then(rss_kib);
    println!("{}", connect_cpu.describe());
    println!("open: {} of {n} ({failed} failed)", open.len());
    let per_conn = match (rss0, rss1) {
        (Some(r0), Some(r1)) if !open.is_empty() => {
            let per = (r1.saturating_sub(r0) as f64 * 1024.0) / open.len() as f64;
            println!(
                "server RSS: {r0} KiB before, {r1} KiB with {} open: {per:.0} bytes per connection",
                open.len()
            );
            format!("{per:.0}")
        }
        _ => "na".into(),
    };
    std::thread::sleep(Duration::from_secs_f64(a.hold));
    println!(
        "RESULT workload=idle-tls connections={n} open={} failed={failed} rss_before_kib={} \
         rss_after_kib={} bytes_per_conn={per_conn}",
        open.len(),
        rss0.map_or("na".into(), |v| v.to_string()),
        rss1.map_or("na".into(), |v| v.to_string()),
    );
    Ok(())
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
            let path = format!(
                "/ws?token={}&room={}",
                minter.token(started),
                a.room.as_deref().unwrap_or("bench")
            );
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

// ----------------------------------------------------------------------
// burst

/// One text frame as a fast reader sees it.
#[derive(Debug, PartialEq)]
enum Incoming<'a> {
    /// A chat line: who sent it, the line, and the room's `seq` (JSON mode).
    Message {
        from: &'a [u8],
        text: &'a [u8],
        seq: Option<u64>,
    },
    /// A join notice.
    Join,
    /// A leave notice.
    Leave,
    /// An error reply (its code in JSON mode, its phrase in text mode).
    Error(String),
    /// Anything else: replies, unparsable frames.
    Other,
}

/// The fields of a JSON-mode frame that the burst check reads.
#[derive(serde::Deserialize)]
struct JsonEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default, borrow)]
    from: Option<&'a str>,
    #[serde(default, borrow)]
    text: Option<&'a str>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    code: Option<&'a str>,
}

/// Reads a server frame: JSON mode (`{"type":"message","from":…}`) or
/// text mode (`USER: LINE`, `System: …`).
fn parse_incoming(payload: &[u8], json: bool) -> Incoming<'_> {
    if json {
        // why: the padding never needs escaping, so every string borrows
        // from the frame; a frame that does not parse is "other".
        let Ok(ev) = serde_json::from_slice::<JsonEvent<'_>>(payload) else {
            return Incoming::Other;
        };
        return match (ev.kind, ev.from, ev.text) {
            ("message", Some(from), Some(text)) => Incoming::Message {
                from: from.as_bytes(),
                text: text.as_bytes(),
                seq: ev.seq,
            },
            ("join", ..) => Incoming::Join,
            ("leave", ..) => Incoming::Leave,
            ("error", ..) => Incoming::Error(ev.code.unwrap_or("unknown").to_string()),
            _ => Incoming::Other,
        };
    }
    if let Some(rest) = payload.strip_prefix(b"System: ") {
        return if rest.ends_with(b" joined the chat") {
            Incoming::Join
        } else if rest.ends_with(b" has left the chat") {
            Incoming::Leave
        } else if let Some(e) = rest.strip_prefix(b"error: ") {
            Incoming::Error(String::from_utf8_lossy(e).into_owned())
        } else {
            Incoming::Other
        };
    }
    let head = &payload[..payload.len().min(80)];
    match head.windows(2).position(|w| w == b": ") {
        Some(at) => Incoming::Message {
            from: &payload[..at],
            text: &payload[at + 2..],
            seq: None,
        },
        None => Incoming::Other,
    }
}

/// The line sender `s` sends as its `q`th message: `b{s}.{q}`, then a
/// space and `x`s up to `size` bytes.
fn burst_text(s: usize, q: usize, size: usize, out: &mut String) {
    out.clear();
    let _ = write!(out, "b{s}.{q}");
    if out.len() < size {
        out.push(' ');
        while out.len() < size {
            out.push('x');
        }
    }
}

/// The length of [`burst_text`]'s line for `(s, q)`.
fn burst_text_len(s: usize, q: usize, size: usize) -> usize {
    let digits = |mut n: usize| {
        let mut d = 1;
        while n >= 10 {
            n /= 10;
            d += 1;
        }
        d
    };
    (2 + digits(s) + digits(q)).max(size)
}

/// `(s, q)` from a line `b{s}.{q}[ padding]`.
fn parse_burst_text(text: &[u8]) -> Option<(usize, usize)> {
    let rest = text.strip_prefix(b"b")?;
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let (s, q) = std::str::from_utf8(&rest[..end]).ok()?.split_once('.')?;
    let num = |v: &str| -> Option<usize> {
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse().ok())
            .flatten()
    };
    Some((num(s)?, num(q)?))
}

/// `k` from a user name `u{k}`.
fn user_index(from: &[u8]) -> Option<usize> {
    let digits = from.strip_prefix(b"u")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// How a connection ended: a close code, or `eof`/`reset`/`error`.
fn ending(code: Option<u16>, stream_end: &mut Option<&'static str>) -> String {
    let how = stream_end.take();
    code.map_or_else(|| how.unwrap_or("eof").to_string(), |c| c.to_string())
}

/// The fast side of a burst: pool ids `0..senders` are the senders (user
/// `u{id}`), `senders..fast` the readers; every one of them reads.
struct Burst {
    json: bool,
    senders: usize,
    per_sender: usize,
    fast: usize,
    size: usize,
    opened: usize,
    refused: BTreeMap<u16, u64>,
    joins: u64,
    leaves: u64,
    last_text_us: u64,
    /// Per fast reader: a bit per message `s * per_sender + q`.
    seen: Vec<Vec<u64>>,
    /// Per (reader, sender): one past the highest index seen.
    high: Vec<u32>,
    /// Per (reader, sender): distinct indices seen.
    count: Vec<u32>,
    /// Per fast reader: distinct messages seen.
    got: Vec<usize>,
    /// Per fast reader: when it had all `senders * per_sender`.
    done_us: Vec<Option<u64>>,
    complete: usize,
    /// Per fast reader: the last room `seq` seen (JSON mode).
    last_seq: Vec<u64>,
    delivered: u64,
    bytes: u64,
    duplicated: u64,
    reordered: u64,
    seq_backwards: u64,
    corrupt: u64,
    samples: Vec<String>,
    errors: BTreeMap<String, u64>,
    other: u64,
    /// Per fast reader: how it ended, if it did.
    ended: Vec<Option<String>>,
    /// Fast readers that ended before they had everything.
    ended_early: usize,
    stream_end: Option<&'static str>,
    last_delivery_us: u64,
}

impl Burst {
    fn sample(&mut self, payload: &[u8]) {
        if self.samples.len() < 3 {
            self.samples
                .push(String::from_utf8_lossy(&payload[..payload.len().min(80)]).into_owned());
        }
    }

    /// (reader, sender) pairs where an index below the highest one seen
    /// never arrived.
    fn gaps(&self) -> usize {
        self.high
            .iter()
            .zip(&self.count)
            .filter(|(h, c)| c < h)
            .count()
    }

    fn in_order(&self) -> bool {
        self.duplicated == 0
            && self.reordered == 0
            && self.seq_backwards == 0
            && self.corrupt == 0
            && self.gaps() == 0
    }
}

impl Handler for Burst {
    fn on_open(&mut self, _id: usize, _latency: Duration) {
        self.opened += 1;
    }
    fn on_refused(&mut self, _id: usize, status: u16) {
        *self.refused.entry(status).or_default() += 1;
    }
    fn on_stream_end(&mut self, _id: usize, how: &'static str) {
        self.stream_end = Some(how);
    }
    fn on_closed(&mut self, id: usize, code: Option<u16>) {
        let how = ending(code, &mut self.stream_end);
        if let Some(slot) = self.ended.get_mut(id) {
            if slot.is_none() {
                *slot = Some(how);
                if self.done_us[id].is_none() {
                    self.ended_early += 1;
                }
            }
        }
    }
    fn on_text(&mut self, id: usize, payload: &[u8], now_us: u64) {
        self.last_text_us = now_us;
        if id >= self.fast {
            return;
        }
        let (from, text, seq) = match parse_incoming(payload, self.json) {
            Incoming::Message { from, text, seq } => (from, text, seq),
            Incoming::Join => {
                self.joins += 1;
                return;
            }
            Incoming::Leave => {
                self.leaves += 1;
                return;
            }
            Incoming::Error(code) => {
                *self.errors.entry(code).or_default() += 1;
                return;
            }
            Incoming::Other => {
                self.other += 1;
                return self.sample(payload);
            }
        };
        let parsed = parse_burst_text(text).filter(|&(s, q)| {
            s < self.senders
                && q < self.per_sender
                && user_index(from) == Some(s)
                && text.len() == burst_text_len(s, q, self.size)
        });
        let Some((s, q)) = parsed else {
            self.corrupt += 1;
            return self.sample(payload);
        };
        if let Some(seq) = seq {
            if seq <= self.last_seq[id] {
                self.seq_backwards += 1;
            }
            self.last_seq[id] = self.last_seq[id].max(seq);
        }
        let g = s * self.per_sender + q;
        let bits = &mut self.seen[id];
        let (word, bit) = (g / 64, 1u64 << (g % 64));
        if bits[word] & bit != 0 {
            self.duplicated += 1;
            return;
        }
        bits[word] |= bit;
        let pair = id * self.senders + s;
        if (q as u32) < self.high[pair] {
            self.reordered += 1;
        }
        self.high[pair] = self.high[pair].max(q as u32 + 1);
        self.count[pair] += 1;
        self.delivered += 1;
        self.bytes += payload.len() as u64;
        self.last_delivery_us = now_us;
        self.got[id] += 1;
        if self.got[id] == self.senders * self.per_sender {
            self.done_us[id] = Some(now_us);
            self.complete += 1;
        }
    }
}

/// The stalled readers: they read their `101` and then nothing until the
/// fast side is done.
struct Stalled {
    opened: usize,
    refused: BTreeMap<u16, u64>,
    messages: Vec<u64>,
    bytes: Vec<u64>,
    ended: Vec<Option<String>>,
    stream_end: Option<&'static str>,
    last_us: u64,
    json: bool,
}

impl Handler for Stalled {
    fn on_open(&mut self, _id: usize, _latency: Duration) {
        self.opened += 1;
    }
    fn on_refused(&mut self, _id: usize, status: u16) {
        *self.refused.entry(status).or_default() += 1;
    }
    fn on_stream_end(&mut self, _id: usize, how: &'static str) {
        self.stream_end = Some(how);
    }
    fn on_closed(&mut self, id: usize, code: Option<u16>) {
        let how = ending(code, &mut self.stream_end);
        if let Some(slot) = self.ended.get_mut(id) {
            slot.get_or_insert(how);
        }
    }
    fn on_text(&mut self, id: usize, payload: &[u8], now_us: u64) {
        self.last_us = now_us;
        if let Some(b) = self.bytes.get_mut(id) {
            *b += payload.len() as u64;
        }
        if let Incoming::Message { .. } = parse_incoming(payload, self.json) {
            if let Some(m) = self.messages.get_mut(id) {
                *m += 1;
            }
        }
    }
}

/// `code:count,…` (or `none`) for the RESULT line.
fn endings_list(ended: &[Option<String>]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for how in ended.iter().flatten() {
        *m.entry(how.clone()).or_default() += 1;
    }
    m
}

fn fmt_map(m: &BTreeMap<String, u64>, sep: &str, eq: &str) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}{eq}{v}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn burst(a: &Args) -> Result<ExitCode, String> {
    let senders = a.senders.unwrap_or(32);
    let per_sender = a.messages.unwrap_or(1);
    let size_kib = a.size.unwrap_or(60.0);
    let (readers, stalled) = (a.readers, a.stalled);
    if !(1..=1000).contains(&senders) || !(1..=100_000).contains(&per_sender) {
        return Err("burst: need 1 <= --senders <= 1000 and 1 <= --messages <= 100000".into());
    }
    if readers > 10_000 || stalled > 1000 {
        return Err("burst: at most 10000 --readers and 1000 --stalled".into());
    }
    if !(0.0..=16_384.0).contains(&size_kib) {
        return Err("burst: --size is in KiB, 0 to 16384".into());
    }
    if !(0.1..=3600.0).contains(&a.timeout) {
        return Err("--timeout must be within an hour".into());
    }
    let size = (size_kib * 1024.0).round() as usize;
    let fast = senders + readers;
    let conns = fast + stalled;
    let total = senders * per_sender;
    let sent_bytes = total as u128 * size as u128;
    if sent_bytes > 1 << 30 {
        return Err("burst: --senders x --messages x --size is over 1 GiB".into());
    }
    if fast as u128 * sent_bytes > 64 << 30 {
        return Err("burst: over 64 GiB of deliveries".into());
    }
    if fast as u128 * total.div_ceil(64) as u128 * 8 > 1 << 30 {
        return Err("burst: too many messages for the order bitmaps".into());
    }
    let json = !a.text_mode;
    let room = a
        .room
        .clone()
        .unwrap_or_else(|| format!("burst-{}", std::process::id()));
    // why: one source address per connection keeps every one of them
    // under the server's per-address upgrade rate (default bursts of 20).
    let sources = a.sources.unwrap_or(conns);
    let extra = if json {
        "Sec-WebSocket-Protocol: wsgate.json\r\n"
    } else {
        ""
    };
    let pid = a.server_pid.as_deref();
    let minter = Minter::new(&a.secret)?;

    // The frames, built first so that the sends start together.
    let mut frames: Vec<Vec<u8>> = Vec::with_capacity(total);
    let mut text = String::with_capacity(size + 32);
    for s in 0..senders {
        for q in 0..per_sender {
            burst_text(s, q, size, &mut text);
            let body = if json {
                format!(r#"{{"type":"message","text":"{text}"}}"#).into_bytes()
            } else {
                text.clone().into_bytes()
            };
            frames.push(body);
        }
    }
    let biggest = frames.iter().map(Vec::len).max().unwrap_or(0);
    println!(
        "burst: {senders} senders x {per_sender} message(s) of {size} bytes ({size_kib} KiB; client frames up to {biggest} bytes), \
         {readers} readers, {stalled} stalled, room {room:?}, {} mode, {} server, timeout {}s",
        if json { "JSON" } else { "text" },
        a.addr,
        a.timeout
    );
    println!(
        "fast readers: {fast} ({senders} senders + {readers} readers), each expecting {total} messages ({:.1} MB)",
        sent_bytes as f64 / 1e6
    );
    if biggest > 64 * 1024 {
        println!(
            "note: {biggest}-byte frames are over wsgate's default 64 KiB message limit (--max-message)"
        );
    }
    if per_sender > 40 {
        println!(
            "note: over 40 messages per sender trip wsgate's default message rate (20/s, bursts of 40): run it with --message-rate 0"
        );
    }

    // 1. The stalled readers first (in a pool of their own that is not
    //    polled again once they are open), then the fast side.
    let connect_deadline = Instant::now() + Duration::from_secs(30);
    let mut spool = Pool::new(a.addr, stalled).map_err(|e| e.to_string())?;
    let mut sst = Stalled {
        opened: 0,
        refused: BTreeMap::new(),
        messages: vec![0; stalled],
        bytes: vec![0; stalled],
        ended: vec![None; stalled],
        stream_end: None,
        last_us: 0,
        json,
    };
    for j in 0..stalled {
        let path = format!("/ws?token={}&room={room}", minter.token(fast + j));
        let id = spool
            .open_with(source(sources, fast + j), &path, extra)
            .map_err(|e| format!("connect stalled {j}: {e}"))?;
        assert_eq!(id, j, "fresh pool ids count up from 0");
    }
    while sst.opened < stalled {
        if !sst.refused.is_empty() || sst.ended.iter().any(Option::is_some) {
            print_statuses("refused", &sst.refused);
            return Err(format!(
                "{} of {stalled} stalled readers connected",
                sst.opened
            ));
        }
        if Instant::now() > connect_deadline {
            return Err(format!(
                "connect timed out: {} of {stalled} stalled readers",
                sst.opened
            ));
        }
        spool.poll_once(&mut sst, Some(Duration::from_millis(50)));
    }
    let mut pool = Pool::new(a.addr, fast).map_err(|e| e.to_string())?;
    let words = total.div_ceil(64);
    let mut st = Burst {
        json,
        senders,
        per_sender,
        fast,
        size,
        opened: 0,
        refused: BTreeMap::new(),
        joins: 0,
        leaves: 0,
        last_text_us: 0,
        seen: vec![vec![0u64; words]; fast],
        high: vec![0; fast * senders],
        count: vec![0; fast * senders],
        got: vec![0; fast],
        done_us: vec![None; fast],
        complete: 0,
        last_seq: vec![0; fast],
        delivered: 0,
        bytes: 0,
        duplicated: 0,
        reordered: 0,
        seq_backwards: 0,
        corrupt: 0,
        samples: Vec::new(),
        errors: BTreeMap::new(),
        other: 0,
        ended: vec![None; fast],
        ended_early: 0,
        stream_end: None,
        last_delivery_us: 0,
    };
    let mut next = 0;
    while st.opened < fast {
        if !st.refused.is_empty() || st.ended.iter().any(Option::is_some) {
            print_statuses("refused", &st.refused);
            return Err(format!("{} of {fast} fast readers connected", st.opened));
        }
        if Instant::now() > connect_deadline {
            return Err(format!("connect timed out: {} of {fast}", st.opened));
        }
        while next < fast && next - st.opened < 256 {
            let path = format!("/ws?token={}&room={room}", minter.token(next));
            let id = pool
                .open_with(source(sources, next), &path, extra)
                .map_err(|e| format!("connect {next}: {e}"))?;
            assert_eq!(id, next, "fresh pool ids count up from 0");
            next += 1;
        }
        pool.poll_once(&mut st, Some(Duration::from_millis(50)));
    }

    // 2. Let the join notices settle: each connection hears its own join
    //    and every later one, F(F+1)/2 in all on the fast side while the
    //    room is within the server's presence limit; otherwise wait for
    //    300 ms without a frame. At most 5 s.
    let want_joins = (fast * (fast + 1) / 2) as u64;
    let settle_end = Instant::now() + Duration::from_secs(5);
    st.last_text_us = pool.now_us();
    while st.joins < want_joins
        && Instant::now() < settle_end
        && pool.now_us().saturating_sub(st.last_text_us) < 300_000
    {
        pool.poll_once(&mut st, Some(Duration::from_millis(20)));
    }
    let presence = (st.joins, st.other);
    st.other = 0;
    st.samples.clear();

    // 3. The burst: every sender's frames queued, then written one sender
    //    after another as far as each socket takes them; the rest goes as
    //    the sockets drain, while everyone reads.
    let rss_before = pid.and_then(rss_kib);
    for (g, body) in frames.iter().enumerate() {
        pool.queue_text(g / per_sender, body);
    }
    drop(frames);
    let window = CpuWindow::start(pid);
    let t0 = pool.now_us();
    for s in 0..senders {
        pool.flush(s);
    }
    let handed_us = pool.now_us() - t0;
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout);
    while st.complete + st.ended_early < fast && Instant::now() < deadline {
        pool.poll_once(&mut st, Some(Duration::from_millis(10)));
    }
    let cpu = window.stop();
    let rss_after = pid.and_then(rss_kib);

    // 4. The stalled readers read at last: a close frame, or the end of
    //    the stream, after whatever the kernel and the server still held.
    //    Not before --stalled-wait (reading sooner would drain them); then
    //    at most 10 s, or 1 s without anything arriving.
    let wait_until = Instant::now()
        + Duration::from_secs_f64(a.stalled_wait)
            .saturating_sub(Duration::from_micros(pool.now_us().saturating_sub(t0)));
    while Instant::now() < wait_until {
        // Nothing is read from the stalled readers meanwhile.
        std::thread::sleep(Duration::from_millis(20));
    }
    let drain_end = Instant::now() + Duration::from_secs(10);
    for j in 0..stalled {
        spool.read_now(j, &mut sst);
    }
    let mut quiet_since = Instant::now();
    let mut seen_bytes = sst.bytes.iter().sum::<u64>();
    while sst.ended.iter().any(Option::is_none) {
        let now = Instant::now();
        if now >= drain_end || now - quiet_since >= Duration::from_secs(1) {
            break;
        }
        spool.poll_once(&mut sst, Some(Duration::from_millis(50)));
        let b = sst.bytes.iter().sum::<u64>();
        if b != seen_bytes {
            seen_bytes = b;
            quiet_since = Instant::now();
        }
    }
    let peak_rss = pid.and_then(peak_rss_kib);

    // 5. Report.
    let expected = (total * fast) as u64;
    let in_order = st.in_order();
    let ms = |us: u64| us.saturating_sub(t0) as f64 / 1000.0;
    let mut done: Vec<u64> = st.done_us.iter().flatten().copied().collect();
    done.sort_unstable();
    let all_ms = (st.complete == fast).then(|| ms(*done.last().expect("fast >= 1")));
    let stalled_closed = sst.ended.iter().filter(|e| e.is_some()).count();
    let codes = endings_list(&st.ended);
    println!("{}", cpu.describe());
    println!(
        "before the burst: {} join notices (of {want_joins} while presence is on), {} other frames",
        presence.0, presence.1
    );
    println!(
        "first send to last frame handed to the kernel or queued: {:.3} ms",
        handed_us as f64 / 1000.0
    );
    println!(
        "delivered {} of {expected} expected ({} per fast reader), {:.1} MB of frame payload",
        st.delivered,
        total,
        st.bytes as f64 / 1e6
    );
    match all_ms {
        Some(t) => println!(
            "every fast reader had everything {t:.1} ms after the first send (first {:.1}, median {:.1})",
            ms(done[0]),
            ms(done[done.len() / 2])
        ),
        None => println!(
            "{} of {fast} fast readers had everything{}; last delivery {:.1} ms after the first send",
            st.complete,
            done.last().map_or(String::new(), |&d| format!(
                " (the last at {:.1} ms)",
                ms(d)
            )),
            ms(st.last_delivery_us)
        ),
    }
    println!(
        "order: {} (per sender: {} reordered, {} duplicated, {} reader/sender pairs with a gap; room seq backwards {}; malformed {})",
        if in_order {
            "every fast reader in order"
        } else {
            "BROKEN"
        },
        st.reordered,
        st.duplicated,
        st.gaps(),
        st.seq_backwards,
        st.corrupt
    );
    println!(
        "fast readers closed before they had everything: {} of {fast}; how fast readers ended: {}",
        st.ended_early,
        fmt_map(&codes, ", ", ": ")
    );
    // Grouped by role and ending: how many, and how far they got.
    let mut early: BTreeMap<(&str, &str), (usize, usize, usize)> = BTreeMap::new();
    for (i, e) in st.ended.iter().enumerate() {
        if let (Some(how), None) = (e, st.done_us[i]) {
            let who = if i < senders { "senders" } else { "readers" };
            let g = early
                .entry((who, how.as_str()))
                .or_insert((0, usize::MAX, 0));
            *g = (g.0 + 1, g.1.min(st.got[i]), g.2.max(st.got[i]));
        }
    }
    for ((who, how), (n, lo, hi)) in &early {
        let got = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}-{hi}")
        };
        println!("  {n} {who} ended {how} after {got} of {total} messages");
    }
    if !st.errors.is_empty() {
        println!("error replies: {}", fmt_map(&st.errors, ", ", ": "));
        if st.errors.keys().any(|k| k.contains("rate")) {
            println!("(the server's per-connection message rate: run it with --message-rate 0)");
        }
    }
    if st.leaves > 0 {
        println!("leave notices during the burst: {}", st.leaves);
    }
    if st.other > 0 || !st.samples.is_empty() {
        println!(
            "other frames during the burst: {} (e.g. {:?})",
            st.other, st.samples
        );
    }
    for j in 0..stalled {
        let what = match &sst.ended[j] {
            Some(how) if how.parse::<u16>().is_ok() => format!("closed {how}"),
            Some(how) => format!("closed ({how}, no close frame)"),
            None => "still open".into(),
        };
        println!(
            "stalled reader u{}: {what}; {} messages, {:.1} MB held for it and read at the end",
            fast + j,
            sst.messages[j],
            sst.bytes[j] as f64 / 1e6
        );
    }
    let kib = |v: Option<u64>| v.map_or("na".to_string(), |v| v.to_string());
    if pid.is_some() {
        println!(
            "server RSS: {} KiB before the burst, {} KiB after; peak since the server started (VmHWM) {} KiB",
            kib(rss_before),
            kib(rss_after),
            kib(peak_rss)
        );
    }
    if pool.protocol_errors > 0 {
        println!("protocol errors: {}", pool.protocol_errors);
    }
    println!(
        "RESULT workload=burst mode={} senders={senders} size={size} messages={per_sender} readers={readers} stalled={stalled} \
         delivered={} expected={expected} in_order={in_order} fast_closed={} stalled_closed={stalled_closed} ms={} \
         last_delivery_ms={:.1} bytes={} close_codes={} server_cpu_s={} gen_cpu_pct={:.0} other_cpu_pct={} peak_rss_kib={}",
        if json { "json" } else { "text" },
        st.delivered,
        st.ended_early,
        all_ms.map_or("na".into(), |t| format!("{t:.1}")),
        ms(st.last_delivery_us.max(t0)),
        st.bytes,
        fmt_map(&codes, ",", ":"),
        cpu.server.map_or("na".into(), |s| format!("{s:.3}")),
        100.0 * cpu.generator / cpu.wall,
        fmt_opt(cpu.others.map(|o| 100.0 * o / cpu.wall)),
        kib(peak_rss),
    );
    let pass = st.delivered >= expected && st.ended_early == 0 && in_order;
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
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

    #[test]
    fn burst_lines() {
        let mut t = String::new();
        for (s, q, size) in [(0, 0, 0), (3, 12, 5), (3, 12, 6), (31, 5, 61_440)] {
            burst_text(s, q, size, &mut t);
            assert_eq!(t.len(), burst_text_len(s, q, size), "{s} {q} {size}");
            assert_eq!(parse_burst_text(t.as_bytes()), Some((s, q)));
        }
        assert_eq!(parse_burst_text(b"b3.x"), None);
        assert_eq!(parse_burst_text(b"b+3.1"), None);
        assert_eq!(user_index(b"u17"), Some(17));
        assert_eq!(user_index(b"alice"), None);
    }

    #[test]
    fn burst_frames_parse() {
        let msg = br#"{"from":"u2","room":"r","seq":9,"text":"b2.0 xx","ts":1,"type":"message"}"#;
        assert_eq!(
            parse_incoming(msg, true),
            Incoming::Message {
                from: b"u2",
                text: b"b2.0 xx",
                seq: Some(9)
            }
        );
        assert_eq!(
            parse_incoming(br#"{"type":"join","room":"r","user":"u1"}"#, true),
            Incoming::Join
        );
        assert_eq!(
            parse_incoming(br#"{"type":"leave","room":"r","user":"u1"}"#, true),
            Incoming::Leave
        );
        assert_eq!(
            parse_incoming(
                br#"{"type":"error","code":"rate_limited","detail":"x"}"#,
                true
            ),
            Incoming::Error("rate_limited".into())
        );
        assert_eq!(parse_incoming(b"not json", true), Incoming::Other);
        assert_eq!(
            parse_incoming(b"u2: b2.0 xx", false),
            Incoming::Message {
                from: b"u2",
                text: b"b2.0 xx",
                seq: None
            }
        );
        assert_eq!(
            parse_incoming(b"System: u1 joined the chat", false),
            Incoming::Join
        );
        assert_eq!(
            parse_incoming(b"System: u1 has left the chat", false),
            Incoming::Leave
        );
        assert_eq!(
            parse_incoming(b"System: error: rate limit exceeded", false),
            Incoming::Error("rate limit exceeded".into())
        );
    }
}
