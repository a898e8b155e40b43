//! [`Pool`]: the connections of one database.
//!
//! Opening a pool proves the server first with one connection of its own, within the connect
//! timeout: the login is checked and the server's `wait_timeout` and `max_connections` are
//! read, because the pool's settings must fit them (see [`PoolConfig::fit_to_server`]). The
//! probe is then closed; the pool opens its connections as they are needed.
//!
//! Session statements (`SET NAMES`, `time_zone`, ...) are *setup* statements: mysql_async runs
//! them on every new connection and again after each `COM_RESET_CONNECTION` that cleans a
//! returned connection. Run only once (its `init`), they would be gone from the second use of a
//! connection on, and TIMESTAMPs would be read in the server's time zone.

use std::time::{Duration, Instant};

use highwater_pipeline::config::DbUrl;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::pool::{PoolConfig, PoolError, PoolUsage, SslMode, Tls};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, PoolConstraints, PoolOpts, SslOpts};
use prometheus::Histogram;

/// MySQL error codes that mean "the login was refused".
const ACCESS_DENIED: [u16; 3] = [1044, 1045, 1698];

/// MySQL error codes a second try may get past: too many connections, lock wait timeout,
/// deadlock, server shutting down, session killed (MariaDB), server gone, connection lost.
const RETRYABLE_CODES: [u16; 7] = [1040, 1205, 1213, 1053, 1927, 2006, 2013];

/// How long an overflow connection (beyond `size`) may stay idle before it is closed; the
/// pool checks every 30 s (mysql_async's `ttl_check_interval`).
const OVERFLOW_IDLE: Duration = Duration::from_secs(30);

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Pool {
    inner: mysql_async::Pool,
    /// `source` or `sink`: the config table, for messages and the `pool` label.
    section: &'static str,
    /// The URL with its password hidden.
    shown: String,
    pre_ping: bool,
    timeout: Duration,
    max: usize,
    wait: Option<Histogram>,
    /// The sessions' options, for a connection outside the pool ([`Pool::connect_alone`]).
    opts: mysql_async::Opts,
}

impl Pool {
    /// Opens a pool for `url` after proving the server, with `setup` run on every session.
    /// With `metrics`, the pool's usage and waits are reported under `pool = section`.
    pub async fn open(
        url: &DbUrl,
        config: &PoolConfig,
        section: &'static str,
        setup: &[&str],
        metrics: Option<&Metrics>,
    ) -> Result<Pool, PoolError> {
        Pool::open_tls(url, config, &Tls::default(), section, setup, metrics).await
    }

    /// [`Pool::open`] with TLS as `tls` says.
    pub async fn open_tls(
        url: &DbUrl,
        config: &PoolConfig,
        tls: &Tls,
        section: &'static str,
        setup: &[&str],
        metrics: Option<&Metrics>,
    ) -> Result<Pool, PoolError> {
        let shown = url.to_string();
        let opts = Opts::from_url(url.expose()).map_err(|e| PoolError::Connect {
            url: shown.clone(),
            section,
            source: Box::new(e),
        })?;
        // Connect where the URL says. mysql_async would otherwise move a loopback TCP session
        // onto the server's Unix socket, opening a second session for every connection (the
        // server briefly counts both); `?socket=/path` in the URL still selects a socket.
        let explicit_socket = url.expose().contains("prefer_socket=true");
        let session =
            OptsBuilder::from_opts(opts).setup(setup.to_vec()).prefer_socket(explicit_socket).ssl_opts(ssl_opts(tls));
        let (wait_timeout, max_connections) = probe(session.clone(), config, section, &shown).await?;
        let recycle = config
            .fit_to_server(wait_timeout, max_connections)
            .map_err(|(key, message)| PoolError::Limit { section, key, message })?;

        // `size` connections stay while idle; the overflow above it closes once idle for
        // OVERFLOW_IDLE, so a burst reuses it instead of reconnecting for every caller.
        let constraints = PoolConstraints::new(config.size, config.max_connections())
            .ok_or_else(|| PoolError::Limit { section, key: "size", message: "must be at least 1".into() })?;
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(OVERFLOW_IDLE)
            .with_abs_conn_ttl(Some(recycle));
        let opts: mysql_async::Opts = session.clone().into();
        let inner = mysql_async::Pool::new(session.pool_opts(pool_opts));
        tracing::debug!(
            pool = section,
            size = config.size,
            max_overflow = config.max_overflow,
            recycle_secs = recycle.as_secs(),
            wait_timeout,
            max_connections,
            "pool opened"
        );
        let wait = metrics.map(|m| {
            let watched = inner.clone();
            m.watch_pool(section, config.max_connections(), move || usage_of(&watched))
        });
        Ok(Pool {
            inner,
            section,
            shown,
            pre_ping: config.pre_ping,
            timeout: config.connect_timeout(),
            max: config.max_connections(),
            wait,
            opts,
        })
    }

    /// A connection, within the connect timeout. With `pre_ping`, a connection that does not
    /// answer a ping is closed and another one taken, so a connection the server or a proxy
    /// dropped is never handed out.
    pub async fn get(&self) -> Result<Conn, PoolError> {
        let started = Instant::now();
        let got = tokio::time::timeout(self.timeout, self.get_pinged()).await;
        if let Some(wait) = &self.wait {
            wait.observe(started.elapsed().as_secs_f64());
        }
        match got {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(connect_error(e, self.shown.clone(), self.section)),
            Err(_) if self.usage().in_use >= self.max => Err(PoolError::Exhausted {
                url: self.shown.clone(),
                section: self.section,
                secs: self.timeout.as_secs(),
                max: self.max,
            }),
            Err(_) => Err(PoolError::ConnectTimeout {
                url: self.shown.clone(),
                section: self.section,
                secs: self.timeout.as_secs(),
            }),
        }
    }

    async fn get_pinged(&self) -> Result<Conn, mysql_async::Error> {
        // Every open connection may be dead (the server restarted): try each, then a new one.
        let mut tries = self.max + 1;
        loop {
            let mut conn = self.inner.get_conn().await?;
            if !self.pre_ping {
                return Ok(conn);
            }
            match conn.ping().await {
                Ok(()) => return Ok(conn),
                Err(e) if tries <= 1 => return Err(e),
                Err(e) => {
                    tries -= 1;
                    tracing::debug!(pool = self.section, error = %e, "pre-ping failed: replacing the connection");
                    // The connection is broken; closing it cannot fail in a way that matters.
                    let _ = conn.disconnect().await;
                }
            }
        }
    }

    /// A connection of its own, outside the pool and its limits, with the same session setup
    /// and no default database: for a session held the whole run (a lock), which must not take
    /// a pooled one away from the work, and touches no table.
    pub async fn connect_alone(&self) -> Result<Conn, PoolError> {
        let opts = mysql_async::OptsBuilder::from_opts(self.opts.clone()).db_name(None::<String>);
        match tokio::time::timeout(self.timeout, Conn::new(opts)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(connect_error(e, self.shown.clone(), self.section)),
            Err(_) => Err(PoolError::ConnectTimeout {
                url: self.shown.clone(),
                section: self.section,
                secs: self.timeout.as_secs(),
            }),
        }
    }

    /// What the pool holds right now.
    pub fn usage(&self) -> PoolUsage {
        usage_of(&self.inner)
    }

    /// Closes every connection; waits for those in use to come back.
    pub async fn disconnect(self) -> Result<(), mysql_async::Error> {
        self.inner.disconnect().await
    }
}

/// The driver's TLS options for `tls` (`None`: no TLS).
fn ssl_opts(tls: &Tls) -> Option<SslOpts> {
    let opts = match tls.mode {
        SslMode::Disabled => return None,
        SslMode::Required => {
            SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true)
        }
        SslMode::VerifyIdentity => SslOpts::default(),
    };
    Some(match &tls.ca {
        Some(ca) => opts.with_root_certs(vec![ca.clone().into()]),
        None => opts,
    })
}

fn usage_of(pool: &mysql_async::Pool) -> PoolUsage {
    use std::sync::atomic::Ordering::Relaxed;
    let m = pool.metrics();
    PoolUsage {
        idle: m.connections_in_pool.load(Relaxed),
        in_use: m.connections_in_use.load(Relaxed),
        waiting: m.active_wait_requests.load(Relaxed),
    }
}

/// One connection of its own, within the connect timeout: proves the URL and the login, and
/// reads `(wait_timeout, max_connections)`.
async fn probe(
    session: OptsBuilder,
    config: &PoolConfig,
    section: &'static str,
    shown: &str,
) -> Result<(u64, u64), PoolError> {
    let secs = config.connect_timeout_secs;
    let timeout = || PoolError::ConnectTimeout { url: shown.to_owned(), section, secs };
    let mut conn = match tokio::time::timeout(config.connect_timeout(), Conn::new(session)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return Err(connect_error(e, shown.to_owned(), section)),
        Err(_) => return Err(timeout()),
    };
    let limits = tokio::time::timeout(
        config.connect_timeout(),
        conn.query_first::<(u64, u64), _>("SELECT @@wait_timeout, @@max_connections"),
    )
    .await
    .map_err(|_| timeout())?
    .map_err(|e| connect_error(e, shown.to_owned(), section))?;
    // The probe has done its work; a failed goodbye leaves nothing behind on our side.
    let _ = conn.disconnect().await;
    // A server that hides these variables gets the server defaults of MySQL.
    Ok(limits.unwrap_or((28_800, 151)))
}

fn connect_error(e: mysql_async::Error, url: String, section: &'static str) -> PoolError {
    match &e {
        mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
            PoolError::Auth { url, section, source: Box::new(e) }
        }
        // rustls says why it refused the server's certificate (or the handshake) in words.
        _ if e.to_string().contains("certificate") || e.to_string().contains("TLS") => {
            PoolError::Tls { url, section, source: Box::new(e) }
        }
        _ => PoolError::Connect { url, section, source: Box::new(e) },
    }
}

/// Whether a failed statement may succeed when tried again: a lost connection, a lock wait
/// timeout or a deadlock.
pub fn is_retryable(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => true,
        mysql_async::Error::Server(s) => RETRYABLE_CODES.contains(&s.code),
        _ => false,
    }
}
