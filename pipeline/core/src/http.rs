//! `/metrics`, `/health` and `/ready` over plain HTTP/1.1: GET only, one response per
//! connection, requests bounded in size and time. Enough for Prometheus and orchestrator probes,
//! and no web framework to carry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The largest request head read; probes send a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// A client that sends nothing for this long is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the pipeline is ready: its source and sink answered, its last pass succeeded, and
/// no table stopped (a stopped table stays stopped until the process restarts).
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
    stopped_tables: AtomicBool,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// A table stopped on an error of its own while the others go on.
    pub fn table_stopped(&self) {
        self.stopped_tables.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.stopped_tables.load(Ordering::Relaxed)
    }
}

/// After a failed `accept` (out of file descriptors, say), the listener waits this long before
/// the next, doubling up to [`ACCEPT_BACKOFF_MAX`]: the failure repeats until a descriptor is
/// free, and trying at once would spin.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Failed accepts are logged at most once per this interval, with their count.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, metrics: Metrics, health: Arc<Health>, shutdown: CancellationToken) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut failed = 0u64;
    let mut logged: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    let (metrics, health) = (metrics.clone(), health.clone());
                    tokio::spawn(async move {
                        // A client that hangs up or times out only loses its own response.
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, respond(stream, &metrics, &health)).await;
                    });
                }
                Err(e) => {
                    failed += 1;
                    if logged.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                        tracing::warn!(error = %e, failed, "metrics endpoint: accept failed; backing off (raise the open-files limit?)");
                        logged = Some(std::time::Instant::now());
                        failed = 0;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
            },
        }
    }
}

async fn respond(mut stream: TcpStream, metrics: &Metrics, health: &Health) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_BYTES {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split(|b| *b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        (b"GET", b"/health") => ("200 OK", "text/plain", "ok\n".to_owned()),
        (b"GET", b"/ready") if health.is_ready() => ("200 OK", "text/plain", "ready\n".to_owned()),
        (b"GET", b"/ready") => ("503 Service Unavailable", "text/plain", "not ready\n".to_owned()),
        (b"GET", _) => ("404 Not Found", "text/plain", "not found: try /metrics, /health, /ready\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.expect("sends");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("reads");
        out
    }

    #[tokio::test]
    async fn answers_metrics_health_and_readiness() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("addr");
        let metrics = Metrics::new("p").expect("metrics");
        metrics.rows_loaded.with_label_values(&["d.t"]).inc_by(3);
        let health = Arc::new(Health::default());
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics, health.clone(), stop.clone()));
        let text = get(addr, "/metrics").await;
        assert!(text.contains("highwater_rows_loaded_total{table=\"d.t\",pipeline=\"p\"} 3"), "{text}");
        assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        // A stopped table keeps it not ready, whatever the passes after it do.
        health.table_stopped();
        health.set_ready(true);
        assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 503"));
        stop.cancel();
        server.await.expect("stops");
    }
}
