//! The server's bounds: time, connections, bytes (module docs of [`super`]).

use std::time::Duration;

/// Largest request body accepted ([`multus_api::MAX_REQUEST_BYTES`], 1 MiB; why is explained
/// there). Larger bodies get `413 Payload Too Large`.
pub const MAX_BODY_BYTES: usize = multus_api::MAX_REQUEST_BYTES;

/// hyper's read buffer per connection, which also bounds the request head (`431` beyond).
/// Real heads are about 200 bytes.
pub(super) const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Connections accepted beyond [`Limits::max_connections`] for probes (module docs).
pub const PROBE_LANE_CONNECTIONS: usize = 16;

/// The most a connection in the probe lane waits for its request head.
pub(super) const PROBE_LANE_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection is closed for being idle (no request head yet) only once it has been open this
/// long: a real client writes its request right after connecting, but its head may not have
/// been parsed in the microseconds since it was accepted.
pub(super) const IDLE_BEFORE_EVICTION: Duration = Duration::from_millis(300);

/// How often a wait for a connection place looks for idle connections again.
pub(super) const EVICTION_RETRY: Duration = Duration::from_millis(100);

/// How often the drain checks whether the work is done.
pub(super) const DRAIN_POLL: Duration = Duration::from_millis(20);

/// The server's bounds. [`Limits::default`] is what the daemon runs with; tests shrink them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `connectionLimit`: `/cni` and `/delegate` requests handled at once (`None`: no limit).
    pub connection_limit: Option<usize>,
    /// Connections open at once; more wait in the kernel's backlog. Raised to
    /// `connection_limit + 64` when that is larger, so probes always get through.
    pub max_connections: usize,
    /// Time from accepting a connection to the end of the request head.
    pub header_read_timeout: Duration,
    /// Time to receive the body once the head is in (including the wait for a budget share).
    pub body_read_timeout: Duration,
    /// Time for the client to take the answer once it is ready.
    pub response_write_timeout: Duration,
    /// Largest body of one request.
    pub max_body_bytes: usize,
    /// Bytes of request bodies held at once over all connections.
    pub body_budget_bytes: usize,
}

impl Default for Limits {
    /// The shim writes its whole request right after connecting, over a local socket, so 10 s
    /// for each phase only ever cuts off clients that stalled. 512 connections cover a
    /// 200-pod storm with room for probes, at about 8 KiB each while idle. A 16 MiB body
    /// budget is 16 maximal requests or thousands of real ones (a few KiB each).
    fn default() -> Self {
        Self {
            connection_limit: None,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            response_write_timeout: Duration::from_secs(10),
            max_body_bytes: MAX_BODY_BYTES,
            body_budget_bytes: 16 * 1024 * 1024,
        }
    }
}
