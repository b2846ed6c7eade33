//! Counts failed secret checks per client address and refuses further checks from an address
//! that failed too often recently. Successes do not reset the count: the customers' secret is
//! public, so an attacker could otherwise interleave it to keep guessing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_TRACKED: usize = 10_000;

pub struct Lockout {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Lockout {
    pub fn new(limit: u32, window: Duration) -> Lockout {
        Lockout {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_locked(&self, ip: IpAddr) -> bool {
        self.map()
            .get(&ip)
            .is_some_and(|(n, since)| *n >= self.limit && since.elapsed() < self.window)
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut map = self.map();
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() < window);
        }
        let entry = map.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_and_forgets_after_window() {
        let l = Lockout::new(3, Duration::from_millis(50));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(!l.is_locked(ip));
            l.record_failure(ip);
        }
        assert!(l.is_locked(ip));
        assert!(!l.is_locked("192.0.2.2".parse().unwrap()));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!l.is_locked(ip));
    }
}
