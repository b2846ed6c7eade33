//! Places for connections: at most `max_connections` open in total and
//! `max_connections_per_client` from one address (IPv6: /64; trusted proxies are exempt, their
//! clients are counted per request instead). When every place is taken, the connection that
//! has been idle longest (no request in progress) is closed to make room: silent or idle
//! connections from many addresses cannot lock out a client that has something to send.

use crate::client::{client_key, is_trusted_proxy};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// `max_connections` reached, and nothing idle to close.
    Full,
    /// This address has `max_connections_per_client` open.
    PerClient,
}

/// Requests in progress on a connection, and when the last one ended.
pub(super) struct Activity {
    in_flight: AtomicUsize,
    since: Mutex<Instant>,
    /// Cancelled to close the connection (it was idle and its place is needed).
    pub kill: CancellationToken,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            in_flight: AtomicUsize::new(0),
            since: Mutex::new(Instant::now()),
            kill: CancellationToken::new(),
        }
    }

    fn since(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long no request has been in progress; `None` while one is.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.since().elapsed())
    }
}

/// Held from a request's arrival until its response body is sent (or dropped).
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub fn start(activity: &Arc<Activity>) -> Busy {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) struct Gate {
    max_total: usize,
    max_per_client: usize,
    exempt: Vec<ipnet::IpNet>,
    counts: Mutex<Counts>,
    log: Mutex<LogThrottle>,
}

#[derive(Default)]
struct Counts {
    next_id: u64,
    open: HashMap<u64, Arc<Activity>>,
    /// Connections told to close that have not gone yet.
    closing: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// A connection's place; given back on drop.
pub(super) struct Place {
    gate: Arc<Gate>,
    id: u64,
    key: Option<IpAddr>,
    pub activity: Arc<Activity>,
}

impl Gate {
    pub(super) fn new(max_total: usize, max_per_client: usize, exempt: Vec<ipnet::IpNet>) -> Self {
        Gate {
            max_total,
            max_per_client,
            exempt,
            counts: Mutex::new(Counts::default()),
            log: Mutex::new(LogThrottle::default()),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn enter(self: &Arc<Self>, peer: IpAddr) -> Result<Place, Refusal> {
        let key = (!is_trusted_proxy(peer, &self.exempt)).then(|| client_key(peer));
        let mut c = self.counts();
        if key.is_some_and(|k| c.per_client.get(&k).copied().unwrap_or(0) >= self.max_per_client) {
            drop(c);
            self.log_refusal(peer, Refusal::PerClient);
            return Err(Refusal::PerClient);
        }
        // Places of connections that are closing go to new ones: a few more than the limit may
        // be open for a moment (they close within a tick), never more than an eighth.
        let ceiling = self.max_total + self.max_total / 8;
        let full = c.open.len() - c.closing >= self.max_total;
        if c.open.len() > ceiling || (full && !close_idlest(&mut c)) {
            drop(c);
            self.log_refusal(peer, Refusal::Full);
            return Err(Refusal::Full);
        }
        c.next_id += 1;
        let id = c.next_id;
        let activity = Arc::new(Activity::new());
        c.open.insert(id, Arc::clone(&activity));
        if let Some(k) = key {
            *c.per_client.entry(k).or_insert(0) += 1;
        }
        crate::metrics::connection(1);
        Ok(Place {
            gate: Arc::clone(self),
            id,
            key,
            activity,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.counts().open.len()
    }

    fn log_refusal(&self, peer: IpAddr, r: Refusal) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(suppressed) = log.ready() {
            match r {
                Refusal::Full => tracing::warn!(%peer, max = self.max_total, suppressed,
                    "connection refused: max_connections reached and none idle"),
                Refusal::PerClient => tracing::warn!(%peer, max = self.max_per_client, suppressed,
                    "connection refused: max_connections_per_client reached"),
            }
        }
    }

    pub(super) fn log_accept_error(&self, e: &std::io::Error) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(suppressed) = log.ready() {
            tracing::warn!(error = %e, suppressed, "accept failed");
        }
    }
}

/// Tells the connection idle longest to close (since it opened or since its last request): a
/// client that has just connected is never the one cut off for another. False if every
/// connection has a request in progress.
fn close_idlest(c: &mut Counts) -> bool {
    let victim = c
        .open
        .values()
        .filter(|a| !a.kill.is_cancelled() && a.in_flight.load(Ordering::Acquire) == 0)
        .min_by_key(|a| a.since());
    match victim {
        Some(a) => {
            a.kill.cancel();
            c.closing += 1;
            true
        }
        None => false,
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        crate::metrics::connection(-1);
        let mut c = self.gate.counts();
        c.open.remove(&self.id);
        if self.activity.kill.is_cancelled() {
            c.closing = c.closing.saturating_sub(1);
        }
        if let Some(k) = self.key
            && let Some(n) = c.per_client.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                c.per_client.remove(&k);
            }
        }
    }
}

/// At most one log line a second for a flood of the same event, saying how many it stands for.
#[derive(Default)]
struct LogThrottle {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// `Some(suppressed since the last line)` when a line may be written now.
    fn ready(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn caps_in_total_and_per_client() {
        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().unwrap();
        let gate = Arc::new(Gate::new(3, 2, vec![proxy]));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let p1 = gate.enter(a).unwrap();
        let _p2 = gate.enter(a).unwrap();
        assert_eq!(gate.enter(a).err(), Some(Refusal::PerClient));
        drop(p1);
        let p3 = gate.enter(a).unwrap();
        let proxy_ip: IpAddr = "10.1.2.3".parse().unwrap();
        let p4 = gate.enter(proxy_ip).unwrap();
        assert_eq!(gate.open(), 3);
        // Full: all three are busy, so nothing can be closed.
        let busy: Vec<Busy> = [&_p2, &p3, &p4]
            .iter()
            .map(|p| Busy::start(&p.activity))
            .collect();
        assert_eq!(gate.enter(proxy_ip).err(), Some(Refusal::Full));
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn the_idlest_connection_makes_room() {
        let gate = Arc::new(Gate::new(3, 10, vec![]));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let silent = gate.enter(ip("192.0.2.1")).unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        let served = gate.enter(ip("192.0.2.2")).unwrap();
        let working = gate.enter(ip("192.0.2.3")).unwrap();
        let _busy = Busy::start(&working.activity);
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(Busy::start(&served.activity));
        tokio::time::advance(Duration::from_secs(1)).await;
        let newcomer = gate.enter(ip("192.0.2.4")).unwrap();
        assert!(
            silent.activity.kill.is_cancelled(),
            "idle longest: since it opened"
        );
        assert!(
            !served.activity.kill.is_cancelled(),
            "it just finished a request"
        );
        assert!(
            !working.activity.kill.is_cancelled(),
            "a request in progress is never cut"
        );
        drop(silent);
        tokio::time::advance(Duration::from_secs(1)).await;
        let _next = gate.enter(ip("192.0.2.5")).unwrap();
        assert!(served.activity.kill.is_cancelled());
        assert!(
            !newcomer.activity.kill.is_cancelled(),
            "the newest connection goes last"
        );
    }
}
