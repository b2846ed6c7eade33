//! Counts failed secret checks per client address and refuses further checks from an address
//! that failed too often recently. Checks in flight count too (a burst of parallel guesses must
//! not all get past the limit before the first failure is recorded). Successes do not reset the
//! count: the customers' secret is public, so an attacker could otherwise interleave it.

use crate::client::client_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    in_flight: u32,
    since: Instant,
}

pub struct Lockout {
    limit: u32,
    window: Duration,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Lockout {
    pub fn new(limit: u32, window: Duration) -> Lockout {
        Lockout {
            limit,
            window,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves one check for `ip`; `false` when it is locked out. Every reservation must be
    /// ended by [`Lockout::finish`].
    pub fn begin(&self, ip: IpAddr) -> bool {
        let mut map = self.map();
        if map.len() >= MAX_TRACKED && !map.contains_key(&client_key(ip)) {
            let window = self.window;
            map.retain(|_, r| r.in_flight > 0 || r.since.elapsed() < window);
            if map.len() >= MAX_TRACKED {
                // Still full of recent failures: forget the oldest rather than grow.
                if let Some(oldest) = map
                    .iter()
                    .filter(|(_, r)| r.in_flight == 0)
                    .min_by_key(|(_, r)| r.since)
                    .map(|(k, _)| *k)
                {
                    map.remove(&oldest);
                }
            }
        }
        let now = Instant::now();
        let r = map.entry(client_key(ip)).or_insert(Record {
            failures: 0,
            in_flight: 0,
            since: now,
        });
        if r.since.elapsed() >= self.window && r.in_flight == 0 {
            *r = Record {
                failures: 0,
                in_flight: 0,
                since: now,
            };
        }
        if r.failures + r.in_flight >= self.limit {
            return false;
        }
        r.in_flight += 1;
        true
    }

    /// Ends a reservation; true when this failure is the one that locks the address out (once
    /// per lockout, for the audit trail).
    pub fn finish(&self, ip: IpAddr, failed: bool) -> bool {
        let mut map = self.map();
        if let Some(r) = map.get_mut(&client_key(ip)) {
            r.in_flight = r.in_flight.saturating_sub(1);
            if failed {
                r.failures += 1;
                crate::metrics::wrong_secret(r.failures == self.limit);
                return r.failures == self.limit;
            } else if r.failures == 0 && r.in_flight == 0 {
                map.remove(&client_key(ip));
            }
        }
        false
    }

    /// The rule, for people: `20 wrong secrets within 300s`.
    pub fn describe(&self) -> String {
        format!(
            "{} wrong secrets within {}s",
            self.limit,
            self.window.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_and_forgets_after_window() {
        let l = Lockout::new(3, Duration::from_millis(50));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..3 {
            assert!(l.begin(ip));
            assert_eq!(l.finish(ip, true), i == 2, "the third failure locks out");
        }
        assert!(!l.begin(ip));
        assert!(l.begin("192.0.2.2".parse().unwrap()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(l.begin(ip));
    }

    #[test]
    fn checks_in_flight_count_against_the_limit() {
        let l = Lockout::new(3, Duration::from_secs(60));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(l.begin(ip) && l.begin(ip) && l.begin("2001:db8::2".parse().unwrap()));
        assert!(!l.begin(ip), "three guesses in flight from one /64");
        l.finish(ip, false);
        assert!(l.begin(ip), "a success frees its slot");
    }
}
