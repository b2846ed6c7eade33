//! Which uploads may run: at most `max_concurrent_uploads` at once, `max_uploads_per_client`
//! from one address (IPv6: a /64) and `max_uploads_per_network` from one network (IPv4 /24,
//! IPv6 /48). A running upload costs little (no thread; a few buffers), but slots are still a
//! limit, so slow uploads must not be able to hold them against fast ones: when every slot is
//! taken, the slowest upload that has been running for `slow_upload_window` below
//! `min_upload_rate` over that window is cut off, and the new upload takes its place.
//!
//! Time is tokio's, so tests can pause it.

use super::limits::{Account, Limit};
use crate::client::{client_key, network_key};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a new upload waits for the slot of one it has cut off.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// All upload slots are taken, by uploads that are not too slow.
    Busy,
    /// This client already has its share.
    PerClient,
    /// This client's network already has its share.
    PerNetwork,
}

#[derive(Debug, Clone)]
pub struct AdmissionLimits {
    pub total: usize,
    pub per_client: usize,
    pub per_network: usize,
    /// Bytes per second; 0 disables cutting slow uploads off.
    pub min_rate: u64,
    pub window: Duration,
}

pub struct Admission {
    limits: AdmissionLimits,
    inner: Mutex<Inner>,
    freed: Notify,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    running: HashMap<u64, Arc<Progress>>,
    per_client: HashMap<IpAddr, usize>,
    per_network: HashMap<IpAddr, usize>,
}

/// How far one upload has come, sampled often enough to know its rate over the window.
struct Progress {
    started: Instant,
    received: AtomicU64,
    samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Cancelled when the upload is cut off.
    evict: CancellationToken,
}

impl Progress {
    /// Bytes per second over the last `window`; `None` while younger than that.
    fn rate(&self, now: Instant, window: Duration) -> Option<u64> {
        let since = now.checked_sub(window)?;
        if self.started > since {
            return None;
        }
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let (at, base) = samples
            .iter()
            .rev()
            .find(|(t, _)| *t <= since)
            .copied()
            .unwrap_or((self.started, 0));
        let secs = now.duration_since(at).as_secs_f64().max(0.001);
        let bytes = self.received.load(Ordering::Relaxed).saturating_sub(base);
        Some((bytes as f64 / secs) as u64)
    }

    fn record(&self, n: u64, window: Duration) {
        let total = self.received.fetch_add(n, Ordering::Relaxed) + n;
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= window / 8)
        {
            samples.push_back((now, total));
        }
        // Keep one sample at or before the start of the window, and what is newer.
        while samples.len() > 1 && samples[1].0 + window <= now {
            samples.pop_front();
        }
    }
}

/// A running upload's slot; released on drop.
pub struct Ticket {
    id: u64,
    client: IpAddr,
    network: IpAddr,
    admission: Arc<Admission>,
    progress: Arc<Progress>,
    account: Account,
}

impl Ticket {
    /// Counts `n` received bytes: towards the rate, the client's quota and the store's total.
    pub fn record(&self, n: u64) -> Result<(), Limit> {
        crate::metrics::bytes_received(n);
        self.progress.record(n, self.admission.limits.window);
        self.account.add_bytes(n)
    }

    /// Resolves when this upload was cut off to make room for another.
    pub async fn evicted(&self) {
        self.progress.evict.cancelled().await
    }

    /// Whether it was.
    pub fn is_evicted(&self) -> bool {
        self.progress.evict.is_cancelled()
    }

    /// How long ago this slot was taken (for a one-shot upload: how long it has been running).
    pub fn elapsed(&self) -> Duration {
        self.progress.started.elapsed()
    }

    /// The quota and store-size account of this upload.
    pub fn account(&self) -> &Account {
        &self.account
    }
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            inner: Mutex::new(Inner::default()),
            freed: Notify::new(),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uploads running now.
    pub fn running(&self) -> usize {
        self.inner().running.len()
    }

    /// A slot for an upload from `ip`, cutting off the slowest upload if every slot is taken.
    pub async fn admit(self: &Arc<Self>, ip: IpAddr, account: Account) -> Result<Ticket, Refused> {
        let deadline = Instant::now() + EVICTION_WAIT;
        let mut account = Some(account);
        loop {
            let freed = self.freed.notified();
            match self.try_admit(ip, &mut account) {
                Ok(t) => return Ok(t),
                Err(Some(r)) => return Err(r),
                // A slow upload was told to go: wait for its slot (or any other).
                Err(None) => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(Refused::Busy);
                    }
                }
            }
        }
    }

    /// `Err(None)`: no slot now, but one is being freed.
    fn try_admit(
        self: &Arc<Self>,
        ip: IpAddr,
        account: &mut Option<Account>,
    ) -> Result<Ticket, Option<Refused>> {
        let (client, network) = (client_key(ip), network_key(ip));
        let mut inner = self.inner();
        if inner.per_client.get(&client).copied().unwrap_or(0) >= self.limits.per_client {
            return Err(Some(Refused::PerClient));
        }
        if inner.per_network.get(&network).copied().unwrap_or(0) >= self.limits.per_network {
            return Err(Some(Refused::PerNetwork));
        }
        if inner.running.len() >= self.limits.total {
            let freeing = self.evict_slowest(&inner);
            return Err(if freeing { None } else { Some(Refused::Busy) });
        }
        let Some(account) = account.take() else {
            return Err(Some(Refused::Busy));
        };
        inner.next_id += 1;
        let id = inner.next_id;
        let progress = Arc::new(Progress {
            started: Instant::now(),
            received: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
            evict: CancellationToken::new(),
        });
        inner.running.insert(id, Arc::clone(&progress));
        *inner.per_client.entry(client).or_insert(0) += 1;
        *inner.per_network.entry(network).or_insert(0) += 1;
        Ok(Ticket {
            id,
            client,
            network,
            admission: Arc::clone(self),
            progress,
            account,
        })
    }

    /// Cuts off the slowest upload under `min_rate` (or finds one already being cut off).
    fn evict_slowest(&self, inner: &Inner) -> bool {
        if self.limits.min_rate == 0 {
            return false;
        }
        if inner.running.values().any(|p| p.evict.is_cancelled()) {
            return true;
        }
        let now = Instant::now();
        let slowest = inner
            .running
            .values()
            .filter_map(|p| p.rate(now, self.limits.window).map(|r| (r, p)))
            .filter(|(r, _)| *r < self.limits.min_rate)
            .min_by_key(|(r, _)| *r);
        match slowest {
            Some((rate, p)) => {
                tracing::warn!(
                    rate,
                    min_rate = self.limits.min_rate,
                    "upload slots are full: cutting off the slowest upload"
                );
                p.evict.cancel();
                true
            }
            None => false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut guard = self.admission.inner();
        let inner = &mut *guard;
        inner.running.remove(&self.id);
        for (map, key) in [
            (&mut inner.per_client, self.client),
            (&mut inner.per_network, self.network),
        ] {
            if let Some(c) = map.get_mut(&key) {
                *c -= 1;
                if *c == 0 {
                    map.remove(&key);
                }
            }
        }
        drop(guard);
        self.admission.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::limits::Limits;

    fn admission(
        total: usize,
        per_client: usize,
        per_network: usize,
    ) -> (Arc<Admission>, Arc<Limits>) {
        let a = Admission::new(AdmissionLimits {
            total,
            per_client,
            per_network,
            min_rate: 1000,
            window: Duration::from_secs(10),
        });
        (a, Limits::unlimited())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn limits_per_client_network_and_in_total() {
        let (a, l) = admission(4, 2, 3);
        let acc = |x: &str| l.account(ip(x), false);
        let t1 = a.admit(ip("192.0.2.1"), acc("192.0.2.1")).await.unwrap();
        let _t2 = a.admit(ip("192.0.2.1"), acc("192.0.2.1")).await.unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.1"), acc("192.0.2.1")).await.err(),
            Some(Refused::PerClient)
        );
        let _t3 = a.admit(ip("192.0.2.2"), acc("192.0.2.2")).await.unwrap();
        assert_eq!(
            a.admit(ip("192.0.2.3"), acc("192.0.2.3")).await.err(),
            Some(Refused::PerNetwork),
            "one /24"
        );
        let _t4 = a
            .admit(ip("198.51.100.1"), acc("198.51.100.1"))
            .await
            .unwrap();
        // Full, and nobody has been running for the window: busy.
        assert_eq!(
            a.admit(ip("203.0.113.1"), acc("203.0.113.1")).await.err(),
            Some(Refused::Busy)
        );
        drop(t1);
        assert!(
            a.admit(ip("203.0.113.1"), acc("203.0.113.1")).await.is_ok(),
            "a finished upload frees its slot"
        );
        let (v6a, v6b) = (ip("2001:db8::1"), ip("2001:db8::2"));
        assert_eq!(client_key(v6a), client_key(v6b), "one /64, one client");
        assert_eq!(
            network_key(ip("2001:db8:0:1::1")),
            network_key(ip("2001:db8:0:ffff::1")),
            "one /48"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_upload_makes_room_once_the_window_has_passed() {
        let (a, l) = admission(2, 5, 5);
        let slow = a
            .admit(ip("192.0.2.1"), l.account(ip("192.0.2.1"), false))
            .await
            .unwrap();
        let fast = a
            .admit(ip("198.51.100.1"), l.account(ip("198.51.100.1"), false))
            .await
            .unwrap();
        for _ in 0..20 {
            tokio::time::advance(Duration::from_secs(1)).await;
            slow.record(3).unwrap();
            fast.record(1 << 20).unwrap();
        }
        let a2 = Arc::clone(&a);
        let waiting = tokio::spawn(async move {
            a2.admit(
                ip("203.0.113.1"),
                Limits::unlimited().account(ip("203.0.113.1"), false),
            )
            .await
        });
        tokio::select! {
            () = slow.evicted() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => panic!("the slow upload was not cut off"),
        }
        assert!(!fast.progress.evict.is_cancelled(), "the fast one runs on");
        drop(slow);
        assert!(
            waiting.await.unwrap().is_ok(),
            "the new upload got the freed slot"
        );
    }
}
