//! Token buckets: per connection (message rate) and per client IP
//! (upgrades, failed logins). Time is an argument, in milliseconds.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Rate;

/// A token bucket, full when created.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: u64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: Rate, now: u64) -> Bucket {
        Bucket {
            tokens: rate.burst,
            last: now,
        }
    }

    pub(super) fn refill(&mut self, rate: Rate, now: u64) {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = now.max(self.last);
    }

    /// Takes one token, or says in how many whole seconds one will be there.
    pub fn take(&mut self, rate: Rate, now: u64) -> Result<(), u64> {
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
    fn is_full(&mut self, rate: Rate, now: u64) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// Buckets keyed by client IP, bounded in number.
#[derive(Debug)]
pub struct IpBuckets {
    rate: Option<Rate>,
    buckets: HashMap<IpAddr, Bucket>,
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

    /// Takes a token for `ip`; `Err(seconds)` when it has none.
    pub fn take(&mut self, ip: IpAddr, now: u64) -> Result<(), u64> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        self.make_room(now);
        self.buckets
            .entry(ip)
            .or_insert_with(|| Bucket::full(rate, now))
            .take(rate, now)
    }

    /// Gives back a token taken from `ip` (up to the burst).
    pub fn refund(&mut self, ip: IpAddr, now: u64) {
        if let (Some(rate), Some(bucket)) = (self.rate, self.buckets.get_mut(&ip)) {
            bucket.refill(rate, now);
            bucket.tokens = (bucket.tokens + 1.0).min(rate.burst);
        }
    }

    /// Forgets every IP whose bucket is full again.
    pub fn sweep(&mut self, now: u64) {
        if let Some(rate) = self.rate {
            self.buckets.retain(|_, b| !b.is_full(rate, now));
        }
    }

    /// Number of IPs remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    fn make_room(&mut self, now: u64) {
        if self.buckets.len() >= self.max {
            self.sweep(now);
        }
        if self.buckets.len() >= self.max {
            // why: still full of active IPs (a wide attack); forgetting
            // some is the bounded-memory price, and forgets in favour of
            // the attacked resource only briefly.
            let drop: Vec<IpAddr> = self
                .buckets
                .keys()
                .take(self.max / 10 + 1)
                .copied()
                .collect();
            for ip in drop {
                self.buckets.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_sec: 2.0,
        burst: 3.0,
    };

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut b = Bucket::full(RATE, 0);
        assert!(b.take(RATE, 0).is_ok());
        assert!(b.take(RATE, 0).is_ok());
        assert!(b.take(RATE, 0).is_ok());
        assert_eq!(b.take(RATE, 0), Err(1));
        assert_eq!(b.take(RATE, 499), Err(1));
        assert!(b.take(RATE, 500).is_ok());
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(b.take(RATE, 60_000).is_ok());
        }
        assert!(b.take(RATE, 60_000).is_err());
    }

    #[test]
    fn ip_buckets_are_separate_and_bounded() {
        let mut ips = IpBuckets::new(Some(RATE), 4);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(ips.take(a, 0).is_ok());
        }
        assert!(ips.take(a, 0).is_err());
        assert!(ips.take(b, 0).is_ok());
        for i in 3..100u8 {
            let _ = ips.take([10, 0, 0, i].into(), 0);
            assert!(ips.len() <= 4);
        }
        ips.sweep(10_000);
        assert_eq!(ips.len(), 0);
        let mut off = IpBuckets::new(None, 4);
        for _ in 0..100 {
            assert!(off.take(a, 0).is_ok());
        }
        assert_eq!(off.len(), 0);
    }
}
