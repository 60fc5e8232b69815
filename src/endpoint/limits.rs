//! Limits on HTTP connections, so that no client can hold the server's
//! file descriptors: how many connections the node and one remote address
//! may hold, and how long a request's header and body may take to arrive.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limits on the endpoint's HTTP connections. The defaults are what a
/// production node ships with; raise them for load tests from one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most open connections (HTTP and upgraded websockets) on this node
    /// (65,536). A connection over the limit is closed at once.
    pub max_connections: usize,
    /// Most open connections from one remote IP address (4,096). A
    /// connection over the limit is closed at once.
    pub max_connections_per_address: usize,
    /// A request's header must arrive within this long (10 s), counted from
    /// when the server starts waiting for it (so an idle keep-alive
    /// connection is closed after it too); else the connection is closed.
    pub header_read_timeout: Duration,
    /// A request body read by the server (longpoll `POST`,
    /// `/api/broadcast`, [`read_body`](super::read_body)) must arrive within
    /// this long (30 s); else the answer is 408 and the connection closes.
    pub body_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            max_connections_per_address: 4_096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    /// The node holds `max_connections` already.
    #[error("node connection limit ({0}) reached")]
    NodeFull(usize),
    /// The remote address holds `max_connections_per_address` already.
    #[error("connection limit per address ({0}) reached")]
    AddressFull(usize),
}

/// Counts open connections, in total and per remote address. Touched once
/// when a connection opens and once when it closes, never per message.
#[derive(Debug)]
pub(crate) struct ConnectionCounter {
    limits: HttpLimits,
    open: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl ConnectionCounter {
    pub(crate) fn new(limits: HttpLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: Mutex::new(Open::default()),
            refused: AtomicU64::new(0),
        })
    }

    /// Count the websocket that an HTTP connection from `addr` became,
    /// without checking the limits: the HTTP connection already passed them
    /// and releases its own place as soon as the upgrade is done, so the
    /// connection is counted twice only for that moment. The websocket
    /// keeps this permit inline (no allocation per connection).
    pub(crate) fn hand_over(self: &Arc<Self>, addr: IpAddr) -> ConnectionPermit {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total += 1;
        *open.per_address.entry(addr).or_insert(0) += 1;
        ConnectionPermit {
            counter: self.clone(),
            addr,
        }
    }

    /// Count a new connection from `addr`, or refuse it.
    pub(crate) fn try_open(
        self: &Arc<Self>,
        addr: IpAddr,
    ) -> Result<ConnectionPermit, ConnectionRefused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let refused = if open.total >= self.limits.max_connections {
            Some(ConnectionRefused::NodeFull(self.limits.max_connections))
        } else if open.per_address.get(&addr).copied().unwrap_or(0)
            >= self.limits.max_connections_per_address
        {
            Some(ConnectionRefused::AddressFull(
                self.limits.max_connections_per_address,
            ))
        } else {
            None
        };
        if let Some(refused) = refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refused);
        }
        open.total += 1;
        *open.per_address.entry(addr).or_insert(0) += 1;
        Ok(ConnectionPermit {
            counter: self.clone(),
            addr,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Connections refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One counted connection; dropping it (when the HTTP connection, or the
/// websocket it was upgraded to, ends) frees its place.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    counter: Arc<ConnectionCounter>,
    addr: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_address.get_mut(&self.addr) {
            *count -= 1;
            if *count == 0 {
                open.per_address.remove(&self.addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(node: usize, per_address: usize) -> HttpLimits {
        HttpLimits {
            max_connections: node,
            max_connections_per_address: per_address,
            ..HttpLimits::default()
        }
    }

    #[test]
    fn an_address_over_its_limit_is_refused_and_others_are_not() {
        let counter = ConnectionCounter::new(limits(10, 2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = counter.try_open(a).expect("first");
        let _second = counter.try_open(a).expect("second");
        assert_eq!(
            counter.try_open(a).map(|_| ()),
            Err(ConnectionRefused::AddressFull(2))
        );
        let _other = counter.try_open(b).expect("another address");
        drop(first);
        let _again = counter.try_open(a).expect("a place was freed");
        assert_eq!(counter.open(), 3);
        assert_eq!(counter.refused(), 1);
    }

    #[test]
    fn the_node_limit_counts_every_address() {
        let counter = ConnectionCounter::new(limits(2, 2));
        let permits: Vec<_> = (1..=2u8)
            .map(|i| counter.try_open([10, 0, 0, i].into()).expect("open"))
            .collect();
        assert_eq!(
            counter.try_open([10, 0, 0, 3].into()).map(|_| ()),
            Err(ConnectionRefused::NodeFull(2))
        );
        drop(permits);
        assert_eq!(counter.open(), 0);
        let _ = counter.try_open([10, 0, 0, 3].into()).expect("room again");
    }
}
