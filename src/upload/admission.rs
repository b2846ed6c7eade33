//! How many uploads may be in progress at once: in total, and from one client address. Each
//! running upload holds a writer thread and a temp file while it waits on its client, so a
//! client that opens many uploads and stalls them must not be able to exhaust the server.

use crate::client::client_key;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// All upload slots are taken.
    Busy,
    /// This client already has its share.
    PerClient,
}

pub struct Admission {
    slots: Arc<Semaphore>,
    per_client_max: usize,
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

/// A running upload's slot; released on drop.
pub struct Ticket {
    _slot: OwnedSemaphorePermit,
    client: IpAddr,
    admission: Arc<Admission>,
}

impl Admission {
    pub fn new(total: usize, per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(total.max(1))),
            per_client_max: per_client.max(1),
            per_client: Mutex::new(HashMap::new()),
        })
    }

    pub fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refused> {
        let client = client_key(ip);
        let mut counts = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(client).or_insert(0);
        if *count >= self.per_client_max {
            return Err(Refused::PerClient);
        }
        let slot = Arc::clone(&self.slots)
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        *count += 1;
        Ok(Ticket {
            _slot: slot,
            client,
            admission: Arc::clone(self),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self
            .admission
            .per_client
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = counts.get_mut(&self.client) {
            *c -= 1;
            if *c == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_in_total() {
        let a = Admission::new(3, 2);
        let ip1: IpAddr = "192.0.2.1".parse().unwrap();
        let ip2: IpAddr = "192.0.2.2".parse().unwrap();
        let t1 = a.try_admit(ip1).unwrap();
        let _t2 = a.try_admit(ip1).unwrap();
        assert_eq!(a.try_admit(ip1).err(), Some(Refused::PerClient));
        let _t3 = a.try_admit(ip2).unwrap();
        assert_eq!(
            a.try_admit("192.0.2.3".parse().unwrap()).err(),
            Some(Refused::Busy)
        );
        drop(t1);
        assert!(a.try_admit(ip1).is_ok(), "a finished upload frees its slot");
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(client_key(v6a), client_key(v6b), "one /64, one client");
    }
}
