//! What one client may send per `quota_window` (items and bytes, per address; IPv6 per /64),
//! and what the whole store may hold (`max_total_size`: stored items, incomplete uploads and
//! uploads in progress). Every upload carries an [`Account`] that counts its bytes as they
//! arrive, so a limit stops an upload mid-stream, not only at its start.
//!
//! Per-client counts are a sliding-window estimate (this window's count plus the previous
//! window's, weighted by how much of it still overlaps), kept in memory: a restart forgets them.

use crate::client::client_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Clients tracked at most; idle ones are forgotten first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// The client sent `quota_items` items within the window.
    Items { retry_after: Duration },
    /// The client sent `quota_bytes` within the window.
    Bytes { retry_after: Duration },
    /// The store would pass `max_total_size`.
    StoreFull { max: u64 },
    /// The upload link's total size (see [`crate::links`]).
    Link(crate::links::Refusal),
}

#[derive(Debug, Clone)]
pub struct QuotaLimits {
    pub window: Duration,
    /// 0: no limit.
    pub items: u64,
    pub bytes: u64,
    /// 0: no limit.
    pub max_total_size: u64,
}

pub struct Limits {
    quota: QuotaLimits,
    clients: Mutex<HashMap<IpAddr, Window>>,
    /// Bytes of live items (complete or not) in the store.
    stored: AtomicU64,
    /// Bytes received by uploads in progress, not yet counted in `stored`.
    in_flight: AtomicU64,
}

#[derive(Clone, Copy, Default)]
struct Counts {
    items: u64,
    bytes: u64,
}

struct Window {
    start: Instant,
    current: Counts,
    previous: Counts,
}

impl Window {
    fn roll(&mut self, now: Instant, window: Duration) {
        let elapsed = now.duration_since(self.start);
        if elapsed < window {
            return;
        }
        self.previous = if elapsed < 2 * window {
            self.current
        } else {
            Counts::default()
        };
        self.current = Counts::default();
        // Windows stay aligned on the first one.
        let periods = (elapsed.as_nanos() / window.as_nanos().max(1)) as u32;
        self.start += window * periods;
    }

    /// The estimate over the last `window`, and when the current window ends.
    fn estimate(&self, now: Instant, window: Duration) -> (Counts, Duration) {
        let elapsed = now.duration_since(self.start);
        let overlap = 1.0 - (elapsed.as_secs_f64() / window.as_secs_f64()).min(1.0);
        let weigh = |prev: u64, cur: u64| cur + (prev as f64 * overlap).ceil() as u64;
        (
            Counts {
                items: weigh(self.previous.items, self.current.items),
                bytes: weigh(self.previous.bytes, self.current.bytes),
            },
            window.saturating_sub(elapsed).max(Duration::from_secs(1)),
        )
    }
}

impl Limits {
    /// `stored`: the bytes the store holds now (summed at start-up).
    pub fn new(quota: QuotaLimits, stored: u64) -> Arc<Limits> {
        Arc::new(Limits {
            quota,
            clients: Mutex::new(HashMap::new()),
            stored: AtomicU64::new(stored),
            in_flight: AtomicU64::new(0),
        })
    }

    /// No quota and no store limit (tests of other parts).
    pub fn unlimited() -> Arc<Limits> {
        Limits::new(
            QuotaLimits {
                window: Duration::from_secs(3600),
                items: 0,
                bytes: 0,
                max_total_size: 0,
            },
            0,
        )
    }

    /// The account of one upload from `ip`; `exempt` (operators with `admin`) skips the
    /// per-client quota, never the store's size.
    pub fn account(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Account {
        Account {
            limits: Arc::clone(self),
            client: client_key(ip),
            exempt,
            in_flight: AtomicU64::new(0),
            unquoted: AtomicU64::new(0),
            link_room: None,
        }
    }

    /// Items were stored (positive) or deleted (negative).
    pub fn stored_changed(&self, delta: i128) {
        if delta >= 0 {
            self.stored
                .fetch_add(u64::try_from(delta).unwrap_or(u64::MAX), Ordering::AcqRel);
        } else {
            let d = u64::try_from(-delta).unwrap_or(u64::MAX);
            let _ = self
                .stored
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                    Some(v.saturating_sub(d))
                });
        }
    }

    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Acquire)
    }

    fn check_store(&self, more: u64) -> Result<(), Limit> {
        let max = self.quota.max_total_size;
        if max == 0 {
            return Ok(());
        }
        let total = self
            .stored
            .load(Ordering::Acquire)
            .saturating_add(self.in_flight.load(Ordering::Acquire))
            .saturating_add(more);
        if total > max {
            return Err(Limit::StoreFull { max });
        }
        Ok(())
    }

    /// Applies `f` to the client's window (rolled to now) and returns its result.
    fn with_window<T>(&self, client: IpAddr, f: impl FnOnce(&mut Window, Instant) -> T) -> T {
        let now = Instant::now();
        let window = self.quota.window;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_TRACKED && !clients.contains_key(&client) {
            clients.retain(|_, w| now.duration_since(w.start) < 2 * window);
        }
        let w = clients.entry(client).or_insert(Window {
            start: now,
            current: Counts::default(),
            previous: Counts::default(),
        });
        w.roll(now, window);
        f(w, now)
    }

    /// Bytes an upload counts towards its client's quota at a time: the per-client table is
    /// locked once a step, not once a network chunk (at most 1 MiB, and a sixteenth of the
    /// quota, so a small quota still stops a stream close to it).
    fn quota_step(&self) -> u64 {
        (self.quota.bytes / 16).clamp(1, 1 << 20)
    }

    /// Fails if adding `items` and `bytes` would pass the client's quota; counts them otherwise
    /// (when `count`).
    fn quota(&self, client: IpAddr, items: u64, bytes: u64, count: bool) -> Result<(), Limit> {
        let q = &self.quota;
        if q.items == 0 && q.bytes == 0 {
            return Ok(());
        }
        self.with_window(client, |w, now| {
            let (est, retry_after) = w.estimate(now, q.window);
            if q.items > 0 && items > 0 && est.items + items > q.items {
                return Err(Limit::Items { retry_after });
            }
            if q.bytes > 0 && est.bytes + bytes > q.bytes {
                return Err(Limit::Bytes { retry_after });
            }
            if count {
                w.current.items += items;
                w.current.bytes += bytes;
            }
            Ok(())
        })
    }
}

/// What one upload has counted; its bytes in flight are given back when it ends.
pub struct Account {
    limits: Arc<Limits>,
    client: IpAddr,
    exempt: bool,
    in_flight: AtomicU64,
    /// Received bytes not yet counted towards the client's quota (less than a step).
    unquoted: AtomicU64,
    /// An upload link's size limit and the bytes it leaves this upload (see [`Self::cap`]).
    link_room: Option<(u64, u64)>,
}

impl Account {
    /// Before reading a body: whether `bytes` more (its Content-Length, or the declared size
    /// of a resumable upload) and one more item fit. Counts nothing.
    pub fn expect(&self, bytes: u64) -> Result<(), Limit> {
        self.limits.check_store(bytes)?;
        if self.exempt {
            return Ok(());
        }
        self.limits.quota(self.client, 1, bytes, false)
    }

    /// Stops the upload once it has sent `room` bytes: what its upload link (of `max` bytes
    /// in all) has left. The link's limit is checked again, exactly, when items are committed.
    pub fn cap(&mut self, max: u64, room: u64) {
        self.link_room = Some((max, room));
    }

    /// Counts `n` bytes as they arrive; fails as soon as a limit is passed.
    pub fn add_bytes(&self, n: u64) -> Result<(), Limit> {
        self.limits.check_store(n)?;
        if let Some((max, room)) = self.link_room {
            let sent = self.in_flight.load(Ordering::Acquire);
            if sent.saturating_add(n) > room {
                return Err(Limit::Link(crate::links::Refusal::Bytes {
                    max,
                    left: room.saturating_sub(sent),
                }));
            }
        }
        if !self.exempt && self.limits.quota.bytes > 0 {
            let pending = self.unquoted.fetch_add(n, Ordering::AcqRel) + n;
            if pending >= self.limits.quota_step() {
                self.unquoted.store(0, Ordering::Release);
                self.limits.quota(self.client, 0, pending, true)?;
            }
        }
        self.in_flight.fetch_add(n, Ordering::AcqRel);
        self.limits.in_flight.fetch_add(n, Ordering::AcqRel);
        Ok(())
    }

    /// Counts `n` new items, before they are committed.
    pub fn add_items(&self, n: u64) -> Result<(), Limit> {
        if self.exempt {
            return Ok(());
        }
        self.limits.quota(self.client, n, 0, true)
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let rest = self.unquoted.load(Ordering::Acquire);
        if rest > 0 {
            self.limits
                .with_window(self.client, |w, _| w.current.bytes += rest);
        }
        let n = self.in_flight.load(Ordering::Acquire);
        let _ = self
            .limits
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(items: u64, bytes: u64, max_total: u64) -> Arc<Limits> {
        Limits::new(
            QuotaLimits {
                window: Duration::from_secs(100),
                items,
                bytes,
                max_total_size: max_total,
            },
            0,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn items_per_client_over_a_sliding_window() {
        let l = limits(3, 0, 0);
        let a = l.account(ip("192.0.2.1"), false);
        a.add_items(3).unwrap();
        assert!(matches!(a.expect(0), Err(Limit::Items { .. })));
        assert!(a.add_items(1).is_err());
        assert!(
            l.account(ip("192.0.2.2"), false).add_items(3).is_ok(),
            "another client"
        );
        assert!(
            l.account(ip("192.0.2.1"), true).add_items(10).is_ok(),
            "admins are exempt"
        );
        // Half a window later the old items still weigh half: 1.5 of 3 used.
        tokio::time::advance(Duration::from_secs(150)).await;
        assert!(a.add_items(1).is_ok());
        assert!(a.add_items(1).is_err());
        tokio::time::advance(Duration::from_secs(200)).await;
        assert!(a.add_items(3).is_ok(), "the window has passed");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_per_client_and_the_store_total() {
        let l = limits(0, 1000, 0);
        let a = l.account(ip("2001:db8::1"), false);
        a.add_bytes(600).unwrap();
        assert!(matches!(a.expect(500), Err(Limit::Bytes { .. })));
        let same_64 = l.account(ip("2001:db8::2"), false);
        assert!(same_64.add_bytes(500).is_err(), "IPv6 counted per /64");

        let store = limits(0, 0, 1000);
        store.stored_changed(400);
        let b = store.account(ip("192.0.2.1"), true);
        assert!(matches!(b.expect(700), Err(Limit::StoreFull { max: 1000 })));
        b.add_bytes(500).unwrap();
        assert!(
            store.account(ip("192.0.2.9"), true).add_bytes(200).is_err(),
            "in-flight bytes count"
        );
        drop(b);
        assert!(store.account(ip("192.0.2.9"), true).add_bytes(200).is_ok());
        store.stored_changed(-400);
        assert_eq!(store.stored(), 0);
    }
}
