//! Token buckets: per connection (message rate) and per client address
//! (upgrades, failed logins); and [`AddrKey`], the one key every
//! per-address limit counts under. Time is an argument, in milliseconds.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use super::time::Time;
use crate::config::Rate;

/// The key every per-address limit counts under: the address itself for
/// IPv4 (and IPv4-mapped IPv6), its /64 prefix for IPv6, since one
/// subscriber usually holds a whole /64. The only ways to make one are
/// [`AddrKey::of`] and [`AddrKey::host`], and the per-address tables take
/// nothing else, so no limit can count raw IPv6 addresses by mistake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey {
    ip: IpAddr,
    /// One host, never its /64 (a trusted proxy: see [`AddrKey::host`]).
    host: bool,
}

impl AddrKey {
    /// The key of a client address.
    pub fn of(ip: IpAddr) -> AddrKey {
        let ip = match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        };
        AddrKey { ip, host: false }
    }

    /// The key of a trusted proxy's own address: that host alone, a key
    /// no client address has, so what the proxy holds (which no limit
    /// caps) never counts against the clients in its /64.
    pub fn host(ip: IpAddr) -> AddrKey {
        AddrKey {
            ip: ip.to_canonical(),
            host: true,
        }
    }
}

impl fmt::Display for AddrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V6(v6) if !self.host => write!(f, "{v6}/64"),
            ip => write!(f, "{ip}"),
        }
    }
}

/// What one client address holds right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrLoad {
    /// Connections of any kind.
    pub conns: usize,
    /// Connections that have not authenticated (not upgraded).
    pub unauth: usize,
    /// Password checks waiting for the helper thread.
    pub logins: usize,
}

impl AddrLoad {
    /// True when nothing is held: the entry can go.
    pub fn is_idle(&self) -> bool {
        *self == AddrLoad::default()
    }
}

/// A token bucket, full when created.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: Time,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: Rate, now: Time) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last: now,
        }
    }

    pub(super) fn refill(&mut self, rate: Rate, now: Time) {
        let elapsed = now.since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = now.max(self.last);
    }

    /// Takes one token, or says in how many whole seconds one will be there.
    pub fn take(&mut self, rate: Rate, now: Time) -> Result<(), u64> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.retry_after(rate))
        }
    }

    fn retry_after(&self, rate: Rate) -> u64 {
        if rate.per_sec <= 0.0 {
            return 3600;
        }
        ((1.0 - self.tokens) / rate.per_sec).ceil().max(1.0) as u64
    }

    /// True when the bucket has refilled completely by `now` (nothing to
    /// remember about its owner any more).
    fn is_full(&mut self, rate: Rate, now: Time) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// Buckets keyed by client address, bounded in number.
#[derive(Debug)]
pub struct IpBuckets {
    rate: Option<Rate>,
    buckets: HashMap<AddrKey, Bucket>,
    max: usize,
}

impl IpBuckets {
    /// `rate` of `None` means unlimited (nothing is tracked).
    pub fn new(rate: Option<Rate>, max: usize) -> IpBuckets {
        IpBuckets {
            rate,
            buckets: HashMap::new(),
            max: max.max(1),
        }
    }

    /// Takes a token for `key`; `Err(seconds)` when it has none.
    pub fn take(&mut self, key: AddrKey, now: Time) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        if !self.buckets.contains_key(&key) {
            self.make_room(now);
        }
        self.buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Gives back a token taken from `key` (up to the burst).
    pub fn refund(&mut self, key: AddrKey, now: Time) {
        if let (Some(rate), Some(bucket)) = (self.rate, self.buckets.get_mut(&key)) {
            bucket.refill(rate, now);
            bucket.tokens = (bucket.tokens + 1.0).min(rate.burst);
        }
    }

    /// Forgets every IP whose bucket is full again.
    pub fn sweep(&mut self, now: Time) {
        if let Some(rate) = self.rate {
            self.buckets.retain(|_, b| !b.is_full(rate, now));
        }
    }

    /// Number of IPs remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    fn make_room(&mut self, now: Time) {
        if self.buckets.len() >= self.max {
            self.sweep(now);
        }
        if self.buckets.len() >= self.max {
            // why: still full of active IPs (a wide attack); forgetting
            // some is the bounded-memory price, and forgets in favour of
            // the attacked resource only briefly. The least used go first
            // (the most tokens left), then by address: the choice never
            // depends on the map's order, so a seeded run replays exactly.
            let mut levels: Vec<(f64, AddrKey)> = self
                .buckets
                .iter_mut()
                .map(|(key, bucket)| {
                    if let Some(rate) = self.rate {
                        bucket.refill(rate, now);
                    }
                    (bucket.tokens, *key)
                })
                .collect();
            levels.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for (_, key) in levels.into_iter().take(self.max / 10 + 1) {
                self.buckets.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    const RATE: Rate = Rate {
        per_sec: 2.0,
        burst: 3.0,
    };

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = Bucket::full(RATE, at(0));
        assert!(b.take(RATE, at(0)).is_ok());
        assert!(b.take(RATE, at(0)).is_ok());
        assert!(b.take(RATE, at(0)).is_ok());
        assert_eq!(b.take(RATE, at(0)), Err(1));
        assert_eq!(b.take(RATE, at(499)), Err(1));
        assert!(b.take(RATE, at(500)).is_ok());
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(b.take(RATE, at(60_000)).is_ok());
        }
        assert!(b.take(RATE, at(60_000)).is_err());
    }

    fn key(ip: &str) -> AddrKey {
        AddrKey::of(ip.parse().unwrap())
    }

    #[test]
    fn addresses_group_ipv6_by_64_and_unmap_ipv4() {
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:2"));
        assert_eq!(key("2001:db8:0:0:9::1"), key("2001:db8::1"));
        assert_ne!(key("2001:db8:0:1::1"), key("2001:db8::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
        assert_eq!(key("2001:db8::1").to_string(), "2001:db8::/64");
    }

    /// When the table is full of active addresses, the least used are
    /// forgotten first (then the lowest address): never the map's order.
    #[test]
    fn a_full_table_forgets_the_least_used_first() {
        let slow = Rate {
            per_sec: 0.001,
            burst: 3.0,
        };
        let mut ips = IpBuckets::new(Some(slow), 10);
        let k = |i: u8| AddrKey::of([10, 0, 0, i].into());
        for i in 0..10 {
            let _ = ips.take(k(i), at(0));
            if i != 3 && i != 7 {
                let _ = ips.take(k(i), at(0));
            }
        }
        assert_eq!(ips.len(), 10);
        let _ = ips.take(k(200), at(1));
        assert!(!ips.buckets.contains_key(&k(3)) && !ips.buckets.contains_key(&k(7)));
        assert_eq!(ips.len(), 9, "two forgotten, one added");
    }

    #[test]
    fn ip_buckets_are_separate_and_bounded() {
        let mut ips = IpBuckets::new(Some(RATE), 4);
        let a = key("127.0.0.1");
        let b = key("127.0.0.2");
        for _ in 0..3 {
            assert!(ips.take(a, at(0)).is_ok());
        }
        assert!(ips.take(a, at(0)).is_err());
        assert!(ips.take(b, at(0)).is_ok());
        for i in 3..100u8 {
            let _ = ips.take(AddrKey::of([10, 0, 0, i].into()), at(0));
            assert!(ips.len() <= 4);
        }
        ips.sweep(at(10_000));
        assert_eq!(ips.len(), 0);
        let mut off = IpBuckets::new(None, 4);
        for _ in 0..100 {
            assert!(off.take(a, at(0)).is_ok());
        }
        assert_eq!(off.len(), 0);
    }
}
