//! What the handlers decide with: the configuration, the token verifier,
//! the session and ticket stores, the per-address rate limits, the
//! counters behind `/metrics` and an embedding program's hooks.
//!
//! None of it is about one connection or the connections together (that
//! is the registry), so a handler borrows the context and, at most, the
//! one WebSocket it works on (and the rooms, to read: `/who`); what it
//! decides it returns to the server, which carries it out on the registry
//! and the queues.

use std::net::SocketAddr;

use super::peer::Peer;

use log::debug;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tungstenite::protocol::WebSocketConfig;

use super::RETRY_AFTER_SECS;
use super::authenticate::Authenticate;
use super::limits::{AddrLoad, IpBuckets};
use super::metrics::Metrics;
use super::observe::Observe;
use super::tickets::Tickets;
use super::time;
use super::time::Time;
use crate::auth::jwt::{JwtConfig, Secret};
use crate::auth::session::SessionStore;
use crate::config::Config;
use crate::http::upgrade::{Reject, UpgradePolicy};

/// The handlers' shared context (see the module's text).
pub(super) struct Context {
    pub config: Config,
    pub jwt: JwtConfig,
    pub sessions: SessionStore,
    pub tickets: Tickets,
    /// An embedding program's authenticators, asked first on every
    /// upgrade.
    pub authenticators: Vec<Box<dyn Authenticate>>,
    /// An embedding program's observers, told of joins, leaves and lines.
    pub observers: Vec<Box<dyn Observe>>,
    pub upgrade_ips: IpBuckets,
    /// TLS handshakes per address (only with `Config::tls`).
    pub tls_ips: IpBuckets,
    pub failed_logins: IpBuckets,
    pub metrics: Metrics,
    /// tungstenite's settings for every WebSocket.
    pub ws_config: WebSocketConfig,
    /// Set by `Server::handle_shutdown`: refuse what is new.
    pub shutting_down: bool,
    /// Where this process's room epochs start: random, so that a
    /// restarted server's epochs differ from the last one's.
    pub epoch_base: u64,
    /// With `--redis`: the link's state and the publishes in flight.
    pub cluster: Option<super::cluster::Cluster>,
}

impl Context {
    /// The context for `config`.
    ///
    /// # Panics
    /// When `config.secrets` is empty or holds a secret shorter than 32
    /// bytes: `Config::validate` refuses both.
    pub fn new(config: Config) -> Context {
        let secrets = config
            .secrets
            .iter()
            .map(|s| Secret::new(s.0.clone(), None).expect("secrets are validated at start-up"))
            .collect::<Vec<_>>();
        assert!(!secrets.is_empty(), "at least one secret");
        let mut jwt = JwtConfig::new(secrets);
        jwt.issuer = config.issuer.clone();
        jwt.audience = config.audience.clone();
        jwt.leeway_secs = config.token_leeway.as_secs();
        let limits = &config.limits;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_bytes)
            // why: tungstenite writes into our queue, which never blocks;
            // its own buffer should pass every byte straight through.
            .write_buffer_size(0)
            .max_write_buffer_size(usize::MAX)
            .max_message_size(Some(limits.max_message_bytes))
            .max_frame_size(Some(limits.max_message_bytes));
        // why: the core's randomness (session ids, tickets) comes from one
        // generator seeded by the config or else by the OS, so that a test
        // or a fuzz input with a fixed seed replays exactly.
        let mut seed = match config.random_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_seed(crate::auth::os_seed()),
        };
        let sessions = SessionStore::new(
            time::millis(config.session_ttl),
            time::millis(config.session_idle),
            limits.max_sessions_per_user,
            StdRng::from_rng(&mut seed),
        );
        let mut epoch_base = [0u8; 8];
        seed.fill_bytes(&mut epoch_base);
        Context {
            epoch_base: u64::from_le_bytes(epoch_base),
            cluster: (cfg!(feature = "redis") && config.redis.is_some()).then(Default::default),
            jwt,
            sessions,
            tickets: Tickets::new(limits.max_tickets, StdRng::from_rng(&mut seed)),
            authenticators: Vec::new(),
            observers: Vec::new(),
            upgrade_ips: IpBuckets::new(limits.upgrade_rate, limits.max_tracked_ips),
            tls_ips: IpBuckets::new(
                limits.tls_handshake_rate.filter(|_| config.tls.is_some()),
                limits.max_tracked_ips,
            ),
            failed_logins: IpBuckets::new(limits.failed_login_rate, limits.max_tracked_ips),
            metrics: Metrics::default(),
            ws_config,
            shutting_down: false,
            config,
        }
    }

    /// Why a connection just accepted from `peer` may not be held, if it
    /// may not: the server holds `conns` connections, and `load` is what
    /// the peer's address holds. A refusal is counted and logged (at
    /// debug: a flood of them would flood the log; `/metrics` counts them).
    pub fn accept_refusal(
        &mut self,
        peer: Peer,
        conns: usize,
        load: AddrLoad,
        now: Time,
    ) -> Option<Reject> {
        let rej = if conns >= self.config.limits.max_connections {
            Reject::Unavailable("server at connection limit", RETRY_AFTER_SECS)
        } else {
            // why: only with TLS is a handshake to come (the bucket is
            // unlimited otherwise); the shell closes a refused TLS
            // connection without a word.
            self.address_limit(peer, load, true, now)?
        };
        Some(self.count_refusal(peer, rej))
    }

    /// Why a connection from a trusted proxy may not go on now that the
    /// proxy named its client, `peer`, if it may not: `load` is what the
    /// client's address held without this connection, and `handshake`
    /// says whether its TLS handshake is still to come (a PROXY protocol
    /// header; `X-Forwarded-For` comes after it). The same limits as at
    /// accept, counted and logged the same way.
    pub fn proxied_refusal(
        &mut self,
        peer: Peer,
        load: AddrLoad,
        handshake: bool,
        now: Time,
    ) -> Option<Reject> {
        let rej = self.address_limit(peer, load, handshake, now)?;
        Some(self.count_refusal(peer, rej))
    }

    /// The per-address limits a new connection from `peer` must pass.
    /// A trusted proxy passes them all: it speaks for many clients, whose
    /// own addresses count once it names them.
    fn address_limit(
        &mut self,
        peer: Peer,
        load: AddrLoad,
        handshake: bool,
        now: Time,
    ) -> Option<Reject> {
        if peer.trusted {
            return None;
        }
        let limits = &self.config.limits;
        Some(
            if limits.max_conns_per_ip.is_some_and(|cap| load.conns >= cap) {
                Reject::TooMany("too many connections from this address", RETRY_AFTER_SECS)
            } else if limits
                .max_unauth_per_ip
                .is_some_and(|cap| load.unauth >= cap)
            {
                Reject::TooMany(
                    "too many unauthenticated connections from this address",
                    RETRY_AFTER_SECS,
                )
            } else if let Some(secs) = handshake
                .then(|| self.tls_ips.take(peer.key(), now).err())
                .flatten()
            {
                Reject::TooMany("too many TLS handshakes from this address", secs)
            } else {
                return None;
            },
        )
    }

    fn count_refusal(&mut self, peer: Peer, rej: Reject) -> Reject {
        debug!(
            "refused peer={peer} status={} reason=\"{}\"",
            rej.status(),
            rej.reason()
        );
        self.metrics.refused(rej.status(), rej.reason());
        rej
    }

    /// `addr` as a connection's peer: a trusted proxy or not.
    pub fn peer(&self, addr: SocketAddr) -> Peer {
        Peer::new(addr, self.config.is_trusted_proxy(addr.ip()))
    }

    /// What the upgrade checks need to know of the configuration.
    pub fn upgrade_policy(&self) -> UpgradePolicy<'_> {
        UpgradePolicy {
            allow_password_auth: self.config.allow_password_auth,
            cookie_name: self.config.cookie_name(),
            allowed_origins: &self.config.allowed_origins,
            require_https: !self.config.insecure_cookie,
        }
    }
}
