//! Slows down password guessing: after a few failed attempts from one address, each further
//! attempt from it waits, twice as long each time up to a bound, until the address has been
//! without a failure for a while. A successful login does not forgive the address: an
//! attacker with one valid account could otherwise reset the count between guesses at
//! another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures from one address that cost nothing (mistyped passwords).
const FREE_FAILURES: u32 = 3;
/// The first delay; it doubles with each further failure.
const BASE_DELAY: Duration = Duration::from_millis(100);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// An address without a failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest is forgotten first).
const MAX_ADDRESSES: usize = 65_536;

#[derive(Default)]
pub(crate) struct Throttle {
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl Throttle {
    /// How long an attempt from `ip` starting at `now` waits before it is checked.
    pub(crate) fn delay(&self, ip: IpAddr, now: Instant) -> Duration {
        match self.failures.get(&ip) {
            Some(&(n, last)) if n >= FREE_FAILURES && now - last < FORGET_AFTER => {
                let doublings = (n - FREE_FAILURES).min(16);
                (BASE_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn failed(&mut self, ip: IpAddr, now: Instant) {
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(&ip) {
            self.failures
                .retain(|_, (_, last)| now - *last < FORGET_AFTER);
            if self.failures.len() >= MAX_ADDRESSES {
                let oldest = self.failures.iter().min_by_key(|(_, (_, last))| *last);
                if let Some((&old, _)) = oldest {
                    self.failures.remove(&old);
                }
            }
        }
        let e = self.failures.entry(ip).or_insert((0, now));
        if now - e.1 >= FORGET_AFTER {
            e.0 = 0;
        }
        *e = (e.0.saturating_add(1), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_after_free_failures_and_reset() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut t = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.delay(a, now), Duration::ZERO);
            t.failed(a, now);
        }
        assert_eq!(t.delay(a, now), BASE_DELAY);
        t.failed(a, now);
        assert_eq!(t.delay(a, now), BASE_DELAY * 2);
        for _ in 0..20 {
            t.failed(a, now);
        }
        assert_eq!(t.delay(a, now), MAX_DELAY);
        // Other addresses are not slowed down.
        assert_eq!(t.delay(b, now), Duration::ZERO);
        // Quiet for a minute: forgiven.
        assert_eq!(t.delay(a, now + FORGET_AFTER), Duration::ZERO);
        t.failed(a, now + FORGET_AFTER);
        assert_eq!(t.delay(a, now + FORGET_AFTER), Duration::ZERO);
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            t.failed(IpAddr::from(i.to_be_bytes()), now);
        }
        assert_eq!(t.failures.len(), MAX_ADDRESSES);
    }
}
