//! highwater-mysql: MySQL-family sessions, shared by the source (`highwater-connectors`) and
//! the sink (`highwater-sinks`), which may not import each other. It holds the driver; the
//! core (`highwater-pipeline`) still knows none.
//!
//! - [`Pool`]: a mysql_async pool opened from a `pool = { ... }` table: sized, recycled below
//!   the server's `wait_timeout`, kept under 80% of its `max_connections`, pre-pinged, every
//!   wait bounded, its usage and waits reported as metrics.
//! - [`is_retryable`]: whether a failed statement may succeed when tried again.

mod pool;

pub use pool::{Pool, is_retryable};
